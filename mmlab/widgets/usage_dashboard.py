"""UsageDashboard: what the log says was spent — per day, model, provider, tag — and the
recent activity, the way OpenRouter's activity page shows an account."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as W

from .. import plots
from ._common import CSS, error_html, esc, show_figure, table_html, widen_labels

if TYPE_CHECKING:
    import pandas as pd

    from ..lab import Lab

#: What the spend can be broken down by (the log's roll-up keys besides the day).
BREAKDOWNS = ("model", "provider", "tag", "endpoint")
RECENT = ("ts", "tag", "model", "provider", "cache_status", "completion_tokens", "spent_usd",
          "cost_source", "error")  # fmt: skip


class UsageDashboard:
    """Spend per day stacked by model (or provider, tag, endpoint), totals per group, and the
    last calls, read from a `Lab`'s log (never from HTTP or SQL directly).

    Headless: set ``by.value`` / ``tag.value``, call `refresh()` (or click ``button``), then
    read ``totals``, ``recent`` and ``figure``.
    """

    def __init__(self, lab: Lab, *, by: str = "model", tag: str | None = None,
                 recent: int = 10) -> None:  # fmt: skip
        self.lab = lab
        self.by = W.Dropdown(options=BREAKDOWNS, value=by, description="break down by")
        self.tag = W.Text(value=tag if tag is not None else (lab.tag or ""),
                          description="tag", placeholder="all tags")  # fmt: skip
        self.rows = W.BoundedIntText(value=recent, min=1, max=500, description="recent calls")
        self.button = W.Button(description="Refresh", icon="refresh")
        self.status = W.HTML()
        self.out = W.Output()
        self.totals_html = W.HTML()
        self.recent_html = W.HTML()
        widen_labels(self.by, self.tag, self.rows)
        self.button.on_click(lambda _b: self.refresh())
        self.by.observe(lambda _change: self.refresh(), names="value")
        self.totals: pd.DataFrame | None = None
        self.recent: pd.DataFrame | None = None
        self.figure: Any = None
        self.widget = W.VBox(
            [
                W.HTML(CSS + '<b class="mmlab-box">UsageDashboard</b> '
                       '<span class="mmlab-box">· spend from the log (billed cost where '
                       "the endpoint reports it)</span>"),  # fmt: skip
                W.HBox([self.by, self.tag, self.rows, self.button]),
                self.status,
                self.out,
                self.totals_html,
                self.recent_html,
            ]
        )
        self.refresh()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def refresh(self) -> None:
        """Re-read the log and redraw."""
        scope = self.tag.value.strip() or None
        try:
            daily = self.lab.summary(["day", self.by.value], tag=scope)
            self.totals = self.lab.summary(self.by.value, tag=scope)
            calls = self.lab.calls(scope, all_tags=scope is None)
        except Exception as exc:  # noqa: BLE001 - a widget shows errors, never a traceback
            self.status.value = error_html(exc)
            return
        self.status.value = ""
        self.recent = calls.tail(self.rows.value)[[c for c in RECENT if c in calls]]
        self.figure = plots.usage(daily, self.by.value)
        show_figure(self.out, self.figure)
        columns = [self.by.value, "calls", "hits", "errors", "completion_tokens", "spent_usd",
                   "saved_usd"]  # fmt: skip
        rows = [
            {**r, "spent_usd": f"${r['spent_usd']:.4f}", "saved_usd": f"${r['saved_usd']:.4f}",
             "completion_tokens": f"{int(r['completion_tokens']):,}"}
            for r in self.totals.to_dict("records")
        ]  # fmt: skip
        self.totals_html.value = table_html(rows, columns)
        recent = [
            {**r, "ts": str(r["ts"])[:19], "spent_usd": f"${r['spent_usd']:.5f}",
             "error": esc(str(r["error"])[:60]) if r.get("error") else ""}
            for r in self.recent.iloc[::-1].to_dict("records")
        ]  # fmt: skip
        self.recent_html.value = "<b class='mmlab-box'>recent activity</b>" + table_html(
            recent, list(self.recent.columns)
        )
