"""The result record, declared once (`mmlab.fields`): one call shows the same values and the
same dtypes in ``lab.calls()``, ``res.df`` and ``sweep.plan()``; the cache form, its check and
the log row are derived from the declaration."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest

from mmlab import fields, grid, pin
from mmlab.confidence import encode
from mmlab.fields import CACHED, check_response
from mmlab.result import Response, Result
from mmlab.wire import Usage


def _sweep(lab):
    # a sweep at temperature=1 (an int, as people write it), a reasoning effort and a pinned
    # provider: the three ways a frame used to disagree with the log
    space = grid(temperature=[0, 1], reasoning=[{"effort": "low"}, {"effort": "high"}],
                 provider=[pin("StandIn")])  # fmt: skip
    return lab.sweep(["What is 2 + 2?", "What is 3 + 5?"], space, repeats=2, tag="record")


def test_calls_and_res_df_agree_column_by_column(lab):
    sweep = _sweep(lab)
    res = sweep.run(progress=False)
    log = lab.calls("record")
    assert len(log) == len(res.df) == 16
    merged = res.df.merge(log, on="call_id", suffixes=("_df", "_log"), validate="one_to_one")
    shared = (set(res.df.columns) & set(log.columns)) - {"call_id", "error"}
    assert {"temperature", "reasoning.effort", "provider.only", "prompt_tokens",
            "cost_usd", "truncated", "cache_hit", "served_model"} <= shared  # fmt: skip
    for column in sorted(shared):
        left, right = merged[f"{column}_df"], merged[f"{column}_log"]
        assert left.dtype == right.dtype, (column, left.dtype, right.dtype)
        pd.testing.assert_series_equal(left, right, check_names=False, obj=column)
    # the declared dtypes, the values as sent
    assert res.df["temperature"].dtype == "float64" and set(res.df["temperature"]) == {0.0, 1.0}
    assert res.df["provider.only"].unique().tolist() == ["StandIn"]  # joined text in both
    assert str(res.df["prompt_tokens"].dtype) == "Int64"
    assert str(log["truncated"].dtype) == str(res.df["truncated"].dtype) == "boolean"
    # and a replay of the same sweep (every cell a hit) shows the same values again
    again = sweep.run(progress=False).df
    for column in ("temperature", "reasoning.effort", "provider.only", "completion_tokens"):
        pd.testing.assert_series_equal(again[column], res.df[column])


def test_one_plan_frame(lab):
    sweep = _sweep(lab)
    plan = sweep.plan()
    assert list(plan.columns) == ["cell", "prompt_id", "temperature", "reasoning.effort",
                                  "provider.only", "provider.allow_fallbacks",
                                  "provider.require_parameters", "sample", "status",
                                  "cache_key"]  # fmt: skip
    assert plan["temperature"].dtype == "float64"  # 1 is sent (and shown) as 1.0
    res = sweep.run(progress=False)
    # the plan's parameter columns are exactly res.df's, cell for cell
    cols = ["cell", "prompt_id", "temperature", "reasoning.effort", "provider.only", "sample"]
    pd.testing.assert_frame_equal(plan[cols], res.df[cols])


def test_the_cache_form_and_its_check_come_from_the_declaration():
    r = Response(content="4", reasoning="2+2", finish_reason="stop", usage=Usage(5, 9, 7, 1),
                 cost_usd=0.001, cost_source="billed", latency_s=1.5, ttft_s=0.2,
                 provider="P", model="m-served", generation_id="g", native_finish_reason="end",
                 reasoning_mode="native", price_ref=None, created=1.0,
                 reasoning_details=[{"type": "reasoning.text", "text": "x"}],
                 notice="n", confidence=encode([0.5, 1.25, 3.0]))  # fmt: skip
    rec = r.to_dict()
    check_response(rec)
    assert set(rec) == {(f.key or f.column).split(".")[0] for f in CACHED}
    # a hit reads every cached field back into the attribute the declaration names
    hit = Result.from_cache(rec, cache_key="k", sample=3, call_id="c")
    for f in CACHED:
        assert f.read(hit) == f.read(r), f.column
    assert (hit.cache_hit, hit.spent_usd, hit.saved_usd, hit.sample) == (True, 0.0, 0.001, 3)
    # the check refuses what the declaration does not allow, naming the field
    for bad, said in [({**rec, "reasoning": 5}, "response.reasoning must be a string"),
                      ({**rec, "provider": {"x": 1}}, "response.provider must be a string"),
                      ({**rec, "usage": {**rec["usage"], "prompt_tokens": -1}},
                       "response.usage.prompt_tokens must be an integer >= 0"),
                      ({**rec, "cost_source": "free"}, "response.cost_source must be one of"),
                      ({**rec, "confidence": "not base64!"}, "response.confidence must be base64"),
                      ({**rec, "confidence": "AAAA"}, "response.confidence must be a whole"),
                      ({**rec, "extra": 1}, "unknown field")]:  # fmt: skip
        with pytest.raises(ValueError, match=said.replace(".", r"\.")):
            check_response(bad)


def test_every_result_attribute_is_declared_or_a_call_fact():
    declared = {f.attr.split(".")[0] for f in fields.FIELDS if f.attr}
    attributes = {f.name for f in dataclasses.fields(Result)}
    assert attributes - declared == {"sample", "cache_key"}  # facts of the call, not its result
    assert fields.NOT_PARAMETERS >= {"content", "cost_usd", "served_model", "call_id", "cell"}
    assert "model" not in fields.NOT_PARAMETERS and "temperature" not in fields.NOT_PARAMETERS


def test_a_call_with_top_logprobs_stores_its_confidence_series(db):
    import sqlite3

    from helpers import FAKE_KEY

    from mmlab import Lab
    from mmlab.confidence import decode, trace_scores
    from mmlab.endpoints import OpenRouter
    from mmlab.testing import StandIn

    with StandIn(logprobs=True, thinks=3000) as server:
        lab = Lab(endpoint=OpenRouter(server.url, FAKE_KEY), db=db, quiet=True)
        plain = lab.chat("What is 2 + 2?", tag="plain")
        r = lab.chat("What is 2 + 2?", logprobs=True, top_logprobs=5, tag="lp")
        series = decode(r.confidence)
        assert len(series) == r.usage.completion_tokens > 3000
        assert r.trace_confidence == pytest.approx(trace_scores(series))
        assert plain.confidence is None and math.isnan(plain.trace_confidence.mean)
        # a hit reads it back; the frame has the series and its four scores
        hit = lab.chat("What is 2 + 2?", logprobs=True, top_logprobs=5)
        assert hit.cache_hit and hit.confidence == r.confidence
        df = lab.sweep(["What is 2 + 2?"], grid(logprobs=[True], top_logprobs=[5]),
                       tag="lp").run(progress=False).df  # fmt: skip
        assert df["confidence"].iloc[0] == r.confidence
        assert df["conf_lowest"].iloc[0] == pytest.approx(r.trace_confidence.lowest)
        assert df["conf_mean"].dtype == "float64"
        # the cache holds 2 bytes a token in base64: at most 4 bytes a token of its JSON
        rows = dict(sqlite3.connect(db).execute("SELECT key, LENGTH(response) FROM cache"))
        grown = rows[r.cache_key] - rows[plain.cache_key] - len('"confidence":"",')
        assert grown / len(series) <= 4
        lab.close()
