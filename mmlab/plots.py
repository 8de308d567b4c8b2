"""plotly figures from mmlab DataFrames (sweep ``res.df``, ``lab.calls()``, price tables).

Every function returns a ``go.Figure`` (never shows it), uses the lean ``mmlab`` template,
puts units in axis labels (tokens, USD, seconds) and shows the row's prompt id and parameters
on hover. `setup_notebook()` picks the ``plotly_mimetype`` renderer (figure JSON only: no
embedded plotly.js, nothing fetched from a CDN) and the template.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .analysis import accuracy_vs_reasoning as analysis_accuracy_vs_reasoning
from .analysis import truncation_rate
from .params import COLUMNS
from .pricing import EMBEDDED, Price, PriceTable, reprice

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

COLORS = ["#3366cc", "#dc7633", "#2e8b57", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d", "#d4ac0d"]
#: Parameter columns a result frame can have (declared in `mmlab.params`).
PARAM_COLUMNS = COLUMNS
_registered = False


def template() -> go.layout.Template:
    """The ``mmlab`` plotly template: small (keeps notebooks light), readable, colour-safe."""
    import plotly.graph_objects as go

    axis = {
        "showgrid": True,
        "gridcolor": "#e5e5e5",
        "zeroline": False,
        "linecolor": "#444",
        "ticks": "outside",
        "automargin": True,
    }
    return go.layout.Template(
        layout={
            "font": {"family": "Inter, Helvetica, Arial, sans-serif", "size": 13},
            "colorway": COLORS,
            "plot_bgcolor": "white",
            "paper_bgcolor": "white",
            "xaxis": axis,
            "yaxis": axis,
            "hovermode": "closest",
            "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
            "legend": {"bgcolor": "rgba(255,255,255,0.8)"},
        }
    )


def _register() -> None:
    global _registered
    if not _registered:
        import plotly.io as pio

        pio.templates["mmlab"] = template()
        _registered = True


def setup_notebook() -> None:
    """Use the ``plotly_mimetype`` renderer and the ``mmlab`` template for this kernel."""
    import plotly.io as pio

    _register()
    pio.renderers.default = "plotly_mimetype"
    pio.templates.default = "mmlab"


def _figure(title: str, x: str, y: str) -> go.Figure:
    import plotly.graph_objects as go

    _register()
    fig = go.Figure()
    fig.update_layout(template="mmlab", title=title, xaxis_title=x, yaxis_title=y)
    return fig


def varied_params(df: pd.DataFrame) -> list[str]:
    """The parameter columns of `df` that take more than one value (what to colour by)."""
    return [c for c in PARAM_COLUMNS if c in df.columns and df[c].nunique(dropna=True) > 1]


def _hover(df: pd.DataFrame, extra: Sequence[str] = ()) -> tuple[Any, str]:
    """customdata and a hovertemplate naming the prompt id, sample and parameters."""
    cols = [c for c in ("prompt_id", "sample", *varied_params(df), *extra) if c in df.columns]
    lines = [f"{c}: %{{customdata[{i}]}}" for i, c in enumerate(cols)]
    return df[cols].astype(str).to_numpy(), "<br>".join(lines) + "<extra></extra>"


def _error_bars(mid: Any, low: Any, high: Any) -> dict[str, Any]:
    """Asymmetric error bars from an interval around `mid` (never negative lengths: a clipped
    interval can end exactly at its estimate)."""
    return {"type": "data", "symmetric": False, "array": (high - mid).clip(lower=0),
            "arrayminus": (mid - low).clip(lower=0)}  # fmt: skip


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["error"].isna()] if "error" in df.columns else df


def reasoning_distribution(
    df: pd.DataFrame, by: str = "temperature", metric: str = "reasoning_tokens", kind: str = "box"
) -> go.Figure:
    """Distribution of reasoning (or answer/completion) tokens for each value of `by`."""
    import plotly.graph_objects as go

    data = _ok(df)
    label = metric.replace("_", " ").replace("tokens", "(tokens)")
    fig = _figure(f"{metric.replace('_', ' ')} by {by}", by, label)
    for i, (value, part) in enumerate(data.groupby(by, sort=True, dropna=False)):
        custom, hover = _hover(part, (metric,))
        common = {
            "y": part[metric].astype(float),
            "name": f"{by}={value}",
            "customdata": custom,
            "hovertemplate": hover,
            "marker_color": COLORS[i % len(COLORS)],
        }
        if kind == "violin":
            fig.add_trace(go.Violin(points="all", box_visible=True, **common))
        elif kind == "hist":
            fig.add_trace(
                go.Histogram(
                    x=part[metric].astype(float),
                    name=f"{by}={value}",
                    opacity=0.6,
                    marker_color=COLORS[i % len(COLORS)],
                )
            )
        else:
            fig.add_trace(go.Box(boxpoints="all", jitter=0.3, pointpos=0, **common))
    if kind == "hist":
        fig.update_layout(barmode="overlay", xaxis_title=label, yaxis_title="cells")
    return fig


def truncation_vs_max_tokens(df: pd.DataFrame, color: str | None = None) -> go.Figure:
    """Share of cells truncated (stopped by length, empty answer) vs max_tokens, Wilson CIs."""
    import plotly.graph_objects as go

    fig = _figure(
        "Truncation rate vs. max_tokens", "max_tokens (tokens)", "truncated (share of cells)"
    )
    groups = [(None, df)] if color is None else list(df.groupby(color, sort=True))
    for i, (value, part) in enumerate(groups):
        rates = truncation_rate(part, "max_tokens")
        fig.add_trace(
            go.Scatter(
                x=rates["max_tokens"],
                y=rates["rate"],
                mode="lines+markers",
                name="all cells" if value is None else f"{color}={value}",
                marker_color=COLORS[i % len(COLORS)],
                error_y=_error_bars(rates["rate"], rates["ci_low"], rates["ci_high"]),
                customdata=rates[["n", "truncated"]].to_numpy(),
                hovertemplate="max_tokens %{x}<br>truncated %{customdata[1]} of %{customdata[0]}"
                "<br>rate %{y:.0%}<extra></extra>",
            )
        )
    # Label the budgets swept, not log-axis minor ticks ("3 4 5 ... 100 2").
    swept = sorted({int(v) for v in _ok(df)["max_tokens"].dropna()})
    fig.update_xaxes(type="log", tickvals=swept, ticktext=[f"{v:,}" for v in swept])
    fig.update_yaxes(range=[-0.03, 1.03], tickformat=".0%")
    return fig


def cost_per_correct(
    per_correct: pd.DataFrame, by: str = "max_tokens", name: str = ""
) -> go.Figure:
    """USD per correct answer against `by`, from `mmlab.analysis.cost_per_correct`'s frame
    (groups without a correct answer have no finite cost and are left out)."""
    import plotly.graph_objects as go

    fig = _figure("Cost per correct answer", f"{by}", "USD per correct answer")
    finite = per_correct[per_correct["correct"] > 0]
    fig.add_trace(
        go.Scatter(
            x=finite[by],
            y=finite["usd_per_correct"],
            mode="lines+markers",
            name=name or "USD per correct",
            customdata=finite[["correct", "n"]].to_numpy(),
            hovertemplate=f"{by} %{{x}}<br>$%{{y:.6f}} per correct answer"
            "<br>%{customdata[0]} correct of %{customdata[1]}<extra></extra>",
        )
    )
    if by == "max_tokens":
        swept = sorted(int(v) for v in finite[by])
        fig.update_xaxes(
            type="log", tickvals=swept, ticktext=[f"{v:,}" for v in swept], title=f"{by} (tokens)"
        )
    return fig


def latency_vs_output(df: pd.DataFrame, color: str | None = None) -> go.Figure:
    """Latency (seconds) against completion tokens, one point per cell."""
    import plotly.graph_objects as go

    data = _ok(df)
    color = color or next(iter(varied_params(data)), None)
    fig = _figure("Latency vs. output length", "completion tokens (tokens)", "latency (s)")
    groups = [(None, data)] if color is None else list(data.groupby(color, sort=True))
    for i, (value, part) in enumerate(groups):
        custom, hover = _hover(part, ("completion_tokens", "latency_s"))
        fig.add_trace(
            go.Scatter(
                x=part["completion_tokens"].astype(float),
                y=part["latency_s"].astype(float),
                mode="markers",
                name="cells" if value is None else f"{color}={value}",
                marker={"color": COLORS[i % len(COLORS)], "size": 7, "opacity": 0.75},
                customdata=custom,
                hovertemplate=hover,
            )
        )
    return fig


def accuracy_vs_reasoning(df: pd.DataFrame, bins: int = 6) -> go.Figure:
    """Accuracy (Wilson CI) in bins of reasoning tokens used: `mmlab.analysis.
    accuracy_vs_reasoning` drawn, one point per bin at the bin's mean reasoning length."""
    import plotly.graph_objects as go

    fig = _figure(
        "Accuracy vs. reasoning length",
        "reasoning tokens used (tokens, binned)",
        "accuracy (share correct)",
    )
    data = _ok(df).dropna(subset=["score"])
    if data.empty:
        return fig
    table = analysis_accuracy_vs_reasoning(data, bins=bins)
    labels = [
        f"{lo:.0f}-{hi:.0f} tokens · n={n}"
        for lo, hi, n in zip(
            table["reasoning_tokens_low"], table["reasoning_tokens_high"], table["n"], strict=True
        )
    ]
    fig.add_trace(
        go.Scatter(
            x=table["mean_reasoning_tokens"],
            y=table["accuracy"],
            mode="lines+markers",
            name="accuracy",
            error_y=_error_bars(table["accuracy"], table["ci_low"], table["ci_high"]),
            text=labels,
            hovertemplate="%{text}<br>mean reasoning %{x:.0f} tokens<br>"
            "accuracy %{y:.0%}<extra></extra>",
        )
    )
    fig.update_yaxes(range=[-0.03, 1.03], tickformat=".0%")
    return fig


def heatmap(
    df: pd.DataFrame, x: str, y: str, metric: str = "reasoning_tokens", agg: str = "mean"
) -> go.Figure:
    """`metric` aggregated over two parameters (e.g. temperature × max_tokens)."""
    import plotly.graph_objects as go

    data = _ok(df).copy()
    data[metric] = data[metric].astype(float)
    table = data.pivot_table(index=y, columns=x, values=metric, aggfunc=agg).sort_index()
    counts = data.pivot_table(index=y, columns=x, values=metric, aggfunc="count").sort_index()
    fig = _figure(f"{agg} {metric.replace('_', ' ')} by {x} × {y}", x, y)
    fig.add_trace(
        go.Heatmap(
            z=table.to_numpy(),
            x=[str(c) for c in table.columns],
            y=[str(i) for i in table.index],
            colorscale="Blues",
            colorbar={"title": metric.replace("_", " ")},
            text=counts.to_numpy(),
            texttemplate="%{z:.3g}",
            hovertemplate=f"{x} %{{x}}<br>{y} %{{y}}<br>{agg} {metric} %{{z:.4g}}"
            "<br>cells %{text}<extra></extra>",
        )
    )
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    return fig


def _prices(prices: Sequence[str] | Mapping[str, Price] | PriceTable | None) -> dict[str, Price]:
    if prices is None:
        return dict(EMBEDDED.prices)
    if isinstance(prices, PriceTable):
        return dict(prices.prices)
    if isinstance(prices, Mapping):
        return dict(prices)
    return {m: EMBEDDED[m] for m in prices}


def cost_vs_tokens(
    prices: Sequence[str] | Mapping[str, Price] | PriceTable | None = None,
    *,
    vary: str = "prompt",
    fixed_tokens: int = 1000,
    max_tokens: int = 1_000_000,
    points: int = 60,
) -> go.Figure:
    """USD per call as prompt (or output) tokens grow, for several price tables.

    ``vary="prompt"`` sweeps prompt length up to `max_tokens` (M1's 1M context) with
    `fixed_tokens` of output; ``vary="output"`` sweeps output length with a fixed prompt.
    Long-context tiers (``pricing.overrides``) show up as kinks.
    """
    import plotly.graph_objects as go

    table = _prices(prices)
    what = "prompt tokens" if vary == "prompt" else "output tokens (reasoning + answer)"
    fig = _figure(f"Cost per call vs. {what}", f"{what} (tokens)", "cost per call (USD)")
    xs = sorted(
        {
            int(round(10 ** (math.log10(100) + i * (math.log10(max_tokens) - 2) / (points - 1))))
            for i in range(points)
        }
    )
    for i, (model, price) in enumerate(table.items()):
        ys = [
            price.cost(x, fixed_tokens) if vary == "prompt" else price.cost(fixed_tokens, x)
            for x in xs
        ]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                name=model,
                line={
                    "color": COLORS[i % len(COLORS)],
                    "width": 3 if model == "minimax/minimax-m1" else 1.5,
                },
                hovertemplate=f"{model}<br>%{{x:,}} tokens<br>$%{{y:.4f}}<extra></extra>",
            )
        )
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return fig


def cost_per_day(
    calls_per_day: Sequence[float],
    prompt_tokens: int,
    completion_tokens: int,
    prices: Sequence[str] | Mapping[str, Price] | PriceTable | None = None,
    *,
    monthly_budget_usd: float | None = None,
    period: str = "month",
) -> go.Figure:
    """Daily or monthly (30-day) cost against calls per day, with a budget line."""
    import plotly.graph_objects as go

    days = 30 if period == "month" else 1
    fig = _figure(
        f"{'Monthly' if days == 30 else 'Daily'} cost vs. calls per day",
        "calls per day",
        f"cost per {period} (USD)",
    )
    for i, (model, price) in enumerate(_prices(prices).items()):
        per_call = price.cost(prompt_tokens, completion_tokens)
        fig.add_trace(
            go.Scatter(
                x=list(calls_per_day),
                y=[per_call * n * days for n in calls_per_day],
                mode="lines",
                name=model,
                line={
                    "color": COLORS[i % len(COLORS)],
                    "width": 3 if model == "minimax/minimax-m1" else 1.5,
                },
                hovertemplate=f"{model}<br>%{{x:,}} calls/day<br>$%{{y:,.2f}} per {period}"
                "<extra></extra>",
            )
        )
    if monthly_budget_usd is not None:
        budget = monthly_budget_usd if days == 30 else monthly_budget_usd / 30
        fig.add_hline(
            y=budget,
            line_dash="dash",
            line_color="#c0392b",
            annotation_text=f"budget ${budget:,.2f}/{period}",
        )
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return fig


def scaling_curve(curve: Any) -> go.Figure:
    """A `mmlab.scaling.ScalingCurve`: accuracy (left axis) and USD per call (right axis)
    against mean reasoning tokens *used*, one point per budget with 95% intervals; truncation
    rate per budget in the panel beside."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    _register()
    df = curve.df
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.68, 0.32],
        # wide enough that the cost axis title (right of the left panel) and the truncation
        # axis title (left of the right panel) do not print over each other
        horizontal_spacing=0.3,
        specs=[[{"secondary_y": True}, {}]],
        subplot_titles=("Accuracy and cost vs. reasoning used", "Truncation by budget"),
    )
    labels = [f"{curve.knob}={b}" for b in df["budget"]]
    x = df["reasoning_tokens"]
    usd, usd_name = df["usd_per_call"], "USD per call"
    if not (usd > 0).any() and curve.result is not None:
        # a free endpoint (the embedded model): what the same tokens would cost on M1
        priced = curve.result.df.assign(_usd=reprice(curve.result.df, "minimax/minimax-m1"))
        usd = priced.groupby(curve.knob)["_usd"].mean().reindex(df["budget"]).to_numpy()
        usd_name = "USD per call at M1 list prices"
    if "accuracy" in df:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=df["accuracy"],
                mode="lines+markers+text",
                name="accuracy (pass@1)",
                text=[str(b) for b in df["budget"]],  # the path runs in budget order
                textposition="top right",
                customdata=labels,
                error_y=_error_bars(df["accuracy"], df["ci_low"], df["ci_high"]),
                hovertemplate="%{customdata}<br>%{x:.0f} reasoning tokens used<br>"
                "accuracy %{y:.1%}<extra></extra>",
            ),
            row=1,
            col=1,
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=usd,
            mode="lines+markers",
            name=usd_name,
            text=labels,
            line={"dash": "dot", "color": COLORS[1]},
            hovertemplate="%{text}<br>$%{y:.6f} per call<extra></extra>",
        ),
        row=1,
        col=1,
        secondary_y=True,
    )
    fig.add_trace(
        go.Bar(
            x=[str(b) for b in df["budget"]],
            y=df["truncation_rate"],
            name="truncated",
            marker_color=COLORS[4],
            error_y=_error_bars(df["truncation_rate"], df["truncation_low"], df["truncation_high"]),
            hovertemplate=f"{curve.knob} %{{x}}<br>truncated %{{y:.0%}}<extra></extra>",
        ),
        row=1,
        col=2,
    )
    fig.update_layout(template="mmlab", title=f"Test-time scaling over {curve.knob}")
    fig.update_xaxes(title_text="reasoning tokens used (mean, tokens)", row=1, col=1)
    fig.update_yaxes(title_text="accuracy (share correct)", tickformat=".0%", row=1, col=1,
                     secondary_y=False)  # fmt: skip
    fig.update_yaxes(title_text="cost per call (USD)", tickformat="$.2g", row=1, col=1,
                     secondary_y=True, rangemode="tozero")  # fmt: skip
    fig.update_xaxes(title_text=f"{curve.knob}", type="category", row=1, col=2)
    fig.update_yaxes(title_text="truncated (share of cells)", tickformat=".0%", range=[0, 1.05],
                     row=1, col=2)  # fmt: skip
    return fig


def at_k(table: pd.DataFrame) -> go.Figure:
    """pass@k and maj@k against k (from `ScalingCurve.at_k`), one line per (metric, budget)."""
    import plotly.graph_objects as go

    fig = _figure("pass@k and maj@k against k", "k (samples per problem)", "share of problems")
    # one colour per budget, solid for pass@k and dotted for maj@k: a budget's two lines
    # read as a pair, and the legend groups them
    budgets = list(dict.fromkeys(sorted(table["budget"].unique(), key=str)))
    colour = {b: COLORS[i % len(COLORS)] for i, b in enumerate(budgets)}
    for (budget, metric), part in table.groupby(["budget", "metric"], sort=True):
        fig.add_trace(
            go.Scatter(
                x=part["k"],
                y=part["estimate"],
                mode="lines+markers",
                name=f"{metric}, budget {budget}",
                legendgroup=str(budget),
                line={"dash": "solid" if metric == "pass@k" else "dot",
                      "color": colour[budget]},  # fmt: skip
                error_y=_error_bars(part["estimate"], part["ci_low"], part["ci_high"]),
            )
        )
    fig.update_xaxes(type="log", tickvals=sorted(table["k"].unique()))
    fig.update_yaxes(range=[-0.03, 1.03], tickformat=".0%")
    return fig


def adaptive_intervals(outcome: Any) -> go.Figure:
    """How an adaptive run's anytime-valid intervals narrowed round by round: one band (the
    confidence sequence) and line (the running mean) per group, from a
    `mmlab.sweep.results.AdaptiveOutcome` (``res.adaptive``); the round it stopped is marked."""
    import plotly.graph_objects as go

    hist = outcome.history
    fixed = {"round", "rule", "n_rounds", "n_scores", "mean", "cs_low", "cs_high", "live"}
    keys = [c for c in hist.columns if c not in fixed and hist[c].notna().any()]
    method = outcome.intervals["cs_method"].iloc[0] if len(outcome.intervals) else ""
    fig = _figure(
        "Anytime-valid intervals, round by round",
        "round (repeat of every live cell)",
        "score (mean, with its confidence sequence)",
    )
    groups = hist.groupby(keys, sort=False, dropna=False) if keys else [((), hist)]
    for i, (key, part) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        name = ", ".join(f"{k}={v}" for k, v in zip(keys, key, strict=True)) or "all cells"
        color = COLORS[i % len(COLORS)]
        part = part.sort_values("round")
        fig.add_trace(
            go.Scatter(
                x=[*part["round"], *part["round"][::-1]],
                y=[*part["cs_high"], *part["cs_low"][::-1]],
                fill="toself",
                fillcolor=color,
                opacity=0.18,
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
                legendgroup=name,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=part["round"],
                y=part["mean"],
                mode="lines+markers",
                name=name,
                legendgroup=name,
                line={"color": color},
                customdata=part[["cs_low", "cs_high", "n_scores"]].to_numpy(),
                hovertemplate=f"{name}<br>round %{{x}}: mean %{{y:.3f}}<br>"
                "interval %{customdata[0]:.3f} – %{customdata[1]:.3f}<br>"
                "%{customdata[2]} scores<extra></extra>",
            )
        )
    if outcome.reason:
        fig.add_vline(x=outcome.rounds, line={"dash": "dot", "color": "#444"})
        # inside the plot, left of the line: above it the label collides with the subtitle
        fig.add_annotation(x=outcome.rounds, y=0.98, yref="paper", showarrow=False,
                           text=f"stopped after round {outcome.rounds}", xanchor="right",
                           yanchor="top", xshift=-4)  # fmt: skip
    fig.update_yaxes(range=[-0.03, 1.03])
    fig.update_xaxes(dtick=1)
    if method:
        fig.update_layout(title={"text": "Anytime-valid intervals, round by round<br>"
                                 f"<sup>{method}</sup>"})  # fmt: skip
    return fig


def usage(summary: pd.DataFrame, color: str = "model") -> go.Figure:
    """USD spent per day from ``lab.summary(["day", color])``: one stacked bar per day, one
    colour per `color` value (model, provider, tag or endpoint); hover shows calls and
    tokens."""
    import plotly.graph_objects as go

    fig = _figure(f"Spend per day by {color}", "day (UTC)", "spent (USD)")
    if not len(summary):
        return fig
    for i, (value, part) in enumerate(summary.groupby(color, sort=True)):
        name = str(value) or "(none)"
        fig.add_trace(
            go.Bar(
                x=part["day"],
                y=part["spent_usd"],
                name=name,
                marker_color=COLORS[i % len(COLORS)],
                customdata=part[["calls", "hits", "completion_tokens"]].to_numpy(),
                hovertemplate=f"{name}<br>%{{x}}: $%{{y:.4f}}<br>%{{customdata[0]}} calls "
                "(%{customdata[1]} cached), %{customdata[2]:,} output tokens<extra></extra>",
            )
        )
    fig.update_layout(barmode="stack")
    fig.update_xaxes(type="category")
    if not summary["spent_usd"].any():
        # an empty-looking chart reads as "broken"; say why it is empty (typically a replay)
        hits = int(summary["hits"].sum())
        fig.add_annotation(x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                           text=f"nothing spent: {hits:,} of {int(summary['calls'].sum()):,} "
                           "calls were cache hits")  # fmt: skip
        fig.update_yaxes(range=[0, 1])
    return fig


def providers(table: pd.DataFrame) -> go.Figure:
    """`mmlab.analysis.compare_providers` as bars: latency, time to first token, tokens per
    second and USD per call, one bar per (model, provider) with its 95% interval."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    _register()
    panels = {"latency_s": ("latency", "seconds"), "ttft_s": ("time to first token", "seconds"),
              "tokens_per_s": ("generation speed", "tokens / s"),
              "cost_usd": ("cost per 1,000 calls", "USD per 1,000 calls")}  # fmt: skip
    # per 1,000 calls: a per-call cost is a few hundred micro-dollars, which plotly's SI ticks
    # print as "150µ" — unreadable as money
    scale = {"cost_usd": 1000.0}
    # room between the rows for the top row's slanted provider labels, its axis title and the
    # bottom row's panel titles, which otherwise overprint each other
    fig = make_subplots(rows=2, cols=2, subplot_titles=[t for t, _ in panels.values()],
                        vertical_spacing=0.3, horizontal_spacing=0.12)  # fmt: skip
    keys = [c for c in ("model", "provider") if c in table.columns]

    def label(row: dict[str, Any]) -> str:
        # "minimax/minimax-m1 · Novita" → "minimax-m1 · Novita": the vendor prefix is noise
        return " · ".join(str(row[k]).rsplit("/", 1)[-1] for k in keys)

    names = sorted({label(r) for r in table.to_dict("records")})
    colour = {n: COLORS[i % len(COLORS)] for i, n in enumerate(names)}
    for i, (metric, (_, unit)) in enumerate(panels.items()):
        row, col = divmod(i, 2)
        part = table[table["metric"] == metric]
        k = scale.get(metric, 1.0)
        xs = [label(r) for r in part.to_dict("records")]
        fig.add_trace(
            go.Bar(
                x=xs,
                y=part["mean"] * k,
                marker_color=[colour[x] for x in xs],
                error_y=_error_bars(part["mean"] * k, part["ci_low"] * k, part["ci_high"] * k),
                showlegend=False,
                hovertemplate="%{x}<br>%{y:.4g} " + unit + "<extra></extra>",
            ),
            row=row + 1,
            col=col + 1,
        )
        fig.update_yaxes(title_text=unit, row=row + 1, col=col + 1)
        fig.update_xaxes(title_text=" · ".join(keys), row=row + 1, col=col + 1)
    fig.update_layout(template="mmlab", title="Providers compared on the same cells",
                      height=860)  # fmt: skip
    return fig
