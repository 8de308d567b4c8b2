"""The SQLite store: migrations, foreign/newer/read-only files, the log's shape."""

from __future__ import annotations

import asyncio
import os
import sqlite3

import pytest

from mmlab import Lab
from mmlab.errors import ConfigError, StorageError
from mmlab.store import CALL_COLUMNS, MIGRATIONS, CallRow, Store


def test_fresh_db_is_migrated_and_marked(db):
    Store(db)
    conn = sqlite3.connect(db)
    names = [r[0] for r in conn.execute("SELECT name FROM _migrations")]
    assert names == [m.__name__ for m in MIGRATIONS]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA application_id").fetchone()[0] == 0x6D6D6C62
    Store(db)  # reopening applies nothing twice
    assert len(conn.execute("SELECT name FROM _migrations").fetchall()) == len(MIGRATIONS)


def test_newer_schema_is_refused(db):
    Store(db)
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO _migrations VALUES ('m999_from_the_future', 0)")
    conn.commit()
    with pytest.raises(ConfigError, match="newer mmlab"):
        Store(db)


def test_foreign_sqlite_file_is_refused_untouched(db):
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE orders (id INTEGER)")
    conn.commit()
    before = db.read_bytes()
    with pytest.raises(ConfigError, match="foreign"):
        Store(db)
    assert db.read_bytes() == before


def test_non_sqlite_file_is_refused(db):
    db.write_text("this is a text file, not a database")
    with pytest.raises(ConfigError, match="not an SQLite database"):
        Lab(base_url="http://127.0.0.1:9/v1", db=db, quiet=True)
    assert db.read_text() == "this is a text file, not a database"


def test_directory_as_db_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="directory"):
        Store(tmp_path)


def test_read_only_db_is_refused(db, monkeypatch):
    # Tests run as root, who can write anything: simulate what a read-only mount reports.
    Store(db)
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if mode == os.W_OK else real_access(p, mode)
    )
    with pytest.raises(ConfigError, match="read-only"):
        Store(db)


def test_disk_full_is_a_clear_error_and_nothing_is_half_written(lab, standin, db):
    lab.chat("fits", max_tokens=300)
    conn = sqlite3.connect(db)
    pages, size = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "page_size"))

    # Cap the file at its current size: the next write hits SQLITE_FULL.
    lab.engine.store.cap_size(pages * size)
    big = "x" * 200_000
    with pytest.raises(StorageError, match="full"):
        asyncio.run(lab.achat(big, max_tokens=300))
    lab.engine.store.cap_size(None)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM cache").fetchone()[0] == 1


def test_log_has_one_row_per_call_with_declared_columns(lab, standin):
    lab.chat("one", max_tokens=300, tag="t1")
    lab.chat("one", max_tokens=300, tag="t1")
    lab.chat("two", max_tokens=300, tag="t2")
    df = lab.calls(all_tags=True)
    assert set(CALL_COLUMNS) <= set(df.columns)
    assert list(df["tag"]) == ["t1", "t1", "t2"]
    assert lab.calls("t1")["cache_status"].tolist() == ["miss", "hit"]
    assert df["call_id"].is_unique
    assert df["ts"].is_monotonic_increasing


def test_summary_totals(lab, standin):
    a = lab.chat("alpha", max_tokens=300, tag="s")
    lab.chat("alpha", max_tokens=300, tag="s")
    s = lab.summary(by="tag")
    row = s[s["tag"] == "s"].iloc[0]
    assert (row["calls"], row["hits"], row["errors"]) == (2, 1, 0)
    assert row["spent_usd"] == pytest.approx(a.cost_usd)
    assert row["saved_usd"] == pytest.approx(a.cost_usd)
    assert row["completion_tokens"] == 2 * a.usage.completion_tokens
    assert len(lab.summary(by="day")) == 1 and len(lab.summary(by="model")) == 1


def test_the_rollup_learns_hit_tokens_for_a_log_written_before_it_summed_them(db):
    store = Store(db)
    row = CallRow("id-1", 86400.5, "t", "k", "hit", "e", "m", 0, "{}", prompt_tokens=7,
                  completion_tokens=11)  # fmt: skip
    store.append_calls([row, CallRow("id-2", 86400.6, "t", "k2", "miss", "e", "m", 0, "{}",
                                     prompt_tokens=5, completion_tokens=3)])  # fmt: skip
    conn = sqlite3.connect(db)
    # the roll-up as m002-m006 left it: no hit sums, until m007 backfills them
    conn.execute("UPDATE usage_rollup SET hit_prompt_tokens = 0, hit_completion_tokens = 0")
    conn.execute("DELETE FROM _migrations WHERE name = 'm007_rollup_hit_tokens'")
    conn.execute("DROP TRIGGER calls_rollup_insert")
    for column in ("hit_prompt_tokens", "hit_completion_tokens"):
        conn.execute(f"ALTER TABLE usage_rollup DROP COLUMN {column}")
    conn.commit()
    conn.close()
    store.close()
    summary = Store(db).usage_summary("tag", hit_tokens=True).iloc[0]
    assert (summary["hit_prompt_tokens"], summary["hit_completion_tokens"]) == (7, 11)
    assert (summary["prompt_tokens"], summary["completion_tokens"]) == (12, 14)
