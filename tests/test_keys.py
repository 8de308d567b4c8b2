"""The one API-key policy (`mmlab.endpoints.resolve`), for every way an endpoint can be named —
``base_url=``, ``endpoint=``, ``endpoints={...}`` and the environment — with and without the
environment's key: the environment's OpenRouter key goes only to OpenRouter, an explicit key
only to the server it was given for, and a key only over https (or to this machine)."""

from __future__ import annotations

import pytest
from helpers import FAKE_KEY

from mmlab import ConfigError, Lab
from mmlab.endpoints import Endpoint, OpenRouter, key_for
from mmlab.testing import StandIn

OR_URL = "https://openrouter.ai/api/v1"
ENV_KEY = "sk-or-ENV-not-a-real-key-0000000000"


def _sent(endpoint: Endpoint) -> str | None:
    """The key a request to `endpoint` carries (headers are built in one place)."""
    auth = endpoint.request_headers().get("Authorization")
    return auth.removeprefix("Bearer ") if auth else None


@pytest.fixture(params=[False, True], ids=["no-env-key", "env-key"])
def env_key(request, monkeypatch) -> str | None:
    if request.param:
        monkeypatch.setenv("OPENROUTER_API_KEY", ENV_KEY)
        return ENV_KEY
    return None


def test_base_url_openrouter_gets_the_environment_key(tmp_path, env_key):
    lab = Lab(base_url=OR_URL, db=tmp_path / "k.db", quiet=True)
    assert isinstance(lab.endpoint, OpenRouter)
    assert _sent(lab.endpoint) == env_key  # the two ways of naming OpenRouter now agree


def test_named_openrouter_url_gets_the_same_key_as_base_url(tmp_path, env_key):
    lab = Lab(base_url="http://127.0.0.1:9/v1", db=tmp_path / "k.db", quiet=True,
              endpoints={"or": OR_URL})  # fmt: skip
    assert _sent(lab.engine.endpoints["or"]) == env_key
    assert _sent(lab.endpoint) is None  # a custom URL never gets the environment's key


def test_base_url_custom_server_gets_only_an_explicit_key(env_key, tmp_path):
    with StandIn() as server:
        lab = Lab(base_url=server.url, db=tmp_path / "a.db", quiet=True)
        lab.chat("no key", max_tokens=8)
        mine = Lab(base_url=server.url, api_key=FAKE_KEY, db=tmp_path / "b.db", quiet=True)
        mine.chat("with key", max_tokens=8)
        assert [s.authorized for s in server.seen] == [False, True]


def test_endpoint_object_sends_exactly_the_key_it_was_given(env_key, tmp_path):
    with StandIn() as server:
        plain = Lab(endpoint=Endpoint(server.url), db=tmp_path / "a.db", quiet=True)
        assert _sent(plain.endpoint) is None
        given = Lab(endpoint=OpenRouter(server.url, FAKE_KEY), db=tmp_path / "b.db", quiet=True)
        assert _sent(given.endpoint) == FAKE_KEY


def test_named_custom_url_gets_no_key_unless_it_is_the_labs_own_server(env_key, tmp_path):
    with StandIn() as mine, StandIn() as other:
        lab = Lab(base_url=mine.url, api_key=FAKE_KEY, db=tmp_path / "k.db", quiet=True,
                  endpoints={"same": mine.url.replace("/api/v1", "/v2"),
                             "other": other.url})  # fmt: skip
        assert _sent(lab.engine.endpoints["same"]) == FAKE_KEY  # same origin as it was given for
        assert _sent(lab.engine.endpoints["other"]) is None  # another server: never
        lab.chat("x", max_tokens=8, endpoint="other")
        assert other.seen[-1].authorized is False


def test_environment_only(monkeypatch, tmp_path, env_key):
    # no base_url: the environment's key means OpenRouter; else MMLAB_BASE_URL, keyless
    with StandIn() as server:
        monkeypatch.setenv("MMLAB_BASE_URL", server.url)
        lab = Lab(db=tmp_path / "k.db", quiet=True)
        if env_key:
            assert isinstance(lab.endpoint, OpenRouter) and _sent(lab.endpoint) == ENV_KEY
        else:
            assert lab.endpoint.base_url == server.url and _sent(lab.endpoint) is None
        monkeypatch.setenv("MMLAB_BASE_URL", OR_URL)
        monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
        assert _sent(Lab(db=tmp_path / "k2.db", quiet=True).endpoint) is None


def test_keys_only_travel_over_https_or_to_this_machine(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENROUTER_API_KEY", ENV_KEY)
    with pytest.raises(ConfigError, match="plain http"):
        Lab(db=tmp_path / "a.db", quiet=True, endpoints={"or": "http://openrouter.ai/api/v1"})
    with pytest.raises(ConfigError, match="plain http"):
        Lab(base_url="http://gpu-box:8000/v1", api_key=FAKE_KEY, db=tmp_path / "b.db")
    with pytest.raises(ConfigError, match="plain http"):
        Endpoint("http://10.0.0.5:8000/v1", FAKE_KEY)
    for url in ("http://127.0.0.1:8000/v1", "http://localhost:8000/v1", "http://[::1]:8/v1"):
        assert _sent(Endpoint(url, FAKE_KEY)) == FAKE_KEY
    assert _sent(Endpoint("http://gpu-box:8000/v1")) is None  # no key: plain http is fine


def test_key_for_is_the_policy_in_one_function(monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", ENV_KEY)
    assert key_for(OR_URL) == ENV_KEY
    assert key_for("https://example.org/v1") is None
    assert key_for("https://example.org/v1", FAKE_KEY) == FAKE_KEY
    assert key_for("https://example.org/v1", FAKE_KEY, given_for=OR_URL) is None
    assert key_for("https://other.org/v1", FAKE_KEY, given_for="https://example.org/x") is None


# --- which endpoint, and whose key, through a Lab ---------------------------------------------
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
