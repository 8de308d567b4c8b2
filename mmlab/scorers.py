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
    "extract_answer",
    "final_answer",
    "last_number",
    "normalize_answer",
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


def extract_answer(text: str | None) -> str | None:
    r"""The final answer written in `text`: the last ``\boxed{}`` if any, else the last number.

    None when there is neither (no output, or prose without a number). This is the rule
    `final_answer` scores with and the one `mmlab.analysis.maj_at_k` votes with.
    """
    if not text:
        return None
    picked = boxed(text)
    return picked if picked is not None else last_number(text)


def normalize_answer(value: Any) -> str | None:
    """A canonical string for comparing and voting on answers.

    Trimmed, thousands separators dropped; anything that reads as a number becomes one
    canonical spelling (``"1,000"``, ``"1000"``, ``1000`` and ``"1000.0"`` all give ``"1000"``;
    ``"-0"`` gives ``"0"``), anything else is lowercased. None for None and for NaN, which
    equals nothing (as in a float comparison). Two values are the same answer exactly when their
    normalised forms are equal strings.
    """
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip().replace(",", "")
    try:
        number = float(text)
    except ValueError:
        return text.lower()
    if number != number:
        return None
    # Integer values print without ".0" so that votes read naturally; below 2**53 every integer
    # float is exact, and above it repr() keeps one spelling per float, so equal floats (and
    # only those) share a string. "+ 0.0" folds -0.0 into 0.0, which compares equal to it.
    number += 0.0
    if number.is_integer() and abs(number) < 2**53:
        return str(int(number))
    return repr(number)


def _same(a: str | None, b: Any) -> float | None:
    if a is None:
        return 0.0
    if b is None:
        return None
    x, y = normalize_answer(a), normalize_answer(b)
    return float(x is not None and x == y)


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
    answer = _answer(row)
    if answer is None:
        return None
    return _same(extract_answer(row.get("content") or ""), answer)


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
