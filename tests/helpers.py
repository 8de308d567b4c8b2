"""Helpers and data shared by several test files (fixtures built on them are in conftest.py)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd

from mmlab import Lab, RetryPolicy, grid, scorers
from mmlab.record import nbval_command
from mmlab.testing import Provider, gold_answer

#: Recognisable and obviously fake; tests scan for it to prove it never leaks.
FAKE_KEY = "sk-mmlab-TEST-not-a-real-key-7f3a9c1e5b"
FAST_RETRY = RetryPolicy(max_retries=6, base_s=0.001, cap_s=0.05)


def cache_rows(db) -> int:
    """How many cache entries the database at `db` holds."""
    return sqlite3.connect(db).execute("SELECT COUNT(*) FROM cache").fetchone()[0]


def run_mmlab(
    *args: str, env_extra: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The `mmlab` command, run as a real subprocess."""
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "mmlab", *args], capture_output=True, text=True, env=env,
        timeout=300, cwd=cwd,
    )  # fmt: skip


# --- models and providers (the `routed` fixture) ----------------------------------------------
M1, R1 = "minimax/minimax-m1", "deepseek/deepseek-r1"
ROUTE_PROMPTS = ["What is seven plus five?", "Name the largest planet.", "Why is the sky blue?"]
#: Two providers serving both models, at different prices.
PROVIDERS = {
    M1: [Provider("Novita", 0.40e-6, 2.20e-6), Provider("Fireworks", 0.55e-6, 2.00e-6)],
    R1: [Provider("Novita", 0.70e-6, 2.50e-6), Provider("Fireworks", 0.55e-6, 2.19e-6)],
}


def models_sweep(lab: Lab, tag: str = "m1-vs-r1"):
    """Both models on both providers, twice each."""
    return lab.sweep(ROUTE_PROMPTS, grid(model=[M1, R1], provider=["Novita", "Fireworks"],
                                         max_tokens=[256]), repeats=2, tag=tag)  # fmt: skip


# --- arms of known accuracy (the `arms` fixture) ----------------------------------------------
#: Twelve questions with distinct gold answers (the stand-in's answer is a function of them).
ARM_QUESTIONS = [f"How many apples are in basket number {i} of the orchard?" for i in range(12)]
ARM_PROBLEMS = pd.DataFrame(
    {"prompt": ARM_QUESTIONS, "answer": [gold_answer(q) for q in ARM_QUESTIONS]}
)
#: Arm accuracies the stand-in answers with: 0.9 at temperature 0, 0.3 at temperature 1.
ARM_ACCURACY = {0.0: 0.9, 1.0: 0.3}


def arm_accuracy(body: dict) -> float:
    """The stand-in's accuracy for a request: its arm's."""
    return ARM_ACCURACY[body["temperature"]]


def arms_sweep(lab: Lab, repeats: int = 20, tag: str = "arms"):
    """The two arms over the twelve problems, scored."""
    return lab.sweep(ARM_PROBLEMS, grid(temperature=[0.0, 1.0]), repeats=repeats, tag=tag,
                     scorer=scorers.final_answer)  # fmt: skip


# --- knobs ------------------------------------------------------------------------------------
#: Six short questions for scaling curves, probes and ignored axes.
SHORT_QUESTIONS = [
    "What is seven plus five?",
    "Name the largest planet.",
    "Why do leaves change colour?",
    "How many legs has a spider?",
    "What is the capital of France?",
    "Spell the word banana backwards.",
]


# --- notebooks --------------------------------------------------------------------------------
NO_SOCKETS = """
import sys
def _forbid(event, args):
    if event == "socket.connect":
        raise RuntimeError(f"network use during replay: {args!r}")
sys.addaudithook(_forbid)
"""


def nbval(
    paths: list[Path], cwd: Path, home: Path, *, forbid_sockets: bool = True, cache: str = "replay"
) -> subprocess.CompletedProcess:
    """Run nbval on `paths` as a different user on a different machine would."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MMLAB_") and k != "OPENROUTER_API_KEY"
    }
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "data"),
        MMLAB_CACHE=cache,
        MMLAB_DB=str(home / "replay.db"),
        IPYTHONDIR=str(home / "ipython"),
    )
    if forbid_sockets:
        startup = home / "ipython" / "profile_default" / "startup"
        startup.mkdir(parents=True, exist_ok=True)
        (startup / "00-no-sockets.py").write_text(NO_SOCKETS)
    return subprocess.run(
        nbval_command(*paths, extra=("--rootdir", str(cwd))),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
