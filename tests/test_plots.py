"""plotly figures: right data, labelled axes with units, hover naming the cell."""

from __future__ import annotations

import json

import pandas as pd
import plotly.io as pio
import pytest

from mmlab import plots


@pytest.fixture
def df():
    rows = []
    for i, (t, m) in enumerate([(0.0, 16), (0.0, 256), (1.0, 16), (1.0, 256)] * 3):
        rows.append(
            {
                "prompt_id": f"p{i % 3}",
                "sample": i // 4,
                "temperature": t,
                "max_tokens": m,
                "reasoning_tokens": 10 + i,
                "completion_tokens": 20 + i,
                "answer_tokens": 10,
                "latency_s": 0.1 * (i + 1),
                "truncated": m == 16 and i % 2 == 0,
                "score": float(i % 2),
                "cost_usd": 0.001,
                "error": None,
            }
        )
    return pd.DataFrame(rows)


def test_reasoning_distribution(df):
    fig = plots.reasoning_distribution(df, by="temperature")
    assert [t.name for t in fig.data] == ["temperature=0.0", "temperature=1.0"]
    assert sorted(list(fig.data[0].y) + list(fig.data[1].y)) == sorted(df["reasoning_tokens"])
    assert fig.layout.yaxis.title.text == "reasoning (tokens)"
    assert "prompt_id" in fig.data[0].hovertemplate and "max_tokens" in fig.data[0].hovertemplate
    assert fig.layout.template.layout.plot_bgcolor == "white"
    violin = plots.reasoning_distribution(df, by="max_tokens", kind="violin")
    assert violin.data[0].type == "violin"


def test_truncation_vs_max_tokens(df):
    fig = plots.truncation_vs_max_tokens(df)
    assert list(fig.data[0].x) == [16, 256]
    expected = df.groupby("max_tokens")["truncated"].mean().tolist()
    assert list(fig.data[0].y) == pytest.approx(expected)
    assert fig.layout.xaxis.type == "log" and "tokens" in fig.layout.xaxis.title.text
    by_t = plots.truncation_vs_max_tokens(df, color="temperature")
    assert len(by_t.data) == 2


def test_latency_accuracy_heatmap(df):
    lat = plots.latency_vs_output(df)
    assert lat.layout.yaxis.title.text == "latency (s)"
    assert sum(len(t.x) for t in lat.data) == len(df)
    acc = plots.accuracy_vs_reasoning(df, bins=3)
    assert all(0 <= y <= 1 for y in acc.data[0].y)
    heat = plots.heatmap(df, "temperature", "max_tokens", "reasoning_tokens")
    table = df.pivot_table(index="max_tokens", columns="temperature", values="reasoning_tokens")
    assert heat.data[0].z.tolist() == table.to_numpy().tolist()


def test_cost_curves_use_price_tables():
    fig = plots.cost_vs_tokens(
        ["minimax/minimax-m1", "deepseek/deepseek-r1"], vary="prompt", fixed_tokens=1000
    )
    m1 = fig.data[0]
    assert m1.name == "minimax/minimax-m1" and m1.x[-1] == 1_000_000
    assert m1.y[-1] == pytest.approx(1_000_000 * 0.4e-6 + 1000 * 2.2e-6)
    assert fig.layout.yaxis.title.text == "cost per call (USD)"
    gem = plots.cost_vs_tokens(["google/gemini-2.5-pro"], vary="prompt")
    ys = list(gem.data[0].y)
    xs = list(gem.data[0].x)
    below = next(i for i, x in enumerate(xs) if x > 200_000) - 1
    # the long-context tier doubles the prompt price past 200K tokens
    assert ys[below + 1] / xs[below + 1] > 1.8 * ys[below] / xs[below]
    day = plots.cost_per_day([10, 100], 1000, 1000, ["minimax/minimax-m1"], monthly_budget_usd=100)
    assert day.data[0].y[1] == pytest.approx(100 * (1000 * 0.4e-6 + 1000 * 2.2e-6) * 30)
    assert len(day.layout.shapes) == 1


def test_usage_chart_says_why_it_is_empty():
    summary = pd.DataFrame({"day": ["2026-11-26"] * 2, "model": ["a", "b"], "calls": [3, 4],
                            "hits": [3, 4], "completion_tokens": [10, 20],
                            "spent_usd": [0.0, 0.0]})  # fmt: skip
    fig = plots.usage(summary)
    assert [a.text for a in fig.layout.annotations] == [
        "nothing spent: 7 of 7 calls were cache hits"
    ]
    summary.loc[0, "spent_usd"] = 0.01
    paid = plots.usage(summary)
    assert not paid.layout.annotations and sum(sum(t.y) for t in paid.data) == 0.01


def test_setup_notebook_is_lean():
    plots.setup_notebook()
    assert pio.renderers.default == "plotly_mimetype"
    assert pio.templates.default == "mmlab"
    assert len(json.dumps(plots.template().to_plotly_json())) < 1500


# --- where the thinking goes (mmlab.plots_traces) ----------------------------------------------
def _traces_frame() -> pd.DataFrame:
    from mmlab.confidence import encode

    right = "We add: 2 + 3 = 5. Wait, is that right? The answer is 5."
    loop = "Hmm. " + "let me count the apples again and again " * 8
    rows = []
    for i, (text, t) in enumerate([(right, 0.0), (loop, 0.0), (right, 1.0), ("It is 6.", 1.0)]):
        rows.append({"prompt_id": f"p{i % 2}", "sample": i // 2, "temperature": t,
                     "reasoning": text, "reasoning_tokens": 40 + i, "content": "5",
                     "completion_tokens": 50 + i,
                     "answer": "5", "error": None, "confidence": encode([1.0 + i] * 50)})
    return pd.DataFrame(rows)


def test_reasoning_timeline_marks_switches_answers_and_loops():
    from mmlab import plots_traces

    df = _traces_frame()
    fig = plots_traces.reasoning_timeline(df, ngram=5)
    assert fig.layout.title.text == "Where the thinking goes"
    assert fig.layout.xaxis.title.text == "position in the reasoning (tokens)"
    assert fig.layout.yaxis.title.text == "call"
    names = {t.name for t in fig.data}
    assert names == {"reasoning", "switch", "first answer", "first correct", "loop"}
    first = next(t for t in fig.data if t.name == "first correct")
    right = df["reasoning"][0]
    assert first.x[0] == pytest.approx((right.index("= 5") + 3) / len(right) * 40)
    assert list(fig.layout.yaxis.categoryarray) == ["p1 / 1", "p0 / 1", "p1 / 0", "p0 / 0"]
    json.loads(pio.to_json(fig))  # serialisable
    with pytest.raises(Exception, match="reasoning"):
        plots_traces.reasoning_timeline(df.drop(columns="reasoning"))


def test_timeline_lanes_of_several_arms_stay_apart():
    # the same problem and sample under two temperatures: one lane each, told apart by the
    # swept parameter (one label would draw both calls on one lane)
    from mmlab import plots_traces

    df = _traces_frame().assign(prompt_id="p0", sample=[0, 1, 0, 1])
    fig = plots_traces.reasoning_timeline(df, ngram=5)
    assert list(fig.layout.yaxis.categoryarray) == [
        "p0 / 1 · temperature=1.0", "p0 / 0 · temperature=1.0",
        "p0 / 1 · temperature=0.0", "p0 / 0 · temperature=0.0"]  # fmt: skip
    lines = plots_traces.confidence_trace(df, window=10)
    assert [t.name for t in lines.data] == [
        "p0 / 0 · temperature=0.0", "p0 / 1 · temperature=0.0",
        "p0 / 0 · temperature=1.0", "p0 / 1 · temperature=1.0"]  # fmt: skip
    same = pd.concat([df.iloc[:1], df.iloc[:1]], ignore_index=True)  # nothing tells them apart
    assert list(plots_traces.reasoning_timeline(same).layout.yaxis.categoryarray) == [
        "p0 / 0 [1]", "p0 / 0 [0]"]


def test_overthinking_and_loops_by_a_swept_parameter():
    from mmlab import plots_traces

    fig = plots_traces.overthinking_by(_traces_frame(), ngram=5)
    assert fig.layout.title.text == "Overthinking and loops by temperature"
    assert fig.layout.xaxis.title.text == "temperature"
    assert fig.layout.yaxis.title.text == "overthinking (reasoning tokens)"
    assert fig.layout.yaxis2.title.text == "loop share (of reasoning words)"
    assert len(fig.data) == 2 and list(fig.data[0].x) == ["0.0", "1.0"]
    # temperature 0: one call 56 of its 65 words repeating, one without; none at 1
    assert fig.data[1].y[0] == pytest.approx(56 / 65 / 2) and fig.data[1].y[1] == 0.0


def test_confidence_trace():
    from mmlab import plots_traces

    fig = plots_traces.confidence_trace(_traces_frame(), window=10)
    assert len(fig.data) == 4 and fig.layout.xaxis.title.text == "generated token"
    assert list(fig.data[2].y)[:2] == [3.0, 3.0]
