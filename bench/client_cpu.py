"""Client CPU per call and calls/s: mmlab vs raw httpx vs the openai SDK vs litellm.

2,000 chat calls at concurrency 64, cache off, against a fast loopback OpenAI-compatible
server (`bench/fast_server.py`, asyncio) in another process. Each client runs in its own
fresh process; the figure is that process's CPU time (user + system) for the calls, so the
server's work is not counted. Clients run interleaved, five rounds; the median is reported.
Each client is used the way its documentation shows (raw httpx: one AsyncClient).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

CALLS, CONCURRENCY, ROUNDS = 2000, 64, 5

COMMON = textwrap.dedent("""
    import asyncio, json, os, sys, time
    URL, N, C = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    KEY = "sk-bench-not-a-real-key-000000000"
    def body(i):
        return {"model": "minimax/minimax-m1", "max_tokens": 64,
                "messages": [{"role": "user", "content": f"benchmark question {i}"}]}
    async def drive(one):
        sem = asyncio.Semaphore(C)
        async def run(i):
            async with sem:
                await one(i)
        await one(-1)  # warm-up: connection pool, imports, lazy set-up
        t, c = time.perf_counter(), time.process_time()
        await asyncio.gather(*(run(i) for i in range(N)))
        print(json.dumps({"wall": time.perf_counter() - t, "cpu": time.process_time() - c}))
""")

CLIENTS = {
    "raw httpx": """
import httpx
async def main():
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=512,
                                                     max_keepalive_connections=128),
                                 timeout=60) as client:
        async def one(i):
            r = await client.post(URL + "/chat/completions", json=body(i),
                                  headers={"Authorization": "Bearer " + KEY})
            r.raise_for_status()
            data = r.json()
            data["choices"][0]["message"]["content"]
        await drive(one)
asyncio.run(main())
""",
    "raw httpx, mmlab's config": """
import httpx
async def main():
    # what mmlab's client does with httpx: 4 pools used round robin (httpcore scans every
    # pooled connection per request), the same limits, no environment proxies
    clients = [httpx.AsyncClient(limits=httpx.Limits(max_connections=256,
                                                     max_keepalive_connections=64),
                                 timeout=60, trust_env=False) for _ in range(4)]
    turn = [0]
    async def one(i):
        turn[0] = (turn[0] + 1) % 4
        r = await clients[turn[0]].post(URL + "/chat/completions", json=body(i),
                                        headers={"Authorization": "Bearer " + KEY})
        r.raise_for_status()
        data = r.json()
        data["choices"][0]["message"]["content"]
    await drive(one)
asyncio.run(main())
""",
    "openai SDK": """
from openai import AsyncOpenAI
async def main():
    client = AsyncOpenAI(base_url=URL, api_key=KEY, max_retries=0)
    async def one(i):
        r = await client.chat.completions.create(**body(i))
        r.choices[0].message.content
    await drive(one)
asyncio.run(main())
""",
    "litellm": """
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
import litellm
litellm.telemetry = False
async def main():
    async def one(i):
        b = body(i)
        r = await litellm.acompletion(model="openai/minimax-m1", api_base=URL, api_key=KEY,
                                      messages=b["messages"], max_tokens=64)
        r.choices[0].message.content
    await drive(one)
asyncio.run(main())
""",
    "mmlab": """
import tempfile
from mmlab import Lab
lab = Lab(base_url=URL, api_key=KEY, db=tempfile.mkdtemp() + "/bench.db", cache="off",
          quiet=True)
async def main():
    async def one(i):
        b = body(i)
        r = await lab.achat(b["messages"], max_tokens=64)
        r.content
    await drive(one)
asyncio.run(main())
""",
}


def run_client(name: str, url: str) -> dict[str, float]:
    """One client, one fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", COMMON + CLIENTS[name], url, str(CALLS), str(CONCURRENCY)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{name} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> dict[str, dict[str, float]]:
    fast = Path(__file__).with_name("fast_server.py")
    server = subprocess.Popen([sys.executable, str(fast)], stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in CLIENTS}
        for _ in range(ROUNDS):
            for name in CLIENTS:
                samples[name].append(run_client(name, url))
    finally:
        server.terminate()
        server.wait()
    results = {}
    for name, runs in samples.items():
        cpu = statistics.median(r["cpu"] for r in runs)
        wall = statistics.median(r["wall"] for r in runs)
        results[name] = {"cpu_ms_per_call": cpu / CALLS * 1000, "calls_per_s": CALLS / wall}
    raw = results["raw httpx, mmlab's config"]["cpu_ms_per_call"]
    lite = results["litellm"]["cpu_ms_per_call"]
    print(f"{CALLS} calls, concurrency {CONCURRENCY}, cache off, median of {ROUNDS} rounds:")
    for name, r in results.items():
        print(
            f"  {name:25s} {r['cpu_ms_per_call']:6.2f} ms CPU/call  {r['calls_per_s']:7.0f} "
            f"calls/s  ({r['cpu_ms_per_call'] / raw:.2f}x raw httpx as mmlab configures it, "
            f"{r['cpu_ms_per_call'] / lite:.2f}x litellm)"
        )
    print("  goal: mmlab <= 1.2x raw httpx (configured as mmlab does) and < 0.5x litellm")
    return results


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        main()
