"""Report section of repeated 2x2 games: cooperation, reciprocity, scores, convergence and
tipping; and the score tables of ``society show``.

The cooperation rate is ``cooperation.cooperation_rate`` (share of C moves, option 0) and
the score is ``cooperation.agent_scores`` (sum of payoffs) everywhere: the report, the
show tables and the notebooks read the same functions. Normalised scores come in both of
Akata et al.'s definitions (``cooperation.score_vs_max``): over the best achievable
against the partner's moves (the paper's text) and over the game's largest payoff times
the rounds (the authors' code). A run that sweeps a game set gets cooperation and scores
per stage game and per family.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ... import convergence, cooperation, llm
from ...run import Run
from ..document import Report, guarded
from ..generic import score_tables
from ..metrics import drift_section, influence_section, tipping_section

__all__ = ["report", "show"]

MAX_GROUP_LINES = 12  # more groups than this: one society-wide cooperation line


def _coop_by_group(run: Run) -> pd.DataFrame:
    g = cooperation.cooperation_rate(run, ["grp", "strategy"])
    return g.sort_values("rate", ascending=False)


def _scores(run: Run) -> pd.DataFrame:
    s = cooperation.strategy_scores(run)
    c = cooperation.cooperation_rate(run, ["grp", "strategy"]).rename(
        columns={"rate": "cooperation", "n": "moves"}
    )
    return s.merge(c, on=["grp", "strategy"], how="left")


def report(rep: Report, run: Run) -> None:
    """Cooperation, strategies (reciprocity, scores), convergence and tipping, network."""
    from ... import plots as figs

    sec = rep.section("Repeated game: cooperation")
    if not (run.decisions["kind"] == "move").any():
        sec.notes.append("no 'move' decisions in this run: nothing to measure yet")
        return
    by_round = guarded(
        rep, sec, "cooperation per round", lambda: cooperation.cooperation_rate(run, "round")
    )
    overall = guarded(rep, sec, "cooperation rate", lambda: cooperation.cooperation_rate(run, None))
    if overall is not None:
        rep.figure("cooperation rate (all moves)", float(overall["rate"].iloc[0]))
    if by_round is not None:
        rep.table(sec, "cooperation_by_round", "Cooperation rate per round", by_round)
        rep.figure("cooperation rate (last round)", float(by_round["rate"].iloc[-1]))
    mutual = guarded(
        rep, sec, "mutual cooperation", lambda: cooperation.mutual_cooperation_rate(run, None)
    )
    if mutual is not None and len(mutual):
        rep.figure("mutual cooperation rate", float(mutual["rate"].iloc[0]))
    by_grp = guarded(rep, sec, "cooperation per group", lambda: _coop_by_group(run))
    if by_grp is not None:
        rep.table(sec, "cooperation_by_group", "Cooperation rate per group", by_grp)
    n_groups = run.agents["grp"].nunique() if len(run.agents) else 0
    group = "grp" if 1 < n_groups <= MAX_GROUP_LINES else None
    guarded(
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
    cond = guarded(
        rep, sec, "conditional cooperation", lambda: cooperation.reciprocity(run, by="strategy")
    )
    if cond is not None:
        rep.table(sec, "conditional_cooperation", "Reciprocity per strategy", cond)
    scores = guarded(rep, sec, "scores", lambda: _scores(run))
    if scores is not None:
        rep.table(
            sec, "scores_by_strategy", "Scores (sum of payoffs) per group and strategy", scores
        )
    score = guarded(rep, sec, "score vs max", lambda: cooperation.score_vs_max(run, by="grp"))
    if score is not None:
        score = score.sort_values("score", ascending=False)
        rep.table(sec, "score_vs_max", "Points won / maximum achievable per group", score)
        tot = score["won"].sum() / score["max_achievable"].sum()
        rep.figure("score vs max (society)", float(tot))
    code = guarded(
        rep,
        sec,
        "score vs game max",
        lambda: cooperation.score_vs_max(run, by="grp", normalisation="game_max"),
    )
    if code is not None:
        code = code.sort_values("score", ascending=False)
        rep.table(
            sec,
            "score_vs_game_max",
            "Points won / (largest payoff of the game x rounds) per group (the authors' code)",
            code,
        )
        tot = code["won"].sum() / code["max_achievable"].sum()
        rep.figure("score vs game max (society)", float(tot))
    if len(cooperation.stage_games(run)):
        _stage_section(rep, run)

    sec = rep.section("Repeated game: convergence and tipping")
    ent = guarded(
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
        guarded(
            rep,
            sec,
            "entropy plot",
            lambda: rep.image(
                sec, "entropy", "Entropy of moves per round", figs.entropy_over_time(run)
            ),
        )
    if by_round is not None:
        series = by_round.set_index("round")["rate"]
        tipping_section(rep, sec, series, "cooperation rate per round")
    drift_section(rep, sec, run, "move")
    influence_section(rep, run)


def _stage_section(rep: Report, run: Run) -> None:
    """Cooperation and scores per family and per stage game of a game-set sweep."""
    sec = rep.section("Repeated game: stage games")
    n = len(cooperation.stage_games(run))
    sec.notes.append(
        f"{n} stage games, one match per pair and game; scores over the best achievable "
        "against the partner (text) and over the game's largest payoff x rounds (code)."
    )
    for level, title in (("family", "family"), (["game", "stage", "family"], "stage game")):

        def table(level=level) -> pd.DataFrame:
            coop = cooperation.cooperation_rate(run, level).rename(
                columns={"rate": "cooperation", "n": "moves"}
            )
            text = cooperation.score_vs_max(run, by=level)[[*coop.columns[:-2], "score"]]
            code = cooperation.score_vs_max(run, by=level, normalisation="game_max")
            code = code[[*coop.columns[:-2], "score"]].rename(columns={"score": "score_code"})
            keys = list(coop.columns[:-2])
            return coop.merge(text, on=keys, how="left").merge(code, on=keys, how="left")

        out = guarded(rep, sec, f"cooperation per {title}", table)
        if out is None:
            continue
        name = "family" if level == "family" else "stage_game"
        rep.table(sec, f"cooperation_by_{name}", f"Cooperation and scores per {title}", out)
        if level == "family":
            for _, row in out.iterrows():
                rep.figure(f"cooperation rate ({row['family']})", float(row["cooperation"]))


def show(run: Run, top: int = 20) -> str:
    """Score tables with each agent's and strategy's cooperation rate and invalid rate."""
    if not (run.decisions["kind"] == "move").any():
        return ""
    coop = cooperation.cooperation_rate(run, "agent_id").rename(
        columns={"rate": "cooperation", "n": "decisions"}
    )
    inv = llm.llm_decisions(run, "agent_id", kind="move")[["agent_id", "invalid_rate"]]
    per_agent = coop.merge(
        inv.rename(columns={"invalid_rate": "invalid"}), on="agent_id", how="left"
    )
    per_strategy = cooperation.cooperation_rate(run, ["grp", "strategy"])[
        ["grp", "strategy", "rate"]
    ].rename(columns={"rate": "cooperation"})
    per_strategy["strategy"] = per_strategy["strategy"].astype(object)
    per_strategy["grp"] = per_strategy["grp"].astype(object)
    per_agent["agent_id"] = per_agent["agent_id"].astype(np.int64)
    return score_tables(run, top, per_agent, per_strategy)
