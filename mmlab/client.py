"""httpx calls with classified retries, Retry-After, and adaptive concurrency.

An endpoint only knows how to send one request and read one reply (`Http.chat`); this module
owns the sockets, the retry decision (`retry_wait`) and the concurrency limiter sweeps use.
httpx is imported lazily: a cache hit or a replay never needs it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import ssl
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from .config import Timeouts
from .errors import APIError, classify_status
from .retry import RetryPolicy, parse_retry_after
from .wire import Delta, Reply, StreamAssembler, error_from_body, malformed, parse_completion

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")


#: Connection pools per event loop. httpcore scans every connection of a pool on each request
#: event (O(connections) per request), which dominated client CPU at concurrency 64; spreading
#: requests over a few smaller pools cuts that scan proportionally.
POOL_SHARDS = 4


class Http:
    """httpx.AsyncClients per event loop (a pool cannot cross loops), shared by all Labs.

    `transport` replaces the sockets (``httpx.MockTransport`` in unit tests where a socket
    proves nothing); faults, kills and storms are tested through real loopback sockets.
    """

    def __init__(
        self,
        timeouts: Timeouts,
        shards: int = POOL_SHARDS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.timeouts = timeouts
        self.transport = transport
        self.shards = 1 if transport is not None else max(1, shards)
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, list[httpx.AsyncClient]
        ] = weakref.WeakKeyDictionary()
        self._turn = 0
        self._last: tuple[Any, list[httpx.AsyncClient] | None] = (None, None)

    def client(self) -> httpx.AsyncClient:
        """A client of this loop's pools (round robin), created on first use."""
        loop = asyncio.get_running_loop()
        if self._last[0] is loop:
            clients = self._last[1]
        else:
            clients = self._clients.get(loop)
            self._last = (loop, clients)  # the current loop's pools, without a weak-dict lookup
        if clients is None:
            import httpx

            # One TLS context for all pools: loading the CA bundle takes ~30 ms each time.
            tls = _tls_context()
            clients = [
                httpx.AsyncClient(
                    verify=tls,
                    limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
                    # The pool wait is unbounded: a sweep's own limiter decides concurrency.
                    timeout=httpx.Timeout(
                        self.timeouts.read_s, connect=self.timeouts.connect_s, pool=None
                    ),
                    trust_env=False,  # never route a key through an environment proxy silently
                    transport=self.transport,
                )
                for _ in range(self.shards)
            ]
            self._clients[loop] = clients
            self._last = (loop, clients)
        self._turn = (self._turn + 1) % len(clients)
        return clients[self._turn]

    async def get_json(
        self, url: str, headers: Mapping[str, str], params: Mapping[str, str] | None = None
    ) -> tuple[int, Any]:
        """GET a JSON document; returns (status, body or None)."""
        import httpx

        try:
            resp = await self.client().get(
                url, headers=dict(headers), params=params, timeout=httpx.Timeout(30.0)
            )
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from None
        try:
            return resp.status_code, resp.json()
        except ValueError:
            return resp.status_code, None

    async def chat(
        self,
        url: str,
        headers: Mapping[str, str],
        body: Mapping[str, Any],
        stream: bool,
        on_delta: Callable[[Delta], None] | None,
        stream_extras: Mapping[str, Any] = {},  # noqa: B006 - never mutated
    ) -> Reply:
        """One POST to a chat-completions route; raises `APIError` on any failure (saying
        whether the failed attempt may have been billed). `stream_extras` are fields a
        streamed request adds (``stream_options`` where the endpoint needs it for usage)."""
        import httpx

        payload = orjson.dumps({**body, "stream": True, **stream_extras} if stream else body)
        hdrs = {**headers, "Content-Type": "application/json"}
        client = self.client()
        started = time.perf_counter()
        try:
            if not stream:
                async with client.stream(
                    "POST", _parsed(url), content=payload, headers=hdrs
                ) as resp:
                    if resp.status_code != 200:
                        raise _status_error(resp.status_code, await resp.aread(), resp.headers)
                    gen_id = resp.headers.get("x-generation-id")
                    try:
                        content = await resp.aread()
                    except httpx.HTTPError as exc:
                        # the server answered 200 and began its body: it generated (and may
                        # have billed) the reply we lost
                        err = _transport_error(exc)
                        err.billable, err.generation_id = True, gen_id
                        raise err from None
                try:
                    data = orjson.loads(content)
                except ValueError:
                    # a 200 answer mmlab cannot read may still have been generated and billed
                    raise malformed("the body is not JSON", None, gen_id) from None
                try:
                    reply = parse_completion(data)
                except APIError as exc:
                    exc.generation_id = exc.generation_id or gen_id
                    raise
                _from_headers(reply, resp.headers)
                return reply
            # Streams: the read timeout is per socket read, so it is exactly "no byte at all
            # (keep-alive comments included) for stall_s seconds".
            timeout = httpx.Timeout(
                self.timeouts.stall_s, connect=self.timeouts.connect_s, pool=None
            )
            async with client.stream(
                "POST", _parsed(url), content=payload, headers=hdrs, timeout=timeout
            ) as resp:
                if resp.status_code != 200:
                    raise _status_error(resp.status_code, await resp.aread(), resp.headers)
                asm = StreamAssembler(on_delta, time.perf_counter, started)
                try:
                    async for line in resp.aiter_lines():
                        asm.feed_line(line)
                        if asm.done:
                            break
                    reply = asm.finish()
                except (APIError, httpx.HTTPError) as exc:
                    raise _stream_failure(exc, asm, resp.headers) from None
                _from_headers(reply, resp.headers)
                return reply
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from None


def _stream_failure(exc: Exception, asm: StreamAssembler, headers: Mapping[str, str]) -> APIError:
    """A stream that failed, as an `APIError` that says whether it may have been billed: any
    of it that reached us (a token, a usage block) means the generation had begun."""
    import httpx

    err = _transport_error(exc) if isinstance(exc, httpx.HTTPError) else exc
    assert isinstance(err, APIError)
    err.generation_id = err.generation_id or asm.reply.generation_id
    err.generation_id = err.generation_id or headers.get("x-generation-id")
    err.billable = err.billable or asm.began
    if err.billed_usd is None and asm.reply.billed_cost_usd is not None:
        err.billed_usd = asm.reply.billed_cost_usd
        err.billable = True
    return err


def _from_headers(reply: Reply, headers: Mapping[str, str]) -> None:
    """What a reply's headers add: the generation id (when the body has none) and whether
    OpenRouter's response cache served it."""
    reply.generation_id = reply.generation_id or headers.get("x-generation-id")
    reply.cache_status = headers.get("x-openrouter-cache-status")


@functools.lru_cache(maxsize=256)
def _parsed(url: str) -> httpx.URL:
    """The parsed URL (httpx parses a string URL on every request: a fifth of its
    per-request cost; an endpoint has a handful of URLs)."""
    import httpx

    return httpx.URL(url)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    import httpx

    return httpx.create_ssl_context()


def _status_error(status: int, content: bytes, headers: Mapping[str, str]) -> APIError:
    try:
        err = orjson.loads(content).get("error")
    except (ValueError, AttributeError):
        err = None
    if not isinstance(err, Mapping):
        text = content[:200].decode("utf-8", "replace").strip() or "no body"
        err = {"code": status, "message": text}
    exc = error_from_body({**err, "code": status}, status)
    header_wait = parse_retry_after(headers.get("retry-after"))
    if exc.retry_after is None:
        exc.retry_after = header_wait
    return exc


def _transport_error(exc: Exception) -> APIError:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        kind = "stalled" if isinstance(exc, httpx.ReadTimeout) else "timeout"
        return APIError(
            f"{type(exc).__name__}: no data within the timeout",
            status=0,
            error_type=kind,
            retryable=True,
        )
    text = str(exc) or type(exc).__name__  # an MmlabError redacts its own message
    return APIError(
        f"{type(exc).__name__}: {text}", status=0, error_type="connection", retryable=True
    )


# --- retries ---------------------------------------------------------------------------------
@dataclass
class CallStats:
    """What happened on the way to one reply (logged with the call)."""

    retries: int = 0
    rate_limited: int = 0
    waited_s: float = 0.0
    attempts: int = 0
    """Failed attempts so far."""


class Throttle:
    """Adaptive concurrency (AIMD) shared by the calls of one sweep.

    A rate-limit halves the limit and pauses new calls for the server's Retry-After; each
    `limit` successes in a row raise it by one, back up to the ceiling. A freed slot is handed
    straight to the longest waiter (no lock to re-acquire, no thundering herd): at 50-way
    concurrency against a fast server the hand-off itself was a measurable share of a sweep.
    """

    def __init__(self, ceiling: int) -> None:
        self.ceiling = max(1, ceiling)
        self.limit = self.ceiling
        self.active = 0
        self.pause_until = 0.0
        self.throttled = 0
        self.lowest = self.ceiling
        self._streak = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None

    def _open(self) -> bool:
        return self.active < self.limit and time.monotonic() >= self.pause_until

    async def __aenter__(self) -> Throttle:
        if not self._waiters and self._open():
            self.active += 1
            return self
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake()  # a pause may need its timer
        try:
            await waiter  # resolved: the slot was granted (and counted) for us
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # granted while being cancelled: give it back
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        self.active -= 1
        self._wake()

    def _wake(self) -> None:
        wait = self.pause_until - time.monotonic()
        if wait > 0:
            if self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(wait, self._resume)
            return
        while self._waiters and self.active < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.active += 1
                waiter.set_result(None)

    def _resume(self) -> None:
        self._timer = None
        self._wake()

    def rate_limited(self, retry_after: float | None) -> None:
        """Called on a 429: shrink, and pause new calls."""
        self.throttled += 1
        self._streak = 0
        self.limit = max(1, self.limit // 2)
        self.lowest = min(self.lowest, self.limit)
        if retry_after:
            self.pause_until = max(self.pause_until, time.monotonic() + retry_after)

    def succeeded(self) -> None:
        """Called on a success: grow back slowly."""
        self._streak += 1
        if self._streak >= self.limit and self.limit < self.ceiling:
            self.limit += 1
            self._streak = 0
            self._wake()


def retry_wait(
    exc: APIError, policy: RetryPolicy, stats: CallStats, throttle: Throttle | None = None
) -> float | None:
    """After failed attempt `exc`: seconds to wait before the next one, or None when the call
    has failed for good (fatal, or the retry budget is spent). Counts the attempt in `stats`
    and tells `throttle` about rate limits."""
    stats.attempts += 1
    exc.attempts = stats.attempts
    if not exc.retryable or stats.attempts > policy.max_retries:
        return None
    kind, _ = classify_status(exc.status)
    wait = policy.wait(stats.attempts, exc.retry_after)
    if kind == "rate_limit":
        stats.rate_limited += 1
        if throttle is not None:
            throttle.rate_limited(exc.retry_after if exc.retry_after else wait)
    stats.retries += 1
    stats.waited_s += wait
    return wait
