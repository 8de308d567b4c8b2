"""Models, providers and endpoints as sweep axes; the ledger (generation records, the key's
usage); OpenRouter's response cache and zeroed usage — all against loopback stand-ins."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest
from conftest import FAKE_KEY, FAST_RETRY

from mmlab import Lab, analysis, grid, plots
from mmlab.bundle import export_bundle
from mmlab.endpoints import Endpoint, OpenRouter
from mmlab.errors import APIError, ConfigError, RequestError
from mmlab.params import pin
from mmlab.retry import RetryPolicy
from mmlab.sweep import sweep_from_spec
from mmlab.testing import Fault, Provider, StandIn

M1, R1 = "minimax/minimax-m1", "deepseek/deepseek-r1"
PROMPTS = ["What is seven plus five?", "Name the largest planet.", "Why is the sky blue?"]
#: Two providers serving both models, at different prices.
PROVIDERS = {
    M1: [Provider("Novita", 0.40e-6, 2.20e-6), Provider("Fireworks", 0.55e-6, 2.00e-6)],
    R1: [Provider("Novita", 0.70e-6, 2.50e-6), Provider("Fireworks", 0.55e-6, 2.19e-6)],
}


@pytest.fixture
def routed(db):
    with StandIn(providers=PROVIDERS) as server:
        server.state.model_prices[R1] = ("0.00000055", "0.00000219")
        lab = Lab(endpoint=OpenRouter(server.url, FAKE_KEY), db=db, quiet=True, retry=FAST_RETRY)
        yield lab, server
        lab.close()


def _sweep(lab: Lab, tag: str = "m1-vs-r1"):
    return lab.sweep(PROMPTS, grid(model=[M1, R1], provider=["Novita", "Fireworks"],
                                   max_tokens=[256]), repeats=2, tag=tag)  # fmt: skip


def test_two_models_on_two_pinned_providers(routed, tmp_path):
    lab, server = routed
    sweep = _sweep(lab)
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

    again = _sweep(lab).run(progress=False)  # resume by construction: nothing left to send
    assert again.stats.hits == 24 and len(server.seen) == 24
    path = tmp_path / "models.bundle.jsonl.gz"
    export_bundle(lab.engine.store, path, tag=sweep.tag)
    replay = Lab(endpoint=OpenRouter(server.url), db=tmp_path / "replay.db", cache="replay",
                 bundle=path, quiet=True)  # fmt: skip
    replayed = _sweep(replay).run(progress=False)
    assert len(server.seen) == 24
    cols = ["model", "provider", "served_model", "content", "cost_usd", "completion_tokens"]
    pd.testing.assert_frame_equal(replayed.df[cols], df[cols])


def test_unpinned_providers_and_model_fallbacks_are_flagged(db):
    providers = {M1: [Provider("Novita"), Provider("Fireworks"), Provider("Minimax")]}
    with StandIn(providers=providers, served_as={"acme/x": "acme/x-lite"}) as server:
        lab = Lab(endpoint=OpenRouter(server.url, FAKE_KEY), db=db, quiet=True)
        with pytest.warns(UserWarning, match="served by more than one provider"):
            res = lab.sweep(PROMPTS, grid(temperature=[0.2, 1.0]), repeats=4).run(progress=False)
        assert res.df["provider"].nunique() > 1
        with pytest.warns(UserWarning, match=r"another model .*acme/x → acme/x-lite"):
            lab.sweep(PROMPTS, grid(temperature=[0.5]), model="acme/x").run(progress=False)
        calls = lab.calls()
        fell = calls[calls["model"] == "acme/x"]
        assert (fell["served_model"] == "acme/x-lite").all()


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
        sweep = lab.sweep(PROMPTS, grid(endpoint=["default", "vllm"]), max_tokens=128)
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


def test_reconcile_joins_generation_records_and_lists_disagreements(routed):
    lab, server = routed
    server.state.generation_404s = 0
    lab.sweep(PROMPTS, grid(model=[M1, R1], provider=["Novita"]), tag="ledger").run(
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
        res = _sweep(lab, "accounted").run(progress=False)
    assert acct.agrees, acct
    assert acct.key_delta_usd == pytest.approx(res.df["spent_usd"].sum(), rel=1e-9)
    assert acct.logged_calls == 24 and "agrees within 1%" in repr(acct)
    assert lab.key()["usage"] == pytest.approx(12.5 + acct.key_delta_usd)
    # a stream cut after tokens were generated is billed, not logged as spent: the key shows it
    server.enqueue(Fault.midstream(502))
    with lab.account(settle_s=0) as cut:
        lab.chat("a cut stream", stream=True, max_tokens=300)
    assert not cut.agrees and cut.difference_usd > 0
    assert "billed though they failed" in repr(cut)


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


def test_sweep_files_take_models_and_providers(routed):
    lab, server = routed
    spec = {"prompts": PROMPTS[:1], "params": {"grid": {"model": [M1, R1],
            "provider": ["Novita", "Fireworks"]}}}  # fmt: skip
    res = sweep_from_spec(spec, lab.engine).run(progress=False)
    assert len(res.df) == 4 and (res.df["provider"] == res.df["provider.only"]).all()


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


def test_a_named_openrouter_url_uses_the_labs_own_key_and_headers(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    lab = Lab(api_key=FAKE_KEY, db=tmp_path / "k.db", app_title="my study", quiet=True,
              endpoints={"or": "https://openrouter.ai/api/v1",
                         "vllm": "http://127.0.0.1:9/v1"})  # fmt: skip
    named = lab.engine.endpoints["or"]
    assert isinstance(named, OpenRouter) and named.api_key == FAKE_KEY
    assert named.headers.get("X-OpenRouter-Title") == "my study"
    # a self-hosted server is not handed the OpenRouter key
    named = lab.engine.endpoints
    assert named["vllm"].api_key is None and FAKE_KEY not in repr(named)
    lab.close()
