"""Asking an LLM for a typed action: schema, parsing, one repair, fallback.

An LLM decision is a generator: it yields `ChatRequest`s and receives the
`ChatReply` for each; the runtime batches the requests of many agents together.
It returns what was decided. Agents never call a backend themselves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from agents.chat import ChatReply, ChatRequest
from agents.prompts import Prompts
from games.protocol import ActionSpec, Choice, IllegalAction, Number

T = TypeVar("T")
Ask = Generator[ChatRequest, ChatReply, T]

_JSON_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)


class InvalidReply(ValueError):
    """A reply that does not parse into the expected action."""


def enum_schema(field: str, options: list[str]) -> dict[str, Any]:
    """JSON schema of an object with one string field restricted to `options`."""
    return Choice(tuple(options), field=field).json_schema()


def parse_json_object(text: str) -> dict[str, Any]:
    """The JSON object in a reply: the whole text, else the first `{...}` in it."""
    text = text.strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
        for match in _JSON_OBJECT.finditer(text):
            try:
                value = json.loads(match.group(0))
                break
            except json.JSONDecodeError:
                continue
    if not isinstance(value, dict):
        raise InvalidReply("no JSON object found")
    return value


def enum_parser(field: str, options: list[str]) -> Callable[[str], str]:
    """Parser of `{field: one of options}`; tolerant of case and an 'Option ' prefix."""
    lookup = {o.lower(): o for o in options}

    def parse(text: str) -> str:
        value = parse_json_object(text).get(field)
        if not isinstance(value, str):
            raise InvalidReply(f"missing string field {field!r}")
        key = value.strip().lower().removeprefix("option").strip()
        if key not in lookup:
            raise InvalidReply(f"{field}={value!r} is not one of {options}")
        return lookup[key]

    return parse


def choice_parser(options: list[str]) -> Callable[[str], str]:
    """Parser of a bare-label reply (a `ChatRequest.choice` answer): the reply is one of
    `options`, tolerant of case, surrounding quotes, punctuation and an 'Option ' prefix."""
    lookup = {o.lower(): o for o in options}

    def parse(text: str) -> str:
        key = text.strip().strip("\"'`.:;,!*").strip().lower()
        key = key.removeprefix("option").strip()
        if key not in lookup:
            raise InvalidReply(f"{text.strip()[:40]!r} is not one of {options}")
        return lookup[key]

    return parse


def spec_parser(spec: ActionSpec) -> Callable[[str], Any]:
    """Parser of ``{spec.field: value}`` checked by the turn's own spec, so the reply and
    the game agree on what is legal. A `Number` may come as a numeric string: that is how
    `games.protocol.number_schema` bounds a range it does not enumerate ("12.5")."""
    field = spec.field

    def parse(text: str) -> Any:
        value = parse_json_object(text).get(field)
        if value is None:
            raise InvalidReply(f"missing field {field!r}")
        if isinstance(spec, Number) and isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise InvalidReply(f"{field}={value!r} is not a number") from None
        try:
            return spec.check(value)
        except IllegalAction as exc:
            raise InvalidReply(f"{field}: {exc}") from None

    return parse


@dataclass(frozen=True)
class Advice:
    """One survivor's strategy shown to newcomers (advice inheritance), with its score."""

    name: str
    strategy: str
    score: float


@dataclass(frozen=True)
class Asked:
    """What one question to the LLM produced: the value, or None when invalid."""

    value: Any
    valid: bool


def ask(
    request: ChatRequest,
    parse: Callable[[str], Any],
    prompts: Prompts,
    field: str,
    repair: str = "repair",
) -> Ask[Asked]:
    """Ask once; on an invalid reply ask once more with a repair message; never raise.

    ``repair`` names the repair template; it may use ``{problem}``, ``{schema}`` (the
    request's JSON schema) and ``{options}`` (a choice request's options, "J or F").
    Marks each reply with what it parsed to, so the runtime records it.
    """
    reply = yield request
    problem = _read(reply, parse, field)
    if problem is None:
        return Asked(reply.parsed[field], True)
    if reply.error:  # the backend failed; a repair would fail the same way
        return Asked(None, False)
    repair_messages = [
        *request.messages,
        {"role": "assistant", "content": reply.text},
        {
            "role": "user",
            "content": prompts.render(
                repair,
                problem=problem,
                schema=json.dumps(request.json_schema),
                options=" or ".join(request.choice or ()),
            ),
        },
    ]
    tags = {**request.tags, "purpose": f"{request.tags.get('purpose', 'ask')}:repair"}
    second = yield replace(request, messages=repair_messages, tags=tags)
    if _read(second, parse, field) is None:
        return Asked(second.parsed[field], True)
    return Asked(None, False)


def _read(reply: ChatReply, parse: Callable[[str], Any], field: str) -> str | None:
    """Parse a reply in place; return the problem, or None when valid."""
    if reply.error:
        reply.valid = False
        return reply.error
    try:
        reply.parsed = {field: parse(reply.text)}
        reply.valid = True
        return None
    except InvalidReply as exc:
        reply.valid = False
        return str(exc)
