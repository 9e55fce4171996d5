"""The scenario schema: what a researcher writes in YAML, validated once at the edge.

Unknown keys are errors. Loading a bad file raises `UserError` with one line that
names the file, the field path and what was expected.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from society.errors import UserError

BackendKind = Literal["llamacpp", "openai", "vllm", "replay", "fake"]


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, not ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class BackendConfig(Strict):
    """Which LLM engine answers, and its settings. Unset fields keep the backend's defaults."""

    kind: BackendKind = "llamacpp"
    model: str = "smollm2-135m"
    base_url: str | list[str] | None = None  # openai
    api_key_env: str | None = None  # openai: the *name* of the env var, never the key
    max_concurrency: int | None = Field(None, ge=1)  # openai
    timeout_s: float | None = Field(None, gt=0)  # openai
    max_retries: int | None = Field(None, ge=0)  # openai
    run: str | None = None  # replay: the earlier run directory
    n_ctx: int | None = Field(None, ge=256)  # llamacpp
    n_threads: int | None = Field(None, ge=1)  # llamacpp
    enforce_eager: bool | None = None  # vllm
    max_model_len: int | None = Field(None, ge=256)  # vllm
    options: dict[str, Any] = Field(default_factory=dict)  # anything else, passed through

    def backend_options(self) -> dict[str, Any]:
        """Keyword arguments for the backend's constructor (set fields only)."""
        skip = {"kind", "model", "options"}
        opts = {k: v for k, v in self.model_dump().items() if k not in skip and v is not None}
        opts.update(self.options)
        return opts

    def key(self) -> str:
        """Identity of the engine: groups with equal keys share one backend instance."""
        return self.model_dump_json()


class GroupConfig(Strict):
    """A group of identical agents in the population."""

    name: str = Field(min_length=1)
    count: int = Field(1, ge=1)
    kind: Literal["scripted", "llm"] = "scripted"
    strategy: str | dict[str, Any] | None = None  # scripted: name or {name: ..., params}
    backend: BackendConfig | None = None  # llm: defaults to the scenario's backend
    model: str | None = None  # llm: shorthand for backend.model
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int = Field(64, ge=1)
    persona: str | None = None
    memory: int | None = Field(None, ge=1)  # history window shown to LLM agents (None: all)
    predict_first: bool = False  # "predict then act" (social chain of thought)

    @model_validator(mode="after")
    def _check_kind(self) -> GroupConfig:
        if self.kind == "scripted" and self.strategy is None:
            raise ValueError(f"group {self.name!r}: a scripted group needs a 'strategy'")
        return self


class PopulationConfig(Strict):
    """The agent groups; agents get ids in group order."""

    groups: list[GroupConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> PopulationConfig:
        names = [g.name for g in self.groups]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"group names must be unique, repeated: {sorted(dup)}")
        return self

    @property
    def size(self) -> int:
        """Number of agents."""
        return sum(g.count for g in self.groups)


class NetworkConfig(Strict):
    """Who may meet whom (a networkx graph over the agents)."""

    kind: Literal["complete", "ring", "small_world", "scale_free", "grid", "edgelist"] = "complete"
    k: int = Field(4, ge=2)  # ring / small_world: neighbours per node
    p: float = Field(0.1, ge=0, le=1)  # small_world: rewiring probability
    m: int = Field(2, ge=1)  # scale_free: edges per new node
    rows: int | None = Field(None, ge=1)  # grid (default: near-square)
    path: str | None = None  # edgelist: file of "i j" lines


class MatchingConfig(Strict):
    """How pairs are formed each round."""

    # auto: round_robin on a complete network, otherwise along the network's edges.
    kind: Literal["auto", "round_robin", "random", "network"] = "auto"
    self_play: bool = False  # round_robin: each agent also plays a copy of itself


class Repeated2x2Config(Strict):
    """A finitely repeated 2x2 normal-form game (protocols §2)."""

    kind: Literal["repeated_2x2"] = "repeated_2x2"
    preset: str = "prisoners_dilemma"
    params: dict[str, float] = Field(default_factory=dict)  # preset parameters (e.g. R, T)
    payoffs: list[list[list[float]]] | None = None  # custom [[(p1,p2),(p1,p2)],[...]]
    ordinal: str | None = None  # name of one of the 144 ordinal games instead of a preset
    rounds: int = Field(10, ge=1)
    noise: float = Field(0.0, ge=0, le=1)
    continuation: float | None = Field(None, gt=0, le=1)
    labels: tuple[str, str] = ("J", "F")
    shuffle_options: bool = False
    # Option index recorded for an LLM reply that stays invalid after one repair
    # (default 1, "defect": a broken reply is never counted as cooperation).
    fallback: int = Field(1, ge=0, le=1)
    # Whether LLM agents are told how many rounds a match lasts.
    reveal_rounds: bool = True


class DonorConfig(Strict):
    """The iterated donor game of protocols §1 (one generation plays `games_per_generation`)."""

    kind: Literal["donor"] = "donor"
    endowment: float = Field(10, gt=0)
    multiplier: float = Field(2.0, gt=0)
    rounds: int = Field(12, ge=1)
    trace_depth: int = Field(3, ge=0)
    games_per_generation: int = Field(2, ge=1)
    punishment: bool = False
    punishment_cost: float = Field(1.0, gt=0)
    punishment_fine: float = Field(2.0, gt=0)
    no_repeat: Literal["ordered", "unordered"] = "ordered"
    reveal_rounds: bool = False  # the paper does not tell agents how many rounds there are
    # A donor holding nothing can only give 0: by default it is not asked and its decision
    # is recorded with source 'forced'. True asks it anyway (the paper's agents were
    # presumably asked every round (unverified)).
    ask_when_empty: bool = False
    # LLM donors: token budgets of the strategy reply (free text) and of the donation
    # answer (JSON: brief reasoning of at most `reasoning_chars` characters, then amount).
    strategy_max_tokens: int = Field(256, ge=16)
    donation_max_tokens: int = Field(160, ge=16)
    reasoning_chars: int = Field(300, ge=0)


GameConfig = Annotated[Repeated2x2Config | DonorConfig, Field(discriminator="kind")]


class EvolutionConfig(Strict):
    """Selection and inheritance between generations."""

    generations: int = Field(1, ge=1)
    survivors: float = Field(0.5, gt=0, le=1)  # fraction kept by fitness
    selection: str = "top_fraction"
    inheritance: str = "advice"


class OutputConfig(Strict):
    """Where runs are written."""

    dir: str = "runs"


class Scenario(Strict):
    """A whole experiment: population, network, game, evolution, prompts, output."""

    name: str = Field(min_length=1)
    description: str = ""
    seed: int = 0
    backend: BackendConfig = Field(default_factory=BackendConfig)
    population: PopulationConfig
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    matching: MatchingConfig = Field(default_factory=MatchingConfig)
    game: GameConfig
    evolution: EvolutionConfig = Field(default_factory=EvolutionConfig)
    prompts: dict[str, str] = Field(default_factory=dict)
    output: OutputConfig = Field(default_factory=OutputConfig)

    def group_backend(self, group: GroupConfig) -> BackendConfig:
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
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# -- loading ------------------------------------------------------------------
def _parse_value(text: str) -> Any:
    """A --set value: YAML scalar/list syntax (`3`, `1.5`, `true`, `[a, b]`, `null`)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


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
                node[idx] = _parse_value(raw)
            else:
                node = node[idx]
        elif isinstance(node, dict):
            if last:
                node[key] = _parse_value(raw)
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
    if first["type"] == "extra_forbidden":
        msg = "unknown field (not part of the schema)"
    elif first["type"] == "missing":
        msg = "required field is missing"
    if "input" in first and first["type"] not in ("missing", "extra_forbidden"):
        shown = repr(first["input"])
        msg += f" (got {shown[:60]})"
    more = len(err.errors()) - 1
    suffix = f" [+{more} more error{'s' if more > 1 else ''}]" if more else ""
    return f"{source}: {loc}: {msg}{suffix}"


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the discriminator value (e.g. 'repeated_2x2') into the error path.
    return part in ("repeated_2x2", "donor")


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
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"{path}: cannot read scenario file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}: invalid YAML at {where}: {problem}") from None
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
        for group in data.get("population", {}).get("groups", []) or []:
            if isinstance(group, dict) and isinstance(group.get("backend"), dict):
                group["backend"][field] = value
            if field == "model" and isinstance(group, dict) and "model" in group:
                group["model"] = value
    return validate_scenario(data, source)
