"""Forecast calibration: a sweep's forecast expected cost against the actual cost of the same
sweep, per model and ``max_tokens``, on the stand-in and on the embedded model.

For each (model, ``max_tokens``): a first sweep logs N comparable calls (same model, endpoint
and ``max_tokens``; other prompts), then a second sweep is forecast and run, and the forecast's
expected USD is set against what the second sweep's tokens cost. Both are priced at MiniMax
M1's list prices — the stand-in bills at them, and the embedded model is free, so "what the
same tokens cost on M1" is the figure a forecast there is for (`Forecast.m1_own_lengths_usd`
against `pricing.reprice(res.df, M1)`). Rows with 0 calls logged show the prior; "cut" rows
learn from calls cut at a smaller cap (the censored estimate). Goal: the ratio within ±25%
once 20 comparable calls are logged.

The stand-in's replies have lengths fixed per request (`StandIn(lengths=...)`), different for
each model and spread over the prompts, so expected and actual are known; the embedded model
(SmolLM2-135M on llama.cpp, 2 cores) writes what it writes: a few dozen short calls.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

M1 = "minimax/minimax-m1"
R1 = "deepseek/deepseek-r1"
#: Completion lengths the stand-in's models run to before max_tokens cuts them: a base per
#: model, spread over ±40% by the prompt.
BASE_LENGTH = {M1: 1800, R1: 700}
LOGGED = 20
FORECAST = 20
#: Calls each embedded forecast is checked on (llama.cpp on 2 cores: kept short).
LOCAL_RUN = 12


def _length(body: dict[str, Any]) -> int:
    prompt = body["messages"][-1]["content"]
    spread = hashlib.sha256(prompt.encode()).digest()[0] / 255  # 0..1, fixed per prompt
    return int(BASE_LENGTH[body["model"]] * (0.6 + 0.8 * spread))


def _row(where: str, model: str, cap: int, logged: str, f: Any, df: Any) -> dict[str, Any]:
    from mmlab.pricing import reprice

    actual = float(reprice(df, M1).sum())
    expected = f.m1_own_lengths_usd
    return {
        "where": where,
        "model": model,
        "max_tokens": cap,
        "logged": logged,
        "method": f.lengths[0]["method"],
        "expected_tokens": f.expected_completion_tokens,
        "actual_tokens": int(df["completion_tokens"].sum()),
        "expected_usd": expected,
        "actual_usd": actual,
        "ratio": expected / actual if actual else float("nan"),
        "calls": len(df),
    }


def _measure(lab: Any, where: str, model: str, cap: int, seen: list[str], learn_cap: int | None,
             run: list[str], tag: str) -> dict[str, Any]:  # fmt: skip
    """Log `seen` at `learn_cap` (default `cap`), then forecast and run `run` at `cap`."""
    from mmlab import grid

    if seen:
        lab.sweep(seen, grid(max_tokens=[learn_cap or cap]), model=model,
                  tag=f"{tag}-learn").run(progress=False)  # fmt: skip
    sweep = lab.sweep(run, grid(max_tokens=[cap]), model=model, tag=f"{tag}-run")
    f = sweep.forecast()
    res = sweep.run(progress=False)
    logged = f"{len(seen)} cut at {learn_cap}" if learn_cap and seen else str(len(seen))
    return _row(where, model, cap, logged, f, res.df)


def standin_rows() -> list[dict[str, Any]]:
    """Calibration on the stand-in (fixed lengths per request, two models)."""
    from mmlab import Lab
    from mmlab.endpoints import OpenRouter
    from mmlab.testing import StandIn

    prompts = [f"How many steps does puzzle number {i} take?" for i in range(LOGGED + FORECAST)]
    seen, run = prompts[:LOGGED], prompts[LOGGED:]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, StandIn(lengths=_length) as server:
        for model in (M1, R1):
            for cap in (1024, 4096):
                for learn, learn_cap in (([], None), (seen, None), (seen, 256)):
                    db = Path(tmp) / f"{model.replace('/', '_')}-{cap}-{len(learn)}-{learn_cap}.db"
                    lab = Lab(endpoint=OpenRouter(server.url, "sk-bench-not-a-key"), db=db,
                              quiet=True)  # fmt: skip
                    rows.append(_measure(lab, "stand-in", model, cap, learn, learn_cap, run,
                                         f"cal-{cap}"))  # fmt: skip
                    lab.close()
    return rows


def embedded_rows() -> list[dict[str, Any]]:
    """Calibration on the embedded model: a few dozen short calls (2 cores)."""
    from mmlab import Lab
    from mmlab.problems import load_problems

    # every level in both halves: the problem set is ordered by difficulty, and calls learned
    # from easy problems would forecast hard ones short
    problems = load_problems()["prompt"].tolist()
    seen = problems[0::2][:LOGGED]
    run = problems[1::2][:LOCAL_RUN]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        lab = Lab(db=Path(tmp) / "local.db", quiet=True)
        for cap in (48, 160):
            rows.append(_measure(lab, "embedded", lab.model, cap, seen, None, run,
                                 f"local-{cap}"))  # fmt: skip
        lab.close()
    return rows


def table(rows: list[dict[str, Any]]) -> list[str]:
    """The rows as a markdown table."""
    lines = [
        "| where | model | max_tokens | comparable calls logged | lengths from | calls run | "
        "completion tokens expected / actual | USD expected / actual (M1 list prices) | "
        "ratio | within ±25% |",
        "|---|---|---:|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        warm = r["logged"] == str(LOGGED)  # the goal is for 20 comparable calls logged
        ok = abs(r["ratio"] - 1) <= 0.25
        met = ("yes" if ok else "**no**") if warm else ("(yes)" if ok else "(no)")
        lines.append(
            f"| {r['where']} | {r['model']} | {r['max_tokens']:,} | {r['logged']} | "
            f"{r['method']} | {r['calls']} | {r['expected_tokens']:,} / {r['actual_tokens']:,} | "
            f"${r['expected_usd']:.4f} / ${r['actual_usd']:.4f} | {r['ratio']:.2f} | {met} |"
        )
    return lines


def section(rows: list[dict[str, Any]]) -> list[str]:
    """The RESULTS.md section: what was measured, and the table."""
    return [
        "## Forecast calibration (`bench/forecast_calibration.py`)",
        "",
        "A sweep's forecast expected cost against the actual cost of the same sweep, per model "
        "and `max_tokens`: a first sweep logs the comparable calls (same model, endpoint and "
        "`max_tokens`, other prompts), then a second is forecast and run. Both priced at "
        "MiniMax M1's list prices (the stand-in bills at them; on the free embedded model, "
        "what the same tokens cost on M1). Stand-in replies run to a length fixed per request "
        "(per model, spread ±40% over the prompts); the embedded model is SmolLM2-135M on 2 "
        "cores. Goal: within ±25% once 20 comparable calls are logged (\"yes\"/\"**no**\"); "
        "rows with 0 logged show the prior (60% of `max_tokens`) and rows logged at a smaller "
        "cap the censored estimate — shown in parentheses, outside the goal.",
        "",
        *table(rows),
    ]


def main() -> list[dict[str, Any]]:
    """Measure every row; print the table."""
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # axes that change nothing on a fixed-length stand-in
        rows = standin_rows() + embedded_rows()
    print("\n".join(table(rows)))
    print(f"({time.perf_counter() - started:.0f} s)")
    return rows


if __name__ == "__main__":
    main()
