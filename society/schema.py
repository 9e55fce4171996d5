"""`society schema [GAME]`: every scenario field with its type, default and description,
read from the pydantic models themselves (so the listing cannot drift from the schema)."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from society.config import LLMGroup, ScriptedGroup
from society.registry import game_kind, game_kinds


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is typing.Annotated:
        return _type_name(typing.get_args(tp)[0])
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _models(tp: Any) -> list[type[BaseModel]]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return [m for a in typing.get_args(tp) for m in _models(a)]


def field_lines(model: type[BaseModel], prefix: str = "") -> list[str]:
    """One line per field of ``model`` (nested models expanded): path, type, default, help."""
    lines = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        nested = _models(info.annotation)
        if info.default is not PydanticUndefined:
            default = f" = {info.default!r}"
        elif info.default_factory is not None:
            default = ""
        else:
            default = " (required)"
        desc = f"  -- {info.description}" if info.description else ""
        lines.append(f"{path}: {_type_name(info.annotation)}{default}{desc}")
        if nested and name not in ("game", "groups"):
            for sub in nested:
                lines.extend(field_lines(sub, f"{path}."))
    return lines


def describe(game: str | None = None) -> str:
    """The schema listing: the common fields, group kinds, then each game's (or one) fields."""
    from society.scenario import Scenario

    out = ["# scenario", *field_lines(Scenario)]
    for group in (ScriptedGroup, LLMGroup):
        out += ["", f"# population.groups[] (kind: {group.model_fields['kind'].default})"]
        out += field_lines(group, "population.groups[].")
    kinds = [game_kind(game)] if game else list(game_kinds().values())
    for kind in kinds:
        out += ["", f"# game (kind: {kind.kind}): {kind.config.__doc__ or ''}".rstrip()]
        out += field_lines(kind.config, "game.")
    return "\n".join(out)
