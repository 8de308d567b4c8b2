"""Analysis helpers on a sweep's ``res.df`` (or any frame with the same columns).

Every function first drops failed calls (rows whose ``error`` is set), and every interval it
returns comes with a ``ci_method`` column that says how it was made. Estimators and sources:

- ``pass_at_k``: the unbiased estimator of Chen et al. 2021, "Evaluating Large Language Models
  Trained on Code" (arXiv 2107.03374), §2.1. With n samples of a problem of which c are
  correct, pass@k = 1 - C(n-c, k) / C(n, k), averaged over problems. Best-of-k over k fixed
  samples, and 1 - (1 - c/n)^k, are both biased.
- ``maj_at_k`` (alias ``cons_at_k``): majority vote over extracted answers, i.e. the
  self-consistency of Wang et al. 2022, "Self-Consistency Improves Chain of Thought Reasoning
  in Language Models" (arXiv 2203.11171), with n > k samples taken as the exact expectation
  over all k-subsets (multivariate-hypergeometric counting).
- Clustered intervals: Miller 2024, "Adding Error Bars to Evals: A Statistical Approach to
  Language Model Evaluations" (arXiv 2411.00640). Several samples of one problem are not
  independent, so anything averaged over problems gets a bootstrap that resamples *problems*
  (``prompt_id``) with replacement, carrying all of a problem's samples together; percentile
  interval; the resample count and seed are part of ``ci_method``. Costs per call get a
  Student-t interval over per-problem means.
- Proportions per sample (``truncation_rate``, ``accuracy_vs_reasoning``, the accuracy of
  ``cost_per_correct``): the Wilson score interval, which behaves at 0% and 100%. It treats
  samples as independent, so with many samples per problem it is narrower than a clustered one.
- ``summarize``: a Student-t interval over the rows of each group (repeats × prompts), clipped
  to the metric's range; rows, not problems, so also narrower than a clustered interval when
  there are repeats (kept as it is: other code compares its numbers).
- ``pareto_frontier``: accuracy (clustered bootstrap) against USD per call (t over problems),
  and which configurations no other configuration beats on both.
- ``cost_per_correct``: the ratio estimator total cost / total correct, bootstrapped over
  problems.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from .errors import RequestError
from .scorers import extract_answer, normalize_answer

if TYPE_CHECKING:
    import numpy as np
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
    """Two-sided 95% Student-t critical value for `dof` degrees of freedom.

    A table up to 30; beyond it the Cornish-Fisher expansion of the t quantile in 1/dof
    (Abramowitz & Stegun 26.7.5), which gives 2.0423 at 30 against the exact 2.0423 (1.96, the
    normal value, would be a little too narrow: 2.02 is right at 40).
    """
    if dof < 1:
        return math.nan
    if dof <= len(_T95):
        return _T95[dof - 1]
    x, v = 1.959963984540054, float(dof)
    g1 = (x**3 + x) / 4
    g2 = (5 * x**5 + 16 * x**3 + 3 * x) / 96
    g3 = (3 * x**7 + 19 * x**5 + 17 * x**3 - 15 * x) / 384
    return x + g1 / v + g2 / v**2 + g3 / v**3


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


SUMMARIZE_CI = "Student t over rows, 95%, clipped to the metric's range"
SUMMARIZE_CLUSTERED_CI = (
    "Student t over per-problem means (clustered by problem), 95%, clipped to the metric's range"
)
WILSON_CI = "Wilson score, per sample, 95%"


def _keys(by: str | Sequence[str] | None) -> list[str]:
    return [] if by is None else _by(by)


def _require(df: pd.DataFrame, columns: Sequence[str], func: str) -> None:
    for column in columns:
        if column not in df:
            raise RequestError(f"{func} needs a {column!r} column", field=column)


def _groups(df: pd.DataFrame, keys: list[str]) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    """(group values, rows) per group of `keys`; one group of everything when there are none."""
    if not keys:
        yield {}, df
        return
    for group, part in df.groupby(keys, dropna=False, sort=True):
        group = group if isinstance(group, tuple) else (group,)
        yield dict(zip(keys, group, strict=True)), part


def _int_arg(value: Any, name: str, low: int, high: int | None = None, why: str = "") -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < low
        or (high is not None and value > high)
    ):
        allowed = f"{low}..{high}" if high is not None else f">= {low}"
        raise RequestError(
            f"{name} must be an integer in {allowed}{why}; got {value!r}", field=name
        )
    return int(value)


def _level_arg(level: Any) -> float:
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < level < 1:
        raise RequestError(f"level must be a number between 0 and 1; got {level!r}", "level")
    return float(level)


def _numeric(df: pd.DataFrame, column: str, func: str) -> pd.Series:
    try:
        return df[column].astype(float)
    except (TypeError, ValueError) as exc:
        raise RequestError(f"{func}: column {column!r} must be numeric", field=column) from exc


def _scored(df: pd.DataFrame, keys: list[str], func: str) -> pd.DataFrame:
    """The rows that have a score, each checked to be 0 or 1; a group without any is an error.

    NaN means the scorer could not score the row (no gold answer, say): such rows are left out
    rather than counted wrong, so `n` counts scored samples.
    """
    score = _numeric(df, "score", func)
    bad = score.notna() & ~score.isin([0.0, 1.0])
    if bad.any():
        raise RequestError(
            f"{func} needs binary scores (1 correct, 0 wrong, NaN unscorable); "
            f"got {score[bad].iloc[0]!r}",
            field="score",
        )
    data = df.assign(score=score)
    if data["score"].notna().sum() == 0:
        raise RequestError(f"{func}: no scored samples (or no successful rows)", field="score")
    if keys:
        scored = data.groupby(keys, dropna=False, sort=True)["score"].count()
        if (scored == 0).any():
            group = scored.index[scored.to_numpy() == 0][0]
            raise RequestError(f"{func}: no scored samples in group {group!r}", field="score")
    return data[data["score"].notna()]


def _check_k(k: Any, n: np.ndarray, group: dict[str, Any]) -> int:
    """k is an integer from 1 to the smallest problem's sample count in the group."""
    smallest = int(n.min())
    where = f" in group {group}" if group else ""
    return _int_arg(k, "k", 1, smallest, f" (the smallest problem{where} has {smallest} samples)")


def _boot_method(resamples: int, seed: int, level: float, clustered: bool = True) -> str:
    unit = "clustered bootstrap over problems" if clustered else "bootstrap over rows"
    return f"{unit}, {resamples} resamples, seed {seed}, percentile, {level * 100:g}%"


def _resampled_sums(matrix: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Column sums of `resamples` bootstrap resamples of the rows (clusters) of `matrix`.

    One row per problem, all of its samples already folded into it: resampling rows is the
    clustered bootstrap. A fresh generator per call, so a group's interval depends on its own
    data and the seed only, never on which other groups were analysed alongside it; groups with
    the same problems draw the same resampled problem sets, which keeps comparisons paired.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    clusters, width = matrix.shape
    out = np.empty((resamples, width))
    # Chunks bound the memory of the index array (about 32 MB) for large problem sets.
    step = max(1, 4_000_000 // (clusters * width))
    for start in range(0, resamples, step):
        m = min(step, resamples - start)
        idx = rng.integers(0, clusters, size=(m, clusters))
        out[start : start + m] = matrix[idx].sum(axis=1)
    return out


def _percentile(stats: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval from bootstrap statistics.

    Order statistics (numpy's "lower" and "higher" rules) rather than interpolation: with 2,000
    resamples the difference is negligible, and a ratio that is infinite in some resamples
    (no correct answer drawn) still gets a defined, slightly conservative interval.
    """
    import numpy as np

    alpha = 1 - level
    low = float(np.quantile(stats, alpha / 2, method="lower"))
    high = float(np.quantile(stats, 1 - alpha / 2, method="higher"))
    return low, high


def _bootstrap_mean(
    values: np.ndarray, resamples: int, seed: int, level: float
) -> tuple[float, float]:
    """Percentile interval of the mean of per-problem `values`, problems resampled."""
    # One problem has no spread to resample: NaN says "unknown", a zero-width interval would
    # claim certainty.
    if len(values) < 2:
        return (math.nan, math.nan)
    sums = _resampled_sums(values.reshape(-1, 1), resamples, seed)[:, 0]
    return _percentile(sums / len(values), level)


def _problem_table(
    values: np.ndarray, n: np.ndarray, k: int, resamples: int, seed: int, level: float
) -> dict[str, Any]:
    low, high = _bootstrap_mean(values, resamples, seed, level)
    return {
        "k": k,
        "estimate": float(values.mean()),
        "ci_low": low,
        "ci_high": high,
        "n_problems": len(values),
        "samples_per_problem": int(n.min()),
        "ci_method": _boot_method(resamples, seed, level),
    }


AT_K_COLUMNS = [
    "k",
    "estimate",
    "ci_low",
    "ci_high",
    "n_problems",
    "samples_per_problem",
    "ci_method",
]


def _pass_at_k_values(n: np.ndarray, c: np.ndarray, k: int) -> np.ndarray:
    """Chen et al.'s unbiased pass@k per problem: 1 - C(n-c, k) / C(n, k).

    In the product form 1 - prod_{i=n-c+1}^{n} (1 - k/i), which never forms the binomials
    (they overflow floats past n of about 1,000), vectorised over problems; 1 when n - c < k,
    since every k-subset then holds a correct sample.
    """
    import numpy as np

    out = np.ones(len(n))
    some = n - c >= k
    if some.any():
        nn, cc = n[some], c[some]
        i = np.arange(1, int(nn.max()) + 1)
        inside = (i > (nn - cc)[:, None]) & (i <= nn[:, None])
        out[some] = 1.0 - np.where(inside, 1.0 - k / i, 1.0).prod(axis=1)
    return out


def pass_at_k(
    df: pd.DataFrame,
    k: int,
    by: str | Sequence[str] | None = None,
    *,
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """pass@k per group: the chance that at least one of k samples of a problem is correct.

    Chen et al. 2021 (arXiv 2107.03374, §2.1): with n scored samples of a problem of which c
    are correct (``score == 1``), the unbiased estimate is 1 - C(n-c, k) / C(n, k), the
    average over all k-subsets of the n samples; the result is its mean over problems
    (``prompt_id``), each problem weighted equally. Failed calls are dropped; NaN scores
    (unscorable) are left out; other scores must be 0 or 1.

    The interval is a clustered bootstrap (Miller 2024, arXiv 2411.00640): problems are
    resampled with replacement, all of a problem's samples together, `resamples` times with
    generator `seed`; percentile interval at `level`. NaN with fewer than two problems.

    Returns one row per group (one row in all when `by` is None): the `by` columns, ``k``,
    ``estimate``, ``ci_low``, ``ci_high``, ``n_problems``, ``samples_per_problem`` (the
    smallest n, which bounds k) and ``ci_method``. Raises RequestError naming ``k`` unless
    1 <= k <= the smallest problem's n in every group, and naming ``score`` for scores other
    than 0/1/NaN.
    """
    import pandas as pd

    keys = _keys(by)
    data = _ok(df)
    _require(data, [*keys, "prompt_id", "score"], "pass_at_k")
    _int_arg(k, "k", 1)
    resamples = _int_arg(resamples, "resamples", 1)
    seed = _int_arg(seed, "seed", 0)
    level = _level_arg(level)
    data = _scored(data, keys, "pass_at_k")
    # Problems in sorted order, so the bootstrap does not depend on the order of the rows.
    counts = (
        data.groupby([*keys, "prompt_id"], dropna=False, sort=True)["score"]
        .agg(["size", "sum"])
        .reset_index()
    )
    rows = []
    for group, part in _groups(counts, keys):
        n = part["size"].to_numpy(dtype=int)
        c = part["sum"].to_numpy().round().astype(int)
        k = _check_k(k, n, group)
        values = _pass_at_k_values(n, c, k)
        rows.append({**group, **_problem_table(values, n, k, resamples, seed, level)})
    return pd.DataFrame(rows, columns=[*keys, *AT_K_COLUMNS])


# Up to this many samples per problem, maj@k counts k-subsets in floats (C(1000, 500) is about
# 2.7e299, still finite); beyond it, in exact Python integers (slower, never overflows).
_FLOAT_MAX_N = 1000


def _maj_at_k_problem(gold: int, others: Sequence[int], abstain: int, k: int, tie: str) -> float:
    """Exact share of the C(n, k) k-subsets of one problem's samples whose vote is right.

    `gold` samples gave the gold answer, `others` are the sizes of the other answer classes and
    `abstain` samples gave no answer. For each j >= 1 gold votes in the subset, count the ways
    to fill the other k - j slots from the abstentions and the other classes with every other
    class below j (the gold answer wins), or exactly at j for t of them (a (t+1)-way tie). A
    polynomial product over the classes, dp[s, t] = ways to fill s slots with t classes tied;
    cost about k * n numpy operations per problem, instead of C(n, k) subsets.
    """
    import numpy as np

    n = gold + sum(others) + abstain
    exact = n > _FLOAT_MAX_N
    dtype: Any = object if exact else float
    comb: Callable[[int, int], Any] = (
        math.comb if exact else (lambda a, b: float(math.comb(a, b)))
    )
    hits: Any = Fraction(0) if exact else 0.0
    for j in range(1, min(gold, k) + 1):
        rest = k - j
        rivals = sum(a >= j for a in others)  # classes that could tie the gold answer at j
        dp = np.zeros((rest + 1, rivals + 1), dtype=dtype)
        for s in range(rest + 1):
            dp[s, 0] = comb(abstain, s)
        for a in others:
            new = np.zeros_like(dp)
            for t in range(min(a, j - 1, rest) + 1):
                new[t:] += comb(a, t) * dp[: rest + 1 - t]
            if a >= j and j <= rest:
                new[j:, 1:] += comb(a, j) * dp[: rest + 1 - j, :-1]
            dp = new
        ways = dp[rest]
        if tie == "none":
            won: Any = ways[0]  # a tie is not a majority
        elif exact:
            won = sum(Fraction(int(w), t + 1) for t, w in enumerate(ways))
        else:
            won = float((ways / np.arange(1, rivals + 2)).sum())
        hits += comb(gold, j) * won
    return float(hits / comb(n, k))


TIE_RULES = {
    "none": "a tie is not a majority (counts 0)",
    "random": "ties broken uniformly at random (1/m for an m-way tie with the gold answer)",
}


def maj_at_k(
    df: pd.DataFrame,
    k: int,
    by: str | Sequence[str] | None = None,
    *,
    extractor: Callable[[str], str | None] | None = None,
    tie: str = "none",
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    r"""maj@k (cons@k) per group: is the most frequent answer among k samples the gold one?

    Majority vote, or self-consistency (Wang et al. 2022, arXiv 2203.11171). Votes are answers
    *extracted* from ``content`` by `extractor` (default `mmlab.scorers.extract_answer`: the last
    ``\boxed{}`` if any, else the last number) and normalised by
    `mmlab.scorers.normalize_answer`, so "1,000", "1000" and "1000.0" are one vote; the gold
    ``answer`` column is normalised the same way. A sample with nothing extracted (no output,
    no number) abstains: it is one of the n samples and can be drawn, but casts no vote. The
    vote is a plurality; `tie` says what a tie for the most votes that includes the gold answer
    counts: ``"none"`` 0 (a tie is not a majority), ``"random"`` 1/m for an m-way tie (ties
    broken uniformly at random). No votes at all counts 0.

    With n > k samples per problem the estimate is the exact mean over all C(n, k) k-subsets
    of the problem's samples (not one arbitrary subset), computed by counting
    (multivariate hypergeometric) rather than enumerating, so n = 64, k = 32 is fast; it is
    then averaged over problems. For k = 1 it is the mean share of samples whose extracted
    answer equals the gold one. Problems without a gold answer are left out. Interval,
    columns and errors as in `pass_at_k`, plus ``tie_rule``.
    """
    import numpy as np
    import pandas as pd

    keys = _keys(by)
    data = _ok(df)
    _require(data, [*keys, "prompt_id", "content", "answer"], "maj_at_k")
    _int_arg(k, "k", 1)
    if tie not in TIE_RULES:
        raise RequestError(f"tie must be one of {sorted(TIE_RULES)}; got {tie!r}", field="tie")
    if extractor is not None and not callable(extractor):
        raise RequestError("extractor must be a function of the answer text", "extractor")
    resamples = _int_arg(resamples, "resamples", 1)
    seed = _int_arg(seed, "seed", 0)
    level = _level_arg(level)
    if data.empty:
        raise RequestError("maj_at_k: no successful rows", field="content")
    extract = extractor or extract_answer

    def vote(text: Any) -> str | None:
        # An empty extraction is no answer, like None: it abstains rather than forming a class.
        return (normalize_answer(extract(text)) or None) if isinstance(text, str) else None

    data = data.assign(
        _vote=[vote(text) for text in data["content"]],
        _gold=[normalize_answer(a) or None for a in data["answer"]],
    )
    rows = []
    for group, part in _groups(data, keys):
        n_list, values = [], []
        for _, problem in part.groupby("prompt_id", dropna=False, sort=True):
            golds = problem["_gold"].dropna()
            if golds.empty:
                continue  # unscorable: no gold answer to compare with
            gold = golds.iloc[0]
            votes = problem["_vote"]
            counts = votes.dropna().value_counts()
            n_list.append(len(problem))
            values.append(
                (
                    int(counts.pop(gold)) if gold in counts.index else 0,
                    [int(a) for a in counts.to_numpy()],
                    int(votes.isna().sum()),
                )
            )
        if not values:
            where = f" in group {group}" if group else ""
            raise RequestError(f"maj_at_k: no problem with a gold answer{where}", "answer")
        n = np.array(n_list)
        k = _check_k(k, n, group)
        per_problem = np.array([_maj_at_k_problem(g, o, z, k, tie) for g, o, z in values])
        rows.append(
            {
                **group,
                **_problem_table(per_problem, n, k, resamples, seed, level),
                "tie_rule": TIE_RULES[tie],
            }
        )
    return pd.DataFrame(rows, columns=[*keys, *AT_K_COLUMNS, "tie_rule"])


cons_at_k = maj_at_k  # cons@k (consensus@k) is the same estimator under another name


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
    and a 95% Wilson score interval per sample (``ci_method``). Samples of one problem are
    not independent, so with many samples per problem in a bin the interval is too narrow.
    Failed calls and unscorable rows (NaN score or token count) are left out.
    """
    import pandas as pd

    keys = _keys(by)
    data = _ok(df)
    _require(data, [*keys, "reasoning_tokens", "score"], "accuracy_vs_reasoning")
    bins = _int_arg(bins, "bins", 1)
    data = _scored(data, keys, "accuracy_vs_reasoning")
    data = data.assign(
        reasoning_tokens=_numeric(data, "reasoning_tokens", "accuracy_vs_reasoning")
    )
    data = data[data["reasoning_tokens"].notna()]
    rows = []
    for group, part in _groups(data, keys):
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
    ]
    return pd.DataFrame(rows, columns=columns)


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
    with a 95% clustered-bootstrap percentile interval over problems (Miller 2024, arXiv
    2411.00640); ``usd_per_call``, the mean of `cost` the same way, with a 95% Student-t
    interval over the per-problem means (clipped at 0). Without a ``prompt_id`` column each row
    is its own cluster, and ``ci_method`` says so. Intervals are NaN below two problems.

    ``on_frontier`` is True for a configuration that no other dominates, i.e. no other has
    accuracy at least as high and cost at most as high with one of the two strictly better.
    It uses the point estimates: where intervals overlap, membership is not settled. Rows are
    sorted by ``usd_per_call`` (then accuracy, highest first); also ``n`` (rows) and
    ``n_problems``.
    """
    import numpy as np
    import pandas as pd

    keys = _by(by)
    data = _ok(df)
    if not keys:
        raise RequestError("pareto_frontier needs the configuration columns in by", "by")
    _require(data, [*keys, metric, cost], "pareto_frontier")
    resamples = _int_arg(resamples, "resamples", 1)
    seed = _int_arg(seed, "seed", 0)
    clustered = "prompt_id" in data
    data = data.assign(
        _metric=_numeric(data, metric, "pareto_frontier"),
        _cost=_numeric(data, cost, "pareto_frontier"),
        _cluster=data["prompt_id"] if clustered else np.arange(len(data)),
    )
    method = (
        f"accuracy: {_boot_method(resamples, seed, 0.95, clustered)}; "
        f"usd_per_call: Student t over per-{'problem' if clustered else 'row'} means, 95%"
    )
    rows = []
    for group, part in _groups(data, keys):
        per = part.groupby("_cluster", dropna=False, sort=True)[["_metric", "_cost"]].mean()
        acc = per["_metric"].dropna().to_numpy()
        usd = per["_cost"].dropna().to_numpy()
        acc_low, acc_high = _bootstrap_mean(acc, resamples, seed, 0.95)
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


def reasoning_share(df: pd.DataFrame) -> pd.Series:
    """Reasoning tokens as a share of completion tokens, per row (NaN without completion)."""
    completion = df["completion_tokens"].astype(float)
    return (df["reasoning_tokens"].astype(float) / completion.where(completion > 0)).rename(
        "reasoning_share"
    )


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
    data = _ok(df).copy()
    _require(data, [*by, "latency_s", "completion_tokens", "cost_usd"], "compare_providers")
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


def summarize(
    df: pd.DataFrame, by: str | Sequence[str], metrics: Sequence[str] | None = None
) -> pd.DataFrame:
    """Mean, std, n and a 95% CI of each metric per group; one row per (group, metric).

    Several samples of one problem are not independent (Miller 2024, arXiv 2411.00640), so
    when the frame has a ``prompt_id`` and some problem has more than one row in the group,
    the interval is Student t over the per-problem means (clustered by problem: ``n_problems``
    clusters); otherwise Student t over the rows. Either way it is clipped to what the metric
    can take, and ``ci_method`` says which. ``mean`` and ``std`` are over rows.
    """
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
    return pd.DataFrame(rows)


def truncation_rate(df: pd.DataFrame, by: str | Sequence[str] = "max_tokens") -> pd.DataFrame:
    """Share of cells stopped by length with an empty answer, per group, with a Wilson CI.

    The Wilson score interval treats the cells as independent samples (``ci_method``).
    """
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
                "ci_method": WILSON_CI,
            }
        )
    return pd.DataFrame(rows)


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
    ``accuracy_ci_*``. ``ci_method`` names both.
    """
    import numpy as np
    import pandas as pd

    if "score" not in df:
        raise KeyError("cost_per_correct needs a 'score' column: run the sweep with a scorer")
    resamples = _int_arg(resamples, "resamples", 1)
    seed = _int_arg(seed, "seed", 0)
    keys = _by(by)
    data = _ok(df)
    clustered = "prompt_id" in data
    method = (
        f"accuracy: {WILSON_CI}; usd_per_correct: ratio of totals, "
        f"{_boot_method(resamples, seed, 0.95, clustered)}"
    )
    rows = []
    for group, part in _groups(data, keys):
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
            boot = _resampled_sums(per.to_numpy(), resamples, seed)
            # No correct answer in a resample: infinitely many dollars per correct answer,
            # the same convention as the point estimate.
            ratio = np.full(resamples, math.inf)
            np.divide(boot[:, 0], boot[:, 1], out=ratio, where=boot[:, 1] > 0)
            ratio_low, ratio_high = _percentile(ratio, 0.95)
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
            }
        )
    return pd.DataFrame(rows)


KNOB_CI = (
    "within-block permutation tests ({permutations} permutations, seed {seed}): output length "
    "(spread of the values' mean completion tokens) and content (mean Jaccard similarity of "
    "word sets within a value minus between values, pairs from different blocks); p = "
    "Bonferroni minimum of the two"
)


def knob_effect(
    df: pd.DataFrame,
    param: str,
    blocks: Sequence[str],
    *,
    metric: str = "completion_tokens",
    text: str | None = "content",
    permutations: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Does the output move with `param`? Permutation tests within blocks.

    `blocks` are the columns that hold everything else equal (the prompt, the sample index or
    the seed, the other parameters): under "the endpoint ignores `param`", the values' labels
    are exchangeable within each block, so shuffling them there gives the null distribution of
    any statistic. Two statistics: the spread of the values' means of `metric` (default
    ``completion_tokens``), and the content contrast — mean Jaccard similarity of the `text`
    column's word sets between samples of the same value minus between samples of different
    values, counting only pairs from different blocks (a seeded endpoint that ignores `param`
    then gives a contrast of exactly zero). The p-value is the smaller of the two, doubled
    (Bonferroni); with ``text=None`` only the first is tested. ``identical_share`` is the share
    of blocks in which every value gave the same text (or metric): 1.0 is proof that `param`
    changed nothing there.

    Returns a dict: ``param``, ``values``, ``blocks`` (how many), ``length_p``, ``content_p``,
    ``p_value``, ``identical_share``, ``ci_method``.
    """
    import numpy as np

    data = _ok(df)
    _require(data, [param, metric, *([text] if text else []), *blocks], "knob_effect")
    permutations = _int_arg(permutations, "permutations", 1)
    seed = _int_arg(seed, "seed", 0)
    data = data[data[text].notna()] if text else data
    values = sorted(data[param].dropna().unique(), key=str)
    if len(values) < 2:
        raise RequestError(f"knob_effect needs at least two values of {param!r}", field=param)
    label = data[param].map({v: i for i, v in enumerate(values)}).to_numpy()
    block = (
        data.groupby(list(blocks), dropna=False, sort=True).ngroup().to_numpy()
        if blocks
        else np.zeros(len(data), dtype=int)
    )
    length = data[metric].astype(float).to_numpy()
    answers = data[text] if text else data[metric].astype(str)
    words = [frozenset(str(t).lower().split()) for t in answers]
    sims = np.array([[_jaccard(a, b) for b in words] for a in words]) if text else None
    other_block = block[:, None] != block[None, :]
    rng = np.random.default_rng(seed)
    by_block = np.argsort(block, kind="stable")

    def shuffled() -> np.ndarray:
        # a permutation of the labels within each block: sort by (block, random key)
        out = np.empty_like(label)
        out[by_block] = label[np.lexsort((rng.random(len(label)), block))]
        return out

    def spread(y: np.ndarray) -> float:
        means = [length[y == i].mean() for i in range(len(values)) if (y == i).any()]
        return float(np.var(means))

    def contrast(y: np.ndarray) -> float:
        if sims is None:
            return 0.0
        same = (y[:, None] == y[None, :]) & other_block
        diff = (y[:, None] != y[None, :]) & other_block
        if not same.any() or not diff.any():
            return 0.0
        return float(sims[same].mean() - sims[diff].mean())

    observed = (spread(label), contrast(label))
    exceed = [0, 0]
    for _ in range(permutations):
        y = shuffled()
        exceed[0] += spread(y) >= observed[0] - 1e-12
        exceed[1] += contrast(y) >= observed[1] - 1e-12
    length_p, content_p = ((1 + e) / (1 + permutations) for e in exceed)
    if not text:
        content_p = math.nan
    identical = [
        len({answers.iloc[i] for i in np.flatnonzero(block == b)}) == 1
        for b in np.unique(block)
        if len(set(label[block == b])) == len(values)
    ]
    return {
        "param": param,
        "values": values,
        "blocks": int(len(np.unique(block))),
        "length_p": length_p,
        "content_p": content_p,
        "p_value": length_p if not text else min(1.0, 2 * min(length_p, content_p)),
        "identical_share": float(np.mean(identical)) if identical else math.nan,
        "ci_method": KNOB_CI.format(permutations=permutations, seed=seed),
    }


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return 1.0 if not a and not b else len(a & b) / len(a | b)
