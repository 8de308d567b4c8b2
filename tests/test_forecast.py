"""Forecasts (`mmlab.sweep.forecast`): learned from the log, and bracketing an adaptive run."""

from __future__ import annotations

import pytest
from helpers import FAKE_KEY, FAST_RETRY, M1, R1, arms_sweep

from mmlab import Lab, grid, stop
from mmlab.endpoints import OpenRouter
from mmlab.pricing import EMBEDDED, estimate_prompt_tokens
from mmlab.sweep.lengths import expected_length, restricted_mean
from mmlab.testing import StandIn


def test_forecast_learns_from_the_log(lab, standin):
    first = lab.sweep([f"learn {i}" for i in range(4)], grid(max_tokens=[1000]), tag="f1")
    before = first.forecast()
    assert before.observed_from == 0 and before.worst_completion_tokens == 4000
    assert before.expected_completion_tokens == 4 * 600  # the prior: 60% of max_tokens
    res = first.run(progress=False)
    second = lab.sweep([f"other {i}" for i in range(4)], grid(max_tokens=[1000]), tag="f2")
    after = second.forecast()
    assert after.observed_from == 4
    mean = res.df["completion_tokens"].mean()
    assert after.expected_completion_tokens == pytest.approx(4 * mean, abs=4)
    assert after.expected_usd < after.worst_usd
    assert "at MiniMax M1 list prices" in str(after)


def test_the_adaptive_forecast_brackets_the_run(arms):
    lab, server = arms
    sweep = arms_sweep(lab, tag="forecast")
    fixed = sweep.forecast()
    adaptive = sweep.forecast(stop=stop.decided(by="temperature"))
    assert adaptive.to_call == fixed.to_call and adaptive.worst_usd == fixed.worst_usd
    assert 0 < adaptive.adaptive_share < 1
    assert "adaptive (decided(by='temperature'" in str(adaptive)
    assert "worst case the fixed design" in str(adaptive)
    assert server.seen == []


# --- lengths: same max_tokens, censored, prior; each says where it came from ----------------
# The stand-in with fixed completion lengths: every reply runs to LENGTH tokens unless
# max_tokens cuts it, so what a forecast should expect is known exactly.
LENGTH = 300


def _fixed_lab(server, db, model=M1):
    return Lab(endpoint=OpenRouter(server.url, FAKE_KEY), db=db, quiet=True, retry=FAST_RETRY,
               model=model)  # fmt: skip


def test_same_max_tokens_lengths_are_exact_and_say_where_they_came_from(db):
    with StandIn(lengths=LENGTH) as server:
        lab = _fixed_lab(server, db)
        lab.sweep([f"seen {i}" for i in range(20)], grid(max_tokens=[1000]), tag="a").run(
            progress=False
        )
        sweep = lab.sweep([f"new {i}" for i in range(10)], grid(max_tokens=[1000]), tag="b")
        f = sweep.forecast()
        assert f.observed_from == 20 and f.expected_completion_tokens == 10 * LENGTH
        assert f.lengths[0]["method"] == "same max_tokens"
        line = f"20 calls of {M1} at max_tokens=1000"
        assert line in str(f) and f.table()["lengths_from"].iloc[0] == line
        res = sweep.run(progress=False)
        actual = float(res.df["cost_usd"].sum())
        assert res.df["completion_tokens"].sum() == f.expected_completion_tokens
        assert f.expected_usd == pytest.approx(actual, rel=0.25)  # the prompt is estimated
        lab.close()


def test_a_fresh_forecast_names_its_prior(lab):
    f = lab.sweep(["a", "b"], grid(max_tokens=[500, 1000]), tag="p").forecast()
    assert [g["source"] for g in f.lengths] == ["prior: 60% of max_tokens"] * 2
    assert "max_tokens=500: ~300 tokens a call — prior: 60% of max_tokens" in str(f)
    assert f.table()["lengths_from"].iloc[0] == (
        "max_tokens=500: prior: 60% of max_tokens; max_tokens=1000: prior: 60% of max_tokens"
    )


def test_uncut_calls_at_a_higher_cap_give_the_length_exactly(db):
    with StandIn(lengths=LENGTH) as server:
        lab = _fixed_lab(server, db)
        lab.sweep([f"long {i}" for i in range(6)], grid(max_tokens=[2000]), tag="a").run(
            progress=False
        )
        # at 1000 the calls logged at 2000 finished under it: their lengths are the lengths
        g = lab.sweep(["x"], grid(max_tokens=[1000, 200]), tag="b").forecast().lengths
        assert g[0]["method"] == "censored" and g[0]["expected_tokens"] == LENGTH
        assert "the prior" not in g[0]["source"]
        assert g[1]["expected_tokens"] == 200  # every one would run past 200: the cap
        lab.close()


@pytest.mark.filterwarnings("ignore:sweeping")
def test_calls_cut_at_a_small_cap_are_lower_bounds_not_lengths(db, tmp_path):
    """The issue's trap: 14 calls cut at max_tokens=128 made a forecast at 1,024 and 8,000
    expect 128-token answers. Cut calls are censored: the forecast of the same sweep on a
    fresh database and on this one agree within a factor of 1.5, at the run model's price
    and at M1's."""
    prompts = [f"question {i}" for i in range(12)]
    space = grid(model=[M1, R1], max_tokens=[1024, 8000])
    with StandIn(lengths=LENGTH * 10) as server:
        fresh = _fixed_lab(server, tmp_path / "fresh.db")
        before = fresh.sweep(prompts, space, tag="big").forecast()
        lab = _fixed_lab(server, db)
        short = lab.sweep([f"short {i}" for i in range(14)], grid(model=[M1, R1],
                          max_tokens=[128]), tag="short").run(progress=False)  # fmt: skip
        assert (short.df["finish_reason"] == "length").all()
        after = lab.sweep(prompts, space, tag="big").forecast()
        for name in ("expected_usd", "m1_expected_usd", "m1_own_lengths_usd"):
            ratio = getattr(after, name) / getattr(before, name)
            assert 1 / 1.5 <= ratio <= 1.5, (name, ratio)
        assert after.expected_completion_tokens > 0.9 * before.expected_completion_tokens
        assert {g["method"] for g in after.lengths} == {"censored"}
        assert "cut at their cap (known only to run longer)" in str(after)
        assert "past 128 tokens (100% of calls) the prior" in str(after)
        fresh.close()
        lab.close()


@pytest.mark.filterwarnings("ignore:sweeping")
def test_the_m1_line_prices_m1_like_lengths_on_another_model(db):
    with StandIn(lengths=40) as server:  # a small model: 40-token answers
        lab = _fixed_lab(server, db, model=R1)
        lab.sweep([f"seen {i}" for i in range(8)], grid(max_tokens=[1024, 8000]),
                  tag="a").run(progress=False)  # fmt: skip
        prompts = [f"new {i}" for i in range(4)]
        f = lab.sweep(prompts, grid(max_tokens=[1024, 8000]), tag="b").forecast()
        m1 = EMBEDDED[M1]
        sent = [lab.engine.prepare(p, max_tokens=m).body for p in prompts for m in (1024, 8000)]
        like = sum(m1.cost(estimate_prompt_tokens(b["messages"]), min(b["max_tokens"], 20_000))
                   for b in sent)  # fmt: skip
        own = sum(m1.cost(estimate_prompt_tokens(b["messages"]), 40) for b in sent)
        assert f.m1_expected_usd == pytest.approx(like)
        assert f.m1_own_lengths_usd == pytest.approx(own)
        text = str(f)
        assert f"with M1-like lengths, ${own:.4f} with {R1}'s own lengths" in text
        assert "M1-like lengths: min(max_tokens, 20,000) tokens a call" in text
        assert "a lower bound there" in text
        row = f.table().iloc[0]
        assert row["m1_expected_usd"] == pytest.approx(like)
        lab.close()


def test_the_m1_line_on_m1_is_m1s_own_lengths(lab):
    f = lab.sweep(["a"], grid(max_tokens=[1000]), tag="own").forecast()
    assert not f.m1_like and f.m1_expected_usd == pytest.approx(f.expected_usd)
    assert "M1-like" not in str(f)


def test_the_kaplan_meier_restricted_mean_by_hand():
    # 4 calls: 100 and 200 finished, two cut at 150 (censored)
    area, left, end = restricted_mean([(100, False, 1), (150, True, 2), (200, False, 1)], 1000)
    # S = 1 on [0,100), 3/4 on [100,200) (150 censors, no drop), 0 from 200
    assert (area, left, end) == (100 + 0.75 * 100, 0.0, 200)
    # every call cut at 128: the log sees only that they run longer
    assert restricted_mean([(128, True, 14)], 1024) == (128.0, 1.0, 128)
    e = expected_length([(128, 128, True, 14)], "m", 1024, 1024)
    assert e.method == "censored" and e.tokens == pytest.approx(128 + 0.6 * (1024 - 128))
    assert e.calls == 14 and e.max_tokens == (128,)
    same = expected_length([(1024, 300, False, 3), (1024, 1024, True, 1)], "m", 1024, 1024)
    assert same.tokens == (3 * 300 + 1024) / 4 and same.source == (
        "4 calls of m at max_tokens=1024, 1 cut at the cap"
    )
    assert expected_length([], "m", None, 40_000).source == "prior: 60% of the 40,000-token cap"
