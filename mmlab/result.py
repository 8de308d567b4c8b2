"""What a call returns: a `Response` (what the model produced; the cached form) seen through
one call (`Result`: hit or miss, spent or saved).

One response has one shape, declared in `mmlab.fields`: the endpoint's `Reply`, priced, becomes
a `Response`; the cache stores ``Response.to_dict()`` (checked by `mmlab.fields.check_response`
on the way in from a bundle); a hit is read back with `Result.from_cache` straight from that
dict; the log row and the frames take their columns from the same declaration.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from .confidence import Scores, encode, scores_of
from .fields import CACHED, cache_form
from .pricing import Price, PriceTable, resolve
from .wire import Reply, Usage, is_truncated

#: The model `Response.cost_at` prices at unless told another.
M1 = "minimax/minimax-m1"


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
    confidence: str | None = None
    """Each generated token's confidence (DeepConf), in its compact stored form (half floats,
    base64: `mmlab.confidence.decode`); None when the call asked for no ``top_logprobs`` or the
    endpoint returned none (or unreadable ones)."""

    @property
    def trace_confidence(self) -> Scores:
        """The DeepConf trace scores of `confidence` at the default 2048-token window (NaN
        without a series); other windows: `mmlab.confidence.scores_of`."""
        return scores_of(self.confidence)

    def served_another_model(self, asked: str) -> bool:
        """Whether the model that answered is not `asked` — a fallback — rather than the same
        id, a variant of it (``x/y:free``) or a dated snapshot (``x/y-2025-05-28``)."""
        return self.model is not None and not same_model(asked, self.model)

    @property
    def truncated(self) -> bool:
        """Stopped by the token limit with an empty answer: thinking ate the budget."""
        return is_truncated(self.finish_reason, self.content)

    def cost_at(self, model: str | Price = M1, table: PriceTable | None = None) -> float:
        """What this response's tokens would cost at `model`'s list prices (a model id looked
        up in `table`, default the embedded list prices; or a `mmlab.pricing.Price`): "what
        would this call have cost on M1" for an answer from a free local model."""
        u = self.usage
        return resolve(model, table).cost(u.prompt_tokens, u.completion_tokens, u.cached_tokens)

    def to_dict(self) -> dict[str, Any]:
        """The cache form: the response's own properties, not any call's (the fields
        `mmlab.fields` declares as cached)."""
        return cache_form({f.column: f.read(self) for f in CACHED})  # type: ignore[misc]

    def message(self) -> dict[str, Any]:
        """This answer as the assistant turn of a next request: content, plus the reasoning
        blocks where the provider returned them — M1 (and Anthropic, OpenAI o-series, Gemini
        through OpenRouter) continue their thinking from ``reasoning_details`` handed back
        unchanged; plain reasoning text is not sent back (models are not trained to read it)."""
        out: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.reasoning_details:
            out["reasoning_details"] = self.reasoning_details
        return out


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
    origin: str | None = None
    """Where a cache hit's answer came from: None, this project's own calls; else the bundle
    it was imported from (``bundle:<sha256>``) — an answer someone else recorded."""

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
        origin: str | None = None,
    ) -> Result:
        """A cache hit: the stored response, spending nothing and saving its cost (`saved`
        False: an entry whose cost this project did not pay, e.g. imported from a bundle,
        its `origin`)."""
        cost = rec.get("cost_usd")
        u = rec.get("usage") or {}
        get = rec.get
        # positional, in field order: a hit builds one Result per call, and keywords cost
        # a third more (the order is checked by a test against the dataclass)
        return cls(
            rec["content"],
            get("reasoning", ""),
            get("finish_reason"),
            Usage(
                u.get("prompt_tokens", 0),
                u.get("completion_tokens", 0),
                u.get("reasoning_tokens", 0),
                u.get("cached_tokens", 0),
            ),
            cost,
            get("cost_source", "unknown"),
            get("latency_s"),
            get("ttft_s"),
            get("provider"),
            get("model"),
            get("generation_id"),
            get("native_finish_reason"),
            get("reasoning_mode", "none"),
            get("price_ref"),
            get("created", 0.0),
            get("reasoning_details"),
            get("notice"),
            get("confidence"),
            True,  # cache_hit
            0.0,  # spent_usd
            (cost or 0.0) if saved else 0.0,  # saved_usd
            call_id,
            cache_key,
            sample,
            0,  # retries
            origin,
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
            confidence=encode(reply.confidence) if reply.confidence else None,
            **kw,
        )


def same_model(asked: Any, served: Any) -> bool:
    """Whether `served` names the model `asked` for: the same id, a variant of it
    (``x/y:free``) or a dated snapshot (``x/y-2025-05-28``, ``x/y-0528``) — not another model
    of the family (``x/y-lite``)."""
    a, s = str(asked).split(":")[0], str(served).split(":")[0]
    return a == s or re.fullmatch(re.escape(a) + r"-\d[\d-]*", s) is not None
