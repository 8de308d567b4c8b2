"""Budget reservations: the check-and-reserve step that keeps concurrent callers under every
cap, releases, and reaping the reservations of processes that died mid-call. Each function
runs inside the writer's transaction on the connection it is given."""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from collections.abc import Sequence

from ..errors import BudgetExceeded
from .scopes import tag_filter

_HOST = socket.gethostname()


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
