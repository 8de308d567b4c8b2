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

from mmlab import Lab
from mmlab.bundle import read_bundle
from mmlab.record import bundle_path


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


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_record_logs_to_the_users_database_and_reuses_its_cache(tmp_path, standin):
    """Live calls land in the user's database (usage, budgets), cached ones are reused,
    ``--refresh`` makes them afresh, and the bundle holds exactly this run's calls."""
    nbdir = tmp_path / "study"
    nbdir.mkdir()
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                'TAG = "tiny"\nBUNDLE = "tiny.bundle.jsonl.gz"', metadata={"tags": ["parameters"]}
            ),
            nbformat.v4.new_code_cell(
                "# NBVAL_CHECK_OUTPUT\nimport mmlab\nlab = mmlab.Lab(tag=TAG, bundle=BUNDLE, "
                "quiet=True)\nr = lab.chat('Say one word.', max_tokens=40, temperature=0.0)\n"
                "print(r.content)"
            ),
        ]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    path = nbdir / "tiny.ipynb"
    nbformat.write(nb, path)
    users = tmp_path / "mine.db"
    # a script's call under the same tag, earlier: in the log, never in the notebook's bundle
    script = Lab(base_url=standin.url, db=users, tag="tiny", quiet=True)
    script.chat("Something else entirely.", max_tokens=40)
    script.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMLAB_")}
    env.update(MMLAB_DB=str(users), MMLAB_BASE_URL=standin.url)

    def record(*extra: str) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([sys.executable, "-m", "mmlab", "record", str(path), *extra],
                             capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        assert "verified" in out.stderr
        return out

    first = record()
    assert "1 live calls, $0.0" in first.stderr and len(standin.seen) == 2
    assert len(read_bundle(bundle_path(path))) == 1  # the notebook's call, not the script's
    usage = subprocess.run([sys.executable, "-m", "mmlab", "usage", "--by", "tag"],
                           capture_output=True, text=True, env=env)  # fmt: skip
    assert "tiny" in usage.stdout and " 2 " in usage.stdout  # the script's call, the live one
    again = record()  # served from the user's cache: nothing sent, the same answer recorded
    assert "0 live calls, $0.0000" in again.stderr and len(standin.seen) == 2
    assert len(read_bundle(bundle_path(path))) == 1
    fresh = record("--refresh")  # forgets the tag's cached answers (the script's too)
    assert "forgot 2 cached answer(s) of tag 'tiny'" in fresh.stderr
    assert "1 live calls" in fresh.stderr and len(standin.seen) == 3
    assert len(read_bundle(bundle_path(path))) == 1
    # answers imported from bundles never answer a recording, even with trust in the shell
    other = tmp_path / "other.db"
    subprocess.run([sys.executable, "-m", "mmlab", "bundle", "import", str(bundle_path(path)),
                    "--db", str(other)], env=env, check=True, capture_output=True)  # fmt: skip
    env.update(MMLAB_DB=str(other), MMLAB_TRUST_IMPORTS="1")
    imported = record()
    assert "1 live calls" in imported.stderr and len(standin.seen) == 4
    assert not list(nbdir.glob(".mmlab-record-*"))
