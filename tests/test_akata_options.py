"""Akata et al.'s protocol options for the LLM player of repeated games: one user message,
the one-token label answer (constrained by the backend), shuffling only the question.

Driven by hand (requests and replies), then end to end on the embedded model and on a
real OpenAI-compatible server (llama-cpp-python's) for the backend's choice constraint.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agents.chat import ChatRequest
from agents.llm import choice_parser
from agents.llm_player import LLMPlayer
from agents.prompts import Prompts, game_prompts
from games.observation import RepeatedObservation
from games.twobytwo import preset
from society.backends import make_backend
from society.backends.base import choice_grammar
from society.backends.fake import FakeBackend
from society.backends.openai import OpenAIBackend
from society.errors import UserError
from society.runner import start_run
from society.scenario import resolve
from tests.helpers import drive, query

BOS = preset("battle_of_the_sexes").payoffs
PROMPTS = Prompts(defaults=game_prompts("repeated"))


def obs(my=(0, 1), their=(1, 1), order=(0, 1), rounds=10) -> RepeatedObservation:
    fields = {
        "rounds": rounds,
        "my_moves": list(my),
        "their_moves": list(their),
        "payoffs": BOS,
        "labels": ("J", "F"),
        "order": order,
    }
    return RepeatedObservation(**fields)


# -- the player's options ---------------------------------------------------------------------
def test_single_message_holds_rules_history_and_question():
    player = LLMPlayer(PROMPTS, prompt_format="single_message")
    (req,), out = drive(player.decide(obs(), {}), ['{"choice": "J"}'])
    assert len(req.messages) == 1 and req.messages[0]["role"] == "user"
    text = req.messages[0]["content"]
    rules = text.index("The rules of the game are as follows")
    history = text.index("In round 1, you chose Option J and the other player chose Option F")
    question = text.index("You are currently playing round 3")
    assert rules < history < question
    split = LLMPlayer(PROMPTS).decide(obs(), {})
    (two,), _ = drive(split, ['{"choice": "J"}'])
    assert [m["role"] for m in two.messages] == ["system", "user"]
    assert text == two.messages[0]["content"] + "\n" + two.messages[1]["content"]
    assert out.move == 0 and out.valid


def test_label_answer_asks_for_the_bare_label_constrained():
    player = LLMPlayer(PROMPTS, answer="label", prompt_format="single_message")
    (req,), out = drive(player.decide(obs(order=(1, 0)), {}), ["F"])
    assert req.choice == ("F", "J") and req.json_schema is None
    assert req.messages[-1]["content"].endswith(
        "Q: Which Option do you choose, Option F or Option J?\nA: Option"
    )
    assert "choice" in req.params() and req.params()["choice"] == ["F", "J"]
    assert out.move == 1 and out.valid


def test_label_answer_repair_and_fallback():
    player = LLMPlayer(PROMPTS, answer="label")
    reqs, out = drive(player.decide(obs(), {}), ["maybe", " option j. "])
    assert [r.tags["purpose"] for r in reqs] == ["move", "move:repair"]
    assert reqs[1].messages[-2] == {"role": "assistant", "content": "maybe"}
    assert reqs[1].messages[-1]["content"] == (
        "Your reply was not valid: 'maybe' is not one of ['J', 'F']. Answer again with only "
        "the name of the option: J or F."
    )
    assert out.move == 0 and out.valid
    _, bad = drive(player.decide(obs(), {}), ["X", "Y"])
    assert bad.move is None and not bad.valid


def test_choice_parser():
    parse = choice_parser(["J", "F"])
    assert [parse(t) for t in ("J", " f", '"F"', "Option J", "j.", "**F**")] == list("JFFJJF")
    for text in ("", "JF", "K", '{"choice": "J"}'):
        with pytest.raises(ValueError):
            parse(text)


def test_label_predict_then_act_replays_the_bare_prediction():
    player = LLMPlayer(PROMPTS, answer="label", predict_first=True)
    reqs, out = drive(player.decide(obs(), {}), ["F", "J"])
    assert [r.tags["purpose"] for r in reqs] == ["predict", "move"]
    assert reqs[0].messages[-1]["content"].endswith("Option J or Option F?\nA: Option")
    assert reqs[1].messages[-2] == {"role": "assistant", "content": "F"}
    assert (
        reqs[1]
        .messages[-1]["content"]
        .startswith("Given that you predict the other player will choose Option F in round 3")
    )
    assert all(r.choice == ("J", "F") for r in reqs)
    assert out.prediction == 1 and out.move == 0


def test_shuffle_scope_question_keeps_the_rules_in_order():
    shuffled = obs(order=(1, 0))
    (full,), _ = drive(LLMPlayer(PROMPTS).decide(shuffled, {}), ['{"choice": "J"}'])
    player = LLMPlayer(PROMPTS, shuffle="question")
    (only_q,), _ = drive(player.decide(shuffled, {}), ['{"choice": "J"}'])
    (plain,), _ = drive(LLMPlayer(PROMPTS).decide(obs(), {}), ['{"choice": "J"}'])
    # the rules: reordered by default, in the fixed order with shuffle="question"
    assert "between Option F and Option J" in full.messages[0]["content"]
    assert only_q.messages[0]["content"] == plain.messages[0]["content"]
    rules = only_q.messages[0]["content"]
    assert rules.index("If you choose Option J and the other player chooses Option J") < (
        rules.index("If you choose Option F and the other player chooses Option F")
    )
    # the question: reordered in both
    for req in (full, only_q):
        assert "Option F or Option J?" in req.messages[1]["content"]
        assert req.json_schema["properties"]["choice"]["enum"] == ["F", "J"]


def test_bad_option_values_name_the_option():
    for kw, name in (
        ({"prompt_format": "one"}, "prompt_format"),
        ({"answer": "token"}, "answer"),
        ({"shuffle": "rules"}, "shuffle"),
    ):
        with pytest.raises(ValueError, match=f"^{name}: expected one of"):
            LLMPlayer(PROMPTS, **kw)


# -- requests, grammars, the fake backend ------------------------------------------------------
def test_choice_is_recorded_only_when_set():
    plain = ChatRequest(messages=[{"role": "user", "content": "x"}], json_schema={"a": 1})
    assert "choice" not in plain.params()  # replay keys and derived seeds of old runs stay
    labelled = ChatRequest(messages=plain.messages, choice=("J", "F"), temperature=0.0)
    params = json.loads(json.dumps(labelled.params()))
    again = ChatRequest.from_params(plain.messages, params)
    assert again.choice == ("J", "F") and again.params() == labelled.params()
    assert ChatRequest.from_params(plain.messages, plain.params()).choice is None


def test_choice_grammar_escapes_literals():
    assert choice_grammar(["J", "F"]) == 'root ::= "J" | "F"'
    assert choice_grammar(['a"b', "c\\d", "e\nf"]) == r'root ::= "a\"b" | "c\\d" | "e\nf"'
    with pytest.raises(ValueError):
        choice_grammar([])


def test_fake_backend_answers_choice_requests_with_an_option():
    b = FakeBackend()
    reqs = [ChatRequest(messages=[{"role": "user", "content": str(i)}], choice=("J", "F")) for i in range(20)]  # fmt: skip
    texts = {r.text for r in b.generate(reqs)}
    assert texts == {"J", "F"}


# -- the plug-in: label temperature, scenario fields ---------------------------------------------
def bos_scenario(**game) -> dict:
    return {
        "name": "bos-label",
        "seed": 3,
        "backend": {"kind": "fake", "model": "fake"},
        "population": {
            "groups": [
                {"name": "llm", "count": 1, "kind": "llm", "temperature": 0.9, "max_tokens": 4},
                {"name": "a", "count": 1, "strategy": "always_a"},
                {"name": "alt", "count": 1, "strategy": "alternate"},
            ]
        },
        "matching": {"kind": "round_robin"},
        "game": {"kind": "repeated_2x2", "preset": "battle_of_the_sexes", "rounds": 3, **game},
    }


def test_label_mode_plays_at_temperature_zero_unless_told(tmp_path):
    data = bos_scenario(answer="label", prompt_format="single_message")
    start_run(resolve(data, "s"), tmp_path / "a", quiet=True)
    rows = query(tmp_path / "a", "SELECT params, reply FROM llm_calls")
    assert len(rows) == 2 * 3
    for params, reply in rows:
        p = json.loads(params)
        assert p["temperature"] == 0.0 and p["choice"] == ["J", "F"] and p["json_schema"] is None
        assert reply in ("J", "F")
    data = bos_scenario(answer="label", label_temperature=None)
    start_run(resolve(data, "s"), tmp_path / "b", quiet=True)
    temps = {json.loads(p)["temperature"] for (p,) in query(tmp_path / "b", "SELECT params FROM llm_calls")}  # fmt: skip
    assert temps == {0.9}
    start_run(resolve(bos_scenario(), "s"), tmp_path / "c", quiet=True)  # json: the group's
    (p,) = query(tmp_path / "c", "SELECT params FROM llm_calls LIMIT 1")[0]
    assert json.loads(p)["temperature"] == 0.9 and "choice" not in json.loads(p)


def test_label_run_replays_identically(tmp_path):
    data = bos_scenario(answer="label", shuffle_options=True, shuffle_scope="question")
    start_run(resolve(data, "s"), tmp_path / "rec", quiet=True)
    data["backend"] = {"kind": "replay", "run": str(tmp_path / "rec")}
    start_run(resolve(data, "s"), tmp_path / "rep", quiet=True)
    sql = "SELECT round, agent_id, action, valid, source FROM decisions ORDER BY id"
    assert query(tmp_path / "rec", sql) == query(tmp_path / "rep", sql)


def test_bad_protocol_fields_are_one_line_errors():
    for field, value in (("answer", "token"), ("prompt_format", "x"), ("shuffle_scope", "y")):
        with pytest.raises(UserError, match=f"^s: game.{field}: Input should be") as err:
            resolve(bos_scenario(**{field: value}), "s")
        assert "\n" not in str(err.value)


# -- the OpenAI-compatible backend's choice constraint (a local stub) ---------------------------
class _ChoiceStub:
    """Answers 'J'; with `reject`, answers HTTP 400 to a body that carries a grammar, as
    hosted APIs answer unknown fields."""

    def __init__(self, reject: bool) -> None:
        self.bodies: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.bodies.append(body)
                if reject and "grammar" in body:
                    status, payload = 400, {"error": "Unrecognized request argument: grammar"}
                else:
                    message = {"role": "assistant", "content": "J"}
                    status, payload = 200, {"choices": [{"message": message}]}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _choice_request(i: int = 0) -> ChatRequest:
    msg = [{"role": "user", "content": f"Round {i}. Option J or Option F?\nA: Option"}]
    return ChatRequest(messages=msg, choice=("J", "F"), temperature=0.0, max_tokens=2, seed=i)


def test_openai_body_carries_both_choice_constraints():
    stub = _ChoiceStub(reject=False)
    try:
        b = OpenAIBackend("m", base_url=stub.url, backoff_s=0.001)
        (reply,) = b.generate([_choice_request()])
        assert reply.text == "J" and reply.error is None
        body = stub.bodies[0]
        assert body["structured_outputs"] == {"choice": ["J", "F"]}
        assert body["grammar"] == 'root ::= "J" | "F"' and "response_format" not in body
        b.close()
        b = OpenAIBackend("m", base_url=stub.url, structured="none")
        b.generate([_choice_request()])
        assert "grammar" not in stub.bodies[1] and "structured_outputs" not in stub.bodies[1]
        b.close()
    finally:
        stub.close()


def test_openai_auto_drops_choice_constraints_a_server_rejects():
    stub = _ChoiceStub(reject=True)
    try:
        b = OpenAIBackend("m", base_url=stub.url, backoff_s=0.001, max_retries=0)
        first, second = b.generate([_choice_request(0)]), b.generate([_choice_request(1)])
        assert first[0].text == "J" and second[0].text == "J"
        assert ["grammar" in body for body in stub.bodies] == [True, False, False]
        b.close()
    finally:
        stub.close()


# -- real engines ---------------------------------------------------------------------------
@pytest.mark.llm
def test_llamacpp_choice_is_one_of_the_options():
    b = make_backend("llamacpp", "smollm2-135m")
    try:
        reqs = [_choice_request(i) for i in range(3)]
        hot = ChatRequest(
            messages=reqs[0].messages, choice=("Alpha", 'Be"ta'), temperature=1.5, seed=5
        )
        replies = b.generate([*reqs, hot, hot])
        assert all(r.error is None for r in replies)
        assert [r.text in ("J", "F") for r in replies[:3]] == [True] * 3
        assert all(r.completion_tokens == 1 for r in replies[:3])  # a one-token answer
        assert replies[3].text in ("Alpha", 'Be"ta') and replies[3].text == replies[4].text
    finally:
        b.close()


@pytest.fixture(scope="module")
def llama_server(embedded_gguf, free_port, tmp_path_factory):
    pytest.importorskip("llama_cpp.server.app")
    from tests.servers import start_llama_server, stop

    port = free_port()
    proc = start_llama_server(embedded_gguf, port, tmp_path_factory.mktemp("srv") / "log")
    yield f"http://127.0.0.1:{port}/v1"
    stop(proc)


@pytest.mark.llm
@pytest.mark.slow
def test_openai_choice_on_llama_cpp_server(llama_server):
    b = make_backend("openai", "smollm2-135m", base_url=llama_server, max_concurrency=2)
    try:
        hot = [
            ChatRequest(
                messages=_choice_request(i).messages,
                choice=("Left", "Right"),
                temperature=2.0,
                max_tokens=4,
                seed=i,
            )
            for i in range(4)
        ]
        replies = b.generate([_choice_request(0), _choice_request(1), *hot])
        assert all(r.error is None for r in replies), [r.error for r in replies]
        assert {r.text for r in replies[:2]} <= {"J", "F"}
        assert {r.text for r in replies[2:]} <= {"Left", "Right"}  # hot, yet constrained
        assert {e.url: e.choice for e in b.pool.endpoints}[llama_server]  # it took the grammar
    finally:
        b.close()


@pytest.mark.llm
@pytest.mark.slow
def test_label_mode_end_to_end_on_the_embedded_model(tmp_path):
    data = bos_scenario(
        answer="label", prompt_format="single_message", shuffle_options=True,
        shuffle_scope="question", predict_first=True,
    )  # fmt: skip
    data["backend"] = {"kind": "llamacpp", "model": "smollm2-135m"}
    data["population"]["groups"].pop()  # one partner: always option A
    data["game"]["rounds"] = 2
    start_run(resolve(data, "s"), tmp_path / "r", quiet=True)
    calls = query(tmp_path / "r", "SELECT purpose, reply, completion_tokens FROM llm_calls")
    assert [p for p, _, _ in calls] == ["predict", "move"] * 2
    assert all(reply in ("J", "F") and n == 1 for _, reply, n in calls)
    moves = query(tmp_path / "r", "SELECT valid, source, data FROM decisions WHERE agent_id = 0")
    assert len(moves) == 2 and all(v == 1 and s == "llm" for v, s, _ in moves)
    assert all("prediction" in json.loads(d) for _, _, d in moves)
