"""How intervals are made: the studentized bootstrap, Student t, Wilson, and their texts.

Every interval an analysis returns names its method (a ``ci_method`` column) and its target
(a ``ci_target`` column): `POPULATION` — the population of problems the ones asked are a sample
of, what a claim about a model is about (Miller 2024, "Adding Error Bars to Evals", arXiv
2411.00640) — or `THESE_PROBLEMS` — the mean over exactly the problems asked, with only the
sampling of answers random.

- Means over problems of a [0, 1] quantity (pass@k, maj@k, accuracy): the studentized
  bootstrap (bootstrap-t; Efron & Tibshirani 1993, ch. 12; Hall 1988) over problems
  (``prompt_id``), all of a problem's samples carried together (the clustered bootstrap of
  Miller 2024). It is the one method that held its level at 10 problems × 8 samples in
  simulation: the percentile bootstrap covered the population value 0.91 (pass@1) and 0.85
  (pass@4) of the time there, a plain t interval 0.94 and 0.89 (bench/RESULTS.md). Where the
  studentized bootstrap cannot give a bound — a problem set with no spread at all (every
  problem solved, or none), or so little that α/2 or more of the resamples have none and the
  resampled t is infinite — that bound is the Wilson score bound over problems (a mean of
  values in [0, 1] has variance at most μ(1 − μ), the Bernoulli case Wilson is built for), so
  an all-solved study gets [0.72, 1] from 10 problems, never a zero-width [1, 1].
- Proportions per sample: the Wilson score interval (`wilson`), which behaves at 0% and 100%.
  It treats samples as independent, so with several samples per problem it is an interval for
  these problems (narrower than one for the population).
- Means of continuous metrics over few units (tokens, USD, latency): Student t (`t95`,
  `t_quantile`).
- Ratios (USD per correct answer): the clustered percentile bootstrap (`resampled_sums`,
  `percentile_interval`).
"""

from __future__ import annotations

import functools
import math
from statistics import NormalDist
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


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


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion (Wilson 1927): `successes` of `n`, critical value
    `z` (1.96: 95%; `normal_quantile` gives others). A fractional `successes` (a mean of values
    in [0, 1] times `n`) gives the bound used where a mean over problems has no spread."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


#: The ``ci_method`` of a `wilson` interval at the default z.
WILSON_CI = "Wilson score, per sample, 95%"


def bootstrap_method(resamples: int, seed: int, level: float, clustered: bool = True) -> str:
    """The ``ci_method`` text of a percentile bootstrap: its unit (problems when `clustered`,
    else rows), resample count, seed and level, so the interval can be reproduced."""
    unit = "clustered bootstrap over problems" if clustered else "bootstrap over rows"
    return f"{unit}, {resamples} resamples, seed {seed}, percentile, {level * 100:g}%"


def resampled_sums(matrix: np.ndarray, resamples: int, seed: int) -> np.ndarray:
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


def percentile_interval(stats: np.ndarray, level: float) -> tuple[float, float]:
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


#: ``ci_target``: the population of problems the ones asked were drawn from.
POPULATION = "the population"
#: ``ci_target``: the mean over exactly the problems asked (only the answers are random).
THESE_PROBLEMS = "these problems"


def normal_quantile(p: float) -> float:
    """The standard normal quantile at `p` (0 < p < 1)."""
    return NormalDist().inv_cdf(p)


def _betacf(a: float, b: float, x: float) -> float:
    # continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4)
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _beta_inc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, dof: float) -> float:
    """The Student-t distribution function with `dof` degrees of freedom (exact, through the
    regularized incomplete beta function: P(T <= t) = 1 - I_{dof/(dof+t^2)}(dof/2, 1/2) / 2
    for t >= 0)."""
    tail = 0.5 * _beta_inc(dof / 2.0, 0.5, dof / (dof + t * t))
    return 1.0 - tail if t >= 0 else tail


@functools.lru_cache(maxsize=4096)
def t_quantile(p: float, dof: float) -> float:
    """The Student-t quantile at `p` with `dof` degrees of freedom (``t_quantile(0.975, 3)``
    is 3.1824); the normal quantile past a million degrees of freedom. Bisection on `t_cdf`
    to 1e-12."""
    if not 0.0 < p < 1.0 or dof <= 0:
        return math.nan
    if dof > 1e6:
        return normal_quantile(p)
    if p < 0.5:
        return -t_quantile(1.0 - p, dof)
    low, high = 0.0, 1.0
    while t_cdf(high, dof) < p:
        low, high = high, high * 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if t_cdf(mid, dof) < p:
            low = mid
        else:
            high = mid
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2.0


def level_text(level: float) -> str:
    """A confidence level as ``ci_method`` writes it: 0.95 -> ``95%``."""
    return f"{level * 100:g}%"


#: The ``ci_method`` of a mean with fewer than two problems: no interval (NaN).
ONE_PROBLEM = "no interval: fewer than two problems (no spread between problems to estimate)"


def bootstrap_t_method(resamples: int, seed: int, level: float, unit: str = "problems") -> str:
    """The ``ci_method`` text of `bootstrap_t_mean`'s interval (before any Wilson bound)."""
    return (
        f"bootstrap-t over {unit} (studentized, clustered), {resamples} resamples, seed {seed}, "
        f"{level_text(level)}"
    )


def _resampled_moments(
    values: np.ndarray, resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per resample of the problems: sum and sum of squares of the centred values, and
    whether every drawn value was the same (exact: compared by value class, not by a variance
    that rounding leaves a hair above zero)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    m = len(values)
    centred = values - values.mean()
    codes = np.unique(values, return_inverse=True)[1].reshape(-1)
    s1, s2 = np.empty(resamples), np.empty(resamples)
    flat = np.empty(resamples, dtype=bool)
    # The same draws as `resampled_sums` (chunked: about 32 MB of indices at a time).
    step = max(1, 4_000_000 // m)
    for start in range(0, resamples, step):
        n = min(step, resamples - start)
        idx = rng.integers(0, m, size=(n, m))
        drawn = centred[idx]
        s1[start : start + n] = drawn.sum(axis=1)
        s2[start : start + n] = (drawn * drawn).sum(axis=1)
        c = codes[idx]
        flat[start : start + n] = c.min(axis=1) == c.max(axis=1)
    return s1, s2, flat


def bootstrap_t_mean(
    values: np.ndarray,
    resamples: int,
    seed: int,
    level: float,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    *,
    unit: str = "problems",
) -> tuple[float, float, str]:
    """Interval for the population mean of per-problem `values`, and its ``ci_method`` text.

    The studentized bootstrap over problems (see the module docstring): with mean θ and
    standard error s/√m of the m values, each of `resamples` resamples of the problems (a
    generator seeded with `seed`) gives t* = (θ* − θ) / se*, and the interval is
    [θ − q(1 − α/2)·se, θ − q(α/2)·se] with q the order statistics of t* (numpy's "lower" and
    "higher" rules). A resample with no spread has an infinite t* (or 0 if it sits on θ);
    when they make a quantile infinite, that bound is the Wilson score bound over problems of
    the mean rescaled to [0, 1] by `bounds` (the Student-t bound when `bounds` is None), and
    the text says so. Values without any spread get Wilson over problems on both sides (NaN
    without `bounds`: nothing bounds such a mean); fewer than two values get NaN
    (`ONE_PROBLEM`). The interval is clipped to `bounds`. `unit` names what the values are
    means of in the text ("rows" when there is no problem column).
    """
    import numpy as np

    values = np.asarray(values, dtype=float)
    m = len(values)
    if m < 2:
        return math.nan, math.nan, ONE_PROBLEM
    alpha = 1.0 - level
    mean = float(values.mean())
    se = float(values.std(ddof=1)) / math.sqrt(m)
    z = normal_quantile(1.0 - alpha / 2.0)

    def wilson_bounds() -> tuple[float, float]:
        assert bounds is not None
        lo, hi = bounds
        w_lo, w_hi = wilson((mean - lo) / (hi - lo) * m, m, z)
        return lo + w_lo * (hi - lo), lo + w_hi * (hi - lo)

    if float(values.min()) == float(values.max()):
        if bounds is None:
            return math.nan, math.nan, f"no interval: no spread between {unit}"
        w_lo, w_hi = wilson_bounds()
        return w_lo, w_hi, (
            f"Wilson score over {unit}, {level_text(level)} (no spread between {unit}: "
            "every one scored the same)"
        )
    s1, s2, flat = _resampled_moments(values, resamples, seed)
    var = np.where(flat, 0.0, np.maximum(s2 - s1 * s1 / m, 0.0) / (m - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        t_star = (s1 / m) / np.sqrt(var / m)
    # no spread: infinitely far from the estimate, unless it sits on it (then 0)
    t_star[flat] = np.select([s1[flat] > 0, s1[flat] < 0], [math.inf, -math.inf], 0.0)
    q_low = float(np.quantile(t_star, alpha / 2.0, method="lower"))
    q_high = float(np.quantile(t_star, 1.0 - alpha / 2.0, method="higher"))
    low, high = mean - q_high * se, mean - q_low * se
    method = bootstrap_t_method(resamples, seed, level, unit)
    fallback = []
    if not math.isfinite(q_high) or not math.isfinite(q_low):
        if bounds is not None:
            w_lo, w_hi = wilson_bounds()
            how = f"Wilson score over {unit}"
        else:
            half = t_quantile(1.0 - alpha / 2.0, m - 1) * se
            w_lo, w_hi = mean - half, mean + half
            how = f"Student t over {unit}"
        if not math.isfinite(q_high):
            low = w_lo
            fallback.append("lower")
        if not math.isfinite(q_low):
            high = w_hi
            fallback.append("upper")
        method += (
            f"; {' and '.join(fallback)} bound: {how} (too many resamples without spread to "
            "studentize)"
        )
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return float(low), float(high), method
