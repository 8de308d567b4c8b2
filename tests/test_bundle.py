"""Bundles: export exactly an analysis's calls, import idempotently, reject damage whole."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import FAKE_KEY, cache_rows

from mmlab import Lab
from mmlab.bundle import export_bundle, import_bundle, read_bundle
from mmlab.errors import BundleError
from mmlab.store import Store


@pytest.fixture
def bundle(lab, tmp_path):
    lab.chat("first", max_tokens=300, tag="study")
    lab.chat("first", max_tokens=300, tag="study")  # a hit: same entry, exported once
    lab.chat("second", max_tokens=300, tag="study", stream=True)
    lab.chat("unrelated", max_tokens=300, tag="other")
    path = tmp_path / "study.bundle.jsonl.gz"
    info = export_bundle(lab.engine.store, path, tag="study")
    assert info["count"] == 2
    return path


def test_export_holds_exactly_the_tagged_calls_and_no_secrets(bundle):
    entries = read_bundle(bundle)
    prompts = sorted(e["request"]["request"]["messages"][0]["content"] for e in entries)
    assert prompts == ["first", "second"]
    raw = gzip.decompress(bundle.read_bytes())
    assert FAKE_KEY.encode() not in raw and b"Authorization" not in raw


def test_export_is_byte_identical_for_the_same_calls(bundle, lab, tmp_path):
    again = tmp_path / "again.jsonl.gz"
    export_bundle(lab.engine.store, again, tag="study")
    assert again.read_bytes() == bundle.read_bytes()


def test_import_into_a_fresh_db_replays_and_is_idempotent(bundle, standin, tmp_path):
    other = tmp_path / "elsewhere.db"
    replay = Lab(base_url=standin.url, db=other, cache="replay", bundle=bundle, quiet=True)
    assert replay.chat("first", max_tokens=300).cache_hit
    assert replay.chat("second", max_tokens=300).cache_hit
    assert import_bundle(replay.engine.store, bundle) == {"count": 2, "added": 0}
    assert cache_rows(other) == 2


def _rewrite(path, transform):
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    path.write_bytes(gzip.compress(("\n".join(transform(lines)) + "\n").encode()))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "corrupt"),
        (
            lambda p: p.write_bytes(p.read_bytes()[:10] + b"\xff" * 8 + p.read_bytes()[18:]),
            "corrupt",
        ),
        (lambda p: _rewrite(p, lambda ls: ls[:-1]), "truncated"),
        (lambda p: _rewrite(p, lambda ls: ls[:2] + ls[3:]), "truncated"),
        (
            lambda p: _rewrite(
                p, lambda ls: [ls[0], ls[1].replace("The answer", "An answer"), *ls[2:]]
            ),
            "checksum",
        ),
        (
            lambda p: _rewrite(
                p, lambda ls: [ls[0].replace('"version": 1', '"version": 9'), *ls[1:]]
            ),
            "version 9",
        ),
        (lambda p: p.write_bytes(gzip.compress(b'{"hello": 1}\n')), "not an mmlab bundle"),
        (lambda p: p.write_bytes(b"plain text"), "corrupt"),
    ],
    ids=["cut", "garbled", "no-end", "missing-entry", "edited", "future", "foreign", "text"],
)
def test_damaged_bundles_are_rejected_whole(bundle, tmp_path, damage, message):
    damage(bundle)
    store = Store(tmp_path / "target.db")
    with pytest.raises(BundleError, match=message):
        import_bundle(store, bundle)
    assert cache_rows(store.path) == 0


def test_missing_bundle_is_a_clear_error(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        import_bundle(Store(tmp_path / "x.db"), tmp_path / "nope.jsonl.gz")


def test_cli_export_and_import(lab, standin, db, tmp_path):
    lab.chat("cli bundle", max_tokens=300, tag="nb")
    lab.close()
    out = tmp_path / "nb.bundle.jsonl.gz"
    run = [sys.executable, "-m", "mmlab", "bundle"]
    exported = subprocess.run(
        [*run, "export", "--notebook", "nb.ipynb", "-o", str(out), "--db", str(db)],
        capture_output=True,
        text=True,
    )
    assert exported.returncode == 0 and "wrote 1 cached calls" in exported.stdout
    target = tmp_path / "target.db"
    first = subprocess.run(
        [*run, "import", str(out), "--db", str(target)], capture_output=True, text=True
    )
    second = subprocess.run(
        [*run, "import", str(out), "--db", str(target)], capture_output=True, text=True
    )
    assert "imported 1 new of 1" in first.stdout and "imported 0 new of 1" in second.stdout
    out.write_bytes(out.read_bytes()[:-20])
    bad = subprocess.run(
        [*run, "import", str(out), "--db", str(tmp_path / "t2.db")], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "bundle" in bad.stderr


def test_export_since_holds_one_runs_calls_only(lab, tmp_path):
    lab.chat("earlier", max_tokens=300, tag="nb")
    lab.chat("also earlier", max_tokens=300, tag="nb")
    start = time.time()
    lab.chat("this run", max_tokens=300, tag="nb")
    assert lab.chat("earlier", max_tokens=300, tag="nb").cache_hit  # reused by this run
    path = tmp_path / "run.bundle.jsonl.gz"
    assert export_bundle(lab.engine.store, path, tag="nb", since=start)["count"] == 2
    prompts = sorted(e["request"]["request"]["messages"][0]["content"] for e in read_bundle(path))
    assert prompts == ["earlier", "this run"]
    assert export_bundle(lab.engine.store, tmp_path / "all.gz", tag="nb")["count"] == 3


@pytest.mark.slow
def test_the_readmes_script_route_runs_as_written(standin, tmp_path):
    """README, "Two routes to a bundle": a script's tag, exported, imported elsewhere and
    replayed offline — the commands exactly as the README prints them."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("**Two routes to a bundle", 1)[1].split("```bash\n", 1)[1]
    commands = [line.split("  #", 1)[0].strip() for line in block.split("```", 1)[0].splitlines()]
    script = "import mmlab\nlab = mmlab.Lab(tag='my-study', quiet=True)\n" \
             "print(lab.chat('What is 6 * 7?', max_tokens=300).content)\n" \
             "lab.sweep(['a', 'b'], mmlab.grid(max_tokens=[64, 128])).run(progress=False)\n"
    here, there = tmp_path / "here", tmp_path / "there"
    for machine in (here, there):
        machine.mkdir()
        (machine / "study.py").write_text(script)
    base = {k: v for k, v in os.environ.items() if not k.startswith("MMLAB_")}
    base["MMLAB_BASE_URL"] = standin.url

    def run(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        env = {**base, "MMLAB_DB": str(cwd / "mine.db")}
        words = command.split()
        while "=" in words[0]:
            name, value = words.pop(0).split("=", 1)
            env[name] = value
        program = [sys.executable] if words[0] == "python" else [sys.executable, "-m", "mmlab"]
        out = subprocess.run([*program, *words[1:]], cwd=cwd, env=env, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
        assert out.returncode == 0, (command, out.stderr[-2000:])
        return out

    first = run(commands[0], here)
    assert len(standin.seen) == 5
    assert "wrote 5 cached calls" in run(commands[1], here).stdout
    shutil.copy(here / "my-study.bundle.jsonl.gz", there)
    assert "imported 5 new of 5" in run(commands[2], there).stdout
    again = run(commands[3], there)  # replay: every answer from the bundle
    assert again.stdout == first.stdout and len(standin.seen) == 5
