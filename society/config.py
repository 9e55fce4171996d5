"""The parts of a scenario that every game shares: backends, agent groups, network,
matching, evolution and output. Each game's own options live in its plug-in
(`society.plugins`); `society.scenario` assembles the whole schema from both.

Every field carries a description (`society schema` lists them). Unknown keys are errors.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

BackendKind = Literal["llamacpp", "openai", "vllm", "replay", "fake"]


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, not ignored."""

    # inf and nan are never a meaningful count, rate or price: refused everywhere.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


#: The most agents of one group, rounds of a game, etc. that a scenario may ask for: far
#: beyond any run (the size estimate refuses much less, unless --allow-large), but small
#: enough that every count fits a 64-bit integer column and numpy's arithmetic.
MAX_COUNT = 10**12
#: The largest magnitude of an amount, a capacity, a multiplier or a price (far from float
#: overflow however it is multiplied over a run).
MAX_VALUE = 1e12
#: Seeds: any integer in [0, 2**63 - 1] (numpy's generators take no negative seed; the
#: store keeps the seed in a 64-bit column).
MAX_SEED = 2**63 - 1
#: The longest free text of a scenario field (a prompt override, a persona, a name...).
MAX_TEXT = 100_000


class BackendConfig(Strict):
    """Which LLM engine answers, and its settings. Unset fields keep the backend's defaults."""

    kind: BackendKind = Field("llamacpp", description="LLM engine")
    model: str = Field("smollm2-135m", description="model name or path")
    base_url: str | list[str] | None = Field(None, description="openai: server URL(s)")
    api_key_env: str | None = Field(
        None, description="openai: the *name* of the environment variable holding the key"
    )
    max_concurrency: int | None = Field(
        None, ge=1, le=10_000, description="openai: requests in flight"
    )
    timeout_s: float | None = Field(
        None, gt=0, le=86_400, description="openai: per-request timeout"
    )
    max_retries: int | None = Field(None, ge=0, le=100, description="openai: retries per request")
    backoff_s: float | None = Field(
        None, ge=0, le=3600, description="openai: first retry's backoff (doubles per retry)"
    )
    cooldown_s: float | None = Field(
        None, ge=0, le=86_400, description="openai: how long a failed endpoint gets no requests"
    )
    retry_after_cap_s: float | None = Field(
        None, ge=0, le=86_400, description="openai: the longest Retry-After honoured"
    )
    run: str | None = Field(None, description="replay: the earlier run directory")
    n_ctx: int | None = Field(None, ge=256, le=1_048_576, description="llamacpp: context length")
    n_threads: int | None = Field(None, ge=1, le=1024, description="llamacpp: CPU threads")
    enforce_eager: bool | None = Field(None, description="vllm: skip CUDA-graph capture")
    max_model_len: int | None = Field(
        None, ge=256, le=1_048_576, description="vllm: context length"
    )
    price_per_1k_prompt_tokens: float | None = Field(
        None, ge=0, le=1e6, description="price of 1,000 prompt tokens (the size estimate's cost)"
    )
    price_per_1k_completion_tokens: float | None = Field(
        None, ge=0, le=1e6, description="price of 1,000 completion tokens (the estimate's cost)"
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="anything else, passed to the backend as is"
    )

    def backend_options(self) -> dict[str, Any]:
        """Keyword arguments for the backend's constructor (set fields only)."""
        skip = {"kind", "model", "options", *PRICE_FIELDS}
        opts = {k: v for k, v in self.model_dump().items() if k not in skip and v is not None}
        opts.update(self.options)
        return opts

    def key(self) -> str:
        """Identity of the engine: groups with equal keys share one backend instance."""
        return self.model_dump_json()


PRICE_FIELDS = ("price_per_1k_prompt_tokens", "price_per_1k_completion_tokens")


class ScriptedGroup(Strict):
    """A group of agents that follow one scripted policy of the game."""

    kind: Literal["scripted"] = Field("scripted", description="scripted policy")
    name: str = Field(min_length=1, description="group name (unique)")
    count: int = Field(1, ge=1, le=MAX_COUNT, description="number of agents")
    strategy: str | dict[str, Any] = Field(
        description="the game's scripted policy: a name, or {name: ..., params} "
        "(parameters inline or under 'params')"
    )


class LLMGroup(Strict):
    """A group of agents decided by an LLM."""

    kind: Literal["llm"] = Field("llm", description="decided by an LLM")
    name: str = Field(min_length=1, description="group name (unique)")
    count: int = Field(1, ge=1, le=MAX_COUNT, description="number of agents")
    backend: BackendConfig | None = Field(
        None, description="engine of this group (default: the scenario's backend)"
    )
    model: str | None = Field(None, description="shorthand for backend.model")
    temperature: float = Field(0.7, ge=0, le=2, description="sampling temperature")
    max_tokens: int = Field(64, ge=1, le=1_000_000, description="token budget of one answer")
    persona: str | None = Field(
        None, max_length=MAX_TEXT, description="persona text put before the rules"
    )


def _group_kind(value: Any) -> str:
    # A group without `kind` is scripted (the shorter form of the common case).
    if isinstance(value, dict):
        return str(value.get("kind", "scripted"))
    return str(getattr(value, "kind", "scripted"))


GroupConfig = Annotated[
    Annotated[ScriptedGroup, Tag("scripted")] | Annotated[LLMGroup, Tag("llm")],
    Discriminator(_group_kind),
]
GROUP_TAGS = ("scripted", "llm")


class PopulationConfig(Strict):
    """The agent groups; agents get ids in group order."""

    groups: list[GroupConfig] = Field(min_length=1, description="the agent groups")

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

    kind: Literal["complete", "ring", "small_world", "scale_free", "grid", "edgelist"] = Field(
        "complete", description="graph family"
    )
    k: int = Field(4, ge=2, le=MAX_COUNT, description="ring / small_world: neighbours per node")
    p: float = Field(0.1, ge=0, le=1, description="small_world: rewiring probability")
    m: int = Field(2, ge=1, le=MAX_COUNT, description="scale_free: edges per new node")
    rows: int | None = Field(
        None, ge=1, le=MAX_COUNT, description="grid: rows (default near-square)"
    )
    path: str | None = Field(None, description='edgelist: file of "i j" lines')


class MatchingConfig(Strict):
    """How pairs are formed each round."""

    kind: Literal["auto", "round_robin", "random", "network"] = Field(
        "auto", description="auto: round_robin on a complete network, else the network's edges"
    )
    self_play: bool = Field(False, description="round_robin: each agent also plays itself")


class EvolutionConfig(Strict):
    """Generations around the game: selection, inheritance and mutation between them."""

    generations: int = Field(1, ge=1, le=MAX_COUNT, description="number of generations")
    survivors: float = Field(
        0.5, gt=0, le=1, description="top_fraction / fitness_proportional: fraction kept"
    )
    selection: str = Field(
        "top_fraction",
        description="top_fraction, fitness_proportional, fermi (pairwise imitation) or moran",
    )
    inheritance: str = Field(
        "advice", description="advice (LLM agents write from survivors' strategies) or copy"
    )
    beta: float = Field(1.0, ge=0, le=1e6, description="fermi: intensity of selection")
    mutation: float = Field(
        0.0, ge=0, le=1, description="scripted newcomers: probability of a random policy"
    )
    mutation_pool: list[str | dict[str, Any]] = Field(
        default_factory=list,
        description="policies a mutant draws from (default: the scripted groups' policies)",
    )


class LimitsConfig(Strict):
    """Sizes a run may reach before it is refused up front (`society run --allow-large`
    goes ahead anyway). Unset: the environment (SOCIETY_MAX_DECISIONS, SOCIETY_MAX_HOURS,
    SOCIETY_MAX_MEMORY_GB, SOCIETY_MAX_STORE_GB), else a laptop's defaults."""

    max_decisions: float | None = Field(
        None, gt=0, description="most decisions of the whole run (default 1e8)"
    )
    max_hours: float | None = Field(
        None, gt=0, description="longest estimated wall time of a run with LLM groups (24)"
    )
    max_memory_gb: float | None = Field(
        None, gt=0, description="most memory the run may take (default: half the RAM)"
    )
    max_store_gb: float | None = Field(
        None, gt=0, description="largest run store (default: the free disk space)"
    )
    max_cost: float | None = Field(
        None, ge=0, description="highest estimated LLM cost, where prices are set (no limit)"
    )


class RunConfig(Strict):
    """How the run itself is carried out (not what is simulated)."""

    limits: LimitsConfig = Field(
        default_factory=LimitsConfig, description="sizes refused up front (see --allow-large)"
    )
    stepping: Literal["lockstep", "out_of_order"] = Field(
        "lockstep",
        description="lockstep: every instance of a game plays each step together; "
        "out_of_order: the independent instances a game declares (a tournament's matches) "
        "each advance as soon as their own replies arrive from a server backend (same store)",
    )
    engine: Literal["auto", "generic", "vector"] = Field(
        "auto",
        description="auto: the vectorised scripted engine (society.vector) when the run "
        "qualifies (repeated 2x2, fixed matches, one generation, memory-one scripted "
        "strategies), else the generic one; generic / vector: that engine (same store)",
    )


class OutputConfig(Strict):
    """Where runs are written."""

    dir: str = Field("runs", description="parent directory of run directories")


class GameConfigBase(Strict):
    """Base of every game's config model; each plug-in's model narrows `kind` to its own
    name (a literal: the scenario's game union is discriminated by it) and adds options."""

    kind: str
