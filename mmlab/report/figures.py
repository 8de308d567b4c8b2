"""The summary figures of a bundle or tag report: calls by model and parameters, tokens by
class, reasoning length and cost per call, finish reasons — in `mmlab.plots`' template, every
axis titled.

Each figure links to the call browser: a trace's ``meta.link`` names table columns and each
point's ``customdata`` holds one filter per column (``=minimax/minimax-m1``, ``100..199``,
``>=0.001 <0.002``), so a click on a bar filters the browser to exactly the calls it counts.
Histograms are binned here, not in the browser: a figure's size does not grow with the calls.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..plots import COLORS, template
from .calls import Call, parameters

if TYPE_CHECKING:
    import plotly.graph_objects as go

#: Most groups a bar chart shows (the largest ones); the rest are summed as "other".
MAX_GROUPS = 30
BINS = 20


def _figure(title: str, x: str, y: str, **layout: Any) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.update_layout(template=template(), title=title, xaxis_title=x, yaxis_title=y,
                      **{"height": 380, **layout})  # fmt: skip
    return fig


def _label(value: Any) -> str:
    return "—" if value is None else str(value)


def _exact(value: Any) -> str:
    """The browser filter matching exactly `value`."""
    if value is None:
        return "=—"
    if isinstance(value, bool):
        return "=" + str(value).lower()
    return f"={value}"


def by_group(calls: Sequence[Call]) -> go.Figure:
    """How many calls each model × swept-parameter combination made."""
    import plotly.graph_objects as go

    swept, _ = parameters(calls)
    keys = ["model", *swept]
    counts = Counter(tuple(c.values.get(k) for k in keys) for c in calls)
    top = counts.most_common(MAX_GROUPS)
    rows = [list(group) for group, _ in top]
    labels = [" · ".join(_label(v) if k == "model" else f"{k}={_label(v)}"
                         for k, v in zip(keys, row, strict=True)) for row in rows]  # fmt: skip
    fig = _figure(
        "Calls by model and parameters" if swept else "Calls by model",
        "calls",
        "",
        height=max(260, 90 + 26 * len(rows)),
        margin={"l": min(560, 20 + 7 * max((len(s) for s in labels), default=0))},
    )
    fig.add_trace(
        go.Bar(
            x=[n for _, n in top][::-1],
            y=labels[::-1],
            orientation="h",
            marker_color=COLORS[0],
            customdata=[[_exact(v) for v in row] for row in rows][::-1],
            meta={"link": keys},
            hovertemplate="%{y}<br>%{x} calls<extra>click: show these calls</extra>",
            name="calls",
        )
    )
    fig.update_yaxes(automargin=True, type="category")
    if len(counts) > MAX_GROUPS:
        fig.add_annotation(text=f"the {MAX_GROUPS} largest of {len(counts)} groups",
                           xref="paper", yref="paper", x=1, y=1.08, showarrow=False)  # fmt: skip
    return fig


def _models(calls: Sequence[Call]) -> list[str | None]:
    return sorted({c.values.get("model") for c in calls}, key=_label)


def tokens_by_class(calls: Sequence[Call]) -> go.Figure:
    """Prompt, reasoning and answer tokens summed per model (cached prompt tokens apart)."""
    import plotly.graph_objects as go

    models = _models(calls)
    classes = [("prompt_tokens", "prompt"), ("reasoning_tokens", "reasoning"),
               ("answer_tokens", "answer")]  # fmt: skip
    if any(c.values.get("cached_tokens") for c in calls):
        classes.append(("cached_tokens", "cached (of prompt)"))
    fig = _figure("Tokens by class", "model", "tokens", barmode="group")
    for i, (name, label) in enumerate(classes):
        sums = [sum(c.values.get(name) or 0 for c in calls if c.values.get("model") == m)
                for m in models]  # fmt: skip
        fig.add_trace(
            go.Bar(
                x=[_label(m) for m in models],
                y=sums,
                name=label,
                marker_color=COLORS[i % len(COLORS)],
                customdata=[[_exact(m)] for m in models],
                meta={"link": ["model"]},
                hovertemplate=f"%{{x}}<br>{label}: %{{y:,}} tokens<extra></extra>",
            )
        )
    fig.update_xaxes(type="category")
    return fig


def _bins(values: Sequence[float], integer: bool) -> list[tuple[float, float, str]]:
    """Equal bins over the values (at most `BINS`): (low, high, the browser filter selecting
    it). Integer bins include both ends; the others include their low end (the last both)."""
    low, high = min(values), max(values)
    if integer:
        width = max(1, math.ceil((high - low + 1) / BINS))
        starts = range(int(low), int(high) + 1, width)
        return [(a, a + width - 1, f"{a}..{a + width - 1}") for a in starts]
    if high == low:
        return [(low, high, f"={low:g}")]
    width = (high - low) / BINS
    out = []
    for i in range(BINS):
        a, b = low + i * width, (high if i == BINS - 1 else low + (i + 1) * width)
        out.append((a, b, f">={a:.6g} " + (f"<={b:.6g}" if i == BINS - 1 else f"<{b:.6g}")))
    return out


def _bin_of(v: float, bins: Sequence[tuple[float, float, str]], integer: bool) -> int:
    if len(bins) == 1:
        return 0
    low, first_high = bins[0][0], bins[0][1]
    width = (first_high - low + 1) if integer else (first_high - low)
    return min(len(bins) - 1, int((v - low) // width))


def distribution(calls: Sequence[Call], column: str, title: str, axis: str) -> go.Figure | None:
    """How `column` is distributed over the calls, one bar series per model (None: no call
    has a value)."""
    import plotly.graph_objects as go

    present = [c.values.get(column) for c in calls if c.values.get(column) is not None]
    if not present:
        return None
    integer = all(isinstance(v, int) for v in present)
    bins = _bins(present, integer)
    fig = _figure(title, axis, "calls", barmode="stack", bargap=0.05)
    for i, model in enumerate(_models(calls)):
        counts = [0] * len(bins)
        for c in calls:
            v = c.values.get(column)
            if v is not None and c.values.get("model") == model:
                counts[_bin_of(v, bins, integer)] += 1
        fig.add_trace(
            go.Bar(
                x=[(a + b) / 2 for a, b, _ in bins],
                y=counts,
                width=[(b - a + 1) if integer else max(b - a, 1e-12) for a, b, _ in bins],
                name=_label(model),
                marker_color=COLORS[i % len(COLORS)],
                customdata=[[_exact(model), f] for _, _, f in bins],
                meta={"link": ["model", column]},
                hovertemplate=f"%{{fullData.name}}<br>{axis}: %{{customdata[1]}}<br>%{{y}} calls"
                "<extra>click: show these calls</extra>",
            )
        )
    return fig


def finish_reasons(calls: Sequence[Call]) -> go.Figure:
    """How many calls ended for each reason (stop, length, ...), per model."""
    import plotly.graph_objects as go

    reasons = sorted({_label(c.values.get("finish_reason")) for c in calls})
    fig = _figure("Finish reasons", "finish reason", "calls", barmode="stack")
    for i, model in enumerate(_models(calls)):
        counts = [sum(1 for c in calls if c.values.get("model") == model
                      and _label(c.values.get("finish_reason")) == r) for r in reasons]  # fmt: skip
        fig.add_trace(
            go.Bar(
                x=reasons,
                y=counts,
                name=_label(model),
                marker_color=COLORS[i % len(COLORS)],
                customdata=[[_exact(model), "=" + r] for r in reasons],
                meta={"link": ["model", "finish_reason"]},
                hovertemplate="%{fullData.name}<br>%{x}: %{y} calls<extra></extra>",
            )
        )
    fig.update_xaxes(type="category")
    return fig


def summary_figures(calls: Sequence[Call]) -> tuple[list[dict[str, Any]], list[str]]:
    """The summary figures as plotly JSON, and notes on figures left out (and why)."""
    if not calls:
        return [], ["no calls: no summary figures"]
    figs: list[Any] = [by_group(calls), tokens_by_class(calls)]
    notes = []
    reasoning = distribution(calls, "reasoning_tokens", "Reasoning length per call",
                             "reasoning tokens (tokens)")  # fmt: skip
    if reasoning is not None:
        figs.append(reasoning)
    costs = [c.values.get("cost_usd") for c in calls if c.values.get("cost_usd") is not None]
    if costs and any(costs):
        cost = distribution(calls, "cost_usd", "Cost per call", "cost per call (USD)")
        if cost is not None:
            cost.update_xaxes(tickformat="$.3~g")
            figs.append(cost)
    elif costs:
        notes.append("every call cost $0 (a local model): no cost distribution to draw")
    else:
        notes.append("no call has a known cost: no cost distribution to draw")
    figs.append(finish_reasons(calls))
    return [json.loads(f.to_json()) for f in figs], notes


__all__ = ["by_group", "distribution", "finish_reasons", "summary_figures", "tokens_by_class"]
