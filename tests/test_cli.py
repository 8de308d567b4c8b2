"""The `mmlab` command, run as a real subprocess against the stand-in server."""

from __future__ import annotations

from helpers import run_mmlab


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
    first = run_mmlab(*args)
    assert first.returncode == 0, first.stderr
    assert "The answer is" in first.stdout and "cache miss" in first.stdout
    assert "reasoning:" in first.stdout and "tokens" in first.stdout
    second = run_mmlab(*args)
    assert "cache hit — spent $0" in second.stdout
    assert len(standin.seen) == 1
    usage = run_mmlab("usage", "--db", str(db), "--by", "model")
    assert "minimax/minimax-m1" in usage.stdout and " 2 " in usage.stdout


def test_chat_streams_with_effort(standin, db):
    out = run_mmlab(
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
    out = run_mmlab("chat", "hi", "--base-url", standin.url, "--db", str(db), "--temperature", "5")
    assert out.returncode == 2 and "temperature must be a number in [0, 2]" in out.stderr
    out = run_mmlab("chat", "hi", "--base-url", "notaurl", "--db", str(db))
    assert out.returncode == 2 and "base_url" in out.stderr
    assert standin.seen == []


def test_cache_stats_and_clear(standin, db):
    run_mmlab("chat", "cache me", "--base-url", standin.url, "--db", str(db), "--tag", "x")
    stats = run_mmlab("cache", "stats", "--db", str(db))
    assert "1 entries" in stats.stdout
    assert run_mmlab("cache", "clear", "--db", str(db)).returncode == 2
    cleared = run_mmlab("cache", "clear", "--db", str(db), "--tag", "x")
    assert "cleared 1" in cleared.stdout
    assert "0 entries" in run_mmlab("cache", "stats", "--db", str(db)).stdout
