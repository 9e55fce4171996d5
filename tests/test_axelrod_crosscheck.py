"""Cross-check against a peer: the same tournaments and strategies in axelrod and in society.

Deterministic strategies must score identically; for generous tit for tat (stochastic, and
the two libraries draw from different generators) the generosity must be the same number
for each game and the cooperation frequencies must agree within sampling error.
"""

from __future__ import annotations

import math

import pytest

pytest.importorskip("axelrod")

import axelrod as axl  # noqa: E402
import numpy as np  # noqa: E402

from agents.strategies import C, D, gtft_generosity, make_strategy  # noqa: E402
from bench.tournament import PAIRS, run_axelrod, run_society  # noqa: E402
from games.observation import RepeatedObservation  # noqa: E402
from games.protocol import Turn  # noqa: E402
from society.runner import start_run  # noqa: E402
from society.scenario import resolve  # noqa: E402
from tests.helpers import query  # noqa: E402

pytestmark = pytest.mark.axelrod

# (R, S, T, P) of prisoner's dilemmas and one chicken game (T > R > S > P), where
# axelrod's GTFT formula gives a probability.
GAMES_RSTP = [
    (3, 0, 5, 1),  # Axelrod's default: 1/3
    (8, 0, 10, 5),  # society's prisoners_dilemma preset: 0.6
    (3, 0, 4, 1),  # 2/3
    (5, 0, 8, 1),  # 0.4
    (4, 1, 6, 0),  # 1/3 by the first term
    (3, 1, 4, 0),  # chicken: 0.5
]


def axelrod_gtft(R, S, T, P) -> axl.Player:
    """Axelrod's GTFT after its ``receive_match_attributes`` computed ``p`` from this game.

    ``p`` is reset to None first: axelrod's ``Player.__init__`` already sets the match
    attributes with its default game (R3 S0 T5 P1), so a fresh ``GTFT()`` has p = 1/3
    fixed before any game reaches it, and a later game (``Match(..., game=...)``) no longer
    changes it (axelrod 4.14). Resetting runs axelrod's own formula on the given game.
    """
    player = axl.GTFT()
    player.p = None
    player.set_match_attributes(length=-1, game=axl.Game(r=R, s=S, t=T, p=P), noise=0)
    return player


def own_view(R, S, T, P):
    """The repeated game's own-view payoff table of a symmetric game."""
    return (((R, R), (S, T)), ((T, S), (P, P)))


@pytest.mark.slow
def test_identical_total_scores_per_strategy(tmp_path):
    ours = run_society(turns=100, copies=1, out=tmp_path / "run")
    theirs = run_axelrod(turns=100, copies=1)
    assert len(ours) == len(PAIRS)
    assert ours == theirs


@pytest.mark.parametrize("rstp", GAMES_RSTP, ids=str)
def test_gtft_generosity_equals_axelrods_p(rstp):
    player = axelrod_gtft(*rstp)
    assert gtft_generosity(*rstp) == player.p  # the same formula, the same float
    ours = make_strategy("generous_tft")
    assert ours.generosity_for(own_view(*map(float, rstp))) == player.p
    # axelrod's four-vector: P(C) after (C,C), (C,D), (D,C), (D,D) = (1, p, 1, p)
    assert list(player._four_vector.values()) == [1, player.p, 1, player.p]


def test_gtft_default_game_matches_axelrods_default():
    player = axl.GTFT()
    player.set_match_attributes()  # no game: axelrod's DefaultGame, R3 S0 T5 P1
    assert make_strategy("generous_tft").generosity_for() == player.p


def test_gtft_explicit_p_matches():
    player = axl.GTFT(p=0.2)
    player.set_match_attributes(game=axl.Game(r=8, s=0, t=10, p=5))
    ours = make_strategy({"name": "generous_tft", "generosity": 0.2})
    assert player.p == ours.generosity_for(own_view(8.0, 0.0, 10.0, 5.0)) == 0.2


@pytest.mark.parametrize("rstp", [(3, 0, 5, 1), (8, 0, 10, 5), (5, 0, 8, 1)], ids=str)
def test_gtft_move_distribution_matches_axelrod(rstp):
    """Against the same scripted partner, P(C) per memory-one state agrees within sampling
    error (seeded draws; each library its own generator)."""
    R, S, T, P = rstp
    game = axl.Game(r=R, s=S, t=T, p=P)
    partner = [C, D, D, C, D] * 400  # every (my, their) state occurs often
    axl_partner = axl.MockPlayer(
        actions=[axl.Action.C if m == C else axl.Action.D for m in partner]
    )
    p = axelrod_gtft(*rstp).p
    table = own_view(*map(float, rstp))
    ours = make_strategy("generous_tft")
    rng = np.random.default_rng(2024)
    counts = {"axelrod": np.zeros((2, 2, 2)), "society": np.zeros((2, 2, 2))}
    for seed in range(5):
        # GTFT(p=p): a bare GTFT() would keep the default game's 1/3 (see axelrod_gtft)
        match = axl.Match(
            (axl.GTFT(p=p), axl_partner.clone()), turns=len(partner), game=game, seed=seed
        )
        theirs = [0 if a == axl.Action.C else 1 for a, _ in match.play()]
        my: list[int] = []
        for r in range(len(partner)):
            obs = RepeatedObservation(None, my, partner[:r], table, ("J", "F"))
            my.append(ours.act(Turn(0, 1, "move", obs, None, C), rng))
        for name, moves in (("axelrod", theirs), ("society", my)):
            for r in range(1, len(partner)):
                counts[name][moves[r - 1], partner[r - 1], moves[r]] += 1
    freq, se = {}, {}
    for name, c in counts.items():
        for mine in (C, D):
            assert c[mine, C, D] == 0, name  # always C after the partner's C
            n = c[mine, D].sum()
            assert n > 500
            freq[name, mine] = c[mine, D, C] / n
            se[name, mine] = math.sqrt(p * (1 - p) / n)
            assert abs(freq[name, mine] - p) < 4 * se[name, mine], (name, mine)
    for mine in (C, D):
        diff = abs(freq["axelrod", mine] - freq["society", mine])
        assert diff < 4 * math.hypot(se["axelrod", mine], se["society", mine])


def test_gtft_default_in_a_run_forgives_as_axelrods_gtft(tmp_path):
    """Through the runner (the ``act`` path): the default generous_tft facing always-defect
    in society's prisoners_dilemma preset (R8 S0 T10 P5) cooperates about 60% of the time
    after round one, as axelrod's GTFT does against a Defector in the same game."""
    rounds = 3000
    data = {
        "name": "gtft-vs-alld",
        "seed": 1,
        "population": {
            "groups": [
                {"name": "gtft", "strategy": "generous_tft"},
                {"name": "alld", "strategy": "always_defect"},
            ]
        },
        "game": {"kind": "repeated_2x2", "preset": "prisoners_dilemma", "rounds": rounds},
    }
    res = start_run(resolve(data, "test"), tmp_path / "run", quiet=True)
    ((ours,),) = query(
        res.run_dir, "SELECT AVG(action = 'C') FROM decisions WHERE agent_id = 0 AND round > 0"
    )
    p = axelrod_gtft(8, 0, 10, 5).p  # axelrod's formula for this game: 0.6
    match = axl.Match(
        (axl.GTFT(p=p), axl.Defector()), turns=rounds, game=axl.Game(r=8, s=0, t=10, p=5), seed=1
    )
    theirs = np.mean([a == axl.Action.C for a, _ in match.play()[1:]])
    assert abs(ours - 0.6) < 0.03 and abs(theirs - 0.6) < 0.03
    assert abs(ours - theirs) < 0.04
