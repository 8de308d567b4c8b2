"""Reliability: a fault storm, kill and resume, many writers, budgets under faults (the suite of
issue "prove it").

Counts are printed (``pytest -s`` shows them) and asserted.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter, defaultdict

import pytest
from helpers import FAKE_KEY

from mmlab import Lab, RetryPolicy, grid
from mmlab.testing import FaultRates, StandIn

#: Storms, kills and many writers: each takes seconds (`make test-fast` leaves them out).
pytestmark = pytest.mark.slow

STORM = FaultRates(
    rate_limit=0.20,
    unavailable=0.10,
    drop=0.05,
    error200=0.05,
    midstream=0.05,
    retry_after=0.01,
    seed=7,
)
PATIENT = RetryPolicy(max_retries=20, base_s=0.001, cap_s=0.02)


def _request_id(body: dict) -> str:
    content = {k: v for k, v in body.items() if k != "stream"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


@pytest.mark.timeout(900)
def test_fault_storm_1000_calls(db, capsys):
    with StandIn(rates=STORM, keepalives=1) as server:
        lab = Lab(base_url=server.url, api_key=FAKE_KEY, db=db, quiet=True, retry=PATIENT)
        prompts = [f"storm question {i}" for i in range(250)]
        plain = lab.sweep(prompts, grid(max_tokens=[40, 80]), tag="storm-plain")
        streamed = lab.sweep(prompts, grid(max_tokens=[41, 81]), tag="storm-stream")
        a = plain.run(concurrency=32, progress=False)
        b = streamed.run(concurrency=32, progress=False, stream=True)
        seen, counts = server.seen, server.counts
    assert a.complete and b.complete, "every cell completes"
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM cache").fetchone()[0] == 1000
    # no cell cached twice: exactly one successful live row per cache key
    live_ok = Counter(
        k
        for (k,) in conn.execute(
            "SELECT cache_key FROM calls WHERE error IS NULL AND cache_status = 'miss'"
        )
    )
    assert len(live_ok) == 1000 and set(live_ok.values()) == {1}
    # no request is sent again for a cell after its success (counted at the server)
    by_request = defaultdict(list)
    for s in seen:
        by_request[_request_id(s.body)].append(s.ok)
    assert len(by_request) == 1000
    assert all(oks.count(True) == 1 and oks[-1] for oks in by_request.values())
    faults = len(seen) - 1000
    retries_logged = conn.execute("SELECT SUM(retries) FROM calls").fetchone()[0]
    assert retries_logged == faults == a.stats.retries + b.stats.retries
    assert a.stats.rate_limited + b.stats.rate_limited == counts["http429"]
    for kind in ("http429", "drop", "error200502", "midstream502"):
        assert counts[kind] > 0, kind
    assert counts["http502"] + counts["http503"] > 0
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with capsys.disabled():
        print(
            f"\nfault storm: 1000 cells, {len(seen)} requests, {faults} faults retried "
            f"({dict(sorted(counts.items()))}); lowest concurrency "
            f"{min(a.stats.lowest_concurrency, b.stats.lowest_concurrency)}"
        )


WRITER = textwrap.dedent("""
    import asyncio, sys
    from mmlab import Lab
    url, db, who = sys.argv[1], sys.argv[2], sys.argv[3]
    lab = Lab(base_url=url, api_key="sk-writer-test-key-0000000000", db=db, quiet=True,
              tag=f"writer-{who}")
    async def main():
        sem = asyncio.Semaphore(16)
        async def one(i):
            async with sem:
                await lab.achat(f"writer {who} call {i}", max_tokens=20)
        await asyncio.gather(*(one(i) for i in range(500)))
    asyncio.run(main())
    print("done")
""")


@pytest.mark.timeout(900)
def test_many_writers_lose_nothing(db):
    with StandIn() as server:
        Lab(base_url=server.url, db=db, quiet=True)  # create the schema once
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, server.url, str(db), str(i)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(4)
        ]
        outs = [p.communicate(timeout=800) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0 and out.strip() == "done", err[-2000:]
        assert "locked" not in err
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 2000
    assert conn.execute("SELECT COUNT(*) FROM calls WHERE error IS NOT NULL").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM cache").fetchone()[0] == 2000
    per_writer = dict(conn.execute("SELECT tag, COUNT(*) FROM calls GROUP BY tag").fetchall())
    assert per_writer == {f"writer-{i}": 500 for i in range(4)}
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.timeout(600)
def test_budget_holds_under_concurrency_and_faults(db):
    rates = FaultRates(
        rate_limit=0.15,
        unavailable=0.1,
        drop=0.05,
        error200=0.05,
        midstream=0.05,
        retry_after=0.01,
        seed=3,
    )
    with StandIn(rates=rates) as server:
        lab = Lab(base_url=server.url, api_key=FAKE_KEY, db=db, quiet=True, retry=PATIENT)
        sweep = lab.sweep(
            [f"budgeted {i}" for i in range(200)], grid(max_tokens=[300]), tag="capped"
        )
        cap = sweep.forecast().worst_usd / 200 * 5  # room for five worst cases
        res = sweep.run(concurrency=16, budget_usd=cap, progress=False, stream=True)
        assert res.stats.stopped and res.stats.stopped.startswith("budget")
        spent = lab.spent_usd("capped")
        assert 0 < spent <= cap
        assert lab.engine.store.reservations_held() == 0
        # the bigger budget picks up exactly where the cap stopped
        more = sweep.run(concurrency=16, budget_usd=cap * 100, progress=False)
        assert more.complete


def test_a_writer_holding_the_database_never_stalls_the_event_loop(db, standin):
    """Another process holds SQLite's write lock for 5 s in the middle of a sweep: in-flight
    calls keep going out and coming back, and the event loop never freezes; every row lands
    once the lock is released."""
    lab = Lab(base_url=standin.url, api_key=FAKE_KEY, db=db, quiet=True)
    sweep = lab.sweep([f"held {i}" for i in range(40)], grid(max_tokens=[300]), tag="held")
    held = threading.Event()

    def hold() -> None:
        holder = sqlite3.connect(db, timeout=60, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # the write lock, as a long transaction elsewhere
        held.set()
        time.sleep(5.0)  # the scenario itself: a writer that keeps the lock for 5 s
        holder.execute("COMMIT")

    gaps: list[float] = []
    sent_while_held: list[int] = []

    async def main():
        async def heartbeat() -> None:
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        beat = asyncio.ensure_future(heartbeat())
        locker = threading.Thread(target=hold)
        locker.start()
        await asyncio.to_thread(held.wait)
        before = len(standin.seen)
        run = asyncio.ensure_future(sweep.arun(concurrency=4, progress=False))
        await asyncio.to_thread(locker.join)
        sent_while_held.append(len(standin.seen) - before)
        res = await run
        beat.cancel()
        return res

    res = asyncio.run(main())
    assert res.complete and res.stats.sent == 40
    assert sent_while_held[0] >= 4  # calls went out and came back while the lock was held
    assert max(gaps) < 1.0, f"the event loop froze for {max(gaps):.2f} s"
    assert len(lab.calls("held")) == 40


def test_resume_after_a_killed_process(standin, db, tmp_path):
    with StandIn(delay_s=0.05) as slow:
        script = textwrap.dedent(f"""
            from mmlab import Lab, grid
            lab = Lab(base_url={slow.url!r}, api_key="sk-child-process-test-0000", db={str(db)!r},
                      quiet=True)
            sweep = lab.sweep([f"question number {{i}}" for i in range(10)],
                              grid(max_tokens=[50, 300]), repeats=2, tag="killed")
            sweep.run(concurrency=2, progress=False)
        """)
        child = subprocess.Popen([sys.executable, "-c", script])
        try:
            assert slow.wait_for(12, timeout=120), "the child never got going"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        done = conn.execute("SELECT COUNT(*) FROM cache").fetchone()[0]
        assert 0 < done < 40
        slow.reset()
        lab = Lab(base_url=slow.url, api_key=FAKE_KEY, db=db, quiet=True)
        sweep = lab.sweep(
            [f"question number {i}" for i in range(10)],
            grid(max_tokens=[50, 300]),
            repeats=2,
            tag="killed",
        )
        assert (sweep.plan()["status"] == "hit").sum() == done
        res = sweep.run(concurrency=4, progress=False)
        assert len(slow.seen) == 40 - done  # exactly the unfinished cells, counted at the server
        assert res.complete and res.stats.hits == done
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
