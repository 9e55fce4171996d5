"""Declared, validated parameters of scripted policies (repeated-game strategies, donors).

A policy class declares ``parameters = {"p": Param(0.5, "probability", "...")}``;
``bind_params`` checks the keyword arguments it is built with against that declaration,
fills in defaults and returns the validated values. One rule set for every scripted
policy, so a bad YAML value gets the same kind of message wherever it appears.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

__all__ = ["KINDS", "Param", "Parameterised", "bind_params", "parse_spec"]

# kind -> closed numeric range; "move" is 0 (C / option A) or 1 (D / option B).
KINDS: dict[str, tuple[float, float] | None] = {
    "probability": (0.0, 1.0),
    "fraction": (0.0, 1.0),
    "percent": (0.0, 100.0),
    "move": None,
}
_NOUN = {"probability": "a probability", "fraction": "a number", "percent": "a number"}


@dataclass(frozen=True)
class Param:
    """A policy parameter: its default, its kind (a key of :data:`KINDS`) and a note."""

    default: Any
    kind: str
    doc: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown parameter kind {self.kind!r}; expected one of {list(KINDS)}")

    def check(self, owner: str, name: str, value: Any) -> Any:
        """``value`` as a float (an int for moves), or a ValueError naming owner and name."""
        if self.kind == "move":
            if isinstance(value, bool) or value not in (0, 1):
                raise ValueError(
                    f"{owner}: parameter {name!r} must be a move, 0 (C / option A) "
                    f"or 1 (D / option B), got {value!r}"
                )
            return int(value)
        lo, hi = KINDS[self.kind]  # type: ignore[misc]
        number = isinstance(value, int | float | np.integer | np.floating)
        if (
            isinstance(value, bool)
            or not number
            or not math.isfinite(value)
            or not lo <= value <= hi
        ):
            raise ValueError(
                f"{owner}: parameter {name!r} must be {_NOUN[self.kind]} "
                f"in [{lo:g}, {hi:g}], got {value!r}"
            )
        return float(value)


def bind_params(owner: str, declared: Mapping[str, Param], given: Mapping[str, Any]) -> dict:
    """Validated values for every declared parameter: ``given`` ones, else the defaults.

    Unknown names are an error listing the expected ones.
    """
    unknown = sorted(set(given) - set(declared))
    if unknown:
        expected = ", ".join(sorted(declared)) or "none"
        raise ValueError(
            f"{owner}: unknown parameter(s) {', '.join(map(repr, unknown))}; expected: {expected}"
        )
    return {
        name: spec.check(owner, name, given.get(name, spec.default))
        for name, spec in declared.items()
    }


class Parameterised:
    """Base of scripted policies: a ``name`` and declared ``parameters``.

    The constructor binds its keyword arguments with :func:`bind_params`, and each
    parameter becomes an attribute.
    """

    name: ClassVar[str] = ""
    parameters: ClassVar[dict[str, Param]] = {}

    def __init__(self, **params: Any) -> None:
        self._params = bind_params(self.name, self.parameters, params)
        for key, value in self._params.items():
            setattr(self, key, value)

    def params(self) -> dict[str, Any]:
        """The constructor parameters (defaults filled in)."""
        return dict(self._params)

    def spec(self) -> dict[str, Any]:
        """The policy as plain data, ``{"name": ..., **params}``, which the game's spec
        parser turns back into an equal policy (stored, and copied by evolution)."""
        return {"name": self.name, **self.params()}


def parse_spec(spec: Any, what: str = "strategy") -> tuple[str, dict[str, Any]]:
    """The (name, parameters) of a scripted-policy spec, for every game alike.

    ``spec`` is a registered name (``"tit_for_tat"``), or a mapping with a ``name`` and
    the parameters inline (``{"name": "random", "p": 0.3}``), under ``params``
    (``{"name": "random", "params": {"p": 0.3}}``), or both (a key given twice is an
    error). ``what`` names the kind of policy in error messages.

    Raises:
        ValueError: a spec of another shape, a missing or non-text name, duplicate keys.
    """
    if isinstance(spec, str):
        return spec, {}
    if not isinstance(spec, Mapping):
        raise ValueError(f"{what} spec must be a name or a mapping with a 'name', got {spec!r}")
    if "name" not in spec:
        raise ValueError(f"{what} spec needs a 'name', got {dict(spec)!r}")
    name = spec["name"]
    if not isinstance(name, str):
        raise ValueError(f"{what} name must be a string, got {name!r}")
    inline = {k: v for k, v in spec.items() if k not in ("name", "params")}
    nested = spec.get("params") or {}
    if not isinstance(nested, Mapping):
        raise ValueError(f"{what} 'params' must be a mapping, got {nested!r}")
    overlap = sorted(set(inline) & set(nested))
    if overlap:
        raise ValueError(f"{what} parameter(s) {overlap} given twice")
    return name, {**inline, **nested}
