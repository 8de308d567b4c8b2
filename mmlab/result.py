"""`Result`: what `lab.chat` returns, and how it is stored in the cache."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .wire import Reply, Usage, is_truncated


@dataclass(slots=True)
class Result:
    """One model answer, fresh or from the cache.

    `cost_usd`, `latency_s` and `ttft_s` describe how the response was *produced* (on a cache
    hit: the original call's figures, so replayed analyses match the live ones);
    `spent_usd`/`saved_usd` describe *this* call (a hit spends 0 and saves the original cost).
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
    """billed (usage.cost) | computed (price table, see price_ref) | local | unknown."""
    cache_hit: bool = False
    """True when served from the cache."""
    spent_usd: float = 0.0
    """USD this call spent now (0 on a hit)."""
    saved_usd: float = 0.0
    """USD a hit saved (the original cost)."""
    latency_s: float | None = None
    """Seconds from request to complete reply."""
    ttft_s: float | None = None
    """Seconds to the first streamed token (reasoning or answer); None if not streamed."""
    provider: str | None = None
    """The upstream provider that served the request (OpenRouter)."""
    model: str | None = None
    """The model id (friendly id for the embedded model, never a file path)."""
    generation_id: str | None = None
    """OpenRouter's generation id (for /generation reconciliation)."""
    native_finish_reason: str | None = None
    """The provider's own finish reason."""
    reasoning_mode: str = "none"
    """native (endpoint returned reasoning) | leaked (split from a <think> prefix) |
    prompted (the embedded model was asked to think) | none."""
    price_ref: str | None = None
    """The price table a computed cost came from."""
    call_id: str | None = None
    """This call's row in the usage log."""
    cache_key: str | None = None
    """The cache entry (see mmlab.cachekey)."""
    sample: int = 0
    """Sample index (repeats of one request)."""
    retries: int = 0
    """Retries this call needed (0 on a hit)."""
    created: float = field(default_factory=time.time)
    """When the response was generated (epoch seconds)."""

    @property
    def truncated(self) -> bool:
        """Stopped by the token limit with an empty answer: thinking ate the budget."""
        return is_truncated(self.finish_reason, self.content)

    def __repr__(self) -> str:
        hit = "hit" if self.cache_hit else "miss"
        cost = "?" if self.cost_usd is None else f"${self.cost_usd:.6f}"
        answer = self.content if len(self.content) <= 60 else self.content[:57] + "..."
        return (
            f"Result({answer!r}, reasoning={self.usage.reasoning_tokens} tok, "
            f"completion={self.usage.completion_tokens} tok, {cost} {self.cost_source}, "
            f"{self.finish_reason}, {hit})"
        )

    def record(self) -> dict[str, Any]:
        """The cache form: the response's own properties, not this call's."""
        return {
            "content": self.content,
            "reasoning": self.reasoning,
            "finish_reason": self.finish_reason,
            "native_finish_reason": self.native_finish_reason,
            "provider": self.provider,
            "model": self.model,
            "generation_id": self.generation_id,
            "usage": {  # (dataclasses.asdict deep-copies: measurably slow per call)
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
                "reasoning_tokens": self.usage.reasoning_tokens,
                "cached_tokens": self.usage.cached_tokens,
            },
            "cost_usd": self.cost_usd,
            "cost_source": self.cost_source,
            "price_ref": self.price_ref,
            "latency_s": self.latency_s,
            "ttft_s": self.ttft_s,
            "reasoning_mode": self.reasoning_mode,
            "created": self.created,
        }

    @classmethod
    def from_record(
        cls, rec: dict[str, Any], *, cache_key: str, sample: int, call_id: str | None
    ) -> Result:
        """A cache hit: the stored response, spending nothing and saving its cost."""
        cost = rec.get("cost_usd")
        return cls(
            content=rec["content"],
            reasoning=rec.get("reasoning", ""),
            finish_reason=rec.get("finish_reason"),
            native_finish_reason=rec.get("native_finish_reason"),
            usage=Usage(**rec.get("usage", {})),
            cost_usd=cost,
            cost_source=rec.get("cost_source", "unknown"),
            price_ref=rec.get("price_ref"),
            cache_hit=True,
            spent_usd=0.0,
            saved_usd=cost or 0.0,
            latency_s=rec.get("latency_s"),
            ttft_s=rec.get("ttft_s"),
            provider=rec.get("provider"),
            model=rec.get("model"),
            generation_id=rec.get("generation_id"),
            reasoning_mode=rec.get("reasoning_mode", "none"),
            call_id=call_id,
            cache_key=cache_key,
            sample=sample,
            created=rec.get("created", 0.0),
        )

    @classmethod
    def from_reply(cls, reply: Reply, **kw: Any) -> Result:
        """A fresh response."""
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
            **kw,
        )
