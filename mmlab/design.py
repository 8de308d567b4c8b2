"""How many problems and samples does a claim need, and what will the study cost?

    from mmlab import design
    need = design.sample_size(baseline=0.70, effect=0.05, samples=4)   # paired by default
    need                 # Design(180 problems x 4 samples per arm, paired: ...)
    design.mde(problems=50, samples=8, baseline=0.70)                  # the smallest gain seen
    design.pilot(res.df, by="temperature")     # the assumptions, measured on a pilot run
    design.plan(lab, need, arms=2, max_tokens=4096)   # calls, tokens and USD: a sweep forecast

The model (Miller 2024, "Adding Error Bars to Evals", arXiv 2411.00640 — questions are a
sample from a population, answers are resampled per question, arms are compared on paired
differences; its clustered form of the variance, §4): problem i has a success rate p_ai under
arm a, drawn from a population with mean p_a; a sample's score is Bernoulli(p_ai). The
between-problem spread is the intra-class correlation ``icc`` — the share of one sample's
variance p_a(1 - p_a) that lies between problems (0: every problem alike; 1: each problem
always or never solved) — so a problem's mean over K samples has variance

    p_a (1 - p_a) (icc + (1 - icc) / K) = p_a (1 - p_a) (1 + (K - 1) icc) / K

(the design effect of a cluster of K). Paired (the same problems under both arms), the unit
is a problem's difference d_i = mean_2i - mean_1i, with variance

    icc (p1 q1 + p2 q2) - 2 r icc sqrt(p1 q1 p2 q2) + (1 - icc)(p1 q1 + p2 q2) / K

where ``correlation`` r is that of the two arms' per-problem success rates (how much the
problems hard for one arm are hard for the other). Problems are tested with the paired t
test on d (power by the shifted-t approximation, exact t quantiles), which is what
`mmlab.analysis.compare`'s sign-flip test approaches. Unpaired (each arm its own problems),
the textbook two-proportion formula (Fleiss, Levin & Paik 2003, §4.2; normal approximation)
with each variance multiplied by the design effect — at K = 1 exactly the textbook value:
0.5 -> 0.6 at alpha 0.05, power 0.8 needs 388 per arm. The tests check every size by
simulation under this model (power >= 0.78 at the size returned).

`icc` and `correlation` default to 0.5: guesses, named in every result. Measure them on a
pilot run with `pilot` before paying for the study.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .analysis.frames import as_list, numeric_column, require_columns, successful
from .analysis.intervals import normal_quantile, t_cdf, t_quantile
from .errors import RequestError

if TYPE_CHECKING:
    import pandas as pd

    from .sweep import Forecast

#: How many problems `sample_size` will consider before it says the effect is out of reach.
MAX_PROBLEMS = 10_000_000


@dataclass(frozen=True)
class Design:
    """A study design: problems and samples per problem, the effect it detects, and the
    assumptions that make it so (see the module docstring)."""

    problems: int
    """Problems per arm (paired: the same problems under every arm)."""
    samples: int
    """Samples of each problem under each arm."""
    baseline: float
    """The baseline arm's accuracy over the population of problems."""
    effect: float
    """The gain detected with `power` (`sample_size`: asked for; `mde`: the smallest)."""
    alpha: float
    """Two-sided significance level of the test."""
    power: float
    """The chance the test finds the `effect` when it is there."""
    paired: bool
    """The same problems under both arms (True) or separate problems per arm."""
    icc: float
    """The between-problem share of a sample's variance (intra-class correlation)."""
    correlation: float | None
    """Correlation of the two arms' per-problem success rates (paired designs)."""
    sd: float
    """Standard deviation of one problem's unit: its difference between the arms (paired),
    or its mean under the baseline arm (unpaired)."""
    test: str
    """The test and formula the size comes from."""

    @property
    def calls(self) -> int:
        """Calls for two arms: problems x samples x 2."""
        return self.problems * self.samples * 2

    @property
    def assumptions(self) -> str:
        """The model's assumptions, in words."""
        parts = [f"baseline accuracy {self.baseline:.3g} over the population of problems"]
        if self.paired or self.samples > 1:  # one sample of separate problems: no ICC needed
            parts.append(f"between-problem share of variance (ICC) {self.icc:.3g}")
        if self.paired:
            parts.append(f"correlation {self.correlation:.3g} between the arms' per-problem "
                         "accuracies")  # fmt: skip
        parts.append("problems independent, samples independent given the problem")
        return "; ".join(parts)

    def __str__(self) -> str:
        layout = "paired: the same problems under both arms" if self.paired else (
            "unpaired: separate problems per arm"
        )
        return (
            f"{self.problems} problems x {self.samples} samples per arm ({layout}) detect "
            f"{self.baseline:.3g} -> {self.baseline + self.effect:.3g} "
            f"({self.effect:+.3g}) with power {self.power:.2f} at alpha {self.alpha:g}, "
            f"two-sided; {self.test}. Assumes {self.assumptions}."
        )

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(f"Design({self})")


def _unit(value: Any, name: str, *, closed: bool = False) -> float:
    """`value` as a float in (0, 1) ([0, 1] when `closed`), else RequestError naming it."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise RequestError(f"{name} must be a number; got {value!r}", name) from None
    ok = (0.0 <= v <= 1.0) if closed else (0.0 < v < 1.0)
    if isinstance(value, bool) or not ok:
        where = "[0, 1]" if closed else "(0, 1)"
        raise RequestError(f"{name} must be in {where}; got {value!r}", name)
    return v


def _count(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise RequestError(f"{name} must be an integer >= {low}; got {value!r}", name)
    return int(value)


def _check(
    baseline: Any, samples: Any, alpha: Any, power: Any, icc: Any, correlation: Any
) -> tuple[float, int, float, float, float, float]:
    baseline = _unit(baseline, "baseline")
    samples = _count(samples, "samples", 1)
    alpha = _unit(alpha, "alpha")
    power = _unit(power, "power")
    if power <= alpha:
        raise RequestError(f"power must exceed alpha; got {power} <= {alpha}", "power")
    icc = _unit(icc, "icc", closed=True)
    try:
        r = float(correlation)
    except (TypeError, ValueError):
        raise RequestError(
            f"correlation must be a number; got {correlation!r}", "correlation"
        ) from None
    if isinstance(correlation, bool) or not -1.0 <= r <= 1.0:
        raise RequestError(f"correlation must be in [-1, 1]; got {correlation!r}", "correlation")
    return baseline, samples, alpha, power, icc, r


def unit_variance(
    baseline: float, effect: float, samples: int, icc: float, correlation: float, paired: bool
) -> tuple[float, float]:
    """The variance of one problem's unit under the model (module docstring): paired, its
    difference between the arms (twice, as a pair); unpaired, the per-problem means' variances
    under arm 1 and arm 2."""
    p1, p2 = baseline, baseline + effect
    v1, v2 = p1 * (1 - p1), p2 * (1 - p2)
    within = (1 - icc) / samples
    if paired:
        between = icc * (v1 + v2) - 2 * correlation * icc * math.sqrt(v1 * v2)
        var = max(between, 0.0) + within * (v1 + v2)
        return var, var
    return v1 * (icc + within), v2 * (icc + within)


def paired_power(problems: int, effect: float, sd: float, alpha: float) -> float:
    """Power of the two-sided paired t test with `problems` differences of standard
    deviation `sd` when their mean is `effect` (the shifted central t approximation to the
    noncentral t: P(T_{m-1} > t_{1-alpha/2} - effect sqrt(m) / sd), plus the other tail)."""
    if problems < 2:
        return 0.0
    if sd == 0:
        return 1.0
    dof = problems - 1
    crit = t_quantile(1 - alpha / 2, dof)
    shift = abs(effect) * math.sqrt(problems) / sd
    return t_cdf(shift - crit, dof) + t_cdf(-shift - crit, dof)


def _unpaired_problems(p1: float, p2: float, deff: float, alpha: float, power: float) -> float:
    """The textbook two-proportion sample size per arm, each variance times `deff`."""
    za, zb = normal_quantile(1 - alpha / 2), normal_quantile(power)
    pbar = (p1 + p2) / 2
    root = za * math.sqrt(2 * pbar * (1 - pbar) * deff) + zb * math.sqrt(
        (p1 * (1 - p1) + p2 * (1 - p2)) * deff
    )
    return root**2 / (p2 - p1) ** 2


def unpaired_power(
    problems: int, baseline: float, effect: float, deff: float, alpha: float
) -> float:
    """Power of the two-proportion test (pooled null variance) with `problems` per arm,
    each variance times the design effect `deff` (the formula `sample_size` inverts)."""
    p1, p2 = baseline, baseline + effect
    pbar = (p1 + p2) / 2
    za = normal_quantile(1 - alpha / 2)
    spread = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) * deff / problems)
    null = math.sqrt(2 * pbar * (1 - pbar) * deff / problems)
    return 1 - _phi((za * null - abs(effect)) / spread) + _phi((-za * null - abs(effect)) / spread)


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def _test_text(paired: bool, samples: int) -> str:
    if paired:
        return (
            "paired t test on per-problem differences (power by the shifted-t approximation)"
        )
    effect = "" if samples == 1 else ", variances times the design effect (1 + (K-1) ICC) / K"
    return f"two-proportion z test, textbook formula (Fleiss et al. 2003){effect}"


def sample_size(
    baseline: float,
    effect: float,
    samples: int = 1,
    alpha: float = 0.05,
    power: float = 0.8,
    paired: bool = True,
    *,
    icc: float = 0.5,
    correlation: float = 0.5,
) -> Design:
    """The fewest problems per arm that detect `baseline` -> `baseline + effect` with `power`.

    Two-sided at `alpha`, `samples` samples of each problem under each arm. Paired (the same
    problems under both arms; the default, and what `mmlab.analysis.compare` analyses): the
    smallest m whose paired t test has the power, with the per-problem difference's variance
    from the model (module docstring: `icc`, `correlation`). Unpaired: the textbook
    two-proportion formula (0.5 -> 0.6, alpha 0.05, power 0.8 -> 388 per arm at K = 1), each
    variance times the design effect (1 + (K - 1) icc) / K. `effect` may be negative (a
    drop). Returns a `Design` (``.problems``; ``str()`` says it with its assumptions).
    RequestError naming the argument for values out of range (an effect of 0, or one that
    takes the accuracy outside (0, 1)).
    """
    baseline, samples, alpha, power, icc, r = _check(
        baseline, samples, alpha, power, icc, correlation
    )
    effect = _effect(baseline, effect)
    var1, var2 = unit_variance(baseline, effect, samples, icc, r, paired)
    deff = icc + (1 - icc) / samples
    if paired:
        sd = math.sqrt(var1)
        # start at the normal approximation, then walk to the smallest m the t test allows
        z = normal_quantile(1 - alpha / 2) + normal_quantile(power)
        m = max(2, math.ceil((z * sd / effect) ** 2))
        while m > 2 and paired_power(m - 1, effect, sd, alpha) >= power:
            m -= 1
        while paired_power(m, effect, sd, alpha) < power:
            m += 1
            if m > MAX_PROBLEMS:
                raise RequestError("the effect is too small to detect with any study", "effect")
    else:
        sd = math.sqrt(var1)
        m = max(2, math.ceil(_unpaired_problems(baseline, baseline + effect, deff, alpha,
                                                power) - 1e-9))  # fmt: skip
    return Design(problems=m, samples=samples, baseline=baseline, effect=effect, alpha=alpha,
                  power=power, paired=paired, icc=icc, correlation=r if paired else None,
                  sd=sd, test=_test_text(paired, samples))  # fmt: skip


def _effect(baseline: float, effect: Any) -> float:
    try:
        e = float(effect)
    except (TypeError, ValueError):
        raise RequestError(f"effect must be a number; got {effect!r}", "effect") from None
    if isinstance(effect, bool) or e == 0 or not 0.0 < baseline + e < 1.0:
        raise RequestError(
            f"effect must be non-zero and keep baseline + effect in (0, 1); got {effect!r}",
            "effect",
        )
    return e


def power_of(
    problems: int,
    samples: int,
    baseline: float,
    effect: float,
    alpha: float = 0.05,
    paired: bool = True,
    *,
    icc: float = 0.5,
    correlation: float = 0.5,
) -> float:
    """The power of a design with `problems` per arm to detect `effect` (the model and tests
    of `sample_size`)."""
    baseline, samples, alpha, _, icc, r = _check(baseline, samples, alpha, 0.99, icc, correlation)
    problems = _count(problems, "problems", 2)
    effect = _effect(baseline, effect)
    var1, _ = unit_variance(baseline, effect, samples, icc, r, paired)
    if paired:
        return paired_power(problems, effect, math.sqrt(var1), alpha)
    return unpaired_power(problems, baseline, effect, icc + (1 - icc) / samples, alpha)


def mde(
    problems: int,
    samples: int,
    baseline: float,
    alpha: float = 0.05,
    power: float = 0.8,
    paired: bool = True,
    *,
    icc: float = 0.5,
    correlation: float = 0.5,
) -> Design:
    """The minimum detectable effect: the smallest gain over `baseline` that `problems` per
    arm and `samples` per problem find with `power` (two-sided at `alpha`; the model and tests
    of `sample_size`, solved for the effect by bisection to 1e-6).

    A `Design` whose ``effect`` is the MDE; NaN when even baseline -> 1 is out of reach
    (``test`` then says so). RequestError naming the argument for values out of range.
    """
    baseline, samples, alpha, power, icc, r = _check(
        baseline, samples, alpha, power, icc, correlation
    )
    problems = _count(problems, "problems", 2)

    def enough(e: float) -> bool:
        return power_of(problems, samples, baseline, e, alpha, paired, icc=icc,
                        correlation=r) >= power  # fmt: skip

    low, high = 0.0, (1 - baseline) * (1 - 1e-9)
    test = _test_text(paired, samples)
    if not enough(high):
        effect = math.nan
        test += f"; no gain up to accuracy 1 reaches power {power:g} with {problems} problems"
    else:
        while high - low > 1e-6:
            mid = (low + high) / 2
            low, high = (low, mid) if enough(mid) else (mid, high)
        effect = high
    var1, _ = unit_variance(baseline, 0.0 if math.isnan(effect) else effect, samples, icc, r,
                            paired)  # fmt: skip
    return Design(problems=problems, samples=samples, baseline=baseline, effect=effect,
                  alpha=alpha, power=power, paired=paired, icc=icc,
                  correlation=r if paired else None, sd=math.sqrt(var1), test=test)  # fmt: skip


def pilot(
    df: pd.DataFrame, by: str | Sequence[str] | None = None, metric: str = "score"
) -> dict[str, Any]:
    """The model's assumptions measured on a pilot run (0/1 scores, two or more samples of
    each problem): ``baseline`` (mean accuracy over problems; the first arm's with `by`),
    ``icc`` and, with `by` naming two or more arms, ``correlation`` (of the first two arms'
    per-problem rates), plus ``problems`` and ``samples`` (fewest per problem).

    Method of moments, per arm: the per-problem means ybar_i have variance
    sigma_b^2 + E[p(1 - p)] / K, and ybar_i (1 - ybar_i) / (K - 1) estimates E[p(1 - p)] / K
    without bias, so sigma_b^2 = Var(ybar) - mean(ybar (1 - ybar) / (K - 1)) and
    icc = sigma_b^2 / (p (1 - p)), clipped to [0, 1]; the correlation is the covariance of
    the two arms' ybar over shared problems (sampling noise is independent across arms)
    over sigma_b1 sigma_b2, clipped to [-1, 1]. Pass the result to `sample_size` / `mde`:
    ``sample_size(effect=0.05, samples=4, **{k: v for k, v in p.items() if k in
    ("baseline", "icc", "correlation")})``. RequestError for a missing column, or problems
    with a single sample (no within-problem variance to separate).
    """
    import numpy as np

    keys = [] if by is None else as_list(by)
    data = successful(df)
    require_columns(data, [*keys, "prompt_id", metric], "design.pilot")
    data = data.assign(_y=numeric_column(data, metric, "design.pilot"))
    data = data[data["_y"].notna()]
    if data.empty:
        raise RequestError("design.pilot: no scored rows", metric)
    arm = data.groupby(keys, sort=True, dropna=False).ngroup() if keys else 0
    per = data.assign(_arm=arm).groupby(["_arm", "prompt_id"], sort=True)["_y"].agg(
        ["mean", "count"]
    )
    if int(per["count"].min()) < 2:
        raise RequestError(
            "design.pilot needs two or more samples of every problem (the within-problem "
            "variance separates the between-problem spread)", "sample"
        )
    out: dict[str, Any] = {"samples": int(per["count"].min())}
    arms = sorted(per.index.get_level_values("_arm").unique())
    spread = {}
    for a in arms[:2]:
        part = per.loc[a]
        y, k = part["mean"].to_numpy(), part["count"].to_numpy()
        p = float(y.mean())
        between = float(np.var(y, ddof=1) - np.mean(y * (1 - y) / (k - 1))) if len(y) > 1 else 0.0
        spread[a] = max(between, 0.0)
        if a == arms[0]:
            out["baseline"] = p
            out["problems"] = len(y)
            out["icc"] = min(1.0, spread[a] / (p * (1 - p))) if 0 < p < 1 else 0.0
    if len(arms) >= 2:
        both = per["mean"].unstack("_arm")[arms[:2]].dropna()
        cov = float(np.cov(both.to_numpy().T, ddof=1)[0, 1]) if len(both) > 1 else 0.0
        scale = math.sqrt(spread[arms[0]] * spread[arms[1]])
        out["correlation"] = max(-1.0, min(1.0, cov / scale)) if scale > 0 else 0.0
    return out


@dataclass(frozen=True)
class DesignPlan:
    """What a `Design` costs on a `Lab`: a sweep forecast, scaled to the design's problems
    when the problem set given is smaller."""

    design: Design
    forecast: Forecast
    """The forecast of the sweep built: `priced` problems x the arms x the samples."""
    arms: int
    priced: int
    """Problems in the sweep that was priced."""
    scale: float
    """Design calls / calls in the sweep priced (1 when the problem set was large enough)."""

    @property
    def calls(self) -> int:
        """Calls the design makes: problems x samples x arms (for an unpaired design each arm
        has its own problems: the same count)."""
        return self.design.problems * self.design.samples * self.arms

    @property
    def expected_usd(self) -> float:
        """Expected USD at the endpoint's prices (the forecast's, scaled)."""
        return self.forecast.expected_usd * self.scale

    @property
    def worst_usd(self) -> float:
        """Worst-case USD: every call using its whole completion cap (scaled)."""
        return self.forecast.worst_usd * self.scale

    @property
    def m1_expected_usd(self) -> float:
        """Expected USD at MiniMax M1 list prices (scaled)."""
        return self.forecast.m1_expected_usd * self.scale

    @property
    def expected_tokens(self) -> int:
        """Expected prompt + completion tokens (scaled)."""
        f = self.forecast
        return round((f.prompt_tokens + f.expected_completion_tokens) * self.scale)

    def __str__(self) -> str:
        basis = "" if self.scale == 1 else (
            f" (priced on {self.priced} problems, scaled x{self.scale:.3g})"
        )
        return (
            f"{self.design}\n{self.calls:,} calls ({self.design.problems} problems x "
            f"{self.design.samples} samples x {self.arms} arms){basis}: ~{self.expected_tokens:,}"
            f" tokens, expected ${self.expected_usd:.4f}, worst case ${self.worst_usd:.4f} "
            f"({self.forecast.price_ref}); at M1 list prices ${self.m1_expected_usd:.4f}"
        )

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


def plan(
    lab: Any,
    design: Design,
    problems: Any = None,
    arms: Any = 2,
    **fixed: Any,
) -> DesignPlan:
    """Price `design` on `lab`: calls, tokens and USD, through the forecast sweeps use.

    Builds the sweep the study would run — `design.problems` of `problems` (a list of
    prompts or a problems frame, as `Lab.sweep` takes; default the shipped set,
    `mmlab.problems.load_problems`) x the arms x ``design.samples`` repeats, with the
    `fixed` parameters (``max_tokens=...``, ``reasoning=...``) — and calls its
    ``forecast()``: the same pricing, logged-length learning and cache accounting as any
    sweep. `arms`: a parameter space or list of points (the arms' parameters), or a number
    of arms run with the same parameters (one point priced, its forecast times the number).
    When `problems` holds fewer problems than the design needs, the forecast of those is
    scaled up (``scale``); cached cells count as free, as in any forecast.
    """
    from .problems import load_problems

    if not isinstance(design, Design):
        raise RequestError("plan needs a Design from design.sample_size or design.mde",
                           "design")  # fmt: skip
    if problems is None:
        problems = load_problems()
    rows = problems if hasattr(problems, "iloc") else list(problems)
    available = len(rows)
    if available == 0:
        raise RequestError("plan needs at least one problem to price", "problems")
    used = min(available, design.problems)
    head = rows.iloc[:used] if hasattr(rows, "iloc") else rows[:used]
    if isinstance(arms, int) and not isinstance(arms, bool):
        count = _count(arms, "arms", 1)
        sweep = lab.sweep(head, None, repeats=design.samples, **fixed)
        per_arm = 1.0 * count
    else:
        sweep = lab.sweep(head, arms, repeats=design.samples, **fixed)
        count = len(sweep.points)
        per_arm = 1.0
    forecast = sweep.forecast()
    return DesignPlan(design=design, forecast=forecast, arms=count, priced=used,
                      scale=per_arm * design.problems / used)  # fmt: skip
