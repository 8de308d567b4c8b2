"""Simulation: a rule's coverage, correct picks and savings, before spending money on it.

`simulate` replays a logged full grid (a finished non-adaptive sweep with many repeats per
cell) through the `AdaptiveScheduler` many times, resampling each cell's logged repeats;
`summarize_simulations` reduces its output to rates and shares. `expected_share` is the prior
version for forecasts: the share of the fixed design an adaptive run is expected to sample,
before any data. Both run many schedulers on one validated `Design` through the scheduler's
public `from_design`, `observe_round`/`observe`, `leaves` and `issued`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import RequestError
from ..fields import NOT_PARAMETERS
from ..stop import CIWidth, Decided, Rule, check_metric, norm_by, positive_number
from .scheduler import AdaptiveScheduler
from .tree import Design

if TYPE_CHECKING:
    import pandas as pd


def simulate(
    full: Any,
    rule: Rule,
    *,
    repeats: int,
    metric: str = "score",
    n_sims: int = 1000,
    seed: int = 0,
    by: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Replay a logged full grid through the adaptive scheduler, `n_sims` times.

    `full`: a finished, non-adaptive sweep with many repeats per cell — its `SweepResult`
    (then the parameter columns are the sweep's own), or a DataFrame with columns
    ``prompt_id``, ``sample``, the metric column(s) (in [0, 1]; NaN/None = failed),
    optionally ``cost_usd`` and ``completion_tokens`` (missing ones count as 0), and the
    parameter columns. A cell is (``prompt_id``, parameter point); `by` names the parameter
    columns (default: the sweep's, for a DataFrame every column that is not a known result
    column, see `NOT_PARAMETERS`, nor a metric — pass `by` for a ``res.df``, whose prompt
    columns such as ``answer`` would otherwise count as parameters).

    Each simulation plays the model by resampling, for each cell and each of `repeats`
    repeats, one of that cell's logged rows with replacement (score, cost and tokens
    together), runs an `AdaptiveScheduler` on the result and records, per simulation:
    ``covered`` (every reported CS contains its group's true mean at the stop: the mean over
    the group's cells of the cell's logged mean), ``group_coverage`` (the share of the
    reported CSs that do; for `decided`, the per-arm CSs), ``picked`` / ``correct`` (a
    `decided` rule named a winner / the arm the full grid ranks best; NaN without a `decided`
    rule), ``leader_correct`` (its winner, or failing one the live arm leading by point
    estimate when the run ended -- `AdaptiveScheduler.leader` -- is the full grid's best),
    ``call_share`` and ``token_share`` / ``usd_share`` (used / what the fixed design of
    ``cells x repeats`` would have used in that simulation), ``rounds`` and ``stopped_by``.

    `metric`: the column read for the rules' default metric ``"score"`` (rules naming other
    metrics read the column of that name). Deterministic for a given `seed`.
    Summarise with `summarize_simulations`.
    """
    import pandas as pd

    if isinstance(getattr(full, "df", None), pd.DataFrame) and hasattr(full, "parameters"):
        by = by if by is not None else (list(full.parameters) or None)
        full = full.df
    if not isinstance(full, pd.DataFrame) or not len(full):
        raise RequestError("full must be a non-empty DataFrame of logged results", "full")
    if not isinstance(rule, Rule):
        raise RequestError(f"rule must be a stopping rule, got {rule!r}", "rule")
    if isinstance(n_sims, bool) or not isinstance(n_sims, int | np.integer) or n_sims < 1:
        raise RequestError(f"n_sims must be an integer >= 1, got {n_sims!r}", "n_sims")
    check_metric(metric)
    rule_metrics = list(
        dict.fromkeys(leaf.metric for leaf in rule.leaves() if isinstance(leaf, CIWidth | Decided))
    )
    columns = {m: (metric if m == "score" else m) for m in rule_metrics}
    for c in ("prompt_id", "sample", *columns.values()):
        if c not in full.columns:
            raise RequestError(f"full lacks column {c!r}", "full")
    if by is None:
        skip = NOT_PARAMETERS | set(columns.values()) | {metric}
        points = tuple(c for c in full.columns if c not in skip)
    else:
        points = norm_by(by, required=False) or ()
        for c in points:
            if c not in full.columns:
                raise RequestError(f"by: full has no column {c!r}", "by")
    extra = [
        c
        for leaf in rule.leaves()
        if isinstance(leaf, CIWidth | Decided) and leaf.by is not None
        for c in leaf.by
        if c not in points and c != "prompt_id"
    ]
    key = ["prompt_id", *points, *dict.fromkeys(extra)]

    # logged rows, grouped by cell
    codes = full.groupby(key, dropna=False, sort=False).ngroup().to_numpy()
    order = np.argsort(codes, kind="stable")
    codes_sorted = codes[order]
    n_cells = int(codes.max()) + 1
    counts = np.bincount(codes, minlength=n_cells)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    first = order[offsets]
    logged = {m: _unit_column(full[col].to_numpy()[order], col) for m, col in columns.items()}

    def numeric(col: str) -> np.ndarray:
        if col not in full.columns:
            return np.zeros(len(full))
        return np.nan_to_num(pd.to_numeric(full[col], errors="coerce").to_numpy(float))[order]

    cost, tokens = numeric("cost_usd"), numeric("completion_tokens")

    # the simulated design: cell id = cell index * repeats + sample
    base = full.iloc[first][key].reset_index(drop=True)
    design = base.loc[base.index.repeat(repeats)].reset_index(drop=True)
    design.insert(0, "cell", np.arange(len(design)))
    design["sample"] = np.tile(np.arange(repeats), n_cells)
    template = AdaptiveScheduler(design, rule, repeats=repeats, point_columns=points)

    # true group means and the full grid's best arm, per CS rule
    truths = []
    for leaf in template.leaves:
        cell_mean = _nan_group_mean(logged[leaf.metric], codes_sorted, n_cells)
        labels = leaf.groups.labels[::repeats]  # one row per cell (sample 0 is first)
        group_true = _nan_group_mean(cell_mean, labels, leaf.groups.count)
        best = None
        if leaf.kind == "decided":
            maximize = leaf.rule.maximize  # type: ignore[union-attr]
            best = int(np.nanargmax(group_true) if maximize else np.nanargmin(group_true))
        truths.append((group_true, best))

    rng = np.random.default_rng(seed)
    rows = []
    for sim in range(int(n_sims)):
        pick = offsets[:, None] + (rng.random((n_cells, repeats)) * counts[:, None]).astype(
            np.int64
        )
        pick = pick.ravel()  # position = cell id = cell index * repeats + sample
        values = {m: v[pick] for m, v in logged.items()}
        usd, tok = cost[pick], tokens[pick]
        s = AdaptiveScheduler.from_design(template.design)
        while s.next_round():
            s.observe_round(values, usd)
        oks = []
        picked = correct = leader = math.nan
        for leaf, (group_true, best) in zip(s.leaves, truths, strict=True):
            oks.append(np.isnan(group_true) | ((leaf.lo <= group_true) & (group_true <= leaf.hi)))
            if best is not None and math.isnan(picked):
                picked = float(leaf.winner is not None)
                correct = float(leaf.winner == best)
                leader = float(leaf.leader() == best)
        used = s.issued
        tok_total, usd_total = tok.sum(), usd.sum()
        rows.append(
            {
                "sim": sim,
                "rounds": s.round,
                "stopped_by": s.stopped_by,
                "covered": bool(all(ok.all() for ok in oks)),
                "group_coverage": float(np.concatenate(oks).mean()) if oks else math.nan,
                "picked": picked,
                "correct": correct,
                "leader_correct": leader,
                "cells_sampled": int(used.sum()),
                "call_share": float(used.mean()),
                "token_share": float(tok[used].sum() / tok_total) if tok_total else math.nan,
                "usd_share": float(usd[used].sum() / usd_total) if usd_total else math.nan,
                "usd_spent": s.spent_usd,
            }
        )
    out = pd.DataFrame(rows)
    out.attrs.update(
        rule=str(rule), repeats=repeats, cells=n_cells, fixed_design=n_cells * repeats, seed=seed
    )
    return out


def _unit_column(values: np.ndarray, name: str) -> np.ndarray:
    import pandas as pd

    v = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float)
    bad = ~np.isnan(v) & ((v < 0) | (v > 1))
    if bad.any():
        raise RequestError(f"column {name!r} has values outside [0, 1]", "full")
    return v


def _nan_group_mean(values: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    ok = ~np.isnan(values)
    sums = np.bincount(labels[ok], weights=values[ok], minlength=n)
    counts = np.bincount(labels[ok], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def summarize_simulations(sims: pd.DataFrame) -> dict[str, Any]:
    """Coverage, correct-pick rate and mean call/token shares of `simulate`'s output.

    ``coverage``: share of simulations whose reported CSs all covered the true means;
    ``group_coverage``: share of reported CSs (over groups and simulations) that did;
    ``correct_pick``: share that named the full grid's best arm (NaN without `decided`);
    ``wrong_pick``: share that named another arm (what ``alpha`` bounds);
    ``leader_pick``: share whose certified pick, or failing one the point-estimate leader
    when the run ended, is the full grid's best arm (what you would pick if you had to);
    ``call_share`` / ``token_share`` / ``usd_share``: mean share of the fixed design used.
    """
    n = len(sims)
    if not n:
        raise RequestError("no simulations to summarise", "sims")
    picked = sims["picked"].astype(float)
    correct = sims["correct"].astype(float)
    return {
        "n_sims": n,
        "coverage": float(sims["covered"].mean()),
        "group_coverage": float(sims["group_coverage"].mean()),
        "correct_pick": float(correct.mean()),
        "wrong_pick": float((picked - correct).mean()),
        "leader_pick": float(sims["leader_correct"].astype(float).mean())
        if "leader_correct" in sims.columns
        else math.nan,
        "call_share": float(sims["call_share"].mean()),
        "token_share": float(sims["token_share"].mean()),
        "usd_share": float(sims["usd_share"].mean()),
        "rounds_mean": float(sims["rounds"].mean()),
        "stopped_by": sims["stopped_by"].value_counts().to_dict(),
    }


def expected_share(
    cells: pd.DataFrame,
    rule: Rule,
    *,
    repeats: int,
    point_columns: Sequence[str] | None = None,
    usd_per_cell: float = 0.0,
    sims: int = 200,
    seed: int = 0,
) -> float:
    """The share of the fixed design's cells an adaptive run is expected to sample, before
    any data: the mean over `sims` simulated studies in which every parameter point's accuracy
    is drawn uniformly from [0, 1] and each problem's from a Beta around it (mean the point's
    accuracy, concentration 4), every metric the rule reads is a Bernoulli draw from it, and
    every cell costs `usd_per_cell` (the forecast's expected cost of a call: a `budget` rule
    binds where the real one would).

    A prior expectation, not a promise: arms that differ a lot stop far sooner than this, arms
    that barely differ run to the full design (the worst case). Deterministic for a `seed`.
    """
    design = Design(cells, rule, repeats, point_columns)
    usd = positive_number(usd_per_cell, "usd_per_cell", allow_zero=True)
    metrics = list(design.metrics) or ["score"]
    rng = np.random.default_rng(seed)
    cols = list(design.point_columns)
    point_of = (
        cells.groupby(cols, sort=False, dropna=False).ngroup().to_numpy()
        if cols
        else np.zeros(len(cells), dtype=int)
    )
    # one success probability per (problem, point), shared by that pair's repeats
    problem_of = cells.groupby(["prompt_id", *cols], sort=False, dropna=False).ngroup().to_numpy()
    pos_of_cell = dict(zip(cells["cell"].tolist(), range(len(cells)), strict=True))
    shares = []
    for _ in range(sims):
        accuracy = rng.uniform(0, 1, point_of.max() + 1)
        pair_point = np.zeros(problem_of.max() + 1, dtype=int)
        pair_point[problem_of] = point_of
        mean = accuracy[pair_point]
        p = rng.beta(mean * 4 + 0.05, (1 - mean) * 4 + 0.05)[problem_of]
        scheduler = AdaptiveScheduler.from_design(design, worst_usd_per_cell=usd)
        while ids := scheduler.next_round():
            for cell in ids:
                i = pos_of_cell[cell]
                draws = {m: float(rng.random() < p[i]) for m in metrics}
                scheduler.observe(cell, draws, usd)
        shares.append(scheduler.summary()["call_share"])
    return float(np.mean(shares))
