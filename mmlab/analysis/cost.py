"""What does accuracy cost? Dollars per correct answer, the cost-accuracy frontier, and
accuracy against the reasoning tokens spent.

- ``cost_per_correct``: the ratio estimator total cost / total correct, bootstrapped over
  problems; accuracy with a Wilson score interval per sample.
- ``pareto_frontier``: accuracy (bootstrap-t over problems, as pass@1) against USD per call
  (Student t over per-problem means), and which configurations no other configuration beats
  on both.

Every frame names each interval's method (``ci_method``) and target (``ci_target``: the
population of problems, or these problems — `mmlab.analysis.intervals`).
- ``accuracy_vs_reasoning``: accuracy in quantile bins of reasoning tokens used, with a Wilson
  score interval per sample (narrower than a clustered one when problems repeat).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import RequestError
from .frames import (
    as_list,
    group_keys,
    groups,
    int_arg,
    numeric_column,
    per_sample_target,
    require_columns,
    scored_rows,
    successful,
)
from .intervals import (
    POPULATION,
    THESE_PROBLEMS,
    WILSON_CI,
    bootstrap_method,
    bootstrap_t_mean,
    percentile_interval,
    resampled_sums,
    t95,
    wilson,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def cost_per_correct(
    df: pd.DataFrame,
    by: str | Sequence[str] = "max_tokens",
    cost: str = "cost_usd",
    *,
    resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Total cost divided by correct answers per group (needs a ``score`` column).

    Uses what producing each response cost (``cost_usd``), so replayed sweeps give the same
    figures as live ones; pass ``cost="m1_usd"`` after re-pricing to compare price tables.

    ``usd_per_correct`` is a ratio estimator, total cost / total correct (inf without a correct
    answer). Its 95% interval (``usd_per_correct_ci_low`` / ``_high``) is a percentile
    bootstrap of that ratio that resamples problems (``prompt_id``) with replacement, all of a
    problem's samples together (Miller 2024, arXiv 2411.00640); rows when there is no
    ``prompt_id``. ``accuracy`` is over scored samples (NaN scores — unscorable — are left
    out of it, though their cost counts), with a Wilson score interval per sample in
    ``accuracy_ci_*``: an interval for these problems (samples of one problem are not
    independent draws from the population). ``ci_method`` names both methods and
    ``ci_target`` both targets. Without a ``score`` column: RequestError naming it.
    """
    import numpy as np
    import pandas as pd

    require_columns(df, ["score"], "cost_per_correct")
    resamples = int_arg(resamples, "resamples", 1)
    seed = int_arg(seed, "seed", 0)
    keys = as_list(by)
    data = successful(df)
    clustered = "prompt_id" in data
    method = (
        f"accuracy: {WILSON_CI}; usd_per_correct: ratio of totals, "
        f"{bootstrap_method(resamples, seed, 0.95, clustered)}"
    )
    target = f"accuracy: {THESE_PROBLEMS}; usd_per_correct: {POPULATION}"
    rows = []
    for group, part in groups(data, keys):
        # every call's cost counts (money was spent on an unscorable answer too), but the
        # accuracy is over scored answers only, as pass@k reads it
        scored = int(part["score"].notna().sum())
        correct = float(part["score"].fillna(0).sum())
        total = float(part[cost].fillna(0).sum())
        lo, hi = wilson(round(correct), scored)
        sums = pd.DataFrame(
            {
                "cost": part[cost].fillna(0).astype(float),
                "correct": part["score"].fillna(0).astype(float),
                "cluster": part["prompt_id"] if clustered else np.arange(len(part)),
            }
        )
        per = sums.groupby("cluster", dropna=False, sort=True)[["cost", "correct"]].sum()
        ratio_low = ratio_high = math.nan
        if len(per) > 1:
            boot = resampled_sums(per.to_numpy(), resamples, seed)
            # No correct answer in a resample: infinitely many dollars per correct answer,
            # the same convention as the point estimate.
            ratio = np.full(resamples, math.inf)
            np.divide(boot[:, 0], boot[:, 1], out=ratio, where=boot[:, 1] > 0)
            ratio_low, ratio_high = percentile_interval(ratio, 0.95)
        rows.append(
            {
                **group,
                "n": len(part),
                "correct": int(correct),
                "accuracy": correct / scored if scored else math.nan,
                "accuracy_ci_low": lo,
                "accuracy_ci_high": hi,
                "total_usd": total,
                "usd_per_correct": total / correct if correct else math.inf,
                "usd_per_correct_ci_low": ratio_low,
                "usd_per_correct_ci_high": ratio_high,
                "ci_method": method,
                "ci_target": target,
            }
        )
    return pd.DataFrame(rows)


def pareto_frontier(
    df: pd.DataFrame,
    by: str | Sequence[str],
    *,
    metric: str = "score",
    cost: str = "cost_usd",
    resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Accuracy against cost per configuration, and which configurations are Pareto-optimal.

    `by` names the configuration columns (e.g. ``["temperature", "max_tokens"]``). Per
    configuration: ``accuracy``, the mean of `metric` (per problem first, then over problems,
    so each problem counts once; the plain mean when all have the same number of samples),
    with a 95% bootstrap-t interval over problems for the population value (as `pass_at_k`
    at k = 1: Miller 2024, arXiv 2411.00640; Wilson bounds where problems show no spread; a
    `metric` outside [0, 1] gets no Wilson bound and no clipping); ``usd_per_call``, the mean
    of `cost` the same way, with a 95% Student-t interval over the per-problem means (clipped
    at 0). Without a ``prompt_id`` column each row is its own cluster, and ``ci_method`` says
    so; ``ci_target`` is the population. Intervals are NaN below two problems.

    ``on_frontier`` is True for a configuration that no other dominates, i.e. no other has
    accuracy at least as high and cost at most as high with one of the two strictly better.
    It uses the point estimates: where intervals overlap, membership is not settled. Rows are
    sorted by ``usd_per_call`` (then accuracy, highest first); also ``n`` (rows) and
    ``n_problems``.
    """
    import numpy as np
    import pandas as pd

    keys = as_list(by)
    data = successful(df)
    if not keys:
        raise RequestError("pareto_frontier needs the configuration columns in by", "by")
    require_columns(data, [*keys, metric, cost], "pareto_frontier")
    resamples = int_arg(resamples, "resamples", 1)
    seed = int_arg(seed, "seed", 0)
    clustered = "prompt_id" in data
    data = data.assign(
        _metric=numeric_column(data, metric, "pareto_frontier"),
        _cost=numeric_column(data, cost, "pareto_frontier"),
        _cluster=data["prompt_id"] if clustered else np.arange(len(data)),
    )
    unit = "problems" if clustered else "rows"
    usd_method = f"usd_per_call: Student t over per-{'problem' if clustered else 'row'} means, 95%"
    rows = []
    for group, part in groups(data, keys):
        per = part.groupby("_cluster", dropna=False, sort=True)[["_metric", "_cost"]].mean()
        acc = per["_metric"].dropna().to_numpy()
        usd = per["_cost"].dropna().to_numpy()
        unit_range = len(acc) and 0.0 <= acc.min() and acc.max() <= 1.0
        acc_low, acc_high, acc_method = bootstrap_t_mean(
            acc, resamples, seed, 0.95, (0.0, 1.0) if unit_range else None, unit=unit
        )
        method = f"accuracy: {acc_method}; {usd_method}"
        mean_usd = float(usd.mean()) if len(usd) else math.nan
        if len(usd) > 1:
            half = t95(len(usd) - 1) * float(usd.std(ddof=1)) / math.sqrt(len(usd))
            # A mean of costs cannot be negative; a small-n t-interval can reach below 0.
            usd_low, usd_high = max(mean_usd - half, 0.0), mean_usd + half
        else:
            usd_low = usd_high = math.nan
        rows.append(
            {
                **group,
                "n": len(part),
                "n_problems": len(per),
                "accuracy": float(acc.mean()) if len(acc) else math.nan,
                "accuracy_ci_low": acc_low,
                "accuracy_ci_high": acc_high,
                "usd_per_call": mean_usd,
                "usd_per_call_ci_low": usd_low,
                "usd_per_call_ci_high": usd_high,
                "ci_method": method,
                "ci_target": POPULATION,
            }
        )
    columns = [
        *keys,
        "n",
        "n_problems",
        "accuracy",
        "accuracy_ci_low",
        "accuracy_ci_high",
        "usd_per_call",
        "usd_per_call_ci_low",
        "usd_per_call_ci_high",
        "on_frontier",
        "ci_method",
        "ci_target",
    ]
    out = pd.DataFrame(rows, columns=[c for c in columns if c != "on_frontier"])
    acc = out["accuracy"].to_numpy(dtype=float)
    usd = out["usd_per_call"].to_numpy(dtype=float)
    # other[j] dominates row i: at least as accurate and as cheap, strictly better in one.
    # NaN compares False, so a configuration without both numbers neither dominates nor is
    # on the frontier.
    geq = (acc[None, :] >= acc[:, None]) & (usd[None, :] <= usd[:, None])
    strict = (acc[None, :] > acc[:, None]) | (usd[None, :] < usd[:, None])
    dominated = (geq & strict).any(axis=1)
    out["on_frontier"] = ~dominated & np.isfinite(acc) & np.isfinite(usd)
    out = out.sort_values(["usd_per_call", "accuracy"], ascending=[True, False], kind="stable")
    return out[columns].reset_index(drop=True)


def _quantile_bins(x: np.ndarray, bins: int) -> np.ndarray:
    """Bin number of each value: edges at the 0, 1/bins, ..., 1 quantiles of `x`.

    Edges are observed values (numpy's "lower" quantile rule) and bin i holds (edge_i,
    edge_i+1], the first also its lower edge, so equal values always share a bin. Repeated
    edges (many equal counts, e.g. 0 with reasoning off) leave bins empty; those are dropped and
    the rest numbered 0, 1, ... in order.
    """
    import numpy as np

    edges = np.quantile(x, np.linspace(0, 1, bins + 1), method="lower")
    codes = np.searchsorted(edges[1:], x, side="left")
    return np.unique(codes, return_inverse=True)[1].reshape(-1)


def accuracy_vs_reasoning(
    df: pd.DataFrame, bins: int = 6, by: str | Sequence[str] | None = None
) -> pd.DataFrame:
    """Accuracy in bins of reasoning tokens actually used (``reasoning_tokens``), per group.

    Tokens used, not the budget asked for: providers ignore or round reasoning budgets, and
    s1 (Muennighoff et al. 2025, arXiv 2501.19393) plots accuracy against thinking tokens used.
    Bins are quantile bins formed within each group: edges at the group's 0, 1/bins, ..., 1
    quantiles of ``reasoning_tokens``, taken as observed counts; bin i holds counts in
    (edge_i, edge_i+1], the first also its lower edge. Bins hold about equal numbers of samples;
    equal counts share a bin, so many equal counts leave some bins empty, and empty bins are
    dropped (fewer than `bins` rows). Groups have their own edges: compare them by
    ``mean_reasoning_tokens``, not by bin number.

    One row per (group, bin): the `by` columns, ``bin`` (0, 1, ...), ``reasoning_tokens_low``
    and ``reasoning_tokens_high`` (smallest and largest count in the bin),
    ``mean_reasoning_tokens``, ``n``, ``correct``, ``accuracy`` (share with ``score == 1``)
    and a 95% Wilson score interval per sample (``ci_method``), with ``ci_target`` "these
    problems" (or "the population" when no problem has more than one sample in the group):
    samples of one problem are not independent, so with many samples per problem in a bin the
    interval is too narrow for the population.
    Failed calls and unscorable rows (NaN score or token count) are left out.
    """
    import pandas as pd

    keys = group_keys(by)
    data = successful(df)
    require_columns(data, [*keys, "reasoning_tokens", "score"], "accuracy_vs_reasoning")
    bins = int_arg(bins, "bins", 1)
    data = scored_rows(data, keys, "accuracy_vs_reasoning")
    data = data.assign(
        reasoning_tokens=numeric_column(data, "reasoning_tokens", "accuracy_vs_reasoning")
    )
    data = data[data["reasoning_tokens"].notna()]
    rows = []
    for group, part in groups(data, keys):
        target = per_sample_target(part)
        x = part["reasoning_tokens"].to_numpy(dtype=float)
        y = part["score"].to_numpy(dtype=float)
        codes = _quantile_bins(x, bins)
        for b in range(int(codes.max()) + 1):
            inside = codes == b
            n, correct = int(inside.sum()), int(y[inside].sum())
            low, high = wilson(correct, n)
            rows.append(
                {
                    **group,
                    "bin": b,
                    "reasoning_tokens_low": float(x[inside].min()),
                    "reasoning_tokens_high": float(x[inside].max()),
                    "mean_reasoning_tokens": float(x[inside].mean()),
                    "n": n,
                    "correct": correct,
                    "accuracy": correct / n,
                    "ci_low": low,
                    "ci_high": high,
                    "ci_method": WILSON_CI,
                    "ci_target": target,
                }
            )
    columns = [
        *keys,
        "bin",
        "reasoning_tokens_low",
        "reasoning_tokens_high",
        "mean_reasoning_tokens",
        "n",
        "correct",
        "accuracy",
        "ci_low",
        "ci_high",
        "ci_method",
        "ci_target",
    ]
    return pd.DataFrame(rows, columns=columns)
