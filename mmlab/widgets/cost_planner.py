"""CostPlanner: what would a study or a service cost per day and per month — and how many
problems and samples does a study need to show an effect, at what price?"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from .. import design, plots
from ..errors import RequestError
from ..pricing import EMBEDDED, PriceTable
from ._common import CSS, error_html, esc, show_figure, table_html, widen_labels

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from ..lab import Lab

DEFAULT_MODELS = ("minimax/minimax-m1", "deepseek/deepseek-r1", "openai/o4-mini")


class CostPlanner:
    """Calls per day × prompt tokens × completion tokens → cost curves for several price tables.

    Given a Lab, the token sizes start at the medians of its logged live calls and the price
    table is the lab's (live ``/models`` on OpenRouter); given a PriceTable (or nothing), the
    embedded table. Headless: set the inputs' ``.value``; read ``table`` and ``figure``.

    "How many samples do I need?": `baseline` accuracy, the `effect` to detect and `samples`
    per problem (`paired`: the same problems under both arms) give the problems needed
    (`mmlab.design.sample_size`, power 0.8 at alpha 0.05, its assumptions shown) — read
    ``design`` — and what the study's two arms cost: per price table at the token sizes above
    (``design_table``) and, given a Lab, the forecast a sweep of it would print
    (``design_plan``, `mmlab.design.plan`).
    """

    def __init__(
        self,
        source: Lab | PriceTable | None = None,
        *,
        calls_per_day: int = 1000,
        prompt_tokens: int = 800,
        completion_tokens: int = 8000,
        monthly_budget_usd: float = 500.0,
        models: tuple[str, ...] = DEFAULT_MODELS,
    ) -> None:
        self.seeded_from = 0
        self.lab: Lab | None = None
        if isinstance(source, PriceTable):
            table = source
        elif source is None:
            table = EMBEDDED
        else:
            table = source.prices
            self.lab = source
            prompt_tokens, completion_tokens = self._seed(source, prompt_tokens, completion_tokens)
        self.prices = PriceTable(table.source, {**EMBEDDED.prices, **table.prices})
        known = sorted(self.prices.prices)
        self.calls_per_day = W.BoundedIntText(
            value=calls_per_day, min=1, max=100_000_000, description="calls/day"
        )
        self.prompt_tokens = W.BoundedIntText(
            value=prompt_tokens, min=1, max=1_000_000, description="prompt tok"
        )
        self.completion_tokens = W.BoundedIntText(
            value=completion_tokens, min=1, max=1_000_000, description="output tok"
        )
        self.budget = W.BoundedFloatText(
            value=monthly_budget_usd, min=0, max=1e9, description="budget $/mo"
        )
        self.models = W.SelectMultiple(
            options=known,
            value=tuple(m for m in models if m in known),
            description="price tables",
            rows=min(6, len(known)),
        )
        self.period = W.ToggleButtons(options=["month", "day"], value="month")
        self.out = W.Output()
        self.table_html = W.HTML()
        # how many samples do I need?
        self.baseline = W.BoundedFloatText(value=0.7, min=0.01, max=0.99, step=0.01,
                                           description="baseline acc")  # fmt: skip
        self.effect = W.BoundedFloatText(value=0.05, min=-0.98, max=0.98, step=0.01,
                                         description="effect (+)")  # fmt: skip
        self.samples = W.BoundedIntText(value=4, min=1, max=1000, description="samples/problem")
        self.paired = W.Checkbox(value=True, description="paired: same problems in both arms")
        self.design_html = W.HTML()
        widen_labels(self.baseline, self.effect, self.samples)
        widen_labels(
            self.calls_per_day, self.prompt_tokens, self.completion_tokens, self.budget, self.models
        )
        for w in (
            self.calls_per_day,
            self.prompt_tokens,
            self.completion_tokens,
            self.budget,
            self.models,
            self.period,
        ):
            w.observe(lambda _change: self.refresh(), names="value")
        for w in (self.baseline, self.effect, self.samples, self.paired):
            w.observe(lambda _change: self.refresh_design(), names="value")
        note = (
            f"token sizes: medians of {self.seeded_from} logged call(s)"
            if self.seeded_from
            else "token sizes: defaults (no logged calls yet)"
        )
        self.widget = W.VBox(
            [
                W.HTML(
                    CSS + f'<b class="mmlab-box">CostPlanner</b> <span class="mmlab-box">· '
                    f"prices: {esc(self.prices.source)} · {esc(note)}</span>"
                ),
                W.HBox(
                    [
                        W.VBox(
                            [
                                self.calls_per_day,
                                self.prompt_tokens,
                                self.completion_tokens,
                                self.budget,
                            ]
                        ),
                        W.VBox([self.models, self.period]),
                    ]
                ),
                self.out,
                self.table_html,
                W.HTML('<b class="mmlab-box">How many samples do I need?</b>'),
                W.HBox(
                    [W.VBox([self.baseline, self.effect]), W.VBox([self.samples, self.paired])]
                ),
                self.design_html,
            ]
        )
        self.refresh()

    def _seed(self, lab: Lab, prompt: int, completion: int) -> tuple[int, int]:
        df = lab.calls(all_tags=True)
        if len(df):
            live = df[
                (df["cache_status"] != "hit") & df["error"].isna() & (df["model"] == lab.model)
            ]
            if len(live):
                self.seeded_from = len(live)
                return (
                    max(1, int(live["prompt_tokens"].median())),
                    max(1, int(live["completion_tokens"].median())),
                )
        return prompt, completion

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    @property
    def table(self) -> pd.DataFrame:
        """Cost per call, day and month at the chosen volume, per price table."""
        import pandas as pd

        rows = []
        for model in self.models.value:
            per_call = self.prices[model].cost(
                self.prompt_tokens.value, self.completion_tokens.value
            )
            month = per_call * self.calls_per_day.value * 30
            rows.append(
                {
                    "model": model,
                    "usd_per_call": per_call,
                    "usd_per_day": per_call * self.calls_per_day.value,
                    "usd_per_month": month,
                    "within_budget": month <= self.budget.value,
                    "max_calls_per_day_in_budget": math.floor(self.budget.value / 30 / per_call)
                    if per_call
                    else None,
                }
            )
        return pd.DataFrame(rows)

    @property
    def figure(self) -> go.Figure:
        """Cost curves against calls per day, with the budget line."""
        volume = self.calls_per_day.value
        xs = sorted(
            {
                max(1, int(volume * f))
                for f in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)
            }
        )
        prices = {m: self.prices[m] for m in self.models.value}
        return plots.cost_per_day(
            xs,
            self.prompt_tokens.value,
            self.completion_tokens.value,
            prices,
            monthly_budget_usd=self.budget.value,
            period=self.period.value,
        )

    @property
    def design(self) -> design.Design:
        """The problems a study needs to detect `effect` over `baseline` with `samples` per
        problem (`mmlab.design.sample_size`; RequestError for values out of range)."""
        return design.sample_size(self.baseline.value, self.effect.value, self.samples.value,
                                  paired=self.paired.value)  # fmt: skip

    @property
    def design_table(self) -> pd.DataFrame:
        """What `design`'s two arms cost per price table: calls x the cost of a call at the
        token sizes above."""
        import pandas as pd

        need = self.design
        per_call = {r["model"]: r["usd_per_call"] for r in self.table.to_dict("records")}
        return pd.DataFrame(
            [{"model": m, "problems": need.problems, "samples": need.samples,
              "calls": need.calls, "usd": need.calls * usd} for m, usd in per_call.items()]
        )  # fmt: skip

    @property
    def design_plan(self) -> design.DesignPlan | None:
        """With a Lab: `design` priced as the sweep forecast would price it (two arms, output
        capped at the completion tokens above; `mmlab.design.plan`); None otherwise."""
        if self.lab is None:
            return None
        return design.plan(self.lab, self.design, arms=2, max_tokens=self.completion_tokens.value)

    def refresh_design(self) -> None:
        """Recompute the "how many samples" answer."""
        try:
            need = self.design
            rows = [
                {"model": r["model"], "calls": f"{r['calls']:,}", "cost": f"${r['usd']:,.2f}"}
                for r in self.design_table.to_dict("records")
            ]
            plan = self.design_plan
        except RequestError as exc:
            self.design_html.value = error_html(exc)
            return
        text = (
            f"<b>{need.problems:,} problems</b> x {need.samples} samples per arm "
            f"({'paired' if need.paired else 'separate problems per arm'}): {need.calls:,} calls "
            f"for two arms, to detect {need.baseline:.3g} -> {need.baseline + need.effect:.3g} "
            f"with power 0.8 at alpha 0.05. Assumes {esc(need.assumptions)} "
            "(measure them on a pilot with mmlab.design.pilot)."
        )
        if plan is not None:
            text += (
                f"<br>Forecast on this lab ({esc(plan.forecast.price_ref)}): expected "
                f"${plan.expected_usd:,.4f}, worst case ${plan.worst_usd:,.4f}"
                + ("" if plan.scale == 1 else f" (priced on {plan.priced} problems, scaled)")
            )
        self.design_html.value = (
            f'<div class="mmlab-box">{text}</div>'
            + table_html(rows, ["model", "calls", "cost"])
        )

    def refresh(self) -> None:
        """Redraw the curves and the table."""
        show_figure(self.out, self.figure)
        rows = [
            {
                "model": r["model"],
                "per call": f"${r['usd_per_call']:.5f}",
                "per day": f"${r['usd_per_day']:,.2f}",
                "per month": f"${r['usd_per_month']:,.2f}",
                "in budget": "yes" if r["within_budget"] else "no",
                "max calls/day": r["max_calls_per_day_in_budget"],
            }
            for r in self.table.to_dict("records")
        ]
        self.table_html.value = table_html(
            rows, ["model", "per call", "per day", "per month", "in budget", "max calls/day"]
        )
        self.refresh_design()
