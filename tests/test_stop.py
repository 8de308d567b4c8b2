"""The stopping rules users write (`mmlab.stop`): bad rules are refused, naming the field,
before any call."""

from __future__ import annotations

import pytest
from helpers import ARM_PROBLEMS, arms_sweep

from mmlab import grid, stop
from mmlab.errors import RequestError
from mmlab.stop import budget, ci_width, decided, max_repeats


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: ci_width(width=0), "width"),
        (lambda: ci_width(width=-0.1), "width"),
        (lambda: ci_width(width=0.1, alpha=0), "alpha"),
        (lambda: ci_width(width=0.1, alpha=1.0), "alpha"),
        (lambda: decided("arm", alpha=1.5), "alpha"),
        (lambda: decided(None), "by"),
        (lambda: decided([]), "by"),
        (lambda: decided("arm", margin=-1), "margin"),
        (lambda: decided("arm", method="bootstrap"), "method"),
        (lambda: ci_width(0.1), "metric"),
        (lambda: ci_width(width=0.1, unit="problem"), "unit"),
        (lambda: max_repeats(0), "max_repeats"),
        (lambda: max_repeats(2.5), "max_repeats"),
        (lambda: budget(-1), "budget"),
        (lambda: budget(float("nan")), "budget"),
    ],
)
def test_bad_rules(make, field):
    with pytest.raises(RequestError) as e:
        make()
    assert e.value.field == field


def test_bad_stop_input_is_refused_before_any_call(arms):
    lab, server = arms
    unscored = lab.sweep(ARM_PROBLEMS, grid(temperature=[0.0, 1.0]), repeats=2, tag="bad")
    for call, field in [
        (lambda: unscored.run(stop=stop.decided(by="temperature"), progress=False), "scorer"),
        (lambda: unscored.forecast(stop=stop.decided(by="temperature")), "scorer"),
        (lambda: arms_sweep(lab).run(stop="decided", progress=False), "stop"),
        (lambda: arms_sweep(lab).run(stop=stop.decided(by="top_p"), progress=False), "by"),
        (lambda: stop.ci_width(width=1.5), "width"),
        (lambda: stop.budget(-1), "budget"),
    ]:
        with pytest.raises(RequestError) as info:
            call()
        assert info.value.field == field, (info.value, field)
    assert server.seen == []


def test_a_rule_on_a_metric_no_sweep_reports_is_refused(arms):
    lab, server = arms
    with pytest.raises(RequestError, match="reasoning_tokens") as err:
        arms_sweep(lab, repeats=4).run(stop=stop.ci_width(metric="reasoning_tokens", width=0.1))
    assert err.value.field == "metric" and server.seen == []
