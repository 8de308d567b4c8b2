"""Scorers for sweeps: functions of a result row (content + your columns) → 1.0, 0.0 or None.

    lab.sweep(problems, ..., scorer=scorers.final_answer)

A row holds the model's ``content`` and ``reasoning`` plus every column of the prompts
DataFrame (e.g. ``answer``). None means "cannot score" (no answer column, or no output).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "boxed",
    "boxed_match",
    "contains",
    "exact_match",
    "final_answer",
    "last_number",
    "number_match",
]

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def boxed(text: str) -> str | None:
    r"""The content of the last ``\boxed{...}`` in `text` (braces may nest)."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i, depth = start + len("\\boxed{"), 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j].strip()
    return None


def last_number(text: str) -> str | None:
    """The last number written in `text` (thousands separators dropped)."""
    found = _NUMBER.findall(text)
    return found[-1].replace(",", "") if found else None


def _same(a: str | None, b: Any) -> float | None:
    if a is None:
        return 0.0
    if b is None:
        return None
    x, y = str(a).strip().replace(",", ""), str(b).strip().replace(",", "")
    try:
        return float(float(x) == float(y))
    except ValueError:
        return float(x.lower() == y.lower())


def _answer(row: Mapping[str, Any]) -> Any:
    value = row.get("answer")
    return None if value is None or (isinstance(value, float) and value != value) else value


def boxed_match(row: Mapping[str, Any]) -> float | None:
    r"""1.0 if the last ``\boxed{}`` of the answer equals the ``answer`` column."""
    answer = _answer(row)
    return None if answer is None else _same(boxed(row.get("content") or ""), answer)


def number_match(row: Mapping[str, Any]) -> float | None:
    """1.0 if the last number in the answer equals the ``answer`` column."""
    answer = _answer(row)
    return None if answer is None else _same(last_number(row.get("content") or ""), answer)


def final_answer(row: Mapping[str, Any]) -> float | None:
    r"""``\boxed{}`` if the model used one (M1's math prompt asks for it), else the last number."""
    content = row.get("content") or ""
    answer = _answer(row)
    if answer is None:
        return None
    picked = boxed(content)
    return _same(picked if picked is not None else last_number(content), answer)


def exact_match(row: Mapping[str, Any]) -> float | None:
    """1.0 if the whole answer, trimmed, equals the ``answer`` column (case-insensitive)."""
    answer = _answer(row)
    if answer is None:
        return None
    return float((row.get("content") or "").strip().lower() == str(answer).strip().lower())


def contains(row: Mapping[str, Any]) -> float | None:
    """1.0 if the ``answer`` column appears anywhere in the answer."""
    answer = _answer(row)
    return None if answer is None else float(str(answer) in (row.get("content") or ""))
