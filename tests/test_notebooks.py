"""Notebooks are product and tests: shipped with outputs and bundles, replayed offline."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import nbformat
import pytest
from helpers import nbval

from mmlab.figures import FIGURE, PNG, WIDGET_STATE, WIDGET_VIEW

pytestmark = pytest.mark.notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_every_notebook_ships_outputs_a_bundle_and_a_header():
    assert NOTEBOOKS, "no notebooks"
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
        for heading in ("**Question.**", "**Run it.**", "**Endpoint and bundle.**"):
            assert heading in nb.cells[0].source, f"{path.name} header lacks {heading}"
        assert any("parameters" in c.metadata.get("tags", []) for c in code)
        assert all(c.execution_count is not None for c in code), f"{path.name} not executed"
        assert any("NBVAL_CHECK_OUTPUT" in c.source for c in code)
        assert (path.parent / f"{path.stem}.bundle.jsonl.gz").is_file()
        text = path.read_text()
        assert "plotly.min.js" not in text and len(text) < 2_000_000
        tag = next(c.source for c in code if "parameters" in c.metadata.get("tags", []))
        assert f'TAG = "{path.stem}"' in tag, "calls must be tagged with the notebook's name"


def test_no_markdown_cell_has_a_bare_dollar_sign():
    # JupyterLab reads the text between two bare $ as TeX: prices are written \$
    import re

    bare = [
        (path.name, i)
        for path in NOTEBOOKS
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells)
        if cell.cell_type == "markdown"
        and re.search(r"(?<!\\)\$", re.sub(r"`[^`]*`", "", cell.source))
    ]
    assert bare == []


def test_notebooks_replay_identically_elsewhere_with_no_network(tmp_path):
    """A fresh copy, another home, another database: the bundles alone rerun everything."""
    elsewhere = tmp_path / "clone" / "notebooks"
    elsewhere.mkdir(parents=True)
    for path in NOTEBOOKS:
        shutil.copy(path, elsewhere)
        shutil.copy(path.parent / f"{path.stem}.bundle.jsonl.gz", elsewhere)
    out = nbval(sorted(elsewhere.glob("*.ipynb")), elsewhere, tmp_path / "home")
    assert out.returncode == 0, out.stdout[-4000:]
    assert " passed" in out.stdout


def test_socket_guard_and_output_comparison_are_live(tmp_path):
    """Controls: the guard does catch network use, and nbval does compare checked cells."""
    work = tmp_path / "tampered"
    work.mkdir()
    first = NOTEBOOKS[0]
    shutil.copy(first.parent / f"{first.stem}.bundle.jsonl.gz", work)
    nb = nbformat.read(first, as_version=4)
    checked = next(
        c
        for c in nb.cells
        if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source and c.outputs
    )
    out0 = checked.outputs[0]
    if "text" in out0:
        out0["text"] = out0["text"].replace("a", "b", 1) + "tampered\n"
    else:
        out0["data"]["text/plain"] = "tampered"
    nbformat.write(nb, work / first.name)
    result = nbval([work / first.name], work, tmp_path / "home1")
    assert result.returncode != 0 and "tampered" in result.stdout

    probe = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("import socket\nsocket.create_connection(('127.0.0.1', 9))")
        ]
    )
    probe.cells[0].execution_count = 1
    nbformat.write(probe, work / "probe.ipynb")
    result = nbval([work / "probe.ipynb"], work, tmp_path / "home2")
    assert result.returncode != 0 and "network use during replay" in result.stdout


def test_every_figure_and_widget_shows_where_notebooks_are_read():
    """GitHub and nbviewer draw images and saved widget state, never plotly's mime type: every
    figure (in a cell or inside an Output widget) carries its PNG, every widget output its
    saved state and a one-line description."""
    figures = widgets = 0
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        saved = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        inside = [o for m in saved.values() if m["model_name"] == "OutputModel"
                  for o in m["state"].get("outputs", [])]  # fmt: skip
        for output in outputs + inside:
            data = output.get("data", {})
            if FIGURE in data:
                figures += 1
                assert PNG in data, f"{path.name}: a plotly figure without its image"
                assert base64.b64decode(data[PNG]).startswith(PNG_MAGIC)
        for output in outputs:
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view:
                widgets += 1
                line = output["data"]["text/plain"].strip()
                assert view["model_id"] in saved, f"{path.name}: a widget without saved state"
                assert line and "\n" not in line, f"{path.name}: {line!r}"
                assert not line.startswith(("VBox(", "HBox(")) and " 0%|" not in line, line
    assert figures >= 15 and widgets >= 10


def test_nbval_never_compares_image_bytes(tmp_path):
    """A re-drawn image that differs by a pixel cannot fail a test: nbval (as mmlab runs it)
    leaves image/png out of the comparison, while the figure's data in the same checked
    output is still compared (the control notebook changes one bar and fails)."""
    figure = {"data": [{"type": "bar", "x": ["a", "b"], "y": [1, 2]}], "layout": {}}
    work = tmp_path / "images"
    work.mkdir()
    for name, y, png in (("redrawn", [1, 2], b"another drawing"), ("control", [1, 3], b"")):
        cell = nbformat.v4.new_code_cell(
            "# NBVAL_CHECK_OUTPUT\nfrom IPython.display import display\n"
            f"display({{{FIGURE!r}: {figure!r}}}, raw=True)"
        )
        stored = {"data": [{**figure["data"][0], "y": y}], "layout": {}}
        cell.outputs = [nbformat.v4.new_output("display_data", data={
            FIGURE: stored, PNG: base64.b64encode(PNG_MAGIC + png).decode()})]  # fmt: skip
        cell.execution_count = 1
        nbformat.write(nbformat.v4.new_notebook(cells=[cell]), work / f"{name}.ipynb")
    out = nbval([work / "redrawn.ipynb", work / "control.ipynb"], work, tmp_path / "home")
    assert "1 failed, 1 passed" in out.stdout, out.stdout[-3000:]
    assert "FAILED control.ipynb::Cell 0" in out.stdout
