"""Tags: one rule for every label a call is logged under.

A tag is a path of non-empty segments separated by ``/`` (``study``, ``study/sweep-3``). A
lab's tag scopes its budget, log and bundle, and covers every tag below it, so a per-call tag
or a sweep's tag is always *nested* under the lab's tag: a call can never leave its lab's
budget, log or bundle by choosing a tag.
"""

from __future__ import annotations

from typing import Any

from .errors import RequestError

MAX_LENGTH = 200


def check_tag(tag: Any, field: str = "tag") -> str:
    """Validate a tag (a string of ``/``-separated, non-blank segments); return it trimmed."""
    if not isinstance(tag, str):
        raise RequestError(
            f"{field} must be a string such as 'study' or 'study/run-2'; got {tag!r}", field
        )
    tag = tag.strip()
    segments = tag.split("/")
    if not tag or any(not s.strip() or s != s.strip() for s in segments):
        raise RequestError(
            f"{field} must be non-empty '/'-separated names without blank parts; got {tag!r}",
            field,
        )
    if len(tag) > MAX_LENGTH or any(ord(ch) < 32 for ch in tag):
        raise RequestError(
            f"{field} must be at most {MAX_LENGTH} printable characters; got {tag!r}", field
        )
    return tag


def nest(parent: str | None, child: str | None, field: str = "tag") -> str | None:
    """`child` under `parent` (``study`` + ``x`` → ``study/x``); either may be None.

    A child that already starts with the parent's path is taken as given, so nesting is
    idempotent (a sweep re-created from its own tag stays where it was).
    """
    if child is None:
        return parent
    child = check_tag(child, field)
    if parent is None or child == parent or child.startswith(parent + "/"):
        return child
    return f"{parent}/{child}"
