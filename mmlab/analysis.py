"""Analysis helpers on a sweep's ``res.df`` (or any frame with the same columns).

Confidence intervals: means use a t-interval over the rows in each group (repeats × prompts);
rates use the Wilson score interval, which behaves at 0% and 100%.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_METRICS = (
    "reasoning_tokens",
    "answer_tokens",
    "completion_tokens",
    "latency_s",
    "cost_usd",
    "truncated",
    "score",
)
SHARES = ("score", "truncated", "reasoning_share")
# two-sided 95% t critical values for 1..30 degrees of freedom
_T95 = [
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
]


def t95(dof: int) -> float:
    """Two-sided 95% Student-t critical value."""
    return _T95[dof - 1] if 1 <= dof <= len(_T95) else 1.96


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["error"].isna()] if "error" in df else df


def _by(by: str | Sequence[str]) -> list[str]:
    return [by] if isinstance(by, str) else list(by)


def reasoning_share(df: pd.DataFrame) -> pd.Series:
    """Reasoning tokens as a share of completion tokens, per row (NaN without completion)."""
    completion = df["completion_tokens"].astype(float)
    return (df["reasoning_tokens"].astype(float) / completion.where(completion > 0)).rename(
        "reasoning_share"
    )


def summarize(
    df: pd.DataFrame, by: str | Sequence[str], metrics: Sequence[str] | None = None
) -> pd.DataFrame:
    """Mean, std, n and a 95% CI of each metric per group; one row per (group, metric)."""
    import pandas as pd

    keys = _by(by)
    data = _ok(df).copy()
    data["reasoning_share"] = reasoning_share(data)
    wanted = (
        list(metrics)
        if metrics is not None
        else [m for m in (*DEFAULT_METRICS, "reasoning_share") if m in data]
    )
    rows = []
    for group, part in data.groupby(keys, dropna=False, sort=True):
        group = group if isinstance(group, tuple) else (group,)
        for metric in wanted:
            values = part[metric].dropna().astype(float)
            n = len(values)
            mean = float(values.mean()) if n else math.nan
            std = float(values.std(ddof=1)) if n > 1 else math.nan
            half = t95(n - 1) * std / math.sqrt(n) if n > 1 else math.nan
            low, high = mean - half, mean + half
            # Token counts, costs and latencies cannot be negative, and shares live in [0, 1]:
            # a small-n t-interval is clipped to what the metric can take.
            if n and values.min() >= 0:
                low = max(low, 0.0)
            if metric in SHARES:
                high = min(high, 1.0)
            rows.append(
                {
                    **dict(zip(keys, group, strict=True)),
                    "metric": metric,
                    "n": n,
                    "mean": mean,
                    "std": std,
                    "ci_low": low,
                    "ci_high": high,
                }
            )
    return pd.DataFrame(rows)


def truncation_rate(df: pd.DataFrame, by: str | Sequence[str] = "max_tokens") -> pd.DataFrame:
    """Share of cells stopped by length with an empty answer, per group, with a Wilson CI."""
    import pandas as pd

    keys = _by(by)
    rows = []
    for group, part in _ok(df).groupby(keys, dropna=False, sort=True):
        group = group if isinstance(group, tuple) else (group,)
        n = len(part)
        k = int(part["truncated"].fillna(False).astype(bool).sum())
        lo, hi = wilson(k, n)
        rows.append(
            {
                **dict(zip(keys, group, strict=True)),
                "n": n,
                "truncated": k,
                "rate": k / n if n else math.nan,
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    return pd.DataFrame(rows)


def cost_per_correct(
    df: pd.DataFrame, by: str | Sequence[str] = "max_tokens", cost: str = "cost_usd"
) -> pd.DataFrame:
    """Total cost divided by correct answers per group (needs a ``score`` column).

    Uses what producing each response cost (``cost_usd``), so replayed sweeps give the same
    figures as live ones; pass ``cost="m1_usd"`` after re-pricing to compare price tables.
    """
    import pandas as pd

    if "score" not in df:
        raise KeyError("cost_per_correct needs a 'score' column: run the sweep with a scorer")
    keys = _by(by)
    rows = []
    for group, part in _ok(df).groupby(keys, dropna=False, sort=True):
        group = group if isinstance(group, tuple) else (group,)
        correct = float(part["score"].fillna(0).sum())
        total = float(part[cost].fillna(0).sum())
        lo, hi = wilson(int(correct), len(part))
        rows.append(
            {
                **dict(zip(keys, group, strict=True)),
                "n": len(part),
                "correct": int(correct),
                "accuracy": correct / len(part) if len(part) else math.nan,
                "accuracy_ci_low": lo,
                "accuracy_ci_high": hi,
                "total_usd": total,
                "usd_per_correct": total / correct if correct else math.inf,
            }
        )
    return pd.DataFrame(rows)
