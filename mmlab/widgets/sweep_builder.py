"""SweepBuilder: define a grid with inputs, see plan and forecast live, run with progress."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as W

from ..config import M1_SYSTEM_PROMPTS
from ..errors import MmlabError, RequestError
from ..problems import LEVELS, load_problems
from ..sweep import Sweep, SweepResult, grid
from ._common import CSS, error_html, esc, launch, run_sync, table_html, widen_labels

if TYPE_CHECKING:
    from ..lab import Lab

REASONING = {
    "off": None,
    "on": {"enabled": True},
    "effort: low": {"effort": "low"},
    "effort: high": {"effort": "high"},
}


def parse_values(text: str, kind: type, name: str) -> list[Any]:
    """``"0.0, 0.6, 1"`` → ``[0.0, 0.6, 1.0]``; raises RequestError naming the field."""
    parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    try:
        return [kind(p) if kind is float else int(float(p)) for p in parts]
    except ValueError:
        raise RequestError(
            f"{name}: could not read {text!r} as comma-separated "
            f"{'numbers' if kind is float else 'integers'}",
            field=name,
        ) from None


class SweepBuilder:
    """Build, plan, forecast and run a sweep from inputs.

    Headless: set the inputs' ``.value``; read ``sweep``, ``forecast_text``, ``plan``; call
    ``run()`` (or click ``run_button``); read ``result``.
    """

    def __init__(
        self,
        lab: Lab,
        *,
        temperatures: str = "0.0, 1.0",
        max_tokens: str = "64, 256",
        repeats: int = 2,
        tag: str = "builder",
    ) -> None:
        self.lab = lab
        self.source = W.ToggleButtons(options=["problem set", "my prompts"], value="problem set")
        self.difficulty = W.SelectMultiple(
            options=[(f"{k}: {v}", k) for k, v in LEVELS.items()],
            value=(1, 2),
            description="levels",
            rows=4,
        )
        self.per_level = W.IntSlider(value=2, min=1, max=12, description="per level")
        self.prompts_text = W.Textarea(
            value="",
            placeholder="one prompt per line",
            description="prompts",
            layout=W.Layout(width="100%", height="5em"),
        )
        self.system = W.Text(
            value=M1_SYSTEM_PROMPTS["math"], description="system", layout=W.Layout(width="100%")
        )
        self.temperature = W.Text(value=temperatures, description="temperature")
        self.max_tokens = W.Text(value=max_tokens, description="max_tokens")
        self.top_p = W.Text(value="", placeholder="e.g. 0.95", description="top_p")
        self.reasoning = W.Dropdown(options=list(REASONING), value="on", description="reasoning")
        self.repeats = W.IntSlider(value=repeats, min=1, max=10, description="repeats")
        self.concurrency = W.IntSlider(value=4, min=1, max=64, description="concurrency")
        self.budget = W.BoundedFloatText(
            value=0.0,
            min=0.0,
            max=1e6,
            description="budget $",
            tooltip="USD cap for this sweep; 0 means no cap",
        )
        self.tag = W.Text(value=tag, description="tag")
        self.plan_html = W.HTML()
        self.error = W.HTML()
        self.run_button = W.Button(description="Run sweep", button_style="primary", icon="play")
        self.progress = W.IntProgress(value=0, min=0, max=1, description="progress")
        self.progress_label = W.HTML()
        self.result_html = W.HTML()
        spec_inputs = (
            self.source,
            self.difficulty,
            self.per_level,
            self.prompts_text,
            self.system,
            self.temperature,
            self.max_tokens,
            self.top_p,
            self.reasoning,
            self.repeats,
            self.tag,
        )
        widen_labels(*spec_inputs[1:], self.concurrency, self.budget, self.progress)
        self.sweep: Sweep | None = None
        self.result: SweepResult | None = None
        self.running = False
        for w in spec_inputs:  # any change to the spec re-plans and re-forecasts
            w.observe(lambda _change: self.refresh(), names="value")
        self.run_button.on_click(lambda _b: None if self.running else launch(self.arun))
        self.widget = W.VBox(
            [
                W.HTML(
                    CSS + f'<b class="mmlab-box">SweepBuilder</b> <span class="mmlab-box">· '
                    f"{esc(lab.endpoint.label)} · model {esc(lab.model)}</span>"
                ),
                W.HBox([self.source, self.difficulty, self.per_level]),
                self.prompts_text,
                self.system,
                W.HBox(
                    [
                        W.VBox([self.temperature, self.max_tokens, self.top_p]),
                        W.VBox([self.reasoning, self.repeats, self.tag]),
                        W.VBox([self.concurrency, self.budget, self.run_button]),
                    ]
                ),
                self.error,
                self.plan_html,
                W.HBox([self.progress, self.progress_label]),
                self.result_html,
            ]
        )
        self.refresh()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # --- building -----------------------------------------------------------------------------
    def build(self) -> Sweep:
        """The sweep the inputs describe (raises RequestError naming a bad input)."""
        if self.source.value == "problem set":
            if not self.difficulty.value:
                raise RequestError("pick at least one difficulty level", field="levels")
            prompts: Any = load_problems(list(self.difficulty.value), self.per_level.value)
        else:
            prompts = [
                line.strip() for line in self.prompts_text.value.splitlines() if line.strip()
            ]
        axes: dict[str, list[Any]] = {}
        for name, box, kind in (
            ("temperature", self.temperature, float),
            ("max_tokens", self.max_tokens, int),
            ("top_p", self.top_p, float),
        ):
            values = parse_values(box.value, kind, name)
            if values:
                axes[name] = values
        if not axes:
            raise RequestError("give values for at least one parameter", field="params")
        fixed = (
            {}
            if REASONING[self.reasoning.value] is None
            else {"reasoning": REASONING[self.reasoning.value]}
        )
        return self.lab.sweep(
            prompts,
            grid(**axes),
            repeats=self.repeats.value,
            tag=self.tag.value.strip() or None,
            system=self.system.value or None,
            **fixed,
        )

    @property
    def forecast_text(self) -> str:
        """The plan and forecast as text (what the widget shows)."""
        return self.plan_html.value

    def refresh(self) -> None:
        """Rebuild the sweep from the inputs and show its plan and forecast."""
        try:
            self.sweep = self.build()
            forecast = self.sweep.forecast()
        except MmlabError as exc:
            self._show_error(exc)
            return
        self._show_plan(forecast)

    async def arefresh(self) -> None:
        """Async `refresh` (from inside a running sweep's loop)."""
        try:
            self.sweep = self.build()
            forecast = await self.sweep.aforecast()
        except MmlabError as exc:
            self._show_error(exc)
            return
        self._show_plan(forecast)

    def _show_error(self, exc: MmlabError) -> None:
        self.sweep = None
        self.error.value = error_html(exc)
        self.plan_html.value = ""
        self.run_button.disabled = True

    def _show_plan(self, forecast: Any) -> None:
        assert self.sweep is not None
        self.error.value = ""
        self.run_button.disabled = self.running
        lines = "<br>".join(esc(line) for line in str(forecast).splitlines())
        self.plan_html.value = f'<div class="mmlab-box"><b>{esc(self.sweep)}</b><br>{lines}</div>'

    # --- running ------------------------------------------------------------------------------
    def run(self) -> SweepResult | None:
        """Run the sweep now and wait."""
        return run_sync(self.arun())

    def _progress(self, done: int, total: int) -> None:
        self.progress.max = max(total, 1)
        self.progress.value = done
        self.progress_label.value = f'<span class="mmlab-box">{done} / {total} cells</span>'

    async def arun(self) -> SweepResult | None:
        """Run the current sweep with a progress bar; show a result table."""
        if self.sweep is None or self.running:
            return None
        self.running = True
        self.run_button.disabled = True
        self.error.value = ""
        try:
            budget = self.budget.value or None
            self.result = await self.sweep.arun(
                concurrency=self.concurrency.value, budget_usd=budget, progress=self._progress
            )
        except Exception as exc:  # noqa: BLE001 - shown in the widget
            self.error.value = error_html(exc)
            return None
        finally:
            self.running = False
            self.run_button.disabled = False
        df = self.result.df
        by = [c for c in ("temperature", "max_tokens", "top_p") if c in df.columns]
        summary = (
            df[df["error"].isna()]
            .groupby(by)
            .agg(
                cells=("cell", "count"),
                reasoning_tokens=("reasoning_tokens", "mean"),
                completion_tokens=("completion_tokens", "mean"),
                truncated=("truncated", "mean"),
                cost_usd=("cost_usd", "sum"),
            )
            .reset_index()
        )
        rows = [
            {k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in r.items()}
            for r in summary.to_dict("records")
        ]
        self.result_html.value = (
            f'<div class="mmlab-box">{esc(self.result.stats)}</div>'
            + table_html(rows, list(summary.columns))
        )
        await self.arefresh()
        return self.result
