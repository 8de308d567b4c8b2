"""Tag scopes as SQL: the condition selecting a tag and the tags below it, shared by every
query that reads or caps one study (log, budget, cache, bundles)."""

from __future__ import annotations

from typing import Any


def tag_filter(column: str, tag: str | None) -> tuple[str, tuple[Any, ...]]:
    """A WHERE clause selecting `tag` and the tags below it (``a`` covers ``a/b``).

    Tags are paths: a sweep inside a notebook is tagged ``notebook/sweep``, so the notebook's
    log, budget and bundle include it. (substr, not LIKE: tags often contain ``_``.)
    """
    if tag is None:
        return "WHERE 1", ()
    inside, args = in_scope(column, tag)
    return f"WHERE {inside}", args


def in_scope(column: str, tag: str) -> tuple[str, tuple[Any, ...]]:
    """The bare condition of `tag_filter` (no WHERE) for a real tag, to combine with others."""
    return f"({column} = ? OR substr({column}, 1, ?) = ?)", (tag, len(tag) + 1, tag + "/")
