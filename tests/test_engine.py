"""The call path (`mmlab.engine`) against the loopback stand-in: prepare → lookup (hit, miss,
refresh, off) → send, the log rows it writes, and routing between models, providers and
endpoints."""

from __future__ import annotations

import json
import sqlite3
import warnings

import pandas as pd
import pytest
from helpers import FAKE_KEY, M1, PROVIDERS, R1, ROUTE_PROMPTS, models_sweep

from mmlab import Lab, analysis, grid, plots
from mmlab.bundle import export_bundle
from mmlab.endpoints import Endpoint, OpenRouter
from mmlab.errors import APIError, ConfigError, RequestError
from mmlab.params import pin
from mmlab.retry import RetryPolicy
from mmlab.testing import Provider, StandIn, synth_reply


# --- prepare → lookup → send, and the log -----------------------------------------------------
def test_miss_then_free_hit_with_billed_cost(lab, standin):
    r1 = lab.chat("What is 2+2?", temperature=0.5, max_tokens=300)
    r2 = lab.chat("What is 2+2?", temperature=0.5, max_tokens=300)
    assert not r1.cache_hit and r2.cache_hit
    assert r1.content == r2.content and r1.reasoning == r2.reasoning
    assert len(standin.seen) == 1
    expected = synth_reply(standin.seen[0].body)
    assert r1.usage.completion_tokens == expected["completion_tokens"]
    assert r1.usage.reasoning_tokens == expected["reasoning_tokens"] > 0
    assert r1.cost_source == "billed" and r1.cost_usd > 0
    assert r1.spent_usd == r1.cost_usd and r1.saved_usd == 0
    assert r2.spent_usd == 0 and r2.saved_usd == r1.cost_usd and r2.cost_usd == r1.cost_usd
    df = lab.calls()
    assert list(df["cache_status"]) == ["miss", "hit"]
    assert list(df["cache_hit"]) == [False, True]
    assert df["spent_usd"].sum() == pytest.approx(r1.cost_usd)
    assert df["saved_usd"].sum() == pytest.approx(r1.cost_usd)
    assert list(df["cost_source"]) == ["billed", "billed"]
    assert list(df["temperature"]) == [0.5, 0.5]
    assert df.loc[0, "generation_id"] == r1.generation_id and r1.provider == "StandIn"


def test_a_hit_row_is_what_the_hit_was_whatever_its_caller_does_to_the_result_after(lab):
    # hit rows are assembled when they are written (off the hit's path): their figures and
    # time are read at the hit, so a caller changing its result before the write is not logged
    lab.chat("What is 3+3?", max_tokens=300)
    hit = lab.chat("What is 3+3?", max_tokens=300)
    cost, tokens, call_id = hit.cost_usd, hit.usage.completion_tokens, hit.call_id
    hit.cost_usd, hit.usage.completion_tokens, hit.call_id = 99.0, 1, "changed"
    hit.saved_usd = 42.0
    row = lab.calls().iloc[-1]
    assert row["cache_status"] == "hit" and row["call_id"] == call_id
    assert row["cost_usd"] == pytest.approx(cost) and row["completion_tokens"] == tokens
    assert row["saved_usd"] == pytest.approx(cost)
    assert row["ts"] >= lab.calls().iloc[0]["ts"]


def test_stream_collects_reasoning_usage_and_ttft(lab, standin):
    deltas = []
    r = lab.chat(
        "Explain the sky in a few words", stream=True, on_delta=deltas.append, max_tokens=500
    )
    body = standin.seen[0].body
    assert body["stream"] is True
    expected = synth_reply({k: v for k, v in body.items() if k != "stream"})
    assert r.reasoning.split() == expected["reasoning"].split()
    assert r.content == expected["content"]
    assert r.usage.reasoning_tokens == expected["reasoning_tokens"]
    assert r.cost_usd > 0 and r.cost_source == "billed"
    assert r.ttft_s is not None and 0 < r.ttft_s <= r.latency_s
    kinds = {k for k, _ in deltas}
    assert kinds == {"reasoning", "content"}
    # the same request unstreamed is the same cache entry (stream is framing, not content)
    again = lab.chat("Explain the sky in a few words", max_tokens=500)
    assert again.cache_hit and again.content == r.content


def test_stream_and_plain_agree(lab):
    a = lab.chat("Same question", max_tokens=400, sample=1)
    b = lab.chat("Same question", max_tokens=400, sample=2, stream=True)
    assert (a.content, a.usage.completion_tokens) == (b.content, b.usage.completion_tokens)


def test_truncated_when_thinking_eats_the_budget(lab):
    r = lab.chat("A long and difficult question about many things", max_tokens=5)
    assert r.finish_reason == "length" and r.content == "" and r.truncated
    assert r.usage.reasoning_tokens == r.usage.completion_tokens == 5
    assert bool(lab.calls()["truncated"].iloc[0]) is True


def test_sample_index_makes_distinct_entries(lab, standin):
    lab.chat("repeat me", max_tokens=300, sample=0)
    lab.chat("repeat me", max_tokens=300, sample=1)
    lab.chat("repeat me", max_tokens=300, sample=0)
    assert len(standin.seen) == 2
    assert list(lab.calls()["cache_status"]) == ["miss", "miss", "hit"]


def test_refresh_always_calls_and_overwrites(lab, standin, db):
    lab.chat("refresh me", max_tokens=300)
    fresh = Lab(base_url=standin.url, api_key=FAKE_KEY, db=db, cache="refresh", quiet=True)
    r = fresh.chat("refresh me", max_tokens=300)
    assert not r.cache_hit and len(standin.seen) == 2
    assert lab.chat("refresh me", max_tokens=300).cache_hit
    assert list(lab.calls()["cache_status"]) == ["miss", "refresh", "hit"]


def test_off_neither_reads_nor_writes(standin, db):
    lab = Lab(base_url=standin.url, api_key=FAKE_KEY, db=db, cache="off", quiet=True)
    lab.chat("no cache", max_tokens=300)
    lab.chat("no cache", max_tokens=300)
    assert len(standin.seen) == 2
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM cache").fetchone()[0] == 0
    assert list(lab.calls()["cache_status"]) == ["off", "off"]


# --- routing: models, providers and endpoints -------------------------------------------------
def test_two_models_on_two_pinned_providers(routed, tmp_path):
    lab, server = routed
    sweep = models_sweep(lab)
    forecast = sweep.forecast()
    table = forecast.table().set_index("model")
    assert set(table.index) == {M1, R1} and table["calls"].tolist() == [12, 12]
    # each model at its own price: R1's list price is dearer per output token than M1's
    assert table.loc[R1, "worst_usd"] != table.loc[M1, "worst_usd"]
    assert forecast.worst_usd == pytest.approx(table["worst_usd"].sum())
    assert f"{M1} @ " in str(forecast) and f"{R1} @ " in str(forecast)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pinned and comparable: nothing to warn about
        res = sweep.run(progress=False)
    df = res.df
    assert len(df) == 24 and res.complete and len(server.seen) == 24
    assert (df["provider"] == df["provider.only"]).all()  # served by the pinned provider
    assert (df["served_model"] == df["model"]).all()
    assert df["provider.allow_fallbacks"].eq(False).all()
    sent = {(s.body["model"], json.dumps(s.body["provider"], sort_keys=True)) for s in server.seen}
    assert (R1, json.dumps(pin("Fireworks"), sort_keys=True)) in sent and len(sent) == 4
    # every cell billed at its provider's price for its model
    for row in df.itertuples():
        p = next(p for p in PROVIDERS[row.model] if p.name == row.provider)
        expected = row.prompt_tokens * p.prompt_price + row.completion_tokens * p.completion_price
        assert row.cost_usd == pytest.approx(expected) and row.cost_source == "billed"
    summary = res.summary(["model", "provider"], ["cost_usd", "completion_tokens"])
    assert len(summary) == 8 and set(summary["model"]) == {M1, R1}
    assert len(plots.reasoning_distribution(df, by="model").data) == 2
    table = analysis.compare_providers(df)
    assert len(table) == 4 * len(analysis.PROVIDER_METRICS)
    cost = table[table["metric"] == "cost_usd"].set_index(["model", "provider"])["mean"]
    assert cost[(M1, "Novita")] == pytest.approx(
        df[(df["model"] == M1) & (df["provider"] == "Novita")]["cost_usd"].mean()
    )
    fig = plots.providers(table)
    assert len(fig.data) == 4 and fig.layout.yaxis4.title.text == "USD per 1,000 calls"
    # the cost panel is per 1,000 calls: bar heights are the table's means × 1000
    bars = dict(zip(fig.data[3].x, fig.data[3].y, strict=True))
    assert bars["minimax-m1 · Novita"] == pytest.approx(1000 * cost[(M1, "Novita")])
    calls = lab.calls()
    assert set(calls["model"]) == {M1, R1} and (calls["served_model"] == calls["model"]).all()
    by_model = lab.summary("model").set_index("model")
    assert by_model.loc[M1, "calls"] == by_model.loc[R1, "calls"] == 12

    again = models_sweep(lab).run(progress=False)  # resume by construction: nothing left to send
    assert again.stats.hits == 24 and len(server.seen) == 24
    path = tmp_path / "models.bundle.jsonl.gz"
    export_bundle(lab.engine.store, path, tag=sweep.tag)
    replay = Lab(endpoint=OpenRouter(server.url), db=tmp_path / "replay.db", cache="replay",
                 bundle=path, quiet=True)  # fmt: skip
    replayed = models_sweep(replay).run(progress=False)
    assert len(server.seen) == 24
    cols = ["model", "provider", "served_model", "content", "cost_usd", "completion_tokens"]
    pd.testing.assert_frame_equal(replayed.df[cols], df[cols])


def test_a_pinned_provider_that_is_down_fails_rather_than_falls_back(db):
    providers = {M1: [Provider("Novita", down=1.0), Provider("Fireworks")]}
    with StandIn(providers=providers) as server:
        lab = Lab(endpoint=OpenRouter(server.url, FAKE_KEY), db=db, quiet=True,
                  retry=RetryPolicy(max_retries=1, base_s=0.001, cap_s=0.01))  # fmt: skip
        with pytest.raises(APIError) as info:
            lab.chat("hi", provider="Novita")
        assert info.value.status == 503 and "provider: Novita" in str(info.value)
        r = lab.chat("hi", provider={"order": ["Novita", "Fireworks"]})
        assert r.provider == "Fireworks"  # fallbacks allowed: the next provider served it


def test_endpoint_as_an_axis(db):
    with StandIn() as router, StandIn() as vllm:
        lab = Lab(endpoint=OpenRouter(router.url, FAKE_KEY), db=db, quiet=True,
                  endpoints={"vllm": Endpoint(vllm.url)})  # fmt: skip
        sweep = lab.sweep(ROUTE_PROMPTS, grid(endpoint=["default", "vllm"]), max_tokens=128)
        assert len(sweep.forecast().by_model) == 2
        res = sweep.run(progress=False)
        assert len(router.seen) == len(vllm.seen) == 3
        # provider routing only where the endpoint has it
        assert all(s.body["provider"]["require_parameters"] for s in router.seen)
        assert all("provider" not in s.body for s in vllm.seen)
        assert res.df.groupby("endpoint")["cache_key"].nunique().eq(3).all()
        assert set(lab.calls()["endpoint"]) == {OpenRouter(router.url).identity,
                                                Endpoint(vllm.url).identity}  # fmt: skip
        with pytest.raises(RequestError) as info:
            lab.chat("hi", endpoint="ollama")
        assert info.value.field == "endpoint" and "vllm" in str(info.value)
    with pytest.raises(ConfigError, match="default"):
        Lab(base_url=router.url, db=db, quiet=True, endpoints={"default": router.url})
