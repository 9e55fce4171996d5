"""Commons metrics against hand-computed cases: survival time, total gain, efficiency,
equality (1 - Gini) and over-usage; the report section and ``society show``."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import pytest

import analysis
import society
from analysis import commons
from society.backends.fake import FakeBackend

pytest.importorskip("matplotlib")


def scenario(groups: list[dict], **game: Any) -> dict[str, Any]:
    return {
        "name": "commons-metrics",
        "seed": 1,
        "population": {"groups": groups},
        "game": {"kind": "commons", **game},
    }


def run_of(tmp_path: Path, groups: list[dict], **game: Any) -> analysis.Run:
    society.run(scenario(groups, **game), out=tmp_path / "r")
    return analysis.load_run(tmp_path / "r")


def one(run: analysis.Run) -> dict[str, Any]:
    met = commons.metrics(run)
    assert len(met) == 1
    return met.iloc[0].to_dict()


def fixed(amount: float, count: int = 1, name: str = "f") -> dict[str, Any]:
    return {"name": name, "count": count, "strategy": {"name": "fixed", "amount": amount}}


def test_sustainable_society(tmp_path):
    m = one(run_of(tmp_path, [{"name": "s", "count": 5, "strategy": "sustainable"}]))
    assert m["survival_time"] == 12 and m["months_played"] == 12
    assert not m["collapsed"] and m["survived"]
    assert m["total_gain"] == 600 and m["sustainable_max"] == 600
    assert m["efficiency"] == 1.0 and m["equality"] == 1.0 and m["over_usage"] == 0.0
    assert m["mean_gain"] == 120 and m["agents"] == 5


def test_greedy_society(tmp_path):
    m = one(run_of(tmp_path, [{"name": "g", "count": 5, "strategy": "greedy"}]))
    assert m["survival_time"] == 1 and m["collapsed"] and not m["survived"]
    assert m["total_gain"] == 100  # the whole lake, shared five ways
    assert m["efficiency"] == pytest.approx(100 / 600)
    assert m["equality"] == 1.0 and m["over_usage"] == 1.0


def test_four_sustainable_one_fixed_thirty(tmp_path):
    run = run_of(tmp_path, [{"name": "s", "count": 4, "strategy": "sustainable"}, fixed(30)])
    m = one(run)
    # Months: 100 (asks 4 x 10 + 30) -> 60 (4 x 6 + 30) -> 12 (4 x 1 + 12 > 12): collapse.
    assert m["survival_time"] == 3 and m["collapsed"]
    gains = [16.75] * 4 + [69.0]  # 10 + 6 + 12/16, and 30 + 30 + 12 x 12/16
    assert m["total_gain"] == pytest.approx(136)
    assert m["efficiency"] == pytest.approx(136 / 600)
    # Gini = sum_ij |xi - xj| / (2 n^2 mean) = 2 * 4 * 52.25 / (2 * 25 * 27.2)
    assert m["equality"] == pytest.approx(1 - 418 / 1360)
    assert m["equality"] == pytest.approx(1 - analysis.cooperation.gini(gains))
    # Only the fixed harvester asks above the share (10, 6, 1.2): 3 of 15 asks.
    assert m["over_usage"] == pytest.approx(3 / 15)
    months = commons.months(run)
    assert months["month"].tolist() == [1, 2, 3]
    assert months["stock"].tolist() == [100, 60, 12]
    assert months["asked"].tolist() == [70, 54, 16]
    assert months["taken"].tolist() == [70, 54, 12]
    assert months["next_stock"].tolist() == [60, 12, 0]
    assert months["share"].tolist() == pytest.approx([10, 6, 1.2])
    assert months["collapsed"].tolist() == [False, False, True]
    assert months["over_usage"].tolist() == pytest.approx([0.2, 0.2, 0.2])
    agents = commons.agent_stats(run)
    top = agents.iloc[0]
    assert (top["agent_id"], top["gain"], top["mean_ask"], top["over_usage"]) == (4, 69, 24, 1)
    assert agents["gain"].tolist()[1:] == pytest.approx([16.75] * 4)


def test_efficiency_and_a_shrinking_lake(tmp_path):
    # Two agents asking 20 each from a lake whose share is 25: never over, never collapses.
    # Gains 40 a month x 12 = 480 of a sustainable maximum of 600.
    m = one(run_of(tmp_path, [fixed(20, count=2)]))
    assert m["efficiency"] == pytest.approx(0.8) and m["over_usage"] == 0.0
    # Three agents x 20 = 60 > 50 a month: the lake shrinks 100 -> 80 -> 40 -> collapse.
    m = one(run_of(tmp_path / "b", [fixed(20, count=3)]))
    assert m["survival_time"] == 3 and m["total_gain"] == pytest.approx(60 + 60 + 40)
    assert m["over_usage"] == 1.0  # 20 > 50/3, 20 > 40/3, 20 > 20/3


def test_efficiency_cap(tmp_path):
    # A one-month season with a quota-free greedy pair: 100 taken of a maximum of 50.
    m = one(run_of(tmp_path, [{"name": "g", "count": 2, "strategy": "greedy"}], months=1))
    assert m["total_gain"] == 100 and m["sustainable_max"] == 50
    assert m["efficiency"] == 1.0  # capped (GovSim)


def test_generations_are_measured_apart(tmp_path):
    groups = [{"name": "s", "count": 4, "strategy": "sustainable"}, fixed(30)]
    society.run({**scenario(groups, months=4), "evolution": {"generations": 2}}, out=tmp_path / "r")
    met = commons.metrics(analysis.load_run(tmp_path / "r"))
    assert met["generation"].tolist() == [0, 1]
    first = met.iloc[0]
    assert first["survival_time"] == 3 and first["total_gain"] == pytest.approx(136)


# -- the report section -----------------------------------------------------------------------
def _key_figures(md: str) -> dict[str, str]:
    part = md.split("## Key figures")[1].split("\n## ")[0]
    return dict(re.findall(r"^\| (.*?) \| (.*?) \|$", part, re.M))


def test_report_and_show(tmp_path):
    from analysis.report import analyze, sections, show

    assert "commons" in sections.kinds()
    groups = [{"name": "s", "count": 4, "strategy": "sustainable"}, fixed(30)]
    society.run(scenario(groups), out=tmp_path / "r")
    rep = analyze(tmp_path / "r", tmp_path / "rep")
    key = _key_figures(rep.summary_md.read_text())
    assert key["game"] == "commons"
    assert key["survival time (months)"] == "3" and key["collapsed"] == "yes"
    assert key["total gain"] == "136" and key["efficiency"] == "0.2267"
    assert key["equality (1 - Gini)"] == "0.6926" and key["over-usage"] == "0.2"
    for name in ("commons_by_generation", "commons_by_month", "commons_by_agent",
                 "commons_by_group", "commons_texts"):  # fmt: skip
        assert (rep.out / f"{name}.csv").is_file(), name
    assert (rep.out / "commons_stock.png").is_file()
    with (rep.out / "commons_texts.csv").open() as f:
        texts = list(csv.DictReader(f))
    assert len(texts) == 2 * 2 * 5  # months 1 and 2: a message and a memory each
    assert texts[0]["kind"] == "message" and texts[0]["month"] == "1"
    assert "skipped" not in rep.summary_md.read_text()
    text = show(tmp_path / "r")
    assert "commons, generation 0: collapsed, survival time 3 months, total gain 136, " \
        "efficiency 0.227, equality 0.693, over-usage 0.200" in text  # fmt: skip
    assert re.search(r"^ +4 +f-0 +f +fixed +69\.000 +3 +24\.000 +1\.000$", text, re.M)


def test_agent_text_is_escaped_in_html(tmp_path):
    from analysis.report import analyze

    def responder(req):
        return '{"amount": 1}' if req.json_schema else "<script>alert(1)</script> take less"

    llm = {"name": "llm", "kind": "llm", "count": 2, "max_tokens": 16}
    society.run(
        scenario([llm], months=1), out=tmp_path / "r",
        backends=FakeBackend("fake", responder=responder),
    )  # fmt: skip
    rep = analyze(tmp_path / "r", tmp_path / "rep")
    html = rep.summary_html.read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    key = _key_figures(rep.summary_md.read_text())
    assert key["LLM invalid harvest rate"] == "0" and key["survival time (months)"] == "1"
