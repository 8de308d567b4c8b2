"""What is in flight: budget reservations — the check-and-reserve step that keeps concurrent
callers under every cap, their release, and reaping those of processes that died mid-call
(run inside the writer's transaction on the connection given) — and request claims
(`Claims`): a process sending a request claims its cache key, so another process asking the
same waits for the answer instead of paying for it again.

Claims are locks on one byte each of a side file (``<db>-claims``), taken without waiting
(``fcntl.lockf``), not rows: taking one must not wait for the database's write lock (another
process may hold it for seconds; calls keep going out meanwhile), and the kernel drops a
process's locks when it dies, however it dies — no stale claim outlives its process."""

from __future__ import annotations

import fcntl
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import BudgetExceeded
from .scopes import tag_filter

_HOST = socket.gethostname()


class Claims:
    """The request claims on one database, for this process (see the module docstring). One
    per database file per process (`claims_for`): POSIX drops *all* of a process's locks on a
    file when any of its descriptors of that file closes, so two would undo each other."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + "-claims")
        self._fd: int | None = None
        self._held: set[str] = set()
        self._lock = threading.Lock()

    @staticmethod
    def _offset(key: str) -> int:
        return int(key[:15], 16)  # the key is sha256 hex: 60 bits, a byte each

    def claim(self, key: str) -> bool:
        """Claim `key` for this process: True if it is ours now (or already was), False
        while another process holds it. Never waits."""
        with self._lock:
            if self._fd is None:
                # open while any claim is held, closed with the last: a process touching
                # hundreds of databases keeps no descriptor for those it is not calling
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, self._offset(key))
            except (BlockingIOError, PermissionError):
                self._close_if_idle()
                return False
            self._held.add(key)
            return True

    def release(self, key: str) -> None:
        """End this process's claim on `key` (a no-op if it holds none)."""
        with self._lock:
            if key not in self._held or self._fd is None:
                return
            self._held.discard(key)
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, self._offset(key))
            self._close_if_idle()

    def _close_if_idle(self) -> None:
        if not self._held and self._fd is not None:
            os.close(self._fd)
            self._fd = None


_CLAIMS: dict[tuple[int, Path], Claims] = {}
_CLAIMS_LOCK = threading.Lock()


def claims_for(db_path: Path) -> Claims:
    """The one `Claims` of this process for the database at `db_path` (a forked child makes
    its own: locks are not inherited)."""
    key = (os.getpid(), db_path.resolve())
    with _CLAIMS_LOCK:
        claims = _CLAIMS.get(key)
        if claims is None:
            claims = _CLAIMS[key] = Claims(db_path)
        return claims


def add_reservation(
    db: sqlite3.Connection,
    rid: str,
    tag: str | None,
    usd: float,
    limits: Sequence[tuple[str | None, float]],
) -> str:
    """Reserve `usd` as `rid` for a call tagged `tag` if every (scope, budget) cap in `limits`
    still holds with it (spent + in flight + `usd`), else raise `BudgetExceeded`; returns
    `rid`. Run it inside a write transaction: the check and the insert must be one step."""
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


def drop_reservation(db: sqlite3.Connection, rid: str) -> None:
    """Delete reservation `rid` (a no-op if it is gone or never landed)."""
    db.execute("DELETE FROM reservations WHERE id = ?", (rid,))


def _drop_dead_reservations(db: sqlite3.Connection) -> None:
    # A process killed mid-call leaves its reservation behind; on this host we can tell.
    for rid, pid in db.execute("SELECT id, pid FROM reservations WHERE host = ?", (_HOST,)):
        if not _pid_alive(pid):
            db.execute("DELETE FROM reservations WHERE id = ?", (rid,))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
