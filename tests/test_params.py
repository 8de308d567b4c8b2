"""Request parameters (`mmlab.params`): validation names the field and its range; values
are normalised and ordered."""

from __future__ import annotations

import math

import pytest

from mmlab.errors import RequestError
from mmlab.params import check_params

BAD_PARAMS = [
    ({"temperature": -0.1}, "temperature", "[0, 2]"),
    ({"temperature": 2.01}, "temperature", "[0, 2]"),
    ({"temperature": math.nan}, "temperature", "[0, 2]"),
    ({"temperature": "hot"}, "temperature", "[0, 2]"),
    ({"top_p": 0}, "top_p", "(0, 1]"),
    ({"top_p": 1.5}, "top_p", "(0, 1]"),
    ({"max_tokens": 0}, "max_tokens", ">= 1"),
    ({"max_tokens": -5}, "max_tokens", ">= 1"),
    ({"max_tokens": 10.5}, "max_tokens", "integer"),
    ({"max_tokens": True}, "max_tokens", "integer"),
    ({"top_k": -1}, "top_k", ">= 0"),
    ({"seed": math.inf}, "seed", "integer"),
    ({"frequency_penalty": 3}, "frequency_penalty", "[-2, 2]"),
    ({"repetition_penalty": 0}, "repetition_penalty", "(0, 2]"),
    ({"stop": []}, "stop", "1-4"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "1-4"),
    ({"reasoning": {"effort": "huge"}}, "reasoning.effort", "high"),
    ({"reasoning": {"effort": "high", "max_tokens": 10}}, "reasoning", "not both"),
    ({"reasoning": {"budget": 10}}, "reasoning", "unknown"),
    ({"reasoning": "high"}, "reasoning", "dict"),
    ({"reasoning": {"max_tokens": 0}}, "reasoning.max_tokens", ">= 1"),
    ({"provider": {"order": "deepinfra"}}, "provider.order", "list"),
    ({"provider": {"fastest": True}}, "provider", "unknown"),
    ({"temprature": 0.5}, "temprature", "allowed"),
]


@pytest.mark.parametrize(("params", "field", "hint"), BAD_PARAMS)
def test_bad_params_name_the_field_and_range(params, field, hint):
    with pytest.raises(RequestError) as info:
        check_params(params)
    assert info.value.field == field
    assert hint in str(info.value)


def test_params_are_normalised_and_ordered():
    out = check_params({"seed": 3.0, "max_tokens": 100, "temperature": 1, "top_p": None})
    assert out == {"temperature": 1.0, "max_tokens": 100, "seed": 3}
    assert isinstance(out["temperature"], float) and isinstance(out["seed"], int)
    assert list(out) == ["temperature", "max_tokens", "seed"]


# --- errors that teach: the closest name ------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "hint"),
    [
        ({"temprature": 0.5}, "did you mean 'temperature'?"),
        ({"max_token": 10}, "did you mean 'max_tokens'?"),
        ({"reasoning": {"efort": "high"}}, "did you mean 'effort'?"),
        ({"provider": {"orders": ["x"]}}, "did you mean 'order'?"),
    ],
)
def test_unknown_names_say_the_closest_known_one(params, hint):
    with pytest.raises(RequestError, match=hint):
        check_params(params)
    with pytest.raises(RequestError) as info:
        check_params({"zzzzqqq": 1})
    assert "did you mean" not in str(info.value)  # nothing close: no guess


def test_a_misspelt_sweep_or_chat_argument_names_the_argument(lab, standin):
    with pytest.raises(RequestError) as info:
        lab.sweep(["a"], repeat=2)  # **fixed took it for a request parameter
    assert "did you mean 'repeats'?" in str(info.value)
    assert "sweep arguments: repeats, tag, system, scorer" in str(info.value)
    with pytest.raises(RequestError, match="did you mean 'sample'"):
        lab.chat("a", sampel=1)
    assert standin.seen == []
