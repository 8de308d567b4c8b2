"""The cache key (`mmlab.cachekey`): what it is made of, its canonical JSON, and the
nearest-entry explanation of a replay miss."""

from __future__ import annotations

import asyncio
import json

import pytest
from helpers import FAKE_KEY, FAST_RETRY

from mmlab import Lab, Timeouts, grid
from mmlab.endpoints import OpenRouter
from mmlab.errors import CacheMiss


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


def test_key_material_is_assembled_exactly_as_its_canonical_json(lab):
    from mmlab import cachekey
    from mmlab.wire import canonical_json

    call = lab.engine.prepare(
        "ünïcode \\ \"quotes\"", system="s", sample=7, temperature=1, reasoning={"effort": "low"}
    )
    material = cachekey.key_material(lab.endpoint.identity, call.body, 7)
    assert call.material_json == canonical_json(material)
    assert call.key == cachekey.cache_key(material)


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


def test_a_sweep_cells_replay_miss_is_explained_by_its_own_sweep(lab, standin, db):
    lab.sweep(["What is two plus two?", "Name a prime number."], grid(max_tokens=[64]),
              temperature=0.0, seed=7, tag="mine").run(progress=False)  # fmt: skip
    # an unrelated call one field away from the missing cell (a sweep's cells also carry
    # provider routing); its own sweep's entries are two fields away
    lab.chat("Name a colour.", max_tokens=65, temperature=0.0, seed=7, tag="other")
    replay = Lab(endpoint=OpenRouter(standin.url, FAKE_KEY), db=db, cache="replay", quiet=True)
    more = replay.sweep(["Name a colour."], grid(max_tokens=[65]), temperature=0.0, seed=7,
                        tag="mine")  # fmt: skip
    with pytest.raises(CacheMiss) as info:
        more.run(progress=False)
    near = info.value.nearest["request"]
    assert near["max_tokens"] == 64 and near["provider"] == {"require_parameters": True}
    assert "nearest entry of tag 'mine'" in str(info.value)
    assert len(info.value.differences) == 2  # the prompt and max_tokens
    # a call with no tagged neighbours still gets the model's nearest entry
    with pytest.raises(CacheMiss) as loose:
        replay.chat("Name a colour.", max_tokens=65, temperature=0.0, seed=8, tag="fresh")
    assert loose.value.nearest["request"]["seed"] == 7
    assert "nearest entry of tag" not in str(loose.value)
    replay.close()


def test_canonical_json_is_the_standard_librarys_spelling_whatever_the_value():
    # cache keys hash this text: its fast path (orjson) must never spell a value differently
    # from `json` — floats of every magnitude and bit pattern, NaN and infinities, big
    # integers, every character, non-ASCII keys, the kinds of value a body holds
    import math
    import random
    import struct

    from mmlab import jsonfast
    from mmlab.wire import canonical_json

    def stdlib(obj):
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    rng = random.Random(7)
    floats = [rng.random() * 10.0**e * sign
              for e in range(-30, 30) for sign in (1, -1) for _ in range(40)]  # fmt: skip
    floats += [struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0] for _ in range(20_000)]
    floats += [0.0, -0.0, 0.5, 1.0, 1e-5, 9.99e-5, 1e-4, 1e15, 1e16, 5e-324, math.nan, math.inf]
    fast = 0
    for x in floats:
        value = {"temperature": x, "messages": [{"role": "user", "content": "q"}]}
        assert canonical_json(value) == stdlib(value)
        fast += jsonfast.canonical(value) is not None
    assert fast > 1_500  # the fast path is taken: floats from 1e-4 to 1e16 need no fallback
    text = "".join(chr(i) for i in range(0x3000)) + "\U0001f600 \\ \" / 3e5 null"
    odd = [
        text, {"é": 1, "z": [True, None, False], "a": {"b": (1, 2)}, "\U0001f600": ""},
        2**64 + 1, -(2**63), {1: "int key"}, "\ud800 lone surrogate", [0.0001, 123456789.125],
    ]  # fmt: skip
    for value in odd:
        assert canonical_json(value) == stdlib(value)
    assert jsonfast.canonical({"max_tokens": 64, "temperature": 0.7}) is not None
