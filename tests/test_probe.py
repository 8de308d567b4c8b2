"""Knob probes (`mmlab.probe`): does a knob move the output, with a paired control."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from helpers import FAKE_KEY, FAST_RETRY

from mmlab import Lab
from mmlab.endpoints import OpenRouter
from mmlab.errors import RequestError
from mmlab.testing import StandIn


def test_probe_says_whether_a_knob_moves_the_output(db):
    with StandIn(ignore={"top_k"}) as server:
        lab = Lab(endpoint=OpenRouter(server.url, FAKE_KEY), db=db, quiet=True, retry=FAST_RETRY)
        moved = lab.probe("temperature", [0.0, 1.5], prompt="Describe the sea at night.", n=8)
        ignored = lab.probe("top_k", [1, 50], prompt="Describe the sea at night.", n=8)
        seen = server.seen
    assert moved.moves and moved.p_value < 0.05, moved
    assert moved.df["mean_completion_tokens"].iloc[1] > moved.df["mean_completion_tokens"].iloc[0]
    assert not ignored.moves and ignored.identical_share == 1.0, ignored
    assert "shows no effect" in repr(ignored) and "moves the output" in repr(moved)
    # the stand-in is deterministic given the request: every control pair is identical, so
    # the exact test is 2^-8 when the knob moves outputs at all 8 seeds, and 1 when it never does
    assert moved.control_identical_share == 1.0 and moved.paired_p == pytest.approx(2**-8)
    assert ignored.control_identical_share == 1.0 and ignored.paired_p == 1.0
    assert "paired p=" in repr(moved)
    top_k = [s for s in seen if "top_k" in s.body]
    assert len(top_k) == 24  # 2 values x 8 seeds, plus 8 controls (the first value again)
    seeds = {(s.body.get("top_k"), s.body["seed"]) for s in top_k}
    assert len(seeds) == 16  # paired: seed i for sample i of every value
    assert all(s.body["provider"]["require_parameters"] for s in seen)


def test_probe_rejects_bad_input_before_any_call(lab, standin):
    for kwargs, field in [
        ({"param": "warmth", "values": [0, 1]}, "warmth"),
        ({"param": "temperature", "values": [0.5]}, "values"),
        ({"param": "temperature", "values": [0.0, 9.0]}, "temperature"),
        ({"param": "temperature", "values": [0.0, 1.0], "n": 1}, "n"),
    ]:
        with pytest.raises(RequestError) as info:
            lab.probe(prompt="hi", **kwargs)
        assert info.value.field == field
    assert standin.seen == []


def test_the_paired_control_test_against_its_closed_form():
    from mmlab.probe import paired_test

    def frame(values, outputs):
        return pd.DataFrame({"top_k": values, "seed": [i % 10 for i in range(len(values))],
                             "content": outputs, "completion_tokens": [5] * len(values),
                             "error": [None] * len(values)})  # fmt: skip

    # 10 seeds; the treatment differs at 7 of them, every control pair is identical
    main = frame([1] * 10 + [50] * 10,
                 [f"a{i}" for i in range(10)] + [f"b{i}" if i < 7 else f"a{i}" for i in range(10)])
    control = pd.concat([frame([1] * 10, [f"a{i}" for i in range(10)])] * 2)
    p, same = paired_test(main, control, "top_k", 1, 50)
    assert same == 1.0 and p == pytest.approx(2**-7)
    # controls differ where the treatment does not: evidence against "moves", p = 1 ...
    noisy = pd.concat([frame([1] * 10, [f"a{i}" for i in range(10)]),
                       frame([1] * 10, [f"c{i}" if i < 3 else f"a{i}" for i in range(10)])])
    untouched = frame([1] * 10 + [50] * 10, [f"a{i}" for i in range(20)][:10] * 2)
    p, same = paired_test(untouched, noisy, "top_k", 1, 50)
    assert same == 0.7 and p == 1.0
    # ... and 4 vs 3 discordant seeds: P(X >= 4 | X ~ Bin(7, 1/2)) = 64/128
    mixed = frame([1] * 10 + [50] * 10, [f"a{i}" for i in range(10)]
                  + [f"b{i}" if 3 <= i < 7 else f"a{i}" for i in range(10)])  # fmt: skip
    p, _ = paired_test(mixed, noisy, "top_k", 1, 50)
    assert p == pytest.approx(sum(math.comb(7, k) for k in range(4, 8)) / 2**7)
