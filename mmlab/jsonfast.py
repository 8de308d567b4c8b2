"""The JSON codec for stored responses: orjson (several times faster than ``json`` on the
cache-hit path). Cache keys are spelled by `wire.canonical_json` — the standard library's
sorted, compact JSON, which must never change —; `canonical` gives that same spelling
faster when it can prove it is the same, and None when it cannot."""

from __future__ import annotations

import re
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


_CANONICAL_OPTIONS = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
)
# Where orjson's spelling may differ from the standard library's: a float in exponent form
# or between 1e-5 and 1e-4 (orjson 0.00001, json 1e-05), and null (json spells NaN and
# infinity out; orjson writes null). Text that merely looks like these (a prompt saying
# "3e5") only costs the slow path.
_MAYBE_DIFFERENT = re.compile(rb"\d[eE]|0\.0000|null")


def canonical(obj: Any) -> str | None:
    """``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
    spelled by orjson (about 15 times faster), or None where the two spellings could differ
    (see `_MAYBE_DIFFERENT`) or orjson refuses the value (an integer past 64 bits, a lone
    surrogate, a key that is not a string): the caller then asks the standard library.
    A test compares the two over floats of every magnitude and every kind of value."""
    try:
        out = orjson.dumps(obj, option=_CANONICAL_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is one
        return None
    return None if _MAYBE_DIFFERENT.search(out) else out.decode()
