"""The `mmlab` command, run as a real subprocess against the stand-in server."""

from __future__ import annotations

import subprocess
import sys

from conftest import FAKE_KEY


def mmlab(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "mmlab", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_chat_miss_then_free_hit(standin, db):
    args = [
        "chat",
        "What is 6 * 7?",
        "--base-url",
        standin.url,
        "--db",
        str(db),
        "--max-tokens",
        "300",
        "--temperature",
        "0.2",
    ]
    first = mmlab(*args)
    assert first.returncode == 0, first.stderr
    assert "The answer is" in first.stdout and "cache miss" in first.stdout
    assert "reasoning:" in first.stdout and "tokens" in first.stdout
    second = mmlab(*args)
    assert "cache hit — spent $0" in second.stdout
    assert len(standin.seen) == 1
    usage = mmlab("usage", "--db", str(db), "--by", "model")
    assert "minimax/minimax-m1" in usage.stdout and " 2 " in usage.stdout


def test_chat_streams_with_effort(standin, db):
    out = mmlab(
        "chat",
        "stream it",
        "--base-url",
        standin.url,
        "--db",
        str(db),
        "--stream",
        "--effort",
        "high",
        "--max-tokens",
        "300",
    )
    assert out.returncode == 0 and "The answer is" in out.stdout
    assert standin.seen[0].body["reasoning"] == {"effort": "high"}


def test_bad_input_exits_2_and_sends_nothing(standin, db):
    out = mmlab("chat", "hi", "--base-url", standin.url, "--db", str(db), "--temperature", "5")
    assert out.returncode == 2 and "temperature must be a number in [0, 2]" in out.stderr
    out = mmlab("chat", "hi", "--base-url", "notaurl", "--db", str(db))
    assert out.returncode == 2 and "base_url" in out.stderr
    assert standin.seen == []


def test_api_error_exits_1_without_the_key(standin, db):
    from mmlab.testing import Fault

    standin.enqueue(Fault.http(401))
    out = mmlab(
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


def test_cache_stats_and_clear(standin, db):
    mmlab("chat", "cache me", "--base-url", standin.url, "--db", str(db), "--tag", "x")
    stats = mmlab("cache", "stats", "--db", str(db))
    assert "1 entries" in stats.stdout
    assert mmlab("cache", "clear", "--db", str(db)).returncode == 2
    cleared = mmlab("cache", "clear", "--db", str(db), "--tag", "x")
    assert "cleared 1" in cleared.stdout
    assert "0 entries" in mmlab("cache", "stats", "--db", str(db)).stdout
