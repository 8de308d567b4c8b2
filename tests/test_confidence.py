"""Token confidence (`mmlab.confidence`, DeepConf): hand-computed token confidences and trace
scores, the reference code's definitions, the stored form's size and check."""

from __future__ import annotations

import base64
import math
import random

import numpy as np
import pytest

from mmlab.confidence import (
    MAX_TOKENS,
    NO_SCORES,
    decode,
    encode,
    read_logprob,
    scores_of,
    series_problem,
    token_confidences,
    trace_scores,
)


def test_token_confidence_is_minus_the_mean_top_k_logprob():
    tops = [[-0.1, -2.3, -3.0], [-0.5, -1.0, -2.0], [], [-0.2, -1.0, -4.0, -9.0]]
    # k = 3 (the most common length); the empty token is skipped; the 4-entry token (a server
    # that appended the sampled token beyond the top 3) averages its 3 largest
    assert token_confidences(tops) == pytest.approx([5.4 / 3, 3.5 / 3, 5.2 / 3])
    assert token_confidences([[], []]) is None and token_confidences([]) is None
    # a peaked distribution is more confident than a flat one
    peaked, flat = token_confidences([[-0.01, -6.0, -7.0], [-1.0, -1.1, -1.2]])
    assert peaked > flat


def test_reply_numbers_are_checked():
    assert read_logprob(-1.5) == -1.5 and read_logprob(0) == 0.0
    assert read_logprob(1e-4) == 0.0  # rounding a hair above 0
    for bad in (0.5, -1e5, math.nan, math.inf, -math.inf, "0.1", True, None, [1]):
        assert read_logprob(bad) is None, bad


def test_the_stored_form_is_two_bytes_a_token_and_checked():
    series = [0.0, 0.125, 1.5, 3.14159, 20.0, 70000.0, -1.0]
    text = encode(series)
    assert len(base64.b64decode(text)) == 2 * len(series)
    assert len(text) / len(series) <= 4  # <= 4 bytes per token in the cache's JSON
    back = decode(text)
    # half precision: 3 significant digits; clipped to [0, 65504]
    assert back == pytest.approx([0.0, 0.125, 1.5, 3.14159, 20.0, 65504.0, 0.0], rel=1e-3)
    assert series_problem(text) is None and series_problem(encode([])) is None
    assert "base64" in series_problem("not base64!")
    assert "whole number" in series_problem("AAAA")  # 3 bytes
    assert "base64" in series_problem(12)
    assert "at most" in series_problem("A" * (4 * MAX_TOKENS))
    with pytest.raises(ValueError, match="base64"):
        decode("%%%")
    long = encode(np.random.default_rng(0).uniform(0, 20, 10_000))
    assert len(long) / 10_000 == pytest.approx(8 / 3, abs=0.01)


def test_trace_scores_by_hand():
    s = trace_scores(list(range(1, 11)), window=4)  # groups: 2.5, 3.5, ..., 8.5 (seven)
    assert s.mean == 5.5 and s.lowest == 2.5 and s.tail == 8.5
    assert s.bottom10 == 2.5  # 10% of 7 groups is less than one: the lowest one
    s = trace_scores([3.0] * 5 + [1.0] * 20 + [3.0] * 5, window=5)  # 26 groups
    assert s.lowest == 1.0 and s.bottom10 == 1.0  # two lowest groups, both all-1
    assert s.tail == 3.0 and s.mean == pytest.approx(50 / 30)
    # shorter than the window: one group, the mean
    short = trace_scores([1.0, 2.0, 6.0])
    assert short == (3.0, 3.0, 3.0, 3.0)
    assert trace_scores([]) is NO_SCORES or all(math.isnan(v) for v in trace_scores([]))
    with pytest.raises(ValueError, match="window"):
        trace_scores([1.0], window=0)


def _deepconf_reference(confs: list[float], window: int) -> tuple[float, float, float, float]:
    """DeepConf's reference definitions (facebookresearch/deepconf, analysis_offline.py and
    helper.py), rewritten: tail = mean of the last `window`; sliding windows of `window`;
    bottom = mean of the lowest max(1, int(0.1 * windows)); lowest = min window."""
    tail = float(np.mean(confs[-window:]))
    if len(confs) < window:
        means = [float(np.mean(confs))]
    else:
        means = [float(np.mean(confs[i : i + window])) for i in range(len(confs) - window + 1)]
    low = sorted(means)[: max(1, int(len(means) * 0.1))]
    return float(np.mean(confs)), min(means), float(np.mean(low)), tail


def test_trace_scores_match_the_reference_definitions():
    rng = random.Random(4)
    for _ in range(30):
        confs = [rng.uniform(0, 15) for _ in range(rng.randint(1, 300))]
        window = rng.randint(1, 64)
        assert trace_scores(confs, window) == pytest.approx(_deepconf_reference(confs, window))


def test_scores_of_a_stored_series():
    text = encode([1.0, 2.0, 3.0, 4.0])
    assert scores_of(text, 2) == pytest.approx((2.5, 1.5, 1.5, 3.5))
    assert scores_of(None) is NO_SCORES and scores_of("not base64!") is NO_SCORES
