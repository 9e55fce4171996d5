"""The social feed (protocols §10): ranking and edges against hand-made cases, the typed
action, a ranking that does not grow with the posts, known convergence of scripted
societies, the analysis wiring, resume and replay identity, and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import analysis
import society
from agents.chat import ChatRequest
from agents.feed import LLMFeeder, make_feed_policy
from agents.prompts import Prompts
from analysis import feed as af
from analysis.drift import LexicalEmbedder
from games.feed import FeedAction, FeedActionSpec, FeedGame, FeedKind, RankIndex
from games.protocol import IllegalAction
from society.backends.fake import FakeBackend
from society.errors import UserError
from society.plugins.social_feed import FEED_PROMPTS
from society.scenario import load_scenario, resolve
from tests.helpers import ROOT, drive, query, table_rows

SCRIPTED = ROOT / "scenarios" / "social_feed_scripted.yaml"
LEX = LexicalEmbedder()


def hand_game(ranking: str = "hot", **kw: Any) -> FeedGame:
    """Four agents; communities a (agents 0, 1, 2) and b (agents 2, 3); agent 0 follows 3.

    Items, by id: 0 'a0' by 1 in a (seed), 1 'a1' by 2 in a (seed), 2 'b0' by 3 in b (seed)."""
    return FeedGame(
        4, periods=3, communities=["a", "b"], topics=["ta", "tb"],
        members=[[0], [0], [0, 1], [1]], follows=[[3], [], [], []],
        seeds=[(0, 1, "a0"), (0, 2, "a1"), (1, 3, "b0")], ranking=ranking, **kw,
    )  # fmt: skip


def step(g: FeedGame, acts: dict[int, FeedAction]) -> list:
    turns = g.pending(None)  # type: ignore[arg-type]
    actions = [t.spec.check(acts.get(t.agent, FeedAction("nothing"))) for t in turns]
    return g.apply(turns, actions, None)  # type: ignore[arg-type]


def test_feed_sources_and_own_posts_by_hand():
    g = hand_game()
    # Agent 0: community a (a1, a0; a1 newer) and followee 3's b0; all three seeds score 0
    # and were made in period -1, so ties go to the newer id.
    assert g.feed(0) == [2, 1, 0]
    assert g.feed(1) == [1]  # its own post a0 is left out
    assert g.feed(3) == []  # b holds only its own post, and it follows nobody
    obs = g.observation(0)
    assert [(i.number, i.post, i.author, i.community, i.text) for i in obs.feed] == [
        (1, 2, 3, "b", "b0"), (2, 1, 2, "a", "a1"), (3, 0, 1, "a", "a0")
    ]  # fmt: skip


def test_edges_scores_and_follows_by_hand():
    g = hand_game()
    # Agent 0 sees [b0, a1, a0]: it upvotes item 3 (a0 by 1); agent 2 sees [b0, a0]
    # (its own a1 left out) and comments on item 2 (a0); agent 3 sees nothing and posts;
    # agent 1 sees [a1] and follows item 1's author (2).
    events = step(g, {0: FeedAction("upvote", 3), 2: FeedAction("comment", 2, "nice  one"),
                      3: FeedAction("post", 0, "b1"), 1: FeedAction("follow", 1)})  # fmt: skip
    kinds = [(e.kind, e.agent, e.partner) for e in events]
    assert kinds[:3] == [("post", 1, None), ("post", 2, None), ("post", 3, None)]  # seeds
    assert kinds[3:] == [
        ("upvote", 0, 1), ("follow", 1, 2), ("comment", 2, 1), ("post", 3, None), ("period", None, None)
    ]  # fmt: skip
    assert events[5].data == {"post": 3, "parent": 0, "text": "nice one", "period": 0}
    assert events[6].data["community"] == "b" and events[6].value == 4.0
    assert events[-1].data == {"period": 0, "post": 1, "comment": 1, "upvote": 1, "follow": 1,
                               "nothing": 0, "without_effect": 0}  # fmt: skip
    assert g.score[0] == 1 and g.karma[1] == 1 and g.follows[1] == {2}
    # Period 1 (hot, decay 2): a0 = log10(2) + -1/2 = -0.199 beats the new b1 (0 + 0 = 0)?
    # No: b1's key 0 is higher; then a0 (-0.199), then a1 and b0 (-0.5, newer first).
    assert g.feed(0) == [4, 0, 2, 1]
    # A repeated upvote has no effect; the comment travels with its post.
    obs = g.observation(0)
    assert obs.feed[1].comments == ((2, "nice one"),)
    turns = g.pending(None)  # type: ignore[arg-type]
    acts = [FeedAction("upvote", 2) if t.agent == 0 else FeedAction("nothing") for t in turns]
    events = g.apply(turns, acts, None)  # type: ignore[arg-type]
    assert [e.kind for e in events] == ["period"] and events[0].data["without_effect"] == 1
    texts, values, datas = g.records(turns, acts)
    assert texts == ["upvote"] + ["nothing"] * 3 and values == [2.0, 0.0, 0.0, 0.0]
    assert datas[0] == {"item": 2, "post": 0, "text": None, "effect": False}


@pytest.mark.parametrize(
    ("ranking", "expected"),
    [("recent", [5, 4, 3]), ("top", [3, 5, 4]), ("hot", [5, 3, 4])],
)
def test_rankings_by_hand(ranking, expected):
    g = FeedGame(
        3, periods=10, communities=["a"], topics=[""], members=[[0]] * 3, follows=[[]] * 3,
        ranking=ranking, hot_decay=1.0, feed_size=3, per_source=10,
    )  # fmt: skip
    # Agent 1 writes posts 0..5 in periods 0..5; post 3 (period 3) gets 10 upvotes.
    for t in range(6):
        g._add(1, 0, -1, t, f"p{t}")
    g.score[3] = 10
    g._index(3)
    # recent: 5, 4, 3. top: 3 (10), then 0-score ties newer first: 5, 4.
    # hot (decay 1): key = log10(1 + s) + t: p5 = 5, p3 = 1.04 + 3 = 4.04, p4 = 4.
    assert g.feed(0) == expected
    assert len(g.feed(0)) == 3  # feed_size caps it


def test_action_spec_schema_and_checks():
    spec = FeedActionSpec(3, max_chars=10)
    schema = spec.json_schema()
    assert schema["properties"]["action"]["enum"] == [
        "post",
        "comment",
        "upvote",
        "follow",
        "nothing",
    ]
    assert schema["properties"]["item"]["enum"] == [0, 1, 2, 3]
    assert schema["properties"]["text"]["maxLength"] == 10
    assert schema["required"] == ["action", "item", "text"]
    assert FeedActionSpec(0).acts == ("post", "nothing")
    assert spec.check({"action": "post", "item": 2, "text": " hello   world and more "}) == (
        FeedAction("post", 0, "hello worl")
    )
    assert spec.check({"action": "upvote", "item": 2, "text": "x"}) == FeedAction("upvote", 2, "")
    for bad in ({"action": "comment", "item": 0, "text": "x"}, {"action": "post", "item": 0,
                "text": "  "}, {"action": "upvote", "item": 4, "text": ""},
                {"action": "shout", "item": 0, "text": ""}, {"action": "upvote", "item": True,
                "text": ""}, "post"):  # fmt: skip
        with pytest.raises(IllegalAction):
            spec.check(bad)
    assert spec.legalize({"action": "comment", "item": 0, "text": "x"}) == (
        FeedAction("nothing"),
        True,
    )


def test_rank_index_reads_cost_k_log_n_not_n():
    idx = RankIndex()
    for p in range(10_000):
        idx.push(p, float(p % 7))
    idx.ops = 0
    assert idx.top(5) == [9995, 9988, 9981, 9974, 9967]  # key 6, newest first
    assert idx.ops == 10  # 5 pops and 5 pushes back
    idx.push(9995, -1.0)  # re-keyed: its old entry is stale
    idx.ops = 0
    assert idx.top(2) == [9988, 9981] and idx.ops == 5  # the stale entry dropped once


def test_feed_ranking_is_not_quadratic_in_posts():
    """One period of feed reads costs the same heap operations at P and 2P posts."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_feed", ROOT / "bench" / "feed.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    _, ops1 = bench.ranking_cost(300, 5_000, 10, 3)
    _, ops2 = bench.ranking_cost(300, 10_000, 10, 3)
    assert ops2 < 1.1 * ops1  # a scan of the posts per read would double them


def test_state_round_trip_keeps_feeds():
    g = hand_game()
    step(
        g,
        {
            0: FeedAction("upvote", 3),
            2: FeedAction("comment", 2, "c"),
            3: FeedAction("post", 0, "b1"),
        },
    )
    state = json.loads(json.dumps(g.get_state()))
    h = hand_game()
    h.set_state(state)
    assert h.get_state() == g.get_state()
    assert [h.feed(k) for k in range(4)] == [g.feed(k) for k in range(4)]
    assert h.observation(0) == g.observation(0)
    with pytest.raises(ValueError, match="agents"):
        FeedGame(2, periods=1, communities=["a"], topics=[""], members=[[0]] * 2,
                 follows=[[]] * 2).set_state(state)  # fmt: skip


def test_scripted_policies():
    g = hand_game(probe_every=1, question="q?", options=["yes", "no"])
    turns = g.pending(None)  # type: ignore[arg-type]
    assert [t.purpose for t in turns] == [FeedKind.ACT] * 4 + [FeedKind.PROBE] * 4
    copy, up, lurk = (make_feed_policy(n) for n in ("copy_top", "upvote_top", "lurker"))
    assert copy.act(turns[0], None) == FeedAction("post", 0, "b0")  # type: ignore[arg-type]
    assert copy.act(turns[3], None) == FeedAction("nothing")  # type: ignore[arg-type]
    assert up.act(turns[0], None) == FeedAction("upvote", 1)  # type: ignore[arg-type]
    assert lurk.act(turns[0], None) == FeedAction("nothing")  # type: ignore[arg-type]
    assert lurk.act(turns[5], None) == 1  # type: ignore[arg-type]  # its slot's option
    with pytest.raises(ValueError, match="valid names"):
        make_feed_policy("shouter")
    with pytest.raises(ValueError, match="add up"):
        make_feed_policy({"name": "random", "post": 0.9, "comment": 0.9})


def test_llm_policy_prompt_schema_repair_and_fallback():
    g = hand_game(probe_every=1, question="Meet weekly?", options=["yes", "no"])
    turns = g.pending(None)  # type: ignore[arg-type]
    llm = LLMFeeder(Prompts(defaults=FEED_PROMPTS), persona="You like plants.")
    reqs, out = drive(
        llm.answer(turns[0], None, {}), ['{"action": "upvote", "item": 2, "text": ""}']
    )
    req: ChatRequest = reqs[0]
    assert req.json_schema == turns[0].spec.json_schema()
    system, user = req.messages[0]["content"], req.messages[1]["content"]
    assert system.startswith("You like plants.") and "a (about ta)" in system
    assert "[1] Agent 3 in b, 0 upvotes: b0" in user and "[2] Agent 2 in a" in user
    assert out.valid and out.action == FeedAction("upvote", 2, "")
    # An illegal act (a comment on no item) is repaired once, then the fallback.
    bad = '{"action": "comment", "item": 0, "text": "x"}'
    reqs, out = drive(llm.answer(turns[0], None, {}), [bad, bad])
    assert len(reqs) == 2 and "needs an item" in reqs[1].messages[-1]["content"]
    assert not out.valid
    reqs, out = drive(llm.answer(turns[4], None, {}), ['{"answer": "no"}'])
    assert reqs[0].json_schema["properties"]["answer"]["enum"] == ["yes", "no"]
    assert "Meet weekly?" in reqs[0].messages[1]["content"] and out.action == 1


# -- runs -------------------------------------------------------------------------------------
def texts_per_period(run: Any) -> list[int]:
    return list(af.texts(run).groupby("period")["text"].nunique())


def test_copiers_converge_to_one_text(tmp_path):
    """Copiers and upvoters only: no new words can enter, the texts of a period collapse."""
    sc = load_scenario(SCRIPTED, ["population.groups=[{name: c, count: 24, strategy: copy_top}, "
                                  "{name: u, count: 8, strategy: upvote_top}]"])  # fmt: skip
    res = society.run(sc, out=tmp_path / "r")
    run = analysis.load_run(res.run_dir)
    distinct = texts_per_period(run)
    assert distinct[-1] == 1 and all(b <= a for a, b in zip(distinct, distinct[1:], strict=False))
    stab = af.stabilisation(run, LEX)
    assert stab["within_similarity"].iloc[-1] == pytest.approx(1.0)
    assert stab["birth"].iloc[-1] == 0.0 and stab["death"].iloc[-1] == 0.0
    assert stab["within_similarity"].iloc[0] < 0.6


@pytest.mark.slow
def test_shipped_scripted_scenario_measures(tmp_path):
    res = society.run(SCRIPTED, out=tmp_path / "r")
    run = analysis.load_run(res.run_dir)
    s = af.summary(run, LEX)
    assert s["within_similarity_last"] > s["within_similarity_first"] + 0.3
    assert s["agreement_last"] > s["agreement_first"]
    distinct = texts_per_period(run)
    assert distinct[-1] < distinct[0]
    # Influence: the graph is the comments and upvotes; its edges are those events.
    pr = af.pagerank(run)
    ev = run.events[run.events["kind"].isin(["comment", "upvote"])]
    assert set(pr["period"]) == set(ev["round"])
    inf = af.influence(run)
    assert list(inf["period"]) == sorted(set(ev["round"])) and (inf["top_k_share"] <= 1).all()
    first = ev[ev["round"] == 0]
    g = analysis.convergence.interaction_graph(run, "round", 0, kinds=af.EDGE_KINDS)
    assert g.number_of_edges() == len(set(zip(first["agent_id"], first["partner_id"], strict=True)))
    con = af.consensus(run)
    assert list(con["period"]) == [0, 3, 6, 9] and (con["n"] == 36).all()
    ine = af.inertia(run, LEX)
    assert set(range(24)) <= set(ine["agent_id"]) and ine["drift"].between(-1e-9, 2).all()


@pytest.mark.slow
def test_report_section_show_and_escaping(tmp_path):
    from analysis.report import analyze, show

    evil = [f'game.communities.{k}.seeds=["<script>alert(1)</script> say yes"]' for k in range(4)]
    sc = load_scenario(SCRIPTED, [*evil, "game.periods=3"])
    res = society.run(sc, out=tmp_path / "r")
    rep = analyze(res.run_dir, tmp_path / "rep")
    key = dict(rep.key)
    assert (
        "within-period similarity (last period)" in key
        and "top-3 PageRank share (last period)" in key
    )
    for name in ("feed_activity.csv", "feed_stabilisation.csv", "feed_influence.csv",
                 "feed_consensus.csv", "feed_stabilisation.png", "feed_influence.png"):  # fmt: skip
        assert (tmp_path / "rep" / name).exists(), name
    html = rep.summary_html.read_text()
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    text = show(res.run_dir)
    assert "social feed: period" in text


FAKE_LLM = {
    "name": "feed-fake",
    "seed": 3,
    "backend": {"kind": "fake", "model": "fake"},
    "population": {
        "groups": [
            {"name": "llm", "kind": "llm", "count": 6, "persona": "You like tea."},
            {"name": "rnd", "count": 4, "strategy": "random"},
            {"name": "cp", "count": 4, "strategy": "copy_top"},
        ]
    },
    "game": {
        "kind": "social_feed",
        "periods": 6,
        "communities": [{"name": "a", "seeds": ["hello there"]}, {"name": "b", "seeds": ["hi"]}],
        "communities_per_agent": 2,
        "initial_follows": 2,
        "probe": {"question": "Tea or coffee?", "options": ["tea", "coffee"], "every": 2},
    },
}


def test_llm_agents_through_the_fake_backend(tmp_path):
    res = society.run(FAKE_LLM, out=tmp_path / "r")
    run = analysis.load_run(res.run_dir)
    d = run.decisions
    llm = d[d["grp"] == "llm"]
    assert set(llm["kind"]) == {"act", "probe"} and len(llm) == 6 * 6 + 6 * 4
    assert {"post", "upvote"} <= set(llm["action"])
    probes = llm[llm["kind"] == "probe"]
    assert set(probes["action"]) <= {"tea", "coffee"}
    msgs = json.loads(query(res.run_dir, "SELECT messages FROM llm_calls LIMIT 1")[0][0])
    assert msgs[0]["content"].startswith("You like tea.")


@pytest.mark.parametrize("cut", [1, 4])
@pytest.mark.parametrize("which", ["scripted", "fake_llm"])
def test_interrupted_run_resumes_identically(tmp_path, monkeypatch, cut, which):
    from tests.test_resume import interrupt_resume_compare

    if which == "scripted":
        import yaml

        data = yaml.safe_load(SCRIPTED.read_text())
        data["game"]["periods"] = 6
    else:
        data = FAKE_LLM
    interrupt_resume_compare(data, cut, tmp_path, monkeypatch)


def test_replay_reproduces_a_feed_run(tmp_path):
    first = society.run(FAKE_LLM, out=tmp_path / "a")
    again = society.run({**FAKE_LLM, "backend": {"kind": "replay", "run": str(first.run_dir)}},
                        out=tmp_path / "b")  # fmt: skip
    for table in ("decisions", "events", "rounds"):
        assert table_rows(first.run_dir, table) == table_rows(again.run_dir, table), table
    assert query(again.run_dir, "SELECT DISTINCT backend FROM llm_calls") == [("replay",)]


def test_seed_fixes_the_run(tmp_path):
    a = society.run(FAKE_LLM, out=tmp_path / "a")
    b = society.run(FAKE_LLM, out=tmp_path / "b")
    c = society.run({**FAKE_LLM, "seed": 4}, out=tmp_path / "c")
    assert table_rows(a.run_dir, "events") == table_rows(b.run_dir, "events")
    assert table_rows(a.run_dir, "events") != table_rows(c.run_dir, "events")


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("game.communities.0.groups=[nobody]", r"game.communities.0.groups: unknown group"),
        ("game.communities_per_agent=9", "communities_per_agent"),
        ("game.ranking=best", "ranking"),
        ("game.feed_size=0", "feed_size"),
        ("game.probe.options=[tea, tea]", "distinct"),
        ("game.initial_follows=99", "initial_follows"),
        ("game.periods=-1", "periods"),
    ],
)
def test_bad_input_names_the_field(override, match):
    with pytest.raises(UserError, match=match):
        sc = load_scenario(SCRIPTED, [override])
        society.run(sc, out=Path("/nonexistent/never"))


@pytest.mark.slow
def test_bad_input_through_the_cli_is_one_line(tmp_path):
    from tests.helpers import run_cli

    out = run_cli("run", str(SCRIPTED), "--set", "game.ranking=best", "--out", str(tmp_path / "r"))
    assert out.returncode == 2 and "Traceback" not in out.stderr and "ranking" in out.stderr


def test_resolve_refuses_evolution():
    import yaml

    data = yaml.safe_load(SCRIPTED.read_text())
    data["evolution"] = {"generations": 2}
    with pytest.raises(UserError, match="cannot evolve"):
        resolve(data, "s")


@pytest.mark.slow
def test_fake_backend_scale_scenario_plays(tmp_path):
    """The 1,000-agent scenario, shortened to 2 periods here (bench/feed.py times all 10)."""
    sc = load_scenario(ROOT / "scenarios" / "social_feed_1000.yaml", ["game.periods=2"])
    res = society.run(sc, out=tmp_path / "r", backends=FakeBackend("fake"))
    (n,) = query(res.run_dir, "SELECT COUNT(*) FROM decisions WHERE kind = 'act'")[0]
    assert n == 2000
