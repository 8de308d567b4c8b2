"""Shared pieces of the widgets: running work from a click, small HTML renderers."""

from __future__ import annotations

import asyncio
import html
from collections.abc import Awaitable, Callable
from typing import Any

from ..loop import run_sync
from ..redaction import redact

CSS = """
<style>
.mmlab-box {font-family: Inter, Helvetica, Arial, sans-serif; font-size: 13px;}
.mmlab-answer {white-space: pre-wrap; border: 1px solid #ddd; border-radius: 6px;
  padding: 8px 10px; min-height: 2.5em; background: #fcfcfc; max-height: 24em; overflow: auto;}
.mmlab-reasoning {white-space: pre-wrap; color: #555; font-size: 12px; max-height: 20em;
  overflow: auto;}
.mmlab-error {color: #b03a2e; background: #fdecea; border-radius: 6px; padding: 6px 10px;}
.mmlab-badge {display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 11px;
  color: white; margin-left: 6px;}
.mmlab-hit {background: #2e8b57;} .mmlab-miss {background: #7f8c8d;}
.mmlab-bar {display: flex; height: 14px; border-radius: 4px; overflow: hidden;
  border: 1px solid #ccc; margin: 4px 0;}
.mmlab-table {border-collapse: collapse; font-size: 12px;}
.mmlab-table td, .mmlab-table th {border-bottom: 1px solid #eee; padding: 2px 8px;
  text-align: right;}
.mmlab-table td:first-child, .mmlab-table th:first-child {text-align: left;}
</style>
"""


def esc(text: Any) -> str:
    """HTML-escape any value for display."""
    return html.escape(str(text))


def error_html(exc: BaseException) -> str:
    """A readable one-paragraph error: its kind and message, never a traceback."""
    return (
        f'<div class="mmlab-error mmlab-box"><b>{esc(type(exc).__name__)}</b>: '
        f"{esc(redact(str(exc)))}</div>"
    )


def table_html(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A small HTML table."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f'<table class="mmlab-table mmlab-box"><tr>{head}</tr>{body}</table>'


def widen_labels(*controls: Any, width: str = "110px") -> None:
    """Give controls room for their descriptions (the default truncates "temperature")."""
    for control in controls:
        if hasattr(control.style, "description_width"):
            control.style.description_width = width


def show_figure(out: Any, fig: Any) -> None:
    """Put a plotly figure in an Output widget, replacing what was there.

    The mime bundle is built here: handing the figure to IPython's formatter would call its
    ``_ipython_display_``, which draws into the running cell instead of the widget.
    """
    import json

    bundle = {
        "application/vnd.plotly.v1+json": json.loads(fig.to_json()),
        "text/plain": f"<plotly figure: {fig.layout.title.text or 'untitled'}>",
    }
    out.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)


def launch(work: Callable[[], Awaitable[Any]]) -> Any:
    """Run `work` from a button click.

    Inside a Jupyter kernel the click arrives on the kernel's running event loop: schedule a
    task, so the UI keeps updating while the model streams. Anywhere else (a script, a test)
    there is no running loop: run it to completion on mmlab's loop and return its result.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return run_sync(work())
    return loop.create_task(work())
