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


# --- reports (tests/test_report.py, tests/test_browser.py) ------------------------------------
#: Strings that would run script if a report let them: each sets `window.__pwned` or opens a
#: dialog. A report must show them as text and run none of them.
HOSTILE = [
    "<script>window.__pwned = 1</script>",
    '<img src=x onerror="window.__pwned = 2">',
    "</script><script>window.__pwned = 3</script>",
    '<a href="javascript:window.__pwned = 4">click me</a>',
    "<svg onload=alert(5)></svg>",
    '"><iframe src="javascript:alert(6)"></iframe>',
    "\u2028\u2029<!-- <script>alert(7)</script>",
]
HOSTILE_TEXT = " ".join(HOSTILE)


def write_bundle(path: Path, calls: list[dict], tag: str = "study") -> Path:
    """A bundle, as `mmlab bundle export` writes one, of `calls`: each a dict with
    ``messages``, ``params``, ``response`` (a Response's cache form) and optionally
    ``model``, ``endpoint``, ``sample``. Entries are checked as an import checks them."""
    import gzip
    import hashlib
    import json

    from mmlab.cachekey import cache_key, key_material
    from mmlab.params import check_params
    from mmlab.wire import check_messages

    entries = []
    for call in calls:
        model = call.get("model", "minimax/minimax-m1")
        body = {"model": model, "messages": check_messages(call["messages"]),
                **check_params(call.get("params", {}))}  # fmt: skip
        material = key_material(call.get("endpoint", "standin:report"), body,
                                call.get("sample", 0))  # fmt: skip
        entries.append({"key": cache_key(material), "endpoint": material["endpoint"],
                        "model": model, "sample": material["sample"], "request": material,
                        "response": call["response"]})  # fmt: skip
    entries.sort(key=lambda e: e["key"])
    lines = [json.dumps(e, sort_keys=True, ensure_ascii=False) for e in entries]
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    header = {"schema": "mmlab-bundle", "version": 1, "key_version": 1, "count": len(lines),
              "tag": tag}  # fmt: skip
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write((json.dumps(header) + "\n").encode())
        for line in lines:
            f.write((line + "\n").encode())
        f.write((json.dumps({"end": True, "count": len(lines), "sha256": digest}) + "\n").encode())
    return path


def response(content: str = "The answer is 42.", reasoning: str = "Let me think.", **extra) -> dict:
    """A response's cache form (what a bundle entry holds)."""
    from mmlab.result import Response
    from mmlab.wire import Usage

    values = {"finish_reason": "stop", "usage": Usage(12, 40, 30, 0), "cost_usd": 0.0001,
              "cost_source": "billed", "latency_s": 1.5, "provider": "Novita",
              "model": "minimax/minimax-m1", "created": 1_790_000_000.0, **extra}  # fmt: skip
    return Response(content=content, reasoning=reasoning, **values).to_dict()


def hostile_bundle(path: Path) -> Path:
    """A bundle whose every string a report shows — prompts, reasoning, answers, model,
    provider, served model, finish reason, notice, tag — is a script attempt."""
    calls = []
    for i, payload in enumerate(HOSTILE):
        model = f"evil/{payload}" if i % 2 else "minimax/minimax-m1"
        calls.append({
            "model": model,
            "messages": [{"role": "system", "content": payload},
                         {"role": "user", "content": f"question {i}: {payload}"}],
            "params": {"temperature": [0.0, 1.0][i % 2], "max_tokens": 100 + i},
            "response": response(
                content=f"answer {i} {payload}", reasoning=f"thinking {i} {HOSTILE_TEXT}",
                provider=payload, model=payload, finish_reason=payload, notice=payload,
                generation_id=payload,
            ),
        })  # fmt: skip
    return write_bundle(path, calls, tag="<script>window.__pwned = 9</script>")


def hostile_notebook(path: Path) -> Path:
    """A notebook whose markdown, outputs (HTML, markdown, SVG, streams, errors), plotly
    figure and saved widget state all carry script attempts."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    figure = {"data": [{"type": "bar", "x": ["a", "b"], "y": [1, 2], "name": HOSTILE[1],
                        "hovertemplate": HOSTILE[0] + "%{x}"}],
              "layout": {"title": {"text": HOSTILE[3] + HOSTILE[1]},
                         "xaxis": {"title": {"text": "temperature"}},
                         "images": [{"source": "https://example.com/pixel.png", "x": 0, "y": 0,
                                     "sizex": 1, "sizey": 1}]}}  # fmt: skip
    state = {
        "state": {
            "box": {"model_name": "VBoxModel", "model_module": "@jupyter-widgets/controls",
                    "state": {"children": ["IPY_MODEL_html", "IPY_MODEL_out", "IPY_MODEL_lab"]}},
            "html": {"model_name": "HTMLModel", "model_module": "@jupyter-widgets/controls",
                     "state": {"value": HOSTILE_TEXT, "description": HOSTILE[0]}},
            "lab": {"model_name": "LabelModel", "model_module": "@jupyter-widgets/controls",
                    "state": {"value": HOSTILE[2]}},
            "out": {"model_name": "OutputModel", "model_module": "@jupyter-widgets/output",
                    "state": {"outputs": [{"output_type": "display_data", "metadata": {},
                                           "data": {"text/html": HOSTILE_TEXT}}]}},
        },
        "version_major": 2,
        "version_minor": 0,
    }  # fmt: skip
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": state}
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# Hostile {HOSTILE[0]}\n\n{HOSTILE_TEXT}\n\n"
                                      "[link](javascript:window.__pwned=8)"),
        nbformat.v4.new_code_cell(HOSTILE_TEXT, outputs=[
            nbformat.v4.new_output("stream", name="stdout", text=HOSTILE_TEXT),
            nbformat.v4.new_output("display_data", data={"text/html": HOSTILE_TEXT}),
            nbformat.v4.new_output("display_data", data={"text/markdown": HOSTILE_TEXT}),
            nbformat.v4.new_output("display_data", data={
                "image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg"><script>'
                                 'window.__pwned = 10</script></svg>'}),
            nbformat.v4.new_output("display_data", data={
                "application/vnd.plotly.v1+json": figure, "text/plain": "<Figure>"}),
            nbformat.v4.new_output("display_data", data={
                "application/vnd.jupyter.widget-view+json": {"model_id": "box"},
                "text/plain": HOSTILE[0]}),
            nbformat.v4.new_output("display_data", data={
                "application/vnd.jupyter.widget-view+json": {"model_id": "gone"},
                "text/plain": HOSTILE[1]}),
            nbformat.v4.new_output("error", ename=HOSTILE[0], evalue=HOSTILE[1],
                                   traceback=[HOSTILE_TEXT]),
        ]),
    ]  # fmt: skip
    nbformat.write(nb, path)
    return path
