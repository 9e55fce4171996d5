"""The rules: 2x2 repeated games, donor game, public goods, marketplace; pure and deterministic."""

from games.donor import (  # noqa: F401
    DonorAction,
    DonorEvent,
    DonorGame,
    DonorObservation,
    DonorRules,
    TraceEntry,
    make_schedule,
)
from games.ordinal import ordinal_games as ordinal_games
from games.repeated import RepeatedGameRules as RepeatedGameRules
from games.twobytwo import PRESETS as PRESETS
from games.twobytwo import Game2x2 as Game2x2
from games.twobytwo import preset as preset
