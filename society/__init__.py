"""society: a simulator of LLM agent societies.

The runtime: scenario schema, event loop, population and network, matching,
evolution, LLM backends, run store, checkpoint/resume, replay and the CLI.

The Python front door (as ``vllm.LLM`` is vLLM's)::

    import society
    result = society.run("scenarios/ipd_tournament.yaml", out="runs/t1",
                         overrides=["game.rounds=50"])
    society.resume("runs/t1")          # a killed or stopped run continues

``backends=`` injects backend instances (one for every LLM group, or a mapping by
group name or backend key) instead of starting the ones the scenario names.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from society.runner import Backends, RunResult
    from society.scenario import Scenario

__all__ = ["__version__", "load_scenario", "resume", "run"]


def load_scenario(
    path: str | Path,
    overrides: list[str] | None = None,
    *,
    seed: int | None = None,
    backend: str | None = None,
    model: str | None = None,
) -> Scenario:
    """Read and validate a scenario YAML (``overrides`` as ``"a.b=value"`` strings)."""
    from society.scenario import load_scenario as _load

    return _load(path, overrides, seed=seed, backend=backend, model=model)


def run(
    scenario: str | Path | Scenario | dict[str, Any],
    out: str | Path | None = None,
    *,
    overrides: list[str] | None = None,
    seed: int | None = None,
    backends: Backends = None,
    quiet: bool = True,
) -> RunResult:
    """Play a scenario (a path, a mapping of scenario data, or a `Scenario`) to the end.

    Returns the `RunResult` (``run_dir``, ``steps``, ``decisions``, ``wall_s``, ``status``);
    read the run with ``analysis.load_run(result.run_dir)``.
    """
    from society.runner import start_run
    from society.scenario import Scenario, resolve

    if isinstance(scenario, Scenario):
        if overrides or seed is not None:
            data = scenario.model_dump(mode="json")
            scenario = resolve(data, scenario.name, overrides, seed=seed)
    elif isinstance(scenario, dict):
        scenario = resolve(scenario, "<scenario>", overrides, seed=seed)
    else:
        scenario = load_scenario(scenario, overrides, seed=seed)
    return start_run(scenario, out, quiet=quiet, backends=backends)


def resume(run_dir: str | Path, *, backends: Backends = None, quiet: bool = True) -> RunResult:
    """Continue a killed or stopped run from its last committed step."""
    from society.runner import resume_run

    return resume_run(run_dir, quiet=quiet, backends=backends)
