"""Scripted donors: decisions on hand-built observations, validation, determinism."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from agents.donors import (
    DONOR_STRATEGIES,
    DonorStrategy,
    good_standing,
    make_donor_strategy,
)
from games.donor import DonorAction, DonorGame, DonorObservation, DonorRules, TraceEntry


def entry(pct: float, donor: int = 1, recipient: int = 2, rnd: int = 1) -> TraceEntry:
    return TraceEntry(donor, recipient, rnd, pct / 10, pct, False)


def obs(
    trace: tuple[TraceEntry, ...] = (),
    resources: float = 20.0,
    punishment: bool = False,
) -> DonorObservation:
    rules = DonorRules(punishment=punishment)
    return DonorObservation(
        round=4,
        donor=0,
        recipient=1,
        donor_resources=resources,
        recipient_resources=15.0,
        recipient_trace=trace,
        punishment_allowed=punishment,
        rules=rules,
    )


def decide(spec, observation: DonorObservation) -> DonorAction:
    return make_donor_strategy(spec).donate(observation, np.random.default_rng(0))


GENEROUS = (entry(80),)
STINGY = (entry(20),)


def test_fixed_fraction() -> None:
    assert decide("fixed_fraction", obs()) == DonorAction(10.0)
    assert decide({"name": "fixed_fraction", "fraction": 0.25}, obs()) == DonorAction(5.0)
    assert decide({"name": "fixed_fraction", "params": {"fraction": 1}}, obs(STINGY)) == (
        DonorAction(20.0)
    )


def test_always_defect_and_donate_all() -> None:
    assert decide("always_defect", obs(GENEROUS)) == DonorAction(0.0)
    assert decide("donate_all", obs(STINGY, resources=7.5)) == DonorAction(7.5)


def test_random_within_bounds_and_seeded() -> None:
    s = make_donor_strategy({"name": "random", "max_fraction": 0.5})
    amounts = [s.donate(obs(), np.random.default_rng(k)).amount for k in range(200)]
    assert all(0 <= a <= 10 for a in amounts)
    assert len(set(amounts)) > 150
    a = s.donate(obs(), np.random.default_rng(3))
    b = s.donate(obs(), np.random.default_rng(3))
    assert a == b
    assert make_donor_strategy("random").classifier["stochastic"]


def test_image_scoring() -> None:
    assert decide("image_scoring", obs()) == DonorAction(10.0)  # no trace: benefit of doubt
    assert decide("image_scoring", obs(GENEROUS)) == DonorAction(10.0)
    assert decide("image_scoring", obs((entry(50),))) == DonorAction(10.0)  # >= threshold
    assert decide("image_scoring", obs(STINGY)) == DonorAction(0.0)
    spec = {"name": "image_scoring", "threshold": 10, "fraction": 1.0}
    assert decide(spec, obs(STINGY)) == DonorAction(20.0)


def test_good_standing_rule() -> None:
    th = 50
    assert good_standing((), th)
    assert good_standing((entry(60),), th)
    assert not good_standing((entry(10),), th)  # depth 1: image scoring
    # Withheld from someone whose own last gift was stingy: justified.
    assert good_standing((entry(10), entry(0)), th)
    # Withheld from someone who gave generously: bad.
    assert not good_standing((entry(10), entry(90)), th)
    # Depth 3: the partner withheld too, but justly (its partner was stingy),
    # so the partner is good and withholding from it was bad.
    assert not good_standing((entry(10), entry(0), entry(0)), th)
    # ... and if the partner withheld from a generous agent, the partner is bad: justified.
    assert good_standing((entry(10), entry(0), entry(100)), th)


def test_standing() -> None:
    assert decide("standing", obs()) == DonorAction(10.0)
    assert decide("standing", obs((entry(10), entry(0)))) == DonorAction(10.0)
    assert decide("standing", obs((entry(10), entry(90)))) == DonorAction(0.0)
    assert decide("standing", obs(STINGY)) == DonorAction(0.0)
    assert decide("standing", obs(GENEROUS)) == DonorAction(10.0)


def test_punisher() -> None:
    # Punishment allowed: stingy recipients are punished with fraction of holdings.
    assert decide("punisher", obs(STINGY, punishment=True)) == DonorAction(10.0, punish=True)
    assert decide("punisher", obs(GENEROUS, punishment=True)) == DonorAction(10.0)
    assert decide("punisher", obs((), punishment=True)) == DonorAction(10.0)
    # Not allowed: donates instead.
    assert decide("punisher", obs(STINGY)) == DonorAction(10.0)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("tit_for_tat", "valid names: always_defect, donate_all"),
        ({"name": "nope"}, "unknown donor strategy"),
        ({"fraction": 0.5}, "needs a 'name'"),
        ({"name": "fixed_fraction", "fraction": 1.5}, r"'fraction' must be a number in \[0, 1\]"),
        ({"name": "fixed_fraction", "fraction": -0.1}, "fraction"),
        ({"name": "fixed_fraction", "fraction": "half"}, "must be a number"),
        ({"name": "fixed_fraction", "fraction": True}, "must be a number"),
        (
            {"name": "image_scoring", "threshold": 150},
            r"'threshold' must be a number in \[0, 100\]",
        ),
        ({"name": "random", "max_fraction": float("nan")}, "max_fraction"),
        ({"name": "always_defect", "fraction": 0.5}, "unknown parameter"),
        ({"name": "fixed_fraction", "fraction": 0.2, "params": {"fraction": 0.3}}, "twice"),
        (42, "name or a mapping"),
    ],
)
def test_validation_errors(spec, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_donor_strategy(spec)


def test_registry_complete() -> None:
    assert set(DONOR_STRATEGIES) == {
        "fixed_fraction",
        "always_defect",
        "donate_all",
        "random",
        "image_scoring",
        "standing",
        "punisher",
    }
    s = make_donor_strategy("standing")
    assert make_donor_strategy(s) is s


@pytest.mark.parametrize("name", sorted(DONOR_STRATEGIES))
def test_describe_and_classifier(name: str) -> None:
    s = make_donor_strategy(name)
    assert isinstance(s, DonorStrategy) and s.name == name
    text = s.describe()
    assert text.startswith("My strategy will be") and text.endswith(".")
    assert "\n" not in text
    assert {"stochastic", "punishes"} <= set(s.classifier)
    assert pickle.loads(pickle.dumps(s)).params() == s.params()


@pytest.mark.parametrize("name", sorted(n for n in DONOR_STRATEGIES if n != "random"))
def test_deterministic_ones_consume_no_randomness(name: str) -> None:
    s = make_donor_strategy(name)
    assert not s.classifier["stochastic"]
    gen = np.random.default_rng(123)
    state = gen.bit_generator.state
    for o in (obs(), obs(STINGY, punishment=True), obs((entry(10), entry(0)))):
        first = s.donate(o, gen)
        assert s.donate(o, gen) == first  # stateless: same observation, same action
    assert gen.bit_generator.state == state


@pytest.mark.parametrize("name", sorted(DONOR_STRATEGIES))
def test_strategies_play_legal_games(name: str) -> None:
    rules = DonorRules(punishment=name == "punisher")
    game = DonorGame(12, rules, np.random.default_rng(0))
    s = make_donor_strategy(name)
    gen = np.random.default_rng(1)
    while not game.done:
        game.apply([s.donate(o, gen) for o in game.pending()])  # raises if illegal
    assert all(r >= 0 for r in game.resources)
