"""Typed rows: the log's `CallRow` and the cache's `CacheEntry`, field for column; the
column lists and the statements that insert them; time-ordered ids."""

from __future__ import annotations

import operator
import os
import random
import secrets
import time
from dataclasses import dataclass, fields
from typing import Any

_ids = random.Random(secrets.randbits(128))
# A forked child must not repeat its parent's ids: reseed from the OS in the child.
os.register_at_fork(after_in_child=lambda: _ids.seed(secrets.randbits(128)))


def new_id() -> str:
    """A time-ordered unique id (millisecond clock + 48 random bits), like a ULID."""
    return f"{int(time.time() * 1000):012x}{_ids.getrandbits(48):012x}"


# --- typed rows ------------------------------------------------------------------------------
@dataclass(slots=True)
class CallRow:
    """One row of the usage log (the ``calls`` table), field for column."""

    call_id: str
    ts: float
    tag: str | None
    cache_key: str | None
    cache_status: str
    endpoint: str | None
    model: str | None
    sample: int | None
    params: str | None
    provider: str | None = None
    served_model: str | None = None
    generation_id: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None
    spent_usd: float = 0.0
    saved_usd: float = 0.0
    cost_source: str | None = None
    price_ref: str | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    finish_reason: str | None = None
    truncated: int | None = None
    reasoning_mode: str | None = None
    retries: int = 0
    status: int | None = None
    error_type: str | None = None
    error: str | None = None
    origin: str | None = None
    """For a cache hit: the entry that answered it — None, this project's own; else the
    bundle it was imported from (``bundle:<sha256>``)."""


#: The columns of the ``calls`` table, in `CallRow`'s field order.
CALL_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(CallRow))
#: A `CallRow`'s values as a tuple in `CALL_COLUMNS` order (what `INSERT_CALL` binds).
call_values = operator.attrgetter(*CALL_COLUMNS)
#: The statement inserting one `CallRow` (bind `call_values(row)`).
INSERT_CALL = (
    f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}) VALUES ({', '.join('?' for _ in CALL_COLUMNS)})"
)


#: The columns of a generation record (the ``generations`` table), in order.
GENERATION_COLUMNS: tuple[str, ...] = (
    "call_id", "generation_id", "fetched", "provider", "model", "native_prompt_tokens",
    "native_completion_tokens", "native_reasoning_tokens", "native_cached_tokens",
    "total_cost", "cache_discount", "latency_s", "generation_time_s", "finish_reason",
    "native_finish_reason", "disagreements",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One row of the response cache."""

    key: str
    endpoint: str
    model: str
    sample: int
    request: str
    """Canonical JSON of the key material (see `mmlab.cachekey`)."""
    response: str
    """JSON of the complete, successful response."""
    created: float
    origin: str | None = None
    """None: a call made here; ``bundle:<sha256>``: imported from that bundle."""


#: The columns of the ``cache`` table, in `CacheEntry`'s field order.
CACHE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(CacheEntry))
_cache_fields = operator.attrgetter(*CACHE_COLUMNS)


def cache_values(entry: CacheEntry) -> tuple[Any, ...]:
    """A `CacheEntry`'s values in `CACHE_COLUMNS` order (what `INSERT_CACHE` binds); an entry
    made here is stored with origin '' (the table's key is the key *and* its origin)."""
    values = _cache_fields(entry)
    return (*values[:-1], values[-1] or "")
#: The tail of the statement inserting one `CacheEntry`: callers prefix the verb
#: (``INSERT OR REPLACE `` or ``INSERT OR IGNORE ``), which decides what an existing key does.
INSERT_CACHE = (
    f"INTO cache ({', '.join(CACHE_COLUMNS)}) VALUES ({', '.join('?' for _ in CACHE_COLUMNS)})"
)
