"""analysis.report on run stores written with sqlite3 (both formats): section discovery by
game kind, the generic report, show == report figures, escaping, no runtime imports."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("scipy")

from analysis import cooperation, llm, load_run  # noqa: E402
from analysis.report import ReportError, analyze, sections, show  # noqa: E402
from tests.test_analysis_run import make_donor_store, make_store  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _key_figures(md: str) -> dict[str, str]:
    part = md.split("## Key figures")[1].split("\n## ")[0]
    rows = re.findall(r"^\| (.*?) \| (.*?) \|$", part, re.M)
    return {k: v for k, v in rows if k not in ("figure", "run", "simulation wall time (s)")}


def _set_meta(run_dir: Path, **items: str) -> None:
    con = sqlite3.connect(run_dir / "run.sqlite")
    con.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", items.items())
    con.commit()
    con.close()


def test_section_modules_are_found_by_kind() -> None:
    assert {"donor", "repeated_2x2"} <= set(sections.kinds())
    mod, why = sections.find("donor")
    assert mod is not None and why == "" and callable(mod.show)
    for bad in ("../run", "os.path", "Donor", "donor;rm", "__init__x", ""):
        mod, why = sections.find(bad)
        assert mod is None and why
    assert "no report section for game kind 'auction'" in sections.find("auction")[1]
    assert "not a valid kind name" in sections.find("os.path")[1]


def test_store_text_never_picks_a_module_to_import(tmp_path: Path) -> None:
    d = make_store(tmp_path / "r")
    _set_meta(d, game="antigravity")  # a real stdlib module name, not a section module
    before = set(sys.modules)
    out = analyze(d, tmp_path / "rep").out
    assert "antigravity" not in set(sys.modules) - before
    md = (out / "summary.md").read_text()
    assert "no report section for game kind 'antigravity' yet: generic report only" in md


@pytest.mark.parametrize("make", [make_store, make_donor_store])
def test_format_1_and_2_give_the_same_report(tmp_path: Path, make) -> None:
    a = analyze(make(tmp_path / "v1", fmt=1), tmp_path / "rep1")
    b = analyze(make(tmp_path / "v2", fmt=2), tmp_path / "rep2")
    assert _key_figures(a.markdown()) == _key_figures(b.markdown())
    files = sorted(p.name for p in a.out.iterdir())
    assert files == sorted(p.name for p in b.out.iterdir())
    assert show(tmp_path / "v1").splitlines()[1:] == show(tmp_path / "v2").splitlines()[1:]


def test_generic_report_for_a_game_without_a_section(tmp_path: Path) -> None:
    d = make_store(tmp_path / "r")
    _set_meta(d, game="public_goods")
    rep = analyze(d, tmp_path / "rep")
    md = rep.markdown()
    assert "## Run" in md and "## LLM calls" in md and "## Metrics" in md
    assert "Repeated game" not in md
    assert (rep.out / "decisions_by_kind.csv").exists()
    figs = _key_figures(md)
    assert figs["game"] == "public_goods" and figs["decisions"] == "10"
    # show: the run-level lines and, as the run has payoffs, the generic score tables.
    text = show(d)
    assert "public_goods" in text and "per strategy:" in text and "cooperation" not in text


def test_donor_show_and_report_use_one_definition(tmp_path: Path) -> None:
    d = make_donor_store(tmp_path / "r")
    run = load_run(d)
    frac = cooperation.donation_fraction(run, "generation")
    text = show(d)
    rows = text.split("donor game per generation:")[1].splitlines()[2:4]
    cells = [r.split() for r in rows]
    assert [float(c[2]) for c in cells] == pytest.approx([37.5, 25.0])
    assert [float(c[2]) for c in cells] == pytest.approx(list(100 * frac["mean_fraction"]))
    # invalid: LLM donation decisions answered by the fallback (gen 1: 1 of 3; gen 2: none).
    assert [c[3] for c in cells] == ["33.3%", "0.0%"]
    inv = llm.llm_decisions(run, "generation", kind="donate")["invalid_rate"]
    assert list(inv) == pytest.approx([1 / 3, 0.0])
    assert [int(c[4]) for c in cells] == [1, 1]  # punishments
    assert cooperation.DONATION_DEFINITION in text
    md = analyze(d, tmp_path / "rep").markdown()
    figs = _key_figures(md)
    assert float(figs["donation fraction (first generation)"]) == pytest.approx(0.375)
    assert float(figs["donation fraction (last generation)"]) == pytest.approx(0.25)
    assert figs["punishments (all generations)"] == "2"
    assert cooperation.DONATION_DEFINITION in md
    # The LLM figures of show and report are the same numbers.
    assert "invalid replies               25.0%" in text
    assert figs["LLM invalid reply rate"] == "0.25"
    # 5 donations and 2 strategy texts asked of an LLM, 1 answered by the fallback.
    assert figs["LLM invalid decision rate"] == "0.1429"
    assert "invalid decisions (fallback)  14.3%" in text


def test_agent_text_is_escaped(tmp_path: Path) -> None:
    d = make_donor_store(tmp_path / "r")
    con = sqlite3.connect(d / "run.sqlite")
    con.execute("UPDATE agents SET strategy = '<script>alert(1)</script> | x' WHERE agent_id = 1")
    con.commit()
    con.close()
    rep = analyze(d, tmp_path / "rep")
    html = rep.summary_html.read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    md = rep.summary_md.read_text()
    # Markdown viewers render inline HTML: the summary's cells are escaped too.
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt; \\| x" in md


def test_show_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"no such run directory \(no run store"):
        show(tmp_path / "missing")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "run.sqlite").write_text("not a database")
    with pytest.raises(ReportError, match="cannot read the run store"):
        show(bad)


def test_report_of_a_repeated_store(tmp_path: Path) -> None:
    d = make_store(tmp_path / "r")
    rep = analyze(d, tmp_path / "rep")
    figs = _key_figures(rep.markdown())
    # a1 = CCDCC, a2 = CDDCD: 6 of 10 moves are C; payoffs 8+0+5+8+0 and 8+10+5+8+10.
    assert float(figs["cooperation rate (all moves)"]) == pytest.approx(0.6)
    scores = cooperation.strategy_scores(load_run(d)).set_index("strategy")["total_score"]
    assert scores.to_dict() == {"tit_for_tat": 41.0, "text": 21.0}
    table = (rep.out / "scores_by_strategy.csv").read_text()
    assert "tit_for_tat,1,41.0,41.0,0.4,5" in table
    text = show(d)
    assert re.search(r"tft +tit_for_tat +1 +41\.000 +41\.000 +0\.400", text)


def test_analysis_never_imports_the_runtime() -> None:
    code = (
        "import sys, analysis, analysis.report, analysis.plots\n"
        "from analysis.report import sections\n"
        "for k in sections.kinds(): sections.find(k)\n"
        "bad = [m for m in sys.modules if m == 'society' or m.startswith('society.')]\n"
        "assert not bad, bad\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
