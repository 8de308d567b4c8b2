"""Where the thinking goes (`mmlab.traces`): switches, first (correct) answers, overthinking,
underthinking and loops on small synthetic traces whose values are worked out by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mmlab import traces
from mmlab.errors import RequestError
from mmlab.traces import answer_spans, number_spans, read_trace, trace_stats, with_responses

RIGHT = ("We add: 2 + 3 = 5. Wait, is that right? Alternatively, count up: 3, 4, 5. "
         "The answer is 5.")  # fmt: skip
WRONG = "We add: 2 + 3 = 5. Wait, maybe it is 6. I will wait for it. Hmm, alternatively 6."


def _frame(*rows: dict) -> pd.DataFrame:
    base = {"prompt_id": "p", "answer": "5", "error": None, "reasoning_tokens": 100}
    return pd.DataFrame([{**base, "sample": i, **row} for i, row in enumerate(rows)])


def test_switches_and_candidates_by_hand():
    t = read_trace(RIGHT, "5")
    assert [RIGHT[s:e] for s, e in t.switches] == ["Wait", "Alternatively"]
    assert t.candidates[0][:3] == (RIGHT.index("= 5"), RIGHT.index("= 5") + 3, "5")
    assert [c[2] for c in t.candidates] == ["5", "5"] and all(c[3] for c in t.candidates)
    # "wait" inside a sentence is no switch; after "Hmm," it is
    w = read_trace(WRONG, "5")
    assert [WRONG[s:e] for s, e in w.switches] == ["Wait", "alternatively"]
    assert [c[2] for c in w.candidates] == ["5", "6"]
    assert [c[3] for c in w.candidates] == [True, False]
    assert read_trace("no gold here: 2 + 2 = 4.").candidates[0][3] is None
    text = r"so \boxed{\frac{1}{2}} and the result: 7"
    assert [a for _, _, a in answer_spans(text)] == [r"\frac{1}{2}", "7"]
    assert [a for _, _, a in number_spans("1,000 apples and 2.5 pears")] == ["1,000", "2.5"]


def test_overthinking_and_outcome_efficiency_by_hand():
    stats = trace_stats(_frame({"reasoning": RIGHT, "content": "5"}))
    row = stats.iloc[0]
    first = (RIGHT.index("= 5") + 3) / len(RIGHT)  # where "= 5" has been written
    assert row["switches"] == 2 and row["correct"]
    assert row["first_answer_at"] == pytest.approx(first)
    assert row["first_correct_at"] == pytest.approx(first)
    assert row["overthinking_tokens"] == pytest.approx((1 - first) * 100)
    assert row["outcome_efficiency"] == pytest.approx(first)  # sigma = 1: T^/T
    assert math.isnan(row["underthinking"])  # a correct call: not an underthinking case
    assert "reasoning" not in stats and "content" not in stats  # the long texts are left out
    assert list(stats.columns[-len(traces.STATS_COLUMNS):]) == list(traces.STATS_COLUMNS)


def test_underthinking_by_hand():
    stats = trace_stats(_frame({"reasoning": WRONG, "content": "6"},
                               {"reasoning": "It is 6.", "content": "6"}))  # fmt: skip
    wrong = stats.iloc[0]
    # the first correct thought ("2 + 3 = 5") ends where "Wait" opens the next one
    assert not wrong["correct"] and wrong["outcome_efficiency"] == 0.0  # sigma = 0
    assert wrong["underthinking"] == pytest.approx(1 - WRONG.index("Wait") / len(WRONG))
    never = stats.iloc[1]  # incorrect, and no correct thought at all: T^ = T
    assert never["underthinking"] == 0.0 and "T^ = T" in never["note"]


def test_loops_by_hand():
    period = "a b c d e f g h i j "
    text = "intro words " + period * 5  # 52 words, a 10-word span repeated 5 times
    t = read_trace(text, ngram=10)
    # every 10-gram from word 12 on repeats one 10 words earlier: words 12..51 are inside
    assert t.loop_share == pytest.approx(40 / 52) and t.max_repeats == 5
    assert t.loops == ((len("intro words ") + len(period), len(text) - 1),)
    df = _frame({"reasoning": text, "content": "x"})
    assert trace_stats(df, ngram=10, loop_repeats=5)["looped"].iloc[0]
    assert not trace_stats(df, ngram=10, loop_repeats=6)["looped"].iloc[0]
    # an 11-word span said twice, apart: 11 of 27 words repeat it at n = 10, none at n = 30
    span = "the sum of the first two numbers is what we need "
    twice = span + "so let us now check " + span
    assert read_trace(twice, ngram=10).loop_share == pytest.approx(11 / 27)
    assert read_trace(twice).loop_share == 0.0 and read_trace(twice).max_repeats == 0
    assert math.isnan(read_trace("").loop_share)  # no words: unmeasured


def test_what_cannot_be_measured_is_nan_with_a_reason():
    df = _frame(
        {"reasoning": "", "content": "5"},
        {"reasoning": "Let me think about apples.", "content": "5"},
        {"reasoning": RIGHT, "content": "5", "reasoning_tokens": None},
        {"reasoning": None, "content": None, "error": "HTTP 502"},
    )
    stats = trace_stats(df)
    empty, no_answer, no_tokens, failed = (stats.iloc[i] for i in range(4))
    assert pd.isna(empty["switches"]) and empty["note"] == "no reasoning text"
    assert math.isnan(empty["loop_share"]) and pd.isna(empty["looped"])
    assert math.isnan(no_answer["first_answer_at"]) and no_answer["switches"] == 0
    assert "no candidate answer" in no_answer["note"]
    assert no_answer["outcome_efficiency"] == 1.0  # right, and only in the final answer
    assert math.isnan(no_tokens["overthinking_tokens"]) and "reasoning_tokens" in no_tokens["note"]
    assert no_tokens["first_correct_at"] > 0
    assert failed["note"] == "failed call" and math.isnan(failed["first_answer_at"])
    # without gold answers: no correct candidate, correctness from the score when there is one
    bare = trace_stats(_frame({"reasoning": RIGHT, "content": "5"}).drop(columns="answer"))
    assert math.isnan(bare["first_correct_at"].iloc[0]) and "no gold" in bare["note"].iloc[0]
    scored = trace_stats(_frame({"reasoning": RIGHT, "content": "9", "score": 1.0}))
    assert scored["correct"].iloc[0]
    # the dtypes
    assert str(stats["switches"].dtype) == "Int64" and str(stats["looped"].dtype) == "boolean"


@pytest.mark.parametrize(("drop", "field"), [("reasoning", "reasoning"),
                                             ("reasoning_tokens", "reasoning_tokens")])
def test_a_missing_column_names_what_produces_it(drop, field):
    with pytest.raises(RequestError, match="res.df") as info:
        trace_stats(_frame({"reasoning": RIGHT}).drop(columns=drop))
    assert info.value.field == field and "with_responses" in str(info.value)
    with pytest.raises(RequestError) as info:
        trace_stats(_frame({"reasoning": RIGHT}), answer="gold")
    assert info.value.field == "gold"
    with pytest.raises(RequestError) as info:
        trace_stats(_frame({"reasoning": RIGHT}), ngram=1)
    assert info.value.field == "ngram"


def test_the_usage_log_joined_with_its_responses(lab):
    lab.chat("What is 2 + 2?", max_tokens=300)
    lab.chat("What is 2 + 2?", max_tokens=300)  # a hit: the same response
    calls = lab.calls()
    with pytest.raises(RequestError, match="with_responses"):
        trace_stats(calls)
    joined = with_responses(calls, lab)
    assert joined["reasoning"].str.startswith("step0").all()
    assert joined["confidence"].isna().all() and joined["conf_mean"].isna().all()
    stats = trace_stats(joined)
    assert len(stats) == 2 and (stats["switches"] == 0).all()
    with pytest.raises(RequestError):
        with_responses(calls.drop(columns="cache_key"), lab)
