"""Sweeps against the loopback stand-in: plan, forecast, run, resume, retry, budget, 429s."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from conftest import FAKE_KEY, FAST_RETRY

from mmlab import Lab, RetryPolicy, grid, random_, scorers, zip_
from mmlab.analysis import cost_per_correct, reasoning_share, summarize, truncation_rate, wilson
from mmlab.errors import ConfigError, RequestError
from mmlab.testing import Fault, StandIn, synth_reply

PROMPTS = ["What is 2 + 2?", "Name a prime number larger than ten.", "Why is the sky blue?"]


def test_cells_are_deterministic(lab):
    a = lab.sweep(PROMPTS, grid(temperature=[0.0, 1.0], max_tokens=[64, 512]), repeats=2)
    b = lab.sweep(PROMPTS, grid(temperature=[0.0, 1.0], max_tokens=[64, 512]), repeats=2)
    assert len(a) == 3 * 4 * 2
    assert [c.call.key for c in a.cells] == [c.call.key for c in b.cells]
    assert a.tag == b.tag and a.tag.startswith("sweep-")
    c = lab.sweep(PROMPTS, grid(temperature=[0.0, 1.0], max_tokens=[64, 513]), repeats=2)
    assert c.tag != a.tag
    plan = a.plan()
    assert list(plan.columns[:4]) == ["cell", "prompt_id", "temperature", "max_tokens"]
    assert (plan["status"] == "miss").all() and plan["cache_key"].is_unique
    # the cell for (prompt, point, sample) is the same request lab.chat would make
    # (on OpenRouter a sweep also asks for providers that honour every parameter it sends)
    cell = a.cells[5]
    assert cell.point["provider"] == {"require_parameters": True}
    direct = lab.engine.prepare(PROMPTS[0], sample=cell.sample, tag=a.tag, **cell.point)
    assert direct.key == cell.call.key


def test_spaces_compose():
    g = grid(temperature=[0.0, 1.0], max_tokens=[10, 20])
    assert g.points()[:2] == [
        {"temperature": 0.0, "max_tokens": 10},
        {"temperature": 0.0, "max_tokens": 20},
    ]
    z = zip_(temperature=[0.1, 0.2], top_p=[0.9, 0.8])
    assert z.points() == [{"temperature": 0.1, "top_p": 0.9}, {"temperature": 0.2, "top_p": 0.8}]
    assert len(g | z) == 6 and len(g * z) == 8
    r = random_(n=5, seed=3, temperature=(0.0, 2.0), max_tokens=(16, 64), top_k=[0, 40])
    assert (
        r.points()
        == random_(n=5, seed=3, temperature=(0.0, 2.0), max_tokens=(16, 64), top_k=[0, 40]).points()
    )
    assert all(isinstance(p["max_tokens"], int) and 0 <= p["temperature"] <= 2 for p in r.points())


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda lab: lab.sweep(PROMPTS, grid(temperature=[])), "temperature"),
        (lambda lab: lab.sweep(PROMPTS, grid()), "params"),
        (lambda lab: lab.sweep(PROMPTS, grid(temprature=[0.5])), "temprature"),
        (lambda lab: lab.sweep(PROMPTS, grid(temperature=[0.5, 9.0])), "temperature"),
        (lambda lab: lab.sweep(PROMPTS, grid(max_tokens=[0])), "max_tokens"),
        (lambda lab: lab.sweep(PROMPTS, grid(temperature=[0.5]), repeats=0), "repeats"),
        (lambda lab: lab.sweep(pd.DataFrame({"question": ["q"]}), None), "prompts"),
        (lambda lab: lab.sweep([], None), "prompts"),
        (lambda lab: lab.sweep("just one string", None), "prompts"),
        (lambda lab: lab.sweep(["ok", "  "], None), "prompts"),
        (lambda lab: lab.sweep(PROMPTS, zip_(temperature=[0.1], top_p=[0.9, 0.8])), "params"),
        (lambda lab: lab.sweep(PROMPTS, random_(n=0, temperature=(0, 1))), "n"),
        (lambda lab: lab.sweep(PROMPTS, grid(temperature="0.5")), "temperature"),
        (lambda lab: lab.sweep(PROMPTS, None, reasoning={"effort": "huge"}), "reasoning.effort"),
    ],
)
def test_bad_specs_are_rejected_before_any_call(lab, standin, build, field):
    with pytest.raises(RequestError) as info:
        build(lab)
    assert info.value.field == field
    assert standin.seen == [] and len(lab.calls()) == 0


def test_bad_run_arguments(lab, standin):
    sweep = lab.sweep(PROMPTS, None)
    for kwargs in ({"concurrency": 0}, {"budget_usd": -1}, {"max_calls": -2}):
        with pytest.raises((RequestError, ConfigError)):
            sweep.run(progress=False, **kwargs)
    assert standin.seen == []


def test_sweeps_need_a_cache(standin, db):
    lab = Lab(base_url=standin.url, api_key=FAKE_KEY, db=db, quiet=True, cache="off")
    with pytest.raises(ConfigError, match="cache"):
        lab.sweep(PROMPTS, None)


def test_run_then_rerun_sends_nothing(lab, standin):
    sweep = lab.sweep(PROMPTS, grid(max_tokens=[16, 400]), repeats=2, tag="rr")
    res = sweep.run(concurrency=4, progress=False)
    assert res.complete and len(res.df) == 12 and len(standin.seen) == 12
    assert not res.df["cache_hit"].any()
    again = sweep.run(progress=False)
    assert len(standin.seen) == 12 and again.df["cache_hit"].all()
    assert again.stats.hits == 12 and again.stats.sent == 0
    cols = ["content", "completion_tokens", "reasoning_tokens", "cost_usd", "truncated"]
    pd.testing.assert_frame_equal(res.df[cols], again.df[cols])
    assert (res.df.loc[res.df["max_tokens"] == 16, "truncated"]).any()
    log = lab.calls("rr")
    assert (log["cache_status"] == "miss").sum() == 12 and (
        log["cache_status"] == "hit"
    ).sum() == 12


def test_resume_after_a_killed_process(standin, db, tmp_path):
    with StandIn(delay_s=0.05) as slow:
        script = textwrap.dedent(f"""
            from mmlab import Lab, grid
            lab = Lab(base_url={slow.url!r}, api_key="sk-child-process-test-0000", db={str(db)!r},
                      quiet=True)
            sweep = lab.sweep([f"question number {{i}}" for i in range(10)],
                              grid(max_tokens=[50, 300]), repeats=2, tag="killed")
            sweep.run(concurrency=2, progress=False)
        """)
        child = subprocess.Popen([sys.executable, "-c", script])
        try:
            assert slow.wait_for(12, timeout=120), "the child never got going"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        done = conn.execute("SELECT COUNT(*) FROM cache").fetchone()[0]
        assert 0 < done < 40
        slow.reset()
        lab = Lab(base_url=slow.url, api_key=FAKE_KEY, db=db, quiet=True)
        sweep = lab.sweep(
            [f"question number {i}" for i in range(10)],
            grid(max_tokens=[50, 300]),
            repeats=2,
            tag="killed",
        )
        assert (sweep.plan()["status"] == "hit").sum() == done
        res = sweep.run(concurrency=4, progress=False)
        assert len(slow.seen) == 40 - done  # exactly the unfinished cells, counted at the server
        assert res.complete and res.stats.hits == done
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_retry_errors_reruns_failed_cells_only(lab, standin):
    sweep = lab.sweep(PROMPTS, grid(max_tokens=[300]), repeats=2, tag="retry")
    standin.enqueue(Fault.http(400), Fault.http(400))  # the first two requests fail for good
    res = sweep.run(concurrency=1, progress=False)
    assert res.df["error"].notna().sum() == 2 and res.stats.failed == 2
    assert len(standin.seen) == 6
    kept = sweep.run(progress=False)  # a plain rerun keeps the errors, sends nothing
    assert len(standin.seen) == 6 and kept.df["error"].notna().sum() == 2
    assert (sweep.plan()["status"] == "error").sum() == 2
    fixed = sweep.run(retry_errors=True, progress=False)
    assert len(standin.seen) == 8 and fixed.complete
    log = lab.calls("retry")
    assert log["error"].notna().sum() == 2  # the old error rows are kept in the log
    # on cells never run, retry_errors sends them too — as its forecast says
    fresh = lab.sweep(PROMPTS, grid(max_tokens=[301]), tag="retry-fresh")
    assert fresh.forecast(retry_errors=True).to_call == len(fresh)
    assert fresh.run(retry_errors=True, progress=False).stats.sent == len(fresh)


def test_budget_stops_cleanly_and_resumes(standin, db):
    lab = Lab(base_url=standin.url, api_key=FAKE_KEY, db=db, quiet=True)
    sweep = lab.sweep(
        [f"budget question {i}" for i in range(10)], grid(max_tokens=[200]), tag="budget"
    )
    worst = sweep.forecast().worst_usd / 10
    # Room for two worst cases: calls run while reservations fit, and near the cap they go on
    # one at a time as finished calls turn out cheaper than their worst case.
    budget = worst * 2
    res = sweep.run(concurrency=3, budget_usd=budget, progress=False)
    assert res.stats.stopped and res.stats.stopped.startswith("budget")
    assert 2 <= res.stats.succeeded < 10 and res.stats.remaining == 10 - res.stats.succeeded
    assert res.stats.remaining_forecast.to_call == res.stats.remaining
    spent = lab.spent_usd("budget")
    assert spent <= budget and budget - spent < worst  # stopped only when the next could not fit
    assert len(standin.seen) == res.stats.succeeded
    assert res.df["error"].eq("not run").sum() == res.stats.remaining
    more = sweep.run(concurrency=3, budget_usd=1.0, progress=False)
    assert more.complete and len(standin.seen) == 10


def test_rate_limits_lower_concurrency_then_recover(standin, db):
    lab = Lab(
        base_url=standin.url,
        api_key=FAKE_KEY,
        db=db,
        quiet=True,
        retry=RetryPolicy(max_retries=8, base_s=0.001, cap_s=0.05),
    )
    standin.enqueue(*[Fault.http(429, retry_after=0.02)] * 6)
    sweep = lab.sweep([f"busy {i}" for i in range(30)], grid(max_tokens=[100]), tag="429")
    res = sweep.run(concurrency=8, progress=False)
    assert res.complete
    assert res.stats.rate_limited == 6 and res.stats.retries == 6
    assert res.stats.lowest_concurrency < 8
    assert "6 rate-limited" in str(res.stats)


def test_interrupt_leaves_nothing_half_written(db):
    with StandIn(delay_s=0.05) as slow:
        lab = Lab(base_url=slow.url, api_key=FAKE_KEY, db=db, quiet=True, retry=FAST_RETRY)
        sweep = lab.sweep(
            [f"interrupt {i}" for i in range(20)], grid(max_tokens=[100]), tag="ctrl-c"
        )

        async def main():
            task = asyncio.ensure_future(sweep.arun(concurrency=4, progress=False))
            await asyncio.to_thread(slow.wait_for, 8)
            task.cancel()  # what Ctrl-C does to the running sweep
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        log = lab.calls("ctrl-c")
        cancelled = log[log["error_type"] == "cancelled"]
        assert len(cancelled) >= 1
        cached = sum(entries for _, _, entries, _ in lab.engine.store.cache_stats()[0])
        assert cached == (log["error"].isna()).sum()  # only complete answers were cached
        plan = sweep.plan()
        assert (plan["status"] == "error").sum() == 0  # cancelled cells are not failures
        slow.reset()
        res = sweep.run(progress=False)
        assert res.complete and len(slow.seen) == 20 - cached


def test_works_inside_a_running_event_loop(lab, standin):
    sweep = lab.sweep(PROMPTS, grid(max_tokens=[300]), tag="loop")

    async def notebook_cell():
        return sweep.run(progress=False)  # a Jupyter cell: the kernel's loop is running

    assert asyncio.run(notebook_cell()).complete

    async def async_cell():
        return await lab.sweep(PROMPTS, grid(max_tokens=[301])).arun(progress=False)

    assert asyncio.run(async_cell()).complete


def test_scorer_output(lab, standin):
    rows = []
    for i, q in enumerate(PROMPTS):
        body = {"model": lab.model, "messages": [{"role": "user", "content": q}], "max_tokens": 300}
        right = synth_reply(body)["content"].split()[-1]
        rows.append({"prompt": q, "answer": right if i != 1 else "nope", "id": f"q{i}"})
    sweep = lab.sweep(pd.DataFrame(rows), grid(max_tokens=[300]), scorer=scorers.final_answer)
    res = sweep.run(progress=False)
    assert res.df["score"].tolist() == [1.0, 0.0, 1.0]
    assert res.df["prompt_id"].tolist() == ["q0", "q1", "q2"]
    assert "answer" in res.df.columns
    cpc = res.cost_per_correct(by="max_tokens")
    assert cpc.iloc[0]["correct"] == 2
    assert cpc.iloc[0]["usd_per_correct"] == pytest.approx(res.df["cost_usd"].sum() / 2)


def test_forecast_learns_from_the_log(lab, standin):
    first = lab.sweep([f"learn {i}" for i in range(4)], grid(max_tokens=[1000]), tag="f1")
    before = first.forecast()
    assert before.observed_from == 0 and before.worst_completion_tokens == 4000
    assert before.expected_completion_tokens == 4 * 600  # the prior: 60% of max_tokens
    res = first.run(progress=False)
    second = lab.sweep([f"other {i}" for i in range(4)], grid(max_tokens=[1000]), tag="f2")
    after = second.forecast()
    assert after.observed_from == 4
    mean = res.df["completion_tokens"].mean()
    assert after.expected_completion_tokens == pytest.approx(4 * mean, abs=4)
    assert after.expected_usd < after.worst_usd
    assert "at MiniMax M1 list prices" in str(after)


def test_scorers():
    assert scorers.boxed(r"so \boxed{\frac{1}{2}} and \boxed{42}") == "42"
    assert scorers.boxed(r"\boxed{\frac{1}{2}}") == r"\frac{1}{2}"
    assert scorers.last_number("it is 1,234 or 7.5 apples") == "7.5"
    assert scorers.final_answer({"content": r"x \boxed{12}", "answer": "12"}) == 1.0
    assert scorers.final_answer({"content": "the answer is 12.0", "answer": "12"}) == 1.0
    assert scorers.final_answer({"content": "", "answer": "12"}) == 0.0
    assert scorers.number_match({"content": "1,000", "answer": 1000}) == 1.0
    assert scorers.boxed_match({"content": "12", "answer": "12"}) == 0.0
    assert scorers.exact_match({"content": " Paris ", "answer": "paris"}) == 1.0
    assert scorers.contains({"content": "x"}) is None


def test_analysis_helpers():
    df = pd.DataFrame(
        {
            "max_tokens": [10, 10, 10, 10, 100, 100],
            "truncated": [True, True, False, False, False, False],
            "reasoning_tokens": [10, 10, 5, 6, 20, 30],
            "completion_tokens": [10, 10, 8, 8, 40, 40],
            "score": [0, 0, 1, 1, 1, 0],
            "cost_usd": [1.0] * 6,
            "error": [None] * 6,
        }
    )
    tr = truncation_rate(df, "max_tokens")
    assert tr["rate"].tolist() == [0.5, 0.0]
    assert tr.iloc[0]["ci_low"] == pytest.approx(wilson(2, 4)[0])
    assert reasoning_share(df).iloc[0] == 1.0
    s = summarize(df, "max_tokens", ["reasoning_tokens"])
    row = s.iloc[0]
    assert row["n"] == 4 and row["mean"] == pytest.approx(7.75)
    assert row["ci_low"] < row["mean"] < row["ci_high"]
    cpc = cost_per_correct(df, "max_tokens")
    assert cpc["usd_per_correct"].tolist() == [2.0, 2.0]


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
