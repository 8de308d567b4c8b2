"""`import mmlab` time, and the usage summary over 1,000,000 logged calls.

Import time is measured in fresh interpreters (median of 5), minus the bare interpreter's
start-up. The summary is `lab.summary(by=...)` over a million synthetic rows, for every grouping.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mmlab import Lab
from mmlab.store import CallRow

ROWS = 1_000_000


def import_seconds(statement: str) -> float:
    # bytecode written and reused, as after any install: with PYTHONDONTWRITEBYTECODE set
    # (some shells set it) every run would recompile mmlab and time the compiler instead
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def run(code: str) -> float:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)",
            ],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        return float(out.stdout)

    run(statement)  # writes the bytecode
    return statistics.median(run(statement) for _ in range(5))


def summary_seconds(tmp: Path) -> dict[str, float]:
    lab = Lab(base_url="http://127.0.0.1:9/v1", db=tmp / "big.db", quiet=True)
    rng = random.Random(0)
    t0 = time.time() - 86400 * 60
    models = ["minimax/minimax-m1", "deepseek/deepseek-r1"]

    def rows():
        for i in range(ROWS):
            hit = rng.random() < 0.3
            cost = rng.random() * 0.01
            row = {
                "call_id": f"{i:020d}",
                "ts": t0 + i * 5,
                "tag": f"study-{i % 17}",
                "cache_key": f"{i:064x}",
                "cache_status": "hit" if hit else "miss",
                "endpoint": "https://openrouter.ai/api/v1",
                "model": models[i % 2],
                "sample": 0,
                "params": '{"max_tokens":4096}',
                "prompt_tokens": 500,
                "completion_tokens": 3000,
                "reasoning_tokens": 2500,
                "cached_tokens": 0,
                "cost_usd": cost,
                "spent_usd": 0.0 if hit else cost,
                "saved_usd": cost if hit else 0.0,
                "cost_source": "billed",
                "latency_s": 12.0,
                "retries": 0,
                "status": 200,
            }
            yield CallRow(**row)

    # Filled in bulk through the store, as a long-lived log would be: its triggers keep the
    # usage roll-up that the summary reads.
    assert lab.engine.store.append_calls(rows()) == ROWS
    out = {}
    for by in ("day", "model", "tag", "endpoint", "provider"):
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            df = lab.summary(by=by)
            best = min(best, time.perf_counter() - started)
        assert df["calls"].sum() == ROWS
        out[by] = best
    return out


def main() -> dict[str, float]:
    base = import_seconds("pass")
    plain = import_seconds("import mmlab") - base
    lab = import_seconds("from mmlab import Lab") - base
    print(
        f"import mmlab: {plain * 1000:.0f} ms; from mmlab import Lab: {lab * 1000:.0f} ms "
        "(goal <= 300 ms; pandas, httpx and plotly load on first use)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        summary = summary_seconds(Path(tmp))
    print(
        f"usage summary over {ROWS:,} logged calls: "
        + ", ".join(f"by {k} {v * 1000:.1f} ms" for k, v in summary.items())
        + " (goal <= 1 s)"
    )
    return {
        "import_mmlab_s": plain,
        "import_lab_s": lab,
        **{f"summary_by_{k}_s": v for k, v in summary.items()},
    }


if __name__ == "__main__":
    main()
