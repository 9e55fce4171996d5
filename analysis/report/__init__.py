"""Reports of a run: ``society analyze RUN`` (tables, plots, summary pages) and
``society show RUN`` (the text tables), both read from the run store alone.

``analyze`` writes into the report directory:

* ``*.csv``: one table per metric;
* ``*.png``: matplotlib figures (``analysis.plots``, Agg backend);
* ``summary.md`` and ``summary.html``: the key figures, each section's notes, the head
  of every table and the figures (embedded by relative path).

Layout: :mod:`.document` (the report and its rendering), :mod:`.generic` (opening a run,
the run-level figures, the overview and LLM-calls sections, score tables),
:mod:`.metrics` (tipping, drift, influence parts that games share), and one module per
game kind in :mod:`.sections`, found by the run's kind (store meta ``game``). A kind with
no module gets the generic report: the overview (decisions, agents) and the LLM calls.

A section that cannot be computed on this run (too short, no such events, a metric
failing) is skipped with a note in the summary rather than stopping the report. Every
metric is vectorised in pandas, so a run of a million decisions takes seconds. Every
figure is computed by one ``analysis`` function, shared by ``show``, the report and the
notebooks.
"""

from __future__ import annotations

import time
from pathlib import Path

from . import sections
from .document import Report, Section
from .generic import (
    ReportError,
    about_section,
    llm_section,
    open_run,
    overview_section,
    score_tables,
    summary_text,
)

__all__ = ["Report", "ReportError", "Section", "analyze", "show"]


def analyze(run_dir: str | Path, out: str | Path | None = None) -> Report:
    """Write tables, plots, ``summary.md`` and ``summary.html`` for a run; return the
    :class:`Report` (its directory is ``Report.out``).

    ``out`` defaults to ``RUN_DIR/report``. A missing or unreadable run, or a report
    directory that cannot be created, raises :class:`ReportError`.
    """
    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    run = open_run(run_dir)
    t_load = time.perf_counter() - t0
    base = run_dir if run_dir.is_dir() else run_dir.parent
    out = Path(out) if out is not None else base / "report"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"{out}: cannot create the report directory ({exc})") from None

    rep = Report(out, f"Run report: {run.label}")
    rep.timings["load_run"] = t_load
    overview_section(rep, run)
    module, why = sections.find(run.kind)
    if module is not None:
        module.report(rep, run)
    else:
        rep.section("Metrics").notes.append(why)
    llm_section(rep, run)
    about_section(rep, run_dir, time.perf_counter() - t0, t_load)
    rep.write()
    return rep


def show(run_dir: str | Path, top: int = 20) -> str:
    """The text ``society show`` prints: run-level figures, then the game's tables (its
    section module's ``show``; without one, the score tables when the run has payoffs).

    A missing or unreadable run raises :class:`ReportError`.
    """
    run = open_run(run_dir)
    parts = [f"run {run_dir}", *summary_text(run)]
    module, _ = sections.find(run.kind)
    text = ""
    if module is not None and callable(getattr(module, "show", None)):
        text = module.show(run, top)
    elif len(run.events) and (run.events["kind"] == "payoff").any():
        text = score_tables(run, top)
    if text:
        parts += ["", text]
    return "\n".join(parts)
