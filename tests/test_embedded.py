"""The embedded model, live (`mmlab.endpoints.embedded` and its llama.cpp server): a real
server on loopback running SmolLM2-135M."""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import threading

import httpx
import pytest

from mmlab import Lab
from mmlab.endpoints.gguf import model_path
from mmlab.endpoints.llama_process import LocalServer, server_for
from mmlab.endpoints.thinking import wants_reasoning
from mmlab.errors import CacheMiss, LocalModelError
from mmlab.pricing import reprice

#: One llama.cpp server at a time under `make test-fast`: these tests share one worker.
pytestmark = pytest.mark.xdist_group("embedded")


def _wait_for_exit(pid: int, timeout: float = 30.0) -> bool:
    """Block until `pid` exits (a pidfd becomes readable), or the timeout passes."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


def test_plain_and_streamed_calls_log_full_counts(local_lab):
    r = local_lab.chat("Name three fruits.", max_tokens=24, temperature=0.0, seed=7)
    assert r.content.strip() and r.reasoning == "" and r.reasoning_mode == "none"
    assert r.model == "smollm2-135m-instruct" and r.provider == "llama.cpp"
    assert r.cost_usd == 0.0 and r.cost_source == "local"
    deltas = []
    s = local_lab.chat(
        "Name three colours.",
        max_tokens=24,
        temperature=0.0,
        seed=7,
        stream=True,
        on_delta=deltas.append,
    )
    assert s.content and "".join(t for k, t in deltas if k == "content") == s.content
    assert s.ttft_s is not None and s.ttft_s < s.latency_s
    df = local_lab.calls()
    cols = ["prompt_tokens", "completion_tokens", "cost_usd", "latency_s"]
    assert df[cols].notna().all().all(), "the log must have no holes"
    assert (df["prompt_tokens"] > 0).all() and (df["completion_tokens"] > 0).all()
    assert set(df["cost_source"]) == {"local"}
    # "what this would cost on M1": re-pricing works on local calls
    assert (reprice(df, "minimax/minimax-m1") > 0).all()


def test_prompted_thinking_fills_reasoning(local_lab):
    q = "Tom has 4 pens and gets 3 more. How many pens does he have?"
    r = local_lab.chat(q, reasoning={"enabled": True}, max_tokens=300, temperature=0.0, seed=1)
    assert r.reasoning_mode == "prompted"
    assert r.reasoning and r.usage.reasoning_tokens > 0
    assert "<think>" not in r.content and "<think>" not in r.reasoning
    assert r.usage.completion_tokens >= r.usage.reasoning_tokens
    s = local_lab.chat(
        q,
        reasoning={"enabled": True},
        max_tokens=300,
        temperature=0.0,
        seed=1,
        stream=True,
        sample=1,
    )
    assert (s.reasoning, s.content) == (r.reasoning, r.content)
    assert s.usage.reasoning_tokens == r.usage.reasoning_tokens


def test_thinking_can_eat_the_whole_budget(local_lab):
    r = local_lab.chat(
        "Explain in detail how rainbows form.",
        reasoning={"enabled": True},
        max_tokens=6,
        temperature=0.0,
        seed=1,
    )
    assert r.truncated and r.finish_reason == "length" and r.content == ""
    assert r.usage.reasoning_tokens > 0


def test_effort_bounds_thinking_then_answers(local_lab):
    r = local_lab.chat(
        "Explain in detail how rainbows form.",
        reasoning={"effort": "low"},
        max_tokens=60,
        temperature=0.0,
        seed=1,
    )
    assert r.usage.reasoning_tokens <= 13  # low = 20% of 60, +1 for re-tokenisation
    assert r.content.strip()


def test_a_call_with_top_logprobs_stores_token_confidences(local_lab):
    from mmlab.confidence import decode

    assert local_lab.endpoint.capabilities.logprobs
    ask = {"max_tokens": 6, "temperature": 0.0, "seed": 3, "logprobs": True, "top_logprobs": 3}
    plain = local_lab.chat("What is 2 + 3?", **ask)
    series = decode(plain.confidence)
    # one confidence per generated token (the chat route), each -mean of 3 log-probabilities
    assert len(series) == plain.usage.completion_tokens and (series > 0).all()
    assert 0 < plain.trace_confidence.lowest <= plain.trace_confidence.mean
    hit = local_lab.chat("What is 2 + 3?", **ask)
    assert hit.cache_hit and hit.confidence == plain.confidence
    assert local_lab.chat("What is 2 + 3?", max_tokens=6, seed=3).confidence is None


@pytest.mark.slow  # llama-cpp-python's completion route normalises its whole logit buffer
def test_prompted_thinking_with_top_logprobs_joins_its_phases_confidences(local_lab):
    from mmlab.confidence import decode

    ask = {"max_tokens": 8, "temperature": 0.0, "seed": 3, "logprobs": True, "top_logprobs": 3}
    thought = local_lab.chat("What is 2 + 3?", reasoning={"max_tokens": 4}, **ask)
    assert thought.reasoning_mode == "prompted" and thought.usage.reasoning_tokens > 0
    # the think and answer phases' generated tokens, in order (re-tokenising the joined text
    # may count one or two tokens differently)
    assert abs(len(decode(thought.confidence)) - thought.usage.completion_tokens) <= 2


def test_no_reasoning_request_passes_prompts_untouched():
    assert not wants_reasoning({"messages": []})
    assert not wants_reasoning({"reasoning": {"effort": "none"}})
    assert not wants_reasoning({"reasoning": {"enabled": False}})
    assert wants_reasoning({"reasoning": {}})


def test_server_is_shared_and_key_has_no_port(local_lab, db):
    local_lab.chat("hi", max_tokens=4)
    other = Lab(db=db, quiet=True)
    other.chat("hello", max_tokens=4)
    assert other.endpoint.server is local_lab.endpoint.server
    assert local_lab.endpoint.server.starts == 1
    call = other.engine.prepare("hi", max_tokens=4)
    assert str(local_lab.endpoint.server.port) not in call.material["endpoint"]
    assert call.material["endpoint"].startswith("local:smollm2-135m-instruct@sha256:")


def test_crashed_server_restarts_once_then_fails_clearly(local_lab, tmp_path):
    local_lab.chat("before the crash", max_tokens=4)
    server = local_lab.endpoint.server
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait()
    r = local_lab.chat("after the crash", max_tokens=4)
    assert r.content is not None and server.starts == 2
    # a server that cannot come back is a clear error, not a hang
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    dead = LocalServer(broken, "broken")
    with pytest.raises(LocalModelError, match="did not start"):
        dead.ensure()
    assert not dead.alive()


def test_a_starting_server_is_not_ready_until_its_port_is_known(tmp_path):
    # Another task checking the server while it starts must not be handed a URL without a
    # port (seen as "Invalid port: 'None'" when concurrent calls met a (re)starting server).
    mine = tmp_path / "Starting-Server.gguf"
    shutil.copy(model_path(), mine)
    server = LocalServer(mine, "starting-server")
    thread = threading.Thread(target=server.ensure)
    thread.start()
    seen_starting = False
    while thread.is_alive():  # watch the start from outside its lock, as another task would
        if server.alive() and not server.ready():
            seen_starting = True
        if server.ready():
            assert server.port is not None and server.url.endswith(f":{server.port}/v1")
    thread.join()
    try:
        assert seen_starting and server.ready() and server.starts == 1
    finally:
        server.stop()


def test_custom_gguf_swaps_the_model(tmp_path, monkeypatch, db):
    mine = tmp_path / "My-Tiny-Model.gguf"
    shutil.copy(model_path(), mine)
    monkeypatch.setenv("MMLAB_LOCAL_MODEL", str(mine))
    lab = Lab(db=db, quiet=True)
    assert lab.model == "my-tiny-model"
    r = lab.chat("hi", max_tokens=4)
    assert r.model == "my-tiny-model" and str(mine) not in repr(r)
    assert lab.endpoint.server is server_for(mine, "my-tiny-model")
    monkeypatch.setenv("MMLAB_LOCAL_MODEL", str(tmp_path / "missing.gguf"))
    with pytest.raises(LocalModelError, match="not a file"):
        Lab(db=db, quiet=True)


def test_replay_never_starts_the_server(db):
    live = Lab(db=db, quiet=True)
    live.chat("record me", max_tokens=4, temperature=0.0)
    path = model_path()
    # a fresh process: replay from the same db, no server may start
    code = textwrap.dedent(f"""
        from mmlab import Lab
        from mmlab.errors import CacheMiss
        lab = Lab(db={str(db)!r}, cache="replay", quiet=True)
        r = lab.chat("record me", max_tokens=4, temperature=0.0)
        assert r.cache_hit
        try:
            lab.chat("never recorded", max_tokens=4)
        except CacheMiss:
            pass
        from mmlab.endpoints.llama_process import _SERVERS
        assert all(s.proc is None for s in _SERVERS.values()), "server started"
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
    assert path.exists()
    with pytest.raises(CacheMiss):
        Lab(db=db, cache="replay", quiet=True).chat("also never recorded", max_tokens=4)


@pytest.mark.slow
def test_child_process_is_gone_after_exit_and_after_sigkill(db):
    code = textwrap.dedent(f"""
        import os, sys
        from mmlab import Lab
        lab = Lab(db={str(db)!r}, quiet=True, cache="off")
        lab.chat("hi", max_tokens=2)
        print(lab.endpoint.server.proc.pid, flush=True)
        if sys.argv[1] == "hang":
            sys.stdin.read()
    """)
    clean = subprocess.run(
        [sys.executable, "-c", code, "exit"], capture_output=True, text=True, timeout=120
    )
    assert _wait_for_exit(int(clean.stdout.strip()))
    parent = subprocess.Popen(
        [sys.executable, "-c", code, "hang"],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )
    child = int(parent.stdout.readline())
    os.kill(child, 0)  # running
    parent.kill()  # SIGKILL: no atexit; PR_SET_PDEATHSIG must take the server down
    parent.wait()
    assert _wait_for_exit(child)


def test_server_outlives_the_thread_and_loop_that_started_it(db):
    # The server is spawned from a worker thread of an event loop that then closes; it must
    # stay up for the next call (it is tied to the process, not to that thread).
    lab = Lab(db=db, quiet=True, cache="off")
    asyncio.run(lab.achat("first", max_tokens=2))
    server = lab.endpoint.server
    pid, starts = server.proc.pid, server.starts
    lab.chat("second", max_tokens=2)
    assert server.alive() and server.proc.pid == pid and server.starts == starts


def test_settings_in_the_environment_do_not_hijack_the_server(db):
    # llama.cpp's server reads PORT, HOST, MODEL, API_KEY... from the environment; `make lab
    # PORT=8888` exports PORT. The embedded server must ignore them.
    code = textwrap.dedent(f"""
        from mmlab import Lab
        lab = Lab(db={str(db)!r}, quiet=True, cache="off")
        r = lab.chat("hello", max_tokens=3)
        print(lab.endpoint.server.port, r.usage.completion_tokens)
    """)
    env = {
        **os.environ,
        "PORT": "1",
        "HOST": "0.0.0.0",
        "MODEL": "/nope.gguf",
        "API_KEY": "would-lock-us-out",
        "N_CTX": "bogus",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    port, tokens = out.stdout.split()
    assert port != "1" and int(tokens) > 0


def test_serve_local_runs_in_the_foreground():
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmlab", "serve-local"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert "serving smollm2-135m-instruct" in proc.stdout.readline()
        url = proc.stdout.readline().split()[-1]  # printed once the socket is bound
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        deadline_polls = 600
        for _ in range(deadline_polls):
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if _wait_for_exit(proc.pid, 0.1):
                    pytest.fail("serve-local exited")
        data = httpx.get(f"{url}/models", timeout=5).json()
        assert data["data"][0]["id"] == "smollm2-135m-instruct"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # serve-local *is* the server (exec), so stopping it leaves nothing listening behind
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/models", timeout=2)


def test_budget_forcing_wait_extends_thinking(local_lab):
    """s1's budget forcing: each Wait suppresses the end of thinking once more, so the thought
    grows, and each run's thought begins with the shorter one's (greedy decoding)."""
    runs = [
        local_lab.chat("What is 7 + 5?", reasoning={"wait": k}, max_tokens=600,
                       temperature=0.0, seed=1)  # fmt: skip
        for k in (0, 1, 2, 4)
    ]
    tokens = [r.usage.reasoning_tokens for r in runs]
    assert tokens[0] < tokens[1] < tokens[2] < tokens[3], tokens
    for shorter, longer in zip(runs, runs[1:], strict=False):
        assert longer.reasoning.startswith(shorter.reasoning.rstrip())
    assert "\nWait" not in runs[0].reasoning and runs[1].reasoning.count("\nWait") >= 1
    assert all(r.reasoning_mode == "prompted" and r.content for r in runs)


def test_reasoning_max_tokens_stops_thinking_exactly(local_lab):
    r = local_lab.chat("Explain photosynthesis in detail.", reasoning={"max_tokens": 16},
                       max_tokens=100, temperature=0.0, seed=1)  # fmt: skip
    assert r.usage.reasoning_tokens == 16
    assert r.content  # the answer was forced after the cut
