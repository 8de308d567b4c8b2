"""Sweep benchmarks (a script, not a test): prints figures measured in one run.

1. A 10,000-cell sweep replayed entirely from the cache into ``res.df`` (goal: <= 1 s).
2. 1,000 cells at concurrency 50 against a server (another process) that answers after
   200 ms: wall time against the ideal 1000 / 50 * 0.2 = 4.0 s (goal: <= 1.1x).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import fill_cache

from mmlab import Lab, grid


def replay_10k(tmp: Path) -> dict[str, float]:
    lab = Lab(base_url="http://127.0.0.1:9/v1", db=tmp / "replay.db", quiet=True)
    prompts = [f"Question {i}: what is {i} + {i}?" for i in range(100)]
    sweep = lab.sweep(
        prompts,
        grid(temperature=[0.0, 0.5, 1.0, 1.5, 2.0], max_tokens=[128, 256, 512, 1024]),
        repeats=5,
        tag="bench",
    )
    assert len(sweep) == 10_000
    fill_cache(lab, (c.call for c in sweep.cells))  # what a live run would have left
    replay = Lab(base_url="http://127.0.0.1:9/v1", db=tmp / "replay.db", cache="replay", quiet=True)
    started = time.perf_counter()
    sweep = replay.sweep(
        prompts,
        grid(temperature=[0.0, 0.5, 1.0, 1.5, 2.0], max_tokens=[128, 256, 512, 1024]),
        repeats=5,
        tag="bench",
    )
    built = time.perf_counter()
    res = sweep.run(progress=False)
    took = time.perf_counter() - started
    assert len(res.df) == 10_000 and res.df["cache_hit"].all()
    return {
        "cells": 10_000,
        "seconds": took,
        "us_per_cell": took / 10_000 * 1e6,
        "build_seconds": built - started,
    }


RAW_1K = """
import asyncio, httpx, sys, time
async def main(url):
    # raw httpx as mmlab configures it: 4 pools round robin, the same limits
    clients = [httpx.AsyncClient(limits=httpx.Limits(max_connections=256,
               max_keepalive_connections=64), timeout=60, trust_env=False) for _ in range(4)]
    gate = asyncio.Semaphore(50)
    async def one(i):
        async with gate:
            r = await clients[i % 4].post(url + "/chat/completions", json={"model": "m",
                "messages": [{"role": "user", "content": f"cell {i}"}], "max_tokens": 64})
            r.json()
    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(1000)))
    print(time.perf_counter() - started)
asyncio.run(main(sys.argv[1]))
"""


def concurrency_1k(tmp: Path) -> dict[str, float]:
    fast = Path(__file__).with_name("fast_server.py")
    server = subprocess.Popen(
        [sys.executable, str(fast), "--delay", "0.2"], stdout=subprocess.PIPE, text=True
    )
    try:
        url = server.stdout.readline().strip()
        raw = float(
            subprocess.run(
                [sys.executable, "-c", RAW_1K, url], capture_output=True, text=True, check=True
            ).stdout
        )
        lab = Lab(
            base_url=url, api_key="sk-bench-not-a-real-key-000000", db=tmp / "c.db", quiet=True
        )
        sweep = lab.sweep([f"cell {i}" for i in range(1000)], grid(max_tokens=[64]), tag="c50")
        started = time.perf_counter()
        res = sweep.run(concurrency=50, progress=False)
        took = time.perf_counter() - started
        assert res.complete
    finally:
        server.terminate()
        server.wait()
    return {
        "cells": 1000,
        "seconds": took,
        "ideal_seconds": 4.0,
        "ratio": took / 4.0,
        "raw_seconds": raw,
    }


def main() -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        a = replay_10k(Path(tmp))
        print(
            f"replay 10,000 cells into res.df: {a['seconds']:.2f} s "
            f"({a['us_per_cell']:.0f} us/cell; building cells {a['build_seconds']:.2f} s)"
            f" — goal <= 1 s"
        )
        b = concurrency_1k(Path(tmp))
        print(
            f"1,000 cells, concurrency 50, 200 ms server: {b['seconds']:.2f} s vs ideal 4.0 s "
            f"= {b['ratio']:.2f}x (raw httpx as mmlab configures it: {b['raw_seconds']:.2f} s) "
            "— goal <= 1.1x"
        )
    return {"sweep_replay_10k": a, "sweep_concurrency_1k": b}


if __name__ == "__main__":
    main()
