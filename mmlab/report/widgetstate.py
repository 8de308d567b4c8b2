"""A widget output as a static picture of what it showed, from the notebook's saved widget
state (``metadata.widgets["application/vnd.jupyter.widget-state+json"]``).

A widget needs a kernel to run; what a reader can still be shown is its last state: the boxes
it was laid out in, its HTML (tables: sanitised), its Output areas (figures: interactive,
through the same renderer as the notebook's own outputs), the values of its controls and its
progress bars. Where the notebook saved no state for it, the reader gets one line naming the
widget and how to run it — never an empty box.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .sanitize import Scrubber, clean_html, esc

STATE = "application/vnd.jupyter.widget-state+json"
VIEW = "application/vnd.jupyter.widget-view+json"
#: Deepest widget nesting followed (a saved state is untrusted: no endless recursion).
MAX_DEPTH = 24
_BOXES = {"VBoxModel": "mm-vbox", "BoxModel": "mm-vbox", "HBoxModel": "mm-hbox",
          "GridBoxModel": "mm-hbox"}  # fmt: skip
_CONTROLS = ("Slider", "Text", "Dropdown", "Select", "Checkbox", "ToggleButton", "RadioButtons",
             "Textarea", "Combobox", "DatePicker", "ColorPicker", "Valid", "Play")  # fmt: skip

#: Renders a list of notebook outputs (an Output widget's) to HTML.
OutputsRenderer = Callable[[list[Any]], str]


def saved_state(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The notebook's saved widget models by id (empty when it saved none)."""
    widgets = metadata.get("widgets")
    state = widgets.get(STATE) if isinstance(widgets, Mapping) else None
    models = state.get("state") if isinstance(state, Mapping) else None
    return dict(models) if isinstance(models, Mapping) else {}


class WidgetRenderer:
    """Static renderings of a notebook's widgets from its saved state."""

    def __init__(self, models: Mapping[str, Any], scrub: Scrubber, outputs: OutputsRenderer):
        self.models = models
        self.scrub = scrub
        self.outputs = outputs

    def view(self, view: Any, fallback: str | None, code: str, notebook: str) -> str:
        """The HTML of one widget output: its static rendering, or the line saying what it is
        and how to run it."""
        model_id = view.get("model_id") if isinstance(view, Mapping) else None
        body = self._model(model_id, 0, set()) if isinstance(model_id, str) else None
        if body:
            return (
                '<div class="mm-widget"><div class="mm-widget-note">'
                f"{esc(_name(code, fallback))}: a static snapshot of the widget as it was saved "
                f"— to use it, run the notebook (<code>make lab</code>, then open "
                f"<code>{esc(notebook)}</code>)</div>{body}</div>"
            )
        return (
            '<div class="mm-widget-missing">'
            f"<b>{esc(_name(code, fallback))}</b> — an interactive widget; the notebook saved "
            "no picture of it. It runs live in JupyterLab: <code>make lab</code>, then open "
            f"<code>{esc(notebook)}</code>.</div>"
        )

    def _model(self, model_id: str, depth: int, seen: set[str]) -> str:
        model = self.models.get(model_id.removeprefix("IPY_MODEL_"))
        if depth > MAX_DEPTH or model_id in seen or not isinstance(model, Mapping):
            return ""
        seen = seen | {model_id}
        name = str(model.get("model_name", ""))
        state = model.get("state")
        if not isinstance(state, Mapping):
            return ""
        if name in _BOXES or name in ("TabModel", "AccordionModel", "StackModel"):
            children = state.get("children")
            if not isinstance(children, list):
                return ""
            titles = state.get("titles") if isinstance(state.get("titles"), list) else []
            parts = []
            for i, child in enumerate(children):
                if not isinstance(child, str):
                    continue
                inner = self._model(child, depth + 1, seen)
                if inner and i < len(titles) and titles[i]:
                    inner = f'<div class="mm-widget-title">{esc(titles[i])}</div>{inner}'
                if inner:
                    parts.append(f"<div>{inner}</div>")
            css = _BOXES.get(name, "mm-vbox")
            return f'<div class="{css}">{"".join(parts)}</div>' if parts else ""
        if name in ("HTMLModel", "HTMLMathModel"):
            value = clean_html(self.scrub.paths(str(state.get("value", ""))))
            return _described(state, f'<div class="mm-widget-html">{value}</div>')
        if name == "LabelModel":
            return _described(state, f"<span>{esc(self.scrub.label(state.get('value')))}</span>")
        if name == "OutputModel":
            outputs = state.get("outputs")
            return self.outputs(list(outputs)) if isinstance(outputs, list) and outputs else ""
        if name == "ButtonModel":
            label = state.get("description") or "button"
            return f'<span class="mm-widget-button">{esc(label)}</span>'
        if name in ("FloatProgressModel", "IntProgressModel"):
            return _progress(state)
        if name.endswith("Model") and any(k in name for k in _CONTROLS):
            return _control(state, self.scrub)
        return ""


def _name(code: str, fallback: str | None) -> str:
    """What the widget is called: the constructor the cell's last line calls
    (``CostPlanner(lab)``), a progress bar, or the first words of its text form."""
    lines = [ln.strip() for ln in code.splitlines() if ln.strip() and not ln.startswith("#")]
    last = lines[-1] if lines else ""
    head = last.split("(", 1)[0].strip()
    if "(" in last and head.isidentifier() and head[:1].isupper():
        return head
    text = (fallback or "").strip()
    if "%|" in text:
        return "a progress bar"
    return (text[:60] + "…") if len(text) > 60 else (text or "a widget")


def _described(state: Mapping[str, Any], body: str) -> str:
    label = state.get("description")
    if isinstance(label, str) and label:
        return f'<span class="mm-widget-label">{esc(label)}</span> {body}'
    return body


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _progress(state: Mapping[str, Any]) -> str:
    value, low, high = (_number(state.get(k)) for k in ("value", "min", "max"))
    share = 0.0
    if value is not None and high is not None and high > (low or 0):
        share = max(0.0, min(1.0, (value - (low or 0)) / (high - (low or 0))))
    return (
        f'<span class="mm-progress" title="{share:.0%}"><span class="mm-progress-bar" '
        f'style="width:{share * 100:.1f}%"></span></span>'
    )


def _control(state: Mapping[str, Any], scrub: Scrubber) -> str:
    labels = state.get("_options_labels")
    index = state.get("index")
    if isinstance(labels, list) and isinstance(index, int) and 0 <= index < len(labels):
        value: Any = labels[index]
    elif isinstance(labels, list) and isinstance(index, list):
        value = ", ".join(str(labels[i]) for i in index if isinstance(i, int) and
                          0 <= i < len(labels))  # fmt: skip
    else:
        value = state.get("value")
        if isinstance(value, list):
            value = " – ".join(str(v) for v in value)
    label = state.get("description") or ""
    return (
        f'<span class="mm-widget-control"><span class="mm-widget-label">{esc(label)}</span>'
        f'<span class="mm-widget-value">{esc(scrub.label(value))}</span></span>'
    )


__all__ = ["MAX_DEPTH", "STATE", "VIEW", "WidgetRenderer", "saved_state"]
