"""Sweeps (`mmlab.sweep`) against the loopback stand-in: spaces, cells and plans, runs,
reruns, retries, interrupts, results and their warnings, and adaptive runs (the runner
driving `mmlab.sequential` on arms of known accuracy)."""

from __future__ import annotations

import asyncio
import warnings

import pandas as pd
import pytest
from helpers import (
    ARM_PROBLEMS,
    FAKE_KEY,
    FAST_RETRY,
    M1,
    ROUTE_PROMPTS,
    SHORT_QUESTIONS,
    arms_sweep,
)

from mmlab import Lab, grid, plots, random_, scorers, stop, zip_
from mmlab.bundle import export_bundle
from mmlab.endpoints import OpenRouter
from mmlab.errors import ConfigError, RequestError
from mmlab.testing import Fault, Provider, StandIn, synth_reply

PROMPTS = ["What is 2 + 2?", "Name a prime number larger than ten.", "Why is the sky blue?"]


def test_cells_are_deterministic(lab):
    a = lab.sweep(PROMPTS, grid(temperature=[0.0, 1.0], max_tokens=[64, 512]), repeats=2)
    b = lab.sweep(PROMPTS, grid(temperature=[0.0, 1.0], max_tokens=[64, 512]), repeats=2)
    assert len(a) == 3 * 4 * 2
    assert [c.call.key for c in a.cells] == [c.call.key for c in b.cells]
    assert a.tag == b.tag and a.tag.startswith("sweep-")
    c = lab.sweep(PROMPTS, grid(temperature=[0.0, 1.0], max_tokens=[64, 513]), repeats=2)
    assert c.tag != a.tag
    plan = a.plan()
    assert list(plan.columns[:4]) == ["cell", "prompt_id", "temperature", "max_tokens"]
    assert (plan["status"] == "miss").all() and plan["cache_key"].is_unique
    # the cell for (prompt, point, sample) is the same request lab.chat would make
    # (on OpenRouter a sweep also asks for providers that honour every parameter it sends)
    cell = a.cells[5]
    assert cell.point["provider"] == {"require_parameters": True}
    direct = lab.engine.prepare(PROMPTS[0], sample=cell.sample, tag=a.tag, **cell.point)
    assert direct.key == cell.call.key


def test_spaces_compose():
    g = grid(temperature=[0.0, 1.0], max_tokens=[10, 20])
    assert g.points()[:2] == [
        {"temperature": 0.0, "max_tokens": 10},
        {"temperature": 0.0, "max_tokens": 20},
    ]
    z = zip_(temperature=[0.1, 0.2], top_p=[0.9, 0.8])
    assert z.points() == [{"temperature": 0.1, "top_p": 0.9}, {"temperature": 0.2, "top_p": 0.8}]
    assert len(g | z) == 6 and len(g * z) == 8
    r = random_(n=5, seed=3, temperature=(0.0, 2.0), max_tokens=(16, 64), top_k=[0, 40])
    assert (
        r.points()
        == random_(n=5, seed=3, temperature=(0.0, 2.0), max_tokens=(16, 64), top_k=[0, 40]).points()
    )
    assert all(isinstance(p["max_tokens"], int) and 0 <= p["temperature"] <= 2 for p in r.points())


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda lab: lab.sweep(PROMPTS, grid(temperature=[])), "temperature"),
        (lambda lab: lab.sweep(PROMPTS, grid()), "params"),
        (lambda lab: lab.sweep(PROMPTS, grid(temprature=[0.5])), "temprature"),
        (lambda lab: lab.sweep(PROMPTS, grid(temperature=[0.5, 9.0])), "temperature"),
        (lambda lab: lab.sweep(PROMPTS, grid(max_tokens=[0])), "max_tokens"),
        (lambda lab: lab.sweep(PROMPTS, grid(temperature=[0.5]), repeats=0), "repeats"),
        (lambda lab: lab.sweep(pd.DataFrame({"question": ["q"]}), None), "prompts"),
        (lambda lab: lab.sweep([], None), "prompts"),
        (lambda lab: lab.sweep("just one string", None), "prompts"),
        (lambda lab: lab.sweep(["ok", "  "], None), "prompts"),
        (lambda lab: lab.sweep(PROMPTS, zip_(temperature=[0.1], top_p=[0.9, 0.8])), "params"),
        (lambda lab: lab.sweep(PROMPTS, random_(n=0, temperature=(0, 1))), "n"),
        (lambda lab: lab.sweep(PROMPTS, grid(temperature="0.5")), "temperature"),
        (lambda lab: lab.sweep(PROMPTS, None, reasoning={"effort": "huge"}), "reasoning.effort"),
    ],
)
def test_bad_specs_are_rejected_before_any_call(lab, standin, build, field):
    with pytest.raises(RequestError) as info:
        build(lab)
    assert info.value.field == field
    assert standin.seen == [] and len(lab.calls()) == 0


def test_bad_run_arguments(lab, standin):
    sweep = lab.sweep(PROMPTS, None)
    for kwargs in ({"concurrency": 0}, {"budget_usd": -1}, {"max_calls": -2}):
        with pytest.raises((RequestError, ConfigError)):
            sweep.run(progress=False, **kwargs)
    assert standin.seen == []


def test_sweeps_need_a_cache(standin, db):
    lab = Lab(base_url=standin.url, api_key=FAKE_KEY, db=db, quiet=True, cache="off")
    with pytest.raises(ConfigError, match="cache"):
        lab.sweep(PROMPTS, None)


def test_run_then_rerun_sends_nothing(lab, standin):
    sweep = lab.sweep(PROMPTS, grid(max_tokens=[16, 400]), repeats=2, tag="rr")
    res = sweep.run(concurrency=4, progress=False)
    assert res.complete and len(res.df) == 12 and len(standin.seen) == 12
    assert not res.df["cache_hit"].any()
    again = sweep.run(progress=False)
    assert len(standin.seen) == 12 and again.df["cache_hit"].all()
    assert again.stats.hits == 12 and again.stats.sent == 0
    cols = ["content", "completion_tokens", "reasoning_tokens", "cost_usd", "truncated"]
    pd.testing.assert_frame_equal(res.df[cols], again.df[cols])
    assert (res.df.loc[res.df["max_tokens"] == 16, "truncated"]).any()
    log = lab.calls("rr")
    assert (log["cache_status"] == "miss").sum() == 12 and (
        log["cache_status"] == "hit"
    ).sum() == 12


def test_retry_errors_reruns_failed_cells_only(lab, standin):
    sweep = lab.sweep(PROMPTS, grid(max_tokens=[300]), repeats=2, tag="retry")
    standin.enqueue(Fault.http(400), Fault.http(400))  # the first two requests fail for good
    res = sweep.run(concurrency=1, progress=False)
    assert res.df["error"].notna().sum() == 2 and res.stats.failed == 2
    assert len(standin.seen) == 6
    kept = sweep.run(progress=False)  # a plain rerun keeps the errors, sends nothing
    assert len(standin.seen) == 6 and kept.df["error"].notna().sum() == 2
    assert (sweep.plan()["status"] == "error").sum() == 2
    fixed = sweep.run(retry_errors=True, progress=False)
    assert len(standin.seen) == 8 and fixed.complete
    log = lab.calls("retry")
    assert log["error"].notna().sum() == 2  # the old error rows are kept in the log
    # on cells never run, retry_errors sends them too — as its forecast says
    fresh = lab.sweep(PROMPTS, grid(max_tokens=[301]), tag="retry-fresh")
    assert fresh.forecast(retry_errors=True).to_call == len(fresh)
    assert fresh.run(retry_errors=True, progress=False).stats.sent == len(fresh)


def test_interrupt_leaves_nothing_half_written(db):
    with StandIn(delay_s=0.05) as slow:
        lab = Lab(base_url=slow.url, api_key=FAKE_KEY, db=db, quiet=True, retry=FAST_RETRY)
        sweep = lab.sweep(
            [f"interrupt {i}" for i in range(20)], grid(max_tokens=[100]), tag="ctrl-c"
        )

        async def main():
            task = asyncio.ensure_future(sweep.arun(concurrency=4, progress=False))
            await asyncio.to_thread(slow.wait_for, 8)
            task.cancel()  # what Ctrl-C does to the running sweep
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        log = lab.calls("ctrl-c")
        cancelled = log[log["error_type"] == "cancelled"]
        assert len(cancelled) >= 1
        cached = sum(entries for _, _, entries, _ in lab.engine.store.cache_stats()[0])
        assert cached == (log["error"].isna()).sum()  # only complete answers were cached
        plan = sweep.plan()
        assert (plan["status"] == "error").sum() == 0  # cancelled cells are not failures
        slow.reset()
        res = sweep.run(progress=False)
        assert res.complete and len(slow.seen) == 20 - cached


def test_works_inside_a_running_event_loop(lab, standin):
    sweep = lab.sweep(PROMPTS, grid(max_tokens=[300]), tag="loop")

    async def notebook_cell():
        return sweep.run(progress=False)  # a Jupyter cell: the kernel's loop is running

    assert asyncio.run(notebook_cell()).complete

    async def async_cell():
        return await lab.sweep(PROMPTS, grid(max_tokens=[301])).arun(progress=False)

    assert asyncio.run(async_cell()).complete


def test_scorer_output(lab, standin):
    rows = []
    for i, q in enumerate(PROMPTS):
        body = {"model": lab.model, "messages": [{"role": "user", "content": q}], "max_tokens": 300}
        right = synth_reply(body)["content"].split()[-1]
        rows.append({"prompt": q, "answer": right if i != 1 else "nope", "id": f"q{i}"})
    sweep = lab.sweep(pd.DataFrame(rows), grid(max_tokens=[300]), scorer=scorers.final_answer)
    res = sweep.run(progress=False)
    assert res.df["score"].tolist() == [1.0, 0.0, 1.0]
    assert res.df["prompt_id"].tolist() == ["q0", "q1", "q2"]
    assert "answer" in res.df.columns
    cpc = res.cost_per_correct(by="max_tokens")
    assert cpc.iloc[0]["correct"] == 2
    assert cpc.iloc[0]["usd_per_correct"] == pytest.approx(res.df["cost_usd"].sum() / 2)


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


# --- what results warn about ------------------------------------------------------------------
def test_unpinned_providers_and_model_fallbacks_are_flagged(db):
    providers = {M1: [Provider("Novita"), Provider("Fireworks"), Provider("Minimax")]}
    with StandIn(providers=providers, served_as={"acme/x": "acme/x-lite"}) as server:
        lab = Lab(endpoint=OpenRouter(server.url, FAKE_KEY), db=db, quiet=True)
        with pytest.warns(UserWarning, match="served by more than one provider"):
            res = lab.sweep(ROUTE_PROMPTS, grid(temperature=[0.2, 1.0]), repeats=4).run(
                progress=False
            )
        assert res.df["provider"].nunique() > 1
        with pytest.warns(UserWarning, match=r"another model .*acme/x → acme/x-lite"):
            lab.sweep(ROUTE_PROMPTS, grid(temperature=[0.5]), model="acme/x").run(progress=False)
        calls = lab.calls()
        fell = calls[calls["model"] == "acme/x"]
        assert (fell["served_model"] == "acme/x-lite").all()


def test_a_sweep_warns_when_an_axis_changed_nothing(db):
    with StandIn(ignore={"top_k"}) as server:
        lab = Lab(endpoint=OpenRouter(server.url, FAKE_KEY), db=db, quiet=True, retry=FAST_RETRY)
        sweep = lab.sweep(SHORT_QUESTIONS, grid(top_k=[1, 40], temperature=[0.2, 1.0]), tag="k")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sweep.run(progress=False)
    said = [str(w.message) for w in caught]
    assert any("sweeping top_k changed no answer" in s for s in said), said
    assert not any("sweeping temperature" in s for s in said)


def test_ignored_axes_needs_every_output_identical():
    from mmlab.sweep.results import MIN_GROUPS, ignored_axes

    rows = []
    for p in range(MIN_GROUPS):
        for t in (0.0, 1.0):
            for stop_value in (None, ["\n"]):  # unhashable values and None are compared too
                rows.append({"prompt_id": f"p{p}", "sample": 0, "temperature": t,
                             "stop": stop_value,
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


# --- adaptive runs: the stopping rules deciding live ------------------------------------------
def test_decided_stops_early_and_picks_the_better_arm(arms):
    lab, server = arms
    progress: list[tuple[int, int]] = []
    res = arms_sweep(lab).run(stop=stop.decided(by="temperature"), concurrency=4,
                          progress=lambda d, t: progress.append((d, t)))  # fmt: skip
    out = res.adaptive
    assert out is not None and res.stats.adaptive is out
    assert out.winner == {"temperature": 0.0}
    assert out.reason.startswith("decided")
    design = 12 * 2 * 20
    assert out.design_cells == design and out.cells == len(res.df) == len(server.seen)
    assert out.cells <= design // 2  # the gap is wide: a few rounds settle it
    assert out.rounds == res.df["sample"].max() + 1
    # every round sampled all twelve problems of each live arm, never a cell twice
    assert res.df.groupby(["temperature", "sample"]).size().eq(12).all()
    assert res.df["cell"].is_unique
    iv = out.intervals.set_index("temperature")
    assert iv.loc[0.0, "mean"] > iv.loc[1.0, "mean"]
    assert iv["cs_method"].str.contains("Waudby-Smith").all()
    # the decision: the paired interval on accuracy(0.0) - accuracy(1.0) excludes 0
    pair = out.pairs.iloc[0]
    a_is_best = pair["arm_a"] in (0.0, (0.0,))
    low = pair["cs_low"] if a_is_best else -pair["cs_high"]  # on accuracy(0.0) - accuracy(1.0)
    assert len(out.pairs) == 1 and low > 0
    assert out.leader == out.winner
    hist = out.history
    assert hist["round"].max() == out.rounds
    widths = (hist["cs_high"] - hist["cs_low"]).groupby(hist["temperature"]).agg(list)
    assert all(w[-1] < w[0] for w in widths)  # the intervals narrowed round by round
    assert out.usd == pytest.approx(res.df["cost_usd"].sum())
    assert out.design_usd == pytest.approx(out.usd / out.cells * design)
    # the usual analyses work on it, with the anytime-valid interval alongside
    summary = res.summary("temperature")
    score = summary[summary["metric"] == "score"].set_index("temperature")
    assert {"ci_low", "cs_low", "cs_high", "cs_method"} <= set(summary.columns)
    assert score.loc[0.0, "cs_low"] == pytest.approx(iv.loc[0.0, "cs_low"])
    assert summary[summary["metric"] != "score"]["cs_low"].isna().all()
    # progress never ran backwards and ended at what was sampled, not the design
    done = [d for d, _ in progress]
    assert done == sorted(done) and progress[-1] == (out.cells, out.cells)
    assert "best: temperature=0.0" in str(res.stats)
    fig = plots.adaptive_intervals(out)
    assert len(fig.data) == 4 and fig.layout.xaxis.title.text.startswith("round")
    assert fig.layout.yaxis.title.text.startswith("score")
    assert {t.name for t in fig.data if t.name} == {"temperature=0.0", "temperature=1.0"}


def test_ci_width_stops_when_the_width_is_met(arms):
    lab, server = arms
    rule = stop.ci_width(width=0.35, by="temperature")
    res = arms_sweep(lab, tag="width").run(stop=rule, progress=False)
    out = res.adaptive
    assert out.reason.startswith("ci_width")
    iv = out.intervals
    assert ((iv["cs_high"] - iv["cs_low"]) <= 0.35).all()
    assert out.cells < out.design_cells and out.cells == len(server.seen)
    # one round earlier some group was still too wide: it stopped as soon as the width was met
    hist = out.history
    before = hist[hist["round"] == out.rounds - 1]
    assert ((before["cs_high"] - before["cs_low"]) >= 0.35).any()


def test_an_adaptive_run_replays_from_its_bundle_with_the_same_decisions(arms, tmp_path):
    lab, server = arms
    rule = stop.decided(by="temperature") | stop.max_repeats(12)
    live = arms_sweep(lab, tag="replayed").run(stop=rule, progress=False)
    path = tmp_path / "arms.bundle.jsonl.gz"
    export_bundle(lab.engine.store, path, tag=live.sweep.tag)
    sent = len(server.seen)
    replay = Lab(endpoint=OpenRouter(server.url), db=tmp_path / "replay.db", cache="replay",
                 bundle=path, quiet=True)  # fmt: skip
    again = arms_sweep(replay, tag="replayed").run(stop=rule, progress=False)
    assert len(server.seen) == sent and again.stats.hits == live.adaptive.cells
    pd.testing.assert_frame_equal(again.adaptive.history, live.adaptive.history)
    pd.testing.assert_frame_equal(again.adaptive.intervals, live.adaptive.intervals)
    assert again.adaptive.reason == live.adaptive.reason
    assert again.df["cell"].tolist() == live.df["cell"].tolist()


def test_an_interrupted_adaptive_run_resumes_without_resending(arms):
    lab, server = arms
    rule = stop.decided(by="temperature")
    cut = arms_sweep(lab, tag="resumed").run(stop=rule, max_calls=30, progress=False)
    assert cut.stats.stopped == "max_calls=30 reached" and len(server.seen) == 30
    assert cut.adaptive.reason is None and "not decided yet" in str(cut.adaptive)
    assert cut.stats.remaining > 0
    done = arms_sweep(lab, tag="resumed").run(stop=rule, progress=False)
    assert done.adaptive.winner == {"temperature": 0.0}
    # the rerun served the 30 cached cells and sent only what the rounds still needed
    assert done.stats.hits == 30 and len(server.seen) == 30 + done.stats.sent
    assert done.adaptive.cells == len(server.seen)
    assert done.stats.remaining == 0


def test_the_live_scorer_sees_the_row_res_df_scores(arms):
    lab, _ = arms
    seen: list[dict] = []

    def scorer(row):  # reads what only a full result row has
        seen.append(dict(row))
        assert row["model"] == "minimax/minimax-m1" and row["error"] is None
        return scorers.final_answer(row) if row["cost_usd"] >= 0 else None

    res = lab.sweep(ARM_PROBLEMS, grid(temperature=[0.0, 1.0]), repeats=8, tag="rows",
                    scorer=scorer).run(stop=stop.decided(by="temperature"),
                                       progress=False)  # fmt: skip
    live = [r for r in seen if r.get("cell") is not None][: res.adaptive.cells]
    frame_cols = set(res.df.columns) - {"score"}
    assert frame_cols <= set(live[0]), frame_cols - set(live[0])
    # the decisions used exactly the scores res.df holds
    by_cell = {r["cell"]: scorer(r) for r in live}
    assert all(res.df.set_index("cell")["score"][c] == v for c, v in by_cell.items())


def test_run_stats_mention_concurrency_only_when_rate_limits_lowered_it(lab, standin):
    from mmlab.sweep.results import RunStats

    res = lab.sweep(PROMPTS, grid(max_tokens=[300]), tag="calm").run(concurrency=2,
                                                                      progress=False)
    assert res.stats.concurrency == 2 and "concurrency" not in str(res.stats)
    nothing = lab.sweep(PROMPTS, grid(max_tokens=[300]), tag="calm").run(concurrency=2,
                                                                         progress=False)
    assert nothing.stats.sent == 0 and "concurrency" not in str(nothing.stats)
    lowered = RunStats(cells=4, sent=4, rate_limited=3, concurrency=8, lowest_concurrency=2)
    assert "3 rate-limited (concurrency down to 2)" in str(lowered)
    assert "0 rate-limited · spent" in str(RunStats(cells=1, concurrency=8, lowest_concurrency=8))
