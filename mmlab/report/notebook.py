"""A notebook as its reader should see it: markdown, code folded (one click shows it),
stdout, tables, every plotly figure interactive, widgets as static pictures of what they
showed.

Markdown goes through a real parser (mistune) and its HTML, raw HTML included, through the
report's allow-list; ``text/html`` outputs (pandas tables) likewise. Plotly figures are not
HTML here: each becomes a placeholder the page draws with its one copy of plotly.js, and its
JSON is kept in the page's figure list. A figure saved with a static image beside it (for
GitHub and nbviewer) is drawn live; the image is not repeated.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .sanitize import IMAGE_TYPES, Scrubber, clean_html, esc, plain, safe_image_src
from .widgetstate import VIEW, WidgetRenderer, saved_state

FIGURE = "application/vnd.plotly.v1+json"
#: Checker comments that mean nothing to a reader (nbval's).
_CHECKER_LINE = re.compile(r"^\s*#\s*NBVAL_[A-Z_]+\s*$")
#: Jupyter Book's tags for cells (or their code) a rendering leaves out.
_REMOVE_CELL, _REMOVE_INPUT, _REMOVE_OUTPUT = "remove-cell", "remove-input", "remove-output"


@dataclass
class Rendered:
    """A notebook rendered: its HTML, the figures it placed (plotly JSON, in placeholder
    order) and its title (the first heading)."""

    html: str
    figures: list[dict[str, Any]] = field(default_factory=list)
    title: str | None = None
    widgets: int = 0
    """Widget outputs rendered (statically or as a line)."""


def _source(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return "" if value is None else str(value)


def markdown_html(text: str, attachments: Mapping[str, Any] | None = None) -> str:
    """Markdown (GitHub tables, strikethrough, autolinks) as sanitised HTML; images attached
    to the cell are inlined as data URLs."""
    import mistune

    md = mistune.create_markdown(escape=False, plugins=["table", "strikethrough", "url"])
    rendered = str(md(text))
    for name, bundle in (attachments or {}).items():
        if not isinstance(bundle, Mapping):
            continue
        for mime in IMAGE_TYPES:
            data = bundle.get(mime)
            if isinstance(data, str | list):
                rendered = rendered.replace(
                    f'src="attachment:{esc(name)}"', f'src="data:{mime};base64,{_b64(data)}"'
                )
                break
    return clean_html(rendered)


def _b64(data: Any) -> str:
    text = _source(data).replace("\n", "")
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return ""
    return text


def _title(markdown: str) -> str | None:
    for line in markdown.splitlines():
        m = re.match(r"^#{1,2}\s+(.+?)\s*#*\s*$", line)
        if m:
            return m.group(1).replace("*", "").replace("`", "")
    return None


class NotebookRenderer:
    """Renders one notebook's cells (see the module's docstring)."""

    def __init__(self, nb: Mapping[str, Any], notebook: str, scrub: Scrubber) -> None:
        self.nb = nb
        self.notebook = notebook
        self.scrub = scrub
        self.figures: list[dict[str, Any]] = []
        self.widget_count = 0
        self._code = ""
        self.widgets = WidgetRenderer(
            saved_state(nb.get("metadata") or {}), scrub, self.outputs_html
        )

    def render(self, first_figure: int = 0) -> Rendered:
        """The notebook as HTML; figure placeholders are numbered from `first_figure`."""
        self.first = first_figure
        title = None
        parts = []
        for i, cell in enumerate(self.nb.get("cells") or []):
            if not isinstance(cell, Mapping):
                continue
            tags = (cell.get("metadata") or {}).get("tags") or []
            if _REMOVE_CELL in tags:
                continue
            kind = cell.get("cell_type")
            if kind == "markdown":
                text = self.scrub.text(_source(cell.get("source")))
                if title is None and _title(text):
                    title = _title(text)
                    lines = text.lstrip("\n").split("\n", 1)
                    if _title(lines[0]):  # the notebook opens with it: the header shows it
                        text = lines[1] if len(lines) > 1 else ""
                body = markdown_html(text, cell.get("attachments"))
                parts.append(f'<div class="mm-cell mm-md" id="cell-{i}">{body}</div>')
            elif kind == "code":
                parts.append(self._code_cell(cell, i, tags))
            elif kind == "raw":
                text = self.scrub.text(_source(cell.get("source")))
                parts.append(f'<pre class="mm-cell mm-raw">{esc(text)}</pre>')
        return Rendered("\n".join(parts), self.figures, title, self.widget_count)

    def _code_cell(self, cell: Mapping[str, Any], i: int, tags: list[Any]) -> str:
        code = _source(cell.get("source"))
        shown = "\n".join(ln for ln in code.splitlines() if not _CHECKER_LINE.match(ln))
        self._code = code
        count = cell.get("execution_count")
        label = f"code [{count}]" if isinstance(count, int) else "code"
        out = [f'<div class="mm-cell mm-code-cell" id="cell-{i}">']
        if _REMOVE_INPUT not in tags and shown.strip():
            out.append(
                f'<details class="mm-code"><summary>{esc(label)}</summary>'
                f"<pre><code>{esc(self.scrub.text(shown))}</code></pre></details>"
            )
        outputs = cell.get("outputs") or []
        if _REMOVE_OUTPUT not in tags and isinstance(outputs, list) and outputs:
            out.append(f'<div class="mm-outputs">{self.outputs_html(outputs)}</div>')
        out.append("</div>")
        return "".join(out)

    def outputs_html(self, outputs: list[Any]) -> str:
        """A list of notebook outputs as HTML (streams of one name run together)."""
        parts: list[str] = []
        for output in outputs:
            if isinstance(output, Mapping):
                parts.append(self.output_html(output))
        return "".join(parts)

    def output_html(self, output: Mapping[str, Any]) -> str:
        """One output: the richest form a report can show safely."""
        kind = output.get("output_type")
        if kind == "stream":
            name = "mm-stderr" if output.get("name") == "stderr" else "mm-stdout"
            text = plain(self.scrub.label(_source(output.get("text"))) or "")
            return f'<pre class="mm-stream {name}">{esc(text)}</pre>' if text.strip() else ""
        if kind == "error":
            trace = "\n".join(_source(t) for t in output.get("traceback") or [])
            head = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
            text = plain(self.scrub.label(trace or head) or "")
            return f'<pre class="mm-error">{esc(text)}</pre>'
        data = output.get("data")
        if not isinstance(data, Mapping):
            return ""
        return self._data(data)

    def _data(self, data: Mapping[str, Any]) -> str:
        if VIEW in data:
            self.widget_count += 1
            fallback = _source(data.get("text/plain")) or None
            return self.widgets.view(data[VIEW], fallback, self._code, self.notebook)
        if isinstance(data.get(FIGURE), Mapping):
            return self.figure(data[FIGURE])
        for mime in IMAGE_TYPES:
            if mime in data:
                src = (
                    _b64(data[mime])
                    if mime != "image/svg+xml"
                    else base64.b64encode(_source(data[mime]).encode()).decode()
                )
                if src:
                    return f'<img class="mm-image" alt="figure" src="data:{mime};base64,{src}">'
        if "text/html" in data:
            fragment = clean_html(self.scrub.paths(_source(data["text/html"])))
            return f'<div class="mm-html">{fragment}</div>'
        if "text/markdown" in data:
            text = self.scrub.text(_source(data["text/markdown"]))
            return f'<div class="mm-html">{markdown_html(text)}</div>'
        for mime in ("text/latex", "application/json", "text/plain"):
            if mime in data:
                value = data[mime]
                text = value if isinstance(value, str | list) else json.dumps(value, indent=1)
                shown = plain(self.scrub.label(_source(text)) or "")
                return f'<pre class="mm-plain">{esc(shown)}</pre>'
        return ""

    def figure(self, spec: Mapping[str, Any]) -> str:
        """A plotly figure: a placeholder the page draws, its JSON kept aside."""
        layout = dict(spec["layout"]) if isinstance(spec.get("layout"), Mapping) else {}
        if isinstance(layout.get("images"), list):
            # a layout image is fetched from its URL: only inline data is kept (nothing loads)
            layout["images"] = [
                i for i in layout["images"]
                if isinstance(i, Mapping) and safe_image_src(str(i.get("source", "")))
            ]  # fmt: skip
        figure = {"data": spec.get("data") if isinstance(spec.get("data"), list) else [],
                  "layout": layout}  # fmt: skip
        self.figures.append(figure)
        index = self.first + len(self.figures) - 1
        heading = layout.get("title")
        title = (heading.get("text") if isinstance(heading, Mapping) else heading) or "figure"
        return (
            f'<div class="mm-fig" data-fig="{index}" role="img" '
            f'aria-label="{esc(self.scrub.label(title))}"></div>'
        )


def render_notebook(nb: Mapping[str, Any], notebook: str, scrub: Scrubber,
                    first_figure: int = 0) -> Rendered:  # fmt: skip
    """`nb` (a notebook as JSON: nbformat 4) rendered; `notebook` is its file name, used in
    the lines that say how to run a widget."""
    return NotebookRenderer(nb, notebook, scrub).render(first_figure)


__all__ = ["FIGURE", "NotebookRenderer", "Rendered", "markdown_html", "render_notebook"]
