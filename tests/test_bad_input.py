"""Bad input, in one table: API, CLI, sweep files and bundles.

Every case must fail with a clear error that names the problem, before any network call and
without writing anything: the stand-in sees no request and the database is unchanged.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mmlab import Lab, grid, random_, zip_
from mmlab.bundle import import_bundle
from mmlab.cachekey import cache_key
from mmlab.errors import BundleError, ConfigError, RequestError
from mmlab.params import pin
from mmlab.result import Response
from mmlab.wire import Usage


def chat(**kw):
    return lambda lab, tmp: lab.chat(kw.pop("prompt", "hi"), **kw)


API = [
    (
        "temperature too high",
        chat(temperature=2.5),
        RequestError,
        "temperature must be a number in [0, 2]",
    ),
    ("temperature negative", chat(temperature=-1), RequestError, "[0, 2]"),
    ("temperature NaN", chat(temperature=math.nan), RequestError, "temperature"),
    ("top_p zero", chat(top_p=0.0), RequestError, "top_p must be a number in (0, 1]"),
    ("top_p above 1", chat(top_p=1.01), RequestError, "(0, 1]"),
    ("max_tokens zero", chat(max_tokens=0), RequestError, "max_tokens must be an integer >= 1"),
    ("max_tokens fractional", chat(max_tokens=2.5), RequestError, "integer"),
    ("top_k negative", chat(top_k=-3), RequestError, "top_k"),
    ("unknown parameter", chat(temprature=0.3), RequestError, "unknown parameter 'temprature'"),
    ("seed fractional", chat(seed=1.5), RequestError, "seed must be an integer"),
    ("reasoning effort", chat(reasoning={"effort": "extreme"}), RequestError, "reasoning.effort"),
    (
        "reasoning both knobs",
        chat(reasoning={"effort": "low", "max_tokens": 9}),
        RequestError,
        "not both",
    ),
    ("provider field", chat(provider={"fastest": True}), RequestError, "provider"),
    ("stop too many", chat(stop=["a", "b", "c", "d", "e"]), RequestError, "stop"),
    ("empty messages", lambda lab, tmp: lab.chat([]), RequestError, "messages must not be empty"),
    ("per-call tag empty", chat(tag=""), RequestError, "tag must be non-empty"),
    ("per-call tag a number", chat(tag=42), RequestError, "tag must be a string"),
    ("per-call tag blank part", chat(tag="a//b"), RequestError, "without blank parts"),
    (
        "credentials in base_url",
        lambda lab, tmp: Lab(base_url="http://alice:s3cret-pass@example.com/v1", db=tmp / "x.db"),
        ConfigError,
        "must not carry credentials",
    ),
    (
        "non-string content",
        lambda lab, tmp: lab.chat([{"role": "user", "content": 3}]),
        RequestError,
        "messages[0].content must be a string",
    ),
    (
        "unknown role",
        lambda lab, tmp: lab.chat([{"role": "bot", "content": "x"}]),
        RequestError,
        "messages[0].role",
    ),
    ("blank prompt", lambda lab, tmp: lab.chat("   "), RequestError, "non-blank"),
    ("negative sample", chat(sample=-1), RequestError, "sample"),
    (
        "bad base url",
        lambda lab, tmp: Lab(base_url="localhost:8000", db=tmp / "x.db"),
        ConfigError,
        "base_url",
    ),
    (
        "bad cache mode",
        lambda lab, tmp: Lab(cache="sometimes", db=tmp / "x.db"),
        ConfigError,
        "cache must be one of",
    ),
    (
        "negative budget",
        lambda lab, tmp: Lab(budget_usd=-5, db=tmp / "x.db"),
        ConfigError,
        "budget_usd",
    ),
    (
        "db is a directory",
        lambda lab, tmp: Lab(base_url="http://127.0.0.1:9/v1", db=tmp),
        ConfigError,
        "directory",
    ),
    (
        "db is not sqlite",
        lambda lab, tmp: (
            (tmp / "t.db").write_text("hello")
            and Lab(base_url="http://127.0.0.1:9/v1", db=tmp / "t.db")
        ),
        ConfigError,
        "not an SQLite",
    ),
    (
        "sweep empty grid",
        lambda lab, tmp: lab.sweep(["q"], grid(temperature=[])),
        RequestError,
        "empty grid",
    ),
    (
        "sweep unknown param",
        lambda lab, tmp: lab.sweep(["q"], grid(heat=[1])),
        RequestError,
        "unknown parameter 'heat'",
    ),
    (
        "sweep value out of range",
        lambda lab, tmp: lab.sweep(["q"], grid(top_p=[0.5, 3])),
        RequestError,
        "top_p",
    ),
    (
        "sweep repeats zero",
        lambda lab, tmp: lab.sweep(["q"], None, repeats=0),
        RequestError,
        "repeats",
    ),
    (
        "sweep no prompt column",
        lambda lab, tmp: lab.sweep(pd.DataFrame({"q": ["x"]}), None),
        RequestError,
        "no 'prompt' column",
    ),
    (
        "sweep zip lengths",
        lambda lab, tmp: lab.sweep(["q"], zip_(top_k=[1, 2], seed=[1])),
        RequestError,
        "same length",
    ),
    (
        "sweep random n",
        lambda lab, tmp: lab.sweep(["q"], random_(n=0, top_k=[1])),
        RequestError,
        "n must be",
    ),
    (
        "sweep duplicate ids",
        lambda lab, tmp: lab.sweep(pd.DataFrame({"prompt": ["a", "b"], "id": ["x", "x"]}), None),
        RequestError,
        "unique",
    ),
]


def _damaged_bundle(tmp: Path) -> Path:
    path = tmp / "broken.bundle.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"schema": "mmlab-bundle", "version": 1, "count": 3}\n'))
    return path


def _bundle(mutate):
    """A bundle that is sound but for `mutate`'s change to its one entry (checksum fixed up,
    so the entry's own validation is what is tested)."""

    def make(lab, tmp):
        call = lab.engine.prepare("a bundled question", max_tokens=5)
        response = Response("4", "", "stop", Usage(3, 1, 0, 0), 0.001, "billed").to_dict()
        entry = {"key": call.key, "endpoint": call.endpoint, "model": lab.model,
                 "sample": 0, "request": call.material, "response": response}  # fmt: skip
        mutate(entry)
        line = json.dumps(entry, sort_keys=True)
        header = {"schema": "mmlab-bundle", "version": 1, "key_version": 1, "count": 1}
        end = {"end": True, "count": 1, "sha256": hashlib.sha256(line.encode()).hexdigest()}
        path = tmp / "entry.bundle.jsonl.gz"
        text = "\n".join([json.dumps(header), line, json.dumps(end)]) + "\n"
        path.write_bytes(gzip.compress(text.encode()))
        return import_bundle(lab.engine.store, path)

    return make


def _rekey(entry):
    entry["key"] = cache_key(entry["request"])


BUNDLES = [
    (
        "bundle response not an object",
        _bundle(lambda e: e.update(response=["not", "an", "object"])),
        BundleError,
        "response must be an object",
    ),
    (
        "bundle unknown usage field",
        _bundle(lambda e: e["response"]["usage"].update(thinking_tokens=5)),
        BundleError,
        "response.usage must be an object with only",
    ),
    (
        "bundle negative tokens",
        _bundle(lambda e: e["response"]["usage"].update(completion_tokens=-1)),
        BundleError,
        "completion_tokens must be an integer >= 0",
    ),
    (
        "bundle unknown response field",
        _bundle(lambda e: e["response"].update(exploit="x")),
        BundleError,
        "unknown field(s) ['exploit']",
    ),
    (
        "bundle cost not a number",
        _bundle(lambda e: e["response"].update(cost_usd="free")),
        BundleError,
        "cost_usd must be a finite number",
    ),
    (
        "bundle endpoint disagrees",
        _bundle(lambda e: e.update(endpoint="https://elsewhere.example/v1")),
        BundleError,
        "endpoint 'https://elsewhere.example/v1' disagrees",
    ),
    (
        "bundle model disagrees",
        _bundle(lambda e: e.update(model="acme/other")),
        BundleError,
        "model 'acme/other' disagrees",
    ),
    (
        "bundle sample disagrees",
        _bundle(lambda e: e.update(sample=3)),
        BundleError,
        "sample 3 disagrees",
    ),
    (
        "bundle key does not match",
        _bundle(lambda e: e["request"]["request"].update(max_tokens=6)),
        BundleError,
        "key does not match",
    ),
    (
        "bundle unknown parameter",
        _bundle(lambda e: (e["request"]["request"].update(warmth=1), _rekey(e))),
        BundleError,
        "unknown parameter 'warmth'",
    ),
    (
        "bundle extra entry field",
        _bundle(lambda e: e.update(note="hi")),
        BundleError,
        "an entry has exactly",
    ),
    (
        "bundle missing",
        lambda lab, tmp: import_bundle(lab.engine.store, tmp / "nope.gz"),
        BundleError,
        "does not exist",
    ),
    (
        "bundle truncated",
        lambda lab, tmp: import_bundle(lab.engine.store, _damaged_bundle(tmp)),
        BundleError,
        "truncated",
    ),
    (
        "bundle not gzip",
        lambda lab, tmp: (tmp / "t.gz").write_text("x")
        and import_bundle(lab.engine.store, tmp / "t.gz"),
        BundleError,
        "corrupt",
    ),
]


def _counts(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(db)
    return (
        conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0],
        conn.execute("SELECT COUNT(*) FROM cache").fetchone()[0],
    )


@pytest.mark.parametrize(
    ("name", "action", "error", "message"), API + BUNDLES, ids=[c[0] for c in API + BUNDLES]
)
def test_api_bad_input(lab, standin, db, tmp_path, name, action, error, message):
    lab.chat("one good call first", max_tokens=30)
    before = _counts(db)
    seen = len(standin.seen)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(error) as info:
        action(lab, scratch)
    if message:
        assert message in str(info.value)
    assert len(standin.seen) == seen, "no network call"
    assert _counts(db) == before, "no partial write"


CLI = [
    (["chat", "hi", "--temperature", "9"], "temperature must be a number in [0, 2]"),
    (["chat", "hi", "--max-tokens", "0"], "max_tokens must be an integer >= 1"),
    (["chat", "hi", "--cache", "replay"], "replay mode"),
    (["chat", "hi", "--base-url", "ftp://x"], "base_url"),
    (["chat", "hi", "--budget", "-1"], "budget_usd"),
    (["cache", "clear"], "cache clear needs one of --tag"),
    (["cache", "clear", "--tag", "x", "--all"], "cache clear needs one of --tag"),
    (["bundle", "import"], "bundle import needs a FILE"),
    (["bundle", "export", "-o", "x.gz"], "needs --tag"),
    (["sweep", "missing.yaml"], "does not exist"),
]


@pytest.mark.parametrize(("args", "message"), CLI, ids=[" ".join(a) for a, _ in CLI])
def test_cli_bad_input(standin, db, tmp_path, args, message):
    if args[0] == "chat" and "--base-url" not in args:
        args = [*args, "--base-url", standin.url]
    out = subprocess.run(
        [sys.executable, "-m", "mmlab", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert standin.seen == []
    if db.exists():
        assert _counts(db) == (0, 0)


SWEEP_FILES = [
    ("params: {grid: {temperature: []}}\nprompts: [a]", "empty grid"),
    ("params: {grid: {warmth: [1]}}\nprompts: [a]", "unknown parameter"),
    ("params: {grid: {temperature: [5]}}\nprompts: [a]", "temperature"),
    ("repeats: 0\nprompts: [a]", "repeats"),
    ("prompts_file: nope.csv", "does not exist"),
    ("prompts: [a]\nparams: {hypercube: {x: [1]}}", "unknown space"),
    ("prompts: [a]\nstop: {patience: 3}", "unknown rule"),
    ("prompts: [a]\nstop: [budget]", "stop must be a mapping"),
    ("prompts: [a]\nscorer: final_answer\nstop: {ci_width: {width: 2}}", "width"),
    ("prompts: [a]\nscorer: final_answer\nstop: {ci_width: {wide: 1}}", "stop.ci_width"),
    ("prompts: [a]\nstop: {budget: -1}", "budget must be"),
    ("prompts: [a]\nstop: {max_repeats: 0}", "max_repeats"),
    ("prompts: [a]\nstop: {decided: {by: temperature}}", "scorer"),
    (
        "prompts: [a]\nscorer: final_answer\nparams: {grid: {temperature: [0, 1]}}\n"
        "stop: {decided: {by: warmth}}",
        "warmth",
    ),
]


@pytest.mark.parametrize(("content", "message"), SWEEP_FILES, ids=[m for _, m in SWEEP_FILES])
def test_sweep_file_bad_input(standin, db, tmp_path, content, message):
    path = tmp_path / "s.yaml"
    path.write_text(f"base_url: {standin.url}\n{content}\n")
    out = subprocess.run(
        [sys.executable, "-m", "mmlab", "sweep", str(path), "--db", str(db), "--yes"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert standin.seen == []


def test_the_table_is_big_enough():
    assert len(API) + len(BUNDLES) + len(CLI) + len(SWEEP_FILES) >= 60


# --- outside the table ------------------------------------------------------------------------
def test_bad_input_sends_nothing_and_writes_nothing(lab, standin, db):
    from mmlab.errors import RequestError

    for kwargs in (
        {"temperature": 3},
        {"top_p": 0},
        {"max_tokens": 0},
        {"nonsense": 1},
        {"temperature": float("nan")},
    ):
        with pytest.raises(RequestError):
            lab.chat("hi", **kwargs)
    with pytest.raises(RequestError):
        lab.chat([])
    with pytest.raises(RequestError):
        lab.chat([{"role": "wizard", "content": "hi"}])
    with pytest.raises(RequestError):
        lab.chat("hi", sample=-1)
    assert standin.seen == []
    assert len(lab.calls()) == 0


def test_bad_model_provider_and_endpoint_input(routed):
    lab, server = routed
    for kwargs, field in [
        ({"model": ""}, "model"),
        ({"model": 7}, "model"),
        ({"endpoint": ""}, "endpoint"),
        ({"endpoint": "nowhere"}, "endpoint"),
        ({"provider": 5}, "provider"),
        ({"provider": {"only": "Novita"}}, "provider.only"),
    ]:
        with pytest.raises(RequestError) as info:
            lab.chat("hi", **kwargs)
        assert info.value.field == field, (kwargs, info.value)
    with pytest.raises(RequestError):
        pin()
    assert server.seen == []
