"""Sweep files (`mmlab.sweep.files`): YAML and TOML run by the `mmlab sweep` command, with
models, providers and stopping rules."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from helpers import ARM_QUESTIONS, M1, R1, ROUTE_PROMPTS

from mmlab import stop
from mmlab.errors import MmlabError
from mmlab.sweep import load_sweep_file, stop_from_spec, sweep_from_spec
from mmlab.testing import gold_answer


def test_sweep_file_and_cli(standin, db, tmp_path):
    (tmp_path / "s.yaml").write_text(
        textwrap.dedent(f"""
        base_url: {standin.url}
        tag: from-yaml
        problems: {{difficulty: [1, 2], per_level: 2}}
        system: "Please reason step by step, and put your final answer within \\\\boxed{{}}."
        repeats: 2
        params:
          grid: {{temperature: [0.0, 1.0], max_tokens: [64, 256]}}
        scorer: final_answer
        concurrency: 4
    """)
    )
    run = [sys.executable, "-m", "mmlab", "sweep", str(tmp_path / "s.yaml"), "--db", str(db)]
    plan = subprocess.run([*run, "--plan"], capture_output=True, text=True, timeout=120)
    assert plan.returncode == 0, plan.stderr
    assert "32 cells: 0 cached, 32 to call" in plan.stdout and standin.seen == []
    out = tmp_path / "results.csv"
    done = subprocess.run(
        [*run, "--yes", "-o", str(out)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    df = pd.read_csv(out)
    assert len(df) == 32 and {"score", "temperature", "max_tokens", "answer"} <= set(df.columns)
    assert len(standin.seen) == 32
    assert standin.seen[0].body["messages"][0]["role"] == "system"
    (tmp_path / "s.toml").write_text(
        textwrap.dedent(f"""
        base_url = "{standin.url}"
        tag = "from-toml"
        prompts = ["a", "b"]
        [params.zip]
        temperature = [0.1, 0.2]
        max_tokens = [50, 60]
    """)
    )
    parquet = tmp_path / "r.parquet"
    toml = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmlab",
            "sweep",
            str(tmp_path / "s.toml"),
            "--db",
            str(db),
            "-o",
            str(parquet),
            "--yes",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert toml.returncode == 0, toml.stderr
    assert len(pd.read_parquet(parquet)) == 4


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("prompts: [a]\nparams: {grid: {temperature: []}}", "empty grid"),
        ("prompts: [a]\nparams: {grid: {warmth: [1]}}", "unknown parameter"),
        ("prompts: [a]\nrepeats: 0", "repeats"),
        ("prompts: [a]\ncolour: blue", "unknown setting"),
        ("params: {grid: {temperature: [1]}}", "exactly one of prompts"),
        ("prompts: [a]\nscorer: vibes", "unknown scorer"),
        ("prompts: [a\n", "does not parse"),
    ],
)
def test_bad_sweep_files_exit_2_and_send_nothing(standin, db, tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"base_url: {standin.url}\n" + content)
    out = subprocess.run(
        [sys.executable, "-m", "mmlab", "sweep", str(path), "--db", str(db), "--yes"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OPENROUTER_API_KEY": ""},
    )
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert standin.seen == []


def test_sweep_files_take_models_and_providers(routed):
    lab, server = routed
    spec = {"prompts": ROUTE_PROMPTS[:1], "params": {"grid": {"model": [M1, R1],
            "provider": ["Novita", "Fireworks"]}}}  # fmt: skip
    res = sweep_from_spec(spec, lab.engine).run(progress=False)
    assert len(res.df) == 4 and (res.df["provider"] == res.df["provider.only"]).all()


def test_sweep_files_take_a_stop_rule(arms, tmp_path):
    lab, server = arms
    rule = stop_from_spec({"decided": {"by": "temperature"}, "budget": 2.0, "max_repeats": 9})
    assert str(rule) == str(
        stop.decided(by="temperature") | stop.budget(2.0) | stop.max_repeats(9)
    )
    assert stop_from_spec(None) is None
    path = tmp_path / "arms.yaml"
    rows = "\n".join(f'  - {{prompt: "{q}", answer: "{gold_answer(q)}"}}' for q in ARM_QUESTIONS)
    path.write_text(
        textwrap.dedent(f"""
        base_url: {server.url}
        tag: arms-file
        repeats: 20
        params: {{grid: {{temperature: [0.0, 1.0]}}}}
        scorer: final_answer
        stop: {{decided: {{by: temperature}}, max_repeats: 20}}
        """)
        + f"prompts:\n{rows}\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "mmlab", "sweep", str(path), "--db", str(tmp_path / "f.db"),
         "--yes"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "adaptive (" in run.stdout and "decided(by='temperature'" in run.stdout
    assert "adaptive: decided" in run.stdout and "best: temperature=0.0" in run.stdout
    assert len(server.seen) < 12 * 2 * 20


@pytest.mark.parametrize(
    ("content", "hint"),
    [
        ("prompts: [a]\nrepeat: 2", "did you mean 'repeats'?"),
        ("prompts: [a]\nparams: {gird: {temperature: [1]}}", "did you mean 'grid'?"),
        ("prompts: [a]\nparams: {grid: {temprature: [1]}}", "did you mean 'temperature'?"),
        ("prompts: [a]\nfixed: {max_token: 5}", "did you mean 'max_tokens'?"),
        ("prompts: [a]\nstop: {decide: {by: temperature}}", "did you mean 'decided'?"),
        ("prompts: [a]\nstop: {ci_width: {by: temperature, widht: 0.1}}", "did you mean 'width'?"),
        ("prompts: [a]\nscorer: final_answr", "did you mean 'final_answer'?"),
    ],
)
def test_sweep_file_misspellings_say_the_closest_name(lab, tmp_path, content, hint):
    path = tmp_path / "typo.yaml"
    path.write_text(content)
    with pytest.raises(MmlabError, match=hint):
        spec = load_sweep_file(path)
        sweep_from_spec(spec, lab.engine)
        stop_from_spec(spec.get("stop"))
