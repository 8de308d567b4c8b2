"""ReasoningExplorer: compare reasoning, answer, truncation and latency across a sweep."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as W

from .. import plots
from ..analysis import summarize, truncation_rate
from ._common import CSS, show_figure, table_html, widen_labels

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

METRICS = ["reasoning_tokens", "answer_tokens", "completion_tokens", "latency_s", "truncation"]


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
        self.widget = W.VBox(
            [
                W.HTML(CSS + '<b class="mmlab-box">ReasoningExplorer</b>'),
                W.HBox([self.by, self.metric, self.kind]),
                W.HBox([self.prompts, *self.filters.values()]),
                self.out,
                self.table,
            ]
        )
        self.refresh()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

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
