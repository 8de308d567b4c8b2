"""Sampling-parameter sweeps: spec → cells → plan → forecast → run → resume → DataFrame.

    sweep = lab.sweep(prompts, grid(temperature=[0.0, 1.0], max_tokens=[256, 1024]),
                      repeats=3, tag="temp-vs-length")
    sweep.plan(); sweep.forecast()
    res = sweep.run(concurrency=8, budget_usd=2.0)
    res.df

    spaces.py    grid / zip_ / random_ parameter spaces
    cells.py     prompts × points × repeats → cells (prepared calls); their status
    forecast.py  calls, tokens and USD before running, each length saying where it came from
    lengths.py   expected completion lengths from the log (censored where a call was cut)
    runner.py    the run: cached cells served, the rest sent concurrently under a budget;
                 with a stopping rule (`mmlab.stop`), in adaptive rounds
    results.py   the result columns, ``res.df`` and `SweepResult`
    spec.py      `Sweep`, the definition bound to an engine
    files.py     sweep files (YAML / TOML)
"""

from __future__ import annotations

from .cells import Cell
from .files import load_sweep_file, stop_from_spec, sweep_from_spec
from .forecast import Forecast
from .results import RunStats, SweepResult
from .spaces import Space, grid, random_, zip_
from .spec import Sweep

__all__ = [
    "Cell",
    "Forecast",
    "RunStats",
    "Space",
    "Sweep",
    "SweepResult",
    "grid",
    "load_sweep_file",
    "random_",
    "stop_from_spec",
    "sweep_from_spec",
    "zip_",
]
