"""Study design (`mmlab.design`): sizes against the textbook formula and closed forms, power
checked by simulation under the stated model, pilots, and the price of a design on a Lab."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from mmlab import design, grid
from mmlab.analysis.intervals import t_cdf, t_quantile
from mmlab.errors import RequestError

Z = NormalDist().inv_cdf


def textbook(p1: float, p2: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The two-proportion sample size per arm (Fleiss et al.), unrounded."""
    pbar = (p1 + p2) / 2
    root = Z(1 - alpha / 2) * math.sqrt(2 * pbar * (1 - pbar)) + Z(power) * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2)
    )
    return root**2 / (p2 - p1) ** 2


def test_unpaired_single_sample_is_the_textbook_value():
    need = design.sample_size(0.5, 0.1, paired=False)
    assert need.problems == 388 and textbook(0.5, 0.6) == pytest.approx(387.3, abs=0.05)
    assert need.calls == 388 * 2 and not need.paired and need.correlation is None
    for p1, effect, alpha, power in ((0.2, 0.1, 0.05, 0.8), (0.7, -0.15, 0.01, 0.9),
                                     (0.05, 0.05, 0.05, 0.8)):  # fmt: skip
        got = design.sample_size(p1, effect, alpha=alpha, power=power, paired=False).problems
        assert got == math.ceil(textbook(p1, p1 + effect, alpha, power))
    # several samples of each problem: each variance times the design effect (1 + (K-1) icc)/K
    for k, icc in ((4, 0.5), (8, 0.2), (16, 1.0), (2, 0.0)):
        got = design.sample_size(0.5, 0.1, samples=k, paired=False, icc=icc).problems
        assert got == math.ceil(textbook(0.5, 0.6) * (1 + (k - 1) * icc) / k - 1e-9)
    text = str(need)
    assert "388 problems x 1 samples per arm (unpaired" in text and "0.5 -> 0.6" in text
    assert "ICC" not in text  # one sample of separate problems: the spread does not enter


def test_paired_size_is_the_smallest_the_paired_t_test_allows():
    need = design.sample_size(0.5, 0.1, samples=4, icc=0.5, correlation=0.7)
    p1q1, p2q2 = 0.25, 0.24
    var = 0.5 * (p1q1 + p2q2) - 2 * 0.7 * 0.5 * math.sqrt(p1q1 * p2q2) + 0.5 * (p1q1 + p2q2) / 4
    assert need.sd == pytest.approx(math.sqrt(var))

    def power(m: int) -> float:  # P(T > t_crit - shift) + P(T < -t_crit - shift), T ~ t(m - 1)
        crit, shift = t_quantile(0.975, m - 1), 0.1 * math.sqrt(m) / need.sd
        return t_cdf(shift - crit, m - 1) + t_cdf(-shift - crit, m - 1)

    assert power(need.problems) >= 0.8 > power(need.problems - 1)
    assert "paired: the same problems" in str(need) and "correlation 0.7" in str(need)
    # pairing on shared difficulty needs fewer problems than separate problems per arm
    apart = design.sample_size(0.5, 0.1, samples=4, icc=0.5, paired=False)
    assert need.problems < apart.problems
    # more correlation between the arms, fewer problems; a drop is as valid as a gain
    assert design.sample_size(0.5, 0.1, samples=4, correlation=0.9).problems < need.problems
    assert design.sample_size(0.6, -0.1, samples=4, icc=0.5, correlation=0.7).problems == (
        need.problems
    )


# --- power by simulation under the stated model ------------------------------------------------
def problem_pool(mu1: float, mu2: float, icc: float, c: float, n: int = 100_000, seed: int = 0):
    """A population of problems: per-problem success rates under arm 1 and arm 2, each arm's
    Beta with mean mu_a and ICC `icc`, dependent through a Gaussian copula (parameter `c`,
    on ranks: no Beta quantile needed). Returns the rates and the pool's own moments."""
    rng = np.random.default_rng(seed)
    s = 1 / icc - 1
    p1 = np.sort(rng.beta(mu1 * s, (1 - mu1) * s, n))
    p2 = np.sort(rng.beta(mu2 * s, (1 - mu2) * s, n))
    z1 = rng.standard_normal(n)
    z2 = c * z1 + math.sqrt(1 - c * c) * rng.standard_normal(n)
    a, b = np.empty(n), np.empty(n)
    a[np.argsort(z1)], b[np.argsort(z2)] = p1, p2
    m1, m2 = a.mean(), b.mean()
    icc_pool = (a.var() / (m1 * (1 - m1)) + b.var() / (m2 * (1 - m2))) / 2
    return a, b, {"baseline": m1, "effect": m2 - m1, "icc": icc_pool,
                  "correlation": float(np.corrcoef(a, b)[0, 1])}  # fmt: skip


def paired_power(a, b, m: int, k: int, studies: int = 2000, seed: int = 1) -> float:
    """Share of simulated paired studies (m problems from the pool, k samples per arm) whose
    paired t test rejects at 0.05."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(studies, m))
    d = (rng.binomial(k, b[idx]) - rng.binomial(k, a[idx])) / k
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(m))
    return float((np.abs(t) > t_quantile(0.975, m - 1)).mean())


@pytest.mark.parametrize(
    ("mu1", "effect", "k", "icc", "c"),
    [(0.5, 0.1, 4, 0.5, 0.7), (0.7, 0.05, 8, 0.6, 0.8), (0.3, 0.1, 1, 0.5, 0.5)],
)
def test_paired_design_has_its_power_in_simulation(mu1, effect, k, icc, c):
    a, b, model = problem_pool(mu1, mu1 + effect, icc, c)
    need = design.sample_size(samples=k, **model)
    # the model's variance of a per-problem difference is the pool's (law of total variance)
    d_var = np.var(b - a) + ((a * (1 - a)).mean() + (b * (1 - b)).mean()) / k
    assert need.sd**2 == pytest.approx(d_var, rel=0.02)
    got = paired_power(a, b, need.problems, k)
    assert got >= 0.78, (need.problems, got)
    # and not by oversizing: 70% of the problems fall clearly short
    assert paired_power(a, b, math.floor(0.7 * need.problems), k) < 0.75


def test_unpaired_designs_have_their_power_in_simulation():
    rng = np.random.default_rng(3)
    # the textbook: 388 per arm, one sample, the pooled two-proportion z test
    x1, x2 = rng.binomial(388, 0.5, 4000), rng.binomial(388, 0.6, 4000)
    pooled = (x1 + x2) / 776
    z = (x2 - x1) / 388 / np.sqrt(2 * pooled * (1 - pooled) / 388)
    assert (np.abs(z) > Z(0.975)).mean() >= 0.78
    # clustered: separate Beta problems per arm, k samples, a z test on per-problem means
    for mu1, effect, k, icc in ((0.5, 0.1, 4, 0.5), (0.3, 0.15, 4, 0.8)):
        m = design.sample_size(mu1, effect, samples=k, icc=icc, paired=False).problems
        s = 1 / icc - 1
        mu2 = mu1 + effect
        y1 = rng.binomial(k, rng.beta(mu1 * s, (1 - mu1) * s, (2000, m))) / k
        y2 = rng.binomial(k, rng.beta(mu2 * s, (1 - mu2) * s, (2000, m))) / k
        z = (y2.mean(1) - y1.mean(1)) / np.sqrt(y1.var(1, ddof=1) / m + y2.var(1, ddof=1) / m)
        assert (np.abs(z) > Z(0.975)).mean() >= 0.78, (mu1, k, m)


def test_power_of_and_mde_invert_sample_size():
    need = design.sample_size(0.7, 0.05, samples=8, icc=0.6, correlation=0.8)
    assert design.power_of(need.problems, 8, 0.7, 0.05, icc=0.6, correlation=0.8) >= 0.8
    found = design.mde(need.problems, 8, 0.7, icc=0.6, correlation=0.8)
    assert found.effect <= 0.05 and found.effect == pytest.approx(0.05, abs=0.003)
    assert found.problems == need.problems and "0.7 -> 0.75" in str(found)
    unpaired = design.mde(388, 1, 0.5, paired=False)
    assert unpaired.effect == pytest.approx(0.1, abs=0.0005)
    # lm-evaluation-harness #4017's figure: ~15.5 points at n = 164, one sample, unpaired, 50%
    assert design.mde(164, 1, 0.5, paired=False).effect == pytest.approx(0.155, abs=0.005)
    # three problems cannot show any gain at 80%: NaN, and it says so
    none = design.mde(3, 1, 0.5)
    assert math.isnan(none.effect) and "no gain up to accuracy 1" in none.test


def test_pilot_measures_the_assumptions():
    a, b, model = problem_pool(0.6, 0.7, 0.4, 0.75, n=20_000, seed=5)
    rng = np.random.default_rng(6)
    rows = []
    for arm, rates in (("x", a), ("y", b)):
        hits = rng.random((len(rates), 8)) < rates[:, None]
        rows.append({"prompt_id": np.repeat(np.arange(len(rates)), 8), "arm": arm,
                     "score": hits.ravel().astype(float)})  # fmt: skip
    import pandas as pd

    df = pd.concat([pd.DataFrame(r) for r in rows], ignore_index=True)
    got = design.pilot(df, by="arm")
    assert got["baseline"] == pytest.approx(model["baseline"], abs=0.01)
    assert got["icc"] == pytest.approx(0.4, abs=0.03)
    assert got["correlation"] == pytest.approx(model["correlation"], abs=0.04)
    assert (got["samples"], got["problems"]) == (8, 20_000)
    with pytest.raises(RequestError) as info:
        design.pilot(df.drop_duplicates(["prompt_id", "arm"]), by="arm")
    assert info.value.field == "sample"
    with pytest.raises(RequestError, match="scorer") as info:
        design.pilot(df.drop(columns="score"))
    assert info.value.field == "score"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: design.sample_size(1.2, 0.1), "baseline"),
        (lambda: design.sample_size(0.5, 0.0), "effect"),
        (lambda: design.sample_size(0.95, 0.1), "effect"),
        (lambda: design.sample_size(0.5, 0.1, samples=0), "samples"),
        (lambda: design.sample_size(0.5, 0.1, power=0.04), "power"),
        (lambda: design.sample_size(0.5, 0.1, alpha=0), "alpha"),
        (lambda: design.sample_size(0.5, 0.1, icc=1.5), "icc"),
        (lambda: design.sample_size(0.5, 0.1, correlation=2), "correlation"),
        (lambda: design.sample_size(0.5, "big"), "effect"),
        (lambda: design.mde(1, 4, 0.5), "problems"),
        (lambda: design.mde(10, 4, 0.5, power=1.0), "power"),
    ],
)
def test_bad_design_input(call, field):
    with pytest.raises(RequestError) as info:
        call()
    assert info.value.field == field


# --- the price of a design ---------------------------------------------------------------------
def test_plan_prices_a_design_through_the_sweep_forecast(lab, standin):
    from mmlab.problems import load_problems

    problems = load_problems()  # 48 shipped problems
    small = design.sample_size(0.5, 0.2, samples=2, icc=0.5, correlation=0.8)
    assert small.problems <= len(problems)
    priced = design.plan(lab, small, problems, arms=grid(temperature=[0.0, 1.0]),
                         max_tokens=256)  # fmt: skip
    assert priced.arms == 2 and priced.scale == 1 and priced.priced == small.problems
    assert priced.calls == small.problems * 2 * 2 == priced.forecast.to_call
    # the same cells priced as a sweep would be: what the user's own forecast says
    own = lab.sweep(problems.iloc[: small.problems], grid(temperature=[0.0, 1.0]), repeats=2,
                    max_tokens=256).forecast()  # fmt: skip
    assert priced.expected_usd == pytest.approx(own.expected_usd) and own.expected_usd > 0
    assert priced.worst_usd == pytest.approx(own.worst_usd)
    # a number of arms prices one point and counts it that many times
    counted = design.plan(lab, small, problems, arms=2, max_tokens=256)
    assert counted.expected_usd == pytest.approx(priced.expected_usd)
    # a design larger than the problem set: the forecast of what there is, scaled
    big = design.sample_size(0.5, 0.05, samples=4)
    scaled = design.plan(lab, big, problems.head(10), arms=2, max_tokens=256)
    assert scaled.priced == 10 and scaled.scale == pytest.approx(2 * big.problems / 10)
    assert scaled.calls == big.problems * 4 * 2
    assert scaled.expected_usd == pytest.approx(scaled.forecast.expected_usd * scaled.scale)
    text = str(scaled)
    assert f"{scaled.calls:,} calls" in text and "scaled" in text and "expected $" in text
    assert standin.seen == []  # pricing sends nothing
    with pytest.raises(RequestError) as info:
        design.plan(lab, 100)
    assert info.value.field == "design"
