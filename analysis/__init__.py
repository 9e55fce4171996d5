"""Reading run stores and measuring cooperation, drift, tipping and convergence.

The package reads only the run store (SQLite); it never imports the runtime. Plots live
in ``analysis.plots`` (imported on demand: it needs matplotlib); reports (``society
analyze`` and ``society show``) in ``analysis.report``.
"""

from . import convergence, cooperation, drift, llm, tipping
from .run import Run, RunSet, load_run, load_runs, summarize_across

__all__ = [
    "Run",
    "RunSet",
    "convergence",
    "cooperation",
    "drift",
    "llm",
    "load_run",
    "load_runs",
    "summarize_across",
    "tipping",
]
