"""Lab end to end against the loopback stand-in: wire, cache, log, cost."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest
from conftest import FAKE_KEY, FAST_RETRY

from mmlab import Lab, Timeouts
from mmlab.endpoints import Endpoint, OpenRouter
from mmlab.errors import CacheMiss, ConfigError
from mmlab.testing import StandIn, synth_reply


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


def test_leaked_think_prefix_is_split(db):
    with StandIn(leak_think=True) as server:
        lab = Lab(base_url=server.url, api_key=FAKE_KEY, db=db, quiet=True)
        r = lab.chat("Think out loud please", max_tokens=400)
        s = lab.chat("Think out loud please", max_tokens=400, stream=True, sample=1)
    assert r.reasoning.startswith("step0") and "<think>" not in r.content
    assert r.reasoning_mode == "leaked" and r.content.startswith("The answer")
    assert (s.reasoning, s.content) == (r.reasoning, r.content)


def test_truncated_when_thinking_eats_the_budget(lab):
    r = lab.chat("A long and difficult question about many things", max_tokens=5)
    assert r.finish_reason == "length" and r.content == "" and r.truncated
    assert r.usage.reasoning_tokens == r.usage.completion_tokens == 5
    assert bool(lab.calls()["truncated"].iloc[0]) is True


def test_sync_inside_running_loop_and_async(lab):
    async def main():
        a = await lab.achat("async one", max_tokens=300)
        b = await asyncio.gather(*(lab.achat(f"q{i}", max_tokens=300) for i in range(5)))
        return a, b

    a, b = asyncio.run(main())
    assert not a.cache_hit and len({r.content for r in b}) >= 1

    async def notebook_cell():
        # what a Jupyter cell does: the sync API while the kernel's loop is running
        return lab.chat("from a running loop", max_tokens=300)

    assert asyncio.run(notebook_cell()).content


def test_sample_index_makes_distinct_entries(lab, standin):
    lab.chat("repeat me", max_tokens=300, sample=0)
    lab.chat("repeat me", max_tokens=300, sample=1)
    lab.chat("repeat me", max_tokens=300, sample=0)
    assert len(standin.seen) == 2
    assert list(lab.calls()["cache_status"]) == ["miss", "miss", "hit"]


def test_cache_key_spec(lab):
    k = lab.engine.prepare("q", temperature=1, max_tokens=10)
    assert k.key == lab.engine.prepare("q", temperature=1.0, max_tokens=10).key
    assert k.key != lab.engine.prepare("q", temperature=1.0, max_tokens=10, sample=1).key
    assert k.key != lab.engine.prepare("q", temperature=1.0, max_tokens=11).key
    routed = lab.engine.prepare("q", temperature=1.0, max_tokens=10, provider={"order": ["x"]})
    assert k.key != routed.key
    other = Lab(
        base_url=lab.endpoint.base_url,
        api_key="sk-another-key-entirely-123456",
        db=lab.engine.store.path,
        quiet=True,
        timeouts=Timeouts(read_s=5),
        retry=FAST_RETRY,
    )
    assert other.engine.prepare("q", temperature=1, max_tokens=10).key == k.key
    assert k.material["endpoint"] == lab.endpoint.base_url
    assert FAKE_KEY not in json.dumps(k.material)


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


def test_replay_miss_names_nearest_and_opens_no_socket(lab, standin, db, monkeypatch):
    lab.chat("recorded question", temperature=0.7, max_tokens=300)
    replay = Lab(base_url=standin.url, api_key=FAKE_KEY, db=db, cache="replay", quiet=True)
    connects = []

    def audit(event, args):
        if event == "socket.connect":
            connects.append(args)

    import sys

    sys.addaudithook(audit)
    monkeypatch.setattr(
        "mmlab.client.Http.client",
        lambda self: pytest.fail("replay must not create an HTTP client"),
    )
    assert replay.chat("recorded question", temperature=0.7, max_tokens=300).cache_hit
    with pytest.raises(CacheMiss) as info:
        replay.chat("recorded question", temperature=1.0, max_tokens=300)
    assert any("request.temperature" in d for d in info.value.differences)
    assert info.value.nearest["request"]["temperature"] == 0.7
    assert "temperature" in str(info.value)
    with pytest.raises(CacheMiss):
        asyncio.run(replay.achat("never recorded", max_tokens=1))
    assert connects == []
    assert len(standin.seen) == 1


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


@pytest.mark.parametrize(
    "url", ["not a url", "ftp://x/v1", "http://", "http://h:99999/v1", "http://h/v1?x=1", ""]
)
def test_malformed_base_url_is_a_config_error(url, db):
    with pytest.raises(ConfigError):
        Lab(base_url=url, db=db, quiet=True)


def test_env_key_is_never_sent_to_a_custom_base_url(standin, db, monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", FAKE_KEY)
    lab = Lab(base_url=standin.url, db=db, quiet=True)
    lab.chat("who am I", max_tokens=300)
    assert standin.seen[0].authorized is False
    assert isinstance(Lab(db=db, quiet=True).endpoint, OpenRouter)


def test_endpoint_choice_from_environment(standin, db, monkeypatch):
    monkeypatch.setenv("MMLAB_BASE_URL", standin.url)
    lab = Lab(db=db, quiet=True)
    assert lab.endpoint.base_url == standin.url and type(lab.endpoint) is Endpoint
    monkeypatch.setenv("OPENROUTER_API_KEY", FAKE_KEY)
    lab = Lab(db=db, quiet=True)
    assert lab.endpoint.base_url == "https://openrouter.ai/api/v1"
    assert lab.model == "minimax/minimax-m1"
    monkeypatch.setenv("MMLAB_MODEL", "minimax/minimax-m1:extended")
    assert Lab(db=db, quiet=True).model == "minimax/minimax-m1:extended"


def test_attribution_headers_are_configurable(standin, db):
    lab = Lab(
        base_url=standin.url,
        api_key=FAKE_KEY,
        db=db,
        quiet=True,
        app_url="https://example.org/study",
        app_title="my study",
    )
    lab.chat("headers", max_tokens=300)
    headers = standin.seen[0].headers
    assert headers["http-referer"] == "https://example.org/study"
    assert headers["x-openrouter-title"] == "my study"


def test_default_db_is_in_the_data_dir_not_the_cwd(standin, isolated_env, monkeypatch):
    lab = Lab(base_url=standin.url, quiet=True)
    assert str(lab.engine.store.path).startswith(str(isolated_env / "home" / "data"))
    project = isolated_env / "work" / ".mmlab"
    project.mkdir()
    assert Lab(base_url=standin.url, quiet=True).db == project / "mmlab.db"
    monkeypatch.setenv("MMLAB_DB", str(isolated_env / "chosen.db"))
    assert Lab(base_url=standin.url, quiet=True).db == isolated_env / "chosen.db"


def test_announces_endpoint_once(standin, db, capsys):
    Lab(base_url=standin.url, db=db, model="announce-test")
    Lab(base_url=standin.url, db=db, model="announce-test")
    err = capsys.readouterr().err
    assert err.count("mmlab: OpenAI-compatible endpoint at") == 1
    assert "model announce-test" in err


def test_m1_preset_is_documented_not_injected(lab, standin):
    from mmlab import M1_RECOMMENDED

    lab.chat("plain", max_tokens=300)
    assert "temperature" not in standin.seen[0].body and "top_p" not in standin.seen[0].body
    lab.chat("preset", max_tokens=300, **M1_RECOMMENDED)
    assert standin.seen[1].body["temperature"] == 1.0 and standin.seen[1].body["top_p"] == 0.95


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


def test_a_key_does_not_make_a_server_openrouter(standin, db):
    """A self-hosted server given a key is OpenAI-compatible: no /models, no reconcile."""
    lab = Lab(base_url=standin.url, api_key=FAKE_KEY, db=db, quiet=True, model="acme/x")
    assert type(lab.endpoint) is Endpoint and not lab.endpoint.capabilities.live_prices
    r = lab.chat("priced how?", max_tokens=300)
    assert r.cost_source == "billed"  # the stand-in bills usage.cost itself
    assert lab.prices.source.startswith("embedded")  # never fetched from the server
    with pytest.raises(ConfigError, match="generation records"):
        lab.reconcile()
    assert isinstance(Lab(base_url="https://openrouter.ai/api/v1", db=db, quiet=True).endpoint,
                      OpenRouter)  # fmt: skip


def test_key_material_is_assembled_exactly_as_its_canonical_json(lab):
    from mmlab import cachekey
    from mmlab.wire import canonical_json

    call = lab.engine.prepare(
        "ünïcode \\ \"quotes\"", system="s", sample=7, temperature=1, reasoning={"effort": "low"}
    )
    material = cachekey.key_material(lab.endpoint.identity, call.body, 7)
    assert call.material_json == canonical_json(material)
    assert call.key == cachekey.cache_key(material)
