"""Static views for readers without a kernel (`mmlab.figures`): a PNG beside each plotly
figure, saved widget state cut to what is shown, one text/plain line per widget."""

from __future__ import annotations

import base64
import struct

import nbformat
import pytest

from mmlab.errors import ConfigError
from mmlab.figures import (
    FIGURE,
    HEIGHT,
    PNG,
    WIDGET_STATE,
    WIDGET_VIEW,
    WIDTH,
    add_static_views,
    describe_widget,
    drop_defaults,
    find_browser,
    render_pngs,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CONTROLS = "@jupyter-widgets/controls"
BASE = "@jupyter-widgets/base"
OUTPUT = "@jupyter-widgets/output"


def _figure(title: str, **layout) -> dict:
    return {
        "data": [{"type": "scatter", "x": [1, 2, 3], "y": [2, 1, 3], "name": "a"}],
        "layout": {"title": {"text": title}, **layout},
    }


def _size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_MAGIC) and png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def _model(name: str, module: str = CONTROLS, **state) -> dict:
    return {"model_name": name, "model_module": module, "model_module_version": "2.0.0",
            "state": state}  # fmt: skip


def _ref(model_id: str) -> str:
    return f"IPY_MODEL_{model_id}"


def _ids(n: int) -> list[str]:
    return [f"{i:032x}" for i in range(1, n + 1)]


def _progress_bar() -> tuple[str, dict]:
    """tqdm.notebook's bar as nbclient saves it: HBox(HTML, FloatProgress, HTML), one layout."""
    box, left, bar, right, layout = _ids(5)
    return box, {
        box: _model(
            "HBoxModel", children=[_ref(left), _ref(bar), _ref(right)], layout=_ref(layout)
        ),
        left: _model("HTMLModel", value="lengths: 100%", layout=_ref(layout)),
        bar: _model("FloatProgressModel", value=48.0, max=48.0, layout=_ref(layout)),
        right: _model("HTMLModel", value="48/48 [00:01&lt;00:00, 40.1cell/s]"),
        layout: _model("LayoutModel", BASE, width=None, height=None, display="inline-flex"),
    }


def _explorer() -> tuple[str, dict]:
    """An mmlab-style widget: a title, a control, an Output widget holding a figure."""
    box, title, dropdown, out, style = _ids(10)[5:]
    shown = {"output_type": "display_data", "metadata": {},
             "data": {FIGURE: _figure("reasoning tokens by max_tokens"),
                      "text/plain": "<plotly figure: reasoning tokens by max_tokens>"}}  # fmt: skip
    return box, {
        box: _model("VBoxModel", children=[_ref(title), _ref(dropdown), _ref(out)]),
        title: _model(
            "HTMLModel",
            value="<style>.x {color: red}</style><b>ReasoningExplorer</b>",
            style=_ref(style),
        ),
        dropdown: _model("DropdownModel", description="compare", index=None),
        out: _model("OutputModel", OUTPUT, outputs=[shown]),
        style: _model("HTMLStyleModel", description_width="", font_size=None),
    }


def _notebook(state: dict, views: list[str], *, figure: bool = False, checked: bool = False):
    cells = []
    for model_id in views:
        cell = nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nw" if checked else "w")
        cell.outputs = [nbformat.v4.new_output(
            "display_data",
            data={WIDGET_VIEW: {"model_id": model_id, "version_major": 2, "version_minor": 0},
                  "text/plain": "VBox(children=(HTML(value='…"})]  # fmt: skip
        cells.append(cell)
    if figure:
        cell = nbformat.v4.new_code_cell("fig")
        cell.outputs = [nbformat.v4.new_output("display_data", data={FIGURE: _figure("cost")})]
        cells.append(cell)
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["widgets"] = {WIDGET_STATE: {"state": state, "version_major": 2,
                                             "version_minor": 0}}  # fmt: skip
    return nb


def test_a_progress_bar_reads_as_its_text():
    root, state = _progress_bar()
    assert describe_widget(state, root) == "lengths: 100% 48/48 [00:01<00:00, 40.1cell/s]"


def test_an_interactive_widget_reads_as_its_name_its_figures_and_how_to_use_it():
    root, state = _explorer()
    line = describe_widget(state, root)
    assert line.startswith("[ReasoningExplorer (figure: reasoning tokens by max_tokens)")
    assert "run the notebook to use it" in line and "color" not in line and "\n" not in line
    assert "run the notebook" in describe_widget(state, "f" * 32)  # state not saved


def test_only_layout_and_style_defaults_are_dropped():
    root, state = _explorer()
    _, bar = _progress_bar()
    state |= bar
    dropped = drop_defaults(state)
    values = {m["model_name"]: m["state"] for m in state.values()}
    assert values["HTMLStyleModel"] == {}  # both its values are defaults
    assert values["LayoutModel"] == {"display": "inline-flex"}
    # a control keeps its whole state: a Dropdown's Python default index (None) is not the
    # browser's, so dropping it would change what the saved view shows
    assert values["DropdownModel"]["index"] is None
    assert dropped == 4


def test_without_figures_no_browser_is_needed_and_state_is_cut_to_what_is_shown(monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chromium")  # would fail if asked for
    root, state = _progress_bar()
    unseen, more = _explorer()
    nb = _notebook(state | more, [root])
    assert add_static_views(nb) == 0
    saved = nb.metadata["widgets"][WIDGET_STATE]["state"]
    assert set(saved) == set(state) and unseen not in saved
    assert nb.cells[0].outputs[0]["data"]["text/plain"].startswith("lengths: 100%")
    # no widget shown: no state kept
    empty = _notebook(state, [])
    add_static_views(empty)
    assert "widgets" not in empty.metadata


def test_a_checked_cell_keeps_the_kernels_text():
    """nbval compares a checked cell's text/plain with what the kernel prints: leave it."""
    root, state = _progress_bar()
    nb = _notebook(state, [root], checked=True)
    add_static_views(nb)
    assert nb.cells[0].outputs[0]["data"]["text/plain"].startswith("VBox(")


def test_a_missing_browser_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chromium")
    with pytest.raises(ConfigError, match="BROWSER_PATH"):
        find_browser()
    monkeypatch.delenv("BROWSER_PATH")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("mmlab.figures.MAC_CHROME", "/nonexistent/chrome")
    with pytest.raises(ConfigError, match="apt-get install chromium"):
        find_browser()


@pytest.mark.browser
def test_a_small_figure_becomes_the_same_png_every_time():
    plain, sized, again = render_pngs(
        [_figure("plain"), _figure("sized", width=400, height=300), _figure("plain")]
    )
    assert _size(plain) == (WIDTH, HEIGHT) and _size(sized) == (400, 300)
    assert plain == again  # deterministic: a re-record of an unchanged figure changes nothing
    assert len(plain) < 60_000


@pytest.mark.browser
def test_every_figure_gets_its_image_in_cells_and_in_output_widgets():
    root, state = _explorer()
    nb = _notebook(state, [root], figure=True)
    assert add_static_views(nb) == 2
    cell_figure = nb.cells[1].outputs[0]["data"]
    assert FIGURE in cell_figure  # the interactive figure stays; JupyterLab prefers it
    assert _size(base64.b64decode(cell_figure[PNG])) == (WIDTH, HEIGHT)
    saved = nb.metadata["widgets"][WIDGET_STATE]["state"]
    inner = next(m for m in saved.values() if m["model_name"] == "OutputModel")
    assert base64.b64decode(inner["state"]["outputs"][0]["data"][PNG]).startswith(PNG_MAGIC)
    nbformat.validate(nb)
