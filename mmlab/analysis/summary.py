"""What does each group look like? Means, rates and shares per group, with intervals.

- ``summarize``: mean, std, n and a 95% Student-t interval of each metric per group, clipped to
  the metric's range: over the rows of the group (repeats × prompts), or over per-problem
  means when problems repeat (clustered by problem, Miller 2024, arXiv 2411.00640).
- ``truncation_rate``: the share of cells stopped by length with an empty answer, with a Wilson
  score interval per sample.
- ``reasoning_share``: reasoning tokens as a share of completion tokens, per row.
- ``compare_providers``: `summarize` over latency, time to first token, generation speed and
  cost per (model, served provider).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .frames import as_list, require_columns, successful
from .intervals import WILSON_CI, t95, wilson

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


SUMMARIZE_CI = "Student t over rows, 95%, clipped to the metric's range"


SUMMARIZE_CLUSTERED_CI = (
    "Student t over per-problem means (clustered by problem), 95%, clipped to the metric's range"
)


#: The short codes `summarize` and `truncation_rate` put in ``ci_method``: each frame names
#: its methods' full texts once, in ``df.attrs["ci_method"]`` (one line) and
#: ``df.attrs["ci_methods"]`` (code → text), not on every row.
CI_CODES = {SUMMARIZE_CI: "t", SUMMARIZE_CLUSTERED_CI: "t, by problem", WILSON_CI: "Wilson"}


def _methods_once(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with its ``ci_method`` texts moved to ``df.attrs``, a short code left per row."""
    texts = list(dict.fromkeys(df["ci_method"])) if "ci_method" in df else []
    codes = {text: CI_CODES.get(text, text) for text in texts}
    df.attrs["ci_methods"] = {code: text for text, code in codes.items()}
    df.attrs["ci_method"] = (
        texts[0] if len(texts) == 1 else "; ".join(f"{codes[t]}: {t}" for t in texts)
    )
    if texts:
        df["ci_method"] = df["ci_method"].map(codes)
    return df


def summarize(
    df: pd.DataFrame, by: str | Sequence[str], metrics: Sequence[str] | None = None
) -> pd.DataFrame:
    """Mean, std, n and a 95% CI of each metric per group; one row per (group, metric).

    Several samples of one problem are not independent (Miller 2024, arXiv 2411.00640), so
    when the frame has a ``prompt_id`` and some problem has more than one row in the group,
    the interval is Student t over the per-problem means (clustered by problem: ``n_problems``
    clusters); otherwise Student t over the rows. Either way it is clipped to what the metric
    can take, and ``ci_method`` says which: a short code per row (`CI_CODES`), the method in
    full once in ``df.attrs["ci_method"]``. ``mean`` and ``std`` are over rows.
    """
    import pandas as pd

    keys = as_list(by)
    data = successful(df).copy()
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
            column = part[metric].astype(float)
            values = column.dropna()
            n = len(values)
            mean = float(values.mean()) if n else math.nan
            std = float(values.std(ddof=1)) if n > 1 else math.nan
            units, method = values, SUMMARIZE_CI
            if "prompt_id" in part and n:
                per_problem = column.groupby(part["prompt_id"], sort=True).mean().dropna()
                if len(per_problem) < n:  # repeats: the problem is the independent unit
                    units, method = per_problem, SUMMARIZE_CLUSTERED_CI
            m = len(units)
            spread = float(units.std(ddof=1)) if m > 1 else math.nan
            half = t95(m - 1) * spread / math.sqrt(m) if m > 1 else math.nan
            low, high = float(units.mean()) - half, float(units.mean()) + half
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
                    "n_problems": m if method is SUMMARIZE_CLUSTERED_CI else None,
                    "mean": mean,
                    "std": std,
                    "ci_low": low,
                    "ci_high": high,
                    "ci_method": method,
                }
            )
    return _methods_once(pd.DataFrame(rows))


def reasoning_share(df: pd.DataFrame) -> pd.Series:
    """Reasoning tokens as a share of completion tokens, per row (NaN without completion)."""
    completion = df["completion_tokens"].astype(float)
    return (df["reasoning_tokens"].astype(float) / completion.where(completion > 0)).rename(
        "reasoning_share"
    )


def truncation_rate(df: pd.DataFrame, by: str | Sequence[str] = "max_tokens") -> pd.DataFrame:
    """Share of cells stopped by length with an empty answer, per group, with a Wilson CI.

    The Wilson score interval treats the cells as independent samples (``ci_method``: a
    short code per row, the method in full in ``df.attrs["ci_method"]``).
    """
    import pandas as pd

    keys = as_list(by)
    rows = []
    for group, part in successful(df).groupby(keys, dropna=False, sort=True):
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
                "ci_method": WILSON_CI,
            }
        )
    return _methods_once(pd.DataFrame(rows))


#: What `compare_providers` measures per (model, provider).
PROVIDER_METRICS = ("latency_s", "ttft_s", "tokens_per_s", "cost_usd")


def compare_providers(df: pd.DataFrame, by: Sequence[str] = ("model", "provider")) -> pd.DataFrame:
    """Latency, time to first token, generation speed and cost per call for each (model,
    served provider) — one row per group and metric with 95% intervals (`summarize`:
    clustered by problem when cells repeat).

    ``tokens_per_s`` is a cell's completion tokens over its generation time (latency minus
    time to first token; streamed cells only give TTFT). Group by the *served* ``provider``
    column: with unpinned routing, the provider asked for is not always the one that answered.
    """
    data = successful(df).copy()
    require_columns(data, [*by, "latency_s", "completion_tokens", "cost_usd"], "compare_providers")
    ttft = data["ttft_s"] if "ttft_s" in data else 0.0
    generating = data["latency_s"].astype(float) - _zero_nan(ttft)
    data["tokens_per_s"] = data["completion_tokens"].astype(float) / generating.where(
        generating > 0
    )
    if "ttft_s" not in data:
        data["ttft_s"] = float("nan")
    return summarize(data, list(by), list(PROVIDER_METRICS))


def _zero_nan(values: Any) -> Any:
    # NaN → 0 for a Series (a scalar passes through)
    return values.fillna(0.0).astype(float) if hasattr(values, "fillna") else values
