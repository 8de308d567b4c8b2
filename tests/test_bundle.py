"""Bundles: export exactly an analysis's calls, import idempotently, reject damage whole."""

from __future__ import annotations

import gzip
import subprocess
import sys

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
