"""Messages and bodies; response, SSE and <think> parsing (`mmlab.wire`): pure, no sockets,
but for one leaked-think reply served end to end."""

from __future__ import annotations

import json

import pytest
from helpers import FAKE_KEY

from mmlab import Lab
from mmlab.errors import APIError, RequestError
from mmlab.params import check_params
from mmlab.testing import StandIn
from mmlab.wire import (
    StreamAssembler,
    ThinkSplitter,
    build_body,
    check_messages,
    parse_completion,
    split_think,
)

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


def test_leaked_think_prefix_is_split(db):
    with StandIn(leak_think=True) as server:
        lab = Lab(base_url=server.url, api_key=FAKE_KEY, db=db, quiet=True)
        r = lab.chat("Think out loud please", max_tokens=400)
        s = lab.chat("Think out loud please", max_tokens=400, stream=True, sample=1)
    assert r.reasoning.startswith("step0") and "<think>" not in r.content
    assert r.reasoning_mode == "leaked" and r.content.startswith("The answer")
    assert (s.reasoning, s.content) == (r.reasoning, r.content)


# --- log-probabilities: token confidence (mmlab.confidence) ---------------------------------
def _token(lps: list[float]) -> dict:
    return {"token": "t", "logprob": lps[0],
            "top_logprobs": [{"token": f"t{i}", "logprob": lp} for i, lp in enumerate(lps)]}


TOPS = [[-0.1, -2.3, -3.0], [-0.5, -1.0, -2.0]]
CONF = [5.4 / 3, 3.5 / 3]


def _completion(logprobs: object, **message: object) -> dict:
    return {"choices": [{"message": {"content": "The answer is 4", **message},
                         "finish_reason": "stop", "logprobs": logprobs}]}  # fmt: skip


def test_logprobs_give_each_tokens_confidence_in_both_forms():
    chat = parse_completion(_completion({"content": [_token(t) for t in TOPS]}))
    assert chat.confidence == pytest.approx(CONF) and chat.content == "The answer is 4"
    # llama.cpp's text-completion route: {token: logprob} per token, the sampled token added
    # when it is not among the top k (4 entries here), None for a token without candidates
    legacy = {"choices": [{"text": "4", "finish_reason": "stop", "logprobs": {
        "tokens": ["a", "b", "c"], "token_logprobs": [-0.1, -0.5, -9.0],
        "top_logprobs": [{"a": -0.1, "x": -2.3, "y": -3.0}, None,
                         {"p": -0.5, "q": -1.0, "r": -2.0, "c": -9.0}]}}]}  # fmt: skip
    assert parse_completion(legacy).confidence == pytest.approx(CONF)
    for absent in (None, {}, {"content": None}, {"content": []}):
        assert parse_completion(_completion(absent)).confidence is None


@pytest.mark.parametrize("bad", [
    {"content": [_token([-0.1, float("nan")])]},
    {"content": [_token([-0.1, 5.0])]},  # a probability above 1
    {"content": [_token([-0.1, -1e9])]},  # beyond any real figure
    {"content": [_token([-0.1, "-2"])]},
    {"content": [{"token": "t", "top_logprobs": "many"}]},
    {"content": ["t"]},
    {"content": [{"token": "t", "top_logprobs": [["-1"]]}]},
    {"top_logprobs": [{"a": float("inf")}]},
    {"top_logprobs": [[-1.0]]},
])  # fmt: skip
def test_malformed_logprobs_drop_the_confidence_never_the_answer(bad):
    reply = parse_completion(_completion(bad, reasoning="2 + 2"))
    assert reply.confidence is None
    assert reply.content == "The answer is 4" and reply.reasoning == "2 + 2"


def _chunk(text: str, logprobs: object = None, finish: str | None = None) -> list[str]:
    choice = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
    if logprobs is not None:
        choice["logprobs"] = logprobs
    return [f"data: {json.dumps({'choices': [choice]})}", ""]


def test_streamed_logprobs_are_joined_and_a_bad_part_spoils_only_the_confidence():
    lines = [*_chunk("The answer", {"content": [_token(TOPS[0])]}),
             *_chunk(" is 4", {"content": [_token(TOPS[1])]}),
             *_chunk("", None, "stop"), "data: [DONE]", ""]  # fmt: skip
    reply = _assemble(lines)
    assert reply.confidence == pytest.approx(CONF) and reply.content == "The answer is 4"
    bad = [*_chunk("The answer", {"content": [_token([-0.1, float("nan")])]}), *lines[2:]]
    spoiled = _assemble(bad)
    assert spoiled.confidence is None and spoiled.content == "The answer is 4"
    # a stream without logprobs has none
    assert _assemble([*_chunk("4"), *_chunk("", None, "stop"), "data: [DONE]", ""]
                     ).confidence is None  # fmt: skip
