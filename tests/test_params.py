"""The shared parameter rules of scripted policies (agents.params)."""

from __future__ import annotations

import numpy as np
import pytest

from agents.params import Param, bind_params

DECLARED = {
    "p": Param(0.5, "probability"),
    "share": Param(1.0, "fraction"),
    "pct": Param(50, "percent"),
    "start": Param(0, "move"),
}


def test_defaults_filled_and_values_normalised():
    out = bind_params("pol", DECLARED, {"p": np.float32(0.25), "pct": 100, "start": np.int64(1)})
    assert out == {"p": 0.25, "share": 1.0, "pct": 100.0, "start": 1}
    assert [type(v) for v in out.values()] == [float, float, float, int]


@pytest.mark.parametrize(
    "given, message",
    [
        ({"q": 1}, "pol: unknown parameter(s) 'q'; expected: p, pct, share, start"),
        ({"p": 1.01}, "pol: parameter 'p' must be a probability in [0, 1], got 1.01"),
        ({"share": float("inf")}, "pol: parameter 'share' must be a number in [0, 1], got inf"),
        ({"pct": -1}, "pol: parameter 'pct' must be a number in [0, 100], got -1"),
        ({"pct": "50"}, "pol: parameter 'pct' must be a number in [0, 100], got '50'"),
        ({"p": True}, "pol: parameter 'p' must be a probability in [0, 1], got True"),
        ({"start": 0.5}, "pol: parameter 'start' must be a move, 0 (C / option A) or 1"),
    ],
)
def test_errors_name_owner_parameter_and_expectation(given, message):
    with pytest.raises(ValueError) as info:
        bind_params("pol", DECLARED, given)
    assert str(info.value).startswith(message)


def test_unknown_kind_is_refused_at_declaration():
    with pytest.raises(ValueError, match="unknown parameter kind 'ratio'"):
        Param(1, "ratio")


def test_one_spec_parser_for_every_game():
    """Inline and nested `params:` are accepted alike by every game's scripted policies."""
    from agents.donors import make_donor_strategy
    from agents.params import parse_spec
    from agents.strategies import make_strategy
    from agents.travelers import make_travelers_policy

    assert parse_spec({"name": "random", "params": {"p": 0.3}}) == ("random", {"p": 0.3})
    assert make_strategy({"name": "random", "params": {"p": 0.3}}).p == 0.3
    assert make_strategy({"name": "random", "p": 0.3}).p == 0.3
    assert (
        make_donor_strategy({"name": "fixed_fraction", "params": {"fraction": 0.2}}).fraction == 0.2
    )
    assert make_travelers_policy({"name": "best_response", "params": {"first": 150}}).spec() == {
        "name": "best_response",
        "first": 150,
    }
    for make in (make_strategy, make_donor_strategy, make_travelers_policy):
        with pytest.raises(ValueError, match="given twice"):
            make({"name": "x", "p": 1, "params": {"p": 2}})
