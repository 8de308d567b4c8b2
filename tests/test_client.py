"""The client (`mmlab.client`, `mmlab.retry`) against real faults on a loopback server:
classified retries, Retry-After, stalls and keep-alives, adaptive concurrency, an injected
transport."""

from __future__ import annotations

import json
import time

import pytest
from helpers import FAKE_KEY, cache_rows

from mmlab import Lab, RetryPolicy, Timeouts, grid
from mmlab.errors import APIError
from mmlab.testing import Fault, StandIn


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "fault",
    [
        Fault.http(429, retry_after=0.01),
        Fault.http(502),
        Fault.http(503),
        Fault.http(504),
        Fault.http(524),
        Fault.http(529),
        Fault.drop(),
        Fault.error200(502),
        Fault.midstream(502),
    ],
    ids=lambda f: f"{f.kind}{f.status or ''}",
)
def test_retryable_faults_are_retried_and_logged(lab, standin, db, fault, stream):
    standin.enqueue(fault)
    r = lab.chat("flaky", max_tokens=300, stream=stream)
    assert r.retries == 1 and r.content.startswith("The answer")
    assert len(standin.seen) == 2
    assert cache_rows(db) == 1
    row = lab.calls().iloc[-1]
    assert row["retries"] == 1 and row["error"] is None


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404])
def test_fatal_statuses_never_retry(lab, standin, db, status):
    standin.enqueue(Fault.http(status))
    with pytest.raises(APIError) as info:
        lab.chat("doomed", max_tokens=300)
    assert info.value.status == status and not info.value.retryable
    assert len(standin.seen) == 1
    assert cache_rows(db) == 0
    row = lab.calls().iloc[-1]
    assert row["status"] == status and row["error"] and row["spent_usd"] == 0


def test_retry_budget_is_bounded_and_partial_answers_are_never_cached(standin, db):
    lab = Lab(
        base_url=standin.url,
        api_key=FAKE_KEY,
        db=db,
        quiet=True,
        retry=RetryPolicy(max_retries=2, base_s=0.001, cap_s=0.01),
    )
    standin.enqueue(*[Fault.midstream(502)] * 5)
    with pytest.raises(APIError) as info:
        lab.chat("always cut", max_tokens=300, stream=True)
    assert info.value.mid_stream and info.value.attempts == 3
    assert len(standin.seen) == 3
    assert cache_rows(db) == 0
    # each attempt was cut after tokens reached us: each is charged, on a row of its own —
    # two retried attempts, then the call's own row with its retries
    df = lab.calls()
    assert list(df["cache_status"]) == ["retried", "retried", "miss"]
    assert df.iloc[-1]["retries"] == 2 and "502" in df.iloc[-1]["error"]
    assert (df["spent_usd"] > 0).all() and set(df["cost_source"]) == {"unknown"}
    assert info.value.spent_usd == pytest.approx(df["spent_usd"].sum())


def test_mid_stream_failure_then_reconcile(standin, lab):
    standin.enqueue(Fault.midstream(502))
    r = lab.chat("eventually", max_tokens=300, stream=True)
    assert r.retries == 1 and r.cost_source == "billed"


def test_retry_after_is_honoured(standin, db):
    from mmlab.client import CallStats, retry_wait

    # the decision: a 429's Retry-After is the wait, counted as a rate limit
    stats = CallStats()
    limited = APIError("slow down", status=429, retryable=True, retry_after=0.2)
    policy = RetryPolicy(base_s=0.001, cap_s=5.0)
    assert 0.2 <= retry_wait(limited, policy, stats) <= 0.2 * 1.1 + 1e-9
    assert stats.rate_limited == 1 and stats.retries == 1 and limited.attempts == 1
    # and the call path waits it
    lab = Lab(base_url=standin.url, api_key=FAKE_KEY, db=db, quiet=True, retry=policy)
    standin.enqueue(Fault.http(429, retry_after=0.2))
    started = time.perf_counter()
    r = lab.chat("wait for me", max_tokens=300)
    assert r.retries == 1 and time.perf_counter() - started >= 0.2


def test_stalled_stream_times_out_only_without_bytes(standin, db):
    lab = Lab(
        base_url=standin.url,
        api_key=FAKE_KEY,
        db=db,
        quiet=True,
        timeouts=Timeouts(stall_s=0.3),
        retry=RetryPolicy(max_retries=1, base_s=0.001),
    )
    standin.enqueue(Fault.stall(1.0))
    r = lab.chat("stall once", max_tokens=300, stream=True)
    assert r.retries == 1 and len(standin.seen) == 2
    assert lab.calls().iloc[-1]["error"] is None


def test_keepalives_keep_a_long_think_alive(db):
    # The server "thinks" for 1 s sending only keep-alive comments; the stall window is 0.3 s.
    with StandIn(think_s=1.0) as server:
        lab = Lab(
            base_url=server.url,
            api_key=FAKE_KEY,
            db=db,
            quiet=True,
            timeouts=Timeouts(stall_s=0.3),
            retry=RetryPolicy(max_retries=0),
        )
        r = lab.chat("slow thinker", max_tokens=300, stream=True)
        assert r.retries == 0 and r.content and len(server.seen) == 1
        assert r.ttft_s >= 1.0


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


def test_an_httpx_mock_transport_replaces_the_sockets(db):
    """Unit tests that need no socket can hand the engine an httpx transport."""
    import httpx

    seen = []

    def reply(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(
            200,
            json={
                "id": "gen-mock",
                "choices": [{"finish_reason": "stop", "message": {"content": "4"}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "cost": 0.5},
            },
        )

    lab = Lab(
        base_url="http://mock.invalid/v1",
        db=db,
        quiet=True,
        transport=httpx.MockTransport(reply),
    )
    r = lab.chat("2+2?", max_tokens=5)
    assert r.content == "4" and r.cost_usd == 0.5 and r.generation_id == "gen-mock"
    assert seen == [{"model": "minimax/minimax-m1", "messages": [
        {"role": "user", "content": "2+2?"}], "max_tokens": 5}]  # fmt: skip
