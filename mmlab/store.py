"""SQLite: every SQL statement mmlab runs. Migrations, the response cache, the usage log,
budget reservations, price tables and the usage roll-up.

One file holds everything so a study's money and data travel together. WAL mode lets several
processes (notebooks, CLI sweeps) read while one writes.

Writes go through one writer thread per database (`_Writer`): callers queue a job and (for
paid calls) wait on its future, so SQLite never blocks an event loop, and the jobs queued
meanwhile are committed together in one transaction — group commit, which is what makes a
*durable* log row per call (``synchronous=FULL``: on disk before the call returns) cheap at
high concurrency. Each job runs inside its own SAVEPOINT, so one job's failure never leaves
half of it behind nor takes its neighbours down.

What survives what: a paid call's log row, its cache entry and the release of its budget
reservation are one job, fsynced before ``chat`` returns — a crash or power loss after that
keeps them. A cache hit's row spends nothing and is written behind (queued, not awaited):
a hard kill can lose the last few hit rows, never a paid call.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import operator
import os
import queue
import random
import secrets
import socket
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import jsonfast
from .errors import BudgetExceeded, ConfigError, RequestError, StorageError

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


_ROLLUP_SUMS = (
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
    upsert = ", ".join(f"{c} = {c} + excluded.{c}" for c in _ROLLUP_SUMS)
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


_ids = random.Random(secrets.randbits(128))
# A forked child must not repeat its parent's ids: reseed from the OS in the child.
os.register_at_fork(after_in_child=lambda: _ids.seed(secrets.randbits(128)))


def new_id() -> str:
    """A time-ordered unique id (millisecond clock + 48 random bits), like a ULID."""
    return f"{int(time.time() * 1000):012x}{_ids.getrandbits(48):012x}"


# --- typed rows ------------------------------------------------------------------------------
@dataclass(slots=True)
class CallRow:
    """One row of the usage log (the ``calls`` table), field for column."""

    call_id: str
    ts: float
    tag: str | None
    cache_key: str | None
    cache_status: str
    endpoint: str | None
    model: str | None
    sample: int | None
    params: str | None
    provider: str | None = None
    served_model: str | None = None
    generation_id: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None
    spent_usd: float = 0.0
    saved_usd: float = 0.0
    cost_source: str | None = None
    price_ref: str | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    finish_reason: str | None = None
    truncated: int | None = None
    reasoning_mode: str | None = None
    retries: int = 0
    status: int | None = None
    error_type: str | None = None
    error: str | None = None


CALL_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(CallRow))
_call_values = operator.attrgetter(*CALL_COLUMNS)
_INSERT_CALL = (
    f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}) VALUES ({', '.join('?' for _ in CALL_COLUMNS)})"
)


#: The columns of a generation record (the ``generations`` table), in order.
GENERATION_COLUMNS: tuple[str, ...] = (
    "call_id", "generation_id", "fetched", "provider", "model", "native_prompt_tokens",
    "native_completion_tokens", "native_reasoning_tokens", "native_cached_tokens",
    "total_cost", "cache_discount", "latency_s", "generation_time_s", "finish_reason",
    "native_finish_reason", "disagreements",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One row of the response cache."""

    key: str
    endpoint: str
    model: str
    sample: int
    request: str
    """Canonical JSON of the key material (see `mmlab.cachekey`)."""
    response: str
    """JSON of the complete, successful response."""
    created: float
    origin: str | None = None
    """None: a call made here; ``bundle:<sha256>``: imported from that bundle."""


CACHE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(CacheEntry))
_cache_values = operator.attrgetter(*CACHE_COLUMNS)
_INSERT_CACHE = (
    f"INTO cache ({', '.join(CACHE_COLUMNS)}) VALUES ({', '.join('?' for _ in CACHE_COLUMNS)})"
)

_HOST = socket.gethostname()
_STORES: weakref.WeakSet[Store] = weakref.WeakSet()
#: Usage summary groupings: the roll-up column (the day is an integer; formatted afterwards).
SUMMARY_GROUPS = ("day", "model", "tag", "endpoint", "provider")


@atexit.register
def _flush_all() -> None:
    for store in list(_STORES):
        with contextlib.suppress(Exception):
            store.flush()


# --- the writer --------------------------------------------------------------------------------
class _Job:
    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any] | _Rows, wait: bool) -> None:
        self.fn = fn
        self.future: concurrent.futures.Future[Any] | None = None
        if wait:
            self.future = concurrent.futures.Future()
            # Running from the start, so it cannot be cancelled: a queued write always
            # lands, even if the task awaiting it is cancelled (a paid call's row must not be
            # lost with the task that was waiting for it).
            self.future.set_running_or_notify_cancel()

    def settle(self, value: Any = None, error: BaseException | None = None) -> None:
        if self.future is None:
            return
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(value)


@dataclass(slots=True)
class _Rows:
    """A write that only inserts rows and drops a reservation: many of them are coalesced
    into one `executemany` per table (see `_Writer._commit`)."""

    calls: list[tuple[Any, ...]]
    cache: list[tuple[Any, ...]]
    releases: list[tuple[str]]

    @staticmethod
    def write(db: sqlite3.Connection, jobs: Sequence[_Rows]) -> None:
        cache = [e for job in jobs for e in job.cache]
        calls = [r for job in jobs for r in job.calls]
        releases = [r for job in jobs for r in job.releases]
        if cache:
            _insert_many(db, "INSERT OR REPLACE " + _INSERT_CACHE, cache)
        if calls:
            _insert_many(db, _INSERT_CALL, calls)
        if releases:
            marks = ",".join("?" * len(releases))
            db.execute(f"DELETE FROM reservations WHERE id IN ({marks})", [r[0] for r in releases])


def _insert_many(db: sqlite3.Connection, insert: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert `rows` with one multi-row statement per chunk: SQLite runs a statement in one
    step, and the sqlite3 module hands the GIL back and forth around every step (under a busy
    event loop that hand-off costs far more than the insert itself)."""
    width = len(rows[0])
    head, _, one = insert.rpartition(" VALUES ")
    per = max(1, 30000 // width)  # SQLite allows 32766 bound parameters per statement
    for i in range(0, len(rows), per):
        chunk = rows[i : i + per]
        db.execute(f"{head} VALUES {','.join([one] * len(chunk))}", [v for r in chunk for v in r])


class _Writer:
    """The one thread that writes to a database file from this process.

    It starts on the first write and ends after `IDLE_S` seconds without work (a test session
    opens hundreds of databases; their writers should not outlive their use).
    """

    IDLE_S = 5.0
    BATCH = 512
    BUSY_S = 0.05
    GATHER_S = 0.02

    def __init__(self, store: Store) -> None:
        self.store = store
        self.jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.max_pages: int | None = None
        self.pending = 0
        self.last_commit = 0.0
        self.last_batch = 0

    def busy(self) -> bool:
        """Whether any job is queued or being written."""
        return self.pending > 0

    def submit(self, fn: Callable[[sqlite3.Connection], Any] | _Rows, *, wait: bool = True) -> _Job:
        job = _Job(fn, wait)
        with self.lock:
            self.pending += 1
            self.jobs.put(job)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._run, name=f"mmlab-writer:{self.store.path.name}", daemon=True
                )
                self.thread.start()
        return job

    def _connect(self) -> sqlite3.Connection:
        conn = self.store._connect()
        # Durable commits: a paid call's row is on disk before the call returns. Group commit
        # (many jobs per transaction) keeps the fsyncs few at high concurrency.
        conn.execute("PRAGMA synchronous=FULL")
        if self.max_pages is not None:
            conn.execute(f"PRAGMA max_page_count={self.max_pages}")
        return conn

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                try:
                    first = self.jobs.get(timeout=self.IDLE_S)
                except queue.Empty:
                    with self.lock:
                        if self.jobs.empty():
                            self.thread = None
                            return
                    continue
                batch = [first]
                if self.last_batch > 1 and time.monotonic() - self.last_commit < self.BUSY_S:
                    # Concurrent writers (the last batch held several jobs, a moment ago):
                    # wait for more, so that one transaction covers many calls — one fsync
                    # and one round of GIL hand-offs instead of one per call. A lone caller
                    # (batches of one) is never kept waiting.
                    time.sleep(self.GATHER_S)
                while len(batch) < self.BATCH:
                    try:
                        batch.append(self.jobs.get_nowait())
                    except queue.Empty:
                        break
                taken = len(batch)
                try:
                    if batch and conn is None:
                        try:
                            conn = self._connect()
                        except BaseException as exc:  # noqa: BLE001 - handed to every waiter
                            for job in batch:
                                job.settle(error=exc)
                            continue
                    if batch:
                        self._commit(conn, batch)
                        self.last_commit = time.monotonic()
                        self.last_batch = len(batch)
                finally:
                    with self.lock:
                        self.pending -= taken
        finally:
            if conn is not None:
                conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        try:
            self._begin(conn)
            i = 0
            while i < len(batch):
                if isinstance(batch[i].fn, _Rows):
                    # Consecutive row jobs (the hot path: a call's row, cache entry, release)
                    # go in as a few executemany calls: every SQLite call hands the GIL to
                    # the event loop thread and back, which costs more than the insert.
                    j = i
                    while j < len(batch) and isinstance(batch[j].fn, _Rows):
                        j += 1
                    _Rows.write(conn, [job.fn for job in batch[i:j]])  # type: ignore[misc]
                    outcomes += [(job, None, None) for job in batch[i:j]]
                    i = j
                    continue
                job, alone = batch[i], len(batch) == 1
                if not alone:
                    conn.execute("SAVEPOINT job")
                try:
                    value = job.fn(conn)
                except sqlite3.Error:
                    raise  # the database itself failed: the whole batch is retried alone
                except BaseException as exc:  # noqa: BLE001 - a refusal (e.g. budget): undo it
                    conn.execute("ROLLBACK TO job" if not alone else "ROLLBACK")
                    if alone:
                        job.settle(error=exc)
                        return
                    conn.execute("RELEASE job")
                    outcomes.append((job, None, exc))
                else:
                    if not alone:
                        conn.execute("RELEASE job")
                    outcomes.append((job, value, None))
                i += 1
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if len(batch) > 1:
                for job in batch:  # find the one that fails; commit the others
                    self._commit(conn, [job])
            else:
                batch[0].settle(error=_storage_error(self.store.path, exc))
            return
        for job, value, error in outcomes:
            job.settle(value, error)

    def _begin(self, conn: sqlite3.Connection) -> None:
        for attempt in range(50):
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                # busy_timeout already waited; a second chance covers WAL recovery races.
                if _is_busy(exc) and attempt < 49:
                    time.sleep(0.05)
                    continue
                raise


class Store:
    """The SQLite database behind a Lab: cache rows, call rows, reservations, price tables."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = self._check_path(Path(path))
        self._local = threading.local()
        self._writer = _Writer(self)
        self._hits_lock = threading.Lock()
        self._hit_rows: list[tuple[Any, ...]] = []
        self._hits_queued = False
        self._check_foreign()
        self._migrate()
        _STORES.add(self)

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

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
                # Prompts and answers are private: the folder 0700 (when mmlab makes it)...
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise ConfigError(f"cannot create the db's folder {path.parent}: {exc}") from None
            if not os.access(path.parent, os.W_OK):
                raise ConfigError(f"cannot create the db in read-only folder {path.parent}")
            try:
                # ...and the file 0600 before SQLite opens it: SQLite gives its -wal and -shm
                # files the database file's permissions.
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                pass  # another process made it a moment ago
            except OSError as exc:
                raise ConfigError(f"cannot create the db {path}: {exc}") from None
        _make_private(path)
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

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=60.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=60000")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot open db {self.path}: {exc}") from None
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def close(self) -> None:
        """Write queued rows and close this thread's read connection."""
        self.flush()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def cap_size(self, max_bytes: int | None) -> None:
        """Refuse writes that would grow the file past `max_bytes` (None: no cap).

        Such a write fails exactly like a full disk (`StorageError`, nothing half-written):
        for quota-bound shared machines, and how the tests prove the disk-full path.
        """
        page = int(self._read("PRAGMA page_size")[0][0])
        self._writer.max_pages = None if max_bytes is None else max(1, max_bytes // page)
        pages = 1073741823 if max_bytes is None else self._writer.max_pages
        self._write(lambda db: db.execute(f"PRAGMA max_page_count={pages}"))

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
            self._write(run)
        except StorageError as exc:
            raise ConfigError(f"cannot use db {self.path}: {exc}") from None

    # --- transactions -----------------------------------------------------------------------
    def _write(self, fn: Callable[[sqlite3.Connection], T] | _Rows) -> T:
        """Run `fn` in the writer's transaction and wait: all of it lands, or none of it."""
        future = self._writer.submit(fn).future
        assert future is not None
        return future.result()

    async def _awrite(self, fn: Callable[[sqlite3.Connection], T] | _Rows) -> T:
        """`write` for coroutines: the event loop keeps running while SQLite works (or waits
        for another process's lock). Once queued the write lands, even if the awaiting task
        is cancelled (see `_Job`)."""
        future = self._writer.submit(fn).future
        assert future is not None
        return await asyncio.wrap_future(future)

    def _write_behind(self, fn: Callable[[sqlite3.Connection], Any] | _Rows) -> None:
        """Queue `fn` without waiting (rows that spend nothing: cache hits)."""
        self._writer.submit(fn, wait=False)

    def flush(self) -> None:
        """Wait until every queued write (hit rows included) has landed."""
        if self._hit_rows or self._writer.busy():
            self._write(self._write_hits)

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        # WAL readers never wait for the writer; reads of the log flush queued rows first
        # (see _log_read) so they see every call made so far.
        try:
            return self._reader().execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            raise _storage_error(self.path, exc) from None

    def _log_read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.flush()
        return self._read(sql, args)

    # --- cache ------------------------------------------------------------------------------
    def cache_get(self, key: str) -> tuple[dict[str, Any], str | None] | None:
        """The cached response for `key` and where it came from (`CacheEntry.origin`)."""
        row = self._reader().execute(
            "SELECT response, origin FROM cache WHERE key = ?", (key,)
        ).fetchone()
        return (jsonfast.loads(row[0]), row[1]) if row is not None else None

    def cache_get_many(
        self, keys: Iterable[str]
    ) -> dict[str, tuple[dict[str, Any], str | None]]:
        """Cached responses (and origins) for many keys at once (one query per 900 keys)."""
        found: dict[str, tuple[dict[str, Any], str | None]] = {}
        for chunk in _chunks(list(keys), 900):
            marks = ",".join("?" * len(chunk))
            for key, response, origin in self._read(
                f"SELECT key, response, origin FROM cache WHERE key IN ({marks})", chunk
            ):
                found[key] = (jsonfast.loads(response), origin)
        return found

    def cache_keys(self, keys: Iterable[str]) -> set[str]:
        """Which of `keys` have a cached response (without reading the responses)."""
        found: set[str] = set()
        for chunk in _chunks(list(keys), 900):
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

    def cache_put(self, entries: Sequence[CacheEntry], *, replace: bool = False) -> int:
        """Insert cache entries in one transaction (existing keys are kept unless `replace`);
        returns how many were added."""
        verb = "INSERT OR REPLACE " if replace else "INSERT OR IGNORE "

        def txn(db: sqlite3.Connection) -> int:
            before = db.total_changes
            db.executemany(verb + _INSERT_CACHE, [_cache_values(e) for e in entries])
            return db.total_changes - before

        return self._write(txn)

    def cache_entries(self, tag: str) -> tuple[list[CacheEntry], int]:
        """The cache entries successful calls tagged `tag` (or below it) used, sorted by key,
        and how many such calls' entries are gone (cleared since)."""
        where, args = tag_filter("tag", tag)
        used = (
            f"SELECT DISTINCT cache_key FROM calls {where} AND cache_key IS NOT NULL "
            "AND error IS NULL"
        )
        rows = self._log_read(
            f"SELECT {', '.join(CACHE_COLUMNS)} FROM cache WHERE key IN ({used}) ORDER BY key",
            args,
        )
        missing = self._read(
            f"SELECT COUNT(*) FROM ({used}) WHERE cache_key NOT IN (SELECT key FROM cache)", args
        )[0][0]
        return [CacheEntry(*r) for r in rows], int(missing)

    def cache_stats(self) -> tuple[list[tuple[str, str, int, int]], int, int]:
        """(rows of endpoint, model, entries, bytes), hits logged, calls logged."""
        rows = self._read(
            "SELECT endpoint, model, COUNT(*), SUM(LENGTH(response)) FROM cache "
            "GROUP BY endpoint, model ORDER BY endpoint, model"
        )
        hits, calls = self._log_read(
            "SELECT COALESCE(SUM(hits), 0), COALESCE(SUM(calls), 0) FROM usage_rollup"
        )[0]
        return [tuple(r) for r in rows], int(hits), int(calls)  # type: ignore[misc]

    def cache_clear(self, tag: str | None = None, *, imported: bool = False) -> int:
        """Delete cache entries and return how many: all of them; those calls tagged `tag`
        (or below) used and no call outside that tag uses; or (`imported`) those that came
        from bundles. The usage log is kept."""
        if imported:
            sql, args = "DELETE FROM cache WHERE origin IS NOT NULL", ()
        elif tag is None:
            sql, args = "DELETE FROM cache", ()
        else:
            inside, targs = _in_scope("tag", tag)
            # an entry another tag's calls also used stays: clearing one study must not
            # take a shared answer away from another
            sql = (
                f"DELETE FROM cache WHERE key IN (SELECT cache_key FROM calls WHERE {inside}) "
                "AND key NOT IN (SELECT cache_key FROM calls WHERE cache_key IS NOT NULL "
                f"AND (tag IS NULL OR NOT {inside}))"
            )
            args = targs + targs
        return self._write(lambda db: db.execute(sql, args).rowcount)

    # --- the log ----------------------------------------------------------------------------
    @staticmethod
    def _commit_call_txn(row: CallRow, entry: CacheEntry | None, release: str | None) -> _Rows:
        return _Rows(
            [_call_values(row)],
            [_cache_values(entry)] if entry is not None else [],
            [(release,)] if release is not None else [],
        )

    def commit_call(
        self, row: CallRow, entry: CacheEntry | None = None, release: str | None = None
    ) -> None:
        """Write one call's log row, its cache entry and its reservation's release, atomically
        and durably."""
        self._write(self._commit_call_txn(row, entry, release))

    async def acommit_call(
        self, row: CallRow, entry: CacheEntry | None = None, release: str | None = None
    ) -> None:
        """`commit_call` for coroutines."""
        await self._awrite(self._commit_call_txn(row, entry, release))

    def log_failure(self, row: CallRow, release: str | None = None) -> None:
        """Queue a failed call's row and its reservation's release (written behind: a failed
        call spent nothing, and a cancelled task must not wait on the database)."""
        txn = self._commit_call_txn(row, None, release)
        self._write_behind(txn)

    def log_hits(self, rows: Sequence[CallRow]) -> None:
        """Queue the log rows of cache hits (written behind: they spend nothing).

        Rows gather in one list that a single queued job writes: a burst of hits costs one
        job and one transaction, not one each.
        """
        with self._hits_lock:
            self._hit_rows.extend(_call_values(r) for r in rows)
            if self._hits_queued or not self._hit_rows:
                return
            self._hits_queued = True
        self._write_behind(self._write_hits)

    def _write_hits(self, db: sqlite3.Connection) -> None:
        with self._hits_lock:
            rows, self._hit_rows = self._hit_rows, []
            self._hits_queued = False
        try:
            if rows:
                _insert_many(db, _INSERT_CALL, rows)
        except BaseException:
            with self._hits_lock:  # rolled back: keep them for the retry or the next flush
                self._hit_rows[:0] = rows
            raise

    def calls_frame(self, scope: str | None = None) -> pd.DataFrame:
        """The usage log (calls tagged `scope` or below; None: all) as a DataFrame, oldest first."""
        import pandas as pd

        where, args = tag_filter("tag", scope)
        rows = self._log_read(
            f"SELECT {', '.join(CALL_COLUMNS)} FROM calls {where} ORDER BY ts, call_id", args
        )
        df = pd.DataFrame.from_records(rows, columns=list(CALL_COLUMNS))
        df["ts"] = pd.to_datetime(df["ts"], unit="s", utc=True)
        df["cache_hit"] = df["cache_status"] == "hit"
        df["truncated"] = df["truncated"].astype("boolean")
        return df

    def usage_summary(
        self, by: str | Sequence[str], scope: str | None = None
    ) -> pd.DataFrame:
        """Totals of the log grouped `by` one or more of day | model | tag | endpoint |
        provider: calls, hits, errors, tokens, spent and saved USD (read from the roll-up,
        not the log)."""
        import pandas as pd

        keys = [by] if isinstance(by, str) else list(by)
        bad = [k for k in keys if k not in SUMMARY_GROUPS]
        if not keys or bad or len(set(keys)) != len(keys):
            raise RequestError(
                f"by must be one or more of {', '.join(SUMMARY_GROUPS)}; got {by!r}", "by"
            )
        where, args = tag_filter("tag", scope)
        sums = ", ".join(f"SUM({c}) AS {c}" for c in _ROLLUP_SUMS)
        order = ", ".join(str(i + 1) for i in range(len(keys)))
        rows = self._log_read(
            f"SELECT {', '.join(keys)}, {sums} FROM usage_rollup {where} "
            f"GROUP BY {order} ORDER BY {order}",
            args,
        )
        df = pd.DataFrame.from_records(rows, columns=[*keys, *_ROLLUP_SUMS])
        if "day" in keys and len(df):
            df["day"] = pd.to_datetime(df["day"] * 86400, unit="s", utc=True).dt.strftime(
                "%Y-%m-%d"
            )
        return df

    def last_errors(self, scope: str, keys: set[str]) -> dict[str, str]:
        """For cache keys with no successful response: the error of their last attempt.

        An attempt that was interrupted (cancelled) or later succeeded clears the error, so
        a cell counts as failed only when its last real attempt failed.
        """
        where, args = tag_filter("tag", scope)
        errors: dict[str, str] = {}
        for key, error, error_type in self._log_read(
            f"SELECT cache_key, error, error_type FROM calls {where} "
            "AND cache_status != 'hit' ORDER BY ts, call_id",
            args,
        ):
            if key not in keys:
                continue
            if error is None or error_type == "cancelled":
                errors.pop(key, None)
            else:
                errors[key] = error
        return errors

    def observed_lengths(self, model: str, endpoint: str) -> tuple[dict[Any, float], int]:
        """Mean completion tokens of logged successful calls to a model, by ``max_tokens``
        (key None: calls without one; ``"any"``: all), and how many calls that is."""
        rows = self._log_read(
            "SELECT json_extract(params, '$.max_tokens'), AVG(completion_tokens), COUNT(*) "
            "FROM calls WHERE model = ? AND endpoint = ? AND error IS NULL "
            "AND cache_status != 'hit' AND completion_tokens IS NOT NULL GROUP BY 1",
            (model, endpoint),
        )
        out: dict[Any, float] = {}
        n, total = 0, 0.0
        for max_tokens, mean, count in rows:
            out[max_tokens] = float(mean)
            n += count
            total += float(mean) * count
        if n:
            out["any"] = total / n
        return out, n

    def rebill(self, call_id: str, cache_key: str | None, cost: float) -> None:
        """Record a billed cost for a logged call (and its cache entry), in one transaction."""

        def txn(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE calls SET cost_usd = ?, spent_usd = ?, cost_source = 'billed', "
                "price_ref = NULL WHERE call_id = ?",
                (cost, cost, call_id),
            )
            if cache_key is None:
                return
            row = db.execute("SELECT response FROM cache WHERE key = ?", (cache_key,)).fetchone()
            if row is not None:
                response = jsonfast.loads(row[0])
                response.update(cost_usd=cost, cost_source="billed", price_ref=None)
                db.execute(
                    "UPDATE cache SET response = ? WHERE key = ?",
                    (jsonfast.dumps(response), cache_key),
                )

        self._write(txn)

    # --- the generation ledger ------------------------------------------------------------
    def unreconciled_calls(self, endpoint: str, scope: str | None) -> pd.DataFrame:
        """Paid calls (no hits, no errors) under tag `scope` with a generation id and no
        generation record yet: what the reply said of each (tokens, cost, provider, model,
        finish), to compare with ``GET /generation``."""
        import pandas as pd

        where, args = tag_filter("c.tag", scope)
        cols = ["call_id", "generation_id", "cache_key", "provider", "served_model",
                "prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens",
                "cost_usd", "cost_source", "finish_reason"]  # fmt: skip
        rows = self._log_read(
            f"SELECT {', '.join('c.' + c for c in cols)} FROM calls c {where} "
            "AND c.generation_id IS NOT NULL AND c.cache_status != 'hit' AND c.error IS NULL "
            "AND c.endpoint = ? AND NOT EXISTS "
            "(SELECT 1 FROM generations g WHERE g.call_id = c.call_id) ORDER BY c.ts",
            (*args, endpoint),
        )
        return pd.DataFrame.from_records(rows, columns=cols)

    def put_generations(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Store generation records (`GENERATION_COLUMNS` each), one transaction."""
        if not rows:
            return
        sql = (
            f"INSERT OR REPLACE INTO generations ({', '.join(GENERATION_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in GENERATION_COLUMNS)})"
        )
        values = [tuple(r.get(c) for c in GENERATION_COLUMNS) for r in rows]
        self._write(lambda db: db.executemany(sql, values))

    def generations_frame(self, scope: str | None) -> pd.DataFrame:
        """Every call under tag `scope` that has a generation record, joined with it: the
        log's figures beside OpenRouter's (``native_*``, ``total_cost``, ``cache_discount``,
        timings) and the ``disagreements`` found."""
        import pandas as pd

        where, args = tag_filter("c.tag", scope)
        mine = ["tag", "ts", "provider", "model", "served_model", "prompt_tokens",
                "completion_tokens", "reasoning_tokens", "cached_tokens", "cost_usd",
                "cost_source", "latency_s", "finish_reason"]  # fmt: skip
        theirs = [c for c in GENERATION_COLUMNS if c != "call_id"]
        rows = self._log_read(
            f"SELECT c.call_id, {', '.join('c.' + c for c in mine)}, "
            f"{', '.join('g.' + c + ' AS g_' + c for c in theirs)} "
            f"FROM calls c JOIN generations g ON g.call_id = c.call_id {where} ORDER BY c.ts",
            args,
        )
        df = pd.DataFrame.from_records(
            rows, columns=["call_id", *mine, *(f"generation_{c}" if c in mine else c
                                              for c in theirs)]  # fmt: skip
        )
        df["ts"] = pd.to_datetime(df["ts"], unit="s", utc=True)
        return df

    def spent_between(self, start: float, end: float, endpoint: str) -> tuple[float, int]:
        """USD spent by calls to `endpoint` (its identity) logged in [start, end], any tag,
        and how many calls that was: what that endpoint's key should have grown by meanwhile
        (calls to other endpoints are billed elsewhere, if at all)."""
        spent, n = self._log_read(
            "SELECT COALESCE(SUM(spent_usd), 0), COUNT(*) FROM calls "
            "WHERE ts >= ? AND ts <= ? AND cache_status != 'hit' AND endpoint = ?",
            (start, end, endpoint),
        )[0]
        return float(spent), int(n)

    # --- budget -----------------------------------------------------------------------------
    def spent(self, scope: str | None) -> float:
        """USD spent by logged calls under tag `scope` (None means the whole database)."""
        where, args = tag_filter("tag", scope)
        return float(
            self._log_read(f"SELECT COALESCE(SUM(spent_usd), 0) FROM usage_rollup {where}", args)[
                0
            ][0]
        )

    def _reserve_txn(
        self, tag: str | None, usd: float, limits: Sequence[tuple[str | None, float]], rid: str
    ) -> Callable[[sqlite3.Connection], str]:
        def txn(db: sqlite3.Connection) -> str:
            _drop_dead_reservations(db)
            for scope, budget in limits:
                where, args = tag_filter("tag", scope)
                spent = db.execute(
                    f"SELECT COALESCE(SUM(spent_usd), 0) FROM usage_rollup {where}", args
                ).fetchone()[0]
                held = db.execute(
                    f"SELECT COALESCE(SUM(usd), 0) FROM reservations {where}", args
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
            return rid

        return txn

    def reserve(
        self, tag: str | None, usd: float, limits: Sequence[tuple[str | None, float]]
    ) -> str:
        """Reserve `usd` for a call tagged `tag`, or raise `BudgetExceeded`.

        `limits` are (scope, budget) caps that must all hold: spent + in flight + `usd` within
        each budget, where a scope counts its tag and the tags below it (``study`` covers
        ``study/sweep-1``). The check and the reservation are one transaction, so concurrent
        callers (threads, tasks, other processes) can never together pass a cap.
        """
        return self._write(self._reserve_txn(tag, usd, limits, new_id()))

    async def areserve(
        self, tag: str | None, usd: float, limits: Sequence[tuple[str | None, float]]
    ) -> str:
        """`reserve` for coroutines. If the awaiting task is cancelled, a reservation that
        lands anyway is released behind it (never held by a call that will not be made)."""
        rid = new_id()
        try:
            return await self._awrite(self._reserve_txn(tag, usd, limits, rid))
        except asyncio.CancelledError:
            self.release_behind(rid)  # queued after the reservation: undoes it if it landed
            raise

    def release(self, rid: str) -> None:
        """Drop a reservation whose call ended without a log row."""
        self._write(_release_txn(rid))

    def release_behind(self, rid: str) -> None:
        """Queue the release of a reservation (idempotent)."""
        self._write_behind(_release_txn(rid))

    def durability(self) -> str:
        """The writer's ``PRAGMA synchronous`` (FULL: a committed paid call survives a power
        loss, not only a crash of the process)."""
        level = self._write(lambda db: db.execute("PRAGMA synchronous").fetchone()[0])
        return {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(level, str(level))

    def reservations_held(self) -> int:
        """How many budget reservations are outstanding (calls in flight)."""
        return int(self._log_read("SELECT COUNT(*) FROM reservations")[0][0])

    # --- price tables -----------------------------------------------------------------------
    def price_get(self, source: str) -> tuple[float, str] | None:
        """(fetched time, body) of a stored price table."""
        rows = self._read("SELECT fetched, body FROM prices WHERE source = ?", (source,))
        return (rows[0][0], rows[0][1]) if rows else None

    async def aprice_put(self, source: str, body: str) -> None:
        """Store a fetched price table."""
        await self._awrite(
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
        return "WHERE 1", ()
    inside, args = _in_scope(column, tag)
    return f"WHERE {inside}", args


def _in_scope(column: str, tag: str) -> tuple[str, tuple[Any, ...]]:
    return f"({column} = ? OR substr({column}, 1, ?) = ?)", (tag, len(tag) + 1, tag + "/")


def _make_private(path: Path) -> None:
    """Tighten a database mmlab owns (and its -wal/-shm, and an mmlab data folder) that other
    users could read: databases written before mmlab created them private."""
    try:
        me = os.getuid()
        for f in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if f.exists() and f.stat().st_uid == me and f.stat().st_mode & 0o077:
                f.chmod(0o600)
        folder = path.parent
        if (
            folder.name in ("mmlab", ".mmlab")
            and folder.stat().st_uid == me
            and folder.stat().st_mode & 0o077
        ):
            folder.chmod(0o700)
    except OSError:
        pass  # a file we cannot change is the owner's to secure; reading it is still refused


def _release_txn(rid: str) -> Callable[[sqlite3.Connection], Any]:
    return lambda db: db.execute("DELETE FROM reservations WHERE id = ?", (rid,))


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _drop_dead_reservations(db: sqlite3.Connection) -> None:
    # A process killed mid-call leaves its reservation behind; on this host we can tell.
    for rid, pid in db.execute("SELECT id, pid FROM reservations WHERE host = ?", (_HOST,)):
        if not _pid_alive(pid):
            db.execute("DELETE FROM reservations WHERE id = ?", (rid,))


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


__all__ = [
    "CACHE_COLUMNS",
    "CALL_COLUMNS",
    "CacheEntry",
    "CallRow",
    "MIGRATIONS",
    "Store",
    "new_id",
    "tag_filter",
]
