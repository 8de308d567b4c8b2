"""mmlab's test API: `StandIn`, an OpenRouter server on loopback, for tests, benchmarks and
offline demos — yours as well as mmlab's.

    from mmlab.testing import StandIn, Fault, FaultRates
    with StandIn(rates=FaultRates(rate_limit=0.2, seed=7)) as server:
        lab = Lab(endpoint=OpenRouter(server.url, api_key="sk-test-..."), db=tmp / "t.db")
        server.enqueue(Fault.http(429, retry_after=0.01), Fault.midstream())
        ...
        server.seen, server.counts       # what arrived, and what each request got

It speaks OpenRouter's documented wire format, faults included: SSE keep-alive
comments, reasoning deltas, the usage-only final chunk after ``finish_reason``, 429 with
Retry-After, 502/503, dropped connections (headers sent, body cut), 200 bodies carrying only
an ``error``, mid-stream errors, stalls, plus ``/models`` and ``/generation`` (which 404s for a
moment after a completion, as the real one does).

Replies are a deterministic function of the request, shaped like a reasoning model's:
reasoning length grows with the prompt's "difficulty" and the temperature, and a small
``max_tokens`` truncates the answer away, so sweeps over it show real structure.
``echo_auth=True`` makes every error path echo the request's Authorization header back (the
careless upstream the redaction tests need); ``ignore={"top_k"}`` plays a provider that drops
parameters silently; ``accuracy=lambda body: 0.8 if body["temperature"] < 1 else 0.5``
answers correctly (`gold_answer`) with a per-request probability, so arms of known, different
accuracies can be compared; ``state.models_body`` replaces ``/models``.

OpenRouter's routing is played too: ``providers={"minimax/minimax-m1": [Provider("Minimax"),
Provider("Novita", completion_price=2.0e-6, tokens_per_s=80, down=0.1)]}`` serves a model
from several providers (``provider.only`` / ``order`` / ``allow_fallbacks`` honoured,
unpinned requests spread across them, a provider that is down falls back to the next one),
each at its own price and speed; ``served_as={"a/x": "a/x-lite"}`` answers as another model
(a model fallback). ``GET /key`` reports the key's usage — every billed call, plus half the
cost of calls cut mid-stream (tokens generated before the cut are paid for); ``GET
/generation`` the record of each call (``state.native_skew`` makes its token counts
disagree, for the ledger's tests); ``X-OpenRouter-Cache: true`` turns on a response cache
that answers repeats with usage zeroed.

Run one in its own process with ``python -m mmlab.testing [--port N] [--delay S]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PROMPT_PRICE = 0.40 / 1e6
COMPLETION_PRICE = 2.20 / 1e6


@dataclass
class Fault:
    """One injected failure. Build with the class methods."""

    kind: str
    status: int = 0
    retry_after: float | None = None
    seconds: float = 0.0
    body: str = ""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def http(cls, status: int, retry_after: float | None = None) -> Fault:
        """An HTTP error status with OpenRouter's JSON error body (and Retry-After)."""
        return cls("http", status=status, retry_after=retry_after)

    @classmethod
    def drop(cls) -> Fault:
        """Headers sent, then the connection is cut mid-body."""
        return cls("drop")

    @classmethod
    def error200(cls, status: int = 502) -> Fault:
        """HTTP 200 whose body has an ``error`` and no ``choices``."""
        return cls("error200", status=status)

    @classmethod
    def midstream(cls, status: int = 502) -> Fault:
        """Some tokens, then a final chunk with a top-level ``error`` (streams), or
        ``choices[0].error`` with ``finish_reason: error`` (plain replies)."""
        return cls("midstream", status=status)

    @classmethod
    def garbage(cls) -> Fault:
        """A stream event whose data is not JSON (an upstream's raw error page)."""
        return cls("garbage")

    @classmethod
    def raw(
        cls,
        body: str,
        status: int = 200,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """A reply written verbatim (with extra `headers`): a shape seen on the real wire
        that the stand-in does not synthesise. An SSE `body` (content type
        ``text/event-stream``, the default when it starts with ``data:`` or ``:``) goes out
        chunked, cut every 61 bytes, mid-line."""
        if content_type is None:
            sse = body.lstrip().startswith(("data:", ":"))
            content_type = "text/event-stream" if sse else "application/json"
        return cls("raw", status=status, body=body, content_type=content_type,
                   headers=dict(headers or {}))  # fmt: skip

    @classmethod
    def stall(cls, seconds: float) -> Fault:
        """A stream that sends its headers and then nothing at all for `seconds`."""
        return cls("stall", seconds=seconds)


@dataclass
class FaultRates:
    """Probabilities of each fault per chat request (drawn from a seeded RNG)."""

    rate_limit: float = 0.0
    unavailable: float = 0.0
    drop: float = 0.0
    error200: float = 0.0
    midstream: float = 0.0
    retry_after: float = 0.01
    seed: int = 0


@dataclass
class Provider:
    """One upstream provider the stand-in routes a model to: its prices (USD per token), its
    speed (simulated generation time: time to first token, then tokens per second; None:
    instant) and how often it is down (then OpenRouter falls back to the next provider,
    unless ``allow_fallbacks`` is false)."""

    name: str
    prompt_price: float = 0.40 / 1e6
    completion_price: float = 2.20 / 1e6
    ttft_s: float = 0.0
    tokens_per_s: float | None = None
    down: float = 0.0


@dataclass
class Seen:
    """One request the server received."""

    path: str
    body: dict[str, Any]
    authorized: bool
    headers: dict[str, str]
    fault: str | None
    ok: bool = False


@dataclass
class StandInState:
    """Everything the handler threads share (guarded by `lock`)."""

    delay_s: float = 0.0
    think_s: float = 0.0
    keepalives: int = 2
    leak_think: bool = False
    omit_cost: bool = False
    echo_auth: bool = False
    ignore: frozenset[str] = frozenset()
    accuracy: Callable[[dict[str, Any]], float] | None = None
    models_body: Any = None
    generation_404s: int = 1
    providers: dict[str, list[Provider]] = field(default_factory=dict)
    served_as: dict[str, str] = field(default_factory=dict)
    key_usage: float = 0.0
    key_limit: float | None = None
    native_skew: int = 0
    bill_failures: bool = True
    response_cache: dict[str, dict[str, Any]] = field(default_factory=dict)
    asked: Counter[str] = field(default_factory=Counter)
    model_prices: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {"minimax/minimax-m1": ("0.0000004", "0.0000022")}
    )
    rates: FaultRates = field(default_factory=FaultRates)
    queue: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    generations: dict[str, dict[str, Any]] = field(default_factory=dict)
    generation_polls: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    serial: int = 0


_WORD = re.compile(r"\w+")


def synth_reply(body: dict[str, Any], *, wrong: bool = False) -> dict[str, Any]:
    """The deterministic "model": reasoning, answer and token counts for a request.

    Its answer is a function of the question's words (``gold_answer``); `wrong` gives that
    number plus one instead (how `StandIn(accuracy=...)` answers incorrectly).
    """
    messages = body.get("messages") or []
    user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    content_fields = {k: v for k, v in body.items() if k != "stream"}
    digest = hashlib.sha256(json.dumps(content_fields, sort_keys=True).encode()).digest()
    # Difficulty from the prompt's length; a little spread from the whole request.
    words = _WORD.findall(user)
    temperature = float(body.get("temperature", 1.0))
    base = 12 + 4 * len(words) + digest[0] % 16
    reasoning_len = int(base * (0.6 + 0.5 * temperature))
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
    }


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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffered writes and TCP_NODELAY: headers and body leave together, so a response is not
    # held back by Nagle waiting for the client's delayed ACK (~40 ms per call otherwise).
    wbufsize = 1 << 16
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    # --- plumbing -----------------------------------------------------------------------------
    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _error_body(self, status: int) -> dict[str, Any]:
        body = self._plain_error_body(status)
        if self.server.state.echo_auth:
            # The worst case of a careless upstream: it echoes the credential it was sent.
            auth = self.headers.get("Authorization", "none")
            body["error"]["message"] += f" (request had Authorization: {auth})"
            body["error"]["metadata"]["raw"] = f"upstream saw headers: Authorization={auth}"
        return body

    def _plain_error_body(self, status: int) -> dict[str, Any]:
        kinds = {
            429: "rate_limit_exceeded",
            502: "provider_unavailable",
            503: "provider_overloaded",
            400: "invalid_request",
            401: "authentication",
            402: "payment_required",
            403: "permission_denied",
        }
        return {
            "error": {
                "code": status,
                "message": f"stand-in error {status}",
                "metadata": {"error_type": kinds.get(status, "server")},
            }
        }

    # --- routes -------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        st = self.server.state
        url = urlsplit(self.path)
        if url.path.endswith("/models") and st.models_body is not None:
            self._json(200, st.models_body)  # a hostile or broken price list
        elif url.path.endswith("/models"):
            data = [
                {
                    "id": m,
                    "context_length": 1_000_000,
                    "pricing": {"prompt": p, "completion": c},
                    "top_provider": {"max_completion_tokens": 40_000},
                }
                for m, (p, c) in st.model_prices.items()
            ]
            self._json(200, {"data": data})
        elif url.path.endswith("/key"):
            with st.lock:
                usage, limit = st.key_usage, st.key_limit
            self._json(200, {"data": {
                "label": "sk-or-v1-sta...ndin", "usage": usage, "usage_daily": usage,
                "limit": limit, "limit_remaining": None if limit is None else limit - usage,
                "is_free_tier": False}})  # fmt: skip
        elif url.path.endswith("/generation"):
            gen_id = parse_qs(url.query).get("id", [""])[0]
            with st.lock:
                st.generation_polls[gen_id] += 1
                record = st.generations.get(gen_id)
                early = st.generation_polls[gen_id] <= st.generation_404s
            if record is None or early:
                self._json(404, {"error": {"code": 404, "message": "generation not found"}})
            else:
                self._json(200, {"data": record})
        else:
            self._json(404, {"error": {"code": 404, "message": "no such route"}})

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        st = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if not self.path.endswith("/chat/completions"):
            self._json(404, {"error": {"code": 404, "message": "no such route"}})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._json(400, self._error_body(400))
            return
        with st.lock:
            fault = st.queue.pop(0) if st.queue else self._draw(st)
            seen = Seen(
                self.path,
                body,
                self.headers.get("Authorization") is not None,
                {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"},
                fault.kind if fault else None,
            )
            st.seen.append(seen)
            with st.arrived:
                st.arrived.notify_all()
            st.counts[
                fault.kind + (f"{fault.status}" if fault.status else "") if fault else "ok"
            ] += 1
            st.serial += 1
            gen_id = f"gen-standin-{st.serial}"
        if st.delay_s:
            time.sleep(st.delay_s)  # simulated generation time, not test synchronisation
        stream = bool(body.get("stream"))
        if fault is not None and fault.kind == "raw":
            self._raw(fault)
            return
        if fault is not None and fault.kind == "http":
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after else None
            body = self._error_body(fault.status)
            if fault.status == 401:
                # The worst case of a careless upstream: it echoes the credential it rejected.
                body["error"]["message"] = (
                    f"invalid credentials: {self.headers.get('Authorization', 'none')}"
                )
            self._json(fault.status, body, headers)
            return
        if fault is not None and fault.kind == "error200":
            err = self._error_body(fault.status)
            err["error"]["metadata"]["provider_name"] = "StandIn"
            self._json(200, {"choices": None, **err})
            return
        routed = self._route(body)
        if routed is None:
            return  # the routing error was sent
        provider, served = routed
        cache_key = None
        if self.headers.get("X-OpenRouter-Cache", "").lower() == "true":
            # OpenRouter's response cache: same body → the same response, usage zeroed
            cache_key = hashlib.sha256(raw).hexdigest()
            with st.lock:
                cached = st.response_cache.get(cache_key)
            if cached is not None:
                self._plain(body, cached, gen_id, None, provider, served, cache_hit=True)
                return
        # a provider that ignores some parameters answers as if they were not sent
        asked = {k: v for k, v in body.items() if k not in st.ignore}
        wrong = False
        if st.accuracy is not None:
            # right with the request's probability, from a draw seeded by the request and how
            # many times it was asked before: the same outcomes whatever order concurrent
            # requests arrive in (the k-th repeat of a request always gets draw k)
            digest = hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()
            with st.lock:
                st.asked[digest] += 1
                nth = st.asked[digest]
            draw = random.Random(f"{st.rates.seed}:{digest}:{nth}").random()
            wrong = draw >= st.accuracy(asked)
        reply = synth_reply(asked, wrong=wrong)
        started = time.perf_counter()
        if stream:
            self._stream(body, reply, gen_id, fault, provider, served)
        else:
            self._plain(body, reply, gen_id, fault, provider, served)
        elapsed = time.perf_counter() - started
        cost = reply_cost(reply, provider)
        with st.lock:
            if fault is not None and fault.kind in ("midstream", "drop", "garbage"):
                # tokens were generated before the cut: the account pays for them
                st.key_usage += cost / 2 if st.bill_failures else 0.0
                return
            if fault is not None:
                return
            seen.ok = True
            st.key_usage += cost  # billed whether or not the reply shows usage.cost
            if cache_key is not None:
                st.response_cache[cache_key] = reply
            st.generations[gen_id] = {
                "id": gen_id,
                "model": served,
                "provider_name": provider.name,
                "total_cost": cost,
                "usage": cost,
                "cache_discount": None,
                "native_tokens_prompt": reply["prompt_tokens"],
                "native_tokens_completion": reply["completion_tokens"] + st.native_skew,
                "native_tokens_reasoning": reply["reasoning_tokens"],
                "native_tokens_cached": 0,
                "latency": round(elapsed * 1000, 3),
                "generation_time": round(elapsed * 1000, 3),
                "finish_reason": reply["finish_reason"],
                "native_finish_reason": reply["finish_reason"],
                "streamed": stream,
            }

    def _route(self, body: dict[str, Any]) -> tuple[Provider, str] | None:
        """OpenRouter's provider routing, played: ``only`` narrows the providers, ``order``
        sorts them, otherwise requests are spread across them; a provider that is down
        falls back to the next one unless ``allow_fallbacks`` is false. Sends the error and
        returns None when no provider can serve."""
        st = self.server.state
        model = str(body.get("model"))
        served = st.served_as.get(model, model)
        candidates = list(st.providers.get(model) or [Provider("StandIn")])
        routing = body.get("provider") if isinstance(body.get("provider"), dict) else {}
        only = {o.lower() for o in routing.get("only") or []}
        if only:
            candidates = [c for c in candidates if c.name.lower() in only]
        order = [o.lower() for o in routing.get("order") or []]
        with st.lock:
            if order:
                rank = {name: i for i, name in enumerate(order)}
                candidates.sort(key=lambda c: rank.get(c.name.lower(), len(rank)))
            elif len(candidates) > 1:
                first = st.rng.randrange(len(candidates))  # load balancing: spread
                candidates = candidates[first:] + candidates[:first]
            fallbacks = routing.get("allow_fallbacks", True)
            for i, c in enumerate(candidates):
                if i and not fallbacks:
                    break
                if st.rng.random() >= c.down:
                    return c, served
        err = {"error": {"code": 503 if candidates else 404,
                         "message": "No endpoints found that can serve this request"
                         if not candidates else "Provider returned error",
                         "metadata": {"provider_name": candidates[0].name if candidates else None,
                                      "raw": "the provider is temporarily unavailable"}}}
        self._json(err["error"]["code"], err)  # fmt: skip
        return None

    @staticmethod
    def _draw(st: StandInState) -> Fault | None:
        r, x = st.rates, st.rng.random()
        for rate, fault in (
            (r.rate_limit, Fault.http(429, retry_after=r.retry_after)),
            (r.unavailable, Fault.http(st.rng.choice([502, 503]))),
            (r.drop, Fault.drop()),
            (r.error200, Fault.error200(502)),
            (r.midstream, Fault.midstream(502)),
        ):
            if x < rate:
                return fault
            x -= rate
        return None

    def _usage(self, reply: dict[str, Any], provider: Provider | None = None) -> dict[str, Any]:
        return usage_object(reply, with_cost=not self.server.state.omit_cost, provider=provider)

    def _pause(self, provider: Provider | None, seconds_of: str, reply: dict[str, Any]) -> None:
        """Simulated generation time of a provider (a demo's realism, not synchronisation)."""
        if provider is None:
            return
        if seconds_of == "ttft" and provider.ttft_s:
            time.sleep(provider.ttft_s)
        elif seconds_of == "rest" and provider.tokens_per_s:
            time.sleep(reply["completion_tokens"] / provider.tokens_per_s)

    def _plain(
        self,
        body: dict[str, Any],
        reply: dict[str, Any],
        gen_id: str,
        fault: Fault | None,
        provider: Provider | None = None,
        served: str | None = None,
        *,
        cache_hit: bool = False,
    ) -> None:
        if not cache_hit:
            self._pause(provider, "ttft", reply)
            self._pause(provider, "rest", reply)
        choice = plain_choice(reply)
        if self.server.state.leak_think:
            choice["message"] = {
                "role": "assistant",
                "reasoning": None,
                "content": f"<think>{reply['reasoning']}</think>{reply['content']}",
            }
        if fault is not None and fault.kind == "midstream":
            choice["finish_reason"] = "error"
            choice["error"] = self._error_body(fault.status)["error"]
        usage = self._usage(reply, provider)
        if cache_hit:  # a response-cache hit: every counter 0, nothing billed
            usage = {k: 0 if isinstance(v, int | float) else v for k, v in usage.items()}
            usage["prompt_tokens_details"] = {"cached_tokens": 0}
            usage["completion_tokens_details"] = {"reasoning_tokens": 0}
        name = provider.name if provider is not None else "StandIn"
        data = json.dumps(completion_object(body, choice, usage, gen_id, name, served)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Generation-Id", gen_id)
        if self.headers.get("X-OpenRouter-Cache", "").lower() == "true":
            self.send_header("X-OpenRouter-Cache-Status", "HIT" if cache_hit else "MISS")
        self.end_headers()
        if fault is not None and fault.kind == "drop":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self._cut()
            return
        self.wfile.write(data)

    def _raw(self, fault: Fault) -> None:
        data = fault.body.encode()
        self.send_response(fault.status)
        self.send_header("Content-Type", fault.content_type)
        for k, v in fault.headers.items():
            self.send_header(k, v)
        if not fault.content_type.startswith("text/event-stream"):
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(0, len(data), 61):  # cuts inside lines, as real proxies make them
            piece = data[i : i + 61]
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.flush()
        self._chunk("")

    def _cut(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()  # what was "sent" before the cut reaches the client
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _stream(
        self,
        body: dict[str, Any],
        reply: dict[str, Any],
        gen_id: str,
        fault: Fault | None,
        provider: Provider | None = None,
        served: str | None = None,
    ) -> None:
        st = self.server.state
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Generation-Id", gen_id)
        self.end_headers()
        self.wfile.flush()
        if fault is not None and fault.kind == "stall":
            time.sleep(fault.seconds)
            self._cut()
            return
        base = {
            "id": gen_id,
            "provider": provider.name if provider is not None else "StandIn",
            "model": served or body.get("model"),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
        }

        def event(delta: dict[str, Any], finish: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            if finish:
                choice["native_finish_reason"] = finish
            return "data: " + json.dumps({**base, "choices": [choice]}) + "\n\n"

        for _ in range(st.keepalives):
            self._chunk(": OPENROUTER PROCESSING\n\n")
        # A long think: nothing but keep-alive comments, one every 50 ms.
        thinking_until = time.monotonic() + st.think_s
        while time.monotonic() < thinking_until:
            time.sleep(0.05)
            self._chunk(": OPENROUTER PROCESSING\n\n")
        self._pause(provider, "ttft", reply)
        parts: list[str] = [event({"role": "assistant", "content": ""})]
        if st.leak_think:
            text = f"<think>{reply['reasoning']}</think>{reply['content']}"
            parts += [event({"content": text[i : i + 7]}) for i in range(0, len(text), 7)]
        else:
            words = reply["reasoning"].split(" ") if reply["reasoning"] else []
            parts += [event({"reasoning": w + " "}) for w in words]
            answer = reply["content"].split(" ") if reply["content"] else []
            parts += [event({"content": (" " if i else "") + w}) for i, w in enumerate(answer)]
        half = max(1, len(parts) // 2)
        for i, part in enumerate(parts):
            if fault is not None and i == half:
                if fault.kind == "garbage":
                    auth = self.headers.get("Authorization", "none") if st.echo_auth else "-"
                    self._chunk(f"data: <html>502 Bad Gateway; Authorization: {auth}</html>\n\n")
                    self._chunk("")
                    return
                if fault.kind == "midstream":
                    err = {
                        **base,
                        **self._error_body(fault.status),
                        "choices": [
                            {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
                        ],
                    }
                    self._chunk("data: " + json.dumps(err) + "\n\n")
                    self._chunk("")
                    return
                if fault.kind == "drop":
                    self._cut()
                    return
            self._chunk(part)
            if i == 1:
                self._chunk(": OPENROUTER PROCESSING\n\n")
        self._pause(provider, "rest", reply)
        self._chunk(event({}, reply["finish_reason"]))
        self._chunk("\n")  # blank separators before the usage chunk, as seen in the wild
        usage_chunk = {**base, "choices": [], "usage": self._usage(reply, provider)}
        self._chunk("data: " + json.dumps(usage_chunk) + "\n\n")
        self._chunk("data: [DONE]\n\n")
        self._chunk("")  # end of chunked body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    state: StandInState

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients closing keep-alive connections (or cut on purpose) are not errors here.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class StandIn:
    """A loopback OpenRouter stand-in. Use as a context manager; `url` is its base URL."""

    def __init__(
        self,
        *,
        port: int = 0,
        delay_s: float = 0.0,
        think_s: float = 0.0,
        keepalives: int = 2,
        leak_think: bool = False,
        omit_cost: bool = False,
        echo_auth: bool = False,
        ignore: frozenset[str] | set[str] = frozenset(),
        accuracy: Callable[[dict[str, Any]], float] | None = None,
        rates: FaultRates | None = None,
        providers: dict[str, list[Provider]] | None = None,
        served_as: dict[str, str] | None = None,
    ) -> None:
        self.state = StandInState(
            providers=dict(providers or {}),
            served_as=dict(served_as or {}),
            delay_s=delay_s,
            think_s=think_s,
            keepalives=keepalives,
            leak_think=leak_think,
            omit_cost=omit_cost,
            echo_auth=echo_auth,
            ignore=frozenset(ignore),
            accuracy=accuracy,
            rates=rates or FaultRates(),
        )
        self.state.rng = random.Random(self.state.rates.seed)
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.state = self.state
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123/api/v1``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/v1"

    def start(self) -> StandIn:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True, name="standin"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def enqueue(self, *faults: Fault) -> None:
        """Apply these faults to the next chat requests, in order."""
        with self.state.lock:
            self.state.queue.extend(faults)

    @property
    def seen(self) -> list[Seen]:
        """Every chat request received so far."""
        with self.state.lock:
            return list(self.state.seen)

    @property
    def counts(self) -> Counter[str]:
        """Chat requests by outcome (``ok``, ``http429``, ``drop``, ``midstream502``, ...)."""
        with self.state.lock:
            return Counter(self.state.counts)

    def wait_for(self, n: int, timeout: float = 60.0) -> bool:
        """Block until `n` chat requests have arrived (True) or `timeout` passes (False)."""
        with self.state.arrived:
            return self.state.arrived.wait_for(lambda: len(self.state.seen) >= n, timeout)

    def reset(self) -> None:
        """Forget seen requests and counts."""
        with self.state.lock:
            self.state.seen.clear()
            self.state.counts.clear()


def main() -> None:
    """Serve until killed; print the base URL on the first line of stdout."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument("--keepalives", type=int, default=0)
    args = parser.parse_args()
    server = StandIn(port=args.port, delay_s=args.delay, keepalives=args.keepalives)
    print(server.url, flush=True)
    try:
        server._server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
