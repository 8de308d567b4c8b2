"""Peak memory while replaying a 100,000-cell sweep into a DataFrame.

A child process replays the sweep from the cache; its peak RSS growth over the state just
before the sweep is built is compared with the size of the replayed responses (their JSON).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

CELLS = 100_000
SPEC = """grid(temperature=[0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 0.1],
               max_tokens=[128, 256, 512, 1024, 2048]), repeats=4"""

SETUP = textwrap.dedent(f"""
    import json, sys
    from mmlab import Lab, grid
    from mmlab.result import Response
    from mmlab.store import CacheEntry
    from mmlab.wire import Usage
    lab = Lab(base_url="http://127.0.0.1:9/v1", db=sys.argv[1], quiet=True)
    sweep = lab.sweep([f"question {{i}}: what is {{i}} * 7?" for i in range(500)], {SPEC})
    assert len(sweep) == {CELLS}
    size = 0
    rows = []
    for c in sweep.cells:
        r = Response(content=f"The answer is {{c.index}}.", reasoning="Let me think. " * 40,
                     finish_reason="stop", usage=Usage(30, 200, 180, 0), cost_usd=0.0004,
                     cost_source="billed", latency_s=3.0, model=lab.model)
        text = json.dumps(r.to_dict())
        size += len(text)
        rows.append(CacheEntry(c.call.key, lab.endpoint.identity, lab.model, c.sample,
                               c.call.material_json, text, 0.0))
    lab.engine.store.cache_put(rows)
    print(size)
""")

REPLAY = textwrap.dedent(f"""
    import json, resource, sys, time
    from mmlab import Lab, grid
    import pandas
    def rss_kb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    lab = Lab(base_url="http://127.0.0.1:9/v1", db=sys.argv[1], cache="replay", quiet=True)
    before = rss_kb()
    t = time.perf_counter()
    sweep = lab.sweep([f"question {{i}}: what is {{i}} * 7?" for i in range(500)], {SPEC})
    res = sweep.run(progress=False)
    took = time.perf_counter() - t
    assert len(res.df) == {CELLS} and res.df["cache_hit"].all()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({{"before_kb": before, "peak_kb": peak, "seconds": took}}))
""")


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "replay.db")
        size = int(
            subprocess.run(
                [sys.executable, "-c", SETUP, db], capture_output=True, text=True, check=True
            ).stdout
        )
        out = json.loads(
            subprocess.run(
                [sys.executable, "-c", REPLAY, db], capture_output=True, text=True, check=True
            ).stdout
        )
    growth = (out["peak_kb"] - out["before_kb"]) * 1024
    ratio = growth / size
    print(
        f"replay {CELLS:,} cells into res.df: {out['seconds']:.1f} s; peak RSS growth "
        f"{growth / 2**20:.0f} MiB for {size / 2**20:.0f} MiB of responses = {ratio:.2f}x "
        "(goal <= 2x)"
    )
    return {
        "responses_mib": size / 2**20,
        "peak_growth_mib": growth / 2**20,
        "ratio": ratio,
        "seconds": out["seconds"],
    }


if __name__ == "__main__":
    main()
