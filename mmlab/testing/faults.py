"""Faults as data: `Fault` (one injected failure), `FaultRates` (how often each is drawn) and
`FAULTS`, the table from a fault's kind to the function that plays it.

A player gets the request (an `Exchange`) and its fault, and returns what to send (`Played`):
a reply of its own (``http``, ``error200``, ``raw``), or the reply the request would have got,
spoiled (``drop``, ``midstream``, ``garbage``, ``stall``). Replies are data until they are sent
(`mmlab.testing.replies`), so spoiling one is editing a dict or a list. A new fault is one
player and one entry in `FAULTS` (and, for its users, a `Fault` class method).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from mmlab.testing.replies import Cut, Plain, Raw, Response, Sleep, Stream


@dataclass
class Fault:
    """One injected failure. Build with the class methods (or ``Fault(kind)`` for any kind in
    `FAULTS`)."""

    kind: str
    status: int = 0
    retry_after: float | None = None
    seconds: float = 0.0
    body: str = ""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in FAULTS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {sorted(FAULTS)}")

    @property
    def count_key(self) -> str:
        """The key `StandIn.counts` files a request with this fault under (``http429``,
        ``drop``, ``midstream502``, ...)."""
        return self.kind + (f"{self.status}" if self.status else "")

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

    def draw(self, rng: random.Random) -> Fault | None:
        """One request's fault (None: none). Takes two draws from `rng` whatever the rates (a
        uniform number, then 502 or 503), so a seed replays the same sequence."""
        x = rng.random()
        for rate, fault in (
            (self.rate_limit, Fault.http(429, retry_after=self.retry_after)),
            (self.unavailable, Fault.http(rng.choice([502, 503]))),
            (self.drop, Fault.drop()),
            (self.error200, Fault.error200(502)),
            (self.midstream, Fault.midstream(502)),
        ):
            if x < rate:
                return fault
            x -= rate
        return None


class Exchange(Protocol):
    """The chat request a fault is played on, as its player sees it."""

    @property
    def authorization(self) -> str:
        """The request's Authorization header (``none`` without one)."""
        ...

    @property
    def echo_auth(self) -> bool:
        """Whether this upstream is the careless kind that echoes credentials in errors."""
        ...

    def error_body(self, status: int) -> dict[str, Any]:
        """OpenRouter's error body for `status` (echoing the credential if `echo_auth`)."""
        ...

    def reply(self) -> Plain | Stream:
        """The reply the request would get without a fault: routed to a provider, synthesised,
        the provider's generation time taken (a plain reply's before this returns, a stream's
        as its items). Call it at most once. When the request is answered otherwise (no
        provider can serve it, a response-cache hit) it does not return: that answer is sent
        and the fault is not played."""
        ...


@dataclass
class Played:
    """What a player decided: the `response` to send, and how the call is billed.

    An `ok` call is a success as far as OpenRouter knows: billed in full, cached, recorded for
    ``/generation``, its `Seen` marked ok (the request without a fault). Any other call bills
    the key the `billed` share of its cost (tokens generated before a cut are paid for),
    unless the stand-in bills no failures.
    """

    response: Response
    billed: float = 0.0
    ok: bool = False


Player = Callable[[Exchange, Fault], Played]
"""Plays one fault kind: the request and its fault in, what to send out."""


def play_http(ex: Exchange, fault: Fault) -> Played:
    """The status with OpenRouter's JSON error body and Retry-After; a 401 echoes the
    credential it rejected (the worst case of a careless upstream)."""
    body = ex.error_body(fault.status)
    if fault.status == 401:
        body["error"]["message"] = f"invalid credentials: {ex.authorization}"
    headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after else {}
    return Played(Plain(fault.status, body, headers))


def play_error200(ex: Exchange, fault: Fault) -> Played:
    """HTTP 200 carrying only an ``error`` (``choices`` null)."""
    err = ex.error_body(fault.status)
    err["error"]["metadata"]["provider_name"] = "StandIn"
    return Played(Plain(200, {"choices": None, **err}))


def play_raw(ex: Exchange, fault: Fault) -> Played:
    """The fault's body, verbatim."""
    return Played(Raw(fault.status, fault.body, fault.content_type, dict(fault.headers)))


def play_drop(ex: Exchange, fault: Fault) -> Played:
    """The reply cut mid-body: half a plain body, or a stream up to its middle."""
    reply = ex.reply()
    cut = reply.struck(Cut()) if isinstance(reply, Stream) else replace(reply, cut_at=0.5)
    return Played(cut, billed=0.5)


def play_midstream(ex: Exchange, fault: Fault) -> Played:
    """A stream's tokens up to its middle, then a chunk with a top-level ``error`` and
    ``finish_reason: error``; a plain reply's choice gets the ``error`` and that reason."""
    reply, error = ex.reply(), ex.error_body(fault.status)
    if isinstance(reply, Stream):
        choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
        return Played(reply.struck({**reply.base, **error, "choices": [choice]}), billed=0.5)
    choice = reply.obj["choices"][0]
    choice["finish_reason"] = "error"
    choice["error"] = error["error"]
    return Played(reply, billed=0.5)


def play_garbage(ex: Exchange, fault: Fault) -> Played:
    """A stream's tokens up to its middle, then an event that is an HTML error page, not JSON
    (a plain reply goes out whole, but is billed as a failure)."""
    reply = ex.reply()
    if isinstance(reply, Stream):
        auth = ex.authorization if ex.echo_auth else "-"
        reply = reply.struck(f"data: <html>502 Bad Gateway; Authorization: {auth}</html>\n\n")
    return Played(reply, billed=0.5)


def play_stall(ex: Exchange, fault: Fault) -> Played:
    """A stream's headers, then silence for the fault's seconds, then a cut (a plain reply goes
    out whole, unbilled)."""
    reply = ex.reply()
    if isinstance(reply, Stream):
        reply = replace(reply, items=[Sleep(fault.seconds), Cut()], half=None)
    return Played(reply)


FAULTS: dict[str, Player] = {
    "http": play_http,
    "error200": play_error200,
    "raw": play_raw,
    "drop": play_drop,
    "midstream": play_midstream,
    "garbage": play_garbage,
    "stall": play_stall,
}
"""Each fault kind and the player that plays it."""
