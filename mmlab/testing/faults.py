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

    @classmethod
    def hostile(cls, kind: str) -> Fault:
        """A reply from a malicious or buggy server (one of `HOSTILE`): the request is
        answered and billed, but the reply is not what the wire format promises."""
        if kind not in HOSTILE:
            raise ValueError(f"unknown hostile reply {kind!r}; known: {sorted(HOSTILE)}")
        return cls(kind)


@dataclass
class FaultRates:
    """Probabilities of each fault per chat request (drawn from a seeded RNG)."""

    rate_limit: float = 0.0
    unavailable: float = 0.0
    drop: float = 0.0
    error200: float = 0.0
    midstream: float = 0.0
    hostile: float = 0.0
    """Every kind in `HOSTILE` at this rate in all, in equal shares."""
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
        if x < self.hostile:  # which one, from where x fell: no extra draw
            kinds = sorted(HOSTILE)
            return Fault(kinds[min(int(x / self.hostile * len(kinds)), len(kinds) - 1)])
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
    usable: bool = True
    """With `ok`: whether the reply can be read — a malformed one is billed in full (the
    server thinks it answered) but is neither cached nor a success a client can use."""


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
    ``finish_reason: error`` (half billed); a plain reply's choice gets the ``error`` and
    that reason (billed in full: its usage block reports what was generated)."""
    reply, error = ex.reply(), ex.error_body(fault.status)
    if isinstance(reply, Stream):
        choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
        return Played(reply.struck({**reply.base, **error, "choices": [choice]}), billed=0.5)
    choice = reply.obj["choices"][0]
    choice["finish_reason"] = "error"
    choice["error"] = error["error"]
    # generated in full before the error, and its usage (with cost) reports all of it
    return Played(reply, billed=1.0)


def play_garbage(ex: Exchange, fault: Fault) -> Played:
    """A stream's tokens up to its middle, then an event that is an HTML error page, not JSON
    (a plain reply: a 200 whose body is that page). Generated, so billed (half)."""
    reply = ex.reply()
    auth = ex.authorization if ex.echo_auth else "-"
    page = f"<html>502 Bad Gateway; Authorization: {auth}</html>"
    if isinstance(reply, Stream):
        return Played(reply.struck(f"data: {page}\n\n"), billed=0.5)
    return Played(Raw(200, page, "text/html", dict(reply.headers)), billed=0.5)


def play_stall(ex: Exchange, fault: Fault) -> Played:
    """A stream's headers, then silence for the fault's seconds, then a cut (a plain reply:
    silence, then the connection closed without an answer). Nothing generated reaches the
    client; nothing is billed."""
    reply = ex.reply()
    if isinstance(reply, Stream):
        return Played(replace(reply, items=[Sleep(fault.seconds), Cut()], half=None))
    return Played(Stream({}, {}, [Sleep(fault.seconds), Cut()]))


# --- a hostile or buggy server: answered and billed, but not as the wire format promises -----
def _chunks(reply: Stream) -> list[dict[str, Any]]:
    return [i for i in reply.items if isinstance(i, dict)]


def _fields(reply: Plain | Stream) -> list[dict[str, Any]]:
    """The objects carrying a reply's top-level fields (the body, or every chunk)."""
    return [reply.obj] if isinstance(reply, Plain) else _chunks(reply)


def _answered(ex: Exchange, spoil: Callable[[Plain | Stream], None], usable: bool) -> Played:
    reply = ex.reply()
    spoil(reply)
    return Played(reply, billed=1.0, ok=True, usable=usable)


def play_provider_object(ex: Exchange, fault: Fault) -> Played:
    """``provider`` and ``model`` as JSON objects, not strings."""

    def spoil(reply: Plain | Stream) -> None:
        for obj in _fields(reply):
            obj["provider"] = {"name": obj.get("provider"), "region": "eu"}
            obj["model"] = {"id": obj.get("model"), "version": 2}

    return _answered(ex, spoil, usable=True)


def _usage_of(reply: Plain | Stream) -> list[dict[str, Any]]:
    return [o for o in _fields(reply) if isinstance(o.get("usage"), dict)]


def play_no_usage(ex: Exchange, fault: Fault) -> Played:
    """No usage block at all (a stream: no usage chunk)."""

    def spoil(reply: Plain | Stream) -> None:
        if isinstance(reply, Stream):
            reply.items = [i for i in reply.items if not (isinstance(i, dict) and "usage" in i)]
        else:
            reply.obj.pop("usage", None)

    return _answered(ex, spoil, usable=True)


def play_usage_strings(ex: Exchange, fault: Fault) -> Played:
    """Token counts as strings ("12"), and no cost."""

    def spoil(reply: Plain | Stream) -> None:
        for obj in _usage_of(reply):
            usage = obj["usage"]
            usage.pop("cost", None)
            for k in ("prompt_tokens", "completion_tokens", "total_tokens"):
                usage[k] = str(usage[k])

    return _answered(ex, spoil, usable=True)


def play_usage_negative(ex: Exchange, fault: Fault) -> Played:
    """Negative token counts, and no cost."""

    def spoil(reply: Plain | Stream) -> None:
        for obj in _usage_of(reply):
            usage = obj["usage"]
            usage.pop("cost", None)
            for k in ("prompt_tokens", "completion_tokens", "total_tokens"):
                usage[k] = -abs(usage[k]) - 1

    return _answered(ex, spoil, usable=True)


def _text_fields(reply: Plain | Stream) -> list[dict[str, Any]]:
    """Where a reply's text lives: the message, or every chunk's delta."""
    if isinstance(reply, Plain):
        return [reply.obj["choices"][0]["message"]]
    return [c["delta"] for o in _chunks(reply) for c in o.get("choices") or []
            if isinstance(c.get("delta"), dict) and c["delta"]]  # fmt: skip


def play_content_parts(ex: Exchange, fault: Fault) -> Played:
    """The answer as a list of content parts (``[{"type": "text", "text": ...}]``)."""

    def spoil(reply: Plain | Stream) -> None:
        for field_ in _text_fields(reply):
            if isinstance(field_.get("content"), str):
                field_["content"] = [{"type": "text", "text": field_["content"]}]

    return _answered(ex, spoil, usable=True)


def play_content_number(ex: Exchange, fault: Fault) -> Played:
    """The answer as a number (and the reasoning too)."""

    def spoil(reply: Plain | Stream) -> None:
        for field_ in _text_fields(reply):
            if field_.get("content"):
                field_["content"] = 42
            if field_.get("reasoning"):
                field_["reasoning"] = 5

    return _answered(ex, spoil, usable=False)


def play_message_string(ex: Exchange, fault: Fault) -> Played:
    """``message`` (a stream: each ``delta``) as a bare string instead of an object."""

    def spoil(reply: Plain | Stream) -> None:
        if isinstance(reply, Plain):
            choice = reply.obj["choices"][0]
            choice["message"] = str(choice["message"].get("content"))
            return
        for o in _chunks(reply):
            for c in o.get("choices") or []:
                if isinstance(c.get("delta"), dict) and c["delta"]:
                    c["delta"] = str(c["delta"].get("content") or c["delta"].get("reasoning"))

    return _answered(ex, spoil, usable=False)


def play_echo_key(ex: Exchange, fault: Fault) -> Played:
    """The request's credential echoed inside a *successful* reply: in its provider, model
    and id fields, and its answer (the worst case of a careless upstream)."""
    key = ex.authorization.removeprefix("Bearer ")

    def spoil(reply: Plain | Stream) -> None:
        for obj in _fields(reply):
            obj["provider"] = f"{obj.get('provider')} (key {key})"
            obj["model"] = f"{obj.get('model')}@{key}"
            obj["id"] = f"{obj.get('id')}-{key}"
        for field_ in _text_fields(reply)[:1]:
            if isinstance(field_.get("content"), str):
                field_["content"] = f"{field_['content']} (your key is {key})"

    return _answered(ex, spoil, usable=True)


def play_billed_midstream(ex: Exchange, fault: Fault) -> Played:
    """Tokens, then an error — carrying the usage and ``cost`` of what was generated: a
    failed stream the account pays for (a plain reply: ``choices[0].error`` with usage)."""
    reply, error = ex.reply(), ex.error_body(fault.status or 502)
    usage = next((o["usage"] for o in _usage_of(reply)), None) if isinstance(
        reply, Stream) else reply.obj.get("usage")  # fmt: skip
    if usage is not None and "cost" in usage:
        usage = {**usage, "cost": usage["cost"] / 2}
    if isinstance(reply, Stream):
        if reply.half is None:
            return Played(reply, billed=1.0, ok=True)  # too short to strike
        choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
        tail = {**reply.base, **error, "choices": [choice], "usage": usage}
        return Played(reply.struck(tail), billed=0.5)
    choice = reply.obj["choices"][0]
    choice["finish_reason"], choice["error"] = "error", error["error"]
    reply.obj["usage"] = usage
    return Played(reply, billed=0.5)


#: The hostile replies `Fault.hostile` plays, each a kind of its own.
HOSTILE: dict[str, Player] = {
    "provider_object": play_provider_object,
    "no_usage": play_no_usage,
    "usage_strings": play_usage_strings,
    "usage_negative": play_usage_negative,
    "content_parts": play_content_parts,
    "content_number": play_content_number,
    "message_string": play_message_string,
    "echo_key": play_echo_key,
    "billed_midstream": play_billed_midstream,
}

FAULTS: dict[str, Player] = {
    "http": play_http,
    "error200": play_error200,
    "raw": play_raw,
    "drop": play_drop,
    "midstream": play_midstream,
    "garbage": play_garbage,
    "stall": play_stall,
    **HOSTILE,
}
"""Each fault kind and the player that plays it."""
