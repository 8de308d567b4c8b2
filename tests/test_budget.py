"""Budgets: a worst case is reserved before a call and the cap holds across calls in flight,
restarts, tags, dead processes, sweeps and adaptive runs. (Budget holes found by the hostile
review are in test_trust.py; a budget under a fault storm is in test_reliability.py.)"""

from __future__ import annotations

import asyncio
import socket
import sqlite3

import pytest
from helpers import FAKE_KEY, FAST_RETRY, arms_sweep

from mmlab import Lab, grid, stop
from mmlab.errors import BudgetExceeded, ConfigError
from mmlab.testing import StandIn


def test_budget_refuses_before_sending(standin, db):
    lab = Lab(base_url=standin.url, api_key=FAKE_KEY, db=db, quiet=True, budget_usd=0.001)
    with pytest.raises(BudgetExceeded) as info:
        lab.chat("expensive", max_tokens=10_000)  # 10k * $2.2/M = $0.022 worst case
    assert info.value.needed_usd > 0.001 and standin.seen == []
    assert len(lab.calls()) == 0
    assert lab.chat("cheap", max_tokens=100).cost_usd > 0


def test_budget_counts_calls_in_flight(db):
    with StandIn(delay_s=0.05) as server:
        # each call's worst case: ~$0.00045; the budget fits 4 of them
        lab = Lab(
            base_url=server.url,
            api_key=FAKE_KEY,
            db=db,
            quiet=True,
            budget_usd=0.0019,
            retry=FAST_RETRY,
        )

        async def one(i):
            try:
                return await lab.achat(f"concurrent {i}", max_tokens=200)
            except BudgetExceeded:
                return None

        async def main():
            return await asyncio.gather(*(one(i) for i in range(12)))

        results = asyncio.run(main())
        sent = len(server.seen)
    done = [r for r in results if r is not None]
    assert 1 <= len(done) <= 4 and sent == len(done)
    assert lab.spent_usd() <= 0.0019
    assert lab.engine.store.reservations_held() == 0


def test_spend_survives_restarts(standin, db):
    first = Lab(base_url=standin.url, api_key=FAKE_KEY, db=db, quiet=True, budget_usd=1.0)
    r = first.chat("remember me", max_tokens=300)
    again = Lab(base_url=standin.url, api_key=FAKE_KEY, db=db, quiet=True, budget_usd=1.0)
    assert again.spent_usd() == pytest.approx(r.cost_usd)
    tight = Lab(
        base_url=standin.url, api_key=FAKE_KEY, db=db, quiet=True, budget_usd=r.cost_usd + 0.00001
    )
    with pytest.raises(BudgetExceeded):
        tight.chat("one more", max_tokens=300)


def test_budget_scoped_by_tag(standin, db):
    Lab(base_url=standin.url, api_key=FAKE_KEY, db=db, quiet=True, tag="a").chat(
        "spend in a", max_tokens=300
    )
    b = Lab(base_url=standin.url, api_key=FAKE_KEY, db=db, quiet=True, tag="b", budget_usd=0.01)
    assert b.spent_usd() == 0
    assert b.chat("spend in b", max_tokens=300).cost_usd > 0


def test_reservation_of_a_dead_process_is_dropped(standin, db):
    lab = Lab(base_url=standin.url, api_key=FAKE_KEY, db=db, quiet=True, budget_usd=0.01)
    with sqlite3.connect(db) as conn:  # what a process killed mid-call leaves behind
        conn.execute(
            "INSERT INTO reservations VALUES ('ghost', '*', 0.0099, ?, 999999999, 0)",
            (socket.gethostname(),),
        )
    assert lab.chat("after a crash", max_tokens=300).content


@pytest.mark.parametrize("bad", [-1, float("nan"), "lots", float("inf")])
def test_bad_budget_is_a_config_error(bad, db):
    with pytest.raises(ConfigError, match="budget"):
        Lab(base_url="http://127.0.0.1:9/v1", db=db, quiet=True, budget_usd=bad)


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


def test_the_budget_rule_and_budget_usd_both_hold(arms):
    lab, server = arms
    res = arms_sweep(lab, tag="capped").run(stop=stop.ci_width(width=0.01), budget_usd=0.004,
                                        progress=False)  # fmt: skip
    assert res.stats.stopped.startswith("budget")
    assert lab.spent_usd("capped") <= 0.004
    ruled = arms_sweep(lab, tag="ruled").run(stop=stop.ci_width(width=0.01) | stop.budget(0.003),
                                         progress=False)  # fmt: skip
    assert ruled.adaptive.reason.startswith("budget")
    assert lab.spent_usd("ruled") <= 0.003 and ruled.adaptive.usd <= 0.003
