"""Price tables as data (live from OpenRouter's ``/models`` when online, embedded otherwise),
the cost of a call, and the worst case a budget reserves.

Money rules (https://openrouter.ai/docs/api-reference/limits, /docs/use-cases/reasoning-tokens):
- prefer the billed ``usage.cost``; a computed cost is a fallback and says which table it used;
- reasoning tokens are *inside* completion tokens: they are never priced a second time;
- cached prompt tokens are inside prompt tokens, priced at the cache-read rate when one is given;
- ``pricing.overrides`` tiers apply when the prompt has *more* tokens than ``min_prompt_tokens``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from .errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd

PER_M = 1_000_000


@dataclass(frozen=True)
class Price:
    """One model's prices, in USD per token (OpenRouter's unit)."""

    prompt: float
    """USD per prompt token."""
    completion: float
    """USD per completion token (reasoning included: reasoning is billed as output)."""
    cache_read: float | None = None
    """USD per cached prompt token, when the provider discounts cache reads."""
    request: float = 0.0
    """USD per request."""
    overrides: tuple[tuple[int, float | None, float | None], ...] = ()
    """(min_prompt_tokens, prompt, completion) tiers; later entries win."""
    context_length: int | None = None
    """Longest prompt + completion the endpoint accepts."""
    max_completion_tokens: int | None = None
    """Longest completion the endpoint allows."""

    def rates(self, prompt_tokens: int) -> tuple[float, float]:
        """(prompt, completion) USD per token for a prompt of this length."""
        prompt, completion = self.prompt, self.completion
        for min_tokens, p, c in self.overrides:
            if prompt_tokens > min_tokens:
                prompt = p if p is not None else prompt
                completion = c if c is not None else completion
        return prompt, completion

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        """USD for one call. Reasoning tokens are part of `completion_tokens` already."""
        p_rate, c_rate = self.rates(prompt_tokens)
        cached = min(cached_tokens, prompt_tokens) if self.cache_read is not None else 0
        return (
            (prompt_tokens - cached) * p_rate
            + cached * (self.cache_read or 0.0)
            + completion_tokens * c_rate
            + self.request
        )


@dataclass(frozen=True)
class PriceTable:
    """Prices by model id, with where they came from (logged as ``price_ref``)."""

    source: str
    prices: Mapping[str, Price] = field(default_factory=dict)

    def get(self, model: str) -> Price | None:
        """The price of `model` (an exact id, or the id without a ``:variant`` suffix)."""
        return self.prices.get(model) or self.prices.get(model.split(":")[0])

    def __getitem__(self, model: str) -> Price:
        price = self.get(model)
        if price is None:
            raise ConfigError(
                f"no price for model {model!r} in table {self.source!r}"
                f"{did_you_mean(model, self.prices)}; known: {', '.join(sorted(self.prices))}"
            )
        return price


def _m(prompt_per_m: float, completion_per_m: float, **kw: Any) -> Price:
    return Price(prompt_per_m / PER_M, completion_per_m / PER_M, **kw)


#: Embedded fallback, used when the live table cannot be fetched. M1 is OpenRouter's listing
#: ($0.40/M in, $2.20/M out, 1M context, 40K max output per mirrors of its model page). Peers are
#: the vendors' published list prices, for "what would this cost elsewhere" comparisons only:
#: verify them against ``GET /api/v1/models`` before quoting them.
EMBEDDED = PriceTable(
    source="embedded:2026-11",
    prices={
        "minimax/minimax-m1": _m(
            0.40, 2.20, context_length=1_000_000, max_completion_tokens=40_000
        ),
        "deepseek/deepseek-r1": _m(0.55, 2.19, context_length=128_000),
        "openai/o4-mini": _m(1.10, 4.40, context_length=200_000),
        "google/gemini-2.5-pro": _m(
            1.25, 10.0, context_length=1_048_576, overrides=((200_000, 2.50 / PER_M, 15.0 / PER_M),)
        ),
        "anthropic/claude-sonnet-4": _m(3.0, 15.0, context_length=200_000),
    },
)


#: The embedded model's table: every call is free.
FREE = PriceTable(source="local: free")
#: Longest completion assumed when neither the request nor the price table bounds it: M1's
#: reported 40K output limit on OpenRouter.
FALLBACK_MAX_COMPLETION = 40_000


#: Chat-template tokens a message may add around its text (role markers, separators) and a
#: request adds once (BOS, the assistant turn's opening). Generous: ChatML adds 5 per
#: message, Llama 3 about 5, MiniMax's template about 6.
MESSAGE_OVERHEAD, REQUEST_OVERHEAD = 16, 16


def estimate_prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """An expected prompt-token count for forecasts (≈3 bytes per token; English text runs
    nearer 4), plus per-message overhead. An estimate, not a bound: see
    `prompt_tokens_bound`."""
    size = sum(len(m["content"].encode()) for m in messages)
    return math.ceil(size / 3) + 8 * len(messages) + 8


def prompt_tokens_bound(body: Mapping[str, Any]) -> int:
    """An upper bound on the tokens a request sends, for budget reservations: the UTF-8
    bytes of everything in its body — every message field (text, names, the
    ``reasoning_details`` a follow-up hands back), ``response_format`` and its JSON schema,
    stop sequences, everything else — plus `MESSAGE_OVERHEAD` per message and
    `REQUEST_OVERHEAD`.

    Why it bounds: byte-level BPE tokenizers (GPT-2 lineage, Llama 3, Qwen, DeepSeek,
    MiniMax) and SentencePiece with byte fallback never make a token of less than one byte
    of text, so a text of n bytes is at most n tokens, however dense (digits, one-letter
    words, CJK); templates add a bounded number of special tokens per message; a schema or a
    reasoning block a provider turns into prompt text is at most the bytes it was sent as.
    The price of certainty: English text runs ~4 bytes a token, so a reservation holds ~4x
    the prompt's real cost. Far from the cap that changes nothing; near it, calls go on one
    at a time as finished calls return what they did not use (see the sweep runner).
    """
    sent = orjson.dumps({k: v for k, v in body.items() if k not in _NOT_PROMPT})
    return len(sent) + MESSAGE_OVERHEAD * len(body.get("messages") or ()) + REQUEST_OVERHEAD


#: Body fields that are numbers steering generation, not text a model reads.
_NOT_PROMPT = frozenset({"max_tokens", "temperature", "top_p", "top_k", "min_p", "top_a",
                         "seed", "frequency_penalty", "presence_penalty", "repetition_penalty",
                         "logprobs", "top_logprobs", "stream", "provider", "model"})  # fmt: skip


def completion_cap(body: Mapping[str, Any], price: Price | None) -> int:
    """The most completion tokens a request can produce: its ``max_tokens``, else the
    model's listed maximum, else `FALLBACK_MAX_COMPLETION`."""
    return int(
        body.get("max_tokens")
        or (price.max_completion_tokens if price is not None else None)
        or FALLBACK_MAX_COMPLETION
    )


def worst_case_usd(price: Price, body: Mapping[str, Any]) -> float:
    """The most a request could cost at `price`: `prompt_tokens_bound` plus `completion_cap`
    (reasoning is inside the completion), at the long-context tier the bound may reach."""
    return price.cost(prompt_tokens_bound(body), completion_cap(body, price))


def cost_of(
    billed: float | None, usage: Any, price: Price | None, table: PriceTable, *, free: bool
) -> tuple[float | None, str, str | None]:
    """(cost_usd, cost_source, price_ref) of one response: the billed ``usage.cost`` wins;
    a free endpoint costs 0; else the price table; else unknown."""
    if billed is not None:
        return billed, "billed", None
    if free:
        return 0.0, "local", None
    if price is None:
        return None, "unknown", None
    return (
        price.cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens),
        "computed",
        table.source,
    )


def failure_charge(
    billed: float | None, billable: bool, worst_usd: float | None, *, free: bool
) -> tuple[float, float | None, str | None]:
    """What a failed attempt is charged: (spent_usd, cost_usd, cost_source), or
    ``(0.0, None, None)`` for an attempt that cost nothing.

    The cost the server reported for it (an error chunk's ``usage.cost``) when it did:
    ``billed``. Else, for an attempt that may have been billed (`billable`: some of it
    reached us before it failed, or the server answered 200 with a reply that cannot be
    read), its worst case — what its reservation held — as ``unknown``: counted against
    budgets until `Lab.reconcile` replaces it with the bill. Else nothing: the server
    refused it or never answered. Free endpoints charge nothing.
    """
    if free:
        return 0.0, None, None
    if billed is not None:
        return billed, billed, "billed"
    if billable:
        return worst_usd or 0.0, None, "unknown"
    return 0.0, None, None


#: Cost sources of replies nobody paid for (`zero_usage`); `Lab.reconcile` re-bills them if
#: OpenRouter's generation record says otherwise.
NOT_BILLED = ("provider_cache", "refund")


def zero_usage(reply: Any, cost: float | None, source: str) -> tuple[float | None, str]:
    """The cost and cost source of a reply whose usage is zeroed: never "free compute".

    ``provider_cache``: OpenRouter's response cache served it (``X-OpenRouter-Cache-Status:
    HIT``, or every counter 0 beside a non-empty answer — how a cache hit is reported): a
    repeat of an earlier response, billed nothing. ``refund``: no output at all and nothing
    billed (zero-completion insurance). Both cost 0 (`NOT_BILLED`). A positive billed cost
    always wins: the reply keeps `cost` and `source` ("billed"), as does anything else.
    """
    u = reply.usage
    produced = bool(reply.content or reply.reasoning)
    if reply.billed_cost_usd:  # the provider says it charged: that is the figure, whatever else
        return cost, source
    if getattr(reply, "cache_status", None) == "HIT":
        return 0.0, "provider_cache"
    if not reply.usage_reported:
        return cost, source
    if u.prompt_tokens == 0 and u.completion_tokens == 0 and produced:
        return 0.0, "provider_cache"
    if u.completion_tokens == 0 and not produced:
        return 0.0, "refund"
    return cost, source


def parse_models(body: Any, source: str) -> PriceTable:
    """Build a table from a ``GET /api/v1/models`` body (prices are USD-per-token strings).

    The body is a server's reply, so untrusted: an item that is not shaped like a priced
    model (no id, a price that is not a finite number >= 0, a malformed tier) is skipped,
    never allowed to break the call it was fetched for.
    """

    def usd(value: Any) -> float | None:
        # finite and >= 0, else None: a negative price (a tier, a per-request fee) would make
        # a worst case negative and let a reservation shrink what a budget counts in flight
        try:
            x = float(value) if value not in (None, "") and not isinstance(value, bool) else None
        except (TypeError, ValueError):
            return None
        return x if x is not None and math.isfinite(x) and x >= 0 else None

    def whole(value: Any, least: int = 1) -> int | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= least
        return value if ok else None

    prices: dict[str, Price] = {}
    data = body.get("data") if isinstance(body, Mapping) else None
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
            continue
        pricing = item.get("pricing") if isinstance(item.get("pricing"), Mapping) else {}
        prompt, completion = usd(pricing.get("prompt")), usd(pricing.get("completion"))
        if prompt is None or completion is None or prompt < 0 or completion < 0:
            continue  # "-1" marks a router whose price depends on the routed model
        tiers = pricing.get("overrides") if isinstance(pricing.get("overrides"), list) else []
        overrides = tuple(
            (o["min_prompt_tokens"], usd(o.get("prompt")), usd(o.get("completion")))
            for o in tiers
            if isinstance(o, Mapping) and whole(o.get("min_prompt_tokens"), 0) is not None
        )
        top = item.get("top_provider") if isinstance(item.get("top_provider"), Mapping) else {}
        prices[item["id"]] = Price(
            prompt=prompt,
            completion=completion,
            cache_read=usd(pricing.get("input_cache_read")),
            request=usd(pricing.get("request")) or 0.0,
            overrides=overrides,
            context_length=whole(item.get("context_length")),
            max_completion_tokens=whole(top.get("max_completion_tokens")),
        )
    return PriceTable(source=source, prices=prices)


def table_to_json(table: PriceTable) -> str:
    """Serialise a table (for the DB's prices cache)."""
    return json.dumps(
        {"source": table.source, "prices": {k: vars(v) for k, v in table.prices.items()}}
    )


def table_from_json(text: str) -> PriceTable:
    """Inverse of `table_to_json`."""
    raw = json.loads(text)
    prices = {}
    for model, v in raw["prices"].items():
        v["overrides"] = tuple(tuple(o) for o in v.get("overrides") or ())
        prices[model] = Price(**v)
    return PriceTable(source=raw["source"], prices=prices)


def resolve(price: Price | PriceTable | str, table: PriceTable | None = None) -> Price:
    """A `Price` from a Price, or a model id looked up in `table` (default: embedded)."""
    if isinstance(price, Price):
        return price
    if isinstance(price, str):
        return (table or EMBEDDED)[price]
    raise ConfigError(f"expected a Price or a model id; got {price!r}")


def reprice(
    calls: pd.DataFrame | Any, price: Price | str, table: PriceTable | None = None
) -> pd.Series | float:
    """USD each logged call would cost at `price` (a Price or a model id).

    Works on `lab.calls()` or a sweep's ``res.df`` (one row or many), a frame of
    ``Result.to_dict()`` rows (their nested ``usage``), or one call: a `Result` or its
    ``to_dict()`` — then one number, not a Series. Uses prompt, completion and cached
    tokens; reasoning tokens are already inside completion tokens. Error rows cost 0.
    """
    if not hasattr(calls, "columns"):  # one call, not a frame
        if not hasattr(calls, "usage") and hasattr(calls, "to_dict"):
            calls = calls.to_dict()  # one row of a log frame (a Series)
        prompt, completion, cached = token_counts(calls)
        return resolve(price, table).cost(prompt, completion, cached)
    import pandas as pd

    p = resolve(price, table)
    if "prompt_tokens" not in calls and "usage" in calls:
        counts = [token_counts({"usage": u}) for u in calls["usage"]]
        values = [p.cost(a, b, c) for a, b, c in counts]
        return pd.Series(values, index=calls.index, name="cost_usd", dtype=float)
    prompt = calls["prompt_tokens"].fillna(0).astype(int)
    completion = calls["completion_tokens"].fillna(0).astype(int)
    cached = calls.get("cached_tokens", pd.Series(0, index=calls.index)).fillna(0).astype(int)
    values = [p.cost(a, b, c) for a, b, c in zip(prompt, completion, cached, strict=True)]
    return pd.Series(values, index=calls.index, name="cost_usd", dtype=float)


def token_counts(call: Any) -> tuple[int, int, int]:
    """(prompt, completion, cached) tokens of one call: a `Result` (its ``usage``), its
    ``to_dict()`` (a nested ``usage`` mapping) or a log row (flat ``prompt_tokens``...)."""
    usage = call.get("usage", call) if isinstance(call, Mapping) else call.usage
    if not isinstance(usage, Mapping):
        usage = {k: getattr(usage, k, 0) for k in ("prompt_tokens", "completion_tokens",
                                                   "cached_tokens")}  # fmt: skip

    def count(name: str) -> int:
        value = usage.get(name)
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value == value
        return int(value) if ok else 0

    return count("prompt_tokens"), count("completion_tokens"), count("cached_tokens")


def reprice_usage(
    summary: pd.DataFrame, price: Price | str, table: PriceTable | None = None
) -> pd.DataFrame:
    """A usage summary (`Store.usage_summary` with ``hit_tokens=True``) priced at another
    model's list prices: ``repriced_spent_usd`` (what its calls that were sent would have
    cost) and ``repriced_saved_usd`` (what its cache hits would have saved), per row — on a
    free local model, what the same work costs on M1. From the roll-up's token sums: rates
    at each row's mean prompt length (long-context tiers), prompt-cache discounts not
    counted."""
    p = resolve(price, table)
    out = summary.copy()

    def usd(prompt: Any, completion: Any, calls: Any) -> list[float]:
        values = []
        for a, b, n in zip(prompt, completion, calls, strict=True):
            a, b, n = int(a or 0), int(b or 0), int(n or 0)
            p_rate, c_rate = p.rates(a // n if n else 0)
            values.append(a * p_rate + b * c_rate + n * p.request)
        return values

    hits = out["hits"]
    sent = out["calls"] - hits - out["errors"]
    out["repriced_spent_usd"] = usd(out["prompt_tokens"] - out["hit_prompt_tokens"],
                                 out["completion_tokens"] - out["hit_completion_tokens"],
                                 sent.clip(lower=0))  # fmt: skip
    out["repriced_saved_usd"] = usd(out["hit_prompt_tokens"], out["hit_completion_tokens"], hits)
    out.attrs["reprice"] = (
        f"at {price if isinstance(price, str) else 'the given'} list prices "
        f"({(table or EMBEDDED).source if isinstance(price, str) else 'a Price'})"
    )
    return out


def compare(
    calls: pd.DataFrame, models: Iterable[str], table: PriceTable | None = None
) -> pd.DataFrame:
    """Total and per-call cost of the same logged calls under several models' prices."""
    import pandas as pd

    rows = []
    for model in models:
        costs = reprice(calls, model, table)
        p = resolve(model, table)
        rows.append(
            {
                "model": model,
                "prompt_usd_per_m": round(p.prompt * PER_M, 4),
                "completion_usd_per_m": round(p.completion * PER_M, 4),
                "calls": len(costs),
                "total_usd": float(costs.sum()),
                "mean_usd_per_call": float(costs.mean()) if len(costs) else 0.0,
            }
        )
    return pd.DataFrame(rows)
