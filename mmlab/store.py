"""SQLite: forward-only migrations, the response cache, the usage log, budget reservations.

One file holds everything so a study's money and data travel together. WAL mode lets several
processes (notebooks, CLI sweeps) read while one writes; every write is one short
``BEGIN IMMEDIATE`` transaction, so a crash or Ctrl-C never leaves half a call behind.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import socket
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import BudgetExceeded, ConfigError, StorageError

if TYPE_CHECKING:
    import pandas as pd

#: PRAGMA application_id marking a file as an mmlab database ("mmlb").
APPLICATION_ID = 0x6D6D6C62
T = TypeVar("T")

# --- migrations ------------------------------------------------------------------------------
# Forward-only: append new functions, never edit or reorder old ones. Applied names are
# recorded in _migrations; a database holding a name this code does not know was written by
# a newer mmlab and is refused rather than guessed at.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = []
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


def _script(db: sqlite3.Connection, sql: str) -> None:
    # executescript() would COMMIT first; migrations must stay inside the caller's transaction.
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


def new_id() -> str:
    """A time-ordered unique id (millisecond clock + 48 random bits), like a ULID."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


CALL_COLUMNS = (
    "call_id",
    "ts",
    "tag",
    "cache_key",
    "cache_status",
    "endpoint",
    "model",
    "provider",
    "generation_id",
    "sample",
    "params",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cached_tokens",
    "cost_usd",
    "spent_usd",
    "saved_usd",
    "cost_source",
    "price_ref",
    "latency_s",
    "ttft_s",
    "finish_reason",
    "truncated",
    "reasoning_mode",
    "retries",
    "status",
    "error_type",
    "error",
)
_INSERT_CALL = (
    f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}) VALUES ({', '.join('?' for _ in CALL_COLUMNS)})"
)
_HOST = socket.gethostname()
HIT_BATCH = 256
HIT_FLUSH_S = 1.0
_STORES: weakref.WeakSet[Store] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    for store in list(_STORES):
        with contextlib.suppress(Exception):
            store.flush()


class Store:
    """The SQLite database behind a Lab: cache rows, call rows, reservations, price tables."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = self._check_path(Path(path))
        self._local = threading.local()
        self._pending: list[list[Any]] = []
        self._pending_lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._check_foreign()
        self._migrate()
        _STORES.add(self)

    # --- opening ----------------------------------------------------------------------------
    @staticmethod
    def _check_path(path: Path) -> Path:
        path = path.expanduser()
        if path.is_dir():
            raise ConfigError(f"db must be a file path, not a directory: {path}")
        if path.exists():
            if not os.access(path, os.R_OK):
                raise ConfigError(f"db file is not readable: {path}")
            if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
                raise ConfigError(
                    f"db file is read-only: {path}. mmlab writes every call to its usage log; "
                    "point MMLAB_DB (or db=) at a writable file"
                )
            with open(path, "rb") as f:
                head = f.read(16)
            if head and head != b"SQLite format 3\x00":
                raise ConfigError(f"db file is not an SQLite database: {path}")
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create the db's folder {path.parent}: {exc}") from None
            if not os.access(path.parent, os.W_OK):
                raise ConfigError(f"cannot create the db in read-only folder {path.parent}")
        return path

    def _check_foreign(self) -> None:
        # Read-only look first: even switching a foreign file to WAL would modify it.
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        try:
            with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as conn:
                _refuse_foreign(conn, self.path)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot open db {self.path}: {exc}") from None

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=60.0, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA busy_timeout=60000")
            except sqlite3.DatabaseError as exc:
                raise ConfigError(f"cannot open db {self.path}: {exc}") from None
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Write pending hit rows and close this thread's connection."""
        self.flush()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _migrate(self) -> None:
        def run(db: sqlite3.Connection) -> None:
            _refuse_foreign(db, self.path)
            db.execute(
                "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied REAL)"
            )
            applied = {r[0] for r in db.execute("SELECT name FROM _migrations")}
            known = {m.__name__ for m in MIGRATIONS}
            unknown = sorted(applied - known)
            if unknown:
                raise ConfigError(
                    f"db {self.path} was written by a newer mmlab (schema {unknown[-1]}); "
                    "upgrade mmlab to use it"
                )
            for step in MIGRATIONS:
                if step.__name__ not in applied:
                    step(db)
                    db.execute(
                        "INSERT INTO _migrations VALUES (?, ?)", (step.__name__, time.time())
                    )
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")

        try:
            self.write(run)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot use db {self.path}: {exc}") from None

    # --- transactions -----------------------------------------------------------------------
    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` inside one IMMEDIATE transaction: all of it lands, or none of it."""
        conn = self._conn()
        for attempt in range(50):
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if _is_busy(exc) and attempt < 49:
                    # busy_timeout already waited; a second chance covers WAL recovery races.
                    time.sleep(0.05)
                    continue
                raise _storage_error(self.path, exc) from None
            try:
                result = fn(conn)
                conn.execute("COMMIT")
                return result
            except BaseException as exc:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # already rolled back by SQLite (e.g. disk full aborts the txn)
                if isinstance(exc, sqlite3.OperationalError):
                    if _is_busy(exc) and attempt < 49:
                        time.sleep(0.05)
                        continue
                    raise _storage_error(self.path, exc) from None
                raise
        raise StorageError(f"db {self.path} stayed locked")  # pragma: no cover

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Read rows (autocommit read; WAL gives a consistent snapshot).

        Pending hit rows are written first, so a read always sees every call made so far.
        """
        if self._pending:
            self.flush()
        return self._read(sql, args)

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        # reads of the cache (not the log) need not wait for queued hit rows
        try:
            return self._conn().execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            raise _storage_error(self.path, exc) from None

    # --- cache ------------------------------------------------------------------------------
    def cache_get(self, key: str) -> dict[str, Any] | None:
        """The cached reply for `key`, or None."""
        rows = self._read("SELECT response FROM cache WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def cache_get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Cached replies for many keys at once (one query per 900 keys)."""
        keys = list(keys)
        found: dict[str, dict[str, Any]] = {}
        for i in range(0, len(keys), 900):
            chunk = keys[i : i + 900]
            marks = ",".join("?" * len(chunk))
            for key, response in self._read(
                f"SELECT key, response FROM cache WHERE key IN ({marks})", chunk
            ):
                found[key] = json.loads(response)
        return found

    def cache_keys(self, keys: Iterable[str]) -> set[str]:
        """Which of `keys` have a cached reply (without reading the replies)."""
        keys = list(keys)
        found: set[str] = set()
        for i in range(0, len(keys), 900):
            chunk = keys[i : i + 900]
            marks = ",".join("?" * len(chunk))
            stored = {
                k for (k,) in self._read(f"SELECT key FROM cache WHERE key IN ({marks})", chunk)
            }
            # keep the caller's key objects, not fresh copies from the database
            found.update(k for k in chunk if k in stored)
        return found

    def cache_candidates(self, endpoint: str, model: str) -> list[str]:
        """Stored key material of one endpoint and model, for explaining replay misses."""
        rows = self._read(
            "SELECT request FROM cache WHERE endpoint = ? AND model = ? LIMIT 5000",
            (endpoint, model),
        )
        if not rows:
            rows = self._read("SELECT request FROM cache LIMIT 5000")
        return [r[0] for r in rows]

    # --- the log ----------------------------------------------------------------------------
    def record(
        self,
        call: dict[str, Any],
        *,
        cache_row: tuple[str, str, str, int, str, str, float] | None = None,
        release: str | None = None,
    ) -> None:
        """Write one call row, and its cache row and reservation release, atomically."""

        pending = self._take_pending()

        def txn(db: sqlite3.Connection) -> None:
            if pending:
                db.executemany(_INSERT_CALL, pending)
            if cache_row is not None:
                db.execute("INSERT OR REPLACE INTO cache VALUES (?, ?, ?, ?, ?, ?, ?)", cache_row)
            db.execute(_INSERT_CALL, [call.get(c) for c in CALL_COLUMNS])
            if release is not None:
                db.execute("DELETE FROM reservations WHERE id = ?", (release,))

        try:
            self.write(txn)
        except BaseException:
            self._restore_pending(pending)
            raise

    # --- cache-hit rows: written behind -----------------------------------------------------
    # A hit spends nothing, and a commit per hit would cost several times the lookup itself.
    # Hit rows are therefore written in batches: when HIT_BATCH are waiting, with the next
    # paid call's transaction, before any read of the log, after HIT_FLUSH_S seconds, and at
    # exit. A hard crash can lose at most the last unflushed hits — never a paid call, never
    # a cache entry.
    def record_hit(self, call: dict[str, Any]) -> None:
        """Queue the log row of a cache hit."""
        row = [call.get(c) for c in CALL_COLUMNS]
        with self._pending_lock:
            self._pending.append(row)
            full = len(self._pending) >= HIT_BATCH
            if not full and self._timer is None:
                self._timer = threading.Timer(HIT_FLUSH_S, self.flush)
                self._timer.daemon = True
                self._timer.start()
        if full:
            self.flush()

    def _take_pending(self) -> list[list[Any]]:
        with self._pending_lock:
            pending, self._pending = self._pending, []
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        return pending

    def _restore_pending(self, rows: list[list[Any]]) -> None:
        if rows:
            with self._pending_lock:
                self._pending[:0] = rows

    def flush(self) -> None:
        """Write queued hit rows now."""
        rows = self._take_pending()
        if rows:
            try:
                self.write(lambda db: db.executemany(_INSERT_CALL, rows))
            except BaseException:
                self._restore_pending(rows)
                raise

    def record_many(self, calls: Sequence[dict[str, Any]]) -> None:
        """Write many call rows (e.g. a sweep's cache hits) in one transaction."""
        if calls:
            self.write(
                lambda db: db.executemany(
                    _INSERT_CALL, [[c.get(k) for k in CALL_COLUMNS] for c in calls]
                )
            )

    def calls_frame(self, where: str = "", args: Sequence[Any] = ()) -> pd.DataFrame:
        """The usage log as a DataFrame, oldest first."""
        import pandas as pd

        rows = self.query(
            f"SELECT {', '.join(CALL_COLUMNS)} FROM calls {where} ORDER BY ts, call_id", args
        )
        df = pd.DataFrame.from_records(rows, columns=list(CALL_COLUMNS))
        df["ts"] = pd.to_datetime(df["ts"], unit="s", utc=True)
        df["cache_hit"] = df["cache_status"] == "hit"
        df["truncated"] = df["truncated"].astype("boolean")
        return df

    # --- budget -----------------------------------------------------------------------------
    def spent(self, scope: str | None) -> float:
        """USD spent by logged calls under tag `scope` (None means the whole database)."""
        where, args = tag_filter("tag", scope)
        return float(
            self.query(f"SELECT COALESCE(SUM(spent_usd), 0) FROM calls {where}", args)[0][0]
        )

    def reserve(
        self, tag: str | None, usd: float, limits: Sequence[tuple[str | None, float]]
    ) -> str:
        """Reserve `usd` for a call tagged `tag`, or raise `BudgetExceeded`.

        `limits` are (scope, budget) caps that must all hold: spent + in flight + `usd` within
        each budget, where a scope counts its tag and the tags below it (``study`` covers
        ``study/sweep-1``). The check and the reservation are one transaction, so concurrent
        callers (threads, tasks, other processes) can never together pass a cap.
        """
        rid = new_id()

        def txn(db: sqlite3.Connection) -> None:
            self._drop_dead_reservations(db)
            for scope, budget in limits:
                where, args = tag_filter("tag", scope)
                spent = db.execute(
                    f"SELECT COALESCE(SUM(spent_usd), 0) FROM calls {where}", args
                ).fetchone()[0]
                rwhere, rargs = tag_filter("tag", scope)
                held = db.execute(
                    f"SELECT COALESCE(SUM(usd), 0) FROM reservations {rwhere}", rargs
                ).fetchone()[0]
                if spent + held + usd > budget + 1e-12:
                    where_said = f" for tag {scope!r}" if scope is not None else ""
                    raise BudgetExceeded(
                        f"budget ${budget:.4f}{where_said} would be crossed: spent "
                        f"${spent:.4f}, in flight ${held:.4f}, this call's worst case "
                        f"${usd:.4f}",
                        budget_usd=budget,
                        spent_usd=spent + held,
                        needed_usd=usd,
                    )
            db.execute(
                "INSERT INTO reservations VALUES (?, ?, ?, ?, ?, ?)",
                (rid, tag, usd, _HOST, os.getpid(), time.time()),
            )

        self.write(txn)
        return rid

    def release(self, rid: str) -> None:
        """Drop a reservation whose call ended without a log row."""
        self.write(lambda db: db.execute("DELETE FROM reservations WHERE id = ?", (rid,)))

    @staticmethod
    def _drop_dead_reservations(db: sqlite3.Connection) -> None:
        # A process killed mid-call leaves its reservation behind; on this host we can tell.
        for rid, pid in db.execute("SELECT id, pid FROM reservations WHERE host = ?", (_HOST,)):
            if not _pid_alive(pid):
                db.execute("DELETE FROM reservations WHERE id = ?", (rid,))

    # --- price tables -----------------------------------------------------------------------
    def price_get(self, source: str) -> tuple[float, str] | None:
        """(fetched time, body) of a stored price table."""
        rows = self._read("SELECT fetched, body FROM prices WHERE source = ?", (source,))
        return (rows[0][0], rows[0][1]) if rows else None

    def price_put(self, source: str, body: str) -> None:
        """Store a fetched price table."""
        self.write(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO prices VALUES (?, ?, ?)", (source, time.time(), body)
            )
        )


def tag_filter(column: str, tag: str | None) -> tuple[str, tuple[Any, ...]]:
    """A WHERE clause selecting `tag` and the tags below it (``a`` covers ``a/b``).

    Tags are paths: a sweep inside a notebook is tagged ``notebook/sweep``, so the notebook's
    log, budget and bundle include it. (substr, not LIKE: tags often contain ``_``.)
    """
    if tag is None:
        return "", ()
    return (f"WHERE ({column} = ? OR substr({column}, 1, ?) = ?)", (tag, len(tag) + 1, tag + "/"))


def _refuse_foreign(db: sqlite3.Connection, path: Path) -> None:
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables - {"_migrations"}):
        raise ConfigError(
            f"db {path} is a foreign SQLite database (not written by mmlab); refusing to modify it"
        )


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _storage_error(path: Path, exc: sqlite3.Error) -> StorageError:
    text = str(exc)
    if "full" in text.lower():
        return StorageError(f"db {path}: the disk is full; nothing was written ({text})")
    if "readonly" in text.lower() or "read-only" in text.lower():
        return StorageError(f"db {path} is read-only; nothing was written ({text})")
    return StorageError(f"db {path}: {text}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
