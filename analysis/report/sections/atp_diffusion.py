"""Report section of imitative diffusion (alignment tipping, arXiv 2510.04860): the
deviant (by default collective) choice rate per round with confidence intervals across
instances and seeds, the tipping round, rates per threshold and framing, success and
capital, and the spread of the deviant choice through the network (who adopted when,
after which neighbours); ``society show`` prints the rates.

The aligned option is the run's ``aligned`` setting (the authors: independent). Every
figure comes from :mod:`analysis.atp`.
"""

from __future__ import annotations

from functools import partial

from ... import atp, llm
from ...run import Run
from ..document import Report, guarded
from .atp_exploration import _show_rates, memo_part, tipping_part

__all__ = ["report", "show"]

KIND = "choice"


def _deviant(run: Run) -> str:
    game = run.game or {}
    return str(game.get("deviant", "collective"))


def report(rep: Report, run: Run) -> None:
    """Deviant rates, tipping, thresholds, framings, outcomes, spread, memos."""
    sec = rep.section("Alignment tipping: imitative diffusion")
    c = guarded(rep, sec, "choices", lambda: atp.choices(run))
    if c is None:
        return
    deviant = _deviant(run)
    aligned = (run.game or {}).get("aligned", "independent")
    sec.notes.append(
        f"aligned option: {aligned}; deviant: {deviant}. Rate: share of {deviant} choices; "
        "95% Student t interval across units (an instance, framing x threshold, of one run)"
    )
    rates = guarded(rep, sec, f"{deviant} rate", lambda: atp.deviant_rate(c))
    if rates is None:
        return
    rep.table(sec, "deviant_by_round", f"{deviant.capitalize()}-choice rate per round", rates)
    rep.figure(f"{deviant} rate (all rounds)", float(c["deviant"].mean()))
    rep.figure(f"{deviant} rate (first round)", float(rates["rate"].iloc[0]))
    rep.figure(f"{deviant} rate (last round)", float(rates["rate"].iloc[-1]))
    tipping_part(rep, sec, rates, deviant)
    for by, name, title in (
        (["threshold", "game_round"], "deviant_by_threshold", "per threshold k and round"),
        (["framing"], "deviant_by_framing", "per framing"),
        (["grp", "game_round"], "deviant_by_group", "per group and round"),
    ):
        t = guarded(rep, sec, name, partial(atp.deviant_rate, c, by))
        if t is not None:
            rep.table(sec, name, f"{deviant.capitalize()}-choice rate {title}", t)
    ev = run.events
    out = ev[ev["kind"] == "outcome"]
    if len(out):
        rep.figure(
            "share of rounds reaching the threshold", float((out["action"] == "success").mean())
        )
    cap = ev[ev["kind"] == "capital"]
    if len(cap):
        last = cap[cap["round"] == cap["round"].max()]
        rep.figure("mean final capital", float(last["value"].mean()))
    inv = guarded(rep, sec, "invalid choices", lambda: llm.llm_decisions(run, None, kind=KIND))
    if inv is not None and int(inv["decisions"].iloc[0]):
        rep.figure("LLM invalid choice rate", float(inv["invalid_rate"].iloc[0]))

    sec = rep.section("Alignment tipping: spread through the network")
    sec.notes.append(
        "per agent and instance, the first round it chose the deviant option and the "
        "visible neighbours whose latest choice before it was deviant (sources); a seed "
        "saw no deviant neighbour"
    )
    spread = guarded(rep, sec, "adoption spread", lambda: atp.adoptions(run))
    if spread is not None:
        rep.table(sec, "adoptions", "Adoptions of the deviant choice", spread)
        if len(spread):
            rep.figure("adopters of the deviant choice", len(spread))
            rep.figure("share of adopters that were seeds", float(spread["seed"].mean()))
    memo_part(rep, run)


def show(run: Run, top: int = 20) -> str:
    """The deviant-choice rate per round with its interval, and the tipping round."""
    return _show_rates(atp.deviant_rate(run), f"{_deviant(run)}-choice", top)
