"""Static views of a notebook for readers without a kernel: figures as images, widgets described.

GitHub, nbviewer and a notebook attached to a message draw ``image/png``, ``image/svg+xml`` and
``text/html``, never plotly's own mime type, and they draw a widget only from the widget state
saved in the notebook's metadata. `add_static_views` fixes a recorded notebook for them:

- beside every plotly figure (``application/vnd.plotly.v1+json``) — in a cell's output or in an
  Output widget's saved outputs — goes a PNG of it, in the same mime bundle. JupyterLab's plotly
  renderer ranks above images, so the live, interactive view is unchanged;
- the saved widget state is kept, cut to the models the notebook's outputs show, its layouts
  and styles stripped of values equal to their defaults;
- every widget output's ``text/plain`` becomes one line saying what the widget shows.

Why PNG and not SVG: plotly's SVG carries random clip-path ids, so every re-render would change
every figure's text; a PNG from the same Chromium is byte-identical run to run, smaller for
dense plots, and nbval leaves ``image/png`` out of every comparison (it is in nbval's skip list
unless ``--nbdime`` is given), so an image that differs by a pixel cannot fail a test.

The images are drawn offline by plotly's ``kaleido`` driving an installed Chromium (Debian's
``/usr/bin/chromium``, or ``BROWSER_PATH``): the page loads plotly.js from the plotly package,
MathJax is off, and no browser is ever downloaded.
"""

from __future__ import annotations

import base64
import html
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .loop import run_sync

#: The mime type of a plotly figure in a notebook output.
FIGURE = "application/vnd.plotly.v1+json"
PNG = "image/png"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
#: A figure without its own size is drawn at this size (px): about a notebook's output width.
WIDTH, HEIGHT = 820, 460
#: 1 px per CSS px keeps each image at tens of KB; 13 px text stays legible at that scale.
SCALE = 1
#: Seconds one figure may take to draw before the recording fails.
TIMEOUT_S = 60
#: Where a Chromium or Chrome is looked for, after ``BROWSER_PATH``.
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
MAC_CHROME = "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"
#: Widgets that only show something; any other widget in a tree takes input.
PASSIVE = {"HTML", "HTMLMath", "Label", "Box", "HBox", "VBox", "GridBox", "Accordion", "Tab",
           "Stack", "Output", "FloatProgress", "IntProgress", "Image", "Valid"}  # fmt: skip
MODEL_REF = re.compile(r"IPY_MODEL_([0-9a-f]{32})")
#: A widget shown inside an Output widget is named by its view's model id.
VIEW_REF = re.compile(r"'model_id': '([0-9a-f]{32})'")
TEXT_MAX = 200


def find_browser() -> str:
    """The Chromium (or Chrome) that draws the images: ``BROWSER_PATH``, else the usual names.

    Raises `ConfigError` saying how to install one: images are never drawn by a downloaded
    browser.
    """
    named = os.environ.get("BROWSER_PATH")
    if named:
        if not Path(named).is_file():
            raise ConfigError(f"BROWSER_PATH={named!r} is not a file")
        return named
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    if Path(MAC_CHROME).is_file():
        return MAC_CHROME
    raise ConfigError(
        "mmlab record draws each figure's static image with Chromium, and none was found: "
        "install it (Debian/Ubuntu: apt-get install chromium; `make record` does) or set "
        "BROWSER_PATH to a Chromium or Chrome"
    )


def renderer_ready() -> str:
    """Check that figures can be drawn here (kaleido importable, a Chromium found); the browser.

    `mmlab record` asks first, so a missing piece is said before an hour of live calls, not
    after them.
    """
    try:
        import kaleido  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            "mmlab record draws each figure's static image with kaleido, which is not "
            "installed: pip install 'mmlab[test]' (make lab and make test install it)"
        ) from exc
    return find_browser()


def render_pngs(figures: Sequence[Mapping[str, Any]], *, browser: str | None = None) -> list[bytes]:
    """Draw each plotly figure (its JSON: ``data``, ``layout``) as PNG bytes, in one browser."""
    if not figures:
        return []
    path = browser or find_browser()
    return run_sync(_render(list(figures), path))


async def _render(figures: list[Mapping[str, Any]], path: str) -> list[bytes]:
    import kaleido

    # mathjax=False: its default is a CDN script, and mmlab's figures use no LaTeX
    async with kaleido.Kaleido(path=path, mathjax=False, timeout=TIMEOUT_S) as k:
        return [await k.calc_fig(dict(fig), opts=_size(fig)) for fig in figures]


def _size(fig: Mapping[str, Any]) -> dict[str, Any]:
    layout = fig.get("layout") or {}
    opts: dict[str, Any] = {"format": "png", "scale": SCALE}
    if not layout.get("width"):
        opts["width"] = WIDTH
    if not layout.get("height"):
        opts["height"] = HEIGHT
    return opts


def add_static_views(nb: Any, *, previous: Any = None, browser: str | None = None) -> int:
    """Give notebook `nb` (nbformat, changed in place) its static views; returns images drawn.

    `previous`: an earlier version of the notebook whose widget state still describes outputs
    kept from it (``mmlab record --only-data`` keeps a live run's widget outputs).
    """
    state = _widget_state(nb, previous)
    views = list(_widget_outputs(nb))
    roots = [o["data"][WIDGET_VIEW].get("model_id", "") for _, o in views]
    state = _reachable(state, roots)
    bundles = [o["data"] for o in _outputs(nb) if FIGURE in o.get("data", {})]
    bundles += [o["data"] for o in _widget_figure_outputs(state)]
    images = render_pngs([b[FIGURE] for b in bundles], browser=browser)
    for data, png in zip(bundles, images, strict=True):
        data[PNG] = base64.b64encode(png).decode("ascii")
    for cell, output in views:
        if not _checked(cell):  # nbval compares a checked cell's text/plain with the kernel's
            output["data"]["text/plain"] = describe_widget(
                state, output["data"][WIDGET_VIEW].get("model_id", "")
            )
    if state:
        drop_defaults(state)
        nb.metadata["widgets"] = {
            WIDGET_STATE: {"state": state, "version_major": 2, "version_minor": 0}
        }
    else:
        nb.metadata.pop("widgets", None)
    return len(images)


def _outputs(nb: Any) -> Iterator[Any]:
    for cell in nb.cells:
        if cell.cell_type == "code":
            yield from cell.get("outputs", [])


def _widget_outputs(nb: Any) -> Iterator[tuple[Any, Any]]:
    for cell in nb.cells:
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                if WIDGET_VIEW in output.get("data", {}):
                    yield cell, output


def _checked(cell: Any) -> bool:
    tags = cell.get("metadata", {}).get("tags", [])
    return "NBVAL_CHECK_OUTPUT" in cell.source or "nbval-check-output" in tags


def _widget_state(nb: Any, previous: Any) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for source in (previous, nb):
        if source is not None:
            saved = source.metadata.get("widgets", {}).get(WIDGET_STATE, {})
            state.update(saved.get("state", {}))
    return state


def _reachable(state: dict[str, Any], roots: Sequence[str]) -> dict[str, Any]:
    """The models the shown widgets use (children, layouts, styles, links), in saved order."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        model_id = todo.pop()
        if model_id in seen or model_id not in state:
            continue
        seen.add(model_id)
        saved = repr(state[model_id].get("state", {}))
        todo.extend(MODEL_REF.findall(saved) + VIEW_REF.findall(saved))
    return {k: v for k, v in state.items() if k in seen}


def _widget_figure_outputs(state: Mapping[str, Any]) -> Iterator[Any]:
    """Outputs saved inside Output widgets that hold a plotly figure."""
    for model in state.values():
        if model.get("model_name") == "OutputModel":
            for output in model.get("state", {}).get("outputs", []):
                if FIGURE in output.get("data", {}):
                    yield output


def describe_widget(state: Mapping[str, Any], model_id: str) -> str:
    """One line saying what a saved widget shows (the ``text/plain`` beside its view).

    A display-only widget reads as its text (a progress bar: ``lengths: 100% 48/48 [...]``);
    one that takes input reads as its first text — mmlab's widgets open with their name —
    plus the titles of the figures it holds, and says how to use it.
    """
    if model_id not in state:
        return "[an interactive widget: run the notebook to see it]"
    texts: list[str] = []
    titles: list[str] = []
    progress: list[str] = []
    interactive = False
    for model in _tree(state, model_id):
        name = model.get("model_name", "").removesuffix("Model")
        values = model.get("state", {})
        if name in ("HTML", "HTMLMath", "Label"):
            text = _plain(values.get("value") or "")
            if text:
                texts.append(text)
        elif name in ("FloatProgress", "IntProgress") and values.get("max"):
            share = (values.get("value") or 0) / values["max"]
            progress.append(f"{share:.0%}")
        elif name == "Output":
            for output in values.get("outputs", []):
                figure = output.get("data", {}).get(FIGURE)
                if figure:
                    titles.append(_title(figure))
        if name not in PASSIVE:
            interactive = True
    if not interactive:
        line = " ".join(texts or progress) or "[a widget]"
        return _clip(line)
    what = texts[0] if texts else "an interactive widget"
    shown = f" (figure: {'; '.join(t for t in titles if t)})" if any(titles) else ""
    return _clip(f"[{_clip(what)}{shown} — an interactive widget: run the notebook to use it]")


def _tree(state: Mapping[str, Any], root: str) -> Iterator[Mapping[str, Any]]:
    """A widget and what it contains, in display order (layouts and styles left out)."""
    todo, seen = [root], set()
    while todo:
        model_id = todo.pop(0)
        if model_id in seen or model_id not in state:
            continue
        seen.add(model_id)
        model = state[model_id]
        yield model
        children = model.get("state", {}).get("children") or []
        todo[:0] = [m for c in children for m in MODEL_REF.findall(str(c))]


def _plain(markup: str) -> str:
    text = re.sub(r"<(style|script)\b.*?</\1\s*>", " ", markup, flags=re.S | re.I)
    text = html.unescape(re.sub(r"<[^>]*>", " ", text))
    return " ".join(text.split())


def _title(figure: Mapping[str, Any]) -> str:
    title = (figure.get("layout") or {}).get("title") or {}
    text = title.get("text", "") if isinstance(title, Mapping) else str(title)
    return _plain(str(text).split("<br>")[0])


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_MAX else text[: TEXT_MAX - 1].rstrip() + "…"


def drop_defaults(state: dict[str, Any]) -> int:
    """Remove layout and style values equal to their defaults (in place); returns how many.

    Layouts and styles are most of a saved state (one layout per widget, ~40 CSS properties,
    nearly all unset), and their defaults are the same in Python and in the widget managers
    that load saved state (nbviewer's, JupyterLab's), which fill every missing value from the
    model's defaults — ipywidgets' own ``drop_defaults`` embedding. Controls are kept whole:
    some of their Python defaults differ from the browser's (a Dropdown's ``index``). Only
    plain values are compared; models of a kind ipywidgets does not know are left whole.
    """
    defaults = _defaults()
    dropped = 0
    for model in state.values():
        name = model.get("model_name", "")
        known = defaults.get((model.get("model_module"), name))
        values = model.get("state")
        presentation = name == "LayoutModel" or name.endswith("StyleModel")
        if known is None or not presentation or not isinstance(values, dict):
            continue
        for key in [k for k, v in values.items() if k in known and _same(v, known[k])]:
            del values[key]
            dropped += 1
    return dropped


def _defaults() -> dict[tuple[str, str], dict[str, Any]]:
    import ipywidgets

    found: dict[tuple[str, str], dict[str, Any]] = {}
    todo = [ipywidgets.Widget]
    while todo:  # every widget class ipywidgets defines, styles and layouts included
        klass = todo.pop()
        todo.extend(klass.__subclasses__())
        traits = klass.class_traits(sync=True)
        ours = klass.__module__.startswith("ipywidgets.")  # a subclass may change defaults
        if not ours or "_model_module" not in traits or "_model_name" not in traits:
            continue
        key = (traits["_model_module"].default_value, traits["_model_name"].default_value)
        values = {n: t.default_value for n, t in traits.items() if _plain_value(t.default_value)}
        found.setdefault(key, values)
    return found


def _plain_value(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return len(value) == 0
    return value is None or isinstance(value, (str, bool, int, float))


def _same(saved: Any, default: Any) -> bool:
    if isinstance(default, (tuple, list)):
        return isinstance(saved, list) and len(saved) == 0
    # type-strict: True == 1 and 1 == 1.0 in Python, not in a widget's model
    return type(saved) is type(default) and saved == default
