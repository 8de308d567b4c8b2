"""Forecasts (`mmlab.sweep.forecast`): learned from the log, and bracketing an adaptive run."""

from __future__ import annotations

import pytest
from helpers import arms_sweep

from mmlab import grid, stop


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
