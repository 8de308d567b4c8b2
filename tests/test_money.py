"""Money: billed vs computed cost, no double counting, price tables, budgets, reconcile."""

from __future__ import annotations

import asyncio
import socket
import sqlite3

import pytest
from conftest import FAKE_KEY, FAST_RETRY

from mmlab import Lab
from mmlab.endpoints import OpenRouter
from mmlab.errors import BudgetExceeded, ConfigError
from mmlab.pricing import EMBEDDED, PER_M, Price, compare, parse_models, reprice
from mmlab.testing import Fault, StandIn
from mmlab.wire import Usage


def test_price_cost_never_adds_reasoning_twice():
    m1 = EMBEDDED["minimax/minimax-m1"]
    usage = Usage(prompt_tokens=1000, completion_tokens=5000, reasoning_tokens=4500)
    assert m1.cost(usage.prompt_tokens, usage.completion_tokens) == pytest.approx(
        1000 * 0.40 / PER_M + 5000 * 2.20 / PER_M
    )


def test_overrides_and_cache_reads():
    p = Price(prompt=1e-6, completion=2e-6, cache_read=0.1e-6, overrides=((200_000, 2e-6, None),))
    assert p.cost(1000, 10, cached_tokens=400) == pytest.approx(600e-6 + 400 * 0.1e-6 + 20e-6)
    assert p.rates(200_000) == (1e-6, 2e-6)  # strictly more than the threshold
    assert p.rates(200_001) == (2e-6, 2e-6)


def test_parse_models_reads_usd_per_token_strings():
    body = {
        "data": [
            {
                "id": "minimax/minimax-m1",
                "context_length": 1000000,
                "pricing": {
                    "prompt": "0.0000004",
                    "completion": "0.0000022",
                    "overrides": [{"min_prompt_tokens": 128000, "prompt": "0.0000008"}],
                },
                "top_provider": {"max_completion_tokens": 40000},
            },
            {"id": "openrouter/auto", "pricing": {"prompt": "-1", "completion": "-1"}},
        ]
    }
    table = parse_models(body, "test")
    m1 = table["minimax/minimax-m1"]
    assert m1.prompt == pytest.approx(0.4e-6) and m1.max_completion_tokens == 40000
    assert m1.rates(200_000)[0] == pytest.approx(0.8e-6)
    assert table.get("openrouter/auto") is None
    assert table.get("minimax/minimax-m1:extended") is m1


def test_computed_cost_uses_the_live_table_and_says_so(db):
    with StandIn(omit_cost=True) as server:
        server.state.model_prices["minimax/minimax-m1"] = ("0.000001", "0.000003")
        lab = Lab(endpoint=OpenRouter(server.url, FAKE_KEY), db=db, quiet=True)
        r = lab.chat("price me", max_tokens=300)
    assert r.cost_source == "computed" and "/models" in r.price_ref
    assert r.cost_usd == pytest.approx(
        r.usage.prompt_tokens * 1e-6 + r.usage.completion_tokens * 3e-6
    )
    row = lab.calls().iloc[0]
    assert row["cost_source"] == "computed" and row["price_ref"] == r.price_ref


def test_unknown_cost_when_no_price(db):
    with StandIn(omit_cost=True) as server:
        lab = Lab(
            endpoint=OpenRouter(server.url, FAKE_KEY), db=db, quiet=True, model="acme/unpriced"
        )
        r = lab.chat("price me", max_tokens=300)
    assert r.cost_usd is None and r.cost_source == "unknown"


def test_reprice_and_compare(lab):
    for i in range(3):
        lab.chat(f"question {i}", max_tokens=400)
    df = lab.calls()
    m1 = reprice(df, "minimax/minimax-m1")
    assert m1.tolist() == pytest.approx(df["cost_usd"].tolist())  # stand-in bills at M1 prices
    table = compare(df, ["minimax/minimax-m1", "deepseek/deepseek-r1", "openai/o4-mini"])
    assert list(table["model"]) == ["minimax/minimax-m1", "deepseek/deepseek-r1", "openai/o4-mini"]
    assert table.iloc[2]["total_usd"] > table.iloc[0]["total_usd"]
    with pytest.raises(ConfigError, match="no price"):
        reprice(df, "acme/unknown")


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


def test_mid_stream_failure_then_reconcile(standin, lab):
    standin.enqueue(Fault.midstream(502))
    r = lab.chat("eventually", max_tokens=300, stream=True)
    assert r.retries == 1 and r.cost_source == "billed"
