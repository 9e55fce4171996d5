"""The LLM player of repeated games, driven by hand: prompts, predict-then-act, repair, fallback."""

from __future__ import annotations

import json

import pytest

from agents.llm_player import LLMPlayer
from agents.prompts import Prompts
from games.observation import RepeatedObservation
from games.twobytwo import preset
from tests.helpers import drive

PD = preset("prisoners_dilemma").payoffs


def obs(my=(0, 1), their=(1, 1), order=(0, 1), rounds=10) -> RepeatedObservation:
    return RepeatedObservation(
        rounds=rounds, my_moves=list(my), their_moves=list(their),
        payoffs=PD, labels=("J", "F"), order=order,
    )  # fmt: skip


def test_prompt_states_rules_and_history():
    (req,), out = drive(LLMPlayer(Prompts()).decide(obs(), {"agent": 0}), ['{"choice": "F"}'])
    system, user = req.messages[0]["content"], req.messages[1]["content"]
    assert "You will play 10 rounds in total" in system
    assert (
        "If you choose Option J and the other player chooses Option F, then you win 0 points"
        in system
    )
    assert (
        "In round 1, you chose Option J and the other player chose Option F. Thus, you won 0"
        in user
    )
    assert (
        "In round 2, you chose Option F and the other player chose Option F. Thus, you won 5"
        in user
    )
    assert "You are currently playing round 3" in user
    assert req.json_schema["properties"]["choice"]["enum"] == ["J", "F"]
    assert req.tags == {"agent": 0, "purpose": "move"}
    assert out.move == 1 and out.valid and out.prediction is None


def test_shuffled_order_memory_window_and_persona():
    player = LLMPlayer(Prompts(), memory=1, persona="You are a careful economist.")
    (req,), _ = drive(player.decide(obs(order=(1, 0), rounds=None), {}), ['{"choice": "J"}'])
    system, user = req.messages[0]["content"], req.messages[1]["content"]
    assert system.startswith("You are a careful economist.")
    assert "between Option F and Option J" in system and "rounds in total" not in system
    assert "In round 1" not in user and "In round 2" in user
    assert req.json_schema["properties"]["choice"]["enum"] == ["F", "J"]


def test_predict_then_act():
    player = LLMPlayer(Prompts(), predict_first=True)
    reqs, out = drive(player.decide(obs(), {}), ['{"prediction": "F"}', '{"choice": "F"}'])
    assert [r.tags["purpose"] for r in reqs] == ["predict", "move"]
    assert "predict the other player will choose" in reqs[0].messages[-1]["content"]
    assert reqs[1].messages[-2] == {"role": "assistant", "content": '{"prediction": "F"}'}
    assert (
        "Given that you predict the other player will choose Option F"
        in reqs[1].messages[-1]["content"]
    )
    assert out.prediction == 1 and out.move == 1 and out.valid


def test_invalid_prediction_falls_back_to_the_direct_question():
    player = LLMPlayer(Prompts(), predict_first=True)
    reqs, out = drive(player.decide(obs(), {}), ["maybe", "no idea", '{"choice": "J"}'])
    assert [r.tags["purpose"] for r in reqs] == ["predict", "predict:repair", "move"]
    assert "Which Option do you choose" in reqs[2].messages[-1]["content"]
    assert out.prediction is None and out.move == 0 and out.valid


@pytest.mark.parametrize(
    "replies, move, valid",
    [
        (['{"choice": "option f"}'], 1, True),  # tolerant of case and the "Option" prefix
        (['Option J, clearly. {"choice": "J"}'], 0, True),  # JSON inside free text
        (["J", '{"choice": "J"}'], 0, True),  # repaired on the second try
        (["J", '{"choice": "X"}'], None, False),  # still invalid: fallback is the runtime's
    ],
)
def test_parsing_repair_and_fallback(replies, move, valid):
    reqs, out = drive(LLMPlayer(Prompts()).decide(obs(), {}), replies)
    assert (out.move, out.valid) == (move, valid)
    if len(reqs) == 2:
        repair = reqs[1].messages
        assert repair[-2] == {"role": "assistant", "content": replies[0]}
        assert "not valid" in repair[-1]["content"]
        assert json.dumps(reqs[0].json_schema) in repair[-1]["content"]


def test_prompt_overrides_are_checked():
    with pytest.raises(ValueError, match="prompts.nope: unknown prompt template"):
        Prompts({"nope": "x"})
    with pytest.raises(ValueError, match=r"unknown placeholder\(s\) \['score'\]"):
        Prompts({"repeated.question": "Round {round}, score {score}"})
    p = Prompts({"repeated.question": "R{round}: {first} or {second}?"})
    (req,), _ = drive(LLMPlayer(p).decide(obs(), {}), ['{"choice": "J"}'])
    assert req.messages[-1]["content"].endswith("R3: J or F?")
