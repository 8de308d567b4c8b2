"""`Store`: the SQLite database behind a Lab, and every statement it runs on the cache, the
usage log, budget reservations, price tables and the generation ledger.

One file holds everything so a study's money and data travel together. WAL mode lets several
processes (notebooks, CLI sweeps) read while one writes; every write goes through the
database's writer thread (see `mmlab.store.writer`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .. import jsonfast
from ..errors import ConfigError, RequestError, StorageError
from . import generations, migrations
from .files import check_foreign, check_path, connect, refuse_foreign, storage_error
from .inflight import Claims, add_reservation, claims_for, drop_reservation
from .migrations import HIT_SUMS, ROLLUP_SUMS
from .rows import (
    CACHE_COLUMNS,
    CALL_COLUMNS,
    INSERT_CACHE,
    INSERT_CALL,
    CacheEntry,
    CallRow,
    cache_values,
    call_values,
    new_id,
)
from .scopes import in_scope, tag_filter
from .writer import Rows, Writer, insert_many

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")

_STORES: weakref.WeakSet[Store] = weakref.WeakSet()
#: Usage summary groupings: the roll-up column (the day is an integer; formatted afterwards).
SUMMARY_GROUPS = ("day", "model", "tag", "endpoint", "provider")


@atexit.register
def _flush_all() -> None:
    for store in list(_STORES):
        with contextlib.suppress(Exception):
            store.flush()


#: Cache hits' log rows are written once this many are waiting...
HIT_BATCH = 16384
#: ...or once no hit has come for this long (and before any read of the log, and at exit).
HIT_IDLE_S = 0.2


#: `Store.cache_get`'s query, by whether imported entries may answer.
_CACHE_GET = {
    True: "SELECT response, origin FROM cache WHERE key = ? ORDER BY rowid DESC",
    False: "SELECT response, origin FROM cache WHERE key = ? AND origin = ''",
}


def _pick(rows: Sequence[tuple[Any, str]], prefer: str | None) -> tuple[Any, str] | None:
    """Of the entries for one key (newest first, as (row, origin)): `prefer`'s, else this
    project's own (origin ''), else the newest import."""
    if not rows:
        return None
    if len(rows) == 1:
        return rows[0]
    for wanted in (prefer, ""):
        for row in rows:
            if wanted is not None and row[1] == wanted:
                return row
    return rows[0]


class Store:
    """The SQLite database behind a Lab: cache rows, call rows, reservations, price tables."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = check_path(Path(path))
        self._local = threading.local()
        self._writer = Writer(self.path)
        self.claims: Claims = claims_for(self.path)
        """Request claims: who is sending what now (`mmlab.store.inflight.Claims`)."""
        self._hits_lock = threading.Lock()
        self._hit_rows: list[CallRow | Callable[[], CallRow]] = []
        self._hits_queued = False
        self._hits_timer: threading.Timer | None = None
        self._hits_seen = 0
        check_foreign(self.path)
        self._migrate()
        _STORES.add(self)

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # --- opening ----------------------------------------------------------------------------
    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.path)
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
            refuse_foreign(db, self.path)
            migrations.apply(db, self.path)

        try:
            self._write(run)
        except StorageError as exc:
            raise ConfigError(f"cannot use db {self.path}: {exc}") from None

    # --- transactions -----------------------------------------------------------------------
    def _write(self, fn: Callable[[sqlite3.Connection], T] | Rows, *, light: bool = False) -> T:
        """Run `fn` in the writer's transaction and wait: all of it lands, or none of it
        (`light`: without an fsync, see `mmlab.store.writer`)."""
        future = self._writer.submit(fn, light=light).future
        assert future is not None
        return future.result()

    async def _awrite(
        self, fn: Callable[[sqlite3.Connection], T] | Rows, *, light: bool = False
    ) -> T:
        """`write` for coroutines: the event loop keeps running while SQLite works (or waits
        for another process's lock). Once queued the write lands, even if the awaiting task
        is cancelled (see `mmlab.store.writer.Job`)."""
        future = self._writer.submit(fn, light=light).future
        assert future is not None
        return await asyncio.wrap_future(future)

    def _write_behind(self, fn: Callable[[sqlite3.Connection], Any] | Rows) -> None:
        """Queue a light `fn` without waiting (what spends nothing: hit rows, releases)."""
        self._writer.submit(fn, wait=False, light=True)

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
            raise storage_error(self.path, exc) from None

    def _log_read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.flush()
        return self._read(sql, args)

    def _log_query(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        # _log_read for a query that lives in a helper module: flush, then read on this
        # thread's connection, failures mapped as _read maps them
        self.flush()
        try:
            return fn(self._reader())
        except sqlite3.OperationalError as exc:
            raise storage_error(self.path, exc) from None

    # --- cache ------------------------------------------------------------------------------
    def cache_get(
        self, key: str, *, imports: bool = True, prefer: str | None = None
    ) -> tuple[dict[str, Any], str | None] | None:
        """The cached response for `key` and where it came from (None: made here; else the
        bundle it was imported from). `imports`: whether an imported entry may answer (a
        live call's may not, by default). Several entries for one key: `prefer`'s (a
        replayed notebook's own bundle), else this project's own, else the newest import."""
        cursor = getattr(self._local, "cursor", None)
        if cursor is None or cursor.connection is not self._reader():
            # one cursor per thread for the hot path: a fresh one per lookup costs ~2 µs
            cursor = self._local.cursor = self._reader().cursor()
        rows = cursor.execute(_CACHE_GET[imports], (key,)).fetchall()
        row = _pick(rows, prefer)
        return (jsonfast.loads(row[0]), row[1] or None) if row is not None else None

    def cache_get_many(
        self, keys: Iterable[str], *, imports: bool = True, prefer: str | None = None
    ) -> dict[str, tuple[dict[str, Any], str | None]]:
        """`cache_get` for many keys at once (one query per 900 keys)."""
        rows: dict[str, list[tuple[str, str]]] = {}
        only_own = "" if imports else " AND origin = ''"
        for chunk in _chunks(list(keys), 900):
            marks = ",".join("?" * len(chunk))
            for key, response, origin in self._read(
                f"SELECT key, response, origin FROM cache WHERE key IN ({marks}){only_own} "
                "ORDER BY rowid DESC",
                chunk,
            ):
                rows.setdefault(key, []).append((response, origin))
        found: dict[str, tuple[dict[str, Any], str | None]] = {}
        for key, candidates in rows.items():
            response, origin = _pick(candidates, prefer)  # type: ignore[misc]
            found[key] = (jsonfast.loads(response), origin or None)
        return found

    def cache_keys(self, keys: Iterable[str], *, imports: bool = True) -> set[str]:
        """Which of `keys` have a cached response (`imports`: counting imported entries),
        without reading the responses."""
        found: set[str] = set()
        only_own = "" if imports else " AND origin = ''"
        for chunk in _chunks(list(keys), 900):
            marks = ",".join("?" * len(chunk))
            stored = {
                k for (k,) in self._read(
                    f"SELECT key FROM cache WHERE key IN ({marks}){only_own}", chunk
                )
            }  # fmt: skip
            # keep the caller's key objects, not fresh copies from the database
            found.update(k for k in chunk if k in stored)
        return found

    def cache_candidates(
        self, endpoint: str, model: str, tag: str | None = None
    ) -> tuple[list[str], bool]:
        """Stored key material to explain a replay miss with, and whether it is `tag`'s own:
        the entries calls tagged `tag` (or below) used, of this endpoint and model — a sweep
        cell's neighbours, not an unrelated prompt —, else every entry of the endpoint and
        model, else any entry."""
        if tag is not None:
            inside, args = in_scope("tag", tag)
            rows = self._log_read(
                "SELECT request FROM cache WHERE endpoint = ? AND model = ? AND key IN "
                f"(SELECT cache_key FROM calls WHERE {inside} AND cache_key IS NOT NULL) "
                "LIMIT 5000",
                (endpoint, model, *args),
            )
            if rows:
                return [r[0] for r in rows], True
        rows = self._read(
            "SELECT request FROM cache WHERE endpoint = ? AND model = ? LIMIT 5000",
            (endpoint, model),
        )
        if not rows:
            rows = self._read("SELECT request FROM cache LIMIT 5000")
        return [r[0] for r in rows], False

    def cache_put(self, entries: Sequence[CacheEntry], *, replace: bool = False) -> int:
        """Insert cache entries in one transaction (existing keys are kept unless `replace`);
        returns how many were added."""
        verb = "INSERT OR REPLACE " if replace else "INSERT OR IGNORE "

        def txn(db: sqlite3.Connection) -> int:
            before = db.total_changes
            db.executemany(verb + INSERT_CACHE, [cache_values(e) for e in entries])
            return db.total_changes - before

        return self._write(txn)

    def cache_entries(
        self, tag: str, since: float | None = None
    ) -> tuple[list[CacheEntry], int]:
        """The cache entries successful calls tagged `tag` (or below it) used — the very
        entry that answered each (this project's own or an import's) — sorted by key, and
        how many such calls' entries are gone (cleared since). `since`: only calls logged
        at or after that time (one recording's calls, not the tag's whole history)."""
        where, args = tag_filter("tag", tag)
        if since is not None:
            where, args = f"{where} AND ts >= ?", [*args, since]
        used = self._log_read(
            f"SELECT DISTINCT cache_key, origin FROM calls {where} AND cache_key IS NOT NULL "
            "AND error IS NULL",
            args,
        )
        entries: dict[tuple[str, str], CacheEntry] = {}
        missing = 0
        for key, origin in used:
            rows = self._read(
                f"SELECT {', '.join(CACHE_COLUMNS)} FROM cache WHERE key = ? ORDER BY rowid DESC",
                (key,),
            )
            # the entry the call used; rows logged before origins were (m006): its own first
            row = _pick([(r, r[-1]) for r in rows], origin or "")
            if row is None:
                missing += 1
                continue
            entry = CacheEntry(*row[0][:-1], row[0][-1] or None)  # type: ignore[index]
            entries[(entry.key, row[1])] = entry  # type: ignore[index]
        return sorted(entries.values(), key=lambda e: (e.key, e.origin or "")), missing

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
            sql, args = "DELETE FROM cache WHERE origin != ''", ()
        elif tag is None:
            sql, args = "DELETE FROM cache", ()
        else:
            inside, targs = in_scope("tag", tag)
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
    def _commit_call_txn(row: CallRow, entry: CacheEntry | None, release: str | None) -> Rows:
        return Rows(
            [call_values(row)],
            [cache_values(entry)] if entry is not None else [],
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
        """Queue the row of a failed call that spent nothing and its reservation's release
        (written behind: a cancelled task must not wait on the database)."""
        self._write_behind(self._commit_call_txn(row, None, release))

    def append_calls(self, rows: Iterable[CallRow], *, chunk: int = 50_000) -> int:
        """Append log rows in bulk (a transaction per `chunk` rows) and return how many: a
        log carried over from elsewhere, or a benchmark's million-call history. The roll-up
        triggers keep the usage summary in step, as for rows the engine writes."""
        n = 0
        batch: list[tuple[Any, ...]] = []
        for row in rows:
            batch.append(call_values(row))
            if len(batch) >= chunk:
                self._write(lambda db, b=batch: insert_many(db, INSERT_CALL, b))
                n, batch = n + len(batch), []
        if batch:
            self._write(lambda db: insert_many(db, INSERT_CALL, batch))
            n += len(batch)
        return n

    def log_hits(self, rows: Sequence[CallRow | Callable[[], CallRow]]) -> None:
        """Queue the log rows of cache hits (written behind: they spend nothing). A row may
        be given as a function that builds it: it is called when the rows are written, so
        assembling it is off the hit's path too (it must read nothing that can change).

        Rows gather in memory and are written together when the hits pause (no hit for
        `HIT_IDLE_S`), when `HIT_BATCH` are waiting, before any read of the log, and at exit.
        Writing while hits keep coming made each hit pay for the writer's work beside it (on
        2 cores, a third of a hit's time); a burst's rows now land in the pause after it. A
        hard kill loses at most the current burst's hit rows: never a paid call, a cache
        entry or money.
        """
        with self._hits_lock:
            self._hit_rows += rows
            self._hits_seen += 1
            if self._hits_queued or not self._hit_rows:
                return
            if len(self._hit_rows) < HIT_BATCH:
                if self._hits_timer is None:
                    self._arm_hits_timer(HIT_IDLE_S)
                return
            self._hits_queued = True
        self._write_behind(self._write_hits)

    def _arm_hits_timer(self, delay: float) -> None:
        # the timer checks whether any hit came in the meantime (a counter, not a clock read
        # per hit: this is on every hit's path)
        self._hits_timer = threading.Timer(delay, self._hits_due, (self._hits_seen,))
        self._hits_timer.daemon = True
        self._hits_timer.start()

    def _hits_due(self, seen: int) -> None:
        with self._hits_lock:
            self._hits_timer = None
            if self._hits_queued or not self._hit_rows:
                return
            if self._hits_seen != seen:
                self._arm_hits_timer(HIT_IDLE_S)  # hits came meanwhile: look again later
                return
            self._hits_queued = True
        self._write_behind(self._write_hits)

    def _write_hits(self, db: sqlite3.Connection) -> None:
        with self._hits_lock:
            rows, self._hit_rows = self._hit_rows, []
            self._hits_queued = False
            if self._hits_timer is not None:
                self._hits_timer.cancel()
                self._hits_timer = None
        try:
            if rows:
                insert_many(db, INSERT_CALL, [
                    call_values(r if isinstance(r, CallRow) else r()) for r in rows
                ])  # fmt: skip
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
        self, by: str | Sequence[str], scope: str | None = None, *, hit_tokens: bool = False
    ) -> pd.DataFrame:
        """Totals of the log grouped `by` one or more of day | model | tag | endpoint |
        provider: calls, hits, errors, tokens, spent and saved USD (read from the roll-up,
        not the log). `hit_tokens`: also the tokens of the cache hits alone
        (``hit_prompt_tokens``, ``hit_completion_tokens``: what repricing needs)."""
        import pandas as pd

        keys = [by] if isinstance(by, str) else list(by)
        bad = [k for k in keys if k not in SUMMARY_GROUPS]
        if not keys or bad or len(set(keys)) != len(keys):
            raise RequestError(
                f"by must be one or more of {', '.join(SUMMARY_GROUPS)}; got {by!r}", "by"
            )
        where, args = tag_filter("tag", scope)
        columns = (*ROLLUP_SUMS, *HIT_SUMS) if hit_tokens else ROLLUP_SUMS
        sums = ", ".join(f"SUM({c}) AS {c}" for c in columns)
        order = ", ".join(str(i + 1) for i in range(len(keys)))
        rows = self._log_read(
            f"SELECT {', '.join(keys)}, {sums} FROM usage_rollup {where} "
            f"GROUP BY {order} ORDER BY {order}",
            args,
        )
        df = pd.DataFrame.from_records(rows, columns=[*keys, *columns])
        if "day" in keys and len(df):
            df["day"] = pd.to_datetime(df["day"] * 86400, unit="s", utc=True).dt.strftime(
                "%Y-%m-%d"
            )
        return df

    def last_errors(self, scope: str, keys: set[str]) -> dict[str, str]:
        """For cache keys with no successful response: the error of their last attempt.

        An attempt that was interrupted (cancelled) or later succeeded clears the error, so
        a cell counts as failed only when its last real attempt failed; a failed attempt a
        retry followed (``retried``) is not a call's outcome.
        """
        where, args = tag_filter("tag", scope)
        errors: dict[str, str] = {}
        for key, error, error_type in self._log_read(
            f"SELECT cache_key, error, error_type FROM calls {where} "
            "AND cache_status NOT IN ('hit', 'retried') ORDER BY ts, call_id",
            args,
        ):
            if key not in keys:
                continue
            if error is None or error_type == "cancelled":
                errors.pop(key, None)
            else:
                errors[key] = error
        return errors

    def live_calls(self, scope: str | None, since: float) -> tuple[int, float]:
        """(calls sent, USD spent) under tag `scope` logged at or after `since`: every call
        that went to an endpoint (cache hits not), and everything it spent — retried
        attempts' charges included."""
        where, args = tag_filter("tag", scope)
        sent, spent = self._log_read(
            "SELECT COALESCE(SUM(cache_status NOT IN ('hit', 'retried')), 0), "
            f"COALESCE(SUM(spent_usd), 0) FROM calls {where} AND ts >= ?",
            [*args, since],
        )[0]
        return int(sent), float(spent)

    def length_observations(
        self, model: str, endpoint: str
    ) -> list[tuple[int | None, int, bool, int]]:
        """What logged paid calls to `model` at `endpoint` wrote: rows of (``max_tokens`` —
        None without one —, completion tokens, cut at the cap — finish reason ``length``,
        so the length is a lower bound —, how many calls). Successful calls only; cache hits
        and replies whose usage a provider's response cache zeroed are not observations."""
        rows = self._log_read(
            "SELECT json_extract(params, '$.max_tokens'), completion_tokens, "
            "COALESCE(finish_reason = 'length', 0), COUNT(*) "
            "FROM calls WHERE model = ? AND endpoint = ? AND error IS NULL "
            "AND cache_status NOT IN ('hit', 'retried') AND completion_tokens IS NOT NULL "
            "AND COALESCE(cost_source, '') != 'provider_cache' GROUP BY 1, 2, 3",
            (model, endpoint),
        )
        return [(cap, int(tokens), bool(cut), int(n)) for cap, tokens, cut, n in rows]

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
            # only this project's own entry: an import's figures are its author's
            row = db.execute(
                "SELECT response FROM cache WHERE key = ? AND origin = ''", (cache_key,)
            ).fetchone()
            if row is not None:
                response = jsonfast.loads(row[0])
                response.update(cost_usd=cost, cost_source="billed", price_ref=None)
                db.execute(
                    "UPDATE cache SET response = ? WHERE key = ? AND origin = ''",
                    (jsonfast.dumps(response), cache_key),
                )

        self._write(txn)

    # --- the generation ledger (its SQL: generations.py) -----------------------------------
    def unreconciled_calls(self, endpoint: str, scope: str | None) -> pd.DataFrame:
        """Paid calls under tag `scope` — answered calls, and failed attempts that were
        charged — with a generation id and no generation record yet: what the reply said of
        each (tokens, cost, provider, model, finish, error), to compare with
        ``GET /generation``."""
        return self._log_query(lambda db: generations.unreconciled_calls(db, endpoint, scope))

    def put_generations(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Store generation records (`GENERATION_COLUMNS` each), one transaction."""
        if not rows:
            return
        self._write(lambda db: generations.put_generations(db, rows))

    def generations_frame(self, scope: str | None) -> pd.DataFrame:
        """Every call under tag `scope` that has a generation record, joined with it: the
        log's figures beside OpenRouter's (``native_*``, ``total_cost``, ``cache_discount``,
        timings) and the ``disagreements`` found."""
        return self._log_query(lambda db: generations.generations_frame(db, scope))

    def spent_between(self, start: float, end: float, endpoint: str) -> tuple[float, int]:
        """USD spent by calls to `endpoint` (its identity) logged in [start, end], any tag,
        and how many calls that was: what that endpoint's key should have grown by meanwhile
        (calls to other endpoints are billed elsewhere, if at all)."""
        return self._log_query(lambda db: generations.spent_between(db, start, end, endpoint))

    # --- budget -----------------------------------------------------------------------------
    def spent(self, scope: str | None) -> float:
        """USD spent by logged calls under tag `scope` (None means the whole database)."""
        where, args = tag_filter("tag", scope)
        sql = f"SELECT COALESCE(SUM(spent_usd), 0) FROM usage_rollup {where}"
        return float(self._log_read(sql, args)[0][0])

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
        return self._write(lambda db: add_reservation(db, rid, tag, usd, limits), light=True)

    async def areserve(
        self, tag: str | None, usd: float, limits: Sequence[tuple[str | None, float]]
    ) -> str:
        """`reserve` for coroutines. If the awaiting task is cancelled, a reservation that
        lands anyway is released behind it (never held by a call that will not be made)."""
        rid = new_id()
        try:
            return await self._awrite(
                lambda db: add_reservation(db, rid, tag, usd, limits), light=True
            )
        except asyncio.CancelledError:
            self.release_behind(rid)  # queued after the reservation: undoes it if it landed
            raise

    def release(self, rid: str) -> None:
        """Drop a reservation whose call ended without a log row."""
        self._write(lambda db: drop_reservation(db, rid))

    def release_behind(self, rid: str) -> None:
        """Queue the release of a reservation (idempotent)."""
        self._write_behind(lambda db: drop_reservation(db, rid))

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


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
