"""The `mmlab` command, run as a real subprocess against the stand-in server."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from helpers import R1, run_mmlab

from mmlab import Lab
from mmlab.pricing import EMBEDDED


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


# --- a command line that teaches ----------------------------------------------------------------
def test_no_abbreviations_and_misspellings_get_the_subcommands_usage_and_a_hint(standin, db):
    base = ["chat", "hi", "--base-url", standin.url, "--db", str(db)]
    out = run_mmlab(*base, "--max-token", "300")  # once read silently as --max-tokens
    assert out.returncode == 2 and "usage: mmlab chat" in out.stderr
    assert "unrecognized arguments: --max-token 300" in out.stderr
    assert "did you mean '--max-tokens'" in out.stderr
    out = run_mmlab(*base, "--temprature", "0.5")
    assert out.returncode == 2 and "usage: mmlab chat" in out.stderr
    assert "did you mean '--temperature'?" in out.stderr and "usage: mmlab [-h]" not in out.stderr
    out = run_mmlab("bundle", "export", "--tg", "x")
    assert out.returncode == 2 and "usage: mmlab bundle export" in out.stderr
    assert "did you mean '--tag'?" in out.stderr
    out = run_mmlab(*base, "--temperature", "5")  # bad input the command finds: its usage too
    assert out.returncode == 2 and "usage: mmlab chat" in out.stderr
    assert "mmlab chat: error: temperature must be" in out.stderr
    assert standin.seen == []


def test_every_parser_refuses_abbreviations():
    import argparse

    from mmlab.cli import build_parser

    parsers, seen = [build_parser()], []
    while parsers:
        p = parsers.pop()
        seen.append(p.prog)
        assert p.allow_abbrev is False, p.prog
        for action in p._actions:  # noqa: SLF001 - argparse's own list of a parser's actions
            if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
                parsers += list(action.choices.values())
    assert {"mmlab", "mmlab chat", "mmlab bundle export", "mmlab bundle import"} <= set(seen)


def test_show_reasoning_prints_the_reasoning_itself(standin, db):
    base = ["chat", "Why is the sky blue?", "--base-url", standin.url, "--db", str(db),
            "--max-tokens", "300"]  # fmt: skip
    plain = run_mmlab(*base)
    assert "step0 step1" not in plain.stdout and "reasoning:" in plain.stdout  # its length
    shown = run_mmlab(*base, "--show-reasoning")
    assert shown.returncode == 0, shown.stderr
    assert "[reasoning]\nstep0 step1" in shown.stdout and "[answer]\nThe answer is" in shown.stdout
    streamed = run_mmlab(*base, "--show-reasoning", "--stream", "--sample", "1")
    assert "[reasoning]\nstep0" in streamed.stdout and "[answer]\nThe answer is" in streamed.stdout


def test_bundle_export_and_import_have_their_own_help():
    export = run_mmlab("bundle", "export", "--help")
    assert export.returncode == 0 and "usage: mmlab bundle export" in export.stdout
    assert "--allow-missing" in export.stdout and "bundle to import" not in export.stdout
    imp = run_mmlab("bundle", "import", "--help")
    assert imp.returncode == 0 and "usage: mmlab bundle import" in imp.stdout
    assert "bundle to import" in imp.stdout and "--allow-missing" not in imp.stdout


def test_read_only_commands_create_no_files(standin, tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    db = folder / "nothing-yet.db"
    sweep = folder / "s.yaml"
    sweep.write_text("prompts: [a, b]\nparams: {grid: {max_tokens: [64, 128]}}\n")
    bad = folder / "bad.bundle.jsonl.gz"
    bad.write_bytes(b"not a bundle")
    env = {"MMLAB_BASE_URL": standin.url}
    before = sorted(p.name for p in folder.iterdir())
    work_before = sorted(p.name for p in Path.cwd().iterdir())

    usage = run_mmlab("usage", "--db", str(db), env_extra=env)
    assert usage.returncode == 0 and "no database at" in usage.stdout
    plan = run_mmlab("sweep", str(sweep), "--plan", "--db", str(db), env_extra=env)
    assert plan.returncode == 0, plan.stderr
    assert "4 cells: 0 cached, 4 to call" in plan.stdout
    rejected = run_mmlab("bundle", "import", str(bad), "--db", str(db), env_extra=env)
    assert rejected.returncode == 2 and "is corrupt" in rejected.stderr
    stats = run_mmlab("cache", "stats", "--db", str(db), env_extra=env)
    assert stats.returncode == 0 and "no database at" in stats.stdout

    assert sorted(p.name for p in folder.iterdir()) == before
    assert sorted(p.name for p in Path.cwd().iterdir()) == work_before
    assert standin.seen == []


def test_usage_reprices_the_log_at_another_models_list_prices(standin, db):
    lab = Lab(base_url=standin.url, db=db, quiet=True)
    lab.chat("price me", max_tokens=300)
    assert lab.chat("price me", max_tokens=300).cache_hit
    lab.close()
    out = run_mmlab("usage", "--db", str(db), "--by", "model", "--reprice", R1)
    assert out.returncode == 0, out.stderr
    row = sqlite3.connect(db).execute(
        "SELECT prompt_tokens, completion_tokens FROM calls WHERE cache_status = 'miss'"
    ).fetchone()
    r1 = EMBEDDED[R1].cost(*row)
    assert "repriced_spent_usd" in out.stdout
    assert (f"at {R1} list prices (embedded:2026-11): the 1 calls sent would have cost "
            f"${r1:.4f}; the cache's 1 hits saved ${r1:.4f}") in out.stdout  # fmt: skip
    unknown = run_mmlab("usage", "--db", str(db), "--reprice", "deepseek/deepseek-r2")
    assert unknown.returncode == 2 and f"did you mean '{R1}'?" in unknown.stderr


@pytest.mark.slow
@pytest.mark.xdist_group("embedded")
def test_chat_on_the_free_local_model_says_what_it_would_cost_on_m1(db):
    out = run_mmlab("chat", "Say hi.", "--db", str(db), "--max-tokens", "8", "--temperature", "0")
    assert out.returncode == 0, out.stderr
    row = sqlite3.connect(db).execute(
        "SELECT prompt_tokens, completion_tokens FROM calls"
    ).fetchone()
    m1 = EMBEDDED["minimax/minimax-m1"].cost(*row)
    assert f"$0.000000 (local) ≈ ${m1:.6f} on minimax/minimax-m1" in out.stdout


def test_every_command_and_option_says_what_it_does():
    # a command line that teaches: `mmlab X --help` explains every argument it lists
    import argparse

    from mmlab.cli import build_parser

    def parsers(parser):
        yield parser.prog, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from parsers(sub)

    silent = [
        f"{prog} {'/'.join(a.option_strings) or a.dest}"
        for prog, parser in parsers(build_parser())
        for a in parser._actions
        if not isinstance(a, argparse._SubParsersAction) and not (a.help or "").strip()
    ]
    assert silent == []
