"""Adaptive sampling's core (`mmlab.sequential`): confidence sequences, the round scheduler,
paired decisions, simulation.

Everything here but the last test is pure computation with fixed seeds: no network, no sleeps.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from helpers import arms_sweep

from mmlab import stop
from mmlab.errors import RequestError
from mmlab.sequential import (
    AdaptiveScheduler,
    ConfidenceSequence,
    simulate,
    summarize_simulations,
)
from mmlab.stop import budget, ci_width, decided, max_repeats

N_STREAMS = 1000
HORIZON = 100
Z95 = 1.959963984540054


# --- confidence sequences ---------------------------------------------------------------------
def _stream(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    if kind == "bernoulli":
        return (rng.random((N_STREAMS, HORIZON)) < 0.3).astype(float), 0.3
    return rng.beta(2.0, 5.0, (N_STREAMS, HORIZON)), 2.0 / 7.0


def _time_uniform_coverage(xs: np.ndarray, mu: float, method: str) -> float:
    """Share of streams whose CS contains `mu` after EVERY observation 1..HORIZON."""
    covered = 0
    for row in xs:
        cs = ConfidenceSequence(0.05, method)
        for x in row:
            cs.update(x)
            if not cs.lower <= mu <= cs.upper:
                break
        else:
            covered += 1
    return covered / len(xs)


def _peeking_coverage(xs: np.ndarray, mu: float, interval: str, start: int = 10) -> float:
    """Share of streams whose fixed-n 95% interval, recomputed after every observation from
    `start` on (peeking), contains `mu` every time."""
    n = np.arange(1, xs.shape[1] + 1)
    mean = np.cumsum(xs, axis=1) / n
    if interval == "wilson":
        z2 = Z95**2
        centre = (mean + z2 / (2 * n)) / (1 + z2 / n)
        half = Z95 * np.sqrt(mean * (1 - mean) / n + z2 / (4 * n**2)) / (1 + z2 / n)
    else:  # Student-t with the normal quantile (n >= 10; slightly narrower than t)
        var = (np.cumsum(xs**2, axis=1) - n * mean**2) / np.maximum(n - 1, 1)
        half = Z95 * np.sqrt(np.maximum(var, 0) / n)
        centre = mean
    inside = (centre - half <= mu) & (mu <= centre + half)
    return float(inside[:, start - 1 :].all(axis=1).mean())


@pytest.mark.slow
@pytest.mark.parametrize("method", ["betting", "eb"])
@pytest.mark.parametrize("kind", ["bernoulli", "beta"])
def test_cs_time_uniform_coverage(method, kind):
    xs, mu = _stream(kind, np.random.default_rng(2024))
    assert _time_uniform_coverage(xs, mu, method) >= 0.94


@pytest.mark.slow
@pytest.mark.parametrize("method", ["betting", "eb"])
def test_cs_covers_average_mean_of_heterogeneous_rounds(method):
    # one round = 10 independent cells with different means (10 problems): the CS fed with
    # update_round must cover the average mean at every round (the AM-GM argument)
    rng = np.random.default_rng(7)
    ps = np.linspace(0.05, 0.95, 10)
    ps = np.where(np.arange(10) < 5, ps * 0.6, ps)  # skewed, mean != 0.5
    mu = float(ps.mean())
    covered = 0
    for _ in range(N_STREAMS):
        cs = ConfidenceSequence(0.05, method)
        for _r in range(30):
            cs.update_round((rng.random(10) < ps).astype(float))
            if not cs.lower <= mu <= cs.upper:
                break
        else:
            covered += 1
    assert covered / N_STREAMS >= 0.94


def test_fixed_n_intervals_lose_coverage_when_peeked_at():
    # the control: the same streams, a 95% Wilson (Bernoulli) or t (Beta) interval re-checked
    # after every observation from n=10 on, covers far less often than 95%
    rng = np.random.default_rng(2024)
    xs, mu = _stream("bernoulli", rng)
    wilson = _peeking_coverage(xs, mu, "wilson")
    betting = _time_uniform_coverage(xs, mu, "betting")
    assert wilson < 0.85 < 0.94 <= betting
    xs, mu = _stream("beta", rng)
    t_int = _peeking_coverage(xs, mu, "t")
    assert t_int < 0.85
    # ...while each fixed-n interval on its own, at n = HORIZON only, is fine (~95%)
    n = HORIZON
    mean = xs.mean(axis=1)
    half = Z95 * xs.std(axis=1, ddof=1) / math.sqrt(n)
    assert 0.92 <= float(((mean - half <= mu) & (mu <= mean + half)).mean()) <= 0.98


@pytest.mark.parametrize("method", ["betting", "eb"])
def test_cs_narrows_contains_mean_and_stays_in_unit_interval(method):
    rng = np.random.default_rng(11)
    for seed_stream in range(5):
        xs = (rng.random(400) < 0.2 + 0.15 * seed_stream).astype(float)
        cs = ConfidenceSequence(0.05, method)
        widths = []
        for i, x in enumerate(xs):
            cs.update(x)
            widths.append(cs.width)
            assert 0.0 <= cs.lower <= cs.upper <= 1.0
            assert cs.lower <= cs.mean <= cs.upper
            assert cs.mean == pytest.approx(xs[: i + 1].mean())
        widths = np.array(widths)
        assert (np.diff(widths) <= 1e-12).all()  # running intersection: never widens
        assert widths[-1] < 0.6 * widths[49] < 0.6 * widths[0]
        assert cs.n == 400


def test_cs_betting_is_tighter_than_eb_on_average():
    rng = np.random.default_rng(5)
    xs = (rng.random((100, 200)) < 0.5).astype(float)
    w = {}
    for method in ("betting", "eb"):
        widths = []
        for row in xs:
            cs = ConfidenceSequence(0.05, method)
            cs.extend(row)
            widths.append(cs.width)
        w[method] = np.mean(widths)
    assert w["betting"] < w["eb"] < 0.4


def test_cs_degenerate_streams_and_text():
    cs = ConfidenceSequence(0.05)
    assert (cs.lower, cs.upper, cs.n) == (0.0, 1.0, 0) and math.isnan(cs.mean)
    cs.extend([1.0] * 60)
    assert cs.upper == 1.0 and cs.lower > 0.85
    cs = ConfidenceSequence(0.05, "eb")
    cs.update_round([0.0] * 200)  # one bet, fixed before the batch: cautious
    assert cs.lower == 0.0 and 0.05 < cs.upper < 0.2
    assert ConfidenceSequence(0.05).method_text == (
        "betting CS (Waudby-Smith & Ramdas 2024, hedged capital, predictable plug-in), alpha=0.05"
    )
    assert ConfidenceSequence(0.1, "eb").method_text == (
        "empirical-Bernstein CS (Waudby-Smith & Ramdas 2024 predictable plug-in; "
        "Howard et al. 2021), alpha=0.1"
    )


def test_cs_bad_input():
    for alpha in (0, 1, 1.5, -0.1, "x"):
        with pytest.raises(RequestError) as e:
            ConfidenceSequence(alpha)
        assert e.value.field == "alpha"
    with pytest.raises(RequestError) as e:
        ConfidenceSequence(0.05, "bootstrap")
    assert e.value.field == "method"
    cs = ConfidenceSequence()
    for x in (1.5, -0.1, float("nan"), None):
        with pytest.raises(RequestError) as e:
            cs.update(x)
        assert e.value.field == "x"
    with pytest.raises(RequestError):
        cs.update_round([0.5, 2.0])
    assert cs.n == 0  # nothing half-added


# --- the scheduler ----------------------------------------------------------------------------
ACC = {"a": 0.2, "b": 0.5, "c": 0.9}


def _cells(arms=("a", "b", "c"), problems=10, repeats=30, extra=None) -> pd.DataFrame:
    """Sweep-shaped cells: prompt -> point -> sample, ids in that order."""
    rows = []
    for p in range(problems):
        for arm in arms:
            for s in range(repeats):
                rows.append(
                    {
                        "cell": len(rows),
                        "prompt_id": f"p{p}",
                        "arm": arm,
                        "sample": s,
                        **(extra or {}),
                    }
                )
    return pd.DataFrame(rows)


def _scores(cells: pd.DataFrame, acc=ACC, seed=0) -> dict[int, float]:
    """A fixed score for every cell: Bernoulli(acc of its arm, +/- 0.1 by problem)."""
    rng = np.random.default_rng(seed)
    u = rng.random(len(cells))
    offset = {f"p{p}": 0.1 * (p % 3 - 1) for p in range(100)}
    return {
        int(c): float(u[i] < min(1.0, max(0.0, acc[a] + offset[pid])))
        for i, (c, a, pid) in enumerate(zip(cells.cell, cells.arm, cells.prompt_id, strict=True))
    }


def _run(sched: AdaptiveScheduler, scores, usd=0.01) -> list[list[int]]:
    rounds = []
    while ids := sched.next_round():
        rounds.append(ids)
        for c in ids:
            sched.observe(c, scores(c) if callable(scores) else scores[c], usd)
    return rounds


def test_never_repeats_a_cell_and_respects_repeats():
    cells = _cells(repeats=6)
    sched = AdaptiveScheduler(cells, ci_width(width=0.001, by="arm"), repeats=6)
    rounds = _run(sched, _scores(cells))
    flat = [c for r in rounds for c in r]
    assert len(flat) == len(set(flat)) == len(cells)  # never met: the whole fixed design
    assert len(rounds) == sched.round == 6
    sample = dict(zip(cells.cell, cells["sample"], strict=True))
    for r, ids in enumerate(rounds):
        assert ids == sorted(ids) and {sample[c] for c in ids} == {r}
    assert sched.done and sched.stopped_by == "repeats"
    assert sched.next_round() == [] and sched.next_round() == []
    assert sched.worst_case_cells() == list(range(len(cells)))
    s = sched.summary()
    assert s["cells_sampled"] == s["cells_fixed_design"] == len(cells)
    assert s["usd_spent"] == pytest.approx(0.01 * len(cells))


def test_decided_stops_early_and_picks_the_best_arm():
    cells = _cells(repeats=30)
    sched = AdaptiveScheduler(cells, decided("arm"), repeats=30)
    rounds = _run(sched, _scores(cells))
    assert sched.winner == {"arm": "c"}
    assert sched.stopped_by == "decided" and "one arm left (arm='c')" in sched.stopped_reason
    assert len(rounds) < 15
    s = sched.summary()
    assert s["cells_sampled"] < 0.5 * len(cells) and s["rounds"] == len(rounds)
    # the eliminated arms stopped being sampled before the end
    arm = dict(zip(cells.cell, cells.arm, strict=True))
    last = {a: max(i for i, r in enumerate(rounds) if any(arm[c] == a for c in r)) for a in "abc"}
    assert last["a"] < last["c"] and last["b"] <= last["c"] == len(rounds) - 1
    iv = sched.intervals().set_index("arm")
    assert list(iv.live) == [False, False, True]
    # the decision is made on the pairs' difference CSs, not on the per-arm intervals (which
    # may still overlap when it is made): c - b and a - c are certified of one sign
    pairs = sched.pair_intervals().set_index(["arm_a", "arm_b"])
    assert list(pairs.index) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert pairs.loc[("b", "c"), "cs_high"] < 0 and pairs.loc[("a", "c"), "cs_high"] < 0
    assert (pairs.cs_low <= pairs["mean"]).all() and (pairs["mean"] <= pairs.cs_high).all()
    assert list(pairs.live) == [False, False, False]  # a pair stops once an arm is out
    assert pairs.loc[("b", "c"), "n_pairs"] == 10 * pairs.loc[("b", "c"), "n_rounds"]
    assert pairs.loc[("b", "c"), "n_rounds"] == len(rounds)  # b and c live to the end
    assert "on paired differences (alpha 0.05 split over 3 pairs, union bound; paired on " \
        "prompt_id)" in pairs.cs_method.iloc[0]  # fmt: skip
    assert iv.loc["c", "mean"] > iv.loc["b", "mean"] > iv.loc["a", "mean"]
    assert (iv.n_scores == iv.n_rounds * 10).all()
    assert "alpha 0.05 split over 3 arms, union bound" in iv.cs_method.iloc[0]
    assert "alpha=0.01667" in iv.cs_method.iloc[0]
    hist = sched.history()
    assert len(hist) == 3 * len(rounds) and list(hist["round"].unique()) == list(
        range(1, len(rounds) + 1)
    )
    assert (hist.groupby("arm").cs_high.diff().dropna() <= 1e-12).all()  # narrowing


def test_decided_minimize_and_margin():
    cells = _cells(repeats=30)
    sched = AdaptiveScheduler(cells, decided("arm", maximize=False), repeats=30)
    _run(sched, _scores(cells))
    assert sched.winner == {"arm": "a"}
    # two equally good arms never separate; with a margin they are declared equivalent
    same = {"a": 0.5, "b": 0.5}
    cells = _cells(arms=("a", "b"), problems=20, repeats=40)
    sched = AdaptiveScheduler(cells, decided("arm", margin=0.25), repeats=40)
    rounds = _run(sched, _scores(cells, same))
    assert sched.winner is None and len(rounds) < 40
    assert sched.stopped_by == "decided" and "equivalent within margin 0.25" in sched.stopped_reason
    # equivalence is now shown on the CS of the paired difference a - b (it used to take the
    # per-arm intervals, max upper - min lower <= margin, which needs far more rounds)
    pairs = sched.pair_intervals()
    assert len(pairs) == 1 and -0.25 <= pairs.cs_low[0] <= pairs.cs_high[0] <= 0.25
    sched = AdaptiveScheduler(cells, decided("arm"), repeats=40)
    _run(sched, _scores(cells, same))
    assert sched.stopped_by == "repeats" and sched.winner is None
    # out of repeats undecided: no winner, but the reason names the point-estimate leader
    iv = sched.intervals().set_index("arm")
    lead = "a" if iv.loc["a", "mean"] >= iv.loc["b", "mean"] else "b"
    assert sched.leader == {"arm": lead}
    assert sched.stopped_reason == (
        "repeats: all 40 rounds run without a stopping rule firing; decided: no arm "
        f"separated; leading: arm={lead!r} (not significant)"
    )
    assert sched.summary()["winner"] is None


def test_ci_width_stops_when_met_and_drops_narrow_groups_first():
    acc = {"sure": 1.0, "coin": 0.5}
    cells = _cells(arms=("sure", "coin"), repeats=40)
    rule = ci_width(width=0.3, by="arm")
    sched = AdaptiveScheduler(cells, rule, repeats=40)
    rounds = _run(sched, _scores(cells, acc))
    assert sched.stopped_by == "ci_width" and "narrower than 0.3" in sched.stopped_reason
    iv = sched.intervals().set_index("arm")
    assert ((iv.cs_high - iv.cs_low) < 0.3).all()
    assert (iv.cs_low <= iv["mean"]).all() and (iv["mean"] <= iv.cs_high).all()
    assert iv.loc["sure", "n_rounds"] < iv.loc["coin", "n_rounds"] == len(rounds) < 40
    arm = dict(zip(cells.cell, cells.arm, strict=True))
    assert all(arm[c] == "coin" for c in rounds[-1])


def test_ci_width_by_none_groups_by_parameter_point():
    cells = _cells(arms=("a", "b"), repeats=4)
    cells["temperature"] = np.where(cells.arm == "a", 0.0, 1.0)
    cells["max_tokens"] = np.where(cells.prompt_id < "p5", 256, 1024)
    cells = cells.drop(columns="arm")
    sched = AdaptiveScheduler(cells, ci_width(width=0.01), repeats=4)
    _run(sched, lambda c: 0.5)
    iv = sched.intervals()
    assert len(iv) == 4 and set(iv.columns) >= {"temperature", "max_tokens", "cs_method"}
    assert set(zip(iv.temperature, iv.max_tokens, strict=True)) == {
        (0.0, 256),
        (0.0, 1024),
        (1.0, 256),
        (1.0, 1024),
    }
    # point_columns narrows the default (e.g. to leave out prompt metadata)
    sched = AdaptiveScheduler(cells, ci_width(width=0.01), repeats=4, point_columns=["temperature"])
    assert len(sched.intervals()) == 2


def test_budget_stops_before_a_round_would_cross_it():
    cells = _cells(repeats=20)  # 30 cells a round
    # a caller-given worst case: 30 x $0.01 = $0.30 a round; $1.00 allows three rounds
    sched = AdaptiveScheduler(
        cells, ci_width(width=0.001) | budget(1.0), repeats=20, worst_usd_per_cell=0.01
    )
    rounds = _run(sched, _scores(cells), usd=0.01)
    assert len(rounds) == 3 and sched.stopped_by == "budget"
    assert "budget" in sched.stopped_reason and sched.summary()["usd_spent"] <= 1.0
    # without a worst case: the mean observed cost per cell (the first round always runs)
    sched = AdaptiveScheduler(cells, budget(1.0), repeats=20)
    rounds = _run(sched, _scores(cells), usd=0.01)
    assert len(rounds) == 3 and sched.stopped_by == "budget"
    # a per-cell worst-case callback; a budget inside `&` is still a hard limit
    sched = AdaptiveScheduler(
        cells,
        ci_width(width=0.001) & budget(0.5),
        repeats=20,
        worst_usd_per_cell=lambda cell: 0.02 if cell % 2 else 0.0,
    )
    rounds = _run(sched, _scores(cells), usd=0.0)
    assert len(rounds) == 1 and sched.stopped_by == "budget"  # 15 x 0.02 = 0.3 a round
    sched = AdaptiveScheduler(cells, budget(0.1), repeats=20, worst_usd_per_cell=0.01)
    assert sched.done and sched.next_round() == [] and sched.summary()["cells_sampled"] == 0


def test_max_repeats_and_composition():
    cells = _cells(arms=("sure", "coin"), repeats=40)
    acc = {"sure": 1.0, "coin": 0.5}
    scores = _scores(cells, acc)
    sched = AdaptiveScheduler(cells, max_repeats(3), repeats=40)
    assert len(_run(sched, scores)) == 3 and sched.stopped_by == "max_repeats"
    alone = AdaptiveScheduler(cells, ci_width(width=0.3, by="arm"), repeats=40)
    n_ci = len(_run(alone, scores))
    assert 8 < n_ci < 40
    # |: whichever fires first
    sched = AdaptiveScheduler(cells, ci_width(width=0.3, by="arm") | max_repeats(2), repeats=40)
    assert len(_run(sched, scores)) == 2 and sched.stopped_by == "max_repeats"
    sched = AdaptiveScheduler(cells, ci_width(width=0.3, by="arm") | max_repeats(39), repeats=40)
    assert len(_run(sched, scores)) == n_ci and sched.stopped_by == "ci_width"
    # &: both must fire; once ci_width is met the other rule keeps every cell sampled
    sched = AdaptiveScheduler(cells, ci_width(width=0.3, by="arm") & max_repeats(2), repeats=40)
    assert len(_run(sched, scores)) == n_ci
    sched = AdaptiveScheduler(
        cells, ci_width(width=0.3, by="arm") & max_repeats(n_ci + 3), repeats=40
    )
    rounds = _run(sched, scores)
    assert len(rounds) == n_ci + 3 and len(rounds[-1]) == 20
    assert sched.stopped_by == "ci_width & max_repeats"
    assert sched.stopped_reason.startswith("all of: ci_width")
    # decided | ci_width: stops at the earlier; the union of what each needs is sampled
    rule = decided("arm") | ci_width(width=0.05, by="arm")
    sched = AdaptiveScheduler(cells, rule, repeats=40)
    _run(sched, scores)
    assert sched.stopped_by == "decided" and sched.winner == {"arm": "sure"}
    assert set(sched.intervals().rule) == {str(decided("arm")), str(ci_width(width=0.05, by="arm"))}


def test_same_scores_same_decisions():
    cells = _cells(repeats=30)
    scores = _scores(cells, seed=3)
    rule = decided("arm") | ci_width(width=0.2, by="arm") | budget(5.0)
    a = AdaptiveScheduler(cells, rule, repeats=30)
    ra = _run(a, scores)
    # the same cells in another row order, replayed: identical rounds and intervals
    b = AdaptiveScheduler(cells.sample(frac=1.0, random_state=1), rule, repeats=30)
    rb = _run(b, scores)
    assert ra == rb and a.stopped_reason == b.stopped_reason and a.winner == b.winner
    pd.testing.assert_frame_equal(a.intervals(), b.intervals())
    pd.testing.assert_frame_equal(a.history(), b.history())
    assert a.summary() == b.summary()


def test_failed_cells_are_left_out_and_unobserved_cells_count_as_failed():
    cells = _cells(arms=("a", "b"), problems=4, repeats=5)
    sched = AdaptiveScheduler(cells, ci_width(width=0.001, by="arm"), repeats=5)
    arm = dict(zip(cells.cell, cells.arm, strict=True))
    ids = sched.next_round()
    for c in ids:  # arm b: every call failed this round -> no observation for b
        sched.observe(c, None if arm[c] == "b" else 1.0, usd=None)
    iv = sched.intervals().set_index("arm")
    assert iv.loc["a", "n_rounds"] == 1 and iv.loc["b", "n_rounds"] == 0
    assert iv.loc["b", "cs_low"] == 0.0 and iv.loc["b", "cs_high"] == 1.0
    ids = sched.next_round()
    sched.observe(ids[0], 0.0, 0.5)  # the rest never observed
    ids = sched.next_round()
    assert ids and sched.round == 3
    s = sched.summary()
    assert s["failed"] == 4 and s["unobserved"] == len(ids) - 1 and s["usd_spent"] == 0.5
    iv = sched.intervals().set_index("arm")
    assert iv.loc["a", "n_scores"] == 5 and iv.loc["a", "mean"] == pytest.approx(0.8)


def test_observe_rejects_bad_calls():
    cells = _cells(arms=("a", "b"), problems=2, repeats=3)
    sched = AdaptiveScheduler(cells, decided("arm"), repeats=3)
    with pytest.raises(RequestError) as e:
        sched.observe(0, 1.0)  # no round open yet
    assert e.value.field == "cell"
    ids = sched.next_round()
    for bad in (1, 999, "x"):  # cell 1 is repeat 1: not in this round
        with pytest.raises(RequestError) as e:
            sched.observe(bad, 1.0)
        assert e.value.field == "cell"
    for score in (1.5, -0.2, "high"):
        with pytest.raises(RequestError) as e:
            sched.observe(ids[0], score)
        assert e.value.field == "score"
    with pytest.raises(RequestError) as e:
        sched.observe(ids[0], 1.0, usd=-1)
    assert e.value.field == "usd"
    sched.observe(ids[0], True, 0.0)
    with pytest.raises(RequestError) as e:
        sched.observe(ids[0], 1.0)
    assert e.value.field == "cell"


def test_rules_on_other_metrics_take_a_mapping():
    cells = _cells(arms=("a", "b"), problems=3, repeats=3)
    sched = AdaptiveScheduler(cells, ci_width(metric="correct", width=0.5, by="arm"), repeats=3)
    ids = sched.next_round()
    with pytest.raises(RequestError) as e:
        sched.observe(ids[0], 1.0)
    assert e.value.field == "score"
    for c in ids:
        sched.observe(c, {"correct": 1.0, "other": 7})
    assert sched.intervals().n_scores.tolist() == [3, 3]


def test_bad_scheduler_input():
    cells = _cells(arms=("a", "b"), problems=2, repeats=3)
    cases = [
        (lambda: AdaptiveScheduler(cells, decided("model"), repeats=3), "by"),
        (lambda: AdaptiveScheduler(cells, ci_width(by=["arm", "nope"]), repeats=3), "by"),
        (lambda: AdaptiveScheduler(cells, ci_width(by="sample"), repeats=3), "by"),
        (lambda: AdaptiveScheduler(cells[cells.arm == "a"], decided("arm"), repeats=3), "by"),
        (lambda: AdaptiveScheduler(cells, decided("arm"), repeats=0), "repeats"),
        (lambda: AdaptiveScheduler(cells, decided("arm"), repeats=2), "sample"),
        (lambda: AdaptiveScheduler(cells.drop(columns="sample"), budget(1), repeats=3), "cells"),
        (lambda: AdaptiveScheduler(cells, "decided", repeats=3), "rule"),
        (lambda: AdaptiveScheduler(pd.concat([cells, cells]), budget(1), repeats=3), "cell"),
        (lambda: AdaptiveScheduler(cells, budget(1), repeats=3, worst_usd_per_cell=-1),
         "worst_usd_per_cell"),
        (lambda: AdaptiveScheduler(cells, ci_width(), repeats=3, point_columns=["x"]),
         "point_columns"),
    ]  # fmt: skip
    for make, field in cases:
        with pytest.raises(RequestError) as e:
            make()
        assert e.value.field == field


# --- simulation from a logged full grid -------------------------------------------------------
def _full_grid(
    accs=(0.3, 0.5, 0.8), problems=10, logged=32, spread=0.2, seed=0, names=None
) -> pd.DataFrame:
    """A logged non-adaptive sweep: every cell's logged mean is exactly its accuracy
    (arm accuracy + a problem offset in [-spread, spread]); wrong answers are longer.
    Arms are named ``acc<accuracy>``, or `names`."""
    rng = np.random.default_rng(seed)
    offsets = np.linspace(-spread, spread, problems)
    rows = []
    for a, acc in enumerate(accs):
        for i in range(problems):
            ones = round(min(1.0, max(0.0, acc + offsets[i])) * logged)
            scores = np.array([1.0] * ones + [0.0] * (logged - ones))
            rng.shuffle(scores)
            for s, score in enumerate(scores):
                tokens = int(rng.integers(200, 2000) * (1.0 if score else 1.5))
                rows.append(
                    {
                        "prompt_id": f"p{i}",
                        "arm": names[a] if names else f"acc{acc}",
                        "sample": s,
                        "score": score,
                        "cost_usd": tokens * 2e-6,
                        "completion_tokens": tokens,
                    }
                )
    return pd.DataFrame(rows)


def test_simulation_decided_on_a_small_grid():
    # 3 arms at accuracy 0.3 / 0.5 / 0.8 over 10 problems, 32 repeats (the M1 report's AIME
    # sample count), and 20. Paired differences settle 0.5 vs 0.8 in ~7 rounds (the two-
    # interval rule needed ~12 and at 20 repeats picked correctly only ~90% of the time)
    # -- see bench/adaptive_sim.py.
    full = _full_grid()
    sims = simulate(full, decided("arm"), repeats=32, n_sims=200, seed=0)
    s = summarize_simulations(sims)
    assert len(sims) == 200 and s["n_sims"] == 200
    assert s["coverage"] >= 0.94
    assert s["correct_pick"] >= 0.95 and s["wrong_pick"] <= 0.05
    assert s["leader_pick"] >= s["correct_pick"]
    assert s["call_share"] <= 0.5
    assert 0 < s["token_share"] <= 0.5
    assert sims.attrs["fixed_design"] == 3 * 10 * 32
    s = summarize_simulations(simulate(_full_grid(logged=20), decided("arm"), repeats=20,
                                       n_sims=200, seed=0))  # fmt: skip
    assert s["coverage"] >= 0.94 and s["correct_pick"] >= 0.95 and s["call_share"] <= 0.5
    # deterministic for a seed
    again = simulate(full, decided("arm"), repeats=32, n_sims=20, seed=0)
    pd.testing.assert_frame_equal(again, sims.head(20))


def test_simulation_ci_width_and_the_round_unit():
    full = _full_grid(logged=20)
    s = summarize_simulations(
        simulate(full, ci_width(width=0.25, by="arm"), repeats=20, n_sims=100, seed=1)
    )
    assert s["group_coverage"] >= 0.95 and s["coverage"] >= 0.85  # alpha is per group
    assert s["call_share"] < 0.9 and math.isnan(s["correct_pick"])
    # unit="round" (one mean per round) is valid too but, bounded in [0, 1], carries little
    # evidence per round: at 20 repeats it practically never decides
    s = summarize_simulations(
        simulate(full, decided("arm", unit="round"), repeats=20, n_sims=50, seed=1)
    )
    assert s["coverage"] >= 0.94 and s["wrong_pick"] == 0.0 and s["call_share"] > 0.9
    # ...yet at the end the arm leading by point estimate is the best (not a guarantee)
    assert s["correct_pick"] < 0.5 < s["leader_pick"]


def test_simulate_bad_input():
    full = _full_grid(logged=4)
    with pytest.raises(RequestError) as e:
        simulate(full.drop(columns="score"), decided("arm"), repeats=4, n_sims=1)
    assert e.value.field == "full"
    with pytest.raises(RequestError) as e:
        simulate(full, decided("arm"), repeats=4, n_sims=1, by="nope")
    assert e.value.field == "by"
    with pytest.raises(RequestError) as e:
        simulate(full.assign(score=full.score * 2), decided("arm"), repeats=4, n_sims=1)
    assert e.value.field == "full"
    with pytest.raises(RequestError) as e:
        simulate(full, decided("arm"), repeats=4, n_sims=0)
    assert e.value.field == "n_sims"


# --- paired decisions -------------------------------------------------------------------------
def _two_interval_stop(cells: pd.DataFrame, x: np.ndarray, arms, alpha: float, repeats: int):
    """The rule `decided` used before it paired: one CS per arm at ``alpha / K`` fed each
    round's scores, an arm out once another's lower bound exceeds its upper bound. Returns
    the round it would stop at (`repeats` if never) and the per-arm CSs after every round."""
    cs = {a: ConfidenceSequence(alpha / len(arms)) for a in arms}
    live, states = set(arms), []
    arm, sample = cells.arm.to_numpy(), cells["sample"].to_numpy()
    for r in range(repeats):
        for a in live:
            cs[a].update_round(x[(arm == a) & (sample == r)])
        states.append({a: (c.lower, c.upper) for a, c in cs.items()})
        best_low = max(cs[a].lower for a in live)
        live = {a for a in live if cs[a].upper >= best_low}
        if len(live) == 1:
            return r + 1, states
    return repeats, states


def _bernoulli_scores(cells: pd.DataFrame, acc, offsets, seed: int) -> np.ndarray:
    """One seeded Bernoulli score per cell: P(correct) = acc[arm] + offsets[problem]."""
    p = np.array([acc[a] + offsets[int(pid[1:])] for a, pid in zip(cells.arm, cells.prompt_id,
                                                                   strict=True)])  # fmt: skip
    return (np.random.default_rng(seed).random(len(cells)) < np.clip(p, 0, 1)).astype(float)


@pytest.mark.slow
def test_paired_decided_wrong_pick_rate_under_the_null():
    # two arms of the SAME accuracy on every problem (problems of very different difficulty,
    # 0.1..0.9): any winner is an error, and the rule looks after every one of 40 rounds;
    # the union bound over the one pair must keep the error rate <= alpha = 0.1
    full = _full_grid(accs=(0.5, 0.5), names=("x", "y"), logged=40, spread=0.4)
    assert full.groupby("arm").score.mean().tolist() == [0.5, 0.5]
    for method, n_sims in (("betting", 300), ("eb", 150)):
        sims = simulate(full, decided("arm", alpha=0.1, method=method), repeats=40,
                        n_sims=n_sims, seed=3)  # fmt: skip
        assert sims.picked.mean() <= 0.1, method
        assert sims.rounds.mean() > 35  # almost never decides: equal arms do not separate
    # the control, on data of the same law: a fixed-n 90% z-interval on the paired
    # differences, re-checked after every round, "finds" a difference far more often
    rng = np.random.default_rng(3)
    p = 0.5 + np.linspace(-0.4, 0.4, 10)
    xa, xb = (rng.random((2, 300, 40, 10)) < p).astype(float)
    d = (xa - xb + 1) / 2
    flat = d.reshape(300, -1)
    n = np.arange(1, flat.shape[1] + 1)
    mean = np.cumsum(flat, axis=1) / n
    sd = np.sqrt(np.maximum(np.cumsum(flat**2, axis=1) / n - mean**2, 1e-12))
    z = np.abs(mean - 0.5) / (sd / np.sqrt(n))
    peeked = z[:, 10 * np.arange(2, 41) - 1]  # after rounds 2..40
    assert (peeked > 1.645).any(axis=1).mean() > 0.2


def test_paired_decided_needs_fewer_rounds_than_two_intervals():
    # arms 0.5 vs 0.75, ten problems of shared difficulty offsets: the paired rule stops at
    # least as early as the old rule (separate per-arm CSs at alpha/K), computed here on the
    # very same scores, in every run, and far earlier on average
    repeats, arms = 60, ("a", "b")
    cells = _cells(arms=arms, problems=10, repeats=repeats)
    offsets = np.linspace(-0.2, 0.2, 10)
    paired, old, covered = [], [], 0
    for seed in range(30):
        x = _bernoulli_scores(cells, {"a": 0.5, "b": 0.75}, offsets, seed)
        sched = AdaptiveScheduler(cells, decided("arm"), repeats=repeats)
        rounds = _run(sched, dict(zip(cells.cell.tolist(), x.tolist(), strict=True)))
        assert sched.winner == {"arm": "b"}, seed
        stop_old, states = _two_interval_stop(cells, x, arms, 0.05, repeats)
        # the test's per-arm CSs are the scheduler's (same level, same rounds): the old rule
        # is replayed faithfully
        iv = sched.intervals().set_index("arm")
        for a in arms:
            assert (iv.loc[a, "cs_low"], iv.loc[a, "cs_high"]) == states[len(rounds) - 1][a]
        paired.append(len(rounds))
        old.append(stop_old)
        pair = sched.pair_intervals().iloc[0]  # a - b; the truth is -0.25
        covered += pair.cs_low <= -0.25 <= pair.cs_high
    paired, old = np.array(paired), np.array(old)
    assert (paired <= old).all()
    assert paired.mean() < 0.6 * old.mean()
    assert covered >= 27  # the pair CS (level 0.95) covers the difference at the stop


def _replay_pairs(cells: pd.DataFrame, x: np.ndarray, arms, alpha: float, rounds: int):
    """Every pair's CS of mu_i - mu_j fed round by round, as `decided` feeds it, at `alpha`
    (one paired difference (y_i - y_j + 1) / 2 per problem per round): bounds after each."""
    arm, sample = cells.arm.to_numpy(), cells["sample"].to_numpy()
    pairs = [(i, j) for i in range(len(arms)) for j in range(i + 1, len(arms))]
    cs = {q: ConfidenceSequence(alpha) for q in pairs}
    out = []
    for r in range(rounds):
        for i, j in pairs:
            yi, yj = (x[(arm == arms[k]) & (sample == r)] for k in (i, j))
            cs[(i, j)].update_round(np.clip((yi - yj + 1) / 2, 0, 1))
        out.append({q: (2 * c.lower - 1, 2 * c.upper - 1) for q, c in cs.items()})
    return out


def test_decided_splits_alpha_over_the_pairs_of_three_arms():
    # 3 arms (3 pairs) close together, 4 runs: each pair's CS is built at alpha / 3. Replayed
    # at alpha / 3 it matches the scheduler's bounds exactly while all arms are live; replayed at
    # alpha (no correction) it would separate a pair -- and eliminate an arm -- in rounds where
    # `decided` rightly keeps every arm. Dropping the correction, or changing the level, fails.
    arms, repeats = ("a", "b", "c"), 60
    cells = _cells(arms=arms, problems=10, repeats=repeats)
    offsets = np.linspace(-0.2, 0.2, 10)
    premature = 0
    for seed in range(4):
        x = _bernoulli_scores(cells, {"a": 0.45, "b": 0.5, "c": 0.62}, offsets, seed)
        scores = dict(zip(cells.cell.tolist(), x.tolist(), strict=True))
        sched = AdaptiveScheduler(cells, decided("arm"), repeats=repeats)
        corrected = _replay_pairs(cells, x, arms, 0.05 / 3, repeats)
        uncorrected = _replay_pairs(cells, x, arms, 0.05, repeats)
        r = 0
        while ids := sched.next_round():
            for c in ids:
                sched.observe(c, scores[c], 0.0)
            pairs = sched.pair_intervals()
            if not pairs.live.all():
                break  # an arm is out: its pairs stop taking observations
            for (i, j), lo_hi in corrected[r].items():
                got = pairs[(pairs.arm_a == arms[i]) & (pairs.arm_b == arms[j])].iloc[0]
                assert (got.cs_low, got.cs_high) == pytest.approx(lo_hi, abs=1e-12)
            assert "alpha 0.05 split over 3 pairs" in pairs.cs_method.iloc[0]
            # all arms live after round r + 1; an uncorrected CS would have cut one here
            premature += any(lo > 0 or hi < 0 for lo, hi in uncorrected[r].values())
            r += 1
    assert premature >= 10, premature  # 20 rounds here


def test_pairing_problems_of_different_difficulty_beats_unpaired():
    # problems from hopeless to trivial (offsets -0.45..0.45) shared by both arms, gap 0.15:
    # pairing each problem with itself cancels the difficulty, pairing it with another
    # problem (same arm means, keys rotated) does not, and arms on disjoint problems fall
    # back to separate intervals; all three are valid, the first decides far sooner
    full = _full_grid(accs=(0.45, 0.6), names=("a", "b"), logged=40, spread=0.45)
    b = full.arm == "b"
    rotated = full.assign(prompt_id=full.prompt_id.where(
        ~b, full.prompt_id.map(lambda p: f"p{(int(p[1:]) + 5) % 10}")))  # fmt: skip
    disjoint = full.assign(prompt_id=full.prompt_id.where(~b, "q" + full.prompt_id))
    out = {}
    for name, grid in (("paired", full), ("rotated", rotated), ("unpaired", disjoint)):
        sims = simulate(grid, decided("arm"), repeats=40, n_sims=80, seed=5)
        out[name] = summarize_simulations(sims)
        assert out[name]["wrong_pick"] == 0.0 and out[name]["coverage"] >= 0.94
    assert out["paired"]["rounds_mean"] < 0.7 * out["rotated"]["rounds_mean"]
    assert out["paired"]["rounds_mean"] < 0.5 * out["unpaired"]["rounds_mean"]
    assert out["paired"]["correct_pick"] > out["rotated"]["correct_pick"] + 0.2
    assert out["paired"]["correct_pick"] > out["unpaired"]["correct_pick"] + 0.5


def test_pairing_keys_key_means_and_the_unpaired_fallback():
    def method(cells, rule, **kw) -> str:
        sched = AdaptiveScheduler(cells, rule, repeats=int(cells["sample"].max()) + 1, **kw)
        return sched.pair_intervals().cs_method.iloc[0]

    # another parameter column: cells pair on (problem, that column)
    cells = _cells(arms=("a", "b"), problems=3, repeats=2)
    grid = pd.concat([cells.assign(top_p=0.5), cells.assign(top_p=1.0)], ignore_index=True)
    grid["cell"] = np.arange(len(grid))
    assert method(grid, decided("arm")).endswith("paired on prompt_id, top_p)")
    # each arm with its own values of it: the per-problem means of the round pair up
    nested = grid.assign(top_p=np.where(grid.arm == "a", grid.top_p, grid.top_p / 2))
    assert method(nested, decided("arm")).endswith("paired on prompt_id)")
    # ... which averages an arm's cells at a problem first: a scores 1 everywhere, b 1 at
    # top_p 0.5 and 0 at top_p 1.0, so every problem gives d = (1 - 0.5 + 1) / 2
    sched = AdaptiveScheduler(grid, decided("arm"), repeats=2, point_columns=["arm"])
    top_p = dict(zip(grid.cell, grid.top_p, strict=True))
    arm = dict(zip(grid.cell, grid.arm, strict=True))
    for c in sched.next_round():
        sched.observe(c, 1.0 if arm[c] == "a" or top_p[c] == 0.5 else 0.0)
    pair = sched.pair_intervals().iloc[0]
    assert (pair.arm_a, pair.arm_b, pair.n_pairs, pair.n_rounds) == ("a", "b", 3, 1)
    assert pair["mean"] == pytest.approx(0.5) and pair.cs_low <= 0.5 <= pair.cs_high
    # arms on different problems (by a column of the problems): separate intervals, which
    # is the old rule exactly
    cells = _cells(arms=("x",), problems=10, repeats=40).assign(
        arm=lambda f: np.where(f.prompt_id.isin(["p0", "p2", "p4", "p6", "p8"]), "a", "b")
    )
    assert method(cells, decided("arm")).endswith(
        "unpaired: the arms share no problems; separate per-arm intervals"
    )
    offsets = np.zeros(10)
    x = _bernoulli_scores(cells, {"a": 0.2, "b": 0.8}, offsets, 0)
    sched = AdaptiveScheduler(cells, decided("arm", maximize=False), repeats=40)
    rounds = _run(sched, dict(zip(cells.cell.tolist(), x.tolist(), strict=True)))
    stop_old, _ = _two_interval_stop(cells, 1 - x, ("a", "b"), 0.05, 40)  # minimise = max 1-x
    assert sched.winner == {"arm": "a"} and len(rounds) == stop_old < 40
    pair = sched.pair_intervals().iloc[0]
    iv = sched.intervals().set_index("arm")
    assert pair.n_pairs == 0 and pair.cs_low == iv.loc["a", "cs_low"] - iv.loc["b", "cs_high"]
    assert pair.cs_high < 0  # a - b < 0: a is the smaller, as `maximize=False` wants


def test_pair_intervals_with_several_by_columns_and_without_decided():
    cells = _cells(arms=("a", "b"), problems=3, repeats=4)
    cells = pd.concat([cells.assign(t=0), cells.assign(t=1)], ignore_index=True)
    cells["cell"] = np.arange(len(cells))
    sched = AdaptiveScheduler(cells, decided(["arm", "t"]), repeats=4)
    _run(sched, lambda c: float(c % 3 == 0))
    pairs = sched.pair_intervals()
    assert len(pairs) == 6 and pairs.arm_a.iloc[0] == ("a", 0) and pairs.arm_b.iloc[0] == ("b", 0)
    assert pairs.cs_method.iloc[0].endswith("split over 6 pairs, union bound; paired on prompt_id)")
    empty = AdaptiveScheduler(cells, ci_width(width=0.5), repeats=4).pair_intervals()
    assert len(empty) == 0 and list(empty.columns)[:4] == ["rule", "metric", "arm_a", "arm_b"]


def test_expected_share_prices_cells_and_reads_any_metric_a_rule_names():
    from mmlab.sequential import expected_share

    cells = _cells(arms=("a", "b", "c"), problems=10, repeats=20)
    kw = {"repeats": 20, "point_columns": ["arm"], "sims": 30}
    alone = expected_share(cells, decided("arm"), **kw)
    # a budget far above the design's cost changes nothing; one that covers a third of the
    # cells caps the share near a third (it stops before a round would exceed it)
    assert expected_share(cells, decided("arm") | budget(100.0), usd_per_cell=0.01, **kw) == alone
    capped = expected_share(cells, decided("arm") | budget(2.0), usd_per_cell=0.01, **kw)
    assert capped <= 200 / 600 and capped < alone
    # a rule on another metric than the score is simulated, not refused
    assert 0 < expected_share(cells, ci_width(metric="truncated", width=0.3, by="arm"), **kw) <= 1


# --- on a finished sweep ----------------------------------------------------------------------
def test_simulate_a_rule_on_a_finished_sweep(arms):
    from mmlab.sequential import simulate, summarize_simulations

    lab, _ = arms
    res = arms_sweep(lab, repeats=6, tag="grid").run(progress=False)  # the fixed, full grid
    assert res.parameters == ["temperature"]
    sims = simulate(res, stop.decided(by="temperature"), repeats=6, n_sims=40, seed=1)
    s = summarize_simulations(sims)
    # cells are (problem, temperature): 12 x 2, not split by the prompt table's gold answers
    assert s["n_sims"] == 40 and s["call_share"] <= 1.0 and s["wrong_pick"] == 0.0
    raw = simulate(res.df, stop.ci_width(width=0.5), repeats=6, n_sims=5, seed=1,
                   by="temperature")  # fmt: skip
    assert len(raw) == 5


@pytest.mark.slow
def test_decided_on_a_hard_grid_is_never_wrong():
    # arms five points apart (bench/adaptive_sim.py's hard grid): `decided` rarely certifies
    # a winner within 20 repeats, and never a wrong one
    full = _full_grid(accs=(0.45, 0.5, 0.55), names=("x", "y", "z"), logged=20)
    s = summarize_simulations(simulate(full, decided("arm"), repeats=20, n_sims=150, seed=2))
    assert s["wrong_pick"] == 0.0 and s["coverage"] >= 0.94
    assert s["correct_pick"] < 0.2 and s["call_share"] > 0.9
