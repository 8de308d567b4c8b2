"""Prices (`mmlab.pricing`): price tables, the cost of a call (billed or computed, never
reasoning twice), what is not billed, and repricing the log."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from helpers import FAKE_KEY, M1, R1

from mmlab import Lab
from mmlab.endpoints import OpenRouter
from mmlab.endpoints.base import Capabilities, Endpoint
from mmlab.errors import ConfigError
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


def test_the_response_cache_stays_off_and_zeroed_usage_is_not_free_compute(lab, standin):
    with pytest.raises(ConfigError, match="X-OpenRouter-Cache"):
        OpenRouter(standin.url, FAKE_KEY, headers={"x-openrouter-cache": "true"})
    lab.chat("hello there", max_tokens=64)
    assert standin.seen[-1].headers["x-openrouter-cache"] == "false"
    answer = {"role": "assistant", "content": "a cached answer"}
    zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cost": 0}
    body = {"id": "gen-z", "model": M1, "provider": "Minimax", "usage": zero,
            "choices": [{"index": 0, "finish_reason": "stop", "message": answer}]}  # fmt: skip
    standin.enqueue(Fault.raw(json.dumps(body), headers={"X-OpenRouter-Cache-Status": "HIT"}))
    r = lab.chat("served from their cache")
    assert r.cost_source == "provider_cache" and r.cost_usd == 0
    standin.enqueue(Fault.raw(json.dumps(body)))  # no header: all-zero usage says the same
    assert lab.chat("zeroed without a header").cost_source == "provider_cache"
    empty = {**body, "usage": {"prompt_tokens": 30, "completion_tokens": 0, "cost": 0},
             "choices": [{"index": 0, "finish_reason": "stop",
                          "message": {"role": "assistant", "content": ""}}]}  # fmt: skip
    standin.enqueue(Fault.raw(json.dumps(empty)))
    assert lab.chat("nothing came back").cost_source == "refund"
    sources = lab.calls()["cost_source"].tolist()
    assert sources[-3:] == ["provider_cache", "provider_cache", "refund"]
    # a refund with no billed cost spends nothing: not a price computed from prompt tokens
    unbilled = {**empty, "usage": {"prompt_tokens": 50_000, "completion_tokens": 0}}
    standin.enqueue(Fault.raw(json.dumps(unbilled)))
    r = lab.chat("nothing, and no cost said")
    assert (r.cost_source, r.cost_usd, r.spent_usd) == ("refund", 0.0, 0.0)
    # a cache HIT the provider says it billed keeps its billed cost
    billed = {**body, "usage": {**zero, "cost": 0.5}}
    standin.enqueue(Fault.raw(json.dumps(billed), headers={"X-OpenRouter-Cache-Status": "HIT"}))
    r = lab.chat("a billed hit")
    assert (r.cost_source, r.cost_usd) == ("billed", 0.5)


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


# --- repricing where people look ---------------------------------------------------------------
class FreeStandIn(Endpoint):
    """The stand-in played as a free local model (what the embedded model is)."""

    capabilities = Capabilities(free=True)


def test_one_call_reprices_as_a_result_a_dict_or_a_one_row_frame(lab):
    r = lab.chat("price one call", max_tokens=400)
    u = r.usage
    r1 = EMBEDDED[R1].cost(u.prompt_tokens, u.completion_tokens, u.cached_tokens)
    assert r.cost_at(R1) == pytest.approx(r1)
    assert r.cost_at() == pytest.approx(r.cost_usd)  # M1 by default: the stand-in bills M1's
    assert reprice(r, R1) == pytest.approx(r1)
    assert reprice(r.to_dict(), R1) == pytest.approx(r1)
    one = pd.DataFrame([r.to_dict()])  # once a KeyError: 'prompt_tokens'
    assert reprice(one, R1).tolist() == pytest.approx([r1])
    assert reprice(lab.calls().iloc[-1], R1) == pytest.approx(r1)  # one log row
    assert reprice(lab.calls().tail(1), R1).tolist() == pytest.approx([r1])


def test_a_free_models_log_reprices_at_m1_what_it_spent_and_the_cache_saved(db):
    with StandIn(omit_cost=True) as server:
        lab = Lab(endpoint=FreeStandIn(server.url), db=db, quiet=True, tag="study")
        first = lab.chat("a local question", max_tokens=300)
        lab.chat("another local question", max_tokens=300)
        hit = lab.chat("a local question", max_tokens=300)
        assert hit.cache_hit and hit.saved_usd == 0.0 and first.cost_source == "local"
        plain = lab.summary()
        assert plain["spent_usd"].sum() == 0 and "repriced_spent_usd" not in plain
        s = lab.summary(reprice=M1)
        assert s["spent_usd"].sum() == 0 and s["saved_usd"].sum() == 0  # free: $0 both
        calls = lab.calls()
        paid = calls[calls["cache_status"] == "miss"]
        assert s["repriced_spent_usd"].sum() == pytest.approx(reprice(paid, M1).sum())
        assert s["repriced_saved_usd"].sum() == pytest.approx(hit.cost_at(M1))
        assert s.attrs["reprice"] == f"at {M1} list prices (embedded:2026-11)"
        by_model = lab.summary(["model"], reprice=R1)
        assert by_model["repriced_saved_usd"].iloc[0] == pytest.approx(hit.cost_at(R1))
        with pytest.raises(ConfigError, match="no price"):
            lab.summary(reprice="acme/unknown")
        lab.close()
