"""The traveler's dilemma report section on real runs: exact figures for deterministic
populations, the per-round table against the store, the LLM invalid rate, ``show``."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("scipy")

import society  # noqa: E402
from analysis.report import analyze, sections, show  # noqa: E402
from society.backends.fake import FakeBackend  # noqa: E402
from tests.helpers import query  # noqa: E402

MAX = {"name": "max", "strategy": "always_max"}
MIN = {"name": "min", "strategy": "always_min"}
BR = {"name": "br", "strategy": "best_response"}
RND = {"name": "rnd", "strategy": "random"}
CSV_FILES = ("claims_by_round.csv", "claims_by_strategy.csv")


def scenario(groups: list[dict], **game: Any) -> dict[str, Any]:
    return {
        "name": "td-report",
        "seed": 3,
        "population": {"groups": groups},
        "matching": {"kind": "round_robin"},
        "game": {"kind": "travelers_dilemma", "rounds": 6, **game},
    }


def _key_figures(md: str) -> dict[str, str]:
    part = md.split("## Key figures")[1].split("\n## ")[0]
    return dict(re.findall(r"^\| (.*?) \| (.*?) \|$", part, re.M))


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_the_section_is_found_by_kind() -> None:
    assert "travelers_dilemma" in sections.kinds()
    mod, why = sections.find("travelers_dilemma")
    assert mod is not None and why == "" and callable(mod.show)


@pytest.mark.parametrize(
    ("low", "high", "reward"), [(80, 200, 5), (2, 100, 2)], ids=["capra", "basu"]
)
def test_min_against_max_gives_exact_figures(tmp_path: Path, low, high, reward) -> None:
    rounds = 7
    result = society.run(
        scenario([MAX, MIN], low=low, high=high, reward=reward, rounds=rounds),
        out=tmp_path / "r",
    )
    assert result.status == "finished"
    rep = analyze(tmp_path / "r", tmp_path / "rep")
    for name in CSV_FILES:
        assert (rep.out / name).is_file()
    assert (rep.out / "claims_over_time.png").is_file()
    key = _key_figures(rep.summary_md.read_text())
    mean = (low + high) / 2
    assert key["game"] == "travelers_dilemma"
    assert float(key["mean claim (all claims)"]) == mean
    assert float(key["mean claim (last round)"]) == mean
    assert float(key["mean normalised claim (all claims)"]) == 0.5
    assert float(key["mean normalised claim (last round)"]) == 0.5
    assert float(key["share of claims at the Nash equilibrium (low)"]) == 0.5
    assert float(key["share of claims at the maximum (high)"]) == 0.5
    assert float(key["mean payoff per round"]) == low  # (low - R + low + R) / 2
    assert key["best strategy (mean score)"] == "always_min (min)"
    assert "LLM invalid claim rate" not in key  # scripted only

    by_round = _rows(rep.out / "claims_by_round.csv")
    assert [int(r["round"]) for r in by_round] == list(range(rounds))
    for r in by_round:
        assert int(r["claims"]) == 2
        assert float(r["mean_claim"]) == mean
        assert float(r["mean_normalised"]) == 0.5
        assert float(r["share_nash"]) == 0.5 and float(r["share_max"]) == 0.5
        assert float(r["mean_payoff"]) == low

    strat = {r["strategy"]: r for r in _rows(rep.out / "claims_by_strategy.csv")}
    assert list(strat) == ["always_min", "always_max"]  # best mean score first
    mn, mx = strat["always_min"], strat["always_max"]
    assert (mn["grp"], mx["grp"]) == ("min", "max")
    assert float(mn["mean_claim"]) == low and float(mx["mean_claim"]) == high
    assert float(mn["share_nash"]) == 1.0 and float(mn["share_max"]) == 0.0
    assert float(mx["share_nash"]) == 0.0 and float(mx["share_max"]) == 1.0
    assert float(mn["mean_normalised"]) == 0.0 and float(mx["mean_normalised"]) == 1.0
    assert float(mn["mean_payoff"]) == low + reward
    assert float(mx["mean_payoff"]) == low - reward
    assert float(mn["total_score"]) == rounds * (low + reward)
    assert float(mx["total_score"]) == rounds * (low - reward)
    assert mn["invalid_rate"] == "" and mx["invalid_rate"] == ""  # no LLM decisions

    text = show(tmp_path / "r")
    assert f"claims in [{low}, {high}], mean claim {mean:.2f}" in text
    assert "at the Nash equilibrium 50.0%, at the maximum 50.0%" in text
    assert "per strategy:" in text and "always_min" in text and "mean_claim" in text


def test_per_round_table_matches_the_store(tmp_path: Path) -> None:
    society.run(scenario([MAX, MIN, BR, RND], rounds=12), out=tmp_path / "r")
    rep = analyze(tmp_path / "r", tmp_path / "rep")
    expect = query(
        tmp_path / "r",
        "SELECT round, COUNT(*), AVG(value), AVG(value = 80), AVG(value = 200), "
        "AVG((value - 80) / 120.0) FROM decisions WHERE kind = 'claim' "
        "GROUP BY round ORDER BY round",
    )
    pay = dict(
        query(
            tmp_path / "r",
            "SELECT round, AVG(value) FROM events WHERE kind = 'payoff' GROUP BY round",
        )
    )
    got = _rows(rep.out / "claims_by_round.csv")
    assert len(got) == len(expect) == 12
    for r, (rnd, n, mean, nash, top, norm) in zip(got, expect, strict=True):
        assert int(r["round"]) == rnd and int(r["claims"]) == n == 12  # 6 pairs
        assert float(r["mean_claim"]) == pytest.approx(mean)
        assert float(r["share_nash"]) == pytest.approx(nash)
        assert float(r["share_max"]) == pytest.approx(top)
        assert float(r["mean_normalised"]) == pytest.approx(norm)
        assert float(r["mean_payoff"]) == pytest.approx(pay[rnd])
    md = rep.summary_md.read_text()
    assert "Traveler's dilemma: claims" in md and "Traveler's dilemma: strategies" in md
    body = md.split("## Traveler's dilemma: claims")[1].split("## Traveler's dilemma: conv")[0]
    assert "skipped" not in body  # claims and strategies computed in full


def test_llm_invalid_claim_rate(tmp_path: Path) -> None:
    llm = {"name": "llm", "kind": "llm", "count": 2, "max_tokens": 24}
    backend = FakeBackend("fake", responder=lambda req: '{"claim": 500}')  # out of range
    society.run(scenario([llm, MIN], rounds=2, fallback=100), out=tmp_path / "r", backends=backend)
    rep = analyze(tmp_path / "r", tmp_path / "rep")
    key = _key_figures(rep.summary_md.read_text())
    assert float(key["LLM invalid claim rate"]) == 1.0
    # Per round: llm-llm both 100, two llm-min pairs 100 / 80.
    assert key["mean claim (last round)"] == "93.33"  # 4 significant digits of 560 / 6
    assert key["share of claims at the Nash equilibrium (low)"] == "0.3333"
    last = _rows(rep.out / "claims_by_round.csv")[-1]
    assert float(last["mean_claim"]) == pytest.approx((4 * 100 + 2 * 80) / 6)
    assert float(last["share_nash"]) == pytest.approx(2 / 6)
    strat = {r["grp"]: r for r in _rows(rep.out / "claims_by_strategy.csv")}
    assert float(strat["llm"]["invalid_rate"]) == 1.0
    assert strat["min"]["invalid_rate"] == ""
    text = show(tmp_path / "r")  # per agent: claims, mean_claim, share_nash, invalid
    assert re.search(r"llm-0 +llm +llm .* 4 +100\.000 +0\.000 +1\.000$", text, re.M)
    assert re.search(r"min-0 +min +always_min .* 4 +80\.000 +1\.000 +-$", text, re.M)
