"""ReasoningExplorer: compare reasoning, answer, truncation and latency across a sweep; read
one call's reasoning with its thought switches, first answer, first correct answer and loops
highlighted (`mmlab.traces`)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from .. import plots
from ..analysis import summarize, truncation_rate
from ..traces import Trace, read_trace
from ._common import CSS, show_figure, table_html, widen_labels

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

METRICS = ["reasoning_tokens", "answer_tokens", "completion_tokens", "latency_s", "truncation"]

#: The highlight of each mark in a reasoning text (`highlight`).
TRACE_CSS = """
<style>
.mmlab-t-switch {color: #3366cc; font-weight: bold;}
.mmlab-t-answer {background: #fbe3cf;} .mmlab-t-correct {background: #cdebd6;}
.mmlab-t-loop {background: #f6d5d1; text-decoration: underline wavy #c0392b;}
</style>
"""


def highlight(text: str, trace: Trace) -> str:
    """`text` as escaped HTML, each mark of `trace` in a span of its class: switches
    (``mmlab-t-switch``), the first candidate answer (``mmlab-t-answer``), the first correct
    one (``mmlab-t-correct``) and repeated spans (``mmlab-t-loop``); marks may overlap."""
    marks = [(s, e, "switch") for s, e in trace.switches]
    marks += [(s, e, "loop") for s, e in trace.loops]
    if trace.candidates:
        s, e, _, _ = trace.candidates[0]
        marks.append((s, e, "answer"))
    correct = next((c for c in trace.candidates if c[3]), None)
    if correct is not None:
        marks.append((correct[0], correct[1], "correct"))
    cuts = sorted({0, len(text), *(p for s, e, _ in marks for p in (s, e))})
    out = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        classes = sorted({f"mmlab-t-{kind}" for s, e, kind in marks if s <= a and b <= e})
        piece = html.escape(text[a:b])
        out.append(f'<span class="{" ".join(classes)}">{piece}</span>' if classes else piece)
    return "".join(out)


class ReasoningExplorer:
    """Pick prompts and parameter values from a sweep's DataFrame; compare distributions.

    Headless: set ``by``, ``metric``, ``prompts`` or a filter's value, then read ``figure``,
    ``summary`` and ``selected``.
    """

    def __init__(
        self, df: pd.DataFrame, *, by: str | None = None, metric: str = "reasoning_tokens"
    ) -> None:
        self.df = df
        params = plots.varied_params(df) or [c for c in plots.PARAM_COLUMNS if c in df.columns]
        if not params:
            raise ValueError("the DataFrame has no parameter columns to compare")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}; got {metric!r}")
        self.by = W.Dropdown(options=params, value=by or params[0], description="compare")
        self.metric = W.Dropdown(options=METRICS, value=metric, description="metric")
        self.kind = W.ToggleButtons(options=["box", "violin"], value="box")
        prompt_ids = sorted(df["prompt_id"].astype(str).unique())
        self.prompts = W.SelectMultiple(
            options=prompt_ids,
            value=tuple(prompt_ids),
            description="prompts",
            rows=min(6, len(prompt_ids)),
        )
        self.filters: dict[str, W.SelectMultiple] = {}
        for p in params:
            values = sorted(df[p].dropna().unique().tolist())
            self.filters[p] = W.SelectMultiple(
                options=values, value=tuple(values), description=p, rows=min(4, len(values))
            )
        widen_labels(self.by, self.metric, self.prompts, *self.filters.values(), width="90px")
        self.out = W.Output()
        self.table = W.HTML()
        for w in (self.by, self.metric, self.kind, self.prompts, *self.filters.values()):
            w.observe(lambda _change: self.refresh(), names="value")
        # one call's reasoning, marked up (only when the frame carries the text)
        readable = [i for i, t in zip(df.index, df["reasoning"] if "reasoning" in df else [],
                                      strict=False) if isinstance(t, str) and t.strip()]
        self.call = W.Dropdown(options=[(self._call_label(i), i) for i in readable],
                               value=readable[0] if readable else None, description="call",
                               layout=W.Layout(width="520px"))  # fmt: skip
        self.trace = W.HTML()
        self.call.observe(lambda _change: self.show_trace(), names="value")
        widen_labels(self.call, width="90px")
        self.widget = W.VBox(
            [
                W.HTML(CSS + '<b class="mmlab-box">ReasoningExplorer</b>'),
                W.HBox([self.by, self.metric, self.kind]),
                W.HBox([self.prompts, *self.filters.values()]),
                self.out,
                self.table,
                *([self.call, self.trace] if readable else []),
            ]
        )
        self.refresh()
        self.show_trace()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _call_label(self, index: Any) -> str:
        row = self.df.loc[index]
        parts = [f"{c} {row[c]}" for c in ("prompt_id", "sample", self.by.value) if c in row]
        return ", ".join(parts) or str(index)

    @property
    def trace_html(self) -> str:
        """The chosen call's reasoning as HTML, its marks highlighted (`highlight`), after a
        legend; empty when the frame has no reasoning text."""
        if self.call.value is None:
            return ""
        row = self.df.loc[self.call.value]
        text = row["reasoning"]
        trace = read_trace(text, row["answer"] if "answer" in row else None)
        legend = ('<span class="mmlab-t-switch">switch</span> · <span class="mmlab-t-answer">'
                  'first answer</span> · <span class="mmlab-t-correct">first correct</span> · '
                  '<span class="mmlab-t-loop">repeats earlier text</span>')  # fmt: skip
        return (f'{TRACE_CSS}<div class="mmlab-box">{legend}</div>'
                f'<div class="mmlab-reasoning mmlab-box">{highlight(text, trace)}</div>')

    def show_trace(self) -> None:
        """Show the chosen call's marked-up reasoning."""
        self.trace.value = self.trace_html

    @property
    def selected(self) -> pd.DataFrame:
        """The rows the current selection keeps."""
        df = self.df[self.df["prompt_id"].astype(str).isin(self.prompts.value)]
        for name, box in self.filters.items():
            df = df[df[name].isin(box.value)]
        return df

    @property
    def figure(self) -> go.Figure:
        """The current comparison plot."""
        data = self.selected
        if self.metric.value == "truncation":
            if self.by.value == "max_tokens":
                return plots.truncation_vs_max_tokens(data)
            return plots.truncation_vs_max_tokens(data, color=self.by.value)
        return plots.reasoning_distribution(
            data, by=self.by.value, metric=self.metric.value, kind=self.kind.value
        )

    @property
    def summary(self) -> pd.DataFrame:
        """Numbers behind the plot: means with 95% CIs, or truncation rates."""
        data = self.selected
        if self.metric.value == "truncation":
            return truncation_rate(data, self.by.value)
        return summarize(data, self.by.value, [self.metric.value])

    def refresh(self) -> None:
        """Redraw the plot and the table."""
        summary = self.summary
        show_figure(self.out, self.figure)
        cols = [c for c in summary.columns if c != "metric"]
        rows = [
            {k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in r.items()}
            for r in summary.to_dict("records")
        ]
        self.table.value = table_html(rows, cols)
