"""The scenario schema: what a researcher writes in YAML, validated once at the edge.

Unknown keys are errors. Loading a bad file raises `UserError` with one line that
names the file, the field path and what was expected.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Union

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from society.config import (
    GROUP_TAGS,
    MAX_SEED,
    MAX_TEXT,
    BackendConfig,
    EvolutionConfig,
    GameConfigBase,
    LLMGroup,
    MatchingConfig,
    NetworkConfig,
    OutputConfig,
    PopulationConfig,
    RunConfig,
    Strict,
)
from society.errors import UserError
from society.registry import game_kinds

__all__ = [
    "GameConfig",
    "Scenario",
    "apply_override",
    "load_scenario",
    "resolve",
    "validate_scenario",
]

_KINDS = game_kinds()
_CONFIGS = tuple(k.config for k in _KINDS.values())
if TYPE_CHECKING:
    GameConfig = GameConfigBase
else:  # the game union, built from the registered plug-ins (`society.registry`)
    GameConfig = Annotated[Union[_CONFIGS], Field(discriminator="kind")]  # noqa: UP007


class Scenario(Strict):
    """A whole experiment: population, network, game, evolution, prompts, output."""

    name: str = Field(
        min_length=1, max_length=100, description="name of the scenario (run directories)"
    )
    description: str = Field("", max_length=MAX_TEXT, description="free text")
    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="fixes every random choice of the run (0 to 2**63-1)"
    )
    backend: BackendConfig = Field(
        default_factory=BackendConfig, description="default engine of every LLM group"
    )
    population: PopulationConfig = Field(description="the agent groups")
    network: NetworkConfig = Field(
        default_factory=NetworkConfig, description="who may meet whom (games that use one)"
    )
    matching: MatchingConfig = Field(
        default_factory=MatchingConfig, description="how pairs form (games that pair agents)"
    )
    game: GameConfig = Field(description="the game and its options (`kind` picks the game)")
    evolution: EvolutionConfig = Field(
        default_factory=EvolutionConfig, description="generations around the game"
    )
    prompts: dict[str, str] = Field(
        default_factory=dict, description="overrides of the game's prompt templates, by key"
    )
    output: OutputConfig = Field(default_factory=OutputConfig, description="where runs go")
    run: RunConfig = Field(
        default_factory=RunConfig, description="how the run is carried out (limits...)"
    )

    @field_validator("name")
    @classmethod
    def _a_directory_name(cls, name: str) -> str:
        # The name becomes a run directory: one path component, printable, not hidden.
        if name.startswith(".") or any(c in name for c in "/\\") or not name.isprintable():
            raise ValueError(
                "a scenario name is one printable path component (no '/', '\\', control "
                f"characters or leading '.'), got {name[:40]!r}"
            )
        return name

    @field_validator("prompts")
    @classmethod
    def _prompt_lengths(cls, prompts: dict[str, str]) -> dict[str, str]:
        long = [k for k, v in prompts.items() if len(v) > MAX_TEXT]
        if long:
            raise ValueError(f"prompts.{long[0]}: longer than {MAX_TEXT} characters")
        return prompts

    @model_validator(mode="after")
    def _fields_the_game_reads(self) -> Scenario:
        # A field the chosen game ignores is an error, not silently accepted.
        kind = _KINDS[self.game.kind]
        for section in ("network", "matching"):
            if section in self.model_fields_set and section not in kind.uses:
                raise ValueError(
                    f"{section}: the {kind.kind} game does not use a {section} (remove it)"
                )
        if "evolution" in self.model_fields_set and not kind.evolves:
            raise ValueError(f"evolution: the {kind.kind} game cannot evolve (remove it)")
        for k, group in enumerate(self.population.groups):
            if isinstance(group, LLMGroup):
                ignored = sorted(kind.ignores & group.model_fields_set)
                if ignored:
                    raise ValueError(
                        f"population.groups.{k}.{ignored[0]}: the {kind.kind} game's LLM "
                        "agents do not read this field (remove it)"
                    )
        return self

    def group_backend(self, group: LLMGroup) -> BackendConfig:
        """The backend that serves an LLM group (its own, else the scenario's)."""
        cfg = (group.backend or self.backend).model_copy()
        if group.model is not None:
            cfg = cfg.model_copy(update={"model": group.model})
        if cfg.kind == "replay" and cfg.run is None:
            # `--backend replay --set backend.run=R` replays every group, own backends included.
            cfg = cfg.model_copy(update={"run": self.backend.run})
        return cfg

    def to_yaml(self) -> str:
        """The resolved scenario as YAML (what the run store keeps)."""
        kind = _KINDS[self.game.kind]
        unused = {s for s in ("network", "matching") if s not in kind.uses}
        if not kind.evolves:
            unused.add("evolution")
        data = self.model_dump(mode="json", exclude=unused)
        for group in data["population"]["groups"]:  # fields the game's LLM agents ignore
            for key in kind.ignores if group["kind"] == "llm" else ():
                group.pop(key, None)
        return yaml.safe_dump(data, sort_keys=False)


# -- loading ------------------------------------------------------------------
#: Bounds on a scenario's YAML, checked while it is read (before pydantic sees it).
MAX_BYTES = 1 << 20  # a scenario is a few kB; a megabyte leaves room for long prompts
MAX_DEPTH = 64  # nesting of mappings and lists
MAX_NODES = 200_000  # values after expanding aliases (an alias bomb expands to billions)


class _BoundedLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` (plain data only: no Python tags) that refuses deep nesting
    while composing, so the composer never recurses past ``MAX_DEPTH``."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise UserError(f"nested deeper than {MAX_DEPTH} levels at line {mark.line + 1}")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _expanded_size(root: yaml.Node) -> int:
    """Values of the document with every alias expanded (memoised per node: cheap)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if done or not children:
            total = 1 + sum(sizes.get(id(c), 0) for c in children)
            sizes[id(node)] = min(total, MAX_NODES + 1)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def safe_load(text: str, source: str) -> Any:
    """Parse YAML text into plain data, bounded in nesting and expanded size; any
    problem is a one-line UserError naming ``source``."""
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)  # its reader refuses control characters here
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node) > MAX_NODES:
            raise UserError(
                f"{source}: more than {MAX_NODES} values once aliases are expanded (an alias bomb?)"
            )
        return loader.construct_document(node)
    except UserError as exc:
        text = str(exc)
        raise UserError(text if text.startswith(source) else f"{source}: {text}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{source}: invalid YAML at {where}: {problem}") from None
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. a 5,000-digit integer
        raise UserError(f"{source}: invalid YAML value: {str(exc).splitlines()[0]}") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_scenario_text(path: Path) -> str:
    """The text of a scenario file: at most ``MAX_BYTES``, UTF-8."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UserError(f"{path}: cannot read scenario file ({exc.strerror or exc})") from None
    if len(raw) > MAX_BYTES:
        raise UserError(f"{path}: larger than {MAX_BYTES} bytes (not a scenario file?)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start}); "
            "a scenario is a YAML text file"
        ) from None


def _parse_value(text: str, where: str = "--set") -> Any:
    """A --set value: YAML scalar/list syntax (`3`, `1.5`, `true`, `[a, b]`, `null`)."""
    try:
        return safe_load(text, where)
    except UserError as exc:
        if "invalid YAML at" in str(exc):
            return text  # not YAML: the text itself (a string value)
        raise


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one `a.b.c=value` to raw scenario data, in place.

    List items are addressed by index (`population.groups.0.count=3`) or, for lists
    of named items, by name (`population.groups.llm.count=3`).
    """
    if "=" not in assignment:
        raise UserError(f"--set {assignment!r}: expected key.path=value")
    path, raw = assignment.split("=", 1)
    keys = [k for k in path.strip().split(".") if k]
    if not keys:
        raise UserError(f"--set {assignment!r}: empty key path")
    node: Any = data
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        where = ".".join(keys[: i + 1])
        if isinstance(node, list):
            idx = _list_index(node, key, where)
            if last:
                node[idx] = _parse_value(raw, f"--set {where}")
            else:
                node = node[idx]
        elif isinstance(node, dict):
            if last:
                node[key] = _parse_value(raw, f"--set {where}")
            else:
                if node.get(key) is None:
                    node[key] = {}
                node = node[key]
        else:
            raise UserError(f"--set {path}: {where!r} is not a mapping or list")


def _list_index(node: list, key: str, where: str) -> int:
    if key.lstrip("-").isdigit():
        idx = int(key)
        if not -len(node) <= idx < len(node):
            raise UserError(f"--set {where}: index out of range (list has {len(node)} items)")
        return idx
    for idx, item in enumerate(node):
        if isinstance(item, dict) and item.get("name") == key:
            return idx
    raise UserError(f"--set {where}: no item named {key!r}")


def format_validation_error(source: str, err: ValidationError) -> str:
    """One line: file, field path, what was expected (and how many more errors)."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not _is_union_tag(p)) or "(top level)"
    msg = first["msg"]
    if first["type"] == "value_error":
        msg = msg.removeprefix("Value error, ")
        if loc == "(top level)":  # a whole-scenario check: its message names the field
            return f"{source}: {msg}"
    if first["type"] == "extra_forbidden":
        msg = "unknown field (not part of the schema)"
    elif first["type"] == "missing":
        msg = "required field is missing"
    if "input" in first and first["type"] not in ("missing", "extra_forbidden"):
        msg += f" (got {_shown(first['input'])})"
    more = len(err.errors()) - 1
    suffix = f" [+{more} more error{'s' if more > 1 else ''}]" if more else ""
    return f"{source}: {loc}: {msg}{suffix}"


def _shown(value: Any, width: int = 60) -> str:
    """A short repr of a bad value (a huge integer's repr itself would fail)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    try:
        shown = repr(value)
    except (ValueError, RecursionError):
        return f"a {type(value).__name__}"
    return shown if len(shown) <= width else shown[: width - 3] + "..."


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the discriminator value (e.g. 'repeated_2x2', 'llm') into the error path.
    return part in _KINDS or part in GROUP_TAGS


def validate_scenario(data: Any, source: str = "<scenario>") -> Scenario:
    """Validate raw data into a Scenario, raising UserError on any problem."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise UserError(format_validation_error(source, err)) from None


def load_scenario(
    path: str | Path,
    overrides: list[str] | None = None,
    *,
    seed: int | None = None,
    backend: str | None = None,
    model: str | None = None,
) -> Scenario:
    """Read a scenario YAML, apply `--set` overrides, `--seed`, `--backend`, `--model`."""
    path = Path(path)
    data = safe_load(read_scenario_text(path), str(path))
    return resolve(data, str(path), overrides, seed=seed, backend=backend, model=model)


def resolve(
    data: Any,
    source: str,
    overrides: list[str] | None = None,
    *,
    seed: int | None = None,
    backend: str | None = None,
    model: str | None = None,
) -> Scenario:
    """Apply command-line changes to raw scenario data and validate it."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping at the top level")
    data = copy.deepcopy(data)
    for assignment in overrides or []:
        apply_override(data, assignment)
    if seed is not None:
        data["seed"] = seed
    # --backend / --model swap the engine of every LLM group, not only the default.
    for field, value in (("kind", backend), ("model", model)):
        if value is None:
            continue
        data.setdefault("backend", {})
        if not isinstance(data["backend"], dict):
            raise UserError(f"{source}: backend: expected a mapping")
        data["backend"][field] = value
        population = data.get("population")
        groups = population.get("groups") if isinstance(population, dict) else None
        for group in groups if isinstance(groups, list) else []:
            if isinstance(group, dict) and isinstance(group.get("backend"), dict):
                group["backend"][field] = value
            if field == "model" and isinstance(group, dict) and "model" in group:
                group["model"] = value
    return validate_scenario(data, source)
