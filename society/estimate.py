"""The size of a run, estimated from its scenario before any work starts.

`estimate` gives the run's steps, decisions, LLM calls, prompt and completion tokens (and
their cost where the backend sets a price per 1,000 tokens), peak memory, store size and
wall time; `check` refuses a run beyond the limits (``run.limits``, the environment or a
laptop's defaults) with one line that gives the estimate and the flag to go ahead
(``--allow-large``); `preflight` does both and builds the run's engine, so that a bad
scenario is refused, one line, before any file exists.

How: first a bound from the population and the network alone (an Engine is never built
for a population that could not fit in memory), then the game's own estimate hook
(`GameKind.estimate`) or the generic one: a fresh game of the engine's setup, probed for
its steps (``total_steps``) and its first step's turns, whose LLM prompts are rendered to
count their characters (about four per token). The per-row and per-turn sizes below were
measured on shipped scenarios (`society run`, SQLite file size and peak RSS): the
estimate is a rough figure (within a factor of about two), not a bound.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from society.config import LLMGroup
from society.errors import UserError

if TYPE_CHECKING:
    from society.engine import Engine
    from society.scenario import Scenario

__all__ = ["Estimate", "Limits", "Size", "check", "estimate", "limits", "preflight"]

# -- measured constants (society run of shipped scenarios, scaled up; see module doc) ------
BASE_MEMORY = 80e6  # the interpreter, numpy, networkx, pydantic: a tiny run's peak RSS
MEMORY_PER_AGENT = 2_000.0  # a slot, its policy binding, its rows in the state
MEMORY_PER_EDGE = 300.0  # a networkx edge (both adjacency entries)
MEMORY_PER_TURN = 1_300.0  # a step's turn, action, decision and event rows (ipd: 1.3 kB)
STORE_BASE = 40e3  # an empty store's tables and indexes
#: Store bytes per decision row, by game (with its events and checkpoints); others: DEFAULT.
STORE_PER_DECISION = {
    "repeated_2x2": 65.0,
    "travelers_dilemma": 110.0,
    "donor": 450.0,
    "commons": 600.0,
    "marketplace": 750.0,
    "atp_diffusion": 250.0,
    "atp_exploration": 250.0,
}
STORE_PER_DECISION_DEFAULT = 500.0
STORE_PER_CALL = 300.0  # an llm_calls row beside its prompt and reply text
CHARS_PER_TOKEN = 4.0
SCRIPTED_DECISIONS_PER_S = 1e5  # the engine's scripted rate (ipd tournament: 1.1-1.6e5/s)
#: Seconds per LLM call: fixed part and per completion token, by backend (rough figures:
#: the embedded 135M model on 2 CPU cores; a served model; an HTTP API at its concurrency).
CALL_SECONDS = {
    "fake": (2e-4, 0.0),
    "replay": (5e-4, 0.0),
    "llamacpp": (0.05, 1 / 40),
    "vllm": (0.002, 1 / 2000),
    "openai": (0.3, 1 / 50),
}
PROBE_PROMPTS = 16  # LLM prompts rendered per estimate (their mean length is used)
DEFAULT_STEPS = 100  # steps assumed for a game that does not know its length


@dataclass(frozen=True)
class Size:
    """What a game's estimate hook may say of a run (unset: the generic estimate's)."""

    steps: int | None = None  # steps of one generation
    turns_per_step: float | None = None  # mean decisions of a step
    peak_turns: int | None = None  # most decisions of one step
    llm_share: float | None = None  # fraction of decisions made by LLM agents
    prompt_chars: float | None = None  # mean characters of an LLM prompt
    store_per_decision: float | None = None  # store bytes per decision row


@dataclass(frozen=True)
class Limits:
    """The sizes beyond which a run is refused (each None: no limit)."""

    max_decisions: float | None = 1e8
    max_hours: float | None = 24.0
    max_memory_bytes: float | None = None
    max_store_bytes: float | None = None
    max_cost: float | None = None
    sources: dict[str, str] = field(default_factory=dict, compare=False)  # where each came from


@dataclass(frozen=True)
class Estimate:
    """A run's size, estimated from its scenario."""

    agents: int
    edges: int
    steps: int
    decisions: int
    peak_turns: int
    llm_calls: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    memory_bytes: float
    store_bytes: float
    wall_s: float
    has_llm: bool
    notes: tuple[str, ...] = ()
    bound_only: bool = False  # from the population alone: decisions and steps at least
    steps_known: bool = True  # False: the game does not know its length (steps assumed)

    def summary(self) -> str:
        """The estimate on one line."""
        least = "at least " if self.bound_only else ""
        parts = [f"{_n(self.agents)} agents", f"{least}{_n(self.decisions)} decisions"]
        if not self.bound_only:
            parts.insert(1, f"{_n(self.steps)} steps")
        if self.has_llm:
            parts += [
                f"{_n(self.llm_calls)} LLM calls",
                f"{_n(self.prompt_tokens)} prompt + {_n(self.completion_tokens)} completion tokens",
            ]
            if self.cost is not None:
                parts.append(f"cost {self.cost:.4g}")
        parts += [
            f"memory {_bytes(self.memory_bytes)}",
            f"store {_bytes(self.store_bytes)}",
            f"time {_duration(self.wall_s)}",
        ]
        return ", ".join(parts)

    def lines(self) -> list[str]:
        """The estimate as a small table (``society run --dry-run``)."""
        rows = [
            ("agents", _n(self.agents)),
            ("network edges", _n(self.edges)),
            ("steps", _n(self.steps)),
            ("decisions", _n(self.decisions)),
            ("largest step", f"{_n(self.peak_turns)} decisions"),
            ("LLM calls", _n(self.llm_calls)),
            ("prompt tokens", _n(self.prompt_tokens)),
            ("completion tokens", f"{_n(self.completion_tokens)} (at most)"),
            ("cost", "no price set" if self.cost is None else f"{self.cost:.4g}"),
            ("memory", _bytes(self.memory_bytes)),
            ("store", _bytes(self.store_bytes)),
            ("wall time", _duration(self.wall_s)),
        ]
        out = [f"{k:<18} {v}" for k, v in rows]
        out += [f"note: {n}" for n in self.notes]
        return out

    def over(self, lim: Limits) -> list[str]:
        """What exceeds the limits, one phrase each (empty: the run fits)."""
        out = []
        checks = [
            ("decisions", self.decisions, lim.max_decisions, _n),
            ("memory", self.memory_bytes, lim.max_memory_bytes, _bytes),
            ("store", self.store_bytes, lim.max_store_bytes, _bytes),
            ("cost", self.cost, lim.max_cost, lambda v: f"{v:.4g}"),
        ]
        if self.has_llm:
            hours = None if lim.max_hours is None else lim.max_hours * 3600
            checks.append(("time", self.wall_s, hours, _duration))
        for name, value, limit, fmt in checks:
            if value is not None and limit is not None and value > limit:
                src = lim.sources.get(name, "default")
                out.append(f"{name} {fmt(value)} > {fmt(limit)} ({src})")
        return out


# -- limits ----------------------------------------------------------------------------------
_ENV = {
    "decisions": ("SOCIETY_MAX_DECISIONS", 1.0),
    "time": ("SOCIETY_MAX_HOURS", 1.0),
    "memory": ("SOCIETY_MAX_MEMORY_GB", 1e9),
    "store": ("SOCIETY_MAX_STORE_GB", 1e9),
    "cost": ("SOCIETY_MAX_COST", 1.0),
}


def _ram_bytes() -> float | None:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return None


def _free_disk(path: Path) -> float | None:
    for p in [path, *path.absolute().parents]:  # the nearest directory that exists
        if p.is_dir():
            try:
                return float(shutil.disk_usage(p).free)
            except OSError:
                return None
    return None


def limits(scenario: Scenario, run_dir: str | Path | None = None) -> Limits:
    """The limits in force: the scenario's ``run.limits``, else the environment, else the
    defaults (1e8 decisions, 24 hours with LLM groups, half the RAM, the free disk)."""
    cfg = scenario.run.limits
    given = {
        "decisions": cfg.max_decisions,
        "time": cfg.max_hours,
        "memory": None if cfg.max_memory_gb is None else cfg.max_memory_gb * 1e9,
        "store": None if cfg.max_store_gb is None else cfg.max_store_gb * 1e9,
        "cost": cfg.max_cost,
    }
    ram = _ram_bytes()
    default = {
        "decisions": 1e8,
        "time": 24.0,
        "memory": None if ram is None else ram / 2,
        "store": _free_disk(Path(run_dir) if run_dir else Path(scenario.output.dir)),
        "cost": None,
    }
    values: dict[str, float | None] = {}
    sources: dict[str, str] = {}
    for name, value in given.items():
        var, scale = _ENV[name]
        key = "max_hours" if name == "time" else f"max_{name}"
        if value is not None:
            values[name], sources[name] = value, f"run.limits.{key}"
            if name in ("memory", "store"):
                sources[name] += "_gb"
        elif os.environ.get(var):
            try:
                values[name] = float(os.environ[var]) * scale
            except ValueError:
                raise UserError(f"{var}: expected a number, got {os.environ[var]!r}") from None
            if not values[name] > 0:  # type: ignore[operator]
                raise UserError(f"{var}: expected a positive number, got {os.environ[var]!r}")
            sources[name] = var
        else:
            values[name] = default[name]
            sources[name] = {
                "memory": "half the RAM",
                "store": "the free disk",
            }.get(name, "default")
    return Limits(
        max_decisions=values["decisions"],
        max_hours=values["time"],
        max_memory_bytes=values["memory"],
        max_store_bytes=values["store"],
        max_cost=values["cost"],
        sources=sources,
    )


# -- the estimate ----------------------------------------------------------------------------
def _edges(scenario: Scenario, n: int) -> int:
    """Edges of the network the game builds (0 for games without one)."""
    from society.registry import game_kind

    if "network" not in game_kind(scenario.game.kind).uses:
        return 0
    net = scenario.network
    if net.kind == "complete":
        return n * (n - 1) // 2
    if net.kind in ("ring", "small_world"):
        return n * min(net.k, max(n - 1, 0)) // 2
    if net.kind == "scale_free":
        return n * net.m
    if net.kind == "grid":
        return 2 * n
    return 4 * n  # an edgelist: not read here; a sparse guess


def _llm_groups(scenario: Scenario) -> list[LLMGroup]:
    return [g for g in scenario.population.groups if isinstance(g, LLMGroup)]


def _pre_bound(scenario: Scenario) -> Estimate:
    """The estimate from the population and the network alone (nothing built)."""
    n = scenario.population.size
    edges = _edges(scenario, n)
    generations = scenario.evolution.generations
    memory = BASE_MEMORY + n * MEMORY_PER_AGENT + edges * MEMORY_PER_EDGE
    return Estimate(
        agents=n, edges=edges, steps=generations, decisions=n * generations, peak_turns=n,
        llm_calls=0, prompt_tokens=0, completion_tokens=0, cost=None, memory_bytes=memory,
        store_bytes=STORE_BASE + n * generations * STORE_PER_DECISION_DEFAULT,
        wall_s=n * generations / SCRIPTED_DECISIONS_PER_S, has_llm=bool(_llm_groups(scenario)),
        notes=("from the population and network only (at least one decision per agent)",),
        bound_only=True,
    )  # fmt: skip


def _probe(engine: Engine) -> Size:
    """The generic estimate: a fresh game of the engine's setup (own generator copy), its
    length, its first step's turns, and the mean length of their rendered LLM prompts."""
    kind = engine.kind
    rng = copy.deepcopy(engine.rng)
    game = kind.new_game(engine.setup, rng)
    steps = game.total_steps()
    turns = game.pending(rng)
    llm = [t for t in turns if engine._is_llm[t[0]]]
    chars: list[int] = []
    for turn in llm[:PROBE_PROMPTS]:
        chars.append(_prompt_chars(engine, turn))
    share = len(llm) / len(turns) if turns else (1.0 if any(engine._is_llm) else 0.0)
    return Size(
        steps=steps,
        turns_per_step=float(len(turns)),
        peak_turns=len(turns),
        llm_share=share,
        prompt_chars=sum(chars) / len(chars) if chars else None,
    )


def pair_count(scenario: Scenario, n: int) -> int:
    """Pairs the scenario's matching forms each step (`society.matching`), from sizes."""
    m = scenario.matching
    kind = m.kind
    if kind == "auto":
        kind = "round_robin" if scenario.network.kind == "complete" else "network"
    if kind == "round_robin":
        return n * (n - 1) // 2 + (n if m.self_play else 0)
    if kind == "network":
        return _edges(scenario, n)
    return n // 2


def _prompt_chars(engine: Engine, turn: Any) -> int:
    """Characters of the first prompt an LLM turn sends (rendered by its policy)."""
    slot = turn[0]
    me = engine.member(slot)
    tags = {"agent": me.agent_id, "round": 0, "generation": 0}
    try:
        request = next(engine._policy[slot].answer(turn, me, tags))
    except Exception:  # noqa: BLE001 - an estimate: a policy that cannot render counts 0
        return 0
    return sum(len(m.get("content") or "") for m in request.messages)


def _template_chars(engine: Engine) -> float:
    """A prompt's length when none could be rendered: the game's templates, all of them."""
    templates = engine.setup.prompts.templates
    return float(sum(len(templates.get(k) or "") for k in engine.kind.prompts))


def _prices(scenario: Scenario, groups: list[LLMGroup]) -> tuple[float, float] | None:
    """Mean price per 1k prompt and completion tokens over the LLM groups (None: unset)."""
    prompt = completion = 0.0
    weight = 0
    for g in groups:
        cfg = scenario.group_backend(g)
        if cfg.price_per_1k_prompt_tokens is None and cfg.price_per_1k_completion_tokens is None:
            continue
        prompt += (cfg.price_per_1k_prompt_tokens or 0.0) * g.count
        completion += (cfg.price_per_1k_completion_tokens or 0.0) * g.count
        weight += g.count
    if not weight:
        return None
    return prompt / weight, completion / weight


def estimate(scenario: Scenario, engine: Engine | None = None) -> Estimate:
    """The run's size. Without ``engine`` (or when the population alone is too large to
    build one) only the population and network bound is given."""
    pre = _pre_bound(scenario)
    if engine is None:
        return pre
    from society.engine import Engine

    kind = engine.kind
    groups = _llm_groups(scenario)
    own = kind.estimate(engine.setup) if kind.estimate is not None else Size()
    notes: list[str] = []
    complete = None not in (own.steps, own.turns_per_step, own.peak_turns)
    if complete and not groups:
        size = own  # the game's figures suffice: no probe (a tournament's step is large)
    elif isinstance(engine, Engine):
        size = replace(_probe(engine), **{k: v for k, v in vars(own).items() if v is not None})
    else:
        size = own
        notes.append("a specialised engine: the game's own figures only")
    steps_per_game = size.steps
    if steps_per_game is None:
        rounds = getattr(scenario.game, "rounds", None)
        steps_per_game = rounds if isinstance(rounds, int) and rounds > 0 else DEFAULT_STEPS
        notes.append(f"the game does not know its length: {steps_per_game} steps assumed")
    generations = scenario.evolution.generations
    strategy = 1 if kind.strategy_step else 0
    steps = generations * (steps_per_game + strategy)
    per_step = size.turns_per_step or 0.0
    decisions = math.ceil(generations * steps_per_game * per_step)
    n_llm = sum(g.count for g in groups)
    llm_calls = math.ceil(decisions * (size.llm_share or 0.0)) + strategy * generations * n_llm
    prompt_chars = size.prompt_chars
    if prompt_chars is None and llm_calls:
        prompt_chars = _template_chars(engine)
        notes.append("prompt length from the game's templates (no prompt rendered)")
    prompt_tokens = math.ceil(llm_calls * (prompt_chars or 0.0) / CHARS_PER_TOKEN)
    max_tokens = max((g.max_tokens for g in groups), default=0)
    completion_tokens = llm_calls * max_tokens
    if llm_calls:
        notes.append(
            "prompt tokens: first-step prompts (~4 characters a token); later prompts "
            "carry history, so more; completion tokens: each call's max_tokens"
        )
    prices = _prices(scenario, groups)
    cost = None
    if prices is not None:
        cost = prompt_tokens / 1000 * prices[0] + completion_tokens / 1000 * prices[1]
    peak = max(size.peak_turns or 0, pre.agents if strategy else 0)
    memory = pre.memory_bytes + peak * MEMORY_PER_TURN
    per_row = size.store_per_decision or STORE_PER_DECISION.get(
        kind.kind, STORE_PER_DECISION_DEFAULT
    )
    completion_chars = completion_tokens * CHARS_PER_TOKEN / 4  # replies rarely fill max
    store = (
        STORE_BASE
        + decisions * per_row
        + llm_calls * STORE_PER_CALL
        + prompt_tokens * CHARS_PER_TOKEN
        + completion_chars
    )
    wall = (decisions - llm_calls) / SCRIPTED_DECISIONS_PER_S
    for g in groups:
        fixed, per_token = CALL_SECONDS.get(scenario.group_backend(g).kind, (0.3, 1 / 50))
        share = g.count / n_llm
        concurrency = scenario.group_backend(g).max_concurrency or 1
        wall += llm_calls * share * (fixed + g.max_tokens * per_token / 2) / concurrency
    return Estimate(
        agents=pre.agents, edges=pre.edges, steps=steps, decisions=decisions, peak_turns=peak,
        llm_calls=llm_calls, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
        cost=cost, memory_bytes=memory, store_bytes=store, wall_s=max(wall, 0.0),
        has_llm=bool(groups), notes=tuple(notes), steps_known=size.steps is not None,
    )  # fmt: skip


#: How to go ahead with a run refused for its size (`society run` and the Python door).
GO_AHEAD = "Pass --allow-large (allow_large=True) to go ahead, or raise run.limits"


def _refusal(
    scenario: Scenario, est: Estimate, over: list[str], go_ahead: str = GO_AHEAD
) -> UserError:
    return UserError(
        f"{scenario.name}: too large to run ({'; '.join(over)}); estimate: {est.summary()}. "
        + go_ahead
    )


def check(
    scenario: Scenario,
    engine: Engine | None = None,
    *,
    allow_large: bool = False,
    run_dir: str | Path | None = None,
) -> Estimate:
    """The estimate; a UserError (one line: the estimate and --allow-large) when it
    exceeds the limits and ``allow_large`` is not set."""
    est = estimate(scenario, engine)
    if not allow_large:
        over = est.over(limits(scenario, run_dir))
        if over:
            raise _refusal(scenario, est, over)
    return est


def preflight(
    scenario: Scenario,
    *,
    allow_large: bool = False,
    run_dir: str | Path | None = None,
    build: Callable[[Scenario], Engine] | None = None,
    go_ahead: str = GO_AHEAD,
) -> tuple[Engine, Estimate]:
    """Before any file exists: bound the run from its population, build its engine
    (which checks the game's options), estimate it, refuse it when too large.

    ``build`` makes the engine (default: the generic `Engine`); ``go_ahead`` ends a
    refusal (how the caller's user goes ahead). Any failure is a one-line
    UserError: an unexpected exception while building from the
    scenario is reported as such (with its type), never as a traceback.
    """
    from society.engine import Engine

    lim = limits(scenario, run_dir)
    pre = _pre_bound(scenario)
    over = [o for o in pre.over(lim) if not o.startswith("time")]
    if over and not allow_large:  # an engine this large could not even be built
        raise _refusal(scenario, pre, over, go_ahead)
    try:
        engine = (build or Engine)(scenario)
        est = estimate(scenario, engine)
    except (UserError, KeyboardInterrupt):
        raise
    except MemoryError:
        raise UserError(
            f"{scenario.name}: out of memory while building the run ({pre.summary()})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - user input must not end in a traceback
        raise UserError(unexpected(scenario.name, "checking the scenario", exc)) from None
    if not allow_large:
        over = est.over(lim)
        if over:
            raise _refusal(scenario, est, over, go_ahead)
    return engine, est


def unexpected(source: str, doing: str, exc: BaseException) -> str:
    """The one line of an unexpected exception met while reading user input."""
    text = " ".join(str(exc).split())[:200]
    return (
        f"{source}: unexpected error while {doing} ({type(exc).__name__}: {text}); "
        "this is a bug in society, please report it"
    )


# -- formatting ------------------------------------------------------------------------------
def _n(value: float) -> str:
    if value < 1e6:
        return f"{int(value):,}"
    return f"{value:.3g}"


def _bytes(value: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{int(value)} B"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2g} s"
    if seconds < 3600:
        return f"{seconds / 60:.3g} min"
    if seconds < 86400 * 3:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.3g} days"
