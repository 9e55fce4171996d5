"""`society analyze RUN`: tables, plots and a one-page summary of a run.

Reads the run store through ``analysis`` (the runtime is not needed), picks the metric
families that apply to the run (repeated 2x2 games, donor game, LLM calls), and writes
into the report directory:

* ``*.csv``: one table per metric;
* ``*.png``: matplotlib figures (``analysis.plots``, Agg backend);
* ``summary.md`` and ``summary.html``: the key figures, each section's notes, the head
  of every table and the figures (embedded by relative path).

A section that cannot be computed on this run (too short, no such events, a metric
failing) is skipped with a note in the summary rather than stopping the report. Every
metric is vectorised in pandas, so a run of a million decisions takes seconds.
"""

from __future__ import annotations

import html
import math
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from society.errors import UserError

__all__ = ["analyze", "Report"]

# Guards: below these lengths a metric is not meaningful and its section says so.
MIN_EARLY_WARNING = 40  # points in the cooperation series (rolling window = half of it)
MAX_EARLY_WARNING = 300  # longer series are averaged into this many bins (tau is O(n^2))
MIN_CHANGE_POINT = 10
MIN_DRIFT_FIT = 20  # rounds needed for a sliding-window drift series and its D* fit
MAX_NETWORK_DRAW = 2000  # edges: a larger interaction graph is tabulated, not drawn
MAX_GROUP_LINES = 12  # more groups than this: one society-wide cooperation line
HEAD = 10  # rows of each table shown in the summary


# -- the report ---------------------------------------------------------------------------


@dataclass
class Section:
    title: str
    notes: list[str] = field(default_factory=list)
    tables: list[tuple[str, str, pd.DataFrame]] = field(default_factory=list)  # title, file, df
    images: list[tuple[str, str]] = field(default_factory=list)  # title, file


class Report:
    """Collects key figures, tables, figures and notes, then writes the summary pages."""

    def __init__(self, out: Path, title: str) -> None:
        self.out = out
        self.title = title
        self.key: list[tuple[str, str]] = []
        self.sections: list[Section] = []
        self.timings: dict[str, float] = {}

    def section(self, title: str) -> Section:
        s = Section(title)
        self.sections.append(s)
        return s

    def figure(self, key: str, value: Any) -> None:
        self.key.append((key, _fmt(value)))

    def table(self, sec: Section, name: str, title: str, df: pd.DataFrame) -> pd.DataFrame:
        df = _printable(df)
        df.to_csv(self.out / f"{name}.csv", index=False)
        sec.tables.append((title, f"{name}.csv", df))
        return df

    def image(self, sec: Section, name: str, title: str, fig: Any) -> None:
        fig.savefig(self.out / f"{name}.png", dpi=90)
        sec.images.append((title, f"{name}.png"))

    # -- rendering -------------------------------------------------------------------
    def markdown(self) -> str:
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
        (self.out / "summary.md").write_text(self.markdown())
        (self.out / "summary.html").write_text(self.html())


def _fmt(v: Any) -> str:
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


def _short(v: Any, n: int = 60) -> str:
    s = _fmt(v)
    return s if len(s) <= n else s[: n - 1] + "…"


def _md_cell(v: Any) -> str:
    return _short(v).replace("|", "\\|").replace("\n", " ")


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
        "<tr>" + "".join(f"<td>{e(_short(v))}</td>" for v in r) + "</tr>"
        for r in df.itertuples(index=False)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _guarded(rep: Report, sec: Section, what: str, fn: Callable[[], Any]) -> Any:
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


def _bin_series(s: pd.Series, max_len: int) -> tuple[pd.Series, int]:
    """Average a long series into at most ``max_len`` consecutive bins (index: bin start)."""
    if len(s) <= max_len:
        return s, 1
    width = math.ceil(len(s) / max_len)
    pos = np.arange(len(s)) // width
    binned = s.groupby(pos).mean()
    binned.index = s.index.to_numpy()[::width][: len(binned)]
    return binned, width


# -- sections -----------------------------------------------------------------------------


def _overview(rep: Report, run: Any) -> None:
    sec = rep.section("Run")
    meta = run.meta
    d = run.decisions
    rep.figure("run", run.label)
    rep.figure("game", meta.get("game", run.scenario.get("game", {}).get("kind", "?")))
    rep.figure("seed", meta.get("seed", ""))
    rep.figure("status", meta.get("status", ""))
    rep.figure("agents", len(run.agents))
    rep.figure("decisions", len(d))
    rep.figure("rounds (steps)", len(run.rounds))
    if len(run.rounds):
        rep.figure("generations", int(run.rounds["generation"].nunique()))
        rep.figure("simulation wall time (s)", float(run.rounds["wall_s"].sum()))
    rep.figure("LLM calls", len(run.llm_calls))
    sec.notes.append(f"run directory: {run.path}")
    if run.scenario.get("description"):
        sec.notes.append(f"scenario: {run.scenario['description']}")
    if len(d):
        t = d.groupby(["kind", "source"], observed=True).agg(
            decisions=("round", "size"), valid=("valid", "mean")
        )
        rep.table(sec, "decisions_by_kind", "Decisions by kind and source", t.reset_index())
    if len(run.agents):
        a = run.agents.groupby(["grp", "kind"], observed=True).agg(
            agents=("agent_id", "size"),
            strategy=("strategy", lambda s: _short(s.iloc[0], 40)),
            generations=("generation", "nunique"),
        )
        rep.table(sec, "agents_by_group", "Agents by group", a.reset_index())


def _repeated(rep: Report, run: Any, figs: Any) -> None:
    from analysis import convergence, cooperation, drift, tipping

    sec = rep.section("Repeated game: cooperation")
    by_round = _guarded(
        rep, sec, "cooperation per round", lambda: cooperation.cooperation_rate(run, "round")
    )
    if by_round is not None:
        rep.table(sec, "cooperation_by_round", "Cooperation rate per round", by_round)
        coop = float(np.average(by_round["rate"], weights=by_round["n"]))
        rep.figure("cooperation rate (all moves)", coop)
        rep.figure("cooperation rate (last round)", float(by_round["rate"].iloc[-1]))
    mutual = _guarded(
        rep, sec, "mutual cooperation", lambda: cooperation.mutual_cooperation_rate(run, None)
    )
    if mutual is not None and len(mutual):
        rep.figure("mutual cooperation rate", float(mutual["rate"].iloc[0]))
    by_grp = _guarded(rep, sec, "cooperation per group", lambda: _coop_by_group(run))
    if by_grp is not None:
        rep.table(sec, "cooperation_by_group", "Cooperation rate per group", by_grp)
    n_groups = run.agents["grp"].nunique() if len(run.agents) else 0
    group = "grp" if 1 < n_groups <= MAX_GROUP_LINES else None
    _guarded(
        rep,
        sec,
        "cooperation plot",
        lambda: rep.image(
            sec,
            "cooperation_over_time",
            "Cooperation rate over rounds" + (" by group" if group else ""),
            figs.cooperation_over_time(run, "round", group=group),
        ),
    )

    sec = rep.section("Repeated game: strategies")
    sec.notes.append(
        "p_c_after_c / p_c_after_d: P(cooperate | partner's previous move C / D); "
        "forgiveness: P(C | partner went D then back to C); retaliation: P(D | partner's D)."
    )
    cond = _guarded(
        rep, sec, "conditional cooperation", lambda: cooperation.reciprocity(run, by="strategy")
    )
    if cond is not None:
        rep.table(sec, "conditional_cooperation", "Reciprocity per strategy", cond)
    score = _guarded(rep, sec, "score vs max", lambda: cooperation.score_vs_max(run, by="grp"))
    if score is not None:
        score = score.sort_values("score", ascending=False)
        rep.table(sec, "score_vs_max", "Points won / maximum achievable per group", score)
        tot = score["won"].sum() / score["max_achievable"].sum()
        rep.figure("score vs max (society)", float(tot))

    sec = rep.section("Repeated game: convergence and tipping")
    ent = _guarded(
        rep, sec, "entropy", lambda: convergence.behavioural_entropy(run, by="round", kind="move")
    )
    if ent is not None and len(ent):
        rep.table(sec, "entropy_by_round", "Behavioural entropy per round (bits)", ent)
        conv = convergence.time_to_convergence(ent.set_index("round")["entropy"], tol=0.05)
        rep.figure("entropy (last round, bits)", float(ent["entropy"].iloc[-1]))
        rep.figure(
            "time to convergence (entropy, ±0.05)",
            conv.time if conv.converged else "not converged",
        )
        _guarded(
            rep,
            sec,
            "entropy plot",
            lambda: rep.image(
                sec, "entropy", "Entropy of moves per round", figs.entropy_over_time(run)
            ),
        )
    if by_round is not None:
        series = by_round.set_index("round")["rate"]
        _tipping(rep, sec, series, "cooperation rate per round", figs, tipping)
    _drift_fit(rep, sec, run, "move", figs, drift)
    _influence(rep, run, figs)


def _coop_by_group(run: Any) -> pd.DataFrame:
    from analysis import cooperation

    g = cooperation.cooperation_rate(run, ["grp", "strategy"])
    return g.sort_values("rate", ascending=False)


def _tipping(
    rep: Report, sec: Section, series: pd.Series, label: str, figs: Any, tipping: Any
) -> None:
    n = len(series)
    if n >= MIN_CHANGE_POINT:
        cp = _guarded(rep, sec, "change point", lambda: tipping.change_point(series))
        if cp is not None:
            sec.notes.append(
                f"change point of the {label}: at {cp.round} (95% CI of the position "
                f"{cp.ci[0]}..{cp.ci[1]}), mean {cp.before:.3g} before, {cp.after:.3g} after, "
                f"permutation p = {cp.p_value:.3g}"
            )
            rep.figure("change point (round)", cp.round)
            rep.figure("change point p-value", cp.p_value)
    else:
        sec.notes.append(
            f"change point: skipped (the {label} has {n} points; needs {MIN_CHANGE_POINT})"
        )
    if n < MIN_EARLY_WARNING:
        sec.notes.append(
            f"early warning: skipped (the {label} has {n} points; rolling indicators "
            f"and their Kendall tau need at least {MIN_EARLY_WARNING})"
        )
        return
    s, width = _bin_series(series, MAX_EARLY_WARNING)
    if width > 1:
        sec.notes.append(
            f"early warning computed on the {label} averaged over bins of {width} rounds "
            f"({len(s)} points)"
        )
    ew = _guarded(rep, sec, "early warning", lambda: tipping.early_warning(s, n_surrogates=100))
    if ew is None:
        return
    sec.notes.append(
        "early-warning indicators (rolling window "
        f"{ew.window}, Gaussian detrending bandwidth {ew.bandwidth:.3g}); p-values from "
        f"{ew.n_surrogates} AR(1) and phase-randomised surrogates. Indicators, not a verdict."
    )
    rep.table(sec, "early_warning", f"Early-warning indicators of the {label}", ew.table)
    for row in ew.table.itertuples(index=False):
        rep.figure(
            f"early warning: Kendall tau of {row.indicator} (p)",
            f"{row.tau:.3g} ({row.p_value:.3g})",
        )
    _guarded(
        rep,
        sec,
        "early-warning plot",
        lambda: rep.image(
            sec, "early_warning", "Early-warning panel", figs.early_warning_panel(ew, s)
        ),
    )


def _drift_fit(rep: Report, sec: Section, run: Any, kind: str, figs: Any, drift: Any) -> None:
    d = run.decisions
    sub = d[d["kind"] == kind]
    n_rounds = int(sub["round"].nunique()) if len(sub) else 0
    if n_rounds < MIN_DRIFT_FIT:
        sec.notes.append(
            f"drift equilibrium: skipped ({n_rounds} rounds of '{kind}' decisions; the "
            f"sliding-window drift series needs at least {MIN_DRIFT_FIT})"
        )
        return
    window = max(3, n_rounds // 10)

    def series() -> pd.DataFrame:
        return drift.action_drift(sub, by="kind", window=window, kind=kind)

    ad = _guarded(rep, sec, "behavioural drift", series)
    if ad is None or ad.empty:
        return
    rep.table(
        sec,
        "behavioural_drift",
        f"Behavioural drift per round (TV distance, window {window}, vs the first window)",
        ad,
    )
    D = ad.sort_values("round")["distance"].to_numpy(dtype=float)
    fit = _guarded(rep, sec, "drift equilibrium fit", lambda: drift.fit_equilibrium(D))
    if fit is None:
        return
    sec.notes.append(
        f"drift equilibrium (ΔD = a + b·D): D* = {fit.d_star:.3g}, b = {fit.b:.3g} "
        f"(95% CI {fit.b_ci[0]:.3g}..{fit.b_ci[1]:.3g}), restoring force: "
        f"{'yes' if fit.restoring else 'no'}, n = {fit.n}"
    )
    rep.figure("drift equilibrium D*", fit.d_star)
    _guarded(
        rep,
        sec,
        "drift plot",
        lambda: rep.image(
            sec, "drift_curve", "Behavioural drift with D*", figs.drift_curve(D, fit)
        ),
    )


def _influence(rep: Report, run: Any, figs: Any) -> None:
    from analysis import convergence

    sec = rep.section("Interaction network and influence")
    inf = _guarded(rep, sec, "influence", lambda: convergence.influence(run, "generation", k=3))
    if inf is not None and len(inf):
        rep.table(sec, "influence", "Top-3 PageRank share and persistence per generation", inf)
        rep.figure("top-3 PageRank share (last generation)", float(inf["top_k_share"].iloc[-1]))
    gens = run.rounds["generation"] if len(run.rounds) else pd.Series([0])
    last = int(gens.max())
    d = run.decisions
    n_edges = _guarded(rep, sec, "edges", lambda: _n_edges(d[d["generation"] == last]))
    if n_edges is None:
        return
    if n_edges > MAX_NETWORK_DRAW:
        sec.notes.append(
            f"network snapshot: not drawn ({n_edges} distinct edges in generation {last}; "
            f"drawn up to {MAX_NETWORK_DRAW})"
        )
        return
    _guarded(
        rep,
        sec,
        "network plot",
        lambda: rep.image(
            sec,
            "network",
            f"Interaction graph of generation {last} (node size: PageRank)",
            figs.network_snapshot(run, "generation", last),
        ),
    )


def _n_edges(d: pd.DataFrame) -> int:
    d = d[d["partner_id"].notna()]
    if d.empty:
        return 0
    a = d["agent_id"].to_numpy(dtype=np.int64)
    b = d["partner_id"].to_numpy(dtype=np.int64)
    return int(np.unique(a * (int(b.max()) + 1) + b).size)


def _donor(rep: Report, run: Any, figs: Any) -> None:
    from analysis import convergence, cooperation, drift, tipping

    sec = rep.section("Donor game: donations and resources")
    frac = _guarded(
        rep, sec, "donation fraction", lambda: cooperation.donation_fraction(run, "generation")
    )
    if frac is not None and len(frac):
        rep.table(sec, "donation_by_generation", "Mean fraction donated per generation", frac)
        rep.figure("donation fraction (first generation)", float(frac["mean_fraction"].iloc[0]))
        rep.figure("donation fraction (last generation)", float(frac["mean_fraction"].iloc[-1]))
    fg = _guarded(
        rep,
        sec,
        "donation fraction per group",
        lambda: cooperation.donation_fraction(run, ["generation", "grp"]),
    )
    if fg is not None and len(fg):
        rep.table(sec, "donation_by_group", "Mean fraction donated per generation and group", fg)
    res = _guarded(rep, sec, "resources", lambda: cooperation.mean_resources(run))
    if res is not None and len(res):
        rep.table(sec, "resources_by_generation", "Mean final resources per generation", res)
        rep.figure("mean final resources (first generation)", float(res["mean_resources"].iloc[0]))
        rep.figure("mean final resources (last generation)", float(res["mean_resources"].iloc[-1]))
        _guarded(
            rep,
            sec,
            "resources plot",
            lambda: rep.image(
                sec,
                "resources_per_generation",
                "Mean final resources per generation",
                figs.resources_per_generation(run),
            ),
        )
    if frac is not None and len(frac):
        _guarded(
            rep,
            sec,
            "donation plot",
            lambda: rep.image(
                sec, "donation_fraction", "Donation fraction per generation", _donation_fig(fg)
            ),
        )
    gi = _guarded(rep, sec, "gini", lambda: cooperation.gini_by(run, "auto", by="generation"))
    if gi is not None and len(gi):
        rep.table(sec, "gini_by_generation", "Inequality (Gini) per generation", gi)
        rep.figure("Gini (last generation)", float(gi["gini"].iloc[-1]))

    sec = rep.section("Donor game: selection")
    surv = _guarded(rep, sec, "survival", lambda: cooperation.survival_by_group(run))
    if surv is not None and len(surv):
        rep.table(sec, "survival_by_group", "Survivors per generation and group", surv)
        tot = surv.groupby("grp", observed=True)[["n", "survivors"]].sum()
        tot["fraction"] = tot["survivors"] / tot["n"].replace(0, np.nan)
        best = tot["fraction"].idxmax() if tot["fraction"].notna().any() else None
        if best is not None:
            rep.figure("group surviving most often", f"{best} ({tot.loc[best, 'fraction']:.0%})")
    elif surv is not None:
        sec.notes.append("survival: no selection events in this run (one generation?)")

    sec = rep.section("Donor game: strategy texts")
    texts = _guarded(rep, sec, "strategy texts", lambda: drift.strategy_texts(run))
    if texts is not None and texts["generation"].nunique() >= 2:
        emb = drift.default_embedder()
        sd = _guarded(
            rep,
            sec,
            "semantic drift",
            lambda: drift.semantic_drift(texts, time="generation", embedder=emb),
        )
        if sd is not None and len(sd):
            sec.notes.append(
                f"semantic drift = 1 − cosine between each generation's centroid of strategy "
                f"texts and the first (or previous) generation's; embedder: {emb.name} "
                f"({emb.kind}{', word/character overlap, not meaning' if emb.kind == 'lexical' else ''})"
            )
            rep.table(sec, "strategy_drift", "Semantic drift of strategy texts", sd)
            rep.figure(
                f"strategy-text drift from generation 0 (last, {emb.name})",
                float(sd["drift_from_first"].iloc[-1]),
            )
            _guarded(
                rep,
                sec,
                "strategy drift plot",
                lambda: rep.image(
                    sec, "strategy_drift", "Strategy-text drift", _text_drift_fig(sd, emb)
                ),
            )
        cons = _guarded(
            rep,
            sec,
            "strategy consensus",
            lambda: convergence.strategy_consensus(texts, "generation", embedder=emb),
        )
        if cons is not None and len(cons):
            rep.table(sec, "strategy_consensus", "Consensus of strategy texts per generation", cons)
    elif texts is not None:
        sec.notes.append("semantic drift: skipped (strategy texts from fewer than 2 generations)")

    sec = rep.section("Donor game: convergence and tipping")
    ent = _guarded(
        rep,
        sec,
        "entropy",
        lambda: convergence.behavioural_entropy(run, by="generation", kind="donate"),
    )
    if ent is not None and len(ent):
        rep.table(sec, "entropy_by_generation", "Entropy of donation deciles per generation", ent)
    per_round = _guarded(rep, sec, "donation per round", lambda: _donation_per_round(run))
    if per_round is not None and len(per_round):
        _tipping(rep, sec, per_round, "mean donation fraction per round", figs, tipping)
    _influence(rep, run, figs)


def _donation_per_round(run: Any) -> pd.Series:
    from analysis import cooperation

    return cooperation.donation_fraction(run, "round").set_index("round")["mean_fraction"]


def _donation_fig(fg: pd.DataFrame | None) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    if fg is not None:
        for name, part in fg.groupby("grp", observed=True):
            ax.plot(part["generation"], part["mean_fraction"], marker="o", label=str(name))
        ax.legend(fontsize="small")
    ax.set(xlabel="generation", ylabel="mean fraction donated", ylim=(-0.02, 1.02))
    return fig


def _text_drift_fig(sd: pd.DataFrame, emb: Any) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    ax.plot(sd["generation"], sd["drift_from_first"], marker="o", label="from generation 0")
    ax.plot(sd["generation"], sd["drift_from_prev"], marker="s", label="from previous")
    ax.set(xlabel="generation", ylabel=f"1 − cosine ({emb.name}, {emb.kind})")
    ax.legend(fontsize="small")
    return fig


def _llm(rep: Report, run: Any) -> None:
    sec = rep.section("LLM calls")
    c = run.llm_calls
    if c.empty:
        sec.notes.append("no LLM calls: every agent in this run is scripted")
        return
    g = c.groupby(["backend", "model"], observed=True)
    t = g.agg(
        calls=("id", "size"),
        invalid_rate=("valid", lambda v: 1.0 - float(np.mean(v))),
        prompt_tokens=("prompt_tokens", "sum"),
        completion_tokens=("completion_tokens", "sum"),
        mean_completion_tokens=("completion_tokens", "mean"),
        latency_mean_s=("latency_s", "mean"),
        latency_p50_s=("latency_s", "median"),
        latency_p95_s=("latency_s", lambda v: float(np.nanpercentile(v, 95)) if len(v) else np.nan),
    ).reset_index()
    rep.table(sec, "llm_by_model", "LLM calls per model: invalid rate, tokens, latency", t)
    rep.figure("LLM invalid reply rate", 1.0 - float(c["valid"].mean()))
    rep.figure("LLM mean latency (s)", float(c["latency_s"].mean()))
    rep.figure(
        "tokens (prompt + completion)",
        int(c["prompt_tokens"].fillna(0).sum() + c["completion_tokens"].fillna(0).sum()),
    )
    if "purpose" in c.columns:
        p = c.groupby(["model", "purpose"], observed=True).agg(
            calls=("id", "size"), invalid_rate=("valid", lambda v: 1.0 - float(np.mean(v)))
        )
        rep.table(sec, "llm_by_purpose", "LLM calls per model and purpose", p.reset_index())
    d = run.decisions
    llm_d = d[d["source"].isin(["llm", "fallback"])]
    if len(llm_d):
        f = llm_d.groupby(["model", "kind"], observed=True).agg(
            decisions=("round", "size"),
            fallback_rate=("source", lambda s: float((s == "fallback").mean())),
            invalid_rate=("valid", lambda v: 1.0 - float(np.mean(v))),
        )
        rep.table(
            sec, "llm_decisions", "LLM decisions: fallbacks and invalid actions", f.reset_index()
        )


# -- entry point --------------------------------------------------------------------------


def _open(run_dir: Path) -> Any:
    from analysis import load_run

    if not run_dir.exists():
        raise UserError(f"{run_dir}: no such run directory")
    db = run_dir / "run.sqlite" if run_dir.is_dir() else run_dir
    if not db.exists():
        raise UserError(f"{run_dir}: no run store (run.sqlite) in this directory")
    try:
        return load_run(run_dir)
    except (sqlite3.Error, FileNotFoundError, KeyError) as exc:
        raise UserError(f"{run_dir}: cannot read the run store ({exc})") from None


def analyze(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write tables, plots, ``summary.md`` and ``summary.html`` for a run; return ``out``.

    ``out`` defaults to ``RUN_DIR/report``. A missing or unreadable run raises
    :class:`~society.errors.UserError`.
    """
    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    run = _open(run_dir)
    t_load = time.perf_counter() - t0
    base = run_dir if run_dir.is_dir() else run_dir.parent
    out = Path(out) if out is not None else base / "report"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create the report directory ({exc})") from None
    from analysis import plots as figs

    rep = Report(out, f"Run report: {run.label}")
    rep.timings["load_run"] = t_load
    _overview(rep, run)
    kinds = set(run.decisions["kind"].unique()) if len(run.decisions) else set()
    if "move" in kinds:
        _repeated(rep, run, figs)
    if "donate" in kinds:
        _donor(rep, run, figs)
    if not kinds & {"move", "donate"}:
        rep.section("Metrics").notes.append(
            "no 'move' or 'donate' decisions in this run: nothing to measure yet"
        )
    _llm(rep, run)
    total = time.perf_counter() - t0
    sec = rep.section("About this report")
    sec.notes.append(
        f"computed in {total:.2f} s (loading the run store: {t_load:.2f} s) from {run_dir}"
    )
    slow = sorted(rep.timings.items(), key=lambda kv: -kv[1])[:5]
    sec.notes.append("slowest parts: " + ", ".join(f"{k} {v:.2f} s" for k, v in slow))
    rep.write()
    return out
