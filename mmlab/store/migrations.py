"""The schema as a list of forward-only migrations, and the runner that applies them.

Forward-only: append new functions, never edit or reorder old ones. Applied names are
recorded in ``_migrations``; a database holding a name this code does not know was written by
a newer mmlab and is refused rather than guessed at.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError

#: PRAGMA application_id marking a file as an mmlab database ("mmlb").
APPLICATION_ID = 0x6D6D6C62

#: Every migration, in the order they are applied.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = []
#: Decorator appending a migration to `MIGRATIONS`.
migration = MIGRATIONS.append


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    """Cache, call log and budget reservations."""
    _script(
        db,
        """
        CREATE TABLE cache (
            key      TEXT PRIMARY KEY,   -- sha256 of the key material (see mmlab.cachekey)
            endpoint TEXT NOT NULL,      -- stable endpoint identity, never a random port
            model    TEXT NOT NULL,
            sample   INTEGER NOT NULL,
            request  TEXT NOT NULL,      -- canonical JSON of the key material
            response TEXT NOT NULL,      -- JSON of the complete, successful reply
            created  REAL NOT NULL
        );
        CREATE INDEX cache_endpoint_model ON cache(endpoint, model);
        CREATE TABLE calls (
            call_id           TEXT PRIMARY KEY,
            ts                REAL NOT NULL,
            tag               TEXT,
            cache_key         TEXT,
            cache_status      TEXT NOT NULL,  -- hit | miss | refresh | off
            endpoint          TEXT,
            model             TEXT,
            provider          TEXT,
            generation_id     TEXT,
            sample            INTEGER,
            params            TEXT,           -- JSON: sampling/reasoning/provider fields sent
            prompt_tokens     INTEGER,
            completion_tokens INTEGER,
            reasoning_tokens  INTEGER,
            cached_tokens     INTEGER,
            cost_usd          REAL,           -- what producing this response cost
            spent_usd         REAL NOT NULL,  -- what this call spent now (0 on a hit)
            saved_usd         REAL NOT NULL,  -- what a hit saved (the original cost)
            cost_source       TEXT,           -- billed | computed | local | unknown
            price_ref         TEXT,           -- which price table a computed cost used
            latency_s         REAL,
            ttft_s            REAL,
            finish_reason     TEXT,
            truncated         INTEGER,
            reasoning_mode    TEXT,
            retries           INTEGER NOT NULL DEFAULT 0,
            status            INTEGER,
            error_type        TEXT,
            error             TEXT
        );
        CREATE INDEX calls_ts ON calls(ts);
        CREATE INDEX calls_tag ON calls(tag);
        CREATE INDEX calls_cache_key ON calls(cache_key);
        CREATE TABLE reservations (
            id    TEXT PRIMARY KEY,
            tag   TEXT,                   -- the call's tag (budgets cover a tag and below)
            usd   REAL NOT NULL,
            host  TEXT NOT NULL,
            pid   INTEGER NOT NULL,
            ts    REAL NOT NULL
        );
        CREATE TABLE prices (
            source  TEXT PRIMARY KEY,
            fetched REAL NOT NULL,
            body    TEXT NOT NULL
        );
        """,
    )


#: The summed columns of the usage roll-up (m002), in order; usage summaries read them.
ROLLUP_SUMS = (
    "calls",
    "hits",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "spent_usd",
    "saved_usd",
)


@migration
def m002_usage_rollup(db: sqlite3.Connection) -> None:
    """Totals per (UTC day, tag, model, endpoint, provider), kept by triggers.

    Usage summaries and budget checks read this small table instead of scanning the log:
    grouping a million calls took over a second; the roll-up answers in milliseconds.
    """
    keys = (
        "CAST(NEW.ts / 86400 AS INTEGER), COALESCE(NEW.tag, ''), COALESCE(NEW.model, ''), "
        "COALESCE(NEW.endpoint, ''), COALESCE(NEW.provider, '')"
    )
    old_match = (
        "day = CAST(OLD.ts / 86400 AS INTEGER) AND tag = COALESCE(OLD.tag, '') "
        "AND model = COALESCE(OLD.model, '') AND endpoint = COALESCE(OLD.endpoint, '') "
        "AND provider = COALESCE(OLD.provider, '')"
    )
    values = (
        "1, NEW.cache_status = 'hit', NEW.error IS NOT NULL, COALESCE(NEW.prompt_tokens, 0), "
        "COALESCE(NEW.completion_tokens, 0), COALESCE(NEW.reasoning_tokens, 0), "
        "NEW.spent_usd, NEW.saved_usd"
    )
    upsert = ", ".join(f"{c} = {c} + excluded.{c}" for c in ROLLUP_SUMS)
    _script(
        db,
        f"""
        CREATE TABLE usage_rollup (
            day INTEGER NOT NULL, tag TEXT NOT NULL, model TEXT NOT NULL,
            endpoint TEXT NOT NULL, provider TEXT NOT NULL,
            calls INTEGER NOT NULL, hits INTEGER NOT NULL, errors INTEGER NOT NULL,
            prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
            reasoning_tokens INTEGER NOT NULL, spent_usd REAL NOT NULL, saved_usd REAL NOT NULL,
            PRIMARY KEY (day, tag, model, endpoint, provider)
        ) WITHOUT ROWID;
        CREATE TRIGGER calls_rollup_insert AFTER INSERT ON calls BEGIN
            INSERT INTO usage_rollup VALUES ({keys}, {values})
            ON CONFLICT DO UPDATE SET {upsert};
        END;
        CREATE TRIGGER calls_rollup_rebill AFTER UPDATE OF spent_usd, saved_usd ON calls BEGIN
            UPDATE usage_rollup SET spent_usd = spent_usd - OLD.spent_usd + NEW.spent_usd,
                saved_usd = saved_usd - OLD.saved_usd + NEW.saved_usd
            WHERE {old_match};
        END;
        INSERT INTO usage_rollup
            SELECT CAST(ts / 86400 AS INTEGER), COALESCE(tag, ''), COALESCE(model, ''),
                   COALESCE(endpoint, ''), COALESCE(provider, ''), COUNT(*),
                   SUM(cache_status = 'hit'), SUM(error IS NOT NULL),
                   COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),
                   COALESCE(SUM(reasoning_tokens), 0), SUM(spent_usd), SUM(saved_usd)
            FROM calls GROUP BY 1, 2, 3, 4, 5
        """,
    )


@migration
def m003_cache_origin(db: sqlite3.Connection) -> None:
    """Where each cache entry came from: NULL for a call made here, ``bundle:<sha256>`` for
    an entry imported from a bundle (whose costs its author controls)."""
    db.execute("ALTER TABLE cache ADD COLUMN origin TEXT")
    db.execute("CREATE INDEX cache_origin ON cache(origin) WHERE origin IS NOT NULL")


@migration
def m004_served_model(db: sqlite3.Connection) -> None:
    """The model that answered, beside the one asked (``model``): OpenRouter may route to
    another model on fallback, and a comparison must know."""
    db.execute("ALTER TABLE calls ADD COLUMN served_model TEXT")


@migration
def m005_generations(db: sqlite3.Connection) -> None:
    """OpenRouter's own record of a call (``GET /generation``), joined by `Lab.reconcile`,
    with where it disagrees with what the reply's usage block said."""
    _script(
        db,
        """
        CREATE TABLE generations (
            call_id                  TEXT PRIMARY KEY,
            generation_id            TEXT NOT NULL,
            fetched                  REAL NOT NULL,
            provider                 TEXT,
            model                    TEXT,
            native_prompt_tokens     INTEGER,
            native_completion_tokens INTEGER,
            native_reasoning_tokens  INTEGER,
            native_cached_tokens     INTEGER,
            total_cost               REAL,
            cache_discount           REAL,
            latency_s                REAL,
            generation_time_s        REAL,
            finish_reason            TEXT,
            native_finish_reason     TEXT,
            disagreements            TEXT
        );
        """,
    )


@migration
def m006_imports_beside(db: sqlite3.Connection) -> None:
    """Imported answers live *beside* this project's own (one entry per key and origin):
    a live call is never answered by a bundle's entry unless asked to, and its own answer
    is cached next to the import instead of over it. ``origin`` is '' for an entry made
    here. The log says which entry answered each hit (``calls.origin``)."""
    _script(
        db,
        """
        CREATE TABLE cache_v6 (
            key      TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            model    TEXT NOT NULL,
            sample   INTEGER NOT NULL,
            request  TEXT NOT NULL,
            response TEXT NOT NULL,
            created  REAL NOT NULL,
            origin   TEXT NOT NULL DEFAULT '',  -- '' here; 'bundle:<sha256>' an import
            UNIQUE (key, origin)
        );
        INSERT INTO cache_v6 SELECT key, endpoint, model, sample, request, response, created,
            COALESCE(origin, '') FROM cache;
        DROP TABLE cache;
        ALTER TABLE cache_v6 RENAME TO cache;
        CREATE INDEX cache_endpoint_model ON cache(endpoint, model);
        CREATE INDEX cache_origin ON cache(origin) WHERE origin != '';
        ALTER TABLE calls ADD COLUMN origin TEXT;
        """,
    )


#: The roll-up's sums over cache hits alone (m007): what repricing the log needs to tell the
#: calls that were sent from those the cache answered.
HIT_SUMS = ("hit_prompt_tokens", "hit_completion_tokens")


@migration
def m007_rollup_hit_tokens(db: sqlite3.Connection) -> None:
    """The roll-up also sums the tokens of cache hits, so a summary can price what the
    calls sent and the hits served would cost at another model's list prices."""
    keys = (
        "CAST(NEW.ts / 86400 AS INTEGER), COALESCE(NEW.tag, ''), COALESCE(NEW.model, ''), "
        "COALESCE(NEW.endpoint, ''), COALESCE(NEW.provider, '')"
    )
    values = (
        "1, NEW.cache_status = 'hit', NEW.error IS NOT NULL, COALESCE(NEW.prompt_tokens, 0), "
        "COALESCE(NEW.completion_tokens, 0), COALESCE(NEW.reasoning_tokens, 0), "
        "NEW.spent_usd, NEW.saved_usd, "
        "CASE WHEN NEW.cache_status = 'hit' THEN COALESCE(NEW.prompt_tokens, 0) ELSE 0 END, "
        "CASE WHEN NEW.cache_status = 'hit' THEN COALESCE(NEW.completion_tokens, 0) ELSE 0 END"
    )
    sums = ("calls", "hits", "errors", "prompt_tokens", "completion_tokens", "reasoning_tokens",
            "spent_usd", "saved_usd", *HIT_SUMS)  # fmt: skip
    upsert = ", ".join(f"{c} = {c} + excluded.{c}" for c in sums)
    match = (
        "h.day = usage_rollup.day AND h.tag = usage_rollup.tag AND h.model = usage_rollup.model "
        "AND h.endpoint = usage_rollup.endpoint AND h.provider = usage_rollup.provider"
    )
    _script(
        db,
        f"""
        ALTER TABLE usage_rollup ADD COLUMN hit_prompt_tokens INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE usage_rollup ADD COLUMN hit_completion_tokens INTEGER NOT NULL DEFAULT 0;
        DROP TRIGGER IF EXISTS calls_rollup_insert;
        CREATE TRIGGER calls_rollup_insert AFTER INSERT ON calls BEGIN
            INSERT INTO usage_rollup VALUES ({keys}, {values})
            ON CONFLICT DO UPDATE SET {upsert};
        END;
        CREATE TABLE _m007_hits (
            day INTEGER, tag TEXT, model TEXT, endpoint TEXT, provider TEXT,
            p INTEGER, c INTEGER, PRIMARY KEY (day, tag, model, endpoint, provider)
        ) WITHOUT ROWID;
        INSERT INTO _m007_hits
            SELECT CAST(ts / 86400 AS INTEGER), COALESCE(tag, ''), COALESCE(model, ''),
                   COALESCE(endpoint, ''), COALESCE(provider, ''),
                   COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0)
            FROM calls WHERE cache_status = 'hit' GROUP BY 1, 2, 3, 4, 5;
        UPDATE usage_rollup SET
            hit_prompt_tokens = COALESCE((SELECT p FROM _m007_hits h WHERE {match}), 0),
            hit_completion_tokens = COALESCE((SELECT c FROM _m007_hits h WHERE {match}), 0);
        DROP TABLE _m007_hits;
        """,
    )


def _script(db: sqlite3.Connection, sql: str) -> None:
    # executescript() would COMMIT first; migrations must stay inside the caller's transaction.
    # Statements are separated by a ';' at the end of a line (triggers hold inner ';').
    statement: list[str] = []
    depth = 0
    for line in sql.splitlines():
        statement.append(line)
        stripped = line.strip().upper()
        if stripped.startswith("CREATE TRIGGER"):
            depth += 1
        if stripped == "END;":
            depth -= 1
        if stripped.endswith(";") and depth == 0:
            text = "\n".join(statement).strip().rstrip(";")
            if text:
                db.execute(text)
            statement = []
    rest = "\n".join(statement).strip().rstrip(";")
    if rest:
        db.execute(rest)


def apply(db: sqlite3.Connection, path: Path) -> None:
    """Apply the migrations `db` lacks, in order, inside the caller's transaction, and mark
    the file as mmlab's; refuse a database written by a newer mmlab (`ConfigError`)."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied REAL)")
    applied = {r[0] for r in db.execute("SELECT name FROM _migrations")}
    known = {m.__name__ for m in MIGRATIONS}
    unknown = sorted(applied - known)
    if unknown:
        raise ConfigError(
            f"db {path} was written by a newer mmlab (schema {unknown[-1]}); "
            "upgrade mmlab to use it"
        )
    for step in MIGRATIONS:
        if step.__name__ not in applied:
            step(db)
            db.execute("INSERT INTO _migrations VALUES (?, ?)", (step.__name__, time.time()))
    db.execute(f"PRAGMA application_id={APPLICATION_ID}")
