"""Report sections per game kind: one module per kind, named after it.

A module ``NAME.py`` here is the section of the game kind ``NAME`` (the run store's meta
key ``game``). Adding a game's report is adding its module; nothing else changes. A
module provides

* ``report(rep: Report, run: Run) -> None``: add its sections, tables, figures and key
  figures to the report (between the generic "Run" overview and "LLM calls");
* optionally ``show(run: Run, top: int) -> str``: the game's text for ``society show``
  (after the run-level lines).

A kind without a module gets the generic report. The kind read from a store is only ever
matched against the modules found here (and must look like ``^[a-z0-9_]+$``): the text of
a store never chooses arbitrary code to import.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from types import ModuleType

__all__ = ["KIND_PATTERN", "find", "kinds"]

KIND_PATTERN = re.compile(r"^[a-z0-9_]+$")


def kinds() -> list[str]:
    """The game kinds that have a section module here, sorted."""
    return sorted(
        m.name for m in pkgutil.iter_modules(__path__) if not m.ispkg and KIND_PATTERN.match(m.name)
    )


def find(kind: str | None) -> tuple[ModuleType | None, str]:
    """The section module of ``kind`` and an empty note, or None and why there is none."""
    if not kind:
        return None, "the run store names no game kind: generic report only"
    if not isinstance(kind, str) or not KIND_PATTERN.match(kind):
        return None, f"game kind {kind!r} is not a valid kind name: generic report only"
    if kind not in kinds():
        return None, f"no report section for game kind '{kind}' yet: generic report only"
    mod = importlib.import_module(f"{__name__}.{kind}")
    if not callable(getattr(mod, "report", None)):
        return None, f"the section module of '{kind}' has no report(): generic report only"
    return mod, ""
