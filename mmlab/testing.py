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
careless upstream the redaction tests need); ``state.models_body`` replaces ``/models``.

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
    models_body: Any = None
    generation_404s: int = 1
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


def synth_reply(body: dict[str, Any]) -> dict[str, Any]:
    """The deterministic "model": reasoning, answer and token counts for a request."""
    messages = body.get("messages") or []
    user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    content_fields = {k: v for k, v in body.items() if k != "stream"}
    digest = hashlib.sha256(json.dumps(content_fields, sort_keys=True).encode()).digest()
    # Difficulty from the prompt's length; a little spread from the whole request.
    words = _WORD.findall(user)
    temperature = float(body.get("temperature", 1.0))
    base = 12 + 4 * len(words) + digest[0] % 16
    reasoning_len = int(base * (0.6 + 0.5 * temperature))
    answer_words = ["The", "answer", "is", str(sum(len(w) for w in words) % 97)]
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


def reply_cost(reply: dict[str, Any]) -> float:
    """What OpenRouter would bill for a synthetic reply, at M1's list prices."""
    return reply["prompt_tokens"] * PROMPT_PRICE + reply["completion_tokens"] * COMPLETION_PRICE


def usage_object(reply: dict[str, Any], *, with_cost: bool = True) -> dict[str, Any]:
    """OpenRouter's usage object for a synthetic reply (reasoning inside completion)."""
    usage: dict[str, Any] = {
        "prompt_tokens": reply["prompt_tokens"],
        "completion_tokens": reply["completion_tokens"],
        "total_tokens": reply["prompt_tokens"] + reply["completion_tokens"],
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reply["reasoning_tokens"]},
    }
    if with_cost:
        usage["cost"] = reply_cost(reply)
    return usage


def completion_object(
    body: dict[str, Any], choice: dict[str, Any], usage: dict[str, Any], gen_id: str
) -> dict[str, Any]:
    """A non-streamed chat completion body."""
    return {
        "id": gen_id,
        "provider": "StandIn",
        "model": body.get("model"),
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
        reply = synth_reply(body)
        if stream:
            self._stream(body, reply, gen_id, fault)
        else:
            self._plain(body, reply, gen_id, fault)
        if fault is None:
            with st.lock:
                seen.ok = True
                cost = self._cost(reply)
                st.generations[gen_id] = {
                    "id": gen_id,
                    "total_cost": cost,
                    "usage": cost,
                    "provider_name": "StandIn",
                    "native_tokens_prompt": reply["prompt_tokens"],
                    "native_tokens_completion": reply["completion_tokens"],
                }

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

    def _cost(self, reply: dict[str, Any]) -> float:
        return reply_cost(reply)

    def _usage(self, reply: dict[str, Any]) -> dict[str, Any]:
        return usage_object(reply, with_cost=not self.server.state.omit_cost)

    def _plain(
        self, body: dict[str, Any], reply: dict[str, Any], gen_id: str, fault: Fault | None
    ) -> None:
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
        data = json.dumps(completion_object(body, choice, self._usage(reply), gen_id)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Generation-Id", gen_id)
        self.end_headers()
        if fault is not None and fault.kind == "drop":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self._cut()
            return
        self.wfile.write(data)

    def _cut(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()  # what was "sent" before the cut reaches the client
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _stream(
        self, body: dict[str, Any], reply: dict[str, Any], gen_id: str, fault: Fault | None
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
            "provider": "StandIn",
            "model": body.get("model"),
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
        self._chunk(event({}, reply["finish_reason"]))
        self._chunk("\n")  # blank separators before the usage chunk, as seen in the wild
        usage_chunk = {**base, "choices": [], "usage": self._usage(reply)}
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
        rates: FaultRates | None = None,
    ) -> None:
        self.state = StandInState(
            delay_s=delay_s,
            think_s=think_s,
            keepalives=keepalives,
            leak_think=leak_think,
            omit_cost=omit_cost,
            echo_auth=echo_auth,
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
