"""What does each group look like? Means, rates and shares per group, with intervals.

- ``summarize``: mean, std, n and a 95% interval of each metric per group. The estimand is the
  population mean over problems, each problem weighted equally (Miller 2024, arXiv
  2411.00640): when problems repeat, ``mean`` is the mean of the per-problem means and the
  interval is over problems (clustered); shares in [0, 1] (``score``, ``truncated``,
  ``reasoning_share``) get the bootstrap-t over problems that `pass_at_k` uses (Wilson bounds
  where problems show no spread), other metrics a Student-t interval clipped to the metric's
  range.
- ``truncation_rate``: the share of cells stopped by length with an empty answer, with a Wilson
  score interval per sample.
- ``reasoning_share``: reasoning tokens as a share of completion tokens, per row.
- ``compare_providers``: `summarize` over latency, time to first token, generation speed and
  cost per (model, served provider).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .frames import (
    as_list,
    int_arg,
    numeric_column,
    per_sample_target,
    require_columns,
    successful,
)
from .intervals import ONE_PROBLEM, POPULATION, WILSON_CI, bootstrap_t_mean, t95, wilson

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
#: ``df.attrs["ci_methods"]`` (code → text), not on every row. Other texts (the bootstrap-t's,
#: which name their resamples and seed) are coded by method and unit (`_code`).
CI_CODES = {SUMMARIZE_CI: "t", SUMMARIZE_CLUSTERED_CI: "t, by problem", WILSON_CI: "Wilson"}


def _code(text: str, taken: set[str]) -> str:
    """The short code of one method text (`CI_CODES`; else the method and its unit:
    ``bootstrap-t, by problem``, ``+ Wilson`` when one bound is Wilson's, ``none`` for no
    interval), made unique with a number if two texts share it."""
    code = CI_CODES.get(text)
    if code is None:
        found = re.match(r"(bootstrap-t|Wilson score|Student t) over (problems|rows)", text)
        if text.startswith("no interval"):
            code = "none"
        elif found is None:
            code = re.split(r" \(|, |; |: ", text, maxsplit=1)[0]
        else:
            name = {"bootstrap-t": "bootstrap-t", "Wilson score": "Wilson", "Student t": "t"}
            code = name[found[1]] + (", by problem" if found[2] == "problems" else "")
            if "bound: " in text:  # the bootstrap-t with a Wilson or t bound on one side
                code += " + Wilson" if "bound: Wilson" in text else " + t"
    unique, n = code, 1
    while unique in taken:
        n += 1
        unique = f"{code} ({n})"
    taken.add(unique)
    return unique


def _methods_once(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with its ``ci_method`` texts moved to ``df.attrs``, a short code left per row."""
    texts = list(dict.fromkeys(df["ci_method"])) if "ci_method" in df else []
    taken: set[str] = set()
    codes = {text: _code(text, taken) for text in texts}
    df.attrs["ci_methods"] = {code: text for text, code in codes.items()}
    df.attrs["ci_method"] = (
        texts[0] if len(texts) == 1 else "; ".join(f"{codes[t]}: {t}" for t in texts)
    )
    if texts:
        df["ci_method"] = df["ci_method"].map(codes)
    return df


def summarize(
    df: pd.DataFrame,
    by: str | Sequence[str],
    metrics: Sequence[str] | None = None,
    *,
    resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean, std, n and a 95% CI of each metric per group; one row per (group, metric).

    Columns: the `by` columns, ``metric``, ``n`` (rows with a value), ``n_problems`` (when
    clustered), ``mean``, ``std``, ``ci_low``, ``ci_high``, ``ci_method`` and ``ci_target``.

    Several samples of one problem are not independent (Miller 2024, arXiv 2411.00640), so
    when the frame has a ``prompt_id`` and some problem has more than one row in the group,
    the units are the problems: ``mean`` is the mean of the per-problem means (each problem
    weighted equally: the population value, the estimate the interval is for; the row mean
    when every problem has as many rows) and the interval is over the ``n_problems``
    per-problem means (clustered by problem). Otherwise the units are the rows. The interval
    for a share in [0, 1] (`SHARES`) is the bootstrap-t over the units, `resamples` resamples
    with generator `seed`, with Wilson bounds where the units show no spread — an all-solved
    group gets [0.72, 1] from 10 problems, never [1, 1] (`mmlab.analysis.intervals`); for any
    other metric Student t over the units. Either way it is clipped to what the metric can
    take; ``ci_method`` says which — a short code per row, the method in full once in
    ``df.attrs["ci_method"]`` (`CI_CODES`) — and ``ci_target`` is the population. ``std`` is
    the spread of single rows. With one unit the interval is NaN and ``ci_method`` says why;
    NaN values (not measured) are left out.

    `metrics` defaults to those of `DEFAULT_METRICS` (and ``reasoning_share``, made from the
    token columns) that the frame has, so a frame without token columns summarises what it
    has; a metric asked for by name and missing raises RequestError naming it and where it
    comes from.
    """
    import pandas as pd

    keys = as_list(by)
    data = successful(df).copy()
    require_columns(data, keys, "summarize")
    resamples = int_arg(resamples, "resamples", 1)
    seed = int_arg(seed, "seed", 0)
    if "reasoning_tokens" in data and "completion_tokens" in data:
        data["reasoning_share"] = reasoning_share(data)
    wanted = (
        list(metrics)
        if metrics is not None
        else [m for m in (*DEFAULT_METRICS, "reasoning_share") if m in data]
    )
    require_columns(data, wanted, "summarize")
    columns = {m: numeric_column(data, m, "summarize") for m in wanted}
    rows = []
    for group, part in data.groupby(keys, dropna=False, sort=True):
        group = group if isinstance(group, tuple) else (group,)
        for metric in wanted:
            column = columns[metric].loc[part.index]
            values = column.dropna()
            n = len(values)
            std = float(values.std(ddof=1)) if n > 1 else math.nan
            units, clustered = values, False
            if "prompt_id" in part and n:
                per_problem = column.groupby(part["prompt_id"], sort=True).mean().dropna()
                if len(per_problem) < n:  # repeats: the problem is the independent unit
                    units, clustered = per_problem, True
            low, high, method = _interval(units, values, metric, clustered, resamples, seed)
            rows.append(
                {
                    **dict(zip(keys, group, strict=True)),
                    "metric": metric,
                    "n": n,
                    "n_problems": len(units) if clustered else None,
                    "mean": float(units.mean()) if n else math.nan,
                    "std": std,
                    "ci_low": low,
                    "ci_high": high,
                    "ci_method": method,
                    "ci_target": POPULATION,
                }
            )
    return _methods_once(pd.DataFrame(rows))


def _interval(
    units: pd.Series, values: pd.Series, metric: str, clustered: bool, resamples: int, seed: int
) -> tuple[float, float, str]:
    """`summarize`'s interval for the mean of `units` (see there), and its method text."""
    m = len(units)
    if m < 2:
        return math.nan, math.nan, ONE_PROBLEM if m else "no interval: no values (all NaN)"
    unit = "problems" if clustered else "rows"
    if metric in SHARES and values.min() >= 0 and values.max() <= 1:
        return bootstrap_t_mean(units.to_numpy(), resamples, seed, 0.95, unit=unit)
    spread = float(units.std(ddof=1))
    centre = float(units.mean())
    half = t95(m - 1) * spread / math.sqrt(m)
    low, high = centre - half, centre + half
    # Token counts, costs and latencies cannot be negative, and shares live in [0, 1]:
    # a small-n t-interval is clipped to what the metric can take.
    if values.min() >= 0:
        low = max(low, 0.0)
    if metric in SHARES:
        high = min(high, 1.0)
    return low, high, SUMMARIZE_CLUSTERED_CI if clustered else SUMMARIZE_CI


def reasoning_share(df: pd.DataFrame) -> pd.Series:
    """Reasoning tokens as a share of completion tokens, per row (NaN without completion).

    RequestError naming ``reasoning_tokens`` or ``completion_tokens`` if the frame lacks it."""
    require_columns(df, ["reasoning_tokens", "completion_tokens"], "reasoning_share")
    completion = df["completion_tokens"].astype(float)
    return (df["reasoning_tokens"].astype(float) / completion.where(completion > 0)).rename(
        "reasoning_share"
    )


def truncation_rate(df: pd.DataFrame, by: str | Sequence[str] = "max_tokens") -> pd.DataFrame:
    """Share of cells stopped by length with an empty answer, per group, with a Wilson CI.

    The Wilson score interval treats the cells as independent samples (``ci_method``: a short
    code per row, the method in full in ``df.attrs["ci_method"]``): with several samples of a
    problem it is an interval for these problems (``ci_target``), with one row per problem for
    the population. RequestError naming a missing column.
    """
    import pandas as pd

    keys = as_list(by)
    data = successful(df)
    require_columns(data, [*keys, "truncated"], "truncation_rate")
    rows = []
    for group, part in data.groupby(keys, dropna=False, sort=True):
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
                "ci_target": per_sample_target(part),
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
