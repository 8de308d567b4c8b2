"""The stand-in's HTTP side: `StandInServer` (threaded, on loopback) and its request handler.

GET serves ``/models``, ``/key`` and ``/generation``. POST ``/chat/completions`` admits a
request (its fault, its `Seen` record, its generation id), then hands it, as an `_Exchange`,
to its fault's player in `FAULTS` (no fault: the reply as it is). The exchange routes the
request to a provider as OpenRouter does, answers repeats from the response cache, and builds
the synthetic reply as data (`mmlab.testing.replies`), plain or streamed; the handler writes
whatever the player returns, and the exchange bills the call.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import SplitResult, parse_qs, urlsplit

from mmlab.testing.faults import FAULTS, Fault, Played
from mmlab.testing.replies import KEEPALIVE, Cut, Item, Plain, Raw, Response, Sleep, Stream, Think
from mmlab.testing.state import Provider, Seen, StandInState
from mmlab.testing.synthetic import (
    completion_object,
    plain_choice,
    reply_cost,
    synth_logprobs,
    synth_reply,
    usage_object,
)

_ERROR_TYPES = {
    429: "rate_limit_exceeded",
    502: "provider_unavailable",
    503: "provider_overloaded",
    400: "invalid_request",
    401: "authentication",
    402: "payment_required",
    403: "permission_denied",
}


def _error_body(state: StandInState, headers: Message, status: int) -> dict[str, Any]:
    body = {
        "error": {
            "code": status,
            "message": f"stand-in error {status}",
            "metadata": {"error_type": _ERROR_TYPES.get(status, "server")},
        }
    }
    if state.echo_auth:
        # The worst case of a careless upstream: it echoes the credential it was sent.
        auth = headers.get("Authorization", "none")
        body["error"]["message"] += f" (request had Authorization: {auth})"
        body["error"]["metadata"]["raw"] = f"upstream saw headers: Authorization={auth}"
    return body


def _no_route() -> Plain:
    return Plain(404, {"error": {"code": 404, "message": "no such route"}})


# --- GET routes: each a function of the state and the URL ---------------------------------------
def _models(st: StandInState, url: SplitResult) -> Plain:
    if st.models_body is not None:
        return Plain(200, st.models_body)  # a hostile or broken price list
    data = [
        {
            "id": m,
            "context_length": 1_000_000,
            "pricing": {"prompt": p, "completion": c},
            "top_provider": {"max_completion_tokens": st.max_completion_tokens},
        }
        for m, (p, c) in st.model_prices.items()
    ]
    return Plain(200, {"data": data})


def _key(st: StandInState, url: SplitResult) -> Plain:
    with st.lock:
        usage, limit = st.key_usage, st.key_limit
    return Plain(200, {"data": {
        "label": "sk-or-v1-sta...ndin", "usage": usage, "usage_daily": usage,
        "limit": limit, "limit_remaining": None if limit is None else limit - usage,
        "is_free_tier": False}})  # fmt: skip


def _generation(st: StandInState, url: SplitResult) -> Plain:
    gen_id = parse_qs(url.query).get("id", [""])[0]
    with st.lock:
        st.generation_polls[gen_id] += 1
        record = st.generations.get(gen_id)
        early = st.generation_polls[gen_id] <= st.generation_404s
    if record is None or early:  # the real record lags behind the completion for a moment
        return Plain(404, {"error": {"code": 404, "message": "generation not found"}})
    return Plain(200, {"data": record})


_GETS: tuple[tuple[str, Callable[[StandInState, SplitResult], Plain]], ...] = (
    ("/models", _models),
    ("/key", _key),
    ("/generation", _generation),
)


# --- POST /chat/completions: one exchange per request -------------------------------------------
class _Answered(Exception):
    """The request was answered before a fault could touch it: no provider could serve it,
    or the response cache had it."""

    def __init__(self, response: Plain) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass
class _Made:
    """A synthetic reply that was made, who made it, and when its generation started."""

    reply: dict[str, Any]
    provider: Provider
    served: str
    started: float


def _pauses(provider: Provider, reply: dict[str, Any]) -> tuple[float, float]:
    """A provider's simulated generation time (a demo's realism, not synchronisation): time
    to first token, then the rest."""
    rest = reply["completion_tokens"] / provider.tokens_per_s if provider.tokens_per_s else 0.0
    return provider.ttft_s, rest


def _event(base: dict[str, Any], delta: dict[str, Any], finish: str | None = None) -> Item:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    if finish:
        choice["native_finish_reason"] = finish
    return {**base, "choices": [choice]}


class _Exchange:
    """One chat request on its way to a reply: the `Exchange` its fault's player sees."""

    def __init__(
        self, state: StandInState, headers: Message, body: dict[str, Any], raw: bytes, gen_id: str
    ) -> None:
        self.state = state
        self.headers = headers
        self.body = body
        self.raw = raw  # the request's bytes, the response cache's key
        self.gen_id = gen_id
        self.stream = bool(body.get("stream"))
        self.cache_on = headers.get("X-OpenRouter-Cache", "").lower() == "true"
        self.cache_key: str | None = None
        self.made: _Made | None = None

    # --- the `Exchange` protocol (documented there) -----------------------------------------
    @property
    def authorization(self) -> str:
        return self.headers.get("Authorization", "none")

    @property
    def echo_auth(self) -> bool:
        return self.state.echo_auth

    def error_body(self, status: int) -> dict[str, Any]:
        return _error_body(self.state, self.headers, status)

    def reply(self) -> Plain | Stream:
        provider, served = self._route()
        self._answer_from_cache(provider, served)
        # a provider that ignores some parameters answers as if they were not sent
        asked = {k: v for k, v in self.body.items() if k not in self.state.ignore}
        lengths = self.state.lengths
        length = lengths(asked) if callable(lengths) else lengths
        reply = synth_reply(asked, wrong=self._wrong(asked), thinks=self.state.thinks,
                            length=length)  # fmt: skip
        self.made = _Made(reply, provider, served, time.perf_counter())
        if self.stream:
            return self._streamed(reply, provider, served)
        return self._plain(reply, provider, served)

    # --- routing, cache, accuracy ---------------------------------------------------------------
    def _candidates(self, routing: dict[str, Any]) -> list[Provider]:
        """The model's providers, narrowed by ``only``."""
        candidates = list(self.state.providers.get(str(self.body.get("model"))) or
                          [Provider("StandIn")])  # fmt: skip
        only = {o.lower() for o in routing.get("only") or []}
        return [c for c in candidates if c.name.lower() in only] if only else candidates

    def _route(self) -> tuple[Provider, str]:
        """OpenRouter's provider routing, played: ``only`` narrows the providers, ``order``
        sorts them, otherwise requests are spread across them; a provider that is down
        falls back to the next one unless ``allow_fallbacks`` is false. Answers with the
        routing error when no provider can serve."""
        st, model = self.state, str(self.body.get("model"))
        routing = self.body.get("provider") if isinstance(self.body.get("provider"), dict) else {}
        candidates = self._candidates(routing)
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
                    return c, st.served_as.get(model, model)
        code = 503 if candidates else 404
        message = "Provider returned error" if candidates else (
            "No endpoints found that can serve this request")  # fmt: skip
        metadata = {"provider_name": candidates[0].name if candidates else None,
                    "raw": "the provider is temporarily unavailable"}  # fmt: skip
        raise _Answered(
            Plain(code, {"error": {"code": code, "message": message, "metadata": metadata}})
        )

    def _answer_from_cache(self, provider: Provider, served: str) -> None:
        """OpenRouter's response cache, asked for: the same body gets the same response, usage
        zeroed. Remembers the key (to cache this reply if it succeeds); answers a repeat."""
        if not self.cache_on:
            return
        self.cache_key = hashlib.sha256(self.raw).hexdigest()
        with self.state.lock:
            cached = self.state.response_cache.get(self.cache_key)
        if cached is not None:
            raise _Answered(self._plain(cached, provider, served, cache_hit=True))

    def _wrong(self, asked: dict[str, Any]) -> bool:
        """Whether the stand-in answers this request wrongly (never, without ``accuracy``)."""
        st = self.state
        if st.accuracy is None:
            return False
        # right with the request's probability, from a draw seeded by the request and how
        # many times it was asked before: the same outcomes whatever order concurrent
        # requests arrive in (the k-th repeat of a request always gets draw k)
        digest = hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()
        with st.lock:
            st.asked[digest] += 1
            nth = st.asked[digest]
        draw = random.Random(f"{st.rates.seed}:{digest}:{nth}").random()
        return draw >= st.accuracy(asked)

    # --- replies, as data -----------------------------------------------------------------------
    def _usage(self, reply: dict[str, Any], provider: Provider) -> dict[str, Any]:
        return usage_object(reply, with_cost=not self.state.omit_cost, provider=provider)

    def _plain(
        self, reply: dict[str, Any], provider: Provider, served: str, *, cache_hit: bool = False
    ) -> Plain:
        if not cache_hit:
            for seconds in _pauses(provider, reply):
                if seconds:
                    time.sleep(seconds)
        choice = plain_choice(reply)
        if self.state.leak_think:
            choice["message"] = {
                "role": "assistant",
                "reasoning": None,
                "content": f"<think>{reply['reasoning']}</think>{reply['content']}",
            }
        tokens = self._logprobs(reply)
        if tokens is not None:
            choice["logprobs"] = {"content": tokens}
        usage = self._usage(reply, provider)
        if cache_hit:  # a response-cache hit: every counter 0, nothing billed
            usage = {k: 0 if isinstance(v, int | float) else v for k, v in usage.items()}
            usage["prompt_tokens_details"] = {"cached_tokens": 0}
            usage["completion_tokens_details"] = {"reasoning_tokens": 0}
        headers = {"X-Generation-Id": self.gen_id}
        if self.cache_on:
            headers["X-OpenRouter-Cache-Status"] = "HIT" if cache_hit else "MISS"
        obj = completion_object(self.body, choice, usage, self.gen_id, provider.name, served)
        return Plain(200, obj, headers)

    def _logprobs(self, reply: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Synthetic ``logprobs.content`` when the stand-in gives them and the request asks."""
        k = self.body.get("top_logprobs")
        if not (self.state.logprobs and self.body.get("logprobs") and isinstance(k, int) and k):
            return None
        return synth_logprobs(reply, k)

    def _token_events(self, base: dict[str, Any], reply: dict[str, Any]) -> list[Item]:
        if self.state.leak_think:
            text = f"<think>{reply['reasoning']}</think>{reply['content']}"
            return [_event(base, {"content": text[i : i + 7]}) for i in range(0, len(text), 7)]
        words = reply["reasoning"].split(" ") if reply["reasoning"] else []
        answer = reply["content"].split(" ") if reply["content"] else []
        events = [_event(base, {"reasoning": w + " "}) for w in words] + [
            _event(base, {"content": (" " if i else "") + w}) for i, w in enumerate(answer)
        ]
        tokens = self._logprobs(reply)
        for event, token in zip(events, tokens or (), strict=False):
            event["choices"][0]["logprobs"] = {"content": [token]}  # type: ignore[index]
        return events

    def _streamed(self, reply: dict[str, Any], provider: Provider, served: str) -> Stream:
        st = self.state
        base = {
            "id": self.gen_id,
            "provider": provider.name,
            "model": served or self.body.get("model"),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
        }
        ttft, rest = _pauses(provider, reply)
        items: list[Item] = [KEEPALIVE] * st.keepalives
        items += [Think(st.think_s)] if st.think_s else []
        items += [Sleep(ttft)] if ttft else []
        tokens = [_event(base, {"role": "assistant", "content": ""})]
        tokens += self._token_events(base, reply)
        middle, half = max(1, len(tokens) // 2), None
        for i, token in enumerate(tokens):
            half = len(items) if i == middle else half
            items.append(token)
            if i == 1:
                items.append(KEEPALIVE)
        items += [Sleep(rest)] if rest else []
        items += [_event(base, {}, reply["finish_reason"])]
        options = self.body.get("stream_options")
        asked = isinstance(options, dict) and options.get("include_usage") is True
        if st.stream_usage == "always" or asked:  # vLLM-like servers: only when asked
            items += [
                "\n",  # blank separators before the usage chunk, as seen in the wild
                {**base, "choices": [], "usage": self._usage(reply, provider)},
            ]
        items += ["data: [DONE]\n\n"]
        return Stream({"X-Generation-Id": self.gen_id}, base, items, half)

    # --- the bill -------------------------------------------------------------------------------
    def settle(self, seen: Seen, played: Played) -> None:
        """Bill the call: a success in full (and cached, recorded for ``/generation``, `seen`
        marked ok), a failure by the share its player billed. A reply never made bills
        nothing."""
        if self.made is None:
            return
        made, st = self.made, self.state
        elapsed = time.perf_counter() - made.started
        cost = reply_cost(made.reply, made.provider)
        with st.lock:
            # every reply made has its generation record, with what was billed for it (a
            # failure too, possibly 0): a client that charged a failed attempt its worst
            # case can reconcile it to the bill
            if not played.ok:
                share = played.billed if st.bill_failures else 0.0
                st.key_usage += cost * share  # tokens generated before the cut are paid for
                seen.billed = share
                st.generations[self.gen_id] = self._record(cost * share, elapsed)
                return
            seen.ok, seen.usable, seen.billed = True, played.usable, 1.0
            st.key_usage += cost  # billed whether or not the reply shows usage.cost
            if self.cache_key is not None and played.usable:
                st.response_cache[self.cache_key] = made.reply
            st.generations[self.gen_id] = self._record(cost, elapsed)

    def _record(self, cost: float, elapsed: float) -> dict[str, Any]:
        """OpenRouter's generation record of this call."""
        assert self.made is not None
        reply, ms = self.made.reply, round(elapsed * 1000, 3)
        return {
            "id": self.gen_id,
            "model": self.made.served,
            "provider_name": self.made.provider.name,
            "total_cost": cost,
            "usage": cost,
            "cache_discount": None,
            "native_tokens_prompt": reply["prompt_tokens"],
            "native_tokens_completion": reply["completion_tokens"] + self.state.native_skew,
            "native_tokens_reasoning": reply["reasoning_tokens"],
            "native_tokens_cached": 0,
            "latency": ms,
            "generation_time": ms,
            "finish_reason": reply["finish_reason"],
            "native_finish_reason": reply["finish_reason"],
            "streamed": self.stream,
        }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffered writes and TCP_NODELAY: headers and body leave together, so a response is not
    # held back by Nagle waiting for the client's delayed ACK (~40 ms per call otherwise).
    wbufsize = 1 << 16
    server: StandInServer

    def setup(self) -> None:
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    # --- routes ---------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        url = urlsplit(self.path)
        route = next((r for suffix, r in _GETS if url.path.endswith(suffix)), None)
        self._send(route(self.server.state, url) if route else _no_route())

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        st = self.server.state
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self.path.endswith("/chat/completions"):
            self._send(_no_route())
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send(Plain(400, _error_body(st, self.headers, 400)))
            return
        fault, seen, gen_id = self._admit(body)
        if st.delay_s:
            time.sleep(st.delay_s)  # simulated generation time, not test synchronisation
        ex = _Exchange(st, self.headers, body, raw, gen_id)
        try:
            played = FAULTS[fault.kind](ex, fault) if fault else Played(ex.reply(), ok=True)
        except _Answered as answered:
            self._send(answered.response)
            return
        try:
            self._send(played.response)
        finally:
            # billed whether or not the client stayed to read it all: a server charges for
            # what it generated, not for what was delivered
            ex.settle(seen, played)

    def _admit(self, body: dict[str, Any]) -> tuple[Fault | None, Seen, str]:
        """The request's fault (queued, else drawn), its `Seen` record and its generation id."""
        st = self.server.state
        with st.lock:
            fault = st.queue.pop(0) if st.queue else st.rates.draw(st.rng)
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
            st.counts[fault.count_key if fault else "ok"] += 1
            st.serial += 1
            return fault, seen, f"gen-standin-{st.serial}"

    # --- writing a reply ------------------------------------------------------------------------
    def _send(self, response: Response) -> None:
        match response:
            case Plain():
                self._send_plain(response)
            case Raw():
                self._send_raw(response)
            case Stream():
                self._send_stream(response)

    def _send_plain(self, response: Plain) -> None:
        data = json.dumps(response.obj).encode()
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in response.headers.items():
            self.send_header(k, v)
        self.end_headers()
        if response.cut_at is None:
            self.wfile.write(data)
            return
        self.wfile.write(data[: int(len(data) * response.cut_at)])
        self._cut()

    def _send_raw(self, response: Raw) -> None:
        data = response.body.encode()
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        for k, v in response.headers.items():
            self.send_header(k, v)
        if not response.content_type.startswith("text/event-stream"):
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(0, len(data), 61):  # cuts inside lines, as real proxies make them
            self._chunk_bytes(data[i : i + 61])
        self._chunk("")

    def _send_stream(self, response: Stream) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        for k, v in response.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.flush()
        for item in response.items:
            match item:
                case Cut():
                    self._cut()
                    return
                case Sleep(seconds=seconds):
                    time.sleep(seconds)
                case Think(seconds=seconds):
                    self._think(seconds)
                case str():
                    self._chunk(item)
                case _:
                    self._chunk("data: " + json.dumps(item) + "\n\n")
        self._chunk("")  # end of chunked body

    def _think(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            time.sleep(0.05)
            self._chunk(KEEPALIVE)

    def _chunk(self, text: str) -> None:
        self._chunk_bytes(text.encode())

    def _chunk_bytes(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _cut(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()  # what was "sent" before the cut reaches the client
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class StandInServer(ThreadingHTTPServer):
    """The stand-in's HTTP server, bound to loopback `port` (0: any free one): a thread per
    connection, every one sharing `state`."""

    daemon_threads = True
    request_queue_size = 512

    def __init__(self, state: StandInState, port: int = 0) -> None:
        self.state = state
        super().__init__(("127.0.0.1", port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Report a handler's exception, unless it is a connection closed or cut."""
        # Clients closing keep-alive connections (or cut on purpose) are not errors here.
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)
