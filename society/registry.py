"""One registration per game: everything the runtime needs to play it, in one place.

A game plug-in is a module of the `society.plugins` package that defines
``PLUGIN = GameKind(...)``: its config model (a pydantic model whose ``kind`` literal
names the game), how to build a game for a generation, how to parse a scripted policy
spec, how to build its LLM policy, its default prompt templates, what it writes to the
store as the resolved game, and which report section of `analysis` reads it. The scenario
schema's game union, the runner and the CLI are all built from these registrations:
adding a game is adding one plug-in module (plus its rules in `games/`, its policies
in `agents/` and its report section in `analysis/report/sections/`).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from games.protocol import Game

if TYPE_CHECKING:
    import networkx as nx

    from agents.prompts import Prompts
    from society.config import GameConfigBase, LLMGroup
    from society.estimate import Size
    from society.scenario import Scenario


@dataclass
class Setup:
    """What a plug-in builds from: the scenario, its game config, the population size,
    the prompt templates in force and (for games that use one) the network."""

    scenario: Scenario
    config: Any
    n: int
    prompts: Prompts
    graph: nx.Graph | None = None
    cache: dict[str, Any] = field(default_factory=dict)  # a plug-in's built rules, etc.


@dataclass(frozen=True)
class GameKind:
    """The registration of one game (see the module docstring).

    Attributes:
        kind: the game's name in scenarios (``game.kind``).
        config: its pydantic config model (``kind: Literal[...]`` plus its options).
        new_game: a fresh game for a generation, from the setup and the run's generator.
        scripted: parses a scripted-policy spec into a policy (raises ValueError).
        llm: builds the LLM policy of an LLM group.
        resolved: the resolved game as plain data, written to the store's meta.
        check: validates the setup (population size, rounds...) before any file exists;
            raises ValueError with a message that starts with the field's path.
        prompts: the default prompt templates the game's LLM policy renders.
        uses: optional scenario sections the game reads ('network', 'matching'); setting
            one that the game does not read is an error.
        ignores: LLM-group fields the game's LLM policy does not read (an error if set).
        evolves: whether generations (``evolution``) can wrap the game.
        strategy_step: whether each generation starts with a strategy step (every new
            agent states its strategy: LLM agents write it, scripted ones describe theirs).
        report: the `analysis` report section module that reads this game's runs.
        estimate: the game's own size figures for `society.estimate` (steps, decisions per
            step...), from the setup; unset, a fresh game is probed (its ``total_steps``
            and first step's turns).
    """

    kind: str
    config: type[GameConfigBase]
    new_game: Callable[[Setup, np.random.Generator], Game]
    scripted: Callable[[Any], Any]
    llm: Callable[[Setup, LLMGroup], Any]
    resolved: Callable[[Setup], dict[str, Any]]
    check: Callable[[Setup], object] | None = None
    prompts: Mapping[str, str] = field(default_factory=dict)
    uses: frozenset[str] = frozenset()
    ignores: frozenset[str] = frozenset()
    evolves: bool = True
    strategy_step: bool = False
    report: str = ""
    estimate: Callable[[Setup], Size] | None = None


@cache
def game_kinds() -> dict[str, GameKind]:
    """Every registered game by kind, found among the modules of `society.plugins`."""
    import society.plugins as pkg

    found: dict[str, GameKind] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        plugin = getattr(module, "PLUGIN", None)
        if isinstance(plugin, GameKind):
            if plugin.kind in found:
                raise RuntimeError(f"game kind {plugin.kind!r} registered twice")
            found[plugin.kind] = plugin
    return found


def game_kind(kind: str) -> GameKind:
    """The registration of ``kind``."""
    kinds = game_kinds()
    if kind not in kinds:
        raise ValueError(f"game.kind: unknown game {kind!r}; expected one of {sorted(kinds)}")
    return kinds[kind]
