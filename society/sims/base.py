"""What every simulation offers the runner: steps, records, and a state to checkpoint."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from society.decide import Decider
from society.scenario import Scenario

if TYPE_CHECKING:
    from society.store import RunStore


@dataclass
class StepRecord:
    """The rows one step produced, in the run store's column order (see `society.store`)."""

    round: int
    generation: int = 0
    game: int = 0
    round_in_game: int = 0
    decisions: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)
    agents: list[tuple] = field(default_factory=list)


class Simulation(ABC):
    """A game master plus its population, advanced one committed step at a time.

    All randomness comes from generators held in the state, so that restoring a
    checkpoint and stepping on gives exactly what an uninterrupted run gives.
    """

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario

    @property
    @abstractmethod
    def done(self) -> bool:
        """Whether the run is over."""

    @property
    def total_steps(self) -> int | None:
        """Number of steps of the whole run, when known in advance (progress bar)."""
        return None

    @abstractmethod
    def step(self, decider: Decider) -> StepRecord:
        """Play one step: gather decisions (LLM ones batched through `decider`), apply them."""

    @abstractmethod
    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly from here (picklable), except what
        `restore` reads back from the run store."""

    @abstractmethod
    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state made by `get_state`."""

    def restore(self, store: RunStore) -> None:  # noqa: B027 - optional; most keep nothing
        """After `set_state`: rebuild what the committed rows already hold (default: nothing)."""
