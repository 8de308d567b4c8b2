"""Scorers (`mmlab.scorers`): answer extraction, normalisation and matching."""

from __future__ import annotations

from mmlab import scorers


def test_scorers():
    assert scorers.boxed(r"so \boxed{\frac{1}{2}} and \boxed{42}") == "42"
    assert scorers.boxed(r"\boxed{\frac{1}{2}}") == r"\frac{1}{2}"
    assert scorers.last_number("it is 1,234 or 7.5 apples") == "7.5"
    assert scorers.final_answer({"content": r"x \boxed{12}", "answer": "12"}) == 1.0
    assert scorers.final_answer({"content": "the answer is 12.0", "answer": "12"}) == 1.0
    assert scorers.final_answer({"content": "", "answer": "12"}) == 0.0
    assert scorers.number_match({"content": "1,000", "answer": 1000}) == 1.0
    assert scorers.boxed_match({"content": "12", "answer": "12"}) == 0.0
    assert scorers.exact_match({"content": " Paris ", "answer": "paris"}) == 1.0
    assert scorers.contains({"content": "x"}) is None


def test_extraction_and_normalisation():
    assert scorers.extract_answer(r"x = 3, so \boxed{42} (not 7)") == "42"
    assert scorers.extract_answer("it is 12 or maybe 1,300") == "1300"
    assert scorers.extract_answer("no idea") is None and scorers.extract_answer(None) is None
    norm = scorers.normalize_answer
    assert norm("1,000") == norm("1000") == norm("1000.0") == norm(1000) == norm(" 1000 ") == "1000"
    assert norm("-0") == norm("0.0") == "0" and norm("0.5") == norm(".5") != norm("5")
    assert norm(" Paris ") == "paris" and norm(None) is None and norm(float("nan")) is None
    # final_answer keeps its behaviour
    assert scorers.final_answer({"content": r"\boxed{1,000} or 7", "answer": "1000.0"}) == 1.0
    assert scorers.final_answer({"content": "12 then 13", "answer": "12"}) == 0.0
    assert scorers.final_answer({"content": r"\boxed{nan}", "answer": "nan"}) == 0.0
    assert scorers.final_answer({"content": "x", "answer": None}) is None
