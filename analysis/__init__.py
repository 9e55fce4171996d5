"""Reading run stores and measuring cooperation, drift, tipping and convergence, and the
per-game metrics of the marketplace, the alignment-tipping testbeds and the commons.

The package reads only the run store (SQLite); it never imports the runtime. Plots live
in ``analysis.plots`` (imported on demand: it needs matplotlib); reports (``society
analyze`` and ``society show``) in ``analysis.report``.
"""

from . import atp, commons, convergence, cooperation, drift, llm, marketplace, tipping
from .run import Run, RunSet, load_run, load_runs
from .sweep import load_sweep, summarize_across

__all__ = [
    "Run",
    "RunSet",
    "atp",
    "commons",
    "convergence",
    "cooperation",
    "drift",
    "llm",
    "load_run",
    "load_runs",
    "load_sweep",
    "marketplace",
    "summarize_across",
    "tipping",
]
