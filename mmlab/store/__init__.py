"""SQLite: every SQL statement mmlab runs, and nowhere else. `Store` is the database behind a
Lab; the package's modules each hold one part of it:

- `migrations` — the schema, forward-only, and the runner that applies it;
- `rows` — typed rows (`CallRow`, `CacheEntry`), column lists, insert statements, ids;
- `writer` — the writer thread: group commit, durability, what survives what;
- `files` — file safety: paths, private files and folders, files written whole
  (`replace_atomically`), foreign databases, storage errors;
- `scopes` — tag scopes as SQL (`tag_filter`);
- `budget` — budget reservations;
- `generations` — the generation ledger's SQL;
- `store` — the `Store` class: cache, log, usage roll-up, prices, and the rest through it.
"""

from __future__ import annotations

from .migrations import APPLICATION_ID, MIGRATIONS, migration
from .rows import CACHE_COLUMNS, CALL_COLUMNS, GENERATION_COLUMNS, CacheEntry, CallRow, new_id
from .scopes import tag_filter
from .store import SUMMARY_GROUPS, Store

__all__ = [
    "APPLICATION_ID",
    "CACHE_COLUMNS",
    "CALL_COLUMNS",
    "GENERATION_COLUMNS",
    "MIGRATIONS",
    "SUMMARY_GROUPS",
    "CacheEntry",
    "CallRow",
    "Store",
    "migration",
    "new_id",
    "tag_filter",
]
