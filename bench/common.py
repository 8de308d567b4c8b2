"""Shared benchmark set-up: a cache filled directly, as a finished live run would leave it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from mmlab.result import Response
from mmlab.store import CacheEntry
from mmlab.wire import Usage


def sample_record(
    model: str, content: str = "The answer is 42.", reasoning: str = "step " * 60
) -> dict[str, Any]:
    """A typical cached response (about 1 KB of JSON)."""
    return Response(
        content=content,
        reasoning=reasoning,
        finish_reason="stop",
        usage=Usage(40, 180, 160, 0),
        cost_usd=0.0004,
        cost_source="billed",
        latency_s=3.2,
        model=model,
    ).to_dict()


def fill_cache(lab: Any, calls: Iterable[Any], response: str | None = None) -> int:
    """Insert a cache entry for every call; returns the bytes of response JSON stored."""
    text = response or json.dumps(sample_record(lab.model))
    entries = [
        CacheEntry(c.key, lab.endpoint.identity, lab.model, c.sample, c.material_json, text, 0.0)
        for c in calls
    ]
    lab.engine.store.cache_put(entries)
    return len(text) * len(entries)


def goal_table(rows: Iterable[tuple[str, str, str, str, bool | None]]) -> list[str]:
    """RESULTS.md's table of measures: (measure, figures, ratio, goal, met) per row; ``met``
    None for a row with no goal."""
    lines = ["| measure | figures | ratio | goal | met |", "|---|---|---|---|---|"]
    for name, figures, ratio, goal, met in rows:
        mark = "" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {name} | {figures} | {ratio} | {goal} | {mark} |")
    return lines
