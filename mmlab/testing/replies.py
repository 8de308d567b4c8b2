"""Replies as data: what the stand-in sends for a request, before it is sent.

The server builds a reply (`Plain`, `Raw` or `Stream`), a fault's player spoils it (cuts it,
swaps its tail, rewrites its fields), then the server writes it. Keeping the reply as data
until the last moment is what lets a new fault be one short function over these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

KEEPALIVE = ": OPENROUTER PROCESSING\n\n"
"""The SSE comment OpenRouter sends while a model is busy."""


@dataclass
class Plain:
    """A JSON reply with a Content-Length: `obj` encoded, `headers` sent after Content-Type and
    Content-Length. With `cut_at`, only that share of the body is sent before the connection is
    cut (the headers still promise all of it)."""

    status: int
    obj: Any
    headers: dict[str, str] = field(default_factory=dict)
    cut_at: float | None = None


@dataclass
class Raw:
    """A body written verbatim after Content-Type and `headers`; an SSE content type goes out
    chunked (cut every 61 bytes, mid-line), anything else with a Content-Length."""

    status: int
    body: str
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sleep:
    """Nothing sent for `seconds` (a provider's generation time, a stall)."""

    seconds: float


@dataclass(frozen=True)
class Think:
    """A long think: keep-alive comments only, one every 50 ms, for `seconds`."""

    seconds: float


@dataclass(frozen=True)
class Cut:
    """The connection is cut here: nothing after it is sent, not even the end of the body."""


Item = dict[str, Any] | str | Sleep | Think | Cut
"""One step of a stream: a dict is a ``data:`` event (JSON-encoded when sent), a str is sent as
it is (comments, blank separators, ``data: [DONE]``, a broken event)."""


@dataclass
class Stream:
    """A 200 SSE reply, chunked: `headers` after Content-Type and Transfer-Encoding, then `items`
    in order, then the end of the body (unless an item cut the connection first).

    `base` holds the fields every chunk carries (id, provider, model, object, created), for a
    fault's own events. `half` indexes the item where a mid-stream fault strikes (the middle
    of the generated tokens); None when the reply is too short to strike.
    """

    headers: dict[str, str]
    base: dict[str, Any]
    items: list[Item]
    half: int | None = None

    def struck(self, *tail: Item) -> Stream:
        """This stream up to its middle, then `tail` instead of the rest (unchanged when it is
        too short to strike)."""
        if self.half is None:
            return self
        return replace(self, items=self.items[: self.half] + list(tail), half=None)


Response = Plain | Raw | Stream
"""Any reply the stand-in can send."""
