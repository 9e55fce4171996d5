"""The report document: key figures, sections of notes, tables and images, written as
``summary.md`` and ``summary.html`` (agent text is escaped in HTML, ``|`` in Markdown).

Tables go to ``NAME.csv`` and figures to ``NAME.png`` in the report directory as they are
added; the summary pages show the head of each table and link the files.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["HEAD", "Report", "Section", "fmt", "guarded", "short"]

HEAD = 10  # rows of each table shown in the summary


@dataclass
class Section:
    """One titled part of the report: notes, tables (title, CSV file, frame), images."""

    title: str
    notes: list[str] = field(default_factory=list)
    tables: list[tuple[str, str, pd.DataFrame]] = field(default_factory=list)  # title, file, df
    images: list[tuple[str, str]] = field(default_factory=list)  # title, file


class Report:
    """Collects key figures, tables, figures and notes, then writes the summary pages.

    ``out`` is the report directory; ``summary_md`` and ``summary_html`` the pages that
    :meth:`write` produces there; ``timings`` the seconds each metric took.
    """

    def __init__(self, out: Path, title: str) -> None:
        self.out = out
        self.title = title
        self.key: list[tuple[str, str]] = []
        self.sections: list[Section] = []
        self.timings: dict[str, float] = {}

    @property
    def summary_md(self) -> Path:
        """``out/summary.md``."""
        return self.out / "summary.md"

    @property
    def summary_html(self) -> Path:
        """``out/summary.html``."""
        return self.out / "summary.html"

    def section(self, title: str) -> Section:
        """A new section, appended after the ones already there."""
        s = Section(title)
        self.sections.append(s)
        return s

    def figure(self, key: str, value: Any) -> None:
        """A key figure (shown at the top of the summary)."""
        self.key.append((key, fmt(value)))

    def table(self, sec: Section, name: str, title: str, df: pd.DataFrame) -> pd.DataFrame:
        """Write ``df`` to ``NAME.csv`` and list it in ``sec``; returns the written frame."""
        df = _printable(df)
        df.to_csv(self.out / f"{name}.csv", index=False)
        sec.tables.append((title, f"{name}.csv", df))
        return df

    def image(self, sec: Section, name: str, title: str, fig: Any) -> None:
        """Save a matplotlib figure to ``NAME.png`` and show it in ``sec``."""
        fig.savefig(self.out / f"{name}.png", dpi=90)
        sec.images.append((title, f"{name}.png"))

    # -- rendering -------------------------------------------------------------------
    def markdown(self) -> str:
        """The summary as Markdown."""
        lines = [f"# {self.title}", ""]
        if self.key:
            lines += ["## Key figures", "", "| figure | value |", "|---|---|"]
            lines += [f"| {_md_cell(k)} | {_md_cell(v)} |" for k, v in self.key]
            lines.append("")
        for s in self.sections:
            lines += [f"## {s.title}", ""]
            lines += [f"- {n}" for n in s.notes]
            if s.notes:
                lines.append("")
            for title, file, df in s.tables:
                more = f", first {HEAD} of {len(df)} rows" if len(df) > HEAD else ""
                lines += [f"**{title}** ([{file}]({file}){more})", "", _md_table(df.head(HEAD)), ""]
            for title, file in s.images:
                lines += [f"![{title}]({file})", ""]
        return "\n".join(lines).rstrip() + "\n"

    def html(self) -> str:
        """The summary as one HTML page (every text escaped)."""
        e = html.escape
        parts = [
            "<!doctype html>",
            '<html><head><meta charset="utf-8">',
            f"<title>{e(self.title)}</title>",
            "<style>body{font-family:sans-serif;max-width:1000px;margin:auto;padding:1em}"
            "table{border-collapse:collapse;font-size:90%;margin:.5em 0}"
            "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
            "th{background:#eee}img{max-width:100%;margin:.5em 0}"
            ".note{color:#444}</style>",
            "</head><body>",
            f"<h1>{e(self.title)}</h1>",
        ]
        if self.key:
            parts.append("<h2>Key figures</h2><table>")
            parts += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in self.key]
            parts.append("</table>")
        for s in self.sections:
            parts.append(f"<h2>{e(s.title)}</h2>")
            if s.notes:
                parts.append("<ul>" + "".join(f'<li class="note">{e(n)}</li>' for n in s.notes))
                parts.append("</ul>")
            for title, file, df in s.tables:
                more = f", first {HEAD} of {len(df)} rows" if len(df) > HEAD else ""
                parts.append(
                    f'<p><b>{e(title)}</b> (<a href="{e(file)}">{e(file)}</a>{e(more)})</p>'
                )
                parts.append(_html_table(df.head(HEAD)))
            for title, file in s.images:
                parts.append(f'<figure><img src="{e(file)}" alt="{e(title)}">')
                parts.append(f"<figcaption>{e(title)}</figcaption></figure>")
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"

    def write(self) -> None:
        """Write ``summary.md`` and ``summary.html`` into ``out``."""
        self.summary_md.write_text(self.markdown())
        self.summary_html.write_text(self.html())

    def __repr__(self) -> str:
        return f"Report({self.out!s}: {len(self.sections)} sections, {len(self.key)} figures)"


def fmt(v: Any) -> str:
    """A value as the summary shows it: yes/no, integers, 4 significant digits, n/a."""
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        v = float(v)
        if math.isnan(v):
            return "n/a"
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    if v is None or v is pd.NA:
        return ""
    return str(v)


def _printable(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with tuple cells as text and a clean index, ready for CSV and rendering."""
    df = df.reset_index(drop=True).copy()
    for c in df.columns:
        if df[c].dtype == object and len(df) and isinstance(df[c].iloc[0], tuple):
            df[c] = df[c].map(lambda t: " ".join(str(x) for x in t))
    return df


def short(v: Any, n: int = 60) -> str:
    """:func:`fmt`, cut to ``n`` characters with an ellipsis."""
    s = fmt(v)
    return s if len(s) <= n else s[: n - 1] + "…"


def _md_cell(v: Any) -> str:
    # Markdown viewers render raw HTML: agents' and scenarios' text becomes entities.
    return html.escape(short(v), quote=False).replace("|", "\\|").replace("\n", " ")


def _md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(empty)_"
    cols = [str(c) for c in df.columns]
    rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in df.itertuples(index=False):
        rows.append("| " + " | ".join(_md_cell(v) for v in r) + " |")
    return "\n".join(rows)


def _html_table(df: pd.DataFrame) -> str:
    e = html.escape
    if df.empty:
        return "<p><i>(empty)</i></p>"
    head = "".join(f"<th>{e(str(c))}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{e(short(v))}</td>" for v in r) + "</tr>"
        for r in df.itertuples(index=False)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def guarded(rep: Report, sec: Section, what: str, fn: Callable[[], Any]) -> Any:
    """Run one metric; on failure add a note to the section instead of crashing."""
    t0 = time.perf_counter()
    try:
        return fn()
    except Exception as exc:  # a metric that cannot run on this run must not stop the report
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        sec.notes.append(f"{what}: skipped ({msg})")
        return None
    finally:
        rep.timings[what] = rep.timings.get(what, 0.0) + time.perf_counter() - t0
