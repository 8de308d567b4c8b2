"""Scaling curves (`mmlab.scaling`) against the stand-in: one call, a forecast and a budget,
replay, ignored knobs, knobs that cannot be honoured, the verdict."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
from helpers import FAKE_KEY, FAST_RETRY, SHORT_QUESTIONS

from mmlab import Lab, scorers
from mmlab.bundle import export_bundle
from mmlab.endpoints import OpenRouter
from mmlab.errors import RequestError
from mmlab.testing import StandIn, synth_reply


def _problems() -> pd.DataFrame:
    # the stand-in's answer to a question is a function of its words: that is the gold answer
    gold = [synth_reply({"messages": [{"role": "user", "content": q}]})["content"].split()[-1]
            for q in SHORT_QUESTIONS]  # fmt: skip
    return pd.DataFrame({"prompt": SHORT_QUESTIONS, "answer": gold})


@pytest.fixture
def curve(lab):
    return lab.scaling_curve(
        _problems(),
        budgets=[16, 40, 64, 128],
        knob="max_tokens",
        repeats=2,
        scorer=scorers.final_answer,
        progress=False,
    )


def test_a_scaling_curve_in_one_call(curve, lab, standin, capsys):
    df = curve.df
    assert list(df["budget"]) == [16, 40, 64, 128]
    assert df["n"].eq(12).all()
    assert df["accuracy"].iloc[0] == 0 and df["accuracy"].iloc[-1] == 1
    assert df["accuracy"].is_monotonic_increasing
    assert df["reasoning_tokens"].iloc[-1] > df["reasoning_tokens"].iloc[0]  # tokens *used*
    assert df["truncation_rate"].iloc[0] == 1 and df["truncation_rate"].iloc[-1] == 0
    assert (df["ci_low"] <= df["accuracy"]).all() and (df["accuracy"] <= df["ci_high"]).all()
    assert {"pass_at_k", "maj_at_k", "usd", "usd_per_call", "ci_method"} <= set(df.columns)
    assert df["usd"].gt(0).all()
    assert any(v in repr(curve) for v in ("returns diminish after", "still rising",
                                          "no larger budget does better"))
    assert len(standin.seen) == 4 * 6 * 2  # budgets x problems x repeats
    frontier = curve.frontier()
    assert frontier["on_frontier"].any() and "budget" in frontier
    at_k = curve.at_k()
    assert set(at_k["metric"]) == {"pass@k", "maj@k"} and set(at_k["k"]) == {1, 2}
    from mmlab import plots

    lines = plots.at_k(at_k).data
    assert len(lines) == 2 * 4  # pass@k and maj@k per budget
    for a, b in zip(lines[::2], lines[1::2], strict=True):  # a budget's pair shares a colour
        assert a.legendgroup == b.legendgroup and a.line.color == b.line.color
        assert {a.line.dash, b.line.dash} == {"solid", "dot"}
    assert len({t.line.color for t in lines}) == 4
    fig = curve.plot()
    assert fig.layout.xaxis.title.text.startswith("reasoning tokens used")
    assert fig.layout.yaxis.title.text.startswith("accuracy")


def test_the_curve_forecasts_first_and_respects_a_budget(lab, standin, capsys):
    lab.scaling_curve(["a question", "another one"], budgets=[32, 64], knob="max_tokens",
                      repeats=1, progress=True, concurrency=1)  # fmt: skip
    assert "cells:" in capsys.readouterr().err  # the forecast, before anything was sent
    seen = len(standin.seen)
    capped = lab.scaling_curve(
        [f"question number {i}" for i in range(20)], budgets=[300, 400], knob="max_tokens",
        repeats=1, progress=False, budget_usd=0.002, concurrency=2, tag="capped",
    )  # fmt: skip
    assert capped.result.stats.stopped.startswith("budget")
    assert 0 < lab.spent_usd("capped") <= 0.002
    assert len(standin.seen) - seen == capped.result.stats.sent < 40


def test_a_curve_replays_from_its_bundle(curve, lab, standin, tmp_path):
    path = tmp_path / "curve.bundle.jsonl.gz"
    export_bundle(lab.engine.store, path, tag=curve.result.sweep.tag)
    seen = len(standin.seen)
    replay = Lab(endpoint=OpenRouter(standin.url), db=tmp_path / "replay.db", cache="replay",
                 bundle=path, quiet=True)  # fmt: skip
    again = replay.scaling_curve(
        _problems(), budgets=[16, 40, 64, 128], knob="max_tokens", repeats=2,
        scorer=scorers.final_answer, progress=False,
    )  # fmt: skip
    assert len(standin.seen) == seen
    pd.testing.assert_frame_equal(again.df, curve.df)
    assert repr(again) == repr(curve)


def test_a_knob_the_endpoint_ignores_is_flagged(db):
    with StandIn(ignore={"reasoning"}) as server:
        lab = Lab(endpoint=OpenRouter(server.url, FAKE_KEY), db=db, quiet=True, retry=FAST_RETRY)
        with pytest.warns(UserWarning) as caught:
            curve = lab.scaling_curve(
                SHORT_QUESTIONS, budgets=[8, 64, 256], knob="reasoning.max_tokens", repeats=2,
                max_tokens=2000, progress=False,
            )  # fmt: skip
    said = [str(w.message) for w in caught]
    # two independent signals: the sweep saw no answer change, the curve saw no token change
    assert any("did not move reasoning tokens used" in m for m in said), said
    assert any("changed no answer in any of 12" in m for m in said), said
    assert "may ignore it" in repr(curve)
    assert curve.knob_effect["p_value"] == 1.0


def test_wait_is_refused_where_it_cannot_be_honoured(lab, standin):
    with pytest.raises(RequestError, match="capability 'prefill'") as info:
        lab.chat("think longer", reasoning={"wait": 2}, max_tokens=100)
    assert info.value.field == "reasoning.wait"
    with pytest.raises(RequestError, match="prefill"):
        lab.scaling_curve(SHORT_QUESTIONS, budgets=[0, 1], knob="reasoning.wait", progress=False)
    assert standin.seen == []


def test_the_verdict_reads_the_curve():
    from mmlab.scaling import ScalingCurve

    def verdict(acc, low, used):
        df = pd.DataFrame({"budget": [1, 2, 4], "accuracy": acc, "ci_low": low,
                           "reasoning_tokens": used})  # fmt: skip
        return ScalingCurve("reasoning.wait", [1, 2, 4], 4, None, df).verdict()  # type: ignore[arg-type]

    assert verdict([0.2, 0.5, 0.9], [0.1, 0.3, 0.8], [10, 20, 40]).startswith(
        "accuracy still rising at 4 (90%"
    )
    assert verdict([0.2, 0.8, 0.85], [0.1, 0.6, 0.7], [10, 20, 40]) == (
        "returns diminish after 2 (80% with 20 reasoning tokens used): larger budgets add +5% "
        "accuracy, within the best budget's 95% interval, for 2.0x the tokens"
    )
    assert verdict([0.3, 0.2, 0.1], [0.1, 0.0, 0.0], [10, 20, 40]) == (
        "no larger budget does better than 1 (30% with 10 reasoning tokens used); the largest "
        "uses 4.0x the tokens"
    )


def test_a_curve_with_failed_calls_or_an_early_stop_still_comes_back(db):
    from mmlab.retry import RetryPolicy
    from mmlab.stop import max_repeats
    from mmlab.testing import FaultRates

    # calls that fail for good leave some problems with fewer samples than `repeats`: pass@k
    # at k = repeats has no unbiased estimate there — NaN, not a crash after the money is spent
    with StandIn(rates=FaultRates(unavailable=0.25, retry_after=0, seed=3)) as server:
        lab = Lab(endpoint=OpenRouter(server.url, FAKE_KEY), db=db, quiet=True,
                  retry=RetryPolicy(max_retries=0))  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            curve = lab.scaling_curve(_problems(), budgets=[16, 128], knob="max_tokens",
                                      repeats=3, scorer=scorers.final_answer,
                                      progress=False)  # fmt: skip
            assert curve.result.df["error"].notna().any()
            assert curve.df["accuracy"].notna().all() and curve.df["pass_at_k"].isna().any()
            at_k = curve.at_k()
            assert set(at_k["k"]) <= {1, 2} and (at_k["k"] == 1).sum() == 4  # 2 budgets x 2
            repr(curve)
            # an adaptive curve stopped after one round: every problem has one sample
            stopped = lab.scaling_curve(_problems(), budgets=[16, 128], knob="max_tokens",
                                        repeats=3, scorer=scorers.final_answer, tag="stopped",
                                        progress=False, stop=max_repeats(1))  # fmt: skip
    assert stopped.df["pass_at_k"].isna().all() and stopped.df["accuracy"].notna().all()
    assert set(stopped.at_k()["k"]) == {1}


def test_the_verdict_of_a_one_problem_curve(lab):
    # one problem: no bootstrap interval (NaN) — the verdict still reads the point estimates
    import dataclasses

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one problem: too little to tell if the knob moved
        curve = lab.scaling_curve(_problems()[:1], budgets=[16, 128], knob="max_tokens",
                                  repeats=2, scorer=scorers.final_answer,
                                  progress=False)  # fmt: skip
    curve = dataclasses.replace(curve, knob_effect=None)  # judge returns, whatever the knob did
    assert curve.df["ci_low"].isna().all() and curve.df["accuracy"].notna().all()
    said = curve.verdict()
    assert any(w in said for w in ("still rising", "no larger budget", "returns diminish")), said
