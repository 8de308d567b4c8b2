"""The M1 report as data (`mmlab.reference`) and what reproducing it would cost."""

from __future__ import annotations

import math

import pytest

from mmlab.errors import RequestError
from mmlab.reference import forecast_reproduction, m1_report


def test_the_m1_report_ships_as_data_and_prices_a_reproduction():
    table = m1_report()
    aime = table.set_index("benchmark").loc["AIME 2024"]
    row = (aime["m1_80k"], aime["m1_40k"], aime["samples"], aime["problems"])
    assert row == (86.0, 83.3, 32, 30)
    assert table["source"].str.contains("2506.13585").all()
    r = forecast_reproduction("AIME 2024")
    assert r.calls == 30 * 32 and r.output_cap == 40_000
    per_call_expected = 300 * 0.40e-6 + 20_000 * 2.20e-6
    per_call_worst = 300 * 0.40e-6 + 40_000 * 2.20e-6
    assert r.expected_usd == pytest.approx(960 * per_call_expected)  # $42.36
    assert r.worst_usd == pytest.approx(960 * per_call_worst)  # $84.59
    assert "960 calls" in str(r)
    gpqa = forecast_reproduction("GPQA-Diamond")
    assert gpqa.expected_usd is None and gpqa.calls == 198 * 32  # no length in the report
    assert forecast_reproduction("GPQA-Diamond", mean_output_tokens=8000).expected_usd > 0
    with pytest.raises(RequestError, match="pass problems="):
        forecast_reproduction("LiveCodeBench (24/8-25/5)")
    assert forecast_reproduction("LiveCodeBench (24/8-25/5)", problems=100).calls == 1600
    with pytest.raises(RequestError, match="unknown benchmark"):
        forecast_reproduction("HumanEval")
    assert math.isfinite(forecast_reproduction("MATH-500", samples=4).worst_usd)
