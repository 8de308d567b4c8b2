"""The key never leaks: DB, bundles, logs, reprs, exceptions, tracebacks, notebook outputs.

The stand-in plays a careless upstream that echoes the rejected Authorization header in its
401 message, the worst case for an error path.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import traceback

import nbformat
import pytest
from helpers import FAKE_KEY, run_mmlab

from mmlab import Lab, RetryPolicy, grid
from mmlab.bundle import export_bundle
from mmlab.errors import APIError
from mmlab.testing import Fault


def _scan(path) -> None:
    for file in path.parent.glob(path.name + "*"):
        data = file.read_bytes()
        if file.suffix == ".gz":
            data = gzip.decompress(data)
        assert FAKE_KEY.encode() not in data, f"key found in {file}"


def test_key_appears_nowhere(standin, db, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", FAKE_KEY)
    lab = Lab(
        base_url=standin.url,
        api_key=FAKE_KEY,
        db=db,
        quiet=True,
        tag="secret",
        retry=RetryPolicy(max_retries=1, base_s=0.001),
    )
    assert standin.seen == [] and FAKE_KEY not in repr(lab) + repr(lab.endpoint) + str(lab)
    r = lab.chat("hello", max_tokens=50, stream=True)
    assert FAKE_KEY not in repr(r)
    standin.enqueue(Fault.http(401))
    with pytest.raises(APIError) as info:
        lab.chat("echo my key back", max_tokens=50)
    assert standin.seen[-1].authorized  # the key was sent, and the server echoed it back
    text = str(info.value) + repr(info.value) + "".join(traceback.format_exception(info.value))
    assert FAKE_KEY not in text and "[REDACTED]" in text
    lab.sweep(["a", "b"], grid(max_tokens=[30]), tag="sweep").run(progress=False)
    calls = lab.calls()
    assert not calls.astype(str).apply(lambda col: col.str.contains(FAKE_KEY)).any().any()
    export_bundle(lab.engine.store, tmp_path / "b.jsonl.gz", tag="secret")
    lab.close()
    _scan(db)
    _scan(tmp_path / "b.jsonl.gz")


def test_key_never_reaches_the_db_file(lab, standin, db):
    from mmlab.testing import Fault

    lab.chat("secret keeping", max_tokens=300, stream=True)
    standin.enqueue(Fault.http(401))
    with pytest.raises(Exception):  # noqa: B017 - any failure; we scan what it left behind
        lab.chat("denied", max_tokens=300)
    lab.close()
    for path in db.parent.glob(db.name + "*"):
        assert FAKE_KEY.encode() not in path.read_bytes()
    assert FAKE_KEY not in repr(lab) and FAKE_KEY not in repr(lab.endpoint)


def test_error_messages_never_carry_the_key(standin, db):
    lab = Lab(
        base_url=standin.url, api_key=FAKE_KEY, db=db, quiet=True, retry=RetryPolicy(max_retries=0)
    )
    standin.enqueue(Fault.http(401))
    with pytest.raises(APIError) as info:
        lab.chat("who", max_tokens=300)
    assert FAKE_KEY not in str(info.value) and FAKE_KEY not in repr(info.value)


def test_cli_output_never_shows_the_key(standin, db):
    env = {**os.environ, "OPENROUTER_API_KEY": FAKE_KEY}
    standin.enqueue(Fault.http(401))
    # --base-url with the env key: the key is *not* sent to a custom URL at all
    out = subprocess.run(
        [sys.executable, "-m", "mmlab", "chat", "hi", "--base-url", standin.url, "--db", str(db)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert FAKE_KEY not in out.stdout + out.stderr
    assert standin.seen[-1].authorized is False
    assert "invalid credentials: none" in out.stderr


def test_api_error_exits_1_without_the_key(standin, db):
    from mmlab.testing import Fault

    standin.enqueue(Fault.http(401))
    out = run_mmlab(
        "chat",
        "hi",
        "--base-url",
        standin.url,
        "--db",
        str(db),
        env_extra={"OPENROUTER_API_KEY": FAKE_KEY},
    )
    assert out.returncode == 1 and "401" in out.stderr
    assert FAKE_KEY not in out.stderr + out.stdout


@pytest.mark.notebook
@pytest.mark.timeout(600)
def test_executed_notebook_outputs_never_show_the_key(standin, tmp_path, monkeypatch):
    import papermill

    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(f"URL = {standin.url!r}", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(
                "import os, mmlab\n"
                "lab = mmlab.Lab(base_url=URL, api_key=os.environ['OPENROUTER_API_KEY'],\n"
                "                retry=mmlab.RetryPolicy(max_retries=0))\n"
                "print(repr(lab))\nlab"
            ),
            # the first request is rejected, and the server echoes the key in its message
            nbformat.v4.new_code_cell(
                "lab.chat('rejected', max_tokens=30)", metadata={"tags": ["raises-exception"]}
            ),
            nbformat.v4.new_code_cell("r = lab.chat('hi', max_tokens=30)\nprint(r)\nr"),
            nbformat.v4.new_code_cell("lab.calls()"),
        ]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    src, out = tmp_path / "leak.ipynb", tmp_path / "leak-out.ipynb"
    nbformat.write(nb, src)
    monkeypatch.setenv("OPENROUTER_API_KEY", FAKE_KEY)
    monkeypatch.setenv("MMLAB_DB", str(tmp_path / "nb.db"))
    standin.enqueue(Fault.http(401))
    # papermill runs every cell (the rejected one is tagged raises-exception), then reports it
    with pytest.raises(papermill.PapermillExecutionError):
        papermill.execute_notebook(str(src), str(out), kernel_name="python3", progress_bar=False)
    text = out.read_text()
    executed = nbformat.read(out, as_version=4)
    assert "call_id" in json.dumps(executed.cells[-1].outputs)  # the last cell ran
    assert "APIError" in text and "invalid credentials" in text  # the rejection is shown
    assert standin.seen[0].authorized and len(standin.seen) == 2
    assert FAKE_KEY not in text
