"""What a call returns: a `Response` (what the model produced; the cached form) seen through
one call (`Result`: hit or miss, spent or saved).

One response has one shape: the endpoint's `Reply`, priced, becomes a `Response`; the cache
stores ``Response.to_dict()``; a hit is read back with `Result.from_cache` straight from that
dict; the log row is built from the `Result` (`mmlab.engine`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .wire import Reply, Usage, is_truncated

COST_SOURCES = ("billed", "computed", "local", "unknown", "provider_cache", "refund")
REASONING_MODES = ("native", "leaked", "prompted", "encrypted", "none")
USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens")
_TEXT = ("content", "reasoning")
_LABELS = ("finish_reason", "native_finish_reason", "provider", "model", "generation_id")
_SECONDS = ("latency_s", "ttft_s")


@dataclass(slots=True)
class Response:
    """One model answer as produced: content, reasoning, tokens and what producing it cost.

    `cost_usd`, `latency_s` and `ttft_s` describe how the response was *produced*; on a cache
    hit they are the original call's figures, so replayed analyses match the live ones.
    """

    content: str
    """The answer, with any reasoning split out."""
    reasoning: str
    """The model's thinking ("" when none was returned)."""
    finish_reason: str | None
    """stop | length | tool_calls | content_filter (OpenRouter's normalised reason)."""
    usage: Usage
    """Token counts; reasoning tokens are inside completion tokens."""
    cost_usd: float | None
    """What producing this response cost (None if unknown)."""
    cost_source: str
    """billed (usage.cost) | computed (price table, see price_ref) | local | unknown |
    provider_cache (OpenRouter's response cache repeated an earlier response; usage zeroed) |
    refund (no output, nothing billed: zero-completion insurance)."""
    latency_s: float | None = None
    """Seconds from request to complete reply."""
    ttft_s: float | None = None
    """Seconds to the first streamed token (reasoning or answer); None if not streamed."""
    provider: str | None = None
    """The upstream provider that served the request (OpenRouter)."""
    model: str | None = None
    """The model that answered (friendly id for the embedded model, never a file path)."""
    generation_id: str | None = None
    """OpenRouter's generation id (for /generation reconciliation)."""
    native_finish_reason: str | None = None
    """The provider's own finish reason."""
    reasoning_mode: str = "none"
    """native (endpoint returned reasoning) | leaked (split from a <think> prefix) |
    prompted (the embedded model was asked to think) | encrypted (reasoned, but returned no
    readable text of it) | none."""
    price_ref: str | None = None
    """The price table a computed cost came from."""
    created: float = field(default_factory=time.time)
    """When the response was generated (epoch seconds)."""
    reasoning_details: list[Any] | None = None
    """The provider's structured reasoning blocks (``reasoning.text`` / ``.summary`` /
    ``.encrypted``), as returned; `message()` hands them back on the next turn."""
    notice: str | None = None
    """What the endpoint said besides the answer, e.g. MiniMax's "Token limit reached"."""

    @property
    def truncated(self) -> bool:
        """Stopped by the token limit with an empty answer: thinking ate the budget."""
        return is_truncated(self.finish_reason, self.content)

    def to_dict(self) -> dict[str, Any]:
        """The cache form: the response's own properties, not any call's."""
        u = self.usage
        return {
            "content": self.content,
            "reasoning": self.reasoning,
            "finish_reason": self.finish_reason,
            "native_finish_reason": self.native_finish_reason,
            "provider": self.provider,
            "model": self.model,
            "generation_id": self.generation_id,
            "usage": {  # (dataclasses.asdict deep-copies: measurably slow per call)
                "prompt_tokens": u.prompt_tokens,
                "completion_tokens": u.completion_tokens,
                "reasoning_tokens": u.reasoning_tokens,
                "cached_tokens": u.cached_tokens,
            },
            "cost_usd": self.cost_usd,
            "cost_source": self.cost_source,
            "price_ref": self.price_ref,
            "latency_s": self.latency_s,
            "ttft_s": self.ttft_s,
            "reasoning_mode": self.reasoning_mode,
            "created": self.created,
            **({"reasoning_details": self.reasoning_details} if self.reasoning_details else {}),
            **({"notice": self.notice} if self.notice else {}),
        }

    def message(self) -> dict[str, Any]:
        """This answer as the assistant turn of a next request: content, plus the reasoning
        blocks where the provider returned them — M1 (and Anthropic, OpenAI o-series, Gemini
        through OpenRouter) continue their thinking from ``reasoning_details`` handed back
        unchanged; plain reasoning text is not sent back (models are not trained to read it)."""
        out: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.reasoning_details:
            out["reasoning_details"] = self.reasoning_details
        return out


def check_response(rec: Any) -> None:
    """Raise ValueError naming the first field of a stored response (``Response.to_dict()``)
    that is missing, unknown or of the wrong type: responses read from elsewhere (bundles)
    are untrusted, and a malformed one would break every later cache hit."""
    if not isinstance(rec, Mapping):
        raise ValueError(f"response must be an object; got {type(rec).__name__}")
    known = {*_TEXT, *_LABELS, *_SECONDS, "usage", "cost_usd", "cost_source", "price_ref",
             "reasoning_mode", "created", "reasoning_details", "notice"}  # fmt: skip
    unknown = sorted(set(rec) - known)
    if unknown:
        raise ValueError(f"response has unknown field(s) {unknown}")
    details = rec.get("reasoning_details")
    if details is not None and (
        not isinstance(details, list) or not all(isinstance(d, Mapping) for d in details)
    ):
        raise ValueError("response.reasoning_details must be a list of objects or null")
    if rec.get("notice") is not None and not isinstance(rec["notice"], str):
        raise ValueError("response.notice must be a string or null")
    for name in _TEXT:
        if not isinstance(rec.get(name), str):
            raise ValueError(f"response.{name} must be a string")
    for name in (*_LABELS, "price_ref"):
        if rec.get(name) is not None and not isinstance(rec[name], str):
            raise ValueError(f"response.{name} must be a string or null")
    usage = rec.get("usage")
    if not isinstance(usage, Mapping) or set(usage) - set(USAGE_FIELDS):
        raise ValueError(f"response.usage must be an object with only {', '.join(USAGE_FIELDS)}")
    for name in USAGE_FIELDS:
        v = usage.get(name, 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"response.usage.{name} must be an integer >= 0")
    for name in ("cost_usd", *_SECONDS, "created"):
        v = rec.get(name)
        if v is None and name != "created":
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ValueError(f"response.{name} must be a finite number >= 0")
    if rec.get("cost_source") not in COST_SOURCES:
        raise ValueError(f"response.cost_source must be one of {', '.join(COST_SOURCES)}")
    if rec.get("reasoning_mode", "none") not in REASONING_MODES:
        raise ValueError(f"response.reasoning_mode must be one of {', '.join(REASONING_MODES)}")


@dataclass(slots=True)
class Result(Response):
    """A `Response` as one call saw it: fresh or from the cache, what it spent or saved.

    `spent_usd`/`saved_usd` describe *this* call (a hit spends 0 and saves the original cost).
    """

    cache_hit: bool = False
    """True when served from the cache."""
    spent_usd: float = 0.0
    """USD this call spent now (0 on a hit)."""
    saved_usd: float = 0.0
    """USD a hit saved (the original cost)."""
    call_id: str | None = None
    """This call's row in the usage log."""
    cache_key: str | None = None
    """The cache entry (see mmlab.cachekey)."""
    sample: int = 0
    """Sample index (repeats of one request)."""
    retries: int = 0
    """Retries this call needed (0 on a hit)."""

    def __repr__(self) -> str:
        hit = "hit" if self.cache_hit else "miss"
        cost = "?" if self.cost_usd is None else f"${self.cost_usd:.6f}"
        answer = self.content if len(self.content) <= 60 else self.content[:57] + "..."
        return (
            f"Result({answer!r}, reasoning={self.usage.reasoning_tokens} tok, "
            f"completion={self.usage.completion_tokens} tok, {cost} {self.cost_source}, "
            f"{self.finish_reason}, {hit})"
        )

    def summary(self) -> dict[str, Any]:
        """The response plus this call's facts, as plain JSON-ready values (CLI ``--json``)."""
        return {
            **self.to_dict(),
            "cache_hit": self.cache_hit,
            "spent_usd": self.spent_usd,
            "saved_usd": self.saved_usd,
            "truncated": self.truncated,
        }

    @classmethod
    def from_cache(
        cls,
        rec: dict[str, Any],
        *,
        cache_key: str,
        sample: int,
        call_id: str | None,
        saved: bool = True,
    ) -> Result:
        """A cache hit: the stored response, spending nothing and saving its cost (`saved`
        False: an entry whose cost this project did not pay, e.g. imported from a bundle)."""
        cost = rec.get("cost_usd")
        u = rec.get("usage") or {}
        return cls(
            content=rec["content"],
            reasoning=rec.get("reasoning", ""),
            finish_reason=rec.get("finish_reason"),
            native_finish_reason=rec.get("native_finish_reason"),
            usage=Usage(
                u.get("prompt_tokens", 0),
                u.get("completion_tokens", 0),
                u.get("reasoning_tokens", 0),
                u.get("cached_tokens", 0),
            ),
            cost_usd=cost,
            cost_source=rec.get("cost_source", "unknown"),
            price_ref=rec.get("price_ref"),
            latency_s=rec.get("latency_s"),
            ttft_s=rec.get("ttft_s"),
            provider=rec.get("provider"),
            model=rec.get("model"),
            generation_id=rec.get("generation_id"),
            reasoning_mode=rec.get("reasoning_mode", "none"),
            created=rec.get("created", 0.0),
            reasoning_details=rec.get("reasoning_details"),
            notice=rec.get("notice"),
            cache_hit=True,
            spent_usd=0.0,
            saved_usd=(cost or 0.0) if saved else 0.0,
            call_id=call_id,
            cache_key=cache_key,
            sample=sample,
        )

    @classmethod
    def from_reply(cls, reply: Reply, **kw: Any) -> Result:
        """A fresh response (`kw`: the pricing and this call's facts)."""
        return cls(
            content=reply.content,
            reasoning=reply.reasoning,
            finish_reason=reply.finish_reason,
            native_finish_reason=reply.native_finish_reason,
            usage=reply.usage,
            provider=reply.provider,
            model=reply.model,
            generation_id=reply.generation_id,
            reasoning_mode=reply.reasoning_mode,
            ttft_s=reply.ttft_s,
            reasoning_details=reply.reasoning_details,
            notice=reply.notice,
            **kw,
        )
