"""The writer: one thread per database file that runs every write, in group commit.

Writes go through one writer thread per database (`Writer`): callers queue a job and (for
paid calls) wait on its future, so SQLite never blocks an event loop, and the jobs queued
meanwhile are committed together in one transaction — group commit, which is what makes a
*durable* log row per call (``synchronous=FULL``: on disk before the call returns) cheap at
high concurrency. Each job runs inside its own SAVEPOINT, so one job's failure never leaves
half of it behind nor takes its neighbours down.

What survives what: a paid call's log row, its cache entry and the release of its budget
reservation are one job, fsynced before ``chat`` returns — a crash or power loss after that
keeps them. *Light* jobs — reservations, request claims, cache hits' rows — are committed
without the fsync (``synchronous=NORMAL`` for a batch of only light jobs): a power loss can
undo them, and that is harmless (the process that held a reservation or claim is gone with
it; a hit spent nothing). A cache hit's row is also written behind (queued, not awaited): a
hard kill can lose the last few hit rows, never a paid call.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import connect, storage_error
from .rows import INSERT_CACHE, INSERT_CALL


class Job:
    """One queued write: its function (or rows) and, when the caller waits, its future."""

    __slots__ = ("fn", "future", "light")

    def __init__(
        self, fn: Callable[[sqlite3.Connection], Any] | Rows, wait: bool, light: bool = False
    ) -> None:
        self.fn = fn
        self.light = light
        self.future: concurrent.futures.Future[Any] | None = None
        if wait:
            self.future = concurrent.futures.Future()
            # Running from the start, so it cannot be cancelled: a queued write always
            # lands, even if the task awaiting it is cancelled (a paid call's row must not be
            # lost with the task that was waiting for it).
            self.future.set_running_or_notify_cancel()

    def settle(self, value: Any = None, error: BaseException | None = None) -> None:
        """Hand the job's outcome to whoever waits on it (nobody: written behind)."""
        if self.future is None:
            return
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(value)


@dataclass(slots=True)
class Rows:
    """A write that only inserts rows and drops a reservation: many of them are coalesced
    into one `executemany` per table (see `Writer._commit`)."""

    calls: list[tuple[Any, ...]]
    cache: list[tuple[Any, ...]]
    releases: list[tuple[str]]

    @staticmethod
    def write(db: sqlite3.Connection, jobs: Sequence[Rows]) -> None:
        """Insert the cache entries and call rows of `jobs` and drop their reservations."""
        cache = [e for job in jobs for e in job.cache]
        calls = [r for job in jobs for r in job.calls]
        releases = [r for job in jobs for r in job.releases]
        if cache:
            insert_many(db, "INSERT OR REPLACE " + INSERT_CACHE, cache)
        if calls:
            insert_many(db, INSERT_CALL, calls)
        if releases:
            marks = ",".join("?" * len(releases))
            db.execute(f"DELETE FROM reservations WHERE id IN ({marks})", [r[0] for r in releases])


def insert_many(db: sqlite3.Connection, insert: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert `rows` with one multi-row statement per chunk: SQLite runs a statement in one
    step, and the sqlite3 module hands the GIL back and forth around every step (under a busy
    event loop that hand-off costs far more than the insert itself)."""
    width = len(rows[0])
    head, _, one = insert.rpartition(" VALUES ")
    per = max(1, 30000 // width)  # SQLite allows 32766 bound parameters per statement
    for i in range(0, len(rows), per):
        chunk = rows[i : i + per]
        db.execute(f"{head} VALUES {','.join([one] * len(chunk))}", [v for r in chunk for v in r])


class Writer:
    """The one thread that writes to a database file from this process.

    It starts on the first write and ends after `IDLE_S` seconds without work (a test session
    opens hundreds of databases; their writers should not outlive their use).
    """

    IDLE_S = 5.0
    BATCH = 512
    BUSY_S = 0.05
    GATHER_S = 0.02

    def __init__(self, path: Path) -> None:
        self.path = path
        self.jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.max_pages: int | None = None
        self.pending = 0
        self.last_commit = 0.0
        self.last_batch = 0
        self.synchronous = "FULL"

    def busy(self) -> bool:
        """Whether any job is queued or being written."""
        return self.pending > 0

    def submit(
        self,
        fn: Callable[[sqlite3.Connection], Any] | Rows,
        *,
        wait: bool = True,
        light: bool = False,
    ) -> Job:
        """Queue `fn` (starting the thread if it is idle); its `Job.future` is None unless
        `wait`. `light`: a write a power loss may undo harmlessly (see the module
        docstring)."""
        job = Job(fn, wait, light)
        with self.lock:
            self.pending += 1
            self.jobs.put(job)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._run, name=f"mmlab-writer:{self.path.name}", daemon=True
                )
                self.thread.start()
        return job

    def _connect(self) -> sqlite3.Connection:
        conn = connect(self.path)
        # Durable commits: a paid call's row is on disk before the call returns. Group commit
        # (many jobs per transaction) keeps the fsyncs few at high concurrency.
        conn.execute("PRAGMA synchronous=FULL")
        self.synchronous = "FULL"
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

    def _commit(self, conn: sqlite3.Connection, batch: list[Job]) -> None:
        outcomes: list[tuple[Job, Any, BaseException | None]] = []
        # a batch that holds any durable job is fsynced; one of light jobs only is not
        level = "NORMAL" if all(job.light for job in batch) else "FULL"
        if level != self.synchronous:
            conn.execute(f"PRAGMA synchronous={level}")
            self.synchronous = level
        try:
            self._begin(conn)
            i = 0
            while i < len(batch):
                if isinstance(batch[i].fn, Rows):
                    # Consecutive row jobs (the hot path: a call's row, cache entry, release)
                    # go in as a few executemany calls: every SQLite call hands the GIL to
                    # the event loop thread and back, which costs more than the insert.
                    j = i
                    while j < len(batch) and isinstance(batch[j].fn, Rows):
                        j += 1
                    Rows.write(conn, [job.fn for job in batch[i:j]])  # type: ignore[misc]
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
                batch[0].settle(error=storage_error(self.path, exc))
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


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text
