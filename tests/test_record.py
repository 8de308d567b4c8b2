"""Re-recording notebooks (`mmlab record`): record on the embedded model, then replay the pair
on another machine. (A recording that does not replay is test_trust.py's #13.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import nbformat
import pytest
from helpers import nbval


@pytest.mark.notebook
@pytest.mark.xdist_group("embedded")
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
