"""Notebooks are product and tests: shipped with outputs and bundles, replayed offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mmlab.record import nbval_command

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NO_SOCKETS = """
import sys
def _forbid(event, args):
    if event == "socket.connect":
        raise RuntimeError(f"network use during replay: {args!r}")
sys.addaudithook(_forbid)
"""


def nbval(
    paths: list[Path], cwd: Path, home: Path, *, forbid_sockets: bool = True, cache: str = "replay"
) -> subprocess.CompletedProcess:
    """Run nbval on `paths` as a different user on a different machine would."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MMLAB_") and k != "OPENROUTER_API_KEY"
    }
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "data"),
        MMLAB_CACHE=cache,
        MMLAB_DB=str(home / "replay.db"),
        IPYTHONDIR=str(home / "ipython"),
    )
    if forbid_sockets:
        startup = home / "ipython" / "profile_default" / "startup"
        startup.mkdir(parents=True, exist_ok=True)
        (startup / "00-no-sockets.py").write_text(NO_SOCKETS)
    return subprocess.run(
        nbval_command(*paths, extra=("--rootdir", str(cwd))),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


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


@pytest.mark.timeout(900)
def test_record_then_replay_in_a_fresh_clone(tmp_path):
    """`mmlab record` on the embedded model, then the pair reruns on another 'machine'."""
    nbdir = tmp_path / "machine-a"
    nbdir.mkdir()
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                'TAG = "tiny"\nBUNDLE = "tiny.bundle.jsonl.gz"\nMAX_TOKENS = 8',
                metadata={"tags": ["parameters"]},
            ),
            nbformat.v4.new_code_cell(
                "# NBVAL_CHECK_OUTPUT\nimport mmlab\nlab = mmlab.Lab(tag=TAG, bundle=BUNDLE, "
                "quiet=True)\nr = lab.chat('Say one word.', max_tokens=MAX_TOKENS, "
                "temperature=0.0, seed=3)\nprint(repr(r.content), r.usage.completion_tokens, "
                "MAX_TOKENS)"
            ),
        ]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, nbdir / "tiny.ipynb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMLAB_")}
    env.update(HOME=str(tmp_path / "home-a"), XDG_DATA_HOME=str(tmp_path / "home-a" / "data"))
    rec = subprocess.run(
        [sys.executable, "-m", "mmlab", "record", str(nbdir / "tiny.ipynb"), "-p", "MAX_TOKENS=5"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert rec.returncode == 0, rec.stderr[-3000:]
    assert "verified" in rec.stderr
    assert not list(nbdir.glob(".mmlab-record-*"))  # staging and kept calls both gone
    recorded = nbformat.read(nbdir / "tiny.ipynb", as_version=4)
    injected = recorded.cells[1]  # papermill injects the overrides after the parameters cell
    assert "injected-parameters" in injected.metadata.get("tags", [])
    printed = recorded.cells[2].outputs[0]["text"]
    assert printed.strip().endswith(" 5") and recorded.cells[2].execution_count == 3
    assert "papermill" not in json.dumps(recorded.metadata)

    clone = tmp_path / "machine-b" / "study"
    clone.mkdir(parents=True)
    for name in ("tiny.ipynb", "tiny.bundle.jsonl.gz"):
        shutil.copy(nbdir / name, clone)
    out = nbval([clone / "tiny.ipynb"], clone, tmp_path / "home-b")
    assert out.returncode == 0, out.stdout[-3000:]
