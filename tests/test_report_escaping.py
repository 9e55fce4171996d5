"""Text from agents and scenarios is data in the HTML report: markup and `<script>` tags
planted in group (agent) names, donor strategy texts, marketplace business names and
descriptions and market labels come out escaped, never as elements."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

import society
from analysis.report import analyze
from society.backends.fake import FakeBackend
from tests.test_marketplace import hand_market

# Each plant carries a marker, so that the test can tell the report did show it.
SCRIPT = "<script>alert('PWN{}')</script>"
IMG = '<img src=x onerror="alert(PWN{})">'

# The elements the report itself writes (analysis.report.document.Report.html).
REPORT_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "table", "tr", "th",
    "td", "ul", "li", "p", "b", "a", "i", "figure", "img", "figcaption",
}  # fmt: skip


class Page(HTMLParser):
    """Every element, attribute and text of a page, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        (self.script_text if self._in_script else self.text).append(data)


def parse(report_dir: Path) -> Page:
    page = Page()
    page.feed((report_dir / "summary.html").read_text())
    page.close()
    return page


def assert_inert(page: Page, markers: list[str]) -> None:
    """No element or attribute came from a plant; the planted text shows as text."""
    tags = {t for t, _ in page.tags}
    assert tags <= REPORT_TAGS, f"elements from planted text: {sorted(tags - REPORT_TAGS)}"
    assert not page.script_text
    for tag, attrs in page.tags:
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name, value)
            assert "PWN" not in (value or "") or name in ("alt",), (tag, name, value)
    text = " ".join(page.text)
    for m in markers:
        assert m in text, f"the plant {m!r} is not shown in the report (test proves nothing)"


@pytest.mark.slow
def test_group_names_and_donor_strategies_are_escaped(tmp_path):
    def responder(request):
        if request.json_schema:  # a donation: give half (the schema's fields, valid)
            props = request.json_schema.get("properties", {})
            return "{" + ", ".join(
                f'"{k}": ' + ('"ok"' if "enum" not in p and p.get("type") == "string" else "5")
                for k, p in props.items()
            ) + "}"  # fmt: skip
        return f"My strategy will be {SCRIPT.format('S')} and {IMG.format('I')} always."

    groups = [
        {"name": SCRIPT.format("G"), "kind": "llm", "count": 2},
        {"name": f"b{IMG.format('H')}", "count": 2, "strategy": "donate_all"},
    ]
    data = {
        "name": "escaping",
        "seed": 1,
        "backend": {"kind": "fake", "model": "fake"},
        "population": {"groups": groups},
        "game": {"kind": "donor", "rounds": 2},
        "evolution": {"generations": 2},
    }
    run_dir = tmp_path / "run"
    society.run(data, out=run_dir, backends=FakeBackend("fake", responder=responder))
    strategies = [s for (s,) in _rows(run_dir, "SELECT strategy FROM agents")]
    assert any("<script>" in (s or "") for s in strategies), strategies  # planted for real
    report = analyze(run_dir, tmp_path / "report")
    page = parse(report.out)
    assert_inert(page, ["alert('PWNG')", "PWNS"])  # strategies are shown cut short
    html = (report.out / "summary.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    # The Markdown summary too: viewers render raw HTML in Markdown.
    md = (report.out / "summary.md").read_text()
    assert "<script>" not in md and "<img" not in md and "&lt;script&gt;" in md


def test_marketplace_names_descriptions_and_labels_are_escaped(tmp_path):
    root = hand_market(tmp_path / "data")
    for f in (root / "businesses").glob("*.yaml"):
        text = f.read_text()
        text = text.replace("name: Alpha Grill", f"name: Alpha {SCRIPT.format('N')!r}")
        text = text.replace("Cosy grill with tacos", f"Cosy {IMG.format('D')} grill")
        f.write_text(text)
    data = {
        "name": "escaping-market",
        "seed": 2,
        "population": {
            "groups": [
                {"name": "oracle", "count": 2, "strategy": "optimal_customer"},
                {"name": "honest", "count": 3, "strategy": "honest_business"},
            ]
        },
        "game": {
            "kind": "marketplace",
            "data_dir": str(root),
            "customers": 2,
            "businesses": 3,
            "rounds": 6,
            "markets": [{"label": SCRIPT.format("L")}],
        },
    }
    run_dir = tmp_path / "run"
    society.run(data, out=run_dir)
    report = analyze(run_dir, tmp_path / "report")
    page = parse(report.out)
    assert_inert(page, ["alert('PWNL')"])
    html = (report.out / "summary.html").read_text()
    assert "<script>" not in html and "<img src=x" not in html


def _rows(run_dir: Path, sql: str) -> list[tuple]:
    from tests.helpers import query

    return query(run_dir, sql)
