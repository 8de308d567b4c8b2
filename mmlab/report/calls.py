"""The calls a report shows: one row per call, read from a bundle or from the log, and the
compact payload the page's call browser reads.

A bundle holds what each call *produced* (its cache entry: request, answer, reasoning, usage,
cost, latency); the log adds how each call *went* (its tag, cache hit or miss, the bundle that
answered it, errors). Both become the same `Call`, with the request's parameters flattened
into columns (``reasoning.effort``) as ``lab.calls()`` has them, a prompt id where the prompt
is one of the shipped problems (and then a score: `mmlab.scorers.final_answer` against its
answer), and every string passed through the report's `Scrubber`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..params import COLUMNS, column_value, flat
from ..problems import generate
from ..scorers import final_answer
from .sanitize import Scrubber

if TYPE_CHECKING:
    import pandas as pd

#: The table's columns beside the swept parameters: (name, label, kind). ``num`` columns
#: sort and filter as numbers; ``text`` as text.
RESULT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("model", "model", "text"),
    ("provider", "provider", "text"),
    ("served_model", "served model", "text"),
    ("prompt_tokens", "prompt tok", "num"),
    ("reasoning_tokens", "reasoning tok", "num"),
    ("answer_tokens", "answer tok", "num"),
    ("completion_tokens", "completion tok", "num"),
    ("cached_tokens", "cached tok", "num"),
    ("cost_usd", "cost $", "num"),
    ("latency_s", "latency s", "num"),
    ("ttft_s", "TTFT s", "num"),
    ("finish_reason", "finish", "text"),
    ("score", "score", "num"),
    ("cache_status", "cache", "text"),
    ("origin", "answered by", "text"),
    ("tag", "tag", "text"),
    ("error", "error", "text"),
)
#: Columns shown only when some call has a value there that says something (a served model
#: unlike the one asked, a provider, a cached token, a TTFT, an error, ...).
OPTIONAL = frozenset({"provider", "served_model", "cached_tokens", "ttft_s", "score",
                      "cache_status", "origin", "tag", "error"})  # fmt: skip


@dataclass(slots=True)
class Call:
    """One call as a report shows it: table values, detail facts and its texts."""

    id: str
    """Its id in the browser (``#call=<id>``): the log's call id, else the cache key's
    first 16 hex digits."""
    values: dict[str, Any]
    """Column values: the flattened parameters, `RESULT_COLUMNS`, ``prompt_id``."""
    details: dict[str, Any]
    """Facts shown in the detail pane, not as columns (endpoint, sample, cost source, native
    finish reason, reasoning mode, generation id, cache key, parameters as sent, ...)."""
    messages: list[tuple[str, str]] = field(default_factory=list)
    """(role, text) of each message sent."""
    reasoning: str = ""
    """The model's thinking."""
    answer: str = ""
    """The answer."""


def _problems() -> dict[str, tuple[str, str]]:
    return {p["prompt"]: (p["id"], p["answer"]) for p in generate()}


def _prompt_id(
    messages: Sequence[tuple[str, str]], known: Mapping[str, tuple[str, str]]
) -> tuple[str, str | None]:
    """A shipped problem's id and answer when the last user message is one; else a short
    hash of the messages (the same prompt, the same id)."""
    user = next((text for role, text in reversed(messages) if role == "user"), "")
    hit = known.get(user.strip())
    if hit is not None:
        return hit
    digest = hashlib.sha256(json.dumps(messages, ensure_ascii=False).encode()).hexdigest()
    return f"p-{digest[:8]}", None


def _text(content: Any) -> str:
    """A message's content as text (content parts joined; images named)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, Mapping):
                parts.append(str(part.get("text", f"[{part.get('type', 'part')}]")))
        return "\n".join(parts)
    return "" if content is None else str(content)


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def _cell(value: Any) -> Any:
    """A parameter value as a table cell: numbers, text or booleans; the rest as JSON."""
    value = column_value(value)
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return _number(value)
    return json.dumps(value, sort_keys=True)


def _produced(response: Mapping[str, Any], scrub: Scrubber) -> dict[str, Any]:
    """The table values a cache-form response gives."""
    usage = response.get("usage") or {}
    completion = _number(usage.get("completion_tokens"))
    reasoning = _number(usage.get("reasoning_tokens"))
    return {
        "provider": scrub.label(response.get("provider")),
        "served_model": scrub.label(response.get("model")),
        "prompt_tokens": _number(usage.get("prompt_tokens")),
        "reasoning_tokens": reasoning,
        "completion_tokens": completion,
        "answer_tokens": None if completion is None else completion - (reasoning or 0),
        "cached_tokens": _number(usage.get("cached_tokens")),
        "cost_usd": _number(response.get("cost_usd")),
        "latency_s": _number(response.get("latency_s")),
        "ttft_s": _number(response.get("ttft_s")),
        "finish_reason": scrub.label(response.get("finish_reason")),
    }


def call_from_entry(
    entry: Mapping[str, Any],
    scrub: Scrubber,
    known: Mapping[str, tuple[str, str]] | None = None,
    call_id: str | None = None,
) -> Call:
    """A bundle entry (checked by `mmlab.bundle.read_bundle`) as a `Call`."""
    known = _problems() if known is None else known
    body = entry["request"]["request"]
    response = entry["response"]
    messages = [
        (scrub.label(m.get("role")) or "", scrub.text(_text(m.get("content"))))
        for m in body.get("messages", [])
    ]
    params = {k: v for k, v in body.items() if k not in ("model", "messages")}
    prompt_id, gold = _prompt_id(messages, known)
    answer = scrub.text(response.get("content") or "")
    values: dict[str, Any] = {"prompt_id": prompt_id}
    values.update({k: _cell(v) for k, v in flat(params).items()})
    values["model"] = scrub.label(entry["model"])
    values.update(_produced(response, scrub))
    if gold is not None:
        values["score"] = final_answer({"content": answer, "answer": gold})
    details = {
        "endpoint": scrub.label(entry["endpoint"]),
        "sample": entry["sample"],
        "cost_source": scrub.label(response.get("cost_source")),
        "price_ref": scrub.label(response.get("price_ref")),
        "native_finish_reason": scrub.label(response.get("native_finish_reason")),
        "reasoning_mode": scrub.label(response.get("reasoning_mode")),
        "generation_id": scrub.label(response.get("generation_id")),
        "notice": scrub.label(response.get("notice")),
        "cache_key": entry["key"],
        "created": _number(response.get("created")),
        "params": scrub.text(json.dumps(params, sort_keys=True, ensure_ascii=False)),
    }
    return Call(
        id=call_id or entry["key"][:16],
        values=values,
        details=details,
        messages=messages,
        reasoning=scrub.text(response.get("reasoning") or ""),
        answer=answer,
    )


def calls_from_entries(entries: Iterable[Mapping[str, Any]], scrub: Scrubber) -> list[Call]:
    """Every entry of a bundle as a `Call`, in the bundle's order."""
    known = _problems()
    return [call_from_entry(e, scrub, known) for e in entries]


def calls_from_log(
    log: pd.DataFrame, entries: Mapping[str, Mapping[str, Any]], scrub: Scrubber
) -> list[Call]:
    """Every logged call (hits and errors included) as a `Call`: its texts from its cache
    entry (`entries` by key), how it went from the log row."""
    known = _problems()
    out = []
    for row in log.to_dict("records"):
        clean = {k: (None if _missing(v) else v) for k, v in row.items()}
        entry = entries.get(clean.get("cache_key") or "")
        if entry is not None:
            call = call_from_entry(entry, scrub, known, call_id=clean["call_id"])
        else:
            params = json.loads(clean.get("params") or "{}")
            call = Call(
                id=clean["call_id"],
                values={"prompt_id": None, **{k: _cell(v) for k, v in flat(params).items()}},
                details={"params": scrub.text(json.dumps(params, sort_keys=True))},
            )
        values, details = call.values, call.details
        values["model"] = scrub.label(clean.get("model"))
        for name in ("provider", "served_model", "finish_reason"):
            if clean.get(name) is not None:
                values[name] = scrub.label(clean[name])
        for name in ("prompt_tokens", "reasoning_tokens", "completion_tokens", "cached_tokens",
                     "cost_usd", "latency_s", "ttft_s"):  # fmt: skip
            if clean.get(name) is not None:
                values[name] = _number(float(clean[name]))
        if values.get("completion_tokens") is not None:
            values["answer_tokens"] = values["completion_tokens"] - (
                values.get("reasoning_tokens") or 0
            )
        values["cache_status"] = clean.get("cache_status")
        origin = clean.get("origin")
        values["origin"] = "a bundle (" + origin[7:19] + "…)" if origin else "this project"
        values["tag"] = scrub.label(clean.get("tag"))
        values["error"] = scrub.label(clean.get("error"))
        details.update(
            endpoint=scrub.label(clean.get("endpoint")),
            sample=clean.get("sample"),
            cache_key=clean.get("cache_key"),
            retries=clean.get("retries"),
            error_type=scrub.label(clean.get("error_type")),
            spent_usd=clean.get("spent_usd"),
            saved_usd=clean.get("saved_usd"),
            logged=clean["ts"].isoformat() if clean.get("ts") is not None else None,
        )
        if entry is None:
            details["note"] = "no cache entry: the call failed, or its entry was cleared"
        out.append(call)
    return out


def _missing(value: Any) -> bool:
    try:
        return value is None or bool(value != value)  # NaN, pandas.NA
    except (TypeError, ValueError):
        return value is None


def parameters(calls: Sequence[Call]) -> tuple[list[str], dict[str, Any]]:
    """The parameter columns that vary across `calls` (the swept ones), and the fixed ones
    with their single value."""
    names: dict[str, None] = {}
    taken = {"prompt_id", *(c for c, _, _ in RESULT_COLUMNS)}
    for call in calls:
        for name in call.values:
            if name not in taken:
                names.setdefault(name)
    swept, fixed = [], {}
    order = {c: i for i, c in enumerate(COLUMNS)}  # wire order, as lab.calls() has them
    for name in sorted(names, key=lambda n: order.get(n, len(order))):
        seen = {(type(v), v) for v in (c.values.get(name) for c in calls)}  # 1 is not True
        if len(seen) > 1:
            swept.append(name)
        else:
            fixed[name] = calls[0].values.get(name) if calls else None
    return swept, fixed


def _shown(name: str, calls: Sequence[Call]) -> bool:
    values = [c.values.get(name) for c in calls]
    if name not in OPTIONAL:
        return True
    if name == "served_model":
        return any(
            v is not None and v != c.values.get("model") for v, c in zip(values, calls, strict=True)
        )
    if name in ("cached_tokens",):
        return any(v for v in values)
    if name == "origin":
        return any(v not in (None, "this project") for v in values)
    if name == "tag":
        return len({v for v in values}) > 1
    return any(v is not None for v in values)


def columns(calls: Sequence[Call]) -> list[dict[str, str]]:
    """The browser's columns, in order: prompt id, the swept parameters, then the results
    that say something for these calls."""
    swept, _ = parameters(calls)
    out = [{"name": "prompt_id", "label": "prompt", "kind": "text"}]
    for name in swept:
        numeric = all(
            isinstance(c.values.get(name), int | float) and not isinstance(c.values.get(name), bool)
            for c in calls
            if c.values.get(name) is not None
        )
        out.append({"name": name, "label": name, "kind": "num" if numeric else "text",
                    "param": "1"})  # fmt: skip
    for name, label, kind in RESULT_COLUMNS:
        if _shown(name, calls):
            out.append({"name": name, "label": label, "kind": kind})
    return out


def payload(calls: Sequence[Call]) -> dict[str, Any]:
    """What the page's call browser reads (column-major: compact, and gzip finds the repeats):
    ids, columns, their values, details, messages, reasoning and answers."""
    cols = columns(calls)
    return {
        "ids": [c.id for c in calls],
        "columns": cols,
        "values": {col["name"]: [c.values.get(col["name"]) for c in calls] for col in cols},
        "details": [{k: v for k, v in c.details.items() if v is not None} for c in calls],
        "messages": [[list(m) for m in c.messages] for c in calls],
        "reasoning": [c.reasoning for c in calls],
        "answer": [c.answer for c in calls],
    }


def totals(calls: Sequence[Call]) -> dict[str, Any]:
    """The header's totals: calls, tokens by class, what the calls cost, hits and imports
    (None where the source cannot say: a bundle has no log)."""

    def total(name: str) -> int:
        return int(sum(c.values.get(name) or 0 for c in calls))

    costs = [c.values.get("cost_usd") for c in calls]
    statuses = [c.values.get("cache_status") for c in calls]
    logged = any(s is not None for s in statuses)
    return {
        "calls": len(calls),
        "prompt_tokens": total("prompt_tokens"),
        "reasoning_tokens": total("reasoning_tokens"),
        "answer_tokens": total("answer_tokens"),
        "completion_tokens": total("completion_tokens"),
        "cached_tokens": total("cached_tokens"),
        "cost_usd": float(sum(c for c in costs if c is not None)),
        "cost_unknown": sum(1 for c in costs if c is None),
        "spent_usd": float(sum(c.details.get("spent_usd") or 0 for c in calls)) if logged else None,
        "cache_hits": sum(1 for s in statuses if s == "hit") if logged else None,
        "imported": sum(1 for c in calls if (c.values.get("origin") or "").startswith("a bundle"))
        if logged
        else None,
        "errors": sum(1 for c in calls if c.values.get("error")),
    }


__all__ = [
    "Call",
    "OPTIONAL",
    "RESULT_COLUMNS",
    "call_from_entry",
    "calls_from_entries",
    "calls_from_log",
    "columns",
    "parameters",
    "payload",
    "totals",
]
