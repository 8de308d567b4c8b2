"""The ledger (`mmlab.ledger`): the log checked against OpenRouter's generation records
(`Lab.reconcile`) and against the key's usage (`Lab.account`)."""

from __future__ import annotations

import json

import pytest
from helpers import FAKE_KEY, M1, R1, ROUTE_PROMPTS, models_sweep

from mmlab import Lab, grid
from mmlab.endpoints import OpenRouter
from mmlab.testing import Fault, StandIn


def test_reconcile_fills_missing_costs_from_generation(db):
    with StandIn(omit_cost=True) as server:
        server.state.generation_404s = 2  # the record lags behind the completion
        lab = Lab(
            endpoint=OpenRouter(server.url, FAKE_KEY), db=db, quiet=True, model="acme/unpriced"
        )
        r = lab.chat("bill me later", max_tokens=300)
        assert r.cost_source == "unknown"
        updated = lab.reconcile(wait_s=0.01)
        assert list(updated["generation_id"]) == [r.generation_id]
        assert server.state.generation_polls[r.generation_id] == 3
    row = lab.calls().iloc[0]
    assert row["cost_source"] == "billed" and row["cost_usd"] > 0
    assert row["spent_usd"] == row["cost_usd"]
    assert lab.chat("bill me later", max_tokens=300).cost_source == "billed"  # cache too


def test_reconcile_joins_generation_records_and_lists_disagreements(routed):
    lab, server = routed
    server.state.generation_404s = 0
    lab.sweep(ROUTE_PROMPTS, grid(model=[M1, R1], provider=["Novita"]), tag="ledger").run(
        progress=False
    )
    joined = lab.reconcile("ledger", wait_s=0.01)
    assert len(joined) == 6
    assert (joined["native_completion_tokens"] == joined["completion_tokens"]).all()
    assert (joined["total_cost"] == joined["cost_usd"]).all()
    assert (joined["generation_provider"] == "Novita").all()
    assert (joined["disagreements"] == "[]").all()
    assert joined["generation_time_s"].notna().all()
    polls = sum(server.state.generation_polls.values())
    assert len(lab.reconcile("ledger", wait_s=0.01)) == 6  # nothing fetched twice
    assert sum(server.state.generation_polls.values()) == polls
    server.state.native_skew = 3  # OpenRouter's record now disagrees with the usage block
    lab.chat("one more question", tag="ledger/skewed")
    skewed = lab.reconcile("ledger/skewed", wait_s=0.01)
    found = json.loads(skewed["disagreements"].iloc[0])
    assert found == [{"field": "completion_tokens",
                      "logged": int(skewed["completion_tokens"].iloc[0]),
                      "recorded": int(skewed["completion_tokens"].iloc[0]) + 3}]  # fmt: skip


def test_the_account_matches_the_log_within_one_percent(routed):
    lab, server = routed
    server.state.key_usage = 12.5  # what the key had spent before
    with lab.account(settle_s=0) as acct:
        res = models_sweep(lab, "accounted").run(progress=False)
    assert acct.agrees, acct
    assert acct.key_delta_usd == pytest.approx(res.df["spent_usd"].sum(), rel=1e-9)
    assert acct.logged_calls == 24 and "agrees within 1%" in repr(acct)
    assert lab.key()["usage"] == pytest.approx(12.5 + acct.key_delta_usd)
    # a stream cut after tokens were generated is billed: the log charges it its worst case
    # (more than the key paid, never less) until reconcile puts the bill in its place
    server.enqueue(Fault.midstream(502))
    with lab.account(settle_s=0) as cut:
        lab.chat("a cut stream", stream=True, max_tokens=300)
    assert not cut.agrees and cut.difference_usd < 0 and cut.logged_calls == 2
    assert "until lab.reconcile()" in repr(cut)
    lab.reconcile()
    assert lab.calls()["spent_usd"].sum() == pytest.approx(
        server.state.key_usage - 12.5, rel=1e-9
    )
