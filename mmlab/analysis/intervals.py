"""How intervals are made: Student t, Wilson, the clustered bootstrap, and their method texts.

Every interval an analysis returns names its method in a ``ci_method`` column; the texts are
built here, beside the code they describe.

- Clustered intervals: Miller 2024, "Adding Error Bars to Evals: A Statistical Approach to
  Language Model Evaluations" (arXiv 2411.00640). Several samples of one problem are not
  independent, so anything averaged over problems gets a bootstrap that resamples *problems*
  (``prompt_id``) with replacement, carrying all of a problem's samples together; percentile
  interval; the resample count and seed are part of ``ci_method``.
- Proportions per sample: the Wilson score interval, which behaves at 0% and 100%. It treats
  samples as independent, so with many samples per problem it is narrower than a clustered one.
- Means of few units: Student t, with `t95` giving the critical value.
"""

from __future__ import annotations

import math
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


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion."""
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


def bootstrap_mean(
    values: np.ndarray, resamples: int, seed: int, level: float
) -> tuple[float, float]:
    """Percentile interval of the mean of per-problem `values`, problems resampled."""
    # One problem has no spread to resample: NaN says "unknown", a zero-width interval would
    # claim certainty.
    if len(values) < 2:
        return (math.nan, math.nan)
    sums = resampled_sums(values.reshape(-1, 1), resamples, seed)[:, 0]
    return percentile_interval(sums / len(values), level)
