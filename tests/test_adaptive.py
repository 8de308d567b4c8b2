"""Adaptive sweeps end to end against the stand-in: arms of known accuracy, the stopping rules
deciding live, replay making the same decisions, resume, budget, progress and sweep files."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from conftest import FAKE_KEY, FAST_RETRY

from mmlab import Lab, grid, plots, scorers, stop
from mmlab.bundle import export_bundle
from mmlab.endpoints import OpenRouter
from mmlab.errors import RequestError
from mmlab.sweep import stop_from_spec
from mmlab.testing import StandIn, gold_answer

#: Twelve questions with distinct gold answers (the stand-in's answer is a function of them).
QUESTIONS = [f"How many apples are in basket number {i} of the orchard?" for i in range(12)]
PROBLEMS = pd.DataFrame({"prompt": QUESTIONS, "answer": [gold_answer(q) for q in QUESTIONS]})
#: Arm accuracies the stand-in answers with: 0.9 at temperature 0, 0.3 at temperature 1.
ACCURACY = {0.0: 0.9, 1.0: 0.3}


def _accuracy(body: dict) -> float:
    return ACCURACY[body["temperature"]]


@pytest.fixture
def arms(db):
    with StandIn(accuracy=_accuracy) as server:
        lab = Lab(endpoint=OpenRouter(server.url, FAKE_KEY), db=db, quiet=True, retry=FAST_RETRY)
        yield lab, server
        lab.close()


def _sweep(lab: Lab, repeats: int = 20, tag: str = "arms"):
    return lab.sweep(PROBLEMS, grid(temperature=[0.0, 1.0]), repeats=repeats, tag=tag,
                     scorer=scorers.final_answer)  # fmt: skip


def test_decided_stops_early_and_picks_the_better_arm(arms):
    lab, server = arms
    progress: list[tuple[int, int]] = []
    res = _sweep(lab).run(stop=stop.decided(by="temperature"), concurrency=4,
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
    res = _sweep(lab, tag="width").run(stop=rule, progress=False)
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
    live = _sweep(lab, tag="replayed").run(stop=rule, progress=False)
    path = tmp_path / "arms.bundle.jsonl.gz"
    export_bundle(lab.engine.store, path, tag=live.sweep.tag)
    sent = len(server.seen)
    replay = Lab(endpoint=OpenRouter(server.url), db=tmp_path / "replay.db", cache="replay",
                 bundle=path, quiet=True)  # fmt: skip
    again = _sweep(replay, tag="replayed").run(stop=rule, progress=False)
    assert len(server.seen) == sent and again.stats.hits == live.adaptive.cells
    pd.testing.assert_frame_equal(again.adaptive.history, live.adaptive.history)
    pd.testing.assert_frame_equal(again.adaptive.intervals, live.adaptive.intervals)
    assert again.adaptive.reason == live.adaptive.reason
    assert again.df["cell"].tolist() == live.df["cell"].tolist()


def test_an_interrupted_adaptive_run_resumes_without_resending(arms):
    lab, server = arms
    rule = stop.decided(by="temperature")
    cut = _sweep(lab, tag="resumed").run(stop=rule, max_calls=30, progress=False)
    assert cut.stats.stopped == "max_calls=30 reached" and len(server.seen) == 30
    assert cut.adaptive.reason is None and "not decided yet" in str(cut.adaptive)
    assert cut.stats.remaining > 0
    done = _sweep(lab, tag="resumed").run(stop=rule, progress=False)
    assert done.adaptive.winner == {"temperature": 0.0}
    # the rerun served the 30 cached cells and sent only what the rounds still needed
    assert done.stats.hits == 30 and len(server.seen) == 30 + done.stats.sent
    assert done.adaptive.cells == len(server.seen)
    assert done.stats.remaining == 0


def test_the_budget_rule_and_budget_usd_both_hold(arms):
    lab, server = arms
    res = _sweep(lab, tag="capped").run(stop=stop.ci_width(width=0.01), budget_usd=0.004,
                                        progress=False)  # fmt: skip
    assert res.stats.stopped.startswith("budget")
    assert lab.spent_usd("capped") <= 0.004
    ruled = _sweep(lab, tag="ruled").run(stop=stop.ci_width(width=0.01) | stop.budget(0.003),
                                         progress=False)  # fmt: skip
    assert ruled.adaptive.reason.startswith("budget")
    assert lab.spent_usd("ruled") <= 0.003 and ruled.adaptive.usd <= 0.003


def test_the_adaptive_forecast_brackets_the_run(arms):
    lab, server = arms
    sweep = _sweep(lab, tag="forecast")
    fixed = sweep.forecast()
    adaptive = sweep.forecast(stop=stop.decided(by="temperature"))
    assert adaptive.to_call == fixed.to_call and adaptive.worst_usd == fixed.worst_usd
    assert 0 < adaptive.adaptive_share < 1
    assert "adaptive (decided(by='temperature'" in str(adaptive)
    assert "worst case the fixed design" in str(adaptive)
    assert server.seen == []


def test_bad_stop_input_is_refused_before_any_call(arms):
    lab, server = arms
    unscored = lab.sweep(PROBLEMS, grid(temperature=[0.0, 1.0]), repeats=2, tag="bad")
    for call, field in [
        (lambda: unscored.run(stop=stop.decided(by="temperature"), progress=False), "scorer"),
        (lambda: unscored.forecast(stop=stop.decided(by="temperature")), "scorer"),
        (lambda: _sweep(lab).run(stop="decided", progress=False), "stop"),
        (lambda: _sweep(lab).run(stop=stop.decided(by="top_p"), progress=False), "by"),
        (lambda: stop.ci_width(width=1.5), "width"),
        (lambda: stop.budget(-1), "budget"),
    ]:
        with pytest.raises(RequestError) as info:
            call()
        assert info.value.field == field, (info.value, field)
    assert server.seen == []


def test_sweep_files_take_a_stop_rule(arms, tmp_path):
    lab, server = arms
    rule = stop_from_spec({"decided": {"by": "temperature"}, "budget": 2.0, "max_repeats": 9})
    assert str(rule) == str(
        stop.decided(by="temperature") | stop.budget(2.0) | stop.max_repeats(9)
    )
    assert stop_from_spec(None) is None
    path = tmp_path / "arms.yaml"
    rows = "\n".join(f'  - {{prompt: "{q}", answer: "{gold_answer(q)}"}}' for q in QUESTIONS)
    path.write_text(
        textwrap.dedent(f"""
        base_url: {server.url}
        tag: arms-file
        repeats: 20
        params: {{grid: {{temperature: [0.0, 1.0]}}}}
        scorer: final_answer
        stop: {{decided: {{by: temperature}}, max_repeats: 20}}
        """)
        + f"prompts:\n{rows}\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "mmlab", "sweep", str(path), "--db", str(tmp_path / "f.db"),
         "--yes"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "adaptive (" in run.stdout and "decided(by='temperature'" in run.stdout
    assert "adaptive: decided" in run.stdout and "best: temperature=0.0" in run.stdout
    assert len(server.seen) < 12 * 2 * 20


def test_the_live_scorer_sees_the_row_res_df_scores(arms):
    lab, _ = arms
    seen: list[dict] = []

    def scorer(row):  # reads what only a full result row has
        seen.append(dict(row))
        assert row["model"] == "minimax/minimax-m1" and row["error"] is None
        return scorers.final_answer(row) if row["cost_usd"] >= 0 else None

    res = lab.sweep(PROBLEMS, grid(temperature=[0.0, 1.0]), repeats=8, tag="rows",
                    scorer=scorer).run(stop=stop.decided(by="temperature"),
                                       progress=False)  # fmt: skip
    live = [r for r in seen if r.get("cell") is not None][: res.adaptive.cells]
    frame_cols = set(res.df.columns) - {"score"}
    assert frame_cols <= set(live[0]), frame_cols - set(live[0])
    # the decisions used exactly the scores res.df holds
    by_cell = {r["cell"]: scorer(r) for r in live}
    assert all(res.df.set_index("cell")["score"][c] == v for c, v in by_cell.items())


def test_a_rule_on_a_metric_no_sweep_reports_is_refused(arms):
    lab, server = arms
    with pytest.raises(RequestError, match="reasoning_tokens") as err:
        _sweep(lab, repeats=4).run(stop=stop.ci_width(metric="reasoning_tokens", width=0.1))
    assert err.value.field == "metric" and server.seen == []


def test_simulate_a_rule_on_a_finished_sweep(arms):
    from mmlab.sequential import simulate, summarize_simulations

    lab, _ = arms
    res = _sweep(lab, repeats=6, tag="grid").run(progress=False)  # the fixed, full grid
    assert res.parameters == ["temperature"]
    sims = simulate(res, stop.decided(by="temperature"), repeats=6, n_sims=40, seed=1)
    s = summarize_simulations(sims)
    # cells are (problem, temperature): 12 x 2, not split by the prompt table's gold answers
    assert s["n_sims"] == 40 and s["call_share"] <= 1.0 and s["wrong_pick"] == 0.0
    raw = simulate(res.df, stop.ci_width(width=0.5), repeats=6, n_sims=5, seed=1,
                   by="temperature")  # fmt: skip
    assert len(raw) == 5
