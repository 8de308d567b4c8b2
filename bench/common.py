"""Shared benchmark set-up: a cache filled directly, as a finished live run would leave it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from mmlab.result import Result
from mmlab.wire import Usage, canonical_json


def sample_record(
    model: str, content: str = "The answer is 42.", reasoning: str = "step " * 60
) -> dict[str, Any]:
    """A typical cached response (about 1 KB of JSON)."""
    return Result(
        content=content,
        reasoning=reasoning,
        finish_reason="stop",
        usage=Usage(40, 180, 160, 0),
        cost_usd=0.0004,
        cost_source="billed",
        latency_s=3.2,
        model=model,
    ).record()


def fill_cache(lab: Any, calls: Iterable[Any], response: str | None = None) -> int:
    """Insert a cache entry for every call; returns the bytes of response JSON stored."""
    text = response or json.dumps(sample_record(lab.model))
    rows = [
        (c.key, lab.endpoint.identity, lab.model, c.sample, canonical_json(c.material), text, 0.0)
        for c in calls
    ]
    lab.store.write(
        lambda db: db.executemany("INSERT INTO cache VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    )
    return len(text) * len(rows)
