"""Trust around files: what a hostile sweep file can reach and send, how big a sweep may
grow, and what a planted symlink can redirect. Each test closes one hole a red-team review
found (12: a sweep file sending local files to its own server; 13: a sweep size ending in a
MemoryError; 14: writes through a symlink planted at a temporary name)."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from mmlab import grid, random_
from mmlab.bundle import export_bundle, read_bundle
from mmlab.cli import main
from mmlab.errors import ConfigError, RequestError
from mmlab.store.files import private_dir, replace_atomically
from mmlab.sweep import load_sweep_file
from mmlab.sweep.cells import MAX_CELLS
from mmlab.testing import StandIn

PRIVATE = "id,prompt\nssn,Alice's social security number is 078-05-1120\n"


def _sweep(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    """`mmlab sweep ...` as a user runs it from a script: stdin is not a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "mmlab", "sweep", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env={**os.environ, **env},
    )


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A private table outside the folder the hostile sweep file lives in."""
    home = tmp_path / "private"
    home.mkdir()
    (home / "patients.csv").write_text(PRIVATE)
    return home / "patients.csv"


def _evil(folder: Path, url: str, prompts_file: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "evil.yaml"
    path.write_text(f"base_url: {url}\nprompts_file: {prompts_file}\nrepeats: 1\n")
    return path


# --- 12: a hostile sweep file ---------------------------------------------------------------
def test_12_a_sweep_file_cannot_read_files_outside_its_folder(tmp_path, victim, standin):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "data.csv").symlink_to(victim)
    db = tmp_path / "x.db"
    cases = {
        str(victim): "is an absolute path",
        "../private/patients.csv": "leaves the folder with '..'",
        "data.csv": "symlink that points outside",
    }
    for given, why in cases.items():
        evil = _evil(downloads, standin.url, given)
        with pytest.raises(ConfigError, match="only read files inside its own folder") as info:
            load_sweep_file(evil)
        assert why in str(info.value)
        # refused even when the user says yes to the endpoint: the path is the problem
        out = _sweep(str(evil), "--db", str(db), "--yes")
        assert out.returncode == 2, out.stderr
        assert why in out.stderr and "--allow-outside-paths" in out.stderr
        assert "Traceback" not in out.stderr and "078-05-1120" not in out.stdout + out.stderr
    assert standin.seen == [] and not db.exists()
    # a file beside the sweep file (even through a symlink that stays inside) is fine
    (downloads / "inside").mkdir()
    (downloads / "inside" / "q.csv").write_text("prompt\nWhat is 2+2?\n")
    (downloads / "q-link.csv").symlink_to(downloads / "inside" / "q.csv")
    for given in ("inside/q.csv", "q-link.csv", "inside/../inside/q.csv"):
        spec = load_sweep_file(_evil(downloads, standin.url, given))
        assert spec["prompts_file"] == str((downloads / "inside" / "q.csv").resolve())
    # the user's explicit allowance (CLI flag, loader keyword) lets a trusted file through
    evil = _evil(downloads, standin.url, str(victim))
    assert load_sweep_file(evil, allow_outside_paths=True)["prompts_file"] == str(victim.resolve())
    out = _sweep(str(evil), "--db", str(db), "--yes", "--allow-outside-paths")
    assert out.returncode == 0, out.stderr
    assert len(standin.seen) == 1


def test_12_a_sweep_file_that_names_its_endpoint_sends_nothing_without_yes(tmp_path, standin):
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "q.csv").write_text(PRIVATE)
    evil = _evil(folder, standin.url, "q.csv")
    db = tmp_path / "x.db"
    refused = _sweep(str(evil), "--db", str(db))
    assert refused.returncode == 2, refused.stderr
    assert standin.url in refused.stderr and "chooses its own endpoint" in refused.stderr
    assert "pass --yes" in refused.stderr and "Nothing was sent" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert standin.seen == [] and not db.exists()
    # --plan sends nothing, so it only announces the endpoint
    plan = _sweep(str(evil), "--db", str(db), "--plan")
    assert plan.returncode == 0, plan.stderr
    assert "chooses its own endpoint" in plan.stderr and "1 cells" in plan.stdout
    assert standin.seen == []
    sent = _sweep(str(evil), "--db", str(db), "--yes")
    assert sent.returncode == 0, sent.stderr
    assert standin.url in sent.stderr and "chooses its own endpoint" in sent.stderr
    assert len(standin.seen) == 1
    assert "078-05-1120" in standin.seen[0].body["messages"][-1]["content"]  # what --yes sent
    # no key goes to a server a file chose (the key policy, unchanged)
    with StandIn() as other:
        evil = _evil(folder, other.url, "q.csv")
        keyed = _sweep(str(evil), "--db", str(db), "--yes", OPENROUTER_API_KEY="sk-or-v1-x" * 4)
        assert keyed.returncode == 0, keyed.stderr
        assert "no API key goes with them" in keyed.stderr
        assert len(other.seen) == 1 and not other.seen[0].authorized


def test_12_at_a_terminal_the_user_is_asked_and_no_means_nothing_is_sent(
    tmp_path, standin, monkeypatch, capsys
):
    evil = tmp_path / "evil.yaml"
    evil.write_text(f"base_url: {standin.url}\nprompts: [hello]\n")
    db = tmp_path / "x.db"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    assert main(["sweep", str(evil), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert f"Send the prompts to {standin.url}? [y/N]" in err and "not confirmed" in err
    assert standin.seen == [] and not db.exists()
    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    assert main(["sweep", str(evil), "--db", str(db)]) == 0
    assert len(standin.seen) == 1


def test_12_a_password_in_a_sweep_files_base_url_is_refused_before_it_is_announced(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("base_url: http://user:hunter2@127.0.0.1:9/v1\nprompts: [hi]\n")
    out = _sweep(str(evil), "--db", str(tmp_path / "x.db"), "--yes")
    assert out.returncode == 2 and "credentials" in out.stderr
    assert "hunter2" not in out.stdout + out.stderr


# --- 13: the size of a sweep ----------------------------------------------------------------
def test_13_a_huge_sweep_is_refused_before_any_cell_is_built(lab, standin, tmp_path):
    started = time.perf_counter()
    with pytest.raises(RequestError) as info:
        lab.sweep(["a", "b"], grid(temperature=[0.0, 1.0]), repeats=100_000_000)
    text = str(info.value)
    assert info.value.field == "repeats"
    assert "repeats" in text and "400,000,000 cells" in text and "MMLAB_SWEEP_MAX_CELLS" in text
    assert f"{MAX_CELLS:,}" in text
    # a space too big to list is counted, not listed: 10**20 points
    with pytest.raises(RequestError, match="100,000,000,000,000,000,000 cells"):
        lab.sweep(["a"], grid(**{"seed": list(range(100))}) * random_(n=10**18, top_k=[0, 1]))
    assert time.perf_counter() - started < 2.0
    huge = tmp_path / "huge.yaml"
    huge.write_text(f"base_url: {standin.url}\nprompts: [a, b]\nrepeats: 100000000\n")
    for flags in (["--plan"], ["--yes"]):
        out = _sweep(str(huge), "--db", str(tmp_path / "x.db"), *flags)
        assert out.returncode == 2, out.stderr
        assert "repeats" in out.stderr and "200,000,000 cells" in out.stderr
        assert "MemoryError" not in out.stderr and "Traceback" not in out.stderr
    assert standin.seen == []


def test_13_the_limit_can_be_raised_or_lowered_on_purpose(lab, monkeypatch):
    monkeypatch.setenv("MMLAB_SWEEP_MAX_CELLS", "10")
    with pytest.raises(RequestError, match="12 cells .* over the limit of 10"):
        lab.sweep(["a", "b"], grid(temperature=[0.0, 1.0]), repeats=3)
    assert len(lab.sweep(["a", "b"], grid(temperature=[0.0, 1.0]), repeats=2)) == 8
    monkeypatch.setenv("MMLAB_SWEEP_MAX_CELLS", "lots")
    with pytest.raises(ConfigError, match="MMLAB_SWEEP_MAX_CELLS"):
        lab.sweep(["a"], None)


def test_13_a_normal_sweep_still_builds_fast(lab):
    prompts = [f"question {i}" for i in range(100)]
    space = grid(temperature=[0.0, 0.5, 1.0, 1.5], max_tokens=[64, 128, 256, 512, 1024])
    started = time.perf_counter()
    sweep = lab.sweep(prompts, space, repeats=5)
    took = time.perf_counter() - started
    assert len(sweep) == 10_000 and len(space) == 20
    assert took < 10.0, f"10,000 cells took {took:.2f} s to build"


# --- 14: writes beside a target -------------------------------------------------------------
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_14_bundle_export_cannot_be_redirected_by_a_planted_symlink(lab, tmp_path):
    lab.chat("hello", max_tokens=50, tag="s")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    shared = tmp_path / "shared"
    shared.mkdir()
    out = shared / "s.bundle.jsonl.gz"
    (shared / "s.bundle.jsonl.gz.part").symlink_to(victim)  # the old temporary name
    info = export_bundle(lab.engine.store, out, tag="s")
    assert victim.read_text() == "precious"
    assert info["count"] == 1 and len(read_bundle(out)) == 1 and _mode(out) == 0o600
    assert (shared / "s.bundle.jsonl.gz.part").is_symlink()  # untouched, not written through
    # a link planted at the target itself is replaced by the bundle, never written through
    out.unlink()
    out.symlink_to(victim)
    result = subprocess.run(
        [sys.executable, "-m", "mmlab", "bundle", "export", "--tag", "s", "-o", str(out),
         "--db", str(lab.db)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert victim.read_text() == "precious"
    assert not out.is_symlink() and len(read_bundle(out)) == 1
    assert sorted(p.name for p in shared.iterdir()) == [out.name, out.name + ".part"]


def test_14_files_are_written_whole_through_a_fresh_private_name(tmp_path, monkeypatch):
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "out.bin"
    made: list[tuple[str, int]] = []
    real_open = os.open

    def watch(path, flags, mode=0o777, *args, **kwargs):  # type: ignore[no-untyped-def]
        made.append((str(path), flags))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", watch)
    with replace_atomically(target) as f:
        f.write(b"whole")
    monkeypatch.undo()
    temp = [(p, fl) for p, fl in made if Path(p).parent == folder]
    assert len(temp) == 1 and temp[0][0] != str(target) + ".part"
    assert temp[0][1] & os.O_EXCL and temp[0][1] & os.O_CREAT and temp[0][1] & os.O_NOFOLLOW
    assert target.read_bytes() == b"whole" and _mode(target) == 0o600
    # an error leaves the old file and no temporary behind
    with pytest.raises(RuntimeError), replace_atomically(target) as f:
        f.write(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"whole" and os.listdir(folder) == ["out.bin"]


def test_14_the_model_hash_memo_cannot_be_redirected(tmp_path, monkeypatch):
    from mmlab.config import data_dir
    from mmlab.endpoints.gguf import file_sha256

    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 100)
    folder = data_dir()
    folder.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (folder / f"gguf-sha256.{os.getpid()}.tmp").symlink_to(victim)  # the old temporary name
    digest = file_sha256(model)
    assert victim.read_text() == "precious"
    memo = folder / "gguf-sha256.json"
    assert not memo.is_symlink() and digest in json.loads(memo.read_text()).values()


def test_14_record_refuses_a_resume_folder_someone_planted(tmp_path, standin, monkeypatch):
    study = tmp_path / "study"
    study.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
    path = study / "n.ipynb"
    nbformat.write(nb, path)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (study / ".mmlab-record-n.resume").symlink_to(theirs, target_is_directory=True)
    monkeypatch.setenv("MMLAB_BASE_URL", standin.url)
    from mmlab.record import record_notebook

    with pytest.raises(ConfigError, match="is a symlink"):
        record_notebook(path)
    assert list(theirs.iterdir()) == [] and standin.seen == []
    assert sorted(p.name for p in study.iterdir()) == [".mmlab-record-n.resume", "n.ipynb"]
    # a real folder open to others is refused too; a private one of ours is used
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    loose.chmod(0o777)
    with pytest.raises(ConfigError, match="not a private folder"):
        private_dir(loose)
    mine = private_dir(tmp_path / "mine")
    assert _mode(mine) == 0o700 and private_dir(mine) == mine


def test_the_readme_says_what_a_sweep_file_may_reach():
    """The README's "Sweep files" and threat model say what 12 and 13 now enforce."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Sweep files", 1)[1].split("\n## ", 1)[0]
    assert "--yes" in section and "--allow-outside-paths" in section
    assert "MMLAB_SWEEP_MAX_CELLS" in section
    threat = readme.split("### Threat model", 1)[1].split("\n## ", 1)[0]
    assert "outside its folder" in threat and "--yes" in threat
