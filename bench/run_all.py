"""`make bench`: run every benchmark and write bench/RESULTS.md (machine, date, versions).

Each script prints the ratios it measured in this one run; nothing here is a timed test.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import adaptive_sim  # noqa: E402
import cache_hit  # noqa: E402
import client_cpu  # noqa: E402
import forecast_calibration  # noqa: E402
import interval_coverage  # noqa: E402
import local_model  # noqa: E402
import memory  # noqa: E402
import report_bench  # noqa: E402
import startup_and_log  # noqa: E402
import sweep_bench  # noqa: E402
from common import goal_table  # noqa: E402


def _version(name: str) -> str:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "not installed"


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = (
            next(
                int(x.split()[1])
                for x in Path("/proc/meminfo").read_text().splitlines()
                if x.startswith("MemTotal")
            )
            / 2**20
        )
    except (OSError, StopIteration):
        mem = float("nan")
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.platform()}"


HARD_GRID_INTRO = [
    "### A hard grid: arms five points apart",
    "",
    "The same rule on arms at 0.45 / 0.50 / 0.55: how often `decided` certifies a winner "
    "within the fixed design at all, and that it never certifies a wrong one.",
]

COVERAGE_INTRO = [
    "## Intervals at small n (`bench/interval_coverage.py`)",
    "",
    "How often an interval from `mmlab.analysis` contains the POPULATION value (problems drawn "
    "from a Beta population, 8 samples each). Goal: ≥ 0.93 at 10 problems and ≥ 0.94 at 30 "
    "(nominal 0.95) for pass@1, pass@4 and maj@4 (`tests/test_analysis.py` checks the Beta(2, 3) "
    "rows).",
]


def main() -> None:
    results = {}
    for name, mod in [
        ("client", client_cpu),
        ("cache", cache_hit),
        ("sweep", sweep_bench),
        ("startup", startup_and_log),
        ("memory", memory),
        ("local", local_model),
        ("report", report_bench),
    ]:
        print(f"\n== {name} ==", flush=True)
        results[name] = mod.main()
    c, h, s, st, m, lo = (
        results[k] for k in ("client", "cache", "sweep", "startup", "memory", "local")
    )
    raw, plain, lite, mm = (
        c[k]["cpu_ms_per_call"]
        for k in ("raw httpx, mmlab's config", "raw httpx", "litellm", "mmlab")
    )
    rows = [
        (
            "client CPU per call, 2,000 calls @64, cache off, durable log row",
            f"mmlab {mm:.2f} ms · raw httpx as mmlab configures it {raw:.2f} · one-pool httpx "
            f"{plain:.2f} · openai {c['openai SDK']['cpu_ms_per_call']:.2f} · litellm {lite:.2f}",
            f"{mm / raw:.2f}x raw httpx, {mm / lite:.2f}x litellm",
            "≤ 1.2x raw, < 0.5x litellm",
            mm / raw <= 1.2 and mm / lite < 0.5,
        ),
        (
            "calls/s (same run)",
            " · ".join(f"{k} {v['calls_per_s']:.0f}" for k, v in c.items()),
            "",
            "",
            None,
        ),
        (
            "cache hit (lab.chat, result + log row)",
            f"{h['mmlab_hit_us']:.1f} µs · bare lookup {h['bare_us']:.1f} · lookup + json.loads "
            f"{h['bare_json_us']:.1f} · diskcache {h['diskcache_us']:.1f}",
            f"{h['ratio_vs_bare_json']:.1f}x lookup + json.loads "
            f"({h['ratio_vs_bare']:.1f}x the lookup alone)",
            "≤ 4x lookup + json.loads",
            h["ratio_vs_bare_json"] <= 4,
        ),
        (
            "replay 10,000-cell sweep into res.df",
            f"{s['sweep_replay_10k']['seconds']:.2f} s ({s['sweep_replay_10k']['us_per_cell']:.0f} "
            "µs/cell)",
            "",
            "≤ 1 s",
            s["sweep_replay_10k"]["seconds"] <= 1,
        ),
        (
            "1,000 cells @50 vs 200 ms server",
            f"{s['sweep_concurrency_1k']['seconds']:.2f} s vs ideal 4.0 s (raw httpx as mmlab "
            f"configures it: {s['sweep_concurrency_1k']['raw_seconds']:.2f} s)",
            f"{s['sweep_concurrency_1k']['ratio']:.2f}x",
            "≤ 1.1x",
            s["sweep_concurrency_1k"]["ratio"] <= 1.1,
        ),
        (
            "import mmlab / from mmlab import Lab",
            f"{st['import_mmlab_s'] * 1000:.0f} ms / {st['import_lab_s'] * 1000:.0f} ms",
            "",
            "≤ 300 ms",
            st["import_lab_s"] <= 0.3,
        ),
        (
            "usage summary over 1,000,000 calls",
            ", ".join(
                f"{k.split('_')[2]} {v * 1000:.1f} ms"
                for k, v in st.items()
                if k.startswith("summary")
            ),
            "",
            "≤ 1 s",
            max(v for k, v in st.items() if k.startswith("summary")) <= 1,
        ),
        (
            "peak RSS replaying 100,000 cells",
            f"{m['peak_growth_mib']:.0f} MiB for {m['responses_mib']:.0f} MiB of responses",
            f"{m['ratio']:.2f}x",
            "≤ 2x",
            m["ratio"] <= 2,
        ),
        (
            "embedded model tokens/s (mmlab vs bare llama-cpp-python)",
            f"{lo['mmlab_tokens_per_s']:.1f} vs {lo['bare_tokens_per_s']:.1f}",
            f"{lo['ratio']:.2f}x",
            "≥ 0.9x",
            lo["ratio"] >= 0.9,
        ),
        (
            "embedded server cold start / RSS",
            f"{lo['cold_start_s']:.2f} s / {lo['server_rss_mib']:.0f} MiB",
            "",
            "",
            None,
        ),
    ]
    versions = ", ".join(
        f"{p} {_version(p)}"
        for p in ("mmlab", "httpx", "openai", "litellm", "llama_cpp_python", "pandas", "diskcache")
    )
    lines = [
        "# Benchmark results",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC} by `make bench` on {_machine()}.",
        f"Python {platform.python_version()}; {versions}.",
        "",
        "Each figure comes from one run of `bench/run_all.py`; ratios compare figures measured "
        "in that same run. Scripts: `bench/*.py`.",
        "",
        *goal_table(rows),
    ]
    print("\n== adaptive sampling, simulated ==", flush=True)
    lines += [
        "",
        "## Adaptive sampling, simulated (`bench/adaptive_sim.py`)",
        "",
        "A logged full grid (3 arms with accuracy 0.3 / 0.5 / 0.8 over 10 problems of "
        "different difficulty — shared by the arms, or in each arm's own order — every cell "
        "run at every repeat) is resampled as if it were the model, and `mmlab.stop` runs "
        "each rule on it. Goals: coverage ≥ 0.94 (nominal 0.95), "
        "`decided` picks the grid's best arm ≥ 95%, ≤ 50% of the fixed design's calls.",
        "",
        *adaptive_sim.table(adaptive_sim.synthetic_grids(), ["arm"]),
        "",
        *HARD_GRID_INTRO,
        "",
        *adaptive_sim.hard_table(),
        "",
        *report_bench.section(results["report"]),
    ]
    print("\n== interval coverage at small n ==", flush=True)
    lines += ["", *COVERAGE_INTRO, "", *interval_coverage.table()]
    print("\n== forecast calibration ==", flush=True)
    lines += ["", *forecast_calibration.section(forecast_calibration.main())]
    (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n")
    print(f"\nwrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
