"""Which arm is better? Paired comparisons over problems, with multiple-comparison control.

``compare`` sets each arm (a value of the `by` columns) against a baseline arm, or every arm
against every other, on the problems both were asked (Miller 2024, "Adding Error Bars to
Evals", arXiv 2411.00640: compare on paired differences, cluster on the question):

- the difference of the per-problem means, averaged over the shared problems, with an
  interval for the population value (bootstrap-t over problems, `mmlab.analysis.intervals`);
- an exact p-value: the paired sign-flip permutation test over problems (Fisher 1935; Good,
  "Permutation Tests", 2000). Under "the two arms are interchangeable on every problem" each
  problem's difference is as likely to have either sign, so the 2^m sign assignments are
  equally likely and the p-value is the share of them whose total is at least as far from 0
  as the observed one. It is counted exactly — by convolution on the lattice the differences
  live on when the metric is a count (0/1 scores: multiples of 1/lcm(samples)), else by
  enumeration up to 20 differing problems, else (stated in ``p_method``) by Monte Carlo.
  With one sample per problem and 0/1 scores it *is* the exact McNemar test (McNemar 1947):
  only the discordant problems count, and their signs are Binomial(b + c, 1/2);
- the p-value adjusted for the family of comparisons: Holm's step-down (Holm 1979; controls
  the family-wise error rate, the chance of any false claim), Benjamini-Hochberg (1995;
  controls the false discovery rate, the expected share of false claims among the claims)
  or none;
- a plain verdict from the adjusted p-value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import RequestError
from .frames import as_list, int_arg, level_arg, numeric_column, require_columns, successful
from .intervals import POPULATION, bootstrap_t_mean, level_text, normal_quantile, wilson

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: The multiple-comparison corrections `compare` and `adjust` know, and what they control.
CORRECTIONS = {
    "holm": "Holm step-down (family-wise error rate)",
    "bh": "Benjamini-Hochberg (false discovery rate)",
    None: "none",
}

#: Above this many differing problems (and off a lattice), the sign-flip test is Monte Carlo.
ENUMERATE_MAX = 20
#: The largest lattice (2 x sum of |differences| + 1 points) counted exactly.
LATTICE_MAX = 4_000_001

#: The columns of `compare`'s frame.
COMPARE_COLUMNS = [
    "arm",
    "baseline",
    "metric",
    "n_problems",
    "arm_mean",
    "baseline_mean",
    "difference",
    "ci_low",
    "ci_high",
    "ci_method",
    "ci_target",
    "p_value",
    "p_method",
    "p_adjusted",
    "correction",
    "significant",
    "verdict",
]


def adjust(p_values: Sequence[float], correction: str | None = "holm") -> np.ndarray:
    """The p-values adjusted for the family they form (NaN entries are not members).

    ``"holm"`` (Holm 1979): sorted ascending, p_(i) becomes max over j <= i of
    min(1, (M - j + 1) p_(j)) — reject where the adjusted p <= alpha and the chance of any
    false rejection is <= alpha whatever the dependence. ``"bh"`` (Benjamini & Hochberg
    1995): min over j >= i of min(1, M p_(j) / j) — the expected share of false rejections
    among rejections is <= alpha for independent or positively dependent tests. None: as is.
    """
    import numpy as np

    if correction not in CORRECTIONS:
        raise RequestError(
            f"correction must be 'holm', 'bh' or None; got {correction!r}", "correction"
        )
    p = np.asarray(p_values, dtype=float)
    out = p.copy()
    member = ~np.isnan(p)
    size = int(member.sum())
    if correction is None or size == 0:
        return out
    order = np.argsort(p[member], kind="stable")
    ranked = p[member][order]
    j = np.arange(1, size + 1)
    if correction == "holm":
        step = np.maximum.accumulate(np.minimum(1.0, (size - j + 1) * ranked))
    else:
        step = np.minimum.accumulate(np.minimum(1.0, size * ranked / j)[::-1])[::-1]
    values = np.empty(size)
    values[order] = step
    out[member] = values
    return out


def sign_flip_p(
    differences: Sequence[float],
    *,
    lattice: int | None = None,
    permutations: int = 100_000,
    seed: int = 0,
) -> tuple[float, str]:
    """Two-sided p-value of the paired sign-flip permutation test, and how it was counted.

    The share of the 2^m sign assignments to the m per-problem `differences` whose sum is
    at least as far from 0 as the observed sum. `lattice`: an integer L with every
    difference times L an integer (0/1 scores with n samples per problem: L = n), which lets
    the whole distribution be counted exactly by convolution; otherwise it is enumerated up
    to `ENUMERATE_MAX` non-zero differences, and beyond that estimated from `permutations`
    random assignments (seeded; p = (1 + hits) / (1 + permutations), a valid p-value).
    Zero differences do not move the sum and are left out; none at all gives p = 1.
    """
    import numpy as np

    d = np.asarray(differences, dtype=float)
    d = d[d != 0]
    if len(d) == 0:
        return 1.0, "exact (no problem differs)"
    if lattice is not None:
        scaled = d * lattice
        steps = np.rint(np.abs(scaled)).astype(np.int64)
        total = int(steps.sum())
        if np.allclose(np.abs(scaled), steps, atol=1e-6) and 2 * total + 1 <= LATTICE_MAX:
            observed = abs(int(np.rint(scaled.sum())))
            dist = np.zeros(2 * total + 1)
            dist[total] = 1.0  # the sum so far, offset by `total`
            for a in steps:
                new = np.zeros_like(dist)
                new[a:] += 0.5 * dist[: len(dist) - a]
                new[: len(dist) - a] += 0.5 * dist[a:]
                dist = new
            sums = np.arange(-total, total + 1)
            p = float(dist[np.abs(sums) >= observed].sum())
            return min(1.0, p), f"exact (all 2^{len(d)} sign assignments, counted on the lattice)"
    observed = abs(float(d.sum()))
    tol = 1e-9 * float(np.abs(d).sum())
    if len(d) <= ENUMERATE_MAX:
        hits, count = 0, 2 ** len(d)
        step = 1 << 16
        for start in range(0, count, step):
            codes = np.arange(start, min(count, start + step), dtype=np.int64)
            signs = 1 - 2 * ((codes[:, None] >> np.arange(len(d))) & 1)
            hits += int((np.abs(signs @ d) >= observed - tol).sum())
        return hits / count, f"exact (all 2^{len(d)} sign assignments enumerated)"
    permutations = int_arg(permutations, "permutations", 1)
    rng = np.random.default_rng(seed)
    hits = 0
    step = max(1, 2_000_000 // len(d))
    for start in range(0, permutations, step):
        n = min(step, permutations - start)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(n, len(d)))
        hits += int((np.abs(signs @ d) >= observed - tol).sum())
    return (1 + hits) / (1 + permutations), (
        f"Monte Carlo, {permutations} random sign assignments, seed {seed}"
    )


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds: arms are labels, and numpy's repr
    (``np.int64(192)``) would show in every verdict."""
    return value.item() if type(value).__module__ == "numpy" and hasattr(value, "item") else value


def _label(keys: list[str], value: Any) -> str:
    values = value if isinstance(value, tuple) else (value,)
    return ", ".join(f"{k}={v!r}" for k, v in zip(keys, values, strict=True))


def _lattice(sums: np.ndarray, counts: np.ndarray) -> int | None:
    """L with every per-problem mean times L an integer, when the metric is a count."""
    import numpy as np

    seen = counts > 0
    if not (sums[seen] == np.round(sums[seen])).all():
        return None
    lcm = 1
    for n in np.unique(counts[seen]).astype(int):
        lcm = math.lcm(lcm, int(n))
        if lcm > LATTICE_MAX:
            return None
    return lcm


def compare(
    df: pd.DataFrame,
    by: str | Sequence[str],
    baseline: Any = None,
    metric: str = "score",
    correction: str | None = "holm",
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    permutations: int = 100_000,
) -> pd.DataFrame:
    """Each arm against the `baseline` arm (or every pair of arms), paired by problem.

    The arms are the values of the `by` column(s) (a tuple of values for several). Per arm and
    problem (``prompt_id``) the mean of `metric` over its scored samples (NaN values —
    unscorable — are left out; failed calls dropped); a comparison uses the problems both
    arms have. Its estimand is the population mean of the per-problem difference, arm minus
    baseline (each problem weighted equally): ``difference`` = ``arm_mean`` −
    ``baseline_mean``, both over the shared problems, with a `level` interval from the
    bootstrap-t over problems (`resamples`, `seed`; Wilson bounds on the rescaled
    difference where problems show no spread, and ± the Wilson bound on the share of
    problems that differ when none does; not adjusted for the family). ``p_value`` is the
    exact paired sign-flip test (the exact McNemar test with one 0/1 sample per problem;
    see the module), ``p_adjusted`` the family's p-values adjusted by `correction`
    (``"holm"``, ``"bh"`` or None; see `adjust`), ``significant`` whether it is <= 1 −
    `level`, and ``verdict`` says it in words.

    One row per comparison (`COMPARE_COLUMNS`): with a `baseline`, every other arm against
    it in arm order; without, every pair (later arm against earlier, in sorted order).
    A pair with no shared problem gets NaN and says so (and is no member of the family); one
    shared problem gets a p-value (1: a single sign flip cannot be extreme) but no interval.
    RequestError naming the field for a missing column, fewer than two arms, a `baseline`
    that is no arm, or a bad `correction`, `level`, `resamples`, `seed` or `permutations`.
    """
    import numpy as np
    import pandas as pd

    keys = as_list(by)
    if not keys:
        raise RequestError("compare needs the column(s) naming the arms in by", "by")
    data = successful(df)
    require_columns(data, [*keys, "prompt_id", metric], "compare")
    if correction not in CORRECTIONS:
        raise RequestError(
            f"correction must be 'holm', 'bh' or None; got {correction!r}", "correction"
        )
    level = level_arg(level)
    resamples = int_arg(resamples, "resamples", 1)
    seed = int_arg(seed, "seed", 0)
    permutations = int_arg(permutations, "permutations", 1)
    data = data.assign(_y=numeric_column(data, metric, "compare"))
    data = data[data["_y"].notna()]
    # arms as integer codes (in sorted order), so tuples of several columns stay labels
    code = data.groupby(keys, dropna=False, sort=True).ngroup().to_numpy()
    data = data.assign(_arm=code)
    first = np.unique(code, return_index=True)[1]
    arms = [
        tuple(map(_plain, r)) if len(keys) > 1 else _plain(r[0])
        for r in data.iloc[first][keys].itertuples(index=False, name=None)
    ]
    if len(arms) < 2:
        raise RequestError(
            f"compare needs at least two arms in {keys} with scored rows; got {arms}", "by"
        )
    if baseline is not None and baseline not in arms:
        raise RequestError(f"baseline {baseline!r} is not one of the arms {arms}", "baseline")
    table = data.groupby(["prompt_id", "_arm"], sort=True)["_y"].agg(["sum", "count"])
    sums = table["sum"].unstack("_arm").to_numpy(dtype=float)
    counts = table["count"].unstack("_arm").to_numpy(dtype=float)
    means = sums / counts  # problems x arms, NaN where an arm has no scored sample
    lattice = _lattice(sums, counts)
    bounded = bool(data["_y"].min() >= 0 and data["_y"].max() <= 1)
    base = None if baseline is None else arms.index(baseline)
    pairs = (
        [(i, base) for i in range(len(arms)) if i != base]
        if base is not None
        else [(j, i) for i in range(len(arms)) for j in range(i + 1, len(arms))]
    )
    alpha = 1 - level
    rows = []
    for a, b in pairs:
        shared = ~np.isnan(means[:, a]) & ~np.isnan(means[:, b])
        ya, yb = means[shared, a], means[shared, b]
        d = ya - yb
        row: dict[str, Any] = {"arm": arms[a], "baseline": arms[b], "metric": metric,
                               "n_problems": len(d)}  # fmt: skip
        if len(d) == 0:
            row.update(arm_mean=math.nan, baseline_mean=math.nan, difference=math.nan,
                       ci_low=math.nan, ci_high=math.nan, p_value=math.nan,
                       ci_method="no interval: no problem scored under both arms",
                       p_method="not tested: no problem scored under both arms")  # fmt: skip
        else:
            low, high, method = _difference_interval(d, bounded, resamples, seed, level)
            p, p_method = sign_flip_p(d, lattice=lattice, permutations=permutations, seed=seed)
            row.update(arm_mean=float(ya.mean()), baseline_mean=float(yb.mean()),
                       difference=float(d.mean()), ci_low=low, ci_high=high, ci_method=method,
                       p_value=p, p_method=f"paired sign-flip permutation test over problems, "
                       f"two-sided, {p_method}")  # fmt: skip
        row["ci_target"] = POPULATION
        rows.append(row)
    adjusted = adjust([r["p_value"] for r in rows], correction)
    for row, p_adj in zip(rows, adjusted, strict=True):
        row["p_adjusted"] = float(p_adj)
        row["correction"] = CORRECTIONS[correction]
        row["significant"] = bool(p_adj <= alpha)
        row["verdict"] = _verdict(row, keys, metric, correction, alpha)
    return pd.DataFrame(rows, columns=COMPARE_COLUMNS)


def _difference_interval(
    d: np.ndarray, bounded: bool, resamples: int, seed: int, level: float
) -> tuple[float, float, str]:
    """`compare`'s interval for the mean per-problem difference (see there)."""
    if bounded and len(d) > 1 and not d.any():
        # |mean difference| <= P(a problem differs) for differences in [-1, 1]
        share = wilson(0, len(d), normal_quantile(1 - (1 - level) / 2))[1]
        return -share, share, (
            f"no problem differs: ± the Wilson score upper bound on the share of problems "
            f"that differ, {level_text(level)}"
        )
    return bootstrap_t_mean(d, resamples, seed, level, (-1.0, 1.0) if bounded else None)


def _verdict(
    row: dict[str, Any], keys: list[str], metric: str, correction: str | None, alpha: float
) -> str:
    """One line: which arm is higher on `metric`, or that no difference was shown."""
    if math.isnan(row["p_value"]):
        return "not compared: no problem scored under both arms"
    which = {"holm": "Holm-adjusted p", "bh": "BH-adjusted p", None: "p, unadjusted"}
    p = f"{which[correction]} = {row['p_adjusted']:.3g}"
    arm, base = _label(keys, row["arm"]), _label(keys, row["baseline"])
    if row["significant"]:
        side = "higher" if row["difference"] > 0 else "lower"
        return (
            f"{arm}: {side} {metric} than {base} by {abs(row['difference']):.3g} "
            f"({p} <= {alpha:g})"
        )
    return f"{arm} vs {base}: no difference shown at {alpha:g} ({p})"
