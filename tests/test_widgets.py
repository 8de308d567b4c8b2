"""Every widget driven headless: set values, press buttons, read state."""

from __future__ import annotations

import pandas as pd
import pytest

from mmlab import grid
from mmlab.pricing import EMBEDDED
from mmlab.testing import Fault, synth_reply
from mmlab.widgets import (
    CostPlanner,
    PromptExplorer,
    ReasoningExplorer,
    SweepBuilder,
    UsageDashboard,
)


def test_prompt_explorer_runs_streams_and_remembers(lab, standin):
    pe = PromptExplorer(lab, prompt="What is 2 + 2?", max_tokens=300)
    pe.temperature.value = 0.4
    pe.reasoning.value = "effort: high"
    assert not pe.run_button.disabled
    pe.run_button.click()  # no running loop here: the click runs to completion
    sent = standin.seen[0].body
    assert sent["temperature"] == 0.4 and sent["reasoning"] == {"effort": "high"}
    assert sent["stream"] is True
    expected = synth_reply({k: v for k, v in sent.items() if k != "stream"})
    assert pe.last.content == expected["content"]
    assert expected["content"] in pe.answer.value
    assert "step0" in pe.reasoning_text.value
    assert "$0.0000" in pe.stats.value and "live call" in pe.stats.value
    assert f"reasoning {expected['reasoning_tokens']}" in pe.token_bar.value
    assert not pe.run_button.disabled and pe.run_button.description == "Run"
    pe.run_button.click()
    assert pe.last.cache_hit and "cache hit" in pe.stats.value and len(standin.seen) == 1
    assert len(pe.history) == 2 and "<td>2</td>" in pe.history_table.value
    pe.prompt.value = "something else"
    pe.temperature.value = 1.5
    pe.recall.value = 1
    assert pe.prompt.value == "What is 2 + 2?" and pe.temperature.value == 0.4
    assert pe.last is pe.history[0]["result"]


def test_prompt_explorer_shows_errors_without_tracebacks(lab, standin):
    pe = PromptExplorer(lab, prompt="fail please", max_tokens=300)
    standin.enqueue(Fault.http(402))
    assert pe.run() is None
    assert "APIError" in pe.error.value and "402" in pe.error.value
    assert "Traceback" not in pe.error.value
    assert not pe.run_button.disabled
    pe.prompt.value = "   "
    pe.run()
    assert "RequestError" in pe.error.value and "non-blank" in pe.error.value


def test_prompt_explorer_shows_truncation(lab):
    pe = PromptExplorer(lab, prompt="a long hard question about everything", max_tokens=4)
    r = pe.run()
    assert r.truncated and "thinking used the whole budget" in pe.answer.value


@pytest.fixture
def sweep_df(lab):
    res = lab.sweep(
        [f"question {i} about some topic" for i in range(3)],
        grid(temperature=[0.0, 1.0], max_tokens=[16, 400]),
        repeats=2,
    ).run(progress=False)
    return res.df


def test_reasoning_explorer(sweep_df):
    rx = ReasoningExplorer(sweep_df)
    assert rx.by.value == "temperature" and len(rx.selected) == 24
    assert rx.figure.layout.xaxis.title.text == "temperature"
    assert len(rx.out.outputs) == 1
    assert set(rx.summary["temperature"]) == {0.0, 1.0}
    rx.prompts.value = ("p0",)
    assert len(rx.selected) == 8 and rx.summary["n"].sum() == 8
    rx.filters["max_tokens"].value = (400,)
    assert len(rx.selected) == 4
    rx.filters["max_tokens"].value = (16, 400)
    rx.by.value = "max_tokens"
    rx.metric.value = "truncation"
    table = rx.summary
    assert (
        table.set_index("max_tokens").loc[16, "rate"]
        > table.set_index("max_tokens").loc[400, "rate"]
    )
    assert rx.figure.layout.title.text == "Truncation rate vs. max_tokens"
    assert "rate" in rx.table.value


def test_reasoning_explorer_highlights_where_the_thinking_goes(sweep_df):
    text = ("<b>2 + 3 = 4</b>. Wait, 2 + 3 = 5. " + "I repeat myself here. " * 12
            + "Alternatively <script>alert(1)</script>")  # fmt: skip
    df = sweep_df.assign(answer="5")
    df.loc[df.index[1], "reasoning"] = text
    rx = ReasoningExplorer(df)
    assert rx.call.value == df.index[0] and "step0" in rx.trace.value  # the first call shown
    assert len(rx.call.options) == int((df["reasoning"].str.strip() != "").sum())
    rx.call.value = df.index[1]
    shown = rx.trace.value
    # the model's text is escaped; the marks are ours
    assert "<script>" not in shown and "&lt;script&gt;" in shown and "&lt;b&gt;" in shown
    assert '<span class="mmlab-t-switch">Wait</span>' in shown
    assert '<span class="mmlab-t-switch">Alternatively</span>' in shown
    assert '<span class="mmlab-t-answer">= 4</span>' in shown  # the first candidate
    assert '<span class="mmlab-t-correct">= 5</span>' in shown  # the first correct one
    assert 'class="mmlab-t-loop"' in shown and "first correct</span>" in shown
    assert shown == rx.trace_html and rx.trace in rx.widget.children
    # a frame without reasoning text has no trace view
    bare = ReasoningExplorer(sweep_df.drop(columns="reasoning"))
    assert bare.trace_html == "" and bare.trace not in bare.widget.children


def test_cost_planner_from_prices_and_from_the_log(lab):
    cp = CostPlanner(
        EMBEDDED,
        calls_per_day=1000,
        prompt_tokens=1000,
        completion_tokens=10_000,
        monthly_budget_usd=1000,
    )
    m1 = cp.table.set_index("model").loc["minimax/minimax-m1"]
    assert m1["usd_per_call"] == pytest.approx(1000 * 0.4e-6 + 10_000 * 2.2e-6)
    assert m1["usd_per_month"] == pytest.approx(m1["usd_per_call"] * 1000 * 30)
    assert bool(m1["within_budget"]) is True
    cp.calls_per_day.value = 100_000
    assert not bool(cp.table.set_index("model").loc["minimax/minimax-m1", "within_budget"])
    names = [t.name for t in cp.figure.data]
    assert names == list(cp.models.value)
    assert len(cp.figure.layout.shapes) == 1  # the budget line
    cp.period.value = "day"
    assert cp.figure.layout.yaxis.title.text == "cost per day (USD)"
    for i in range(3):
        lab.chat(f"seed the planner {i}", max_tokens=300)
    seeded = CostPlanner(lab)
    df = lab.calls()
    assert seeded.seeded_from == 3
    assert seeded.completion_tokens.value == int(df["completion_tokens"].median())


def test_sweep_builder_plans_live_and_runs(lab, standin):
    sb = SweepBuilder(lab, temperatures="0.0, 1.0", max_tokens="64, 256", repeats=1, tag="sb")
    assert sb.sweep is not None and len(sb.sweep) == 2 * 2 * 2 * 2  # 2 levels × 2 each
    assert "16 cells: 0 cached, 16 to call" in sb.forecast_text
    sb.max_tokens.value = "64, many"
    assert sb.sweep is None and "max_tokens" in sb.error.value and sb.run_button.disabled
    sb.max_tokens.value = "64"
    assert "8 cells" in sb.forecast_text and not sb.run_button.disabled
    sb.source.value = "my prompts"
    sb.prompts_text.value = "first question\nsecond question\n\nthird question"
    assert len(sb.sweep) == 3 * 2
    assert standin.seen == []  # planning sends nothing
    res = sb.run()
    assert res.complete and len(standin.seen) == 6
    assert sb.progress.value == 6 and sb.progress.max == 6
    assert "6 sent" in sb.result_html.value
    assert "6 cached, 0 to call" in sb.forecast_text
    sb.run_button.click()  # rerun: all cached, nothing sent
    assert len(standin.seen) == 6 and sb.result.stats.hits == 6


def test_widgets_render_as_widgets(lab, sweep_df):
    for w in (PromptExplorer(lab), ReasoningExplorer(sweep_df), CostPlanner(), SweepBuilder(lab),
              UsageDashboard(lab)):  # fmt: skip
        bundle = w._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle


def test_reasoning_explorer_rejects_frames_without_parameters():
    with pytest.raises(ValueError, match="parameter"):
        ReasoningExplorer(pd.DataFrame({"prompt_id": ["a"], "reasoning_tokens": [1]}))


def test_prompt_explorer_follows_up_handing_reasoning_blocks_back(lab, standin):
    pe = PromptExplorer(lab, prompt="What is 7 + 5?", max_tokens=300)
    pe.run()
    first = pe.last
    pe.prompt.value = "And times two?"
    pe.follow_up.value = True
    pe.run()
    sent = standin.seen[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1] == first.message() and "turn 2 of a conversation" in pe.stats.value
    pe.follow_up.value = False  # a fresh conversation
    pe.prompt.value = "Something new"
    pe.run()
    assert [m["role"] for m in standin.seen[-1].body["messages"]] == ["user"]


def test_usage_dashboard_breaks_spend_down_and_lists_recent_calls(lab, standin):
    lab.chat("one", max_tokens=64, tag="a")
    lab.chat("two", max_tokens=64, tag="b", provider="StandIn")
    lab.chat("one", max_tokens=64, tag="a")  # a hit: counted, not spent
    dash = UsageDashboard(lab, recent=2)
    totals = dash.totals.set_index("model")
    assert totals.loc["minimax/minimax-m1", "calls"] == 3
    assert totals.loc["minimax/minimax-m1", "hits"] == 1
    spent = lab.calls()["spent_usd"].sum()
    assert totals["spent_usd"].sum() == pytest.approx(spent)
    assert len(dash.recent) == 2 and dash.recent["cache_status"].iloc[-1] == "hit"
    assert dash.figure.layout.xaxis.title.text.startswith("day")
    assert dash.figure.layout.yaxis.title.text == "spent (USD)"
    dash.by.value = "tag"  # redraws on change
    assert set(dash.totals["tag"]) == {"a", "b"} and len(dash.figure.data) == 2
    dash.tag.value = "a"
    dash.refresh()
    assert set(dash.totals["tag"]) == {"a"} and "hit" in dash.recent_html.value
    dash.by.value = "provider"
    assert dash.status.value == "" and list(dash.totals["provider"]) == ["StandIn"]


def test_cost_planner_answers_how_many_samples_and_what_they_cost(lab, standin):
    from mmlab import design

    cp = CostPlanner(EMBEDDED, prompt_tokens=1000, completion_tokens=10_000)
    cp.baseline.value, cp.effect.value, cp.samples.value = 0.5, 0.1, 1
    cp.paired.value = False  # separate problems per arm, one sample: the textbook 388
    assert cp.design.problems == 388 and "<b>388 problems</b>" in cp.design_html.value
    m1 = cp.design_table.set_index("model").loc["minimax/minimax-m1"]
    assert m1["calls"] == 776
    assert m1["usd"] == pytest.approx(776 * (1000 * 0.4e-6 + 10_000 * 2.2e-6))
    assert cp.design_plan is None  # no Lab: priced per table only
    cp.paired.value = True
    cp.samples.value = 4
    want = design.sample_size(0.5, 0.1, samples=4)
    assert cp.design.problems == want.problems < 388
    assert f"{want.calls:,} calls" in cp.design_html.value and "(ICC) 0.5" in cp.design_html.value
    cp.effect.value = 0.6  # 0.5 + 0.6 > 1: a readable error, not a traceback
    assert "RequestError" in cp.design_html.value and "Traceback" not in cp.design_html.value
    # given a Lab, the design is also priced through the sweep forecast, and nothing is sent
    planner = CostPlanner(lab)
    planner.baseline.value, planner.effect.value, planner.samples.value = 0.6, 0.2, 2
    plan = planner.design_plan
    assert plan is not None and plan.calls == planner.design.calls
    assert "Forecast on this lab" in planner.design_html.value
    assert f"${plan.expected_usd:,.4f}" in planner.design_html.value
    assert standin.seen == []
