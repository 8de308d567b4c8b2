"""`StandIn`, the documented test API: a stand-in OpenRouter on loopback to start and stop,
queue faults on, and ask what it saw; and `main`, which serves one until killed."""

from __future__ import annotations

import argparse
import random
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from mmlab.testing.faults import Fault, FaultRates
from mmlab.testing.server import StandInServer
from mmlab.testing.state import Provider, Seen, StandInState


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
        stream_usage: str = "always",
        max_completion_tokens: int | None = 40_000,
        thinks: int | None = None,
        logprobs: bool = False,
        lengths: int | Callable[[dict[str, Any]], int] | None = None,
    ) -> None:
        if stream_usage not in ("always", "when_asked"):
            raise ValueError("stream_usage must be 'always' or 'when_asked'")
        self.state = StandInState(
            stream_usage=stream_usage,
            max_completion_tokens=max_completion_tokens,
            thinks=thinks,
            logprobs=logprobs,
            lengths=lengths,
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
        self._server = StandInServer(self.state, port)
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

    def serve_forever(self) -> None:
        """Serve on the calling thread until interrupted (``python -m mmlab.testing``)."""
        self._server.serve_forever()

    def reset(self) -> None:
        """Forget seen requests and counts."""
        with self.state.lock:
            self.state.seen.clear()
            self.state.counts.clear()


def main() -> None:
    """Serve until killed; print the base URL on the first line of stdout."""
    parser = argparse.ArgumentParser(
        prog="python -m mmlab.testing",
        description="mmlab's OpenRouter stand-in on loopback: prints its base URL, then serves "
        "until killed.",
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument("--keepalives", type=int, default=0)
    args = parser.parse_args()
    server = StandIn(port=args.port, delay_s=args.delay, keepalives=args.keepalives)
    print(server.url, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
