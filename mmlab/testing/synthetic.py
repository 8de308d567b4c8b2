"""The synthetic model: what the stand-in answers (`synth_reply`, `gold_answer`), what that
costs (`reply_cost`, M1's list prices) and the pieces of an OpenRouter completion body built
from it (`usage_object`, `plain_choice`, `completion_object`)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from typing import Any

from mmlab.testing.state import Provider

PROMPT_PRICE = 0.40 / 1e6
COMPLETION_PRICE = 2.20 / 1e6

_WORD = re.compile(r"\w+")
#: Words of the synthetic answer ("The answer is N").
_ANSWER_WORDS = 4


def synth_reply(
    body: dict[str, Any],
    *,
    wrong: bool = False,
    thinks: int | None = None,
    length: int | None = None,
) -> dict[str, Any]:
    """The deterministic "model": reasoning, answer and token counts for a request.

    Its answer is a function of the question's words (``gold_answer``); `wrong` gives that
    number plus one instead (how `StandIn(accuracy=...)` answers incorrectly). `thinks`:
    how many reasoning tokens it spends when the request sets no ``max_tokens`` (a model
    that thinks for 70,000 tokens when nothing stops it). `length`: the completion tokens
    (reasoning and the four-word answer) every reply runs to before ``max_tokens`` cuts it —
    fixed lengths, so a forecast's expected cost is known exactly.
    """
    messages = body.get("messages") or []
    user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    content_fields = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    digest = hashlib.sha256(json.dumps(content_fields, sort_keys=True).encode()).digest()
    # Difficulty from the prompt's length; a little spread from the whole request.
    words = _WORD.findall(user)
    temperature = float(body.get("temperature", 1.0))
    base = 12 + 4 * len(words) + digest[0] % 16
    reasoning_len = int(base * (0.6 + 0.5 * temperature))
    if length is not None:
        reasoning_len = max(0, length - _ANSWER_WORDS)
    if thinks is not None and body.get("max_tokens") is None:
        reasoning_len = thinks
    answer = sum(len(w) for w in words) % 97 + (1 if wrong else 0)
    answer_words = ["The", "answer", "is", str(answer)]
    reasoning_words = [f"step{i}" for i in range(reasoning_len)]
    max_tokens = body.get("max_tokens")
    finish = "stop"
    if max_tokens is not None and reasoning_len + len(answer_words) > max_tokens:
        finish = "length"
        if reasoning_len >= max_tokens:
            reasoning_words = reasoning_words[:max_tokens]
            answer_words = []
        else:
            answer_words = answer_words[: max_tokens - reasoning_len]
    prompt_tokens = sum(len(_WORD.findall(m.get("content", ""))) + 4 for m in messages)
    return {
        "reasoning": " ".join(reasoning_words),
        "content": " ".join(answer_words),
        "reasoning_tokens": len(reasoning_words),
        "completion_tokens": len(reasoning_words) + len(answer_words),
        "prompt_tokens": prompt_tokens,
        "finish_reason": finish,
        "wrong": wrong,
    }


def synth_logprobs(reply: dict[str, Any], k: int) -> list[dict[str, Any]]:
    """Chat-form ``logprobs.content`` for a synthetic reply: one entry per word (its tokens),
    reasoning then answer, each with `k` ``top_logprobs``. The top candidate (the word itself)
    has probability about 0.9 in a right reply and 0.55 in a wrong one (a little spread per
    token); the other k-1 share the rest, halving — so a wrong reply is less confident, as
    DeepConf (Fu et al. 2025) finds of real models."""
    words = [*(reply["reasoning"].split() if reply["reasoning"] else []),
             *(reply["content"].split() if reply["content"] else [])]  # fmt: skip
    seed = hashlib.sha256((reply["reasoning"] + reply["content"]).encode()).digest()
    base = 0.55 if reply.get("wrong") else 0.9
    out = []
    for i, word in enumerate(words):
        p = base + (seed[i % 32] / 255 - 0.5) * 0.1
        rest = [(1 - p) * 2.0 ** -(j + 1) for j in range(k - 1)]
        norm = sum(rest) or 1.0
        probs = [p, *((1 - p) * r / norm for r in rest)]
        tops = [{"token": word if j == 0 else f"alt{j}", "logprob": math.log(q)}
                for j, q in enumerate(probs)]  # fmt: skip
        out.append({"token": word, "logprob": tops[0]["logprob"], "top_logprobs": tops})
    return out


def gold_answer(question: str) -> str:
    """The answer the stand-in gives `question` when it answers correctly."""
    return str(sum(len(w) for w in _WORD.findall(question)) % 97)


def reply_cost(reply: dict[str, Any], provider: Provider | None = None) -> float:
    """What OpenRouter would bill for a synthetic reply: at `provider`'s prices, else M1's
    list prices."""
    if provider is not None:
        return (reply["prompt_tokens"] * provider.prompt_price
                + reply["completion_tokens"] * provider.completion_price)  # fmt: skip
    return reply["prompt_tokens"] * PROMPT_PRICE + reply["completion_tokens"] * COMPLETION_PRICE


def usage_object(
    reply: dict[str, Any], *, with_cost: bool = True, provider: Provider | None = None
) -> dict[str, Any]:
    """OpenRouter's usage object for a synthetic reply (reasoning inside completion)."""
    usage: dict[str, Any] = {
        "prompt_tokens": reply["prompt_tokens"],
        "completion_tokens": reply["completion_tokens"],
        "total_tokens": reply["prompt_tokens"] + reply["completion_tokens"],
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reply["reasoning_tokens"]},
    }
    if with_cost:
        usage["cost"] = reply_cost(reply, provider)
    return usage


def completion_object(
    body: dict[str, Any],
    choice: dict[str, Any],
    usage: dict[str, Any],
    gen_id: str,
    provider: str = "StandIn",
    model: str | None = None,
) -> dict[str, Any]:
    """A non-streamed chat completion body (`provider` served it as `model`)."""
    return {
        "id": gen_id,
        "provider": provider,
        "model": model or body.get("model"),
        "object": "chat.completion",
        "created": int(time.time()),
        "choices": [choice],
        "usage": usage,
    }


def plain_choice(reply: dict[str, Any]) -> dict[str, Any]:
    """The single choice of a plain (no faults, no leaked <think>) reply."""
    return {
        "index": 0,
        "finish_reason": reply["finish_reason"],
        "native_finish_reason": reply["finish_reason"],
        "message": {
            "role": "assistant",
            "content": reply["content"],
            "reasoning": reply["reasoning"] or None,
        },
    }
