"""The generation ledger's SQL: OpenRouter's own record of each call (``GET /generation``)
beside what the log says, for `Lab.reconcile` and the key's `Account`. Each function runs on
the connection it is given; `Store` supplies it (flushed reads, the writer's transaction)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .rows import GENERATION_COLUMNS
from .scopes import tag_filter

if TYPE_CHECKING:
    import pandas as pd


def unreconciled_calls(db: sqlite3.Connection, endpoint: str, scope: str | None) -> pd.DataFrame:
    """Paid calls to `endpoint` under tag `scope` with a generation id and no generation
    record yet, as `Store.unreconciled_calls` describes."""
    import pandas as pd

    where, args = tag_filter("c.tag", scope)
    cols = ["call_id", "generation_id", "cache_key", "provider", "served_model",
            "prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens",
            "cost_usd", "cost_source", "finish_reason", "error"]  # fmt: skip
    # answered calls, and failed attempts that were charged (their bill replaces the charge)
    rows = db.execute(
        f"SELECT {', '.join('c.' + c for c in cols)} FROM calls c {where} "
        "AND c.generation_id IS NOT NULL AND c.cache_status != 'hit' "
        "AND (c.error IS NULL OR c.spent_usd > 0) "
        "AND c.endpoint = ? AND NOT EXISTS "
        "(SELECT 1 FROM generations g WHERE g.call_id = c.call_id) ORDER BY c.ts",
        (*args, endpoint),
    ).fetchall()
    return pd.DataFrame.from_records(rows, columns=cols)


def put_generations(db: sqlite3.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert (or replace) generation records, `GENERATION_COLUMNS` each."""
    sql = (
        f"INSERT OR REPLACE INTO generations ({', '.join(GENERATION_COLUMNS)}) "
        f"VALUES ({', '.join('?' for _ in GENERATION_COLUMNS)})"
    )
    values = [tuple(r.get(c) for c in GENERATION_COLUMNS) for r in rows]
    db.executemany(sql, values)


def generations_frame(db: sqlite3.Connection, scope: str | None) -> pd.DataFrame:
    """Every call under tag `scope` joined with its generation record, as
    `Store.generations_frame` describes."""
    import pandas as pd

    where, args = tag_filter("c.tag", scope)
    mine = ["tag", "ts", "provider", "model", "served_model", "prompt_tokens",
            "completion_tokens", "reasoning_tokens", "cached_tokens", "cost_usd",
            "cost_source", "latency_s", "finish_reason"]  # fmt: skip
    theirs = [c for c in GENERATION_COLUMNS if c != "call_id"]
    rows = db.execute(
        f"SELECT c.call_id, {', '.join('c.' + c for c in mine)}, "
        f"{', '.join('g.' + c + ' AS g_' + c for c in theirs)} "
        f"FROM calls c JOIN generations g ON g.call_id = c.call_id {where} ORDER BY c.ts",
        args,
    ).fetchall()
    df = pd.DataFrame.from_records(
        rows, columns=["call_id", *mine, *(f"generation_{c}" if c in mine else c
                                          for c in theirs)]  # fmt: skip
    )
    df["ts"] = pd.to_datetime(df["ts"], unit="s", utc=True)
    return df


def spent_between(
    db: sqlite3.Connection, start: float, end: float, endpoint: str
) -> tuple[float, int]:
    """USD spent by paid calls to `endpoint` logged in [start, end], any tag, and how many."""
    spent, n = db.execute(
        "SELECT COALESCE(SUM(spent_usd), 0), COUNT(*) FROM calls "
        "WHERE ts >= ? AND ts <= ? AND cache_status != 'hit' AND endpoint = ?",
        (start, end, endpoint),
    ).fetchall()[0]
    return float(spent), int(n)
