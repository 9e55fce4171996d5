"""Numeric actions bounded by construction: `games.protocol.number_schema` and its pattern.

The pure tests check the pattern against Python's `re` on every nearby numeral; the engine
tests decode with the real grammar engines (llama.cpp in-process and behind its OpenAI-
compatible server, xgrammar as vLLM uses it) a prompt that asks for a number far above the
maximum, and check that the old schema (JSON-schema `minimum`/`maximum` only) lets it
through on llama.cpp while the new one cannot.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from agents.chat import ChatRequest
from agents.llm import InvalidReply, spec_parser
from games.donor import DonationSpec, DonorRules
from games.protocol import ENUM_LIMIT, Number, number_pattern, number_schema, object_schema


def _numerals(low: float, high: float, decimals: int) -> set[str]:
    """Numerals around [low, high]: the grid of 0..decimals+1 decimals over a margin, in
    canonical and non-canonical spellings, plus both bounds as Python writes them."""
    out: set[str] = set()
    for d in range(decimals + 2):
        scale = 10**d
        lo, hi = math.floor((low - 1.5) * scale), math.ceil((high + 1.5) * scale)
        step = max(1, (hi - lo) // 400)  # keep it small for wide ranges, ends included
        for k in [*range(lo, hi + 1, step), hi]:
            sign, m = ("-", -k) if k < 0 else ("", k)
            whole, frac = divmod(m, scale)
            text = f"{sign}{whole}" + (f".{frac:0{d}d}" if d else "")
            out |= {text, text + ".", "0" + text.lstrip("-"), text + "0"}
    out |= {repr(float(low)), repr(float(high)), "", "-", ".", "1e1", " 1", "+1"}
    return out


def _legal(text: str, low: float, high: float, decimals: int) -> bool:
    """What the pattern must accept: a canonical numeral in range with at most
    `decimals` decimals, or a bound off that grid written as Python writes it."""
    for bound in (repr(float(low)), repr(float(high))):
        if text == bound and len(bound.partition(".")[2].rstrip("0")) > decimals:
            return True
    m = re.fullmatch(r"-?(0|[1-9][0-9]*)(\.([0-9]+))?", text)
    if m is None or (m.group(3) and len(m.group(3)) > decimals):
        return False
    if text.startswith("-") and float(text) == 0:  # "-0", "-0.0": not written
        return False
    return low <= float(text) <= high


RANGES = [
    (0, 10, 2),
    (0, 13.5, 2),
    (0, 13.335, 2),  # resources off the 2-decimal grid: 13.335 itself is legal
    (0, 30720, 2),  # the donor game's sanity figure
    (0, 0, 2),
    (0.29, 0.3, 2),  # 0.29 * 100 is 28.999999999999996 in floats
    (-2.5, 3.25, 2),
    (-7, -3, 1),
    (80, 200, 0),
    (0, 1000, 0),
    (1, 99999, 0),
    (5, 5.5, 3),
    (12.3456, 12.3457, 4),
]


@pytest.mark.parametrize(("low", "high", "decimals"), RANGES)
def test_pattern_matches_exactly_the_legal_numerals(low, high, decimals):
    pattern = re.compile(number_pattern(low, high, decimals))
    assert pattern.pattern.startswith("^") and pattern.pattern.endswith("$")
    for text in _numerals(low, high, decimals):
        assert bool(pattern.fullmatch(text)) == _legal(text, low, high, decimals), text


def test_pattern_on_random_ranges():
    rng = np.random.default_rng(7)
    for _ in range(60):
        a, b = sorted(rng.uniform(-60, 60, size=2).round(int(rng.integers(0, 4))))
        a, b, decimals = float(a), float(b), int(rng.integers(0, 3))
        pattern = re.compile(number_pattern(a, b, decimals))
        for text in _numerals(a, b, decimals):
            assert bool(pattern.fullmatch(text)) == _legal(text, a, b, decimals), (a, b, text)


def test_pattern_uses_only_grammar_friendly_regex():
    # llama-cpp-python's converter rejects escapes such as \. and \d: none are used
    for low, high, decimals in RANGES:
        assert "\\" not in number_pattern(low, high, decimals)


def test_bad_ranges_are_errors():
    with pytest.raises(ValueError):
        number_pattern(2, 1)
    with pytest.raises(ValueError):
        number_pattern(0, math.inf)
    with pytest.raises(ValueError):
        number_schema(0.2, 0.8, integer=True)  # no whole number in range
    with pytest.raises(ValueError):
        number_pattern(0, 1, decimals=-1)


def test_huge_bounds_keep_the_plain_schema():
    with pytest.raises(ValueError, match="too large"):
        number_pattern(0, 1e300)
    assert number_schema(0, 1e300) == {"type": "number", "minimum": 0, "maximum": 1e300}
    assert number_schema(0, 2**60, integer=True)["type"] == "integer"


def test_schema_forms():
    small = number_schema(80, 200, integer=True)
    assert small == {
        "type": "integer",
        "minimum": 80,
        "maximum": 200,
        "enum": list(range(80, 201)),
    }
    assert len(number_schema(0, ENUM_LIMIT - 1, integer=True)["enum"]) == ENUM_LIMIT
    big = number_schema(0, ENUM_LIMIT, integer=True)
    assert big["type"] == "string" and re.fullmatch(big["pattern"], str(ENUM_LIMIT))
    assert not re.fullmatch(big["pattern"], "1.5")  # whole numbers only
    real = number_schema(0, 13.5)
    assert real["type"] == "string" and (real["minimum"], real["maximum"]) == (0, 13.5)
    assert Number(0, 13.5).json_schema() == object_schema({"amount": real})
    assert Number(0, 10, decimals=0).json_schema()["properties"]["amount"]["pattern"] == (
        number_pattern(0, 10, 0)
    )


def test_donation_spec_schema_is_bounded():
    spec = DonationSpec(13.335, DonorRules(punishment=True))
    schema = spec.json_schema()
    amount = schema["properties"]["amount"]
    assert amount["pattern"] == number_pattern(0, 13.335)
    assert schema["properties"]["punish"] == {"type": "boolean"}
    assert re.fullmatch(amount["pattern"], "13.335")
    assert not re.fullmatch(amount["pattern"], "13.34")


def test_spec_parser_reads_both_forms():
    claim = spec_parser(Number(80, 200, integer=True, field="claim"))
    assert claim('{"claim": 150}') == 150
    assert claim('{"claim": "150"}') == 150
    amount = spec_parser(Number(0, 13.5))
    assert amount('{"amount": "12.25"}') == 12.25
    assert amount('{"amount": 3}') == 3.0
    with pytest.raises(InvalidReply, match="outside"):
        amount('{"amount": "950"}')
    with pytest.raises(InvalidReply, match="not a number"):
        amount('{"amount": "lots"}')


# -- the real grammar engines -----------------------------------------------------------------

OVER = 'Reply with exactly this JSON and nothing else: {"amount": 950}'
PLAIN = object_schema({"amount": {"type": "number", "minimum": 0, "maximum": 13.5}})
SPECS = [Number(0, 13.5), Number(0, 10, integer=True), Number(0, 1000, integer=True)]


def _over_requests(schema: dict, seeds: range) -> list[ChatRequest]:
    return [
        ChatRequest(
            messages=[
                {"role": "system", "content": "You answer in JSON."},
                {"role": "user", "content": OVER},
            ],
            temperature=0.8,
            max_tokens=24,
            seed=s,
            json_schema=schema,
        )
        for s in seeds
    ]


def _amounts(replies) -> list[float]:
    out = []
    for r in replies:
        assert r.error is None, r.error
        value = json.loads(r.text)["amount"]
        out.append(float(value))
    return out


@pytest.fixture(scope="module")
def llamacpp(embedded_gguf):
    pytest.importorskip("llama_cpp")
    from society.backends import make_backend

    b = make_backend("llamacpp", "smollm2-135m", n_ctx=512)
    yield b
    b.close()


@pytest.mark.llm
def test_llamacpp_cannot_decode_a_number_over_the_maximum(llamacpp):
    # the control: minimum/maximum alone do not bound llama.cpp's grammar
    assert max(_amounts(llamacpp.generate(_over_requests(PLAIN, range(2))))) > 13.5
    for spec in SPECS:
        replies = llamacpp.generate(_over_requests(spec.json_schema(), range(2)))
        parse = spec_parser(spec)
        for reply, value in zip(replies, _amounts(replies), strict=True):
            assert spec.low <= value <= spec.high
            assert parse(reply.text) == value  # and the turn's own parser takes it


@pytest.mark.llm
def test_llamacpp_donation_schema_is_bounded(llamacpp):
    from agents.llm_donor import donation_parser, donation_schema

    schema = donation_schema(7.25, False, 40)
    parse = donation_parser(7.25, False)
    prompt = 'Reply {"reasoning": "I am generous", "amount": 950}'
    requests = [
        ChatRequest(
            messages=[{"role": "user", "content": prompt}],
            temperature=0.8,
            max_tokens=48,
            seed=s,
            json_schema=schema,
        )
        for s in range(2)
    ]
    for reply in llamacpp.generate(requests):
        assert reply.error is None, reply.error
        assert 0 <= parse(reply.text)["amount"] <= 7.25


@pytest.mark.llm
@pytest.mark.slow
def test_llama_cpp_server_cannot_decode_a_number_over_the_maximum(embedded_gguf, tmp_path):
    pytest.importorskip("llama_cpp.server.app")
    from society.backends.openai import OpenAIBackend
    from tests.servers import free_port, start_llama_server, stop

    port = free_port()
    proc = start_llama_server(embedded_gguf, port, tmp_path / "log")
    try:
        b = OpenAIBackend(
            "smollm2-135m", base_url=f"http://127.0.0.1:{port}/v1", structured="json_object"
        )
        assert max(_amounts(b.generate(_over_requests(PLAIN, range(2))))) > 13.5
        spec = Number(0, 13.5)
        values = _amounts(b.generate(_over_requests(spec.json_schema(), range(3))))
        assert all(0 <= v <= 13.5 for v in values)
        b.close()
    finally:
        stop(proc)


@pytest.mark.slow  # about 20 s: xgrammar compiles each grammar without a tokenizer
def test_xgrammar_as_vllm_uses_it_accepts_only_legal_numbers():
    xgr = pytest.importorskip("xgrammar")
    from xgrammar.testing import _is_grammar_accept_string as accepts

    for spec, inside, outside in [
        (Number(0, 13.5), ['"13.5"', '"0"', '"7.25"'], ['"13.51"', '"950"', "5", '"-1"']),
        (Number(80, 200, integer=True), ["80", "200"], ["79", "201", "950", '"100"']),
        (Number(0, 1000, integer=True), ['"1000"', '"0"'], ['"1001"', '"5.5"']),
    ]:
        grammar = xgr.Grammar.from_json_schema(json.dumps(spec.json_schema()))
        for value in inside:
            assert accepts(grammar, f'{{"{spec.field}": {value}}}'), value
        for value in outside:
            assert not accepts(grammar, f'{{"{spec.field}": {value}}}'), value


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_cannot_decode_a_number_over_the_maximum(embedded_gguf):
    """The real vLLM CPU engine (structured outputs, xgrammar) with the embedded model's HF
    copy: a prompt asking for 950 gets numbers in range, in both schema forms."""
    pytest.importorskip("vllm")
    from society.backends.vllm import VLLMBackend
    from society.convert import convert_gguf_to_hf

    convert_gguf_to_hf("smollm2-135m")  # reused when already converted
    b = VLLMBackend("smollm2-135m", enforce_eager=True, max_model_len=512)
    try:
        for spec in (Number(0, 13.5), Number(0, 10, integer=True), Number(0, 1000, integer=True)):
            replies = b.generate(_over_requests(spec.json_schema(), range(2)))
            assert all(spec.low <= v <= spec.high for v in _amounts(replies)), spec
    finally:
        b.close()


def test_bench_tells_why_a_donation_reply_failed():
    from bench.donor import reply_cause

    schema = {"properties": {"amount": {"maximum": 10}}}
    assert reply_cause('{"reasoning": "r", "amount": "5"}', schema) == "valid"
    assert reply_cause('{"amount": 950}', schema) == "amount out of range"
    assert reply_cause('{"reasoning": "cut off by max_tok', schema) == "no JSON object"
    assert reply_cause('{"amount": "lots"}', schema) == "amount not a number"
    assert reply_cause('{"amount": 5, "punish": "yes"}', schema) == "other"
