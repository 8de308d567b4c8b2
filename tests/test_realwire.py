"""The wire as it really is: shapes seen in real recorded traffic (OpenRouter incl. MiniMax,
DeepSeek, Groq, Together, vLLM), written out by hand and served verbatim by the stand-in.
(`bench/realwire_check.py` checks the client against the recordings themselves.)"""

from __future__ import annotations

import json

import pytest
from conftest import FAKE_KEY

from mmlab import Lab
from mmlab.bundle import export_bundle
from mmlab.endpoints import OpenRouter
from mmlab.errors import APIError
from mmlab.retry import RetryPolicy
from mmlab.testing import Fault


def sse(*events: object, keepalive: bool = True) -> str:
    """An SSE body: keep-alive comments, then one ``data:`` event per object, then [DONE]."""
    head = ": OPENROUTER PROCESSING\n\n" if keepalive else ""
    return head + "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def chunk(delta: dict | None = None, finish: str | None = None, **extra: object) -> dict:
    base = {"id": "gen-rw-1", "provider": "Minimax", "model": "minimax/minimax-m1",
            "object": "chat.completion.chunk", "created": 1}  # fmt: skip
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish,
              "native_finish_reason": extra.pop("native", finish)}  # fmt: skip
    return {**base, "choices": [choice], **extra}


USAGE = {"prompt_tokens": 43, "completion_tokens": 200, "total_tokens": 243, "cost": 0.0004572,
         "prompt_tokens_details": {"cached_tokens": 0},
         "completion_tokens_details": {"reasoning_tokens": 200}}  # fmt: skip


@pytest.fixture
def strict(standin, db):
    """A lab that does not retry: the first reply is the one read."""
    lab = Lab(endpoint=OpenRouter(standin.url, FAKE_KEY), db=db, quiet=True,
              retry=RetryPolicy(max_retries=0))  # fmt: skip
    yield lab
    lab.close()


def test_minimax_token_limit_chunk_is_a_truncated_billed_reply(lab, standin):
    # MiniMax: thinking ate max_tokens; finish "length" with no answer, then an error chunk
    # {code 400, "Token limit reached"} that carries the usage.
    body = sse(
        chunk({"role": "assistant", "content": "", "reasoning": "We need to add "}),
        chunk({"reasoning": "seven and five. Wait"}),
        chunk({"content": ""}, "length"),
        {**chunk({"content": ""}), "error": {"code": 400, "message": "Token limit reached"},
         "usage": USAGE},  # fmt: skip
    )
    standin.enqueue(Fault.raw(body))
    r = lab.chat("What is 7 + 5?", stream=True, max_tokens=200)
    assert r.finish_reason == "length" and r.truncated and r.content == ""
    assert r.reasoning == "We need to add seven and five. Wait"
    assert r.usage.completion_tokens == 200 and r.usage.reasoning_tokens == 200
    assert r.cost_usd == pytest.approx(0.0004572) and r.cost_source == "billed"
    assert r.notice == "Token limit reached"
    assert len(standin.seen) == 1  # read once, not retried as a failure
    calls = lab.calls()
    assert calls["truncated"].iloc[-1] == 1 and calls["error"].isna().all()
    again = lab.chat("What is 7 + 5?", stream=True, max_tokens=200)
    assert again.cache_hit and again.truncated and again.notice == "Token limit reached"


def test_an_error_chunk_that_is_not_a_token_limit_stays_an_error(strict, standin):
    body = sse(
        chunk({"role": "assistant", "content": "Hel"}),
        {**chunk({"content": ""}), "error": {"code": 502, "message": "upstream went away"},
         "usage": USAGE},  # fmt: skip
    )
    standin.enqueue(Fault.raw(body))
    with pytest.raises(APIError) as info:
        strict.chat("hi", stream=True)
    assert info.value.mid_stream and info.value.status == 502 and info.value.retryable


@pytest.mark.parametrize(
    ("status", "error", "reason", "retryable"),
    [
        (429, {"code": 429, "message": "Provider returned error", "metadata": {
            "provider_name": "Google", "raw": "model-x is temporarily rate-limited upstream"}},
         "temporarily rate-limited upstream", True),
        (400, {"code": 400, "message": "Provider returned error", "metadata": {
            "provider_name": "OpenAI", "raw": json.dumps({"error": {
                "message": "Unsupported value: 'none' for reasoning.effort",
                "type": "invalid_request_error"}}, indent=2)}},
         "Unsupported value: 'none' for reasoning.effort", False),
        (200, {"code": 429, "message": "Provider returned error", "metadata": {
            "provider_name": "Google", "raw": "rate-limited upstream, retry shortly"}},
         "rate-limited upstream, retry shortly", True),
    ],
    ids=["429-raw-text", "400-raw-json-string", "200-with-error"],
)  # fmt: skip
def test_errors_carry_the_upstream_reason_and_provider(strict, standin, status, error, reason,
                                                       retryable):  # fmt: skip
    standin.enqueue(Fault.raw(json.dumps({"error": error, "user_id": "user_x"}), status=status))
    with pytest.raises(APIError) as info:
        strict.chat("hi")
    message = str(info.value)
    assert reason in message and "provider: " in message
    assert info.value.status == error["code"] and info.value.retryable is retryable
    assert reason in strict.calls()["error"].iloc[-1]  # the log keeps the reason too


def test_groq_usage_in_x_groq(lab, standin):
    body = sse(
        {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "r1-distill",
         "choices": [{"index": 0, "delta": {"role": "assistant", "reasoning": "think"},
                      "finish_reason": None}]},
        {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "r1-distill",
         "choices": [{"index": 0, "delta": {"content": "done"}, "finish_reason": None}]},
        {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "r1-distill",
         "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
         "x_groq": {"id": "req_1", "usage": {"queue_time": 0.05, "prompt_tokens": 573,
                                             "completion_tokens": 1509, "total_tokens": 2082}}},
        keepalive=False,
    )  # fmt: skip
    standin.enqueue(Fault.raw(body))
    r = lab.chat("alfajores?", stream=True)
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (573, 1509)
    assert r.content == "done" and r.reasoning == "think"


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": 20, "completion_tokens": 5, "cached_tokens": 12},  # Together
        {"prompt_tokens": 20, "completion_tokens": 5, "prompt_cache_hit_tokens": 12,
         "prompt_cache_miss_tokens": 8},  # DeepSeek
        {"prompt_tokens": 20, "completion_tokens": 5,
         "prompt_tokens_details": {"cached_tokens": 12}},  # OpenRouter / OpenAI
    ],
    ids=["together", "deepseek", "openrouter"],
)  # fmt: skip
def test_cached_prompt_tokens_wherever_the_server_puts_them(lab, standin, usage):
    body = {"id": "x", "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "ok"}}], "usage": usage}  # fmt: skip
    standin.enqueue(Fault.raw(json.dumps(body)))
    assert lab.chat("hi").usage.cached_tokens == 12


@pytest.mark.parametrize("stream", [True, False])
def test_native_finish_reason_error_is_an_error(strict, standin, stream):
    if stream:
        body = sse(chunk({"role": "assistant", "content": "partial"}),
                   chunk({}, "stop", native="error"), {**chunk(), "choices": [], "usage": USAGE})
    else:
        body = json.dumps({"id": "x", "model": "m", "usage": USAGE, "choices": [
            {"index": 0, "finish_reason": "stop", "native_finish_reason": "error",
             "message": {"role": "assistant", "content": "partial"}}]})  # fmt: skip
    standin.enqueue(Fault.raw(body))
    with pytest.raises(APIError, match="native 'error'") as info:
        strict.chat("hi", stream=stream)
    assert info.value.retryable
    assert strict.engine.store.cache_stats()[0] == []  # a failed generation is never cached


def test_encrypted_only_reasoning_says_so(lab, standin):
    encrypted = {"type": "reasoning.encrypted", "data": "gAAAAB...", "id": "rs_1",
                 "format": "openai-responses-v1", "index": 0}  # fmt: skip
    body = sse(
        chunk({"role": "assistant", "content": "", "reasoning": None,
               "reasoning_details": [encrypted]}),  # fmt: skip
        chunk({"content": "I am a model."}),
        chunk({}, "stop"),
        {**chunk(), "choices": [], "usage": {**USAGE, "completion_tokens_details": {
            "reasoning_tokens": 0}}},  # fmt: skip
    )
    standin.enqueue(Fault.raw(body))
    r = lab.chat("who are you?", stream=True)
    assert r.reasoning == "" and r.reasoning_mode == "encrypted"
    assert r.reasoning_details == [encrypted]
    # reasoning tokens billed but no text at all: encrypted too, not "none"
    plain = {"id": "y", "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
             "message": {"role": "assistant", "content": "hi", "reasoning": None}}],
             "usage": USAGE}  # fmt: skip
    standin.enqueue(Fault.raw(json.dumps(plain)))
    assert lab.chat("who else?").reasoning_mode == "encrypted"


def test_multi_turn_hands_reasoning_details_back(lab, standin, tmp_path):
    # streamed reasoning_details arrive in fragments: joined back into one block per index
    body = sse(
        chunk({"role": "assistant", "content": "", "reasoning": "Seven plus ",
               "reasoning_details": [{"type": "reasoning.text", "text": "Seven plus ",
                                      "index": 0, "format": None}]}),
        chunk({"reasoning": "five is 12.", "reasoning_details": [
            {"type": "reasoning.text", "text": "five is 12.", "index": 0, "format": None,
             "signature": "sig-1"}]}),
        chunk({"content": "12"}),
        chunk({}, "stop"),
        {**chunk(), "choices": [], "usage": USAGE},
    )  # fmt: skip
    standin.enqueue(Fault.raw(body))
    first = lab.chat("What is 7 + 5?", stream=True)
    block = {"type": "reasoning.text", "text": "Seven plus five is 12.", "index": 0,
             "format": None, "signature": "sig-1"}  # fmt: skip
    assert first.reasoning_details == [block]
    assert first.message() == {"role": "assistant", "content": "12", "reasoning_details": [block]}
    turns = [{"role": "user", "content": "What is 7 + 5?"}, first.message(),
             {"role": "user", "content": "And times 2?"}]  # fmt: skip
    second = lab.chat(turns)
    sent = standin.seen[-1].body["messages"]
    assert sent[1] == {"role": "assistant", "content": "12", "reasoning_details": [block]}
    assert second.content
    # the blocks survive the cache and a bundle round trip
    assert lab.chat("What is 7 + 5?", stream=True).reasoning_details == [block]
    path = tmp_path / "turns.bundle.jsonl.gz"
    export_bundle(lab.engine.store, path, tag=None)
    replay = Lab(endpoint=OpenRouter(standin.url), db=tmp_path / "r.db", cache="replay",
                 bundle=path, quiet=True)  # fmt: skip
    assert replay.chat(turns).content == second.content
    # and a malformed block is refused before anything is sent
    seen = len(standin.seen)
    bad = [turns[0], {**first.message(), "reasoning_details": "not a list"}, turns[2]]
    with pytest.raises(Exception, match="reasoning_details"):
        lab.chat(bad)
    assert len(standin.seen) == seen


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(
    "usage, cost, prompt_tokens",
    [
        ({"cost": -100}, None, 43),  # a negative cost would raise the budget's headroom
        ({"cost": float("inf")}, None, 43),  # an infinite one would end every later call
        ({"cost": float("nan")}, None, 43),  # NaN would fail the log's NOT NULL
        ({"prompt_tokens": 1e400}, 0.0004572, 0),  # parsed as inf by a lenient JSON reader
        ({"prompt_tokens": 2**70}, 0.0004572, 0),  # beyond SQLite's INTEGER
        ({"prompt_tokens": -5}, 0.0004572, 0),
    ],
)
def test_absurd_usage_numbers_are_read_as_not_reported(strict, standin, stream, usage, cost,
                                                       prompt_tokens):  # fmt: skip
    bad = {**USAGE, **usage}
    reply = {**chunk({"content": "12"}, "stop"), "usage": bad}
    if stream:
        body = sse(reply)
    else:
        msg = {"role": "assistant", "content": "12"}
        body = json.dumps({**reply, "choices": [{"index": 0, "finish_reason": "stop",
                                                  "message": msg}]})  # fmt: skip
    standin.enqueue(Fault.raw(body, content_type="text/event-stream" if stream else None))
    if not stream and ("Infinity" in body or "NaN" in body):
        # not JSON: the whole-body parser is strict, so this is a bad reply, never a number
        with pytest.raises(APIError, match="not JSON"):
            strict.chat("What is 7 + 5?", stream=stream, max_tokens=64)
        return
    r = strict.chat("What is 7 + 5?", stream=stream, max_tokens=64)
    assert r.content == "12" and r.usage.prompt_tokens == prompt_tokens
    if cost is None:  # no billed figure: priced from the token counts, like an unbilled reply
        assert r.cost_source == "computed" and 0 <= r.cost_usd < 0.01
    else:
        assert (r.cost_source, r.cost_usd) == ("billed", cost)
    row = strict.calls().iloc[-1]
    assert row["spent_usd"] == r.spent_usd >= 0


def test_hostile_error_and_reasoning_shapes_stay_mmlab_errors(strict, standin):
    nested = "[" * 100_000 + "]" * 100_000  # deeper than any JSON parser recurses
    err = {"error": {"code": 502, "message": "Provider returned error",
                     "metadata": {"raw": nested, "provider_name": "Minimax"}}}  # fmt: skip
    standin.enqueue(Fault.raw(json.dumps(err), status=502))
    with pytest.raises(APIError, match="Minimax"):
        strict.chat("What is 7 + 5?")
    # reasoning_details fragments whose text is not text: kept apart, no crash
    body = sse(
        chunk({"reasoning_details": [{"type": "reasoning.text", "index": 0, "text": "a"}]}),
        chunk({"reasoning_details": [{"type": "reasoning.text", "index": 0, "text": 5}]}),
        chunk({"content": "12"}, "stop", usage=USAGE),
    )
    standin.enqueue(Fault.raw(body))
    r = strict.chat("What is 7 + 5?", stream=True)
    assert r.content == "12" and [d["text"] for d in r.reasoning_details] == ["a", 5]


def test_only_minimax_token_limit_words_make_an_error_chunk_a_truncation(strict, standin):
    # another "token limit" error mid-stream, with usage but no finish "length": a real error,
    # never cached as a truncated answer
    body = sse(
        chunk({"content": "partial"}),
        {**chunk({"content": ""}), "error": {"code": 400, "message":
         "Requested token limit exceeds the context window"}, "usage": USAGE},  # fmt: skip
    )
    standin.enqueue(Fault.raw(body))
    with pytest.raises(APIError, match="context window"):
        strict.chat("What is 7 + 5?", stream=True)
    assert strict.calls()["error"].notna().all()
    r = strict.chat("What is 7 + 5?", stream=True)  # nothing cached: asked again, answered
    assert not r.cache_hit and len(standin.seen) == 2
