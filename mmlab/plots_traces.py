"""plotly figures of where the thinking goes (`mmlab.traces`, `mmlab.confidence`): a reasoning
timeline per call, overthinking and loop share by a swept parameter, token confidence along
a trace.

Kept beside `mmlab.plots` (same template, colours and conventions: a ``go.Figure`` returned,
never shown; titled axes with units) so that module stays one screenful of figures per
question.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .analysis import summarize
from .confidence import DEFAULT_WINDOW, decode
from .errors import RequestError
from .plots import COLORS, template, varied_params
from .traces import NGRAM, SWITCH_MARKERS, read_trace, trace_stats

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

#: Colours of the timeline's marks.
MARKS = {"reasoning": "#bbbbbb", "switch": "#3366cc", "answer": "#dc7633",
         "correct": "#2e8b57", "loop": "#c0392b"}  # fmt: skip


def _figure(title: str, x: str, y: str) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.update_layout(template=template(), title=title, xaxis_title=x, yaxis_title=y)
    return fig


def _label(row: Any, index: Any) -> str:
    parts = [str(row[c]) for c in ("prompt_id", "sample") if c in row.index]
    return " / ".join(parts) if parts else str(index)


def _labels(df: pd.DataFrame, rows: Sequence[Any]) -> list[str]:
    """One distinct label per row: problem / sample, then — where rows of several arms share
    those — the swept parameters that tell them apart (lanes with one label would overlap),
    then the row's index."""
    labels = [_label(df.loc[i], i) for i in rows]
    if len(set(labels)) < len(labels):
        varied = varied_params(df.loc[list(rows)])
        labels = [label + "".join(f" · {c}={df.loc[i, c]}" for c in varied)
                  for label, i in zip(labels, rows, strict=True)]  # fmt: skip
    if len(set(labels)) < len(labels):
        labels = [f"{label} [{i}]" for label, i in zip(labels, rows, strict=True)]
    return labels


def reasoning_timeline(
    df: pd.DataFrame,
    rows: Iterable[Any] | None = None,
    *,
    answer: str | None = None,
    extract: Any = None,
    markers: Sequence[str] = SWITCH_MARKERS,
    ngram: int = NGRAM,
    max_rows: int = 30,
) -> go.Figure:
    """One lane per call along its reasoning, in tokens: thought switches (ticks), the first
    candidate answer (diamond), the first correct answer (star) and repeated spans (red
    bars), read by `mmlab.traces.read_trace` (positions in characters, shown as their share
    of ``reasoning_tokens``). `rows`: index labels of `df` to draw (default the first
    `max_rows` successful rows with reasoning); `answer` the gold-answer column (default
    ``answer``)."""
    import plotly.graph_objects as go

    for column in ("reasoning", "reasoning_tokens"):
        if column not in df:
            raise RequestError(
                f"reasoning_timeline needs a {column!r} column (res.df, or lab.calls() with "
                "traces.with_responses)", column,
            )  # fmt: skip
    gold_col = answer or ("answer" if "answer" in df else None)
    if rows is None:
        ok = df["reasoning"].map(lambda t: isinstance(t, str) and bool(t.strip()))
        if "error" in df:
            ok &= df["error"].isna()
        rows = list(df.index[ok.to_numpy()][:max_rows])
    fig = _figure("Where the thinking goes", "position in the reasoning (tokens)", "call")
    shown: set[str] = set()

    def add(kind: str, **kw: Any) -> None:
        fig.add_trace(go.Scatter(name=kind, legendgroup=kind, showlegend=kind not in shown,
                                 **kw))  # fmt: skip
        shown.add(kind)

    rows = list(rows)
    labels = _labels(df, rows)
    for index, y in zip(rows, labels, strict=True):
        row = df.loc[index]
        text = row["reasoning"] if isinstance(row["reasoning"], str) else ""
        tokens = row["reasoning_tokens"]
        scale = float(tokens) if tokens is not None and tokens == tokens and tokens else 0.0
        gold = row[gold_col] if gold_col else None
        trace = read_trace(text, gold, markers=markers, extract=extract, ngram=ngram)

        def at(position: int, trace: Any = trace, scale: float = scale) -> float:
            return trace.share(position) * scale

        add("reasoning", x=[0, scale], y=[y, y], mode="lines",
            line={"color": MARKS["reasoning"], "width": 6}, hoverinfo="skip")
        for start, end in trace.loops:
            add("loop", x=[at(start), at(end)], y=[y, y], mode="lines",
                line={"color": MARKS["loop"], "width": 10},
                hovertext=f"repeated span, {at(end) - at(start):.0f} tokens", hoverinfo="text")
        if trace.switches:
            add("switch", x=[at(s) for s, _ in trace.switches], y=[y] * len(trace.switches),
                mode="markers", marker={"symbol": "line-ns-open", "size": 14,
                                        "color": MARKS["switch"]},
                hovertext=[text[s:e] for s, e in trace.switches], hoverinfo="text+x")
        if trace.first_answer is not None:
            add("first answer", x=[at(trace.first_answer)], y=[y], mode="markers",
                marker={"symbol": "diamond", "size": 11, "color": MARKS["answer"]},
                hovertext=trace.candidates[0][2], hoverinfo="text+x")
        if trace.first_correct is not None:
            add("first correct", x=[at(trace.first_correct)], y=[y], mode="markers",
                marker={"symbol": "star", "size": 15, "color": MARKS["correct"]},
                hoverinfo="x+name")
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=labels[::-1])
    fig.update_layout(height=max(260, 60 + 28 * len(labels)))
    return fig


def overthinking_by(
    df: pd.DataFrame, by: str | None = None, **trace_options: Any
) -> go.Figure:
    """Overthinking tokens and loop share (means with clustered 95% intervals, by
    `mmlab.analysis.summarize`) for each value of a swept parameter `by` (default the first
    varied one). `df` is a `trace_stats` frame, or a result frame it is computed from (with
    `trace_options`)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    stats = df if "overthinking_tokens" in df else trace_stats(df, **trace_options)
    if by is None:
        varied = varied_params(stats)
        if not varied:
            raise RequestError("overthinking_by: no swept parameter to compare; pass by=", "by")
        by = varied[0]
    if by not in stats:
        raise RequestError(f"overthinking_by: no {by!r} column", by)
    table = summarize(stats, by, ["overthinking_tokens", "loop_share"])
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "reasoning after the first correct answer", "reasoning inside repeated spans"))
    fig.update_layout(template=template(), title=f"Overthinking and loops by {by}",
                      showlegend=False)  # fmt: skip
    for col, metric in ((1, "overthinking_tokens"), (2, "loop_share")):
        part = table[table["metric"] == metric]
        mid = part["mean"].astype(float)
        fig.add_trace(go.Scatter(
            x=part[by].astype(str), y=mid, mode="markers+lines",
            marker={"color": COLORS[col - 1], "size": 9},
            error_y={"type": "data", "symmetric": False,
                     "array": (part["ci_high"].astype(float) - mid).clip(lower=0),
                     "arrayminus": (mid - part["ci_low"].astype(float)).clip(lower=0)},
            customdata=part[["n", "ci_method"]].astype(str).to_numpy(),
            hovertemplate="%{y:.3g} (n=%{customdata[0]})<br>%{customdata[1]}<extra></extra>",
        ), row=1, col=col)  # fmt: skip
        fig.update_xaxes(title_text=by, row=1, col=col)
    fig.update_yaxes(title_text="overthinking (reasoning tokens)", rangemode="tozero",
                     row=1, col=1)  # fmt: skip
    fig.update_yaxes(title_text="loop share (of reasoning words)", tickformat=".0%",
                     rangemode="tozero", row=1, col=2)  # fmt: skip
    return fig


def confidence_trace(
    df: pd.DataFrame, rows: Iterable[Any] | None = None, *, window: int = DEFAULT_WINDOW,
    max_rows: int = 8,
) -> go.Figure:
    """Token confidence along each call's generation (DeepConf, `mmlab.confidence`): the
    mean over a sliding `window` (capped at the trace's length, as its scores are), one line
    per call; `rows` index labels of `df` (default the first `max_rows` with a series)."""
    import numpy as np
    import plotly.graph_objects as go

    if "confidence" not in df:
        raise RequestError("confidence_trace needs the 'confidence' column (calls made with "
                           "logprobs=True, top_logprobs=k)", "confidence")  # fmt: skip
    if rows is None:
        rows = list(df.index[df["confidence"].map(lambda c: isinstance(c, str)).to_numpy()])
        rows = rows[:max_rows]
    fig = _figure(f"Token confidence ({window}-token window mean)",
                  "generated token", "confidence (−mean top-k log-probability)")  # fmt: skip
    rows = list(rows)
    for i, (index, name) in enumerate(zip(rows, _labels(df, rows), strict=True)):
        row = df.loc[index]
        c = decode(row["confidence"]) if isinstance(row["confidence"], str) else np.zeros(0)
        if not c.size:
            continue
        w = min(window, c.size)
        sums = np.concatenate(([0.0], np.cumsum(c)))
        fig.add_trace(go.Scatter(x=np.arange(w, c.size + 1), y=(sums[w:] - sums[:-w]) / w,
                                 mode="lines", name=name,
                                 line={"color": COLORS[i % len(COLORS)]}))  # fmt: skip
    return fig


__all__ = ["MARKS", "confidence_trace", "overthinking_by", "reasoning_timeline"]
