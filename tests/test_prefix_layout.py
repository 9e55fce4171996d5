"""Prompt layout for prefix caching: what agents share comes first; a batch is sent
sorted by prefix; identical requests are computed once (and still recorded)."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from itertools import combinations

import pytest

from agents.chat import ChatReply, ChatRequest
from bench.prefix import name_first
from society.backends.fake import FakeBackend
from society.decide import Decider, Job
from society.runner import start_run
from society.scenario import load_scenario
from tests.helpers import ROOT, query
from tests.test_shipped_scenarios import shorter

# One LLM scenario of every game whose prompts this project writes.
GAMES = [
    "ipd_llm",
    "donor_game",
    "travelers_dilemma_llm",
    "commons_fishery",
    "commons_pasture",
    "commons_pollution",
    "atp_exploration",
    "atp_diffusion",
    "marketplace_restaurants_3x9",
]


def _lcp(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


def shared_fractions(run_dir, game: str) -> list[float]:
    """For every pair of different agents asked the same thing in the same step: the
    length of their prompts' common prefix over the length of the first message (the
    rules); the pairs of the step with the most calls."""
    rows = query(run_dir, "SELECT round, purpose, agent_id, messages FROM llm_calls ORDER BY id")
    groups: dict[tuple, dict[int, list]] = defaultdict(dict)
    for rnd, purpose, agent, messages in rows:
        groups[(rnd, purpose)].setdefault(agent, json.loads(messages))
    best = max(groups.values(), key=len)
    if len(best) < 2:  # one LLM agent (against scripted ones): its calls of one step
        rows = [r for r in rows if (r[0], r[1]) == (rows[0][0], rows[0][1])]
        best = {k: json.loads(r[3]) for k, r in enumerate(rows)}
    assert len(best) >= 2, f"{game}: no step with two requests asked alike"
    out = []
    for (_, a), (_, b) in combinations(best.items(), 2):
        flat_a = "\x00".join(m["content"] for m in a)
        flat_b = "\x00".join(m["content"] for m in b)
        out.append(_lcp(flat_a, flat_b) / len(a[0]["content"]))
    return out


def run(game: str, tmp_path, prompts: dict[str, str] | None = None):
    path = ROOT / "scenarios" / f"{game}.yaml"
    sc = load_scenario(path, shorter(path), backend="fake", model="fake")
    if prompts:
        sc = sc.model_copy(update={"prompts": prompts})
    start_run(sc, tmp_path / game, quiet=True)
    return tmp_path / game


@pytest.mark.parametrize("game", GAMES)
def test_agents_of_one_step_share_the_rules_as_prefix(tmp_path, game):
    fractions = shared_fractions(run(game, tmp_path), game)
    # Some pair of agents shares (almost) its whole first message: the rules. The rest of
    # the prompt (name, history, memo, item) is the agents' own and comes after.
    assert max(fractions) >= 0.9, (game, sorted(fractions)[-3:])


def test_commons_rules_come_before_the_name(tmp_path):
    """The commons rules once began with the agent's name ("You are Alice, one of ..."),
    so no two agents shared more than a few characters; now every pair shares the whole
    rules (a whole system message, which even message-granular caches reuse)."""
    run_dir = run("commons_fishery", tmp_path)
    assert min(shared_fractions(run_dir, "commons")) >= 1.0
    rows = query(run_dir, "SELECT messages FROM llm_calls WHERE round = 0 ORDER BY id")
    firsts = [json.loads(m)[0]["content"] for (m,) in rows]
    assert len(set(firsts)) == 1  # one system message for all
    old = [name_first(json.loads(m)) for (m,) in rows]  # the layout first shipped
    flat = ["\x00".join(x["content"] for x in m) for m in old]
    assert max(_lcp(a, b) for a, b in combinations(flat, 2)) < 0.1 * len(old[0][0]["content"])


def _job(agent: int, request: ChatRequest) -> Job:
    def gen():
        reply = yield request
        return reply

    return Job(agent, "b", gen())


def test_identical_requests_are_computed_once_and_recorded_twice():
    seen: list[str] = []

    def responder(r: ChatRequest) -> str:
        seen.append(r.messages[-1]["content"])
        return "echo " + r.messages[-1]["content"]

    backend = FakeBackend(responder=responder)
    decider = Decider({"b": backend}, base_seed=1)
    same = [{"role": "system", "content": "rules"}, {"role": "user", "content": "q"}]
    jobs = [
        _job(0, ChatRequest(messages=list(same), seed=5)),
        _job(1, ChatRequest(messages=list(same), seed=5)),  # identical: computed once
        _job(2, ChatRequest(messages=list(same), seed=6)),  # another seed: computed
        _job(3, ChatRequest(messages=[same[0], {"role": "user", "content": "a"}], seed=5)),
    ]
    decider.run(jobs, 0)
    assert backend.calls == 3 and sorted(seen) == ["a", "q", "q"]
    assert [j.result.text for j in jobs] == ["echo q", "echo q", "echo q", "echo a"]
    assert jobs[0].result is not jobs[1].result  # each agent fills its own reply
    rows = decider.take_calls()
    assert len(rows) == 4  # every decision's call is recorded
    tokens = [(r[13], r[14], r[15]) for r in rows]  # prompt, completion tokens, latency
    assert tokens[1] == (0, 0, 0.0) and tokens[0][0] > 0 and tokens[2][0] > 0


def test_a_batch_is_sent_sorted_by_prefix_and_answered_in_order():
    batches: list[list[str]] = []

    class Recording(FakeBackend):
        def generate(self, requests):
            batches.append([r.messages[0]["content"] for r in requests])
            return super().generate(requests)

    backend = Recording(responder=lambda r: r.messages[0]["content"])
    decider = Decider({"b": backend}, base_seed=1)
    texts = ["rules B x", "rules A y", "rules B z", "rules A w"]
    jobs = [
        _job(k, ChatRequest(messages=[{"role": "user", "content": t}])) for k, t in enumerate(texts)
    ]
    decider.run(jobs, 0)
    assert batches == [sorted(texts)]
    assert [j.result.text for j in jobs] == texts
    assert isinstance(jobs[0].result, ChatReply)
