"""The JSON codec for stored responses: orjson (several times faster than ``json`` on the
cache-hit path). Cache keys never use it: their canonical spelling is `wire.canonical_json`,
which must not change with a library's float formatting."""

from __future__ import annotations

from typing import Any

import orjson


def loads(text: str | bytes) -> Any:
    """Parse JSON."""
    return orjson.loads(text)


def dumps(obj: Any) -> str:
    """Compact JSON text (non-ASCII kept as UTF-8)."""
    return orjson.dumps(obj).decode()


def dumps_sorted(obj: Any) -> str:
    """Compact JSON text with sorted keys: one spelling per value for the usage log's
    ``params`` (not a cache key: see `mmlab.wire.canonical_json`)."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()
