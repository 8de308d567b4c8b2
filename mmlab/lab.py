"""`Lab`: the one object a notebook holds. It owns the endpoint, cache, log and budget.

    request → validate → cache key → (cache hit | budget check → HTTP → parse) → log → result

Cache hits are served on the caller's thread without touching the event loop or the network;
misses run on mmlab's background loop (sync face) or the caller's loop (async face), through
the same coroutine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import cachekey
from .client import CallStats, Http, Throttle, with_retries
from .config import (
    Timeouts,
    default_db_path,
    env,
    redact,
    resolve_budget,
    resolve_cache_mode,
)
from .endpoint import Endpoint, resolve_endpoint
from .errors import APIError, BudgetExceeded, CacheMiss, ConfigError, RequestError
from .pricing import EMBEDDED, PriceTable, parse_models, table_from_json, table_to_json
from .result import Result
from .retry import RetryPolicy
from .runner import run_sync
from .store import Store, new_id, tag_filter
from .wire import Delta, build_body, canonical_json, check_messages, check_params, is_truncated

if TYPE_CHECKING:
    import pandas as pd

    from .sweep import Sweep

_ANNOUNCED: set[str] = set()
_HTTP: dict[Timeouts, Http] = {}
PRICE_TTL_S = 24 * 3600
FALLBACK_MAX_COMPLETION = 40_000  # M1's max output on OpenRouter per mirrors (reference §6.4)


@dataclass(slots=True)
class Call:
    """A validated request, ready to be looked up or sent."""

    body: dict[str, Any]
    """The wire body (shared by the repeats of one request)."""
    endpoint: str
    """The endpoint's stable identity."""
    key: str
    """The cache key (see `mmlab.cachekey`)."""
    sample: int
    """Sample index."""
    tag: str | None
    """Log tag."""
    params_json: str
    """The sampling/reasoning/provider fields as canonical JSON (the log's `params`)."""

    @classmethod
    def make(
        cls,
        endpoint: str,
        body: dict[str, Any],
        sample: int,
        tag: str | None,
        params_json: str | None = None,
    ) -> Call:
        """Compute the key; `params_json` may be passed in when many calls share it."""
        material = cachekey.key_material(endpoint, body, sample)
        if params_json is None:
            params_json = canonical_json(params_of(body))
        return cls(body, endpoint, cachekey.cache_key(material), sample, tag, params_json)

    @property
    def material(self) -> dict[str, Any]:
        """What the key is made of (derived on demand: sweeps hold many calls)."""
        return cachekey.key_material(self.endpoint, self.body, self.sample)

    @property
    def params(self) -> dict[str, Any]:
        """The sampling/reasoning/provider fields."""
        return params_of(self.body)


def params_of(body: dict[str, Any]) -> dict[str, Any]:
    """A body's fields other than model and messages."""
    return {k: v for k, v in body.items() if k not in ("model", "messages")}


class Lab:
    """Cached, logged, budgeted calls to MiniMax M1 (or any OpenAI-compatible endpoint).

    Args:
        model: model id; default ``MMLAB_MODEL``, else ``minimax/minimax-m1`` (remote) or the
            embedded model's id (local).
        base_url: an OpenAI-compatible endpoint; default: OpenRouter when a key is set, else
            ``MMLAB_BASE_URL``, else the embedded local model.
        api_key: OpenRouter (or endpoint) key; default ``OPENROUTER_API_KEY``. Never stored.
        db: SQLite file for cache and log; default ``MMLAB_DB`` or the data dir.
        cache: use | refresh | replay | off; default ``MMLAB_CACHE`` or ``use``.
        budget_usd: refuse calls whose worst case could push spend past this cap; default
            ``MMLAB_BUDGET_USD``. Spend is read from the log (scoped to `tag` when set).
        tag: a label stored with every call (a study, a notebook); scopes the budget.
        bundle: a bundle file to replay from: imported into the cache when ``cache`` is
            ``replay`` (how notebooks rerun offline); ignored by live modes.
        timeouts: transport timeouts (see `Timeouts`).
        retry: retry policy (see `RetryPolicy`).
        app_url, app_title: OpenRouter attribution headers (HTTP-Referer, X-OpenRouter-Title).
        quiet: do not announce the endpoint.
    """

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        db: str | Path | None = None,
        cache: str | None = None,
        budget_usd: float | None = None,
        *,
        tag: str | None = None,
        bundle: str | Path | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        app_url: str | None = None,
        app_title: str | None = "mmlab",
        quiet: bool = False,
    ) -> None:
        self.cache_mode = resolve_cache_mode(cache)
        self.budget_usd = resolve_budget(budget_usd)
        if tag is not None and (not isinstance(tag, str) or not tag.strip()):
            raise ConfigError(f"tag must be a non-empty string; got {tag!r}")
        self.tag = tag
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        headers = {}
        if app_url:
            headers["HTTP-Referer"] = app_url
        if app_title:
            headers["X-OpenRouter-Title"] = app_title
        self.endpoint: Endpoint = resolve_endpoint(base_url, api_key, model, headers)
        self.model: str = model or self.endpoint.default_model or "minimax/minimax-m1"
        self.store = Store(db if db is not None else default_db_path())
        self._prices: PriceTable | None = None
        bundle = bundle if bundle is not None else env("MMLAB_BUNDLE")
        if bundle is not None and self.cache_mode == "replay":
            # A bundle is a replay source; live modes ignore it so that a live run makes
            # fresh calls (seed a live cache on purpose with `mmlab bundle import`).
            from .bundle import import_bundle

            import_bundle(self.store, bundle)
        if not quiet:
            self._announce()

    # --- presentation -------------------------------------------------------------------------
    def _announce(self) -> None:
        said = (self.endpoint.identity, self.model, self.cache_mode)
        if said in _ANNOUNCED:
            return
        _ANNOUNCED.add(said)
        mode = " (replay: no network)" if self.cache_mode == "replay" else ""
        print(
            f"mmlab: {self.endpoint.label} · model {self.model} · cache {self.cache_mode}{mode}",
            file=sys.stderr,
        )

    def __repr__(self) -> str:
        budget = "none" if self.budget_usd is None else f"${self.budget_usd:g}"
        return (
            f"Lab(model={self.model!r}, endpoint={self.endpoint.label!r}, "
            f"cache={self.cache_mode!r}, db={str(self.store.path)!r}, budget={budget}, "
            f"tag={self.tag!r}, api_key={'set' if self.endpoint.api_key else 'none'})"
        )

    # --- the request path ---------------------------------------------------------------------
    def prepare(
        self,
        prompt: str | list[Mapping[str, Any]],
        *,
        system: str | None = None,
        sample: int = 0,
        tag: str | None = None,
        **params: Any,
    ) -> Call:
        """Validate a request and compute its cache key. Nothing is sent or written."""
        if isinstance(sample, bool) or not isinstance(sample, int) or sample < 0:
            raise RequestError(f"sample must be an integer >= 0; got {sample!r}", "sample")
        if "stream" in params:
            raise RequestError("pass stream= to chat(), not as a parameter", "stream")
        messages = check_messages(prompt, system)
        body = build_body(self.model, messages, check_params(params))
        return Call.make(self.endpoint.identity, body, sample, tag if tag is not None else self.tag)

    def chat(
        self,
        prompt: str | list[Mapping[str, Any]],
        *,
        system: str | None = None,
        stream: bool = False,
        sample: int = 0,
        tag: str | None = None,
        on_delta: Callable[[Delta], None] | None = None,
        **params: Any,
    ) -> Result:
        """Ask the model. Parameters: temperature, top_p, top_k, min_p, top_a, max_tokens,
        seed, stop, frequency_penalty, presence_penalty, repetition_penalty, reasoning,
        provider, response_format, logprobs, top_logprobs, logit_bias, user.

        `stream=True` streams (``on_delta`` receives ``("reasoning"|"content"|"reset", text)``)
        and measures time-to-first-token; `sample` picks a distinct cache entry for repeats.
        """
        call = self.prepare(prompt, system=system, sample=sample, tag=tag, **params)
        hit = self.lookup(call, on_delta)
        if hit is not None:
            return hit
        return run_sync(self.send(call, stream=stream, on_delta=on_delta))

    async def achat(
        self,
        prompt: str | list[Mapping[str, Any]],
        *,
        system: str | None = None,
        stream: bool = False,
        sample: int = 0,
        tag: str | None = None,
        on_delta: Callable[[Delta], None] | None = None,
        **params: Any,
    ) -> Result:
        """Async `chat`: same arguments, same result."""
        call = self.prepare(prompt, system=system, sample=sample, tag=tag, **params)
        hit = self.lookup(call, on_delta)
        if hit is not None:
            return hit
        return await self.send(call, stream=stream, on_delta=on_delta)

    def lookup(self, call: Call, on_delta: Callable[[Delta], None] | None = None) -> Result | None:
        """Serve `call` from the cache if the mode allows (logging the hit), else None.

        In replay mode a miss raises `CacheMiss` naming the nearest stored request. A hit is
        handed to `on_delta` whole, so streaming UIs show cached answers the same way.
        """
        if self.cache_mode in ("off", "refresh"):
            return None
        rec = self.store.cache_get(call.key)
        if rec is None:
            if self.cache_mode == "replay":
                raise self.miss_error(call)
            return None
        result = Result.from_record(rec, cache_key=call.key, sample=call.sample, call_id=new_id())
        self.store.record_hit(
            self.log_row(call, rec, status="hit", call_id=result.call_id, saved=result.saved_usd)
        )
        if on_delta is not None:
            for kind, text in (("reasoning", result.reasoning), ("content", result.content)):
                if text:
                    on_delta((kind, text))
        return result

    def miss_error(self, call: Call) -> CacheMiss:
        """The `CacheMiss` for `call`: the nearest stored request and the fields that differ."""
        near, diffs = cachekey.nearest(
            call.material, self.store.cache_candidates(self.endpoint.identity, self.model)
        )
        detail = "; ".join(diffs[:6]) if near else "the cache is empty"
        return CacheMiss(
            f"replay mode: no cached response for this request ({detail}). Record it with "
            "MMLAB_CACHE=use (or `mmlab record NOTEBOOK`) or import the bundle that has it.",
            nearest=near,
            differences=diffs,
        )

    async def send(
        self,
        call: Call,
        *,
        stream: bool = False,
        on_delta: Callable[[Delta], None] | None = None,
        throttle: Throttle | None = None,
        limits: Sequence[tuple[str | None, float]] = (),
    ) -> Result:
        """Send a prepared call (budget check → HTTP with retries → cost → cache + log).

        `limits` are extra (tag scope, USD) budgets to respect besides the lab's own (a
        sweep's budget, for instance).
        """
        if self.cache_mode == "replay":
            raise self.miss_error(call)  # replay never opens a socket, whoever calls
        reservation = None
        caps = list(limits)
        if self.budget_usd is not None:
            caps.append((self.tag, self.budget_usd))
        if caps:
            worst = await self.worst_case_usd(call)
            reservation = self.store.reserve(call.tag, worst, caps)
        stats = CallStats()
        started = time.perf_counter()
        status = (
            "refresh"
            if self.cache_mode == "refresh"
            else ("off" if self.cache_mode == "off" else "miss")
        )

        def retried(exc: APIError, wait: float) -> None:
            if on_delta is not None:
                on_delta(("reset", ""))  # a retried stream starts over: drop the partial text

        try:
            reply = await with_retries(
                lambda: self.endpoint.complete(self._http(), call.body, stream, on_delta),
                self.retry,
                stats,
                throttle,
                retried,
            )
        except BaseException as exc:
            # Cancelled, interrupted or failed: one error row, reservation released, no cache.
            self._log_error(call, exc, stats, time.perf_counter() - started, status, reservation)
            raise
        latency = time.perf_counter() - started
        cost, source, ref = await self._cost(reply.billed_cost_usd, reply.usage, call)
        result = Result.from_reply(
            reply,
            cost_usd=cost,
            cost_source=source,
            price_ref=ref,
            spent_usd=cost or 0.0,
            latency_s=latency,
            call_id=new_id(),
            cache_key=call.key,
            sample=call.sample,
            retries=stats.retries,
        )
        if result.model is None or self.endpoint.kind == "local":
            result.model = self.model
        rec = result.record()
        cache_row = None
        if self.cache_mode != "off" and result.finish_reason is not None:
            cache_row = (
                call.key,
                self.endpoint.identity,
                self.model,
                call.sample,
                canonical_json(call.material),
                json.dumps(rec),
                result.created,
            )
        row = self.log_row(
            call,
            rec,
            status=status,
            call_id=result.call_id,
            spent=result.spent_usd,
            retries=stats.retries,
        )
        try:
            self.store.record(row, cache_row=cache_row, release=reservation)
        except BaseException:
            if reservation is not None:
                with contextlib.suppress(Exception):
                    self.store.release(reservation)
            raise
        return result

    def _http(self) -> Http:
        http = _HTTP.get(self.timeouts)
        if http is None:
            http = _HTTP[self.timeouts] = Http(self.timeouts)
        return http

    # --- money --------------------------------------------------------------------------------
    async def _cost(
        self, billed: float | None, usage: Any, call: Call
    ) -> tuple[float | None, str, str | None]:
        if billed is not None:
            return billed, "billed", None
        if self.endpoint.kind == "local":
            return 0.0, "local", None
        table = await self.aprices()
        price = table.get(self.model)
        if price is None:
            return None, "unknown", None
        return (
            price.cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens),
            "computed",
            table.source,
        )

    async def worst_case_usd(self, call: Call) -> float:
        """The most `call` could cost: estimated prompt plus `max_tokens` at list price."""
        if self.endpoint.kind == "local":
            return 0.0
        table = await self.aprices()
        price = table.get(self.model)
        if price is None:
            raise BudgetExceeded(
                f"cannot bound the cost of {self.model!r}: it has no price in {table.source}; "
                "a budget needs a price",
                budget_usd=self.budget_usd or 0.0,
                spent_usd=0.0,
                needed_usd=math.inf,
            )
        prompt = estimate_prompt_tokens(call.body["messages"])
        completion = (
            call.body.get("max_tokens") or price.max_completion_tokens or (FALLBACK_MAX_COMPLETION)
        )
        return price.cost(prompt, completion)

    @property
    def prices(self) -> PriceTable:
        """The price table in use: OpenRouter's live ``/models`` (cached for a day) when this
        is an OpenRouter endpoint and reachable, else the embedded fallback."""
        if self._prices is None:
            return run_sync(self.aprices())
        return self._prices

    async def aprices(self) -> PriceTable:
        """Async `prices`."""
        if self._prices is not None:
            return self._prices
        table = EMBEDDED
        if self.endpoint.kind == "openrouter" and self.cache_mode != "replay":
            source = f"{self.endpoint.identity}/models"
            stored = self.store.price_get(source)
            if stored and time.time() - stored[0] < PRICE_TTL_S:
                table = table_from_json(stored[1])
            else:
                try:
                    status, body = await self._http().get_json(
                        f"{self.endpoint.base_url}/models", self.endpoint.request_headers()
                    )
                    live = parse_models(body, f"openrouter:/models@{time.strftime('%Y-%m-%d')}")
                    if status == 200 and live.prices:
                        table = live
                        self.store.price_put(source, table_to_json(table))
                except APIError:
                    pass  # offline: the embedded table is the documented fallback
            if self.model not in table.prices and EMBEDDED.get(self.model):
                table = EMBEDDED
        self._prices = table
        return table

    def spent_usd(self, tag: str | None = None) -> float:
        """USD spent by logged calls with `tag` (default: this lab's tag; None = whole db)."""
        return self.store.spent(tag if tag is not None else self.tag)

    # --- the log ------------------------------------------------------------------------------
    def log_row(
        self,
        call: Call,
        rec: Mapping[str, Any],
        *,
        status: str,
        call_id: str | None,
        spent: float = 0.0,
        saved: float = 0.0,
        retries: int = 0,
    ) -> dict[str, Any]:
        """A log row from a response record (`Result.record()` or a cache entry).

        Latency, TTFT and cost describe how the response was produced (on a hit, the
        original call's figures); `spent`/`saved` describe this call.
        """
        usage = rec.get("usage") or {}
        content = rec.get("content") or ""
        return {
            "call_id": call_id,
            "ts": time.time(),
            "tag": call.tag,
            "cache_key": call.key,
            "cache_status": status,
            "endpoint": self.endpoint.identity,
            "model": self.model,
            "provider": rec.get("provider"),
            "generation_id": rec.get("generation_id"),
            "sample": call.sample,
            "params": call.params_json,
            "prompt_tokens": usage.get("prompt_tokens", 0),
            "completion_tokens": usage.get("completion_tokens", 0),
            "reasoning_tokens": usage.get("reasoning_tokens", 0),
            "cached_tokens": usage.get("cached_tokens", 0),
            "cost_usd": rec.get("cost_usd"),
            "spent_usd": spent,
            "saved_usd": saved,
            "cost_source": rec.get("cost_source"),
            "price_ref": rec.get("price_ref"),
            "latency_s": rec.get("latency_s"),
            "ttft_s": rec.get("ttft_s"),
            "finish_reason": rec.get("finish_reason"),
            "truncated": int(is_truncated(rec.get("finish_reason"), content)),
            "reasoning_mode": rec.get("reasoning_mode"),
            "retries": retries,
            "status": 200,
        }

    def _log_error(
        self,
        call: Call,
        exc: BaseException,
        stats: CallStats,
        latency: float,
        status: str,
        reservation: str | None,
    ) -> None:
        if isinstance(exc, APIError):
            code, kind = exc.status, exc.error_type
        elif isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
            code, kind = None, "cancelled"
        else:
            code, kind = None, type(exc).__name__
        row = {
            "call_id": new_id(),
            "ts": time.time(),
            "tag": call.tag,
            "cache_key": call.key,
            "cache_status": status,
            "endpoint": self.endpoint.identity,
            "model": self.model,
            "sample": call.sample,
            "params": call.params_json,
            "spent_usd": 0.0,
            "saved_usd": 0.0,
            "cost_source": "unknown",
            "latency_s": latency,
            "retries": stats.retries,
            "status": code,
            "error_type": kind,
            "error": redact(str(exc) or type(exc).__name__)[:2000],
        }
        try:
            self.store.record(row, release=reservation)
        except Exception:  # the original error matters more than a failed log write
            if reservation is not None:
                try:
                    self.store.release(reservation)
                except Exception:
                    pass

    def calls(self, tag: str | None = None, *, all_tags: bool = False) -> pd.DataFrame:
        """The usage log as a DataFrame, one row per call (hits and errors included).

        Defaults to this lab's tag when it has one; `all_tags=True` shows everything. Request
        parameters are expanded into columns (``temperature``, ``max_tokens``, ...).
        """
        import pandas as pd

        scope = None if all_tags else (tag if tag is not None else self.tag)
        df = self.store.calls_frame(*tag_filter("tag", scope))
        if len(df):
            params = pd.json_normalize([json.loads(p or "{}") for p in df["params"]])
            params.index = df.index
            df = df.join(params[[c for c in params.columns if c not in df.columns]])
        return df

    def summary(self, by: str = "tag", tag: str | None = None) -> pd.DataFrame:
        """Totals of the log grouped `by` day | model | tag | endpoint: calls, hits, errors,
        tokens, spent and saved USD."""
        return usage_summary(self.store, by, tag if tag is not None else self.tag)

    # --- reconciliation -----------------------------------------------------------------------
    def reconcile(self, *, attempts: int = 5, wait_s: float = 1.0) -> pd.DataFrame:
        """Fill missing or computed costs from OpenRouter's ``GET /generation`` (billed).

        The generation record can 404 for a moment after a completion, so each id is retried
        `attempts` times, `wait_s` apart. Returns the rows it updated.
        """
        return run_sync(self.areconcile(attempts=attempts, wait_s=wait_s))

    async def areconcile(self, *, attempts: int = 5, wait_s: float = 1.0) -> pd.DataFrame:
        """Async `reconcile`."""
        import pandas as pd

        if self.endpoint.kind != "openrouter":
            raise ConfigError("reconcile needs an OpenRouter endpoint (GET /generation)")
        if self.cache_mode == "replay":
            raise ConfigError("reconcile talks to the network; not in replay mode")
        rows = self.store.query(
            "SELECT call_id, generation_id, cache_key, cache_status FROM calls "
            "WHERE generation_id IS NOT NULL AND cache_status != 'hit' AND endpoint = ? "
            "AND (cost_source IS NULL OR cost_source IN ('unknown', 'computed'))",
            (self.endpoint.identity,),
        )
        updated = []
        for call_id, gen_id, key, _status in rows:
            cost = None
            for attempt in range(attempts):
                status, body = await self._http().get_json(
                    f"{self.endpoint.base_url}/generation",
                    self.endpoint.request_headers(),
                    params={"id": gen_id},
                )
                data = (body or {}).get("data") if isinstance(body, dict) else None
                if status == 200 and isinstance(data, dict) and data.get("total_cost") is not None:
                    cost = float(data["total_cost"])
                    break
                if status != 404 or attempt == attempts - 1:
                    break
                await asyncio.sleep(wait_s)
            if cost is None:
                continue
            self.store.write(
                lambda db, c=cost, i=call_id: db.execute(
                    "UPDATE calls SET cost_usd = ?, spent_usd = ?, cost_source = 'billed', "
                    "price_ref = NULL WHERE call_id = ?",
                    (c, c, i),
                )
            )
            self._rebill_cache(key, cost)
            updated.append({"call_id": call_id, "generation_id": gen_id, "cost_usd": cost})
        return pd.DataFrame(updated, columns=["call_id", "generation_id", "cost_usd"])

    def _rebill_cache(self, key: str | None, cost: float) -> None:
        rec = self.store.cache_get(key) if key else None
        if rec is not None:
            rec.update(cost_usd=cost, cost_source="billed", price_ref=None)
            self.store.write(
                lambda db: db.execute(
                    "UPDATE cache SET response = ? WHERE key = ?", (json.dumps(rec), key)
                )
            )

    # --- sweeps -------------------------------------------------------------------------------
    def sweep(
        self,
        prompts: Any,
        params: Any = None,
        *,
        repeats: int = 1,
        tag: str | None = None,
        system: str | None = None,
        scorer: Callable[..., Any] | None = None,
        **fixed: Any,
    ) -> Sweep:
        """Define a sampling-parameter sweep (see `mmlab.sweep.Sweep`)."""
        from .sweep import Sweep

        return Sweep(
            self,
            prompts,
            params,
            repeats=repeats,
            tag=tag,
            system=system,
            scorer=scorer,
            fixed=fixed,
        )

    def close(self) -> None:
        """Close this thread's database connection."""
        self.store.close()


def estimate_prompt_tokens(messages: list[dict[str, str]]) -> int:
    """A deliberately high prompt-token estimate for budget checks (≈3 bytes per token;
    English text runs nearer 4), plus per-message overhead."""
    size = sum(len(m["content"].encode()) for m in messages)
    return math.ceil(size / 3) + 8 * len(messages) + 8


def usage_summary(store: Store, by: str, tag: str | None = None) -> pd.DataFrame:
    """Totals grouped by day | model | tag | endpoint, computed in SQL (fast on big logs)."""
    import pandas as pd

    groups = {
        # integer UTC day numbers group far faster than strftime strings; formatted below
        "day": "CAST(ts / 86400 AS INTEGER)",
        "model": "model",
        "tag": "COALESCE(tag, '')",
        "endpoint": "endpoint",
    }
    if by not in groups:
        raise RequestError(f"by must be one of {', '.join(groups)}; got {by!r}", "by")
    where, args = tag_filter("tag", tag)
    sql = f"""
        SELECT {groups[by]} AS {by}, COUNT(*) AS calls,
               SUM(cache_status = 'hit') AS hits, SUM(error IS NOT NULL) AS errors,
               COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens,
               COALESCE(SUM(completion_tokens), 0) AS completion_tokens,
               COALESCE(SUM(reasoning_tokens), 0) AS reasoning_tokens,
               SUM(spent_usd) AS spent_usd, SUM(saved_usd) AS saved_usd
        FROM calls {where} GROUP BY 1 ORDER BY 1"""
    rows = store.query(sql, args)
    cols = [
        by,
        "calls",
        "hits",
        "errors",
        "prompt_tokens",
        "completion_tokens",
        "reasoning_tokens",
        "spent_usd",
        "saved_usd",
    ]
    df = pd.DataFrame.from_records(rows, columns=cols)
    if by == "day" and len(df):
        df["day"] = pd.to_datetime(df["day"] * 86400, unit="s", utc=True).dt.strftime("%Y-%m-%d")
    return df
