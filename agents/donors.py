"""Scripted donors for the donor game (baselines and tests).

A strategy decides from the observation alone (stateless), so the same strategy object
can serve any number of agents. Deterministic strategies never touch the ``rng``;
stochastic ones draw from it only, so a run stays reproducible from its seed.

Percent thresholds are in 0..100, like ``TraceEntry.percent``; fractions are in 0..1 of
the donor's current holdings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from agents.params import Param, Parameterised, parse_spec
from games.donor import DonorAction, DonorObservation, TraceEntry
from games.protocol import Turn

__all__ = [
    "DONOR_STRATEGIES",
    "AlwaysDefect",
    "DonateAll",
    "DonorStrategy",
    "FixedFraction",
    "ImageScoring",
    "Punisher",
    "RandomDonor",
    "Standing",
    "make_donor_strategy",
]


class DonorStrategy(Parameterised):
    """Base class: a named, parameterised, stateless donor.

    Subclasses set ``name``, ``classifier`` and ``parameters`` (declared with
    :class:`agents.params.Param`, as for repeated-game strategies) and implement
    ``donate`` and ``describe``. Each parameter becomes an attribute.
    """

    classifier: ClassVar[dict[str, Any]] = {}

    def donate(self, obs: DonorObservation, rng: np.random.Generator) -> DonorAction:
        """The action for this observation."""
        raise NotImplementedError

    def describe(self) -> str:
        """One sentence, starting "My strategy will be", used as the agent's strategy text."""
        raise NotImplementedError

    def act(self, turn: Turn, rng: np.random.Generator) -> DonorAction:
        """The game protocol's scripted-policy call: the donation for this turn."""
        return self.donate(turn.observation, rng)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{type(self).__name__}({args})"


_FRACTION = Param(0.5, "fraction", "share of its holdings it gives")
_THRESHOLD = Param(50.0, "percent", "lowest percent a recipient must have given")


def _give(obs: DonorObservation, fraction: float) -> DonorAction:
    return DonorAction(fraction * obs.donor_resources)


class FixedFraction(DonorStrategy):
    """Always give the same fraction of what it holds."""

    fraction: float

    name = "fixed_fraction"
    classifier = {"stochastic": False, "trace_depth_used": 0, "punishes": False}
    parameters = {"fraction": _FRACTION}

    def donate(self, obs: DonorObservation, rng: np.random.Generator) -> DonorAction:
        return _give(obs, self.fraction)

    def describe(self) -> str:
        return (
            f"My strategy will be to donate {self.fraction:.0%} of my resources to every recipient."
        )


class AlwaysDefect(DonorStrategy):
    """Never give anything."""

    name = "always_defect"
    classifier = {"stochastic": False, "trace_depth_used": 0, "punishes": False}

    def donate(self, obs: DonorObservation, rng: np.random.Generator) -> DonorAction:
        return DonorAction(0.0)

    def describe(self) -> str:
        return "My strategy will be to never donate anything and keep all my resources."


class DonateAll(DonorStrategy):
    """Always give everything it holds."""

    name = "donate_all"
    classifier = {"stochastic": False, "trace_depth_used": 0, "punishes": False}

    def donate(self, obs: DonorObservation, rng: np.random.Generator) -> DonorAction:
        return DonorAction(obs.donor_resources)

    def describe(self) -> str:
        return "My strategy will be to donate all of my resources to every recipient."


class RandomDonor(DonorStrategy):
    """Give a fraction drawn uniformly from ``[0, max_fraction]`` (one draw per decision)."""

    max_fraction: float

    name = "random"
    classifier = {"stochastic": True, "trace_depth_used": 0, "punishes": False}
    parameters = {"max_fraction": Param(1.0, "fraction", "largest share it may give")}

    def donate(self, obs: DonorObservation, rng: np.random.Generator) -> DonorAction:
        return _give(obs, float(rng.uniform(0.0, self.max_fraction)))

    def describe(self) -> str:
        return (
            "My strategy will be to donate a random share of my resources, "
            f"anywhere between 0% and {self.max_fraction:.0%}."
        )


class ImageScoring(DonorStrategy):
    """Give ``fraction`` to recipients whose last donation was at least ``threshold``%.

    A recipient with no trace yet (it has not been a donor) gets the benefit of the doubt.
    """

    fraction: float
    threshold: float

    name = "image_scoring"
    classifier = {"stochastic": False, "trace_depth_used": 1, "punishes": False}
    parameters = {"fraction": _FRACTION, "threshold": _THRESHOLD}

    def donate(self, obs: DonorObservation, rng: np.random.Generator) -> DonorAction:
        trace = obs.recipient_trace
        if not trace or trace[0].percent >= self.threshold:
            return _give(obs, self.fraction)
        return DonorAction(0.0)

    def describe(self) -> str:
        return (
            f"My strategy will be to donate {self.fraction:.0%} of my resources to recipients "
            f"who gave at least {self.threshold:g}% in their last donation, and nothing to "
            "those who gave less."
        )


def good_standing(trace: tuple[TraceEntry, ...] | list[TraceEntry], threshold: float) -> bool:
    """Whether the agent whose trace this is is in good standing.

    The rule, applied along the trace (entry k is what the k-th agent of the chain did to
    the (k+1)-th): agent k is in good standing if it has no entry (nothing known: presumed
    good), or its entry gave at least ``threshold`` percent, or it withheld (gave less) from
    an agent k+1 who was itself in bad standing by the same rule. Beyond the visible depth
    agents are presumed good, so with one entry this is image scoring, and with two it is
    "gave generously, or withheld from someone whose own last gift was stingy".
    """
    good = True  # standing of the agent after the last visible entry: unknown, presumed good
    for entry in reversed(trace):
        good = entry.percent >= threshold or not good
    return good


class Standing(DonorStrategy):
    """Give ``fraction`` to recipients in good standing (see ``good_standing``), else 0.

    Unlike image scoring, withholding from a bad-standing agent is justified and does not
    cost the withholder its standing; this needs the trace's deeper entries.
    """

    fraction: float
    threshold: float

    name = "standing"
    classifier = {"stochastic": False, "trace_depth_used": 3, "punishes": False}
    parameters = {"fraction": _FRACTION, "threshold": _THRESHOLD}

    def donate(self, obs: DonorObservation, rng: np.random.Generator) -> DonorAction:
        if good_standing(obs.recipient_trace, self.threshold):
            return _give(obs, self.fraction)
        return DonorAction(0.0)

    def describe(self) -> str:
        return (
            f"My strategy will be to donate {self.fraction:.0%} of my resources to recipients "
            f"in good standing, meaning they gave at least {self.threshold:g}% last time or "
            "only held back from someone who was themselves in bad standing, and nothing to "
            "the others."
        )


class Punisher(DonorStrategy):
    """Punish stingy recipients when punishment is allowed, otherwise donate.

    With punishment allowed and the recipient's last donation below ``threshold``%, it
    spends ``fraction`` of its holdings punishing; in every other case (no trace yet, a
    generous recipient, or no punishment in this game) it donates ``fraction``.
    """

    fraction: float
    threshold: float

    name = "punisher"
    classifier = {"stochastic": False, "trace_depth_used": 1, "punishes": True}
    parameters = {"fraction": _FRACTION, "threshold": _THRESHOLD}

    def donate(self, obs: DonorObservation, rng: np.random.Generator) -> DonorAction:
        trace = obs.recipient_trace
        if obs.punishment_allowed and trace and trace[0].percent < self.threshold:
            return DonorAction(self.fraction * obs.donor_resources, punish=True)
        return _give(obs, self.fraction)

    def describe(self) -> str:
        return (
            f"My strategy will be to donate {self.fraction:.0%} of my resources, but to spend "
            f"that much punishing recipients who gave less than {self.threshold:g}% in their "
            "last donation whenever punishment is allowed."
        )


DONOR_STRATEGIES: dict[str, type[DonorStrategy]] = {
    cls.name: cls
    for cls in (
        FixedFraction,
        AlwaysDefect,
        DonateAll,
        RandomDonor,
        ImageScoring,
        Standing,
        Punisher,
    )
}


def make_donor_strategy(spec: str | Mapping[str, Any] | DonorStrategy) -> DonorStrategy:
    """Build a scripted donor from a name or a mapping.

    ``spec`` is a registered name (``"image_scoring"``), or a mapping with ``name`` and
    the parameters either inline (``{"name": "fixed_fraction", "fraction": 0.3}``) or under
    ``params``. An existing ``DonorStrategy`` is returned unchanged.

    Raises:
        ValueError: unknown name (the message lists the valid ones) or bad parameters.
    """
    if isinstance(spec, DonorStrategy):
        return spec
    name, params = parse_spec(spec, "donor strategy")
    cls = DONOR_STRATEGIES.get(name) if isinstance(name, str) else None
    if cls is None:
        valid = ", ".join(sorted(DONOR_STRATEGIES))
        raise ValueError(f"unknown donor strategy {name!r}; valid names: {valid}")
    return cls(**params)
