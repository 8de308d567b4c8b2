"""The test-time compute lab against the stand-in: scaling curves, knob probes, ignored knobs,
OpenRouter's require_parameters, and the M1 report's reproduction forecast."""

from __future__ import annotations

import math
import warnings

import pandas as pd
import pytest
from conftest import FAKE_KEY, FAST_RETRY

from mmlab import Lab, grid, scorers
from mmlab.bundle import export_bundle
from mmlab.endpoints import OpenRouter
from mmlab.errors import RequestError
from mmlab.reference import forecast_reproduction, m1_report
from mmlab.testing import StandIn, synth_reply

QUESTIONS = [
    "What is seven plus five?",
    "Name the largest planet.",
    "Why do leaves change colour?",
    "How many legs has a spider?",
    "What is the capital of France?",
    "Spell the word banana backwards.",
]


def _problems() -> pd.DataFrame:
    # the stand-in's answer to a question is a function of its words: that is the gold answer
    gold = [synth_reply({"messages": [{"role": "user", "content": q}]})["content"].split()[-1]
            for q in QUESTIONS]  # fmt: skip
    return pd.DataFrame({"prompt": QUESTIONS, "answer": gold})


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
                QUESTIONS, budgets=[8, 64, 256], knob="reasoning.max_tokens", repeats=2,
                max_tokens=2000, progress=False,
            )  # fmt: skip
    said = [str(w.message) for w in caught]
    # two independent signals: the sweep saw no answer change, the curve saw no token change
    assert any("did not move reasoning tokens used" in m for m in said), said
    assert any("changed no answer in any of 12" in m for m in said), said
    assert "may ignore it" in repr(curve)
    assert curve.knob_effect["p_value"] == 1.0


def test_probe_says_whether_a_knob_moves_the_output(db):
    with StandIn(ignore={"top_k"}) as server:
        lab = Lab(endpoint=OpenRouter(server.url, FAKE_KEY), db=db, quiet=True, retry=FAST_RETRY)
        moved = lab.probe("temperature", [0.0, 1.5], prompt="Describe the sea at night.", n=8)
        ignored = lab.probe("top_k", [1, 50], prompt="Describe the sea at night.", n=8)
        seen = server.seen
    assert moved.moves and moved.p_value < 0.05, moved
    assert moved.df["mean_completion_tokens"].iloc[1] > moved.df["mean_completion_tokens"].iloc[0]
    assert not ignored.moves and ignored.identical_share == 1.0, ignored
    assert "shows no effect" in repr(ignored) and "moves the output" in repr(moved)
    # the stand-in is deterministic given the request: every control pair is identical, so
    # the exact test is 2^-8 when the knob moves outputs at all 8 seeds, and 1 when it never does
    assert moved.control_identical_share == 1.0 and moved.paired_p == pytest.approx(2**-8)
    assert ignored.control_identical_share == 1.0 and ignored.paired_p == 1.0
    assert "paired p=" in repr(moved)
    top_k = [s for s in seen if "top_k" in s.body]
    assert len(top_k) == 24  # 2 values x 8 seeds, plus 8 controls (the first value again)
    seeds = {(s.body.get("top_k"), s.body["seed"]) for s in top_k}
    assert len(seeds) == 16  # paired: seed i for sample i of every value
    assert all(s.body["provider"]["require_parameters"] for s in seen)


def test_probe_rejects_bad_input_before_any_call(lab, standin):
    for kwargs, field in [
        ({"param": "warmth", "values": [0, 1]}, "warmth"),
        ({"param": "temperature", "values": [0.5]}, "values"),
        ({"param": "temperature", "values": [0.0, 9.0]}, "temperature"),
        ({"param": "temperature", "values": [0.0, 1.0], "n": 1}, "n"),
    ]:
        with pytest.raises(RequestError) as info:
            lab.probe(prompt="hi", **kwargs)
        assert info.value.field == field
    assert standin.seen == []


def test_a_sweep_warns_when_an_axis_changed_nothing(db):
    with StandIn(ignore={"top_k"}) as server:
        lab = Lab(endpoint=OpenRouter(server.url, FAKE_KEY), db=db, quiet=True, retry=FAST_RETRY)
        sweep = lab.sweep(QUESTIONS, grid(top_k=[1, 40], temperature=[0.2, 1.0]), tag="k")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sweep.run(progress=False)
    said = [str(w.message) for w in caught]
    assert any("sweeping top_k changed no answer" in s for s in said), said
    assert not any("sweeping temperature" in s for s in said)


def test_openrouter_sweeps_require_parameters_by_default(lab, standin, tmp_path):
    lab.sweep(["q"], grid(top_k=[1, 2]), tag="default").run(progress=False)
    assert all(s.body["provider"] == {"require_parameters": True} for s in standin.seen)
    standin.reset()
    opt_out = {"require_parameters": False, "order": ["x"]}
    lab.sweep(["q"], grid(top_k=[1, 2]), tag="opt-out", provider=opt_out).run(progress=False)
    assert all(s.body["provider"] == {"require_parameters": False, "order": ["x"]}
               for s in standin.seen)  # fmt: skip
    standin.reset()
    plain = Lab(base_url=standin.url, db=tmp_path / "plain.db", quiet=True)
    plain.sweep(["q"], grid(top_k=[1, 2]), tag="plain").run(progress=False)
    assert all("provider" not in s.body for s in standin.seen)  # only OpenRouter routes


def test_wait_is_refused_where_it_cannot_be_honoured(lab, standin):
    with pytest.raises(RequestError, match="capability 'prefill'") as info:
        lab.chat("think longer", reasoning={"wait": 2}, max_tokens=100)
    assert info.value.field == "reasoning.wait"
    with pytest.raises(RequestError, match="prefill"):
        lab.scaling_curve(QUESTIONS, budgets=[0, 1], knob="reasoning.wait", progress=False)
    assert standin.seen == []


def test_the_m1_report_ships_as_data_and_prices_a_reproduction():
    table = m1_report()
    aime = table.set_index("benchmark").loc["AIME 2024"]
    row = (aime["m1_80k"], aime["m1_40k"], aime["samples"], aime["problems"])
    assert row == (86.0, 83.3, 32, 30)
    assert table["source"].str.contains("2506.13585").all()
    r = forecast_reproduction("AIME 2024")
    assert r.calls == 30 * 32 and r.output_cap == 40_000
    per_call_expected = 300 * 0.40e-6 + 20_000 * 2.20e-6
    per_call_worst = 300 * 0.40e-6 + 40_000 * 2.20e-6
    assert r.expected_usd == pytest.approx(960 * per_call_expected)  # $42.36
    assert r.worst_usd == pytest.approx(960 * per_call_worst)  # $84.59
    assert "960 calls" in str(r)
    gpqa = forecast_reproduction("GPQA-Diamond")
    assert gpqa.expected_usd is None and gpqa.calls == 198 * 32  # no length in the report
    assert forecast_reproduction("GPQA-Diamond", mean_output_tokens=8000).expected_usd > 0
    with pytest.raises(RequestError, match="pass problems="):
        forecast_reproduction("LiveCodeBench (24/8-25/5)")
    assert forecast_reproduction("LiveCodeBench (24/8-25/5)", problems=100).calls == 1600
    with pytest.raises(RequestError, match="unknown benchmark"):
        forecast_reproduction("HumanEval")
    assert math.isfinite(forecast_reproduction("MATH-500", samples=4).worst_usd)


def test_the_paired_control_test_against_its_closed_form():
    from mmlab.probe import paired_test

    def frame(values, outputs):
        return pd.DataFrame({"top_k": values, "seed": [i % 10 for i in range(len(values))],
                             "content": outputs, "completion_tokens": [5] * len(values),
                             "error": [None] * len(values)})  # fmt: skip

    # 10 seeds; the treatment differs at 7 of them, every control pair is identical
    main = frame([1] * 10 + [50] * 10,
                 [f"a{i}" for i in range(10)] + [f"b{i}" if i < 7 else f"a{i}" for i in range(10)])
    control = pd.concat([frame([1] * 10, [f"a{i}" for i in range(10)])] * 2)
    p, same = paired_test(main, control, "top_k", 1, 50)
    assert same == 1.0 and p == pytest.approx(2**-7)
    # controls differ where the treatment does not: evidence against "moves", p = 1 ...
    noisy = pd.concat([frame([1] * 10, [f"a{i}" for i in range(10)]),
                       frame([1] * 10, [f"c{i}" if i < 3 else f"a{i}" for i in range(10)])])
    untouched = frame([1] * 10 + [50] * 10, [f"a{i}" for i in range(20)][:10] * 2)
    p, same = paired_test(untouched, noisy, "top_k", 1, 50)
    assert same == 0.7 and p == 1.0
    # ... and 4 vs 3 discordant seeds: P(X >= 4 | X ~ Bin(7, 1/2)) = 64/128
    mixed = frame([1] * 10 + [50] * 10, [f"a{i}" for i in range(10)]
                  + [f"b{i}" if 3 <= i < 7 else f"a{i}" for i in range(10)])  # fmt: skip
    p, _ = paired_test(mixed, noisy, "top_k", 1, 50)
    assert p == pytest.approx(sum(math.comb(7, k) for k in range(4, 8)) / 2**7)


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


def test_ignored_axes_needs_every_output_identical():
    from mmlab.sweep.results import MIN_GROUPS, ignored_axes

    rows = []
    for p in range(MIN_GROUPS):
        for t in (0.0, 1.0):
            for stop in (None, ["\n"]):  # unhashable values and None are compared too
                rows.append({"prompt_id": f"p{p}", "sample": 0, "temperature": t, "stop": stop,
                             "content": f"answer {p}", "reasoning": "same",
                             "completion_tokens": 9, "error": None})  # fmt: skip
    df = pd.DataFrame(rows)
    points = ["temperature", "stop"]  # the swept columns
    assert ignored_axes(df, points) == [("temperature", MIN_GROUPS * 2), ("stop", MIN_GROUPS * 2)]
    # one group where temperature changed only the reasoning: temperature is not ignored
    df.loc[(df["prompt_id"] == "p0") & (df["temperature"] == 1.0), "reasoning"] = "other"
    assert ignored_axes(df, points) == [("stop", MIN_GROUPS * 2)]
    # ... nor when it changed only the token count
    df.loc[(df["prompt_id"] == "p0") & (df["temperature"] == 1.0), "reasoning"] = "same"
    df.loc[(df["prompt_id"] == "p1") & (df["temperature"] == 1.0), "completion_tokens"] = 10
    assert ignored_axes(df, points) == [("stop", MIN_GROUPS * 2)]
    # fewer comparable groups than MIN_GROUPS prove nothing
    assert ignored_axes(df[df["prompt_id"] == "p4"], points) == []


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
