"""Request validation and building; response, SSE and <think> parsing (no sockets)."""

from __future__ import annotations

import json
import math

import pytest

from mmlab.errors import APIError, RequestError
from mmlab.params import check_params
from mmlab.wire import (
    StreamAssembler,
    ThinkSplitter,
    build_body,
    check_messages,
    parse_completion,
    split_think,
)

BAD_PARAMS = [
    ({"temperature": -0.1}, "temperature", "[0, 2]"),
    ({"temperature": 2.01}, "temperature", "[0, 2]"),
    ({"temperature": math.nan}, "temperature", "[0, 2]"),
    ({"temperature": "hot"}, "temperature", "[0, 2]"),
    ({"top_p": 0}, "top_p", "(0, 1]"),
    ({"top_p": 1.5}, "top_p", "(0, 1]"),
    ({"max_tokens": 0}, "max_tokens", ">= 1"),
    ({"max_tokens": -5}, "max_tokens", ">= 1"),
    ({"max_tokens": 10.5}, "max_tokens", "integer"),
    ({"max_tokens": True}, "max_tokens", "integer"),
    ({"top_k": -1}, "top_k", ">= 0"),
    ({"seed": math.inf}, "seed", "integer"),
    ({"frequency_penalty": 3}, "frequency_penalty", "[-2, 2]"),
    ({"repetition_penalty": 0}, "repetition_penalty", "(0, 2]"),
    ({"stop": []}, "stop", "1-4"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "1-4"),
    ({"reasoning": {"effort": "huge"}}, "reasoning.effort", "high"),
    ({"reasoning": {"effort": "high", "max_tokens": 10}}, "reasoning", "not both"),
    ({"reasoning": {"budget": 10}}, "reasoning", "unknown"),
    ({"reasoning": "high"}, "reasoning", "dict"),
    ({"reasoning": {"max_tokens": 0}}, "reasoning.max_tokens", ">= 1"),
    ({"provider": {"order": "deepinfra"}}, "provider.order", "list"),
    ({"provider": {"fastest": True}}, "provider", "unknown"),
    ({"temprature": 0.5}, "temprature", "allowed"),
]


@pytest.mark.parametrize(("params", "field", "hint"), BAD_PARAMS)
def test_bad_params_name_the_field_and_range(params, field, hint):
    with pytest.raises(RequestError) as info:
        check_params(params)
    assert info.value.field == field
    assert hint in str(info.value)


BAD_MESSAGES = [
    ([], "messages", "empty"),
    ([{"role": "user", "content": 42}], "messages[0].content", "string"),
    ([{"role": "user", "content": ["a"]}], "messages[0].content", "string"),
    ([{"role": "robot", "content": "hi"}], "messages[0].role", "system, user"),
    ([{"content": "hi"}], "messages[0].role", "one of"),
    (["hi"], "messages[0]", "dict"),
    ([{"role": "user", "content": "  "}], "messages", "non-blank"),
    ([{"role": "user", "content": "x", "extra": 1}], "messages[0]", "unknown"),
    (42, "messages", "string or a list"),
]


@pytest.mark.parametrize(("messages", "field", "hint"), BAD_MESSAGES)
def test_bad_messages_name_the_field(messages, field, hint):
    with pytest.raises(RequestError) as info:
        check_messages(messages)
    assert info.value.field == field
    assert hint in str(info.value)


def test_params_are_normalised_and_ordered():
    out = check_params({"seed": 3.0, "max_tokens": 100, "temperature": 1, "top_p": None})
    assert out == {"temperature": 1.0, "max_tokens": 100, "seed": 3}
    assert isinstance(out["temperature"], float) and isinstance(out["seed"], int)
    assert list(out) == ["temperature", "max_tokens", "seed"]


def test_body_keeps_a_fixed_field_order():
    body = build_body(
        "m", check_messages("hi", system="sys"), check_params({"seed": 1, "temperature": 0.5})
    )
    assert list(body) == ["model", "messages", "temperature", "seed"]
    assert body["messages"][0] == {"role": "system", "content": "sys"}


@pytest.mark.parametrize(
    ("content", "reasoning", "answer"),
    [
        ("<think>plan</think>42", "plan", "42"),
        ("  <think>\nplan\n</think>\n\n42", "plan", "42"),
        ("<think>still thinking", "still thinking", ""),
        ("no tags", "", "no tags"),
        ("answer <think>x</think>", "", "answer <think>x</think>"),
    ],
)
def test_split_think(content, reasoning, answer):
    assert split_think(content) == (reasoning, answer)


def test_think_splitter_handles_tags_split_across_deltas():
    splitter = ThinkSplitter()
    out = []
    for piece in ["<th", "ink>", "step one ", "</th", "ink>", "The ", "answer"]:
        out += splitter.feed(piece)
    out += splitter.flush()
    reasoning = "".join(t for k, t in out if k == "reasoning")
    content = "".join(t for k, t in out if k == "content")
    assert reasoning == "step one "
    assert content == "The answer"


def test_think_splitter_passes_plain_text_through():
    splitter = ThinkSplitter()
    assert splitter.feed("<b>bold") == [("content", "<b>bold")]


def _sse(*events: object) -> list[str]:
    lines = []
    for e in events:
        if isinstance(e, str):
            lines += [e, ""]
        else:
            lines += ["data: " + json.dumps(e), ""]
    return lines


def _assemble(lines: list[str], deltas: list | None = None):
    clock = iter(range(100))
    asm = StreamAssembler(
        deltas.append if deltas is not None else None, lambda: float(next(clock)), 0.0
    )
    for line in lines:
        asm.feed_line(line)
        if asm.done:
            break
    return asm.finish()


def test_stream_ignores_keepalives_and_reads_usage_after_finish():
    deltas: list = []
    reply = _assemble(
        _sse(
            ": OPENROUTER PROCESSING",
            {"id": "gen-1", "provider": "P", "choices": [{"delta": {"reasoning": "think "}}]},
            "data: : OPENROUTER PROCESSING",
            {"choices": [{"delta": {"content": "42"}}]},
            {"choices": [{"delta": {}, "finish_reason": "stop"}]},
            {
                "choices": [],
                "usage": {
                    "prompt_tokens": 5,
                    "completion_tokens": 9,
                    "cost": 0.01,
                    "completion_tokens_details": {"reasoning_tokens": 7},
                },
            },
            "data: [DONE]",
        ),
        deltas,
    )
    assert (reply.content, reply.reasoning, reply.finish_reason) == ("42", "think ", "stop")
    assert reply.usage.completion_tokens == 9 and reply.usage.reasoning_tokens == 7
    assert reply.billed_cost_usd == 0.01
    assert reply.generation_id == "gen-1" and reply.provider == "P"
    assert reply.reasoning_mode == "native"
    assert deltas == [("reasoning", "think "), ("content", "42")]
    assert reply.ttft_s is not None


def test_stream_mid_stream_error_raises():
    lines = _sse(
        {"choices": [{"delta": {"content": "partial"}}]},
        {
            "error": {"code": 502, "message": "upstream died"},
            "choices": [{"delta": {"content": ""}, "finish_reason": "error"}],
        },
    )
    with pytest.raises(APIError) as info:
        _assemble(lines)
    assert info.value.mid_stream and info.value.retryable and info.value.status == 502


def test_stream_cut_before_finish_raises_retryable():
    with pytest.raises(APIError) as info:
        _assemble(_sse({"choices": [{"delta": {"content": "partial"}}]}))
    assert info.value.retryable and info.value.error_type == "connection"


def test_stream_splits_leaked_think_tags():
    reply = _assemble(
        _sse(
            {"choices": [{"delta": {"content": "<think>hmm"}}]},
            {"choices": [{"delta": {"content": "</think>yes"}}]},
            {"choices": [{"delta": {}, "finish_reason": "stop"}]},
            "data: [DONE]",
        )
    )
    assert (reply.reasoning, reply.content, reply.reasoning_mode) == ("hmm", "yes", "leaked")


def test_error_only_200_body_raises():
    with pytest.raises(APIError) as info:
        parse_completion({"choices": None, "error": {"code": 429, "message": "slow down"}})
    assert info.value.status == 429 and info.value.retryable


def test_choice_error_with_partial_content_raises():
    body = {
        "choices": [
            {
                "finish_reason": "error",
                "message": {"content": "half"},
                "error": {
                    "code": 502,
                    "message": "cut",
                    "metadata": {"error_type": "provider_unavailable"},
                },
            }
        ]
    }
    with pytest.raises(APIError) as info:
        parse_completion(body)
    assert info.value.error_type == "provider_unavailable" and info.value.mid_stream


def test_availability_retry_after_is_read():
    body = {
        "error": {
            "code": 503,
            "message": "busy",
            "availability": {
                "code": "temporarily_unavailable",
                "retryable": True,
                "retry_after": 7,
            },
        }
    }
    with pytest.raises(APIError) as info:
        parse_completion(body)
    assert info.value.retry_after == 7 and info.value.retryable
    assert info.value.error_type == "temporarily_unavailable"


def test_fatal_statuses_are_not_retryable():
    for code in (400, 401, 402, 403, 404):
        with pytest.raises(APIError) as info:
            parse_completion({"error": {"code": code, "message": "no"}})
        assert not info.value.retryable
