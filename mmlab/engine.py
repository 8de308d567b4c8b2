"""The call path every request takes, from `lab.chat` and from sweeps alike:

    prepare (validate → cache key) → lookup (cache hit → logged result)
                                   → send: reserve → request (retries) → price → commit

`Engine` owns that path; `Lab` (the notebook's object) holds one. Every caller — ``lab.chat``,
a sweep's cells, forecasts, the adaptive scheduler — looks calls up through `Engine.lookup`
or its batched form `Engine.lookup_many` and sends them through `Engine.send`; nothing else
reads the cache. Each step of `send` is one short method, layered like httpx's ``send →
_send_handling_auth → ...``; success and error log rows are built from one base, their result
columns from the declared record (`mmlab.fields`). SQLite work runs on the store's writer
thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass
from dataclasses import fields as dataclass_fields
from typing import Any

from . import cachekey, jsonfast
from .client import CallStats, Http, Throttle, retry_wait
from .config import Timeouts
from .endpoints import Endpoint
from .errors import APIError, BudgetExceeded, CacheMiss, RequestError, StorageError
from .fields import LOGGED_COLUMNS, check_response, read_logged
from .loop import run_sync
from .params import ROUTING, check_params
from .pricing import (
    EMBEDDED,
    Price,
    PriceTable,
    cost_of,
    failure_charge,
    table_from_json,
    table_to_json,
    worst_case_usd,
    zero_usage,
)
from .redaction import redact
from .result import Result
from .retry import RetryPolicy
from .store import CALL_COLUMNS, CacheEntry, CallRow, Store, new_id
from .tags import nest
from .wire import Delta, Reply, build_body, check_messages, scrub_reply

PRICE_TTL_S = 24 * 3600
# A result's log row is filled by position (hits build one per call): where each declared
# log figure goes among the log's columns, and the defaults of the rest.
_COLUMN_AT = {name: i for i, name in enumerate(CALL_COLUMNS)}
_LOGGED_AT = tuple(_COLUMN_AT[c] for c in LOGGED_COLUMNS)
_STATUS_AT = _COLUMN_AT["status"]
_ROW_BASE = tuple(
    f.default if f.default is not MISSING else None for f in dataclass_fields(CallRow)
)
#: ``lab.chat``'s own keyword arguments (beside the request parameters), for suggestions.
CHAT_ARGUMENTS = ("system", "stream", "sample", "tag", "on_delta")
#: The name of a lab's own endpoint, as a value of the ``endpoint`` axis.
DEFAULT_ENDPOINT = "default"
_HTTP: dict[tuple[Timeouts, int], Http] = {}


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
    """Log tag (already nested under the lab's tag)."""
    params_json: str
    """The sampling/reasoning/provider fields as canonical JSON (the log's `params`)."""
    request_json: str
    """Canonical JSON of the request (shared by the repeats of one request)."""
    model: str
    """The model asked (the body's ``model``)."""
    via: Endpoint
    """The endpoint the call goes to (the lab's own, or one named by ``endpoint=``)."""

    @property
    def material_json(self) -> str:
        """The canonical key material the key hashes (stored beside the cache entry)."""
        return cachekey.material_json(self.endpoint, self.request_json, self.sample)

    @property
    def material(self) -> dict[str, Any]:
        """What the key is made of."""
        return jsonfast.loads(self.material_json)

    @property
    def params(self) -> dict[str, Any]:
        """The sampling/reasoning/provider fields."""
        return {k: v for k, v in self.body.items() if k not in ("model", "messages")}


@dataclass(frozen=True, slots=True)
class Hold:
    """A budget reservation held for one attempt: its id and the USD it holds."""

    rid: str
    usd: float


#: Seconds between looks at the cache while another process sends the same request.
CLAIM_POLL_S = 0.25
# The requests this process is sending now, per event loop, by (database, cache key): a
# second identical one — from any engine on the same database — waits for the first's answer
# instead of paying for it again.
_INFLIGHT: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str], asyncio.Future[None]]
] = weakref.WeakKeyDictionary()


def _retries_stopped(last: APIError, refused: BudgetExceeded, spent: float) -> BudgetExceeded:
    """The budget's refusal of a retry, saying what the call's failed attempts were."""
    return BudgetExceeded(
        f"{refused} — retries stopped after {last.attempts} failed attempt(s) charged "
        f"${spent:.4f} in all; the last: {last}",
        budget_usd=refused.budget_usd,
        spent_usd=refused.spent_usd,
        needed_usd=refused.needed_usd,
    )


class Engine:
    """Cache, budget, retries, pricing and log around one endpoint (see the module docstring).

    Args:
        endpoint: where requests go.
        store: the database holding cache, log, reservations and prices.
        model: the model id every request names.
        cache_mode: use | refresh | replay | off.
        budget_usd: the cap on spend under `tag` (None: no cap).
        tag: the label every call is logged under (per-call tags nest below it).
        timeouts, retry: transport timeouts and retry policy.
        transport: an httpx transport replacing the sockets (unit tests).
        bundle_savings: count hits on entries imported from bundles as money saved.
        endpoints: further endpoints by name.
        trust_imports: let entries imported from bundles answer live calls.
        prefer_origin: the origin (``bundle:<sha256>``) whose entries win for a request
            several entries answer.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        store: Store,
        *,
        model: str,
        cache_mode: str,
        budget_usd: float | None,
        tag: str | None,
        timeouts: Timeouts,
        retry: RetryPolicy,
        transport: Any = None,
        bundle_savings: bool = False,
        endpoints: Mapping[str, Endpoint] | None = None,
        trust_imports: bool = False,
        prefer_origin: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.endpoints: dict[str, Endpoint] = dict(endpoints or {})
        """Further endpoints by name: ``endpoint="name"`` sends a call (a sweep's cells) there."""
        self.bundle_savings = bundle_savings
        self.store = store
        self.model = model
        self.cache_mode = cache_mode
        self.budget_usd = budget_usd
        self.tag = tag
        self.timeouts = timeouts
        self.retry = retry
        self.transport = transport
        self._prices: dict[str, PriceTable] = {}
        self.trust_imports = trust_imports
        """Whether an entry imported from a bundle may answer a live call (replay always
        may): off by default, so another's recorded answer never passes for a fresh one."""
        self.prefer_origin = prefer_origin
        """The origin whose entries win when several answer one request (a replayed
        notebook's own bundle)."""

    # --- prepare ------------------------------------------------------------------------------
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
        checked = check_params(params, arguments=CHAT_ARGUMENTS, caller="chat")
        return self.call_for(messages, checked, sample, nest(self.tag, tag))

    def call_for(
        self, messages: list[dict[str, Any]], params: dict[str, Any], sample: int, tag: str | None
    ) -> Call:
        """A `Call` from already-validated messages and parameters: the end of `prepare`."""
        return self.calls_for(messages, params, [sample], tag)[0]

    def calls_for(
        self,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        samples: Sequence[int],
        tag: str | None,
        params_json: str | None = None,
    ) -> list[Call]:
        """The calls of one request's repeats (sample indices `samples`). They share one body
        and its canonical JSON, so a sweep of many repeats holds each request once.

        ``endpoint`` and ``model`` among `params` route the call (see `route`)."""
        via, model, wire = self.route(params)
        via.check(wire)
        via.check_model(model)
        body = build_body(model, messages, wire)
        identity = via.identity
        request = cachekey.request_json(body)
        pj = params_json if params_json is not None else jsonfast.dumps_sorted(params)
        return [
            Call(
                body,
                identity,
                cachekey.key_of(cachekey.material_json(identity, request, sample)),
                sample,
                tag,
                pj,
                request,
                model,
                via,
            )
            for sample in samples
        ]

    def route(self, params: Mapping[str, Any]) -> tuple[Endpoint, str, dict[str, Any]]:
        """(endpoint, model, the parameters the body carries) of a validated request: the
        named endpoint (``endpoint=``; ``"default"`` is the lab's own) or the lab's own; the
        given model, else that endpoint's default, else the lab's."""
        if "endpoint" not in params and "model" not in params:
            return self.endpoint, self.model, dict(params)
        via = self.endpoint
        name = params.get("endpoint")
        if name is not None and name != DEFAULT_ENDPOINT:
            via = self.endpoints.get(name)  # type: ignore[assignment]
            if via is None:
                known = ", ".join(sorted(self.endpoints)) or "none (pass Lab(endpoints={...}))"
                raise RequestError(
                    f"endpoint {name!r} is not one of this lab's endpoints; known: {known}",
                    "endpoint",
                )
        model = params.get("model") or (
            self.model if via is self.endpoint else via.default_model or self.model
        )
        wire = {k: v for k, v in params.items() if k not in ROUTING}
        return via, model, wire

    # --- the log ------------------------------------------------------------------------------
    def _row(self, call: Call, status: str, result: Result | None = None) -> CallRow:
        """The log row of `call`: the base every row shares, plus the result's figures (the
        columns `mmlab.fields` declares for the log, read in one pass)."""
        if result is None:
            return CallRow(new_id(), time.time(), call.tag, call.key, status, call.endpoint,
                           call.model, call.sample, call.params_json)  # fmt: skip
        return self._row_of(call, status, read_logged(result), time.time())

    @staticmethod
    def _row_of(call: Call, status: str, logged: tuple[Any, ...], ts: float) -> CallRow:
        """The log row of `call` from its result's `read_logged` figures, made at `ts`."""
        values = [*_ROW_BASE]
        values[:9] = (None, ts, call.tag, call.key, status, call.endpoint, call.model,
                      call.sample, call.params_json)  # fmt: skip
        for at, value in zip(_LOGGED_AT, logged, strict=True):
            values[at] = value
        if not values[0]:
            values[0] = new_id()
        values[_STATUS_AT] = 200
        return CallRow(*values)

    def _hit_row(self, call: Call, result: Result) -> Callable[[], CallRow]:
        """A hit's log row, built when it is written (`Store.log_hits`): the hit's figures
        and time are read now — the caller may change its result afterwards —, the row is
        assembled off the hit's path."""
        return functools.partial(self._row_of, call, "hit", read_logged(result), time.time())

    def _error_row(
        self, call: Call, status: str, exc: BaseException, stats: CallStats, latency: float
    ) -> CallRow:
        """The log row of a call that ended in `exc` (spent nothing, cached nothing)."""
        row = self._row(call, status)
        if isinstance(exc, APIError):
            row.status, row.error_type = exc.status, exc.error_type
        elif isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
            row.error_type = "cancelled"
        else:
            row.error_type = type(exc).__name__
        row.cost_source = "unknown"
        row.latency_s = latency
        row.retries = stats.retries
        row.error = redact(str(exc) or type(exc).__name__)[:2000]
        return row

    # --- lookup -------------------------------------------------------------------------------
    def lookup(self, call: Call, on_delta: Callable[[Delta], None] | None = None) -> Result | None:
        """Serve `call` from the cache if the mode allows (logging the hit), else None.

        In replay mode a miss raises `CacheMiss` naming the nearest stored request. A hit is
        handed to `on_delta` whole, so streaming UIs show cached answers the same way.
        """
        if self.cache_mode in ("off", "refresh"):
            return None
        found = self.store.cache_get(call.key, imports=self.imports, prefer=self.prefer_origin)
        if found is None:
            if self.cache_mode == "replay":
                raise self.miss_error(call)
            return None
        result = self._hit(call, *found)
        self.store.log_hits([self._hit_row(call, result)])
        if on_delta is not None:
            for kind, text in (("reasoning", result.reasoning), ("content", result.content)):
                if text:
                    on_delta((kind, text))
        return result

    def lookup_many(self, calls: Sequence[Call]) -> list[Result | None]:
        """`lookup` for many calls at once (a sweep's cached cells): one query per few
        hundred keys and one batch of hit rows. Returns each call's result, or None for a
        call with no cached response (a miss is not raised here, even in replay mode: the
        caller decides what a miss means, see `miss_error`)."""
        if self.cache_mode in ("off", "refresh") or not calls:
            return [None] * len(calls)
        stored = self.store.cache_get_many(
            (c.key for c in calls), imports=self.imports, prefer=self.prefer_origin
        )
        out: list[Result | None] = []
        rows = []
        for call in calls:
            found = stored.get(call.key)
            if found is None:
                out.append(None)
                continue
            result = self._hit(call, *found)
            out.append(result)
            rows.append(self._hit_row(call, result))
        self.store.log_hits(rows)
        return out

    def status(
        self, calls: Sequence[Call], tag: str | None
    ) -> tuple[set[str], dict[str, str]]:
        """Where `calls` stand, without serving them: (the keys with a cached response, the
        last error of each key without one whose last attempt under `tag` failed). An
        interrupted attempt, or one that later succeeded, is not a failure."""
        keys = [c.key for c in calls]
        cached = self.store.cache_keys(keys, imports=self.imports)
        return cached, self.store.last_errors(tag, set(keys) - cached)

    @property
    def imports(self) -> bool:
        """Whether entries imported from bundles may answer now: in replay mode (that is
        what bundles are for), or when `trust_imports` is on."""
        return self.cache_mode == "replay" or self.trust_imports

    def length_observations(
        self, model: str, endpoint: str
    ) -> list[tuple[int | None, int, bool, int]]:
        """The completion lengths this database's successful paid calls to `model` at
        `endpoint` wrote, as (``max_tokens``, tokens, cut at the cap, calls) rows — what a
        forecast learns lengths from (see `mmlab.sweep.lengths`)."""
        return self.store.length_observations(model, endpoint)

    def _hit(self, call: Call, rec: dict[str, Any], origin: str | None) -> Result:
        """The result of serving `call` from a cache entry that came from `origin`.

        An entry imported from a bundle saves nothing unless `bundle_savings` is on: its
        ``cost_usd`` is what the bundle's author says it cost, not money this project paid.
        """
        return Result.from_cache(
            rec,
            cache_key=call.key,
            sample=call.sample,
            call_id=new_id(),
            saved=origin is None or self.bundle_savings,
            origin=origin,
        )

    def miss_error(self, call: Call) -> CacheMiss:
        """The `CacheMiss` for `call`: the nearest stored request and the fields that differ —
        nearest among the entries its own tag's calls used when there are any (a sweep
        cell's neighbours in the same sweep), else among every entry of its model."""
        candidates, own = self.store.cache_candidates(call.endpoint, call.model, call.tag)
        near, diffs = cachekey.nearest(call.material, candidates)
        detail = "; ".join(diffs[:6]) if near else "the cache is empty"
        if near and own:
            detail = f"nearest entry of tag {call.tag!r}: {detail}"
        return CacheMiss(
            f"replay mode: no cached response for this request ({detail}). Record it with "
            "MMLAB_CACHE=use (or `mmlab record NOTEBOOK`) or import the bundle that has it.",
            nearest=near,
            differences=diffs,
        )

    # --- send: claim → reserve → request (per attempt) → price → commit ----------------------
    async def send(
        self,
        call: Call,
        *,
        stream: bool = False,
        on_delta: Callable[[Delta], None] | None = None,
        throttle: Throttle | None = None,
        limits: Sequence[tuple[str | None, float]] = (),
    ) -> Result:
        """Send a prepared call: reserve its worst case, request it, price it, commit it
        (cache entry + log row + release, one durable transaction); retry what may succeed.

        The same request is paid for once: while one task of this process sends it, another
        asking the same waits and is served the answer from the cache; across processes, a
        claim in the store does the same (``use`` mode — ``refresh`` and ``off`` ask for a
        fresh call every time). Each attempt is reserved and charged on its own: a failed
        attempt that may have been billed is logged with its charge (`mmlab.pricing.
        failure_charge`), and retries stop when the next attempt's worst case could cross a
        budget. `limits` are extra (tag scope, USD) budgets besides the lab's own (a sweep's);
        `throttle` (a sweep's concurrency limit) covers the reservation and the request.
        """
        if self.cache_mode == "replay":
            # replay never opens a socket, whoever calls; the explanation reads the log
            raise await asyncio.to_thread(self.miss_error, call)
        if self.cache_mode != "use":
            return await self._send(call, stream, on_delta, throttle, limits)
        loop = asyncio.get_running_loop()
        inflight = _INFLIGHT.setdefault(loop, {})
        mine = (str(self.store.path), call.key)
        while (first := inflight.get(mine)) is not None:
            await asyncio.shield(first)  # the same request, in flight in this process
            hit = self.lookup(call, on_delta)
            if hit is not None:
                return hit
        done = inflight[mine] = loop.create_future()
        claims = self.store.claims
        try:
            while not claims.claim(call.key):
                # another process is sending this very request: wait for its answer
                await asyncio.sleep(CLAIM_POLL_S)
            try:
                hit = self.lookup(call, on_delta)  # it may have landed before our claim
                if hit is not None:
                    return hit
                return await self._send(call, stream, on_delta, throttle, limits)
            finally:
                claims.release(call.key)  # after the commit: a waiter finds the answer
        finally:
            del inflight[mine]
            done.set_result(None)

    async def _send(
        self,
        call: Call,
        stream: bool,
        on_delta: Callable[[Delta], None] | None,
        throttle: Throttle | None,
        limits: Sequence[tuple[str | None, float]],
    ) -> Result:
        status = self.cache_mode if self.cache_mode in ("refresh", "off") else "miss"
        stats = CallStats()
        spent = 0.0
        last: APIError | None = None
        while True:
            async with throttle or contextlib.nullcontext():
                try:
                    hold = await self._reserve(call, limits)
                except BaseException as exc:
                    if isinstance(exc, BudgetExceeded) and last is not None:
                        raise _retries_stopped(last, exc, spent) from None
                    raise
                started = time.perf_counter()
                try:
                    reply = await call.via.complete(self.http, call.body, stream, on_delta)
                except APIError as exc:
                    failure: APIError | None = exc
                except BaseException as exc:  # cancelled, interrupted: logged, not charged
                    self._failed(call, status, exc, stats, started, hold)
                    raise
                else:
                    failure = None
                    if throttle is not None:
                        throttle.succeeded()
            if failure is None:
                break
            last = failure
            wait = retry_wait(failure, self.retry, stats, throttle)
            final = wait is None
            spent += await self._charge(call, status, failure, stats, started, hold, final=final)
            failure.spent_usd = spent
            if final:
                raise failure
            if on_delta is not None:
                on_delta(("reset", ""))  # a retried stream starts over: drop the partial text
            await asyncio.sleep(wait)
        latency = time.perf_counter() - started
        try:
            result = await self._price(call, reply, stats, latency, hold)
        except BaseException as exc:
            self._failed(call, status, exc, stats, started, hold)
            raise
        try:
            await self._commit(call, result, status, hold)
        except StorageError as exc:
            # answered (and maybe paid) but not logged: say what it cost, and keep its
            # reservation held — the budget goes on counting it while this process lives
            raise StorageError(
                f"{exc}. The call was answered but could not be logged: it cost "
                f"{'an unknown amount' if result.cost_usd is None else f'${result.cost_usd:.6f}'}"
                f" ({result.cost_source}); its budget reservation stays held"
            ) from None
        return result

    def _failed(
        self,
        call: Call,
        status: str,
        exc: BaseException,
        stats: CallStats,
        started: float,
        hold: Hold | None,
    ) -> None:
        # Cancelled, interrupted, failed before an answer: one error row, reservation
        # released, nothing cached or charged.
        row = self._error_row(call, status, exc, stats, time.perf_counter() - started)
        self.store.log_failure(row, hold.rid if hold else None)

    async def _charge(
        self,
        call: Call,
        status: str,
        exc: APIError,
        stats: CallStats,
        started: float,
        hold: Hold | None,
        *,
        final: bool,
    ) -> float:
        """Log a failed attempt with what it may have cost (its charge) and release its
        reservation; returns the charge. A charged attempt's row is durable before the next
        attempt is reserved (it is money); an uncharged one is logged only when it is the
        call's last (`final`), as before."""
        worst = hold.usd if hold is not None else await self._worst_or_none(call)
        spent, cost, source = failure_charge(
            exc.billed_usd, exc.billable, worst, free=call.via.capabilities.free
        )
        if source is None and not final:
            if hold is not None:
                self.store.release_behind(hold.rid)
            return 0.0
        row = self._error_row(call, status, exc, stats, time.perf_counter() - started)
        if not final:
            # a failed attempt a retry follows: its own row (it is money), not the call's
            # outcome — `retries` and the cell's status come from the call's last row
            row.cache_status, row.retries = "retried", 0
        if source is not None:
            row.spent_usd, row.cost_usd, row.cost_source = spent, cost, source
            row.generation_id = exc.generation_id
            await self.store.acommit_call(row, None, hold.rid if hold else None)
        else:
            self.store.log_failure(row, hold.rid if hold else None)
        return spent

    async def _worst_or_none(self, call: Call) -> float | None:
        try:
            return await self.worst_case_usd(call)
        except BudgetExceeded:
            return None  # unpriced: the charge is unknown, not a number

    async def _reserve(
        self, call: Call, limits: Sequence[tuple[str | None, float]]
    ) -> Hold | None:
        caps = list(limits)
        if self.budget_usd is not None:
            caps.append((self.tag, self.budget_usd))
        if not caps:
            return None
        usd = await self.worst_case_usd(call, bounded=True)
        return Hold(await self.store.areserve(call.tag, usd, caps), usd)

    async def _price(
        self, call: Call, reply: Reply, stats: CallStats, latency: float, hold: Hold | None
    ) -> Result:
        free = call.via.capabilities.free
        scrub_reply(reply)  # whatever a server echoed, no secret is stored or shown
        try:
            price, table = None, EMBEDDED
            if reply.billed_cost_usd is None and not free:
                price, table = await self.price_for(call.via, call.model)
            cost, source, ref = cost_of(reply.billed_cost_usd, reply.usage, price, table, free=free)
            cost, source = zero_usage(reply, cost, source)
            if source == "computed" and not reply.usage_reported:
                cost, source, ref = None, "unknown", None  # no readable counts: never free
        except Exception:  # noqa: BLE001 - pricing must never lose an answer that was paid for
            cost, source, ref = None, "unknown", None  # `reconcile` can bill it later
        spent = cost
        if cost is None and not free:
            # unknown: counted at its worst case (what its reservation held) until reconciled
            spent = hold.usd if hold is not None else await self._worst_or_none(call)
        result = Result.from_reply(
            reply,
            cost_usd=cost,
            cost_source=source,
            price_ref=ref,
            spent_usd=spent or 0.0,
            latency_s=latency,
            call_id=new_id(),
            cache_key=call.key,
            sample=call.sample,
            retries=stats.retries,
        )
        result.model = reply.model or call.model
        return result

    async def _commit(
        self, call: Call, result: Result, status: str, hold: Hold | None
    ) -> None:
        entry = None
        stored = result.to_dict()
        try:
            check_response(stored)  # what a bundle of it must pass on import: one schema
        except ValueError as exc:
            # kept and logged, never cached: a bundle of it would be refused on import
            result.notice = f"not cached: {exc}"
            stored = None
        if self.cache_mode != "off" and result.finish_reason is not None and stored:
            entry = CacheEntry(
                call.key,
                call.endpoint,
                call.model,
                call.sample,
                call.material_json,
                jsonfast.dumps(stored),
                result.created,
            )
        row = self._row(call, status, result)
        await self.store.acommit_call(row, entry, hold.rid if hold else None)

    def all_endpoints(self) -> list[Endpoint]:
        """The engine's own endpoint and its named ones."""
        return [self.endpoint, *self.endpoints.values()]

    @property
    def http(self) -> Http:
        """The connection pools this engine's calls use (shared by engines alike)."""
        key = (self.timeouts, id(self.transport))
        http = _HTTP.get(key)
        if http is None:
            http = _HTTP[key] = Http(self.timeouts, transport=self.transport)
        return http

    # --- money --------------------------------------------------------------------------------
    async def worst_case_usd(self, call: Call, *, bounded: bool = False) -> float:
        """The most `call` could cost: its prompt bound plus its completion cap at list price.

        `bounded` (what a budget reserves): the completion cap must be one the request sets
        (``max_tokens``) or the model's listing states; a guessed cap could be crossed by a
        single reply, so such a call is refused (`BudgetExceeded`, nothing sent)."""
        if call.via.capabilities.free:
            return 0.0
        price, table = await self.price_for(call.via, call.model)
        if price is None:
            raise BudgetExceeded(
                f"cannot bound the cost of {call.model!r}: it has no price in {table.source}; "
                "a budget needs a price",
                budget_usd=self.budget_usd or 0.0,
                spent_usd=0.0,
                needed_usd=float("inf"),
            )
        if bounded and not call.body.get("max_tokens") and not price.max_completion_tokens:
            raise BudgetExceeded(
                f"cannot bound the cost of this call: it sets no max_tokens and {call.model!r}'s "
                f"listing ({table.source}) states no maximum completion length, so one reply "
                "could cost more than any reservation. Under a budget, pass max_tokens (M1 can "
                "think for 40,000 tokens and more)",
                budget_usd=self.budget_usd or 0.0,
                spent_usd=0.0,
                needed_usd=float("inf"),
            )
        return worst_case_usd(price, call.body)

    @property
    def prices(self) -> PriceTable:
        """The price table in use: the endpoint's live list (cached for a day) when it has one
        and is reachable, else its static table (embedded list prices; free for local)."""
        table = self._prices.get(self.endpoint.identity)
        return table if table is not None else run_sync(self.aprices())

    async def aprices(self, endpoint: Endpoint | None = None) -> PriceTable:
        """Async `prices` (of `endpoint`: default the lab's own)."""
        via = endpoint or self.endpoint
        table = self._prices.get(via.identity)
        if table is not None:
            return table
        table = via.static_prices()
        if via.capabilities.live_prices and self.cache_mode != "replay":
            source = f"{via.identity}/models"
            stored = self.store.price_get(source)
            if stored and time.time() - stored[0] < PRICE_TTL_S:
                table = table_from_json(stored[1])
            else:
                live = await via.fetch_prices(self.http)
                if live is not None:
                    table = live
                    await self.store.aprice_put(source, table_to_json(table))
        self._prices[via.identity] = table
        return table

    async def price_for(self, endpoint: Endpoint, model: str) -> tuple[Price | None, PriceTable]:
        """`model`'s price at `endpoint` and the table it came from: the endpoint's table, or
        the embedded list prices when that table does not know the model."""
        table = await self.aprices(endpoint)
        price = table.get(model)
        if price is None and table is not EMBEDDED and EMBEDDED.get(model) is not None:
            return EMBEDDED.get(model), EMBEDDED
        return price, table

    def spent_usd(self, tag: str | None = None) -> float:
        """USD spent by logged calls with `tag` (default: this lab's tag; None = whole db)."""
        return self.store.spent(tag if tag is not None else self.tag)
