"""Request parameters, declared once: name, type, allowed range, doc and wire order.

Everything else is derived from `PARAMS`: request validation (`check_params`), the CLI's
flags, the parameter columns plots and analyses group by, and the embedded llama.cpp server's
field map. Ranges follow OpenRouter's chat-completions documentation
(https://openrouter.ai/docs/api-reference/parameters).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import RequestError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd

#: ``reasoning.effort`` values (OpenRouter's current enum).
EFFORTS = ("max", "xhigh", "high", "medium", "low", "minimal", "none")
#: OpenRouter's effort → share of max_tokens spent thinking (reasoning-tokens guide).
EFFORT_SHARE = {
    "max": 0.95,
    "xhigh": 0.95,
    "high": 0.8,
    "medium": 0.5,
    "low": 0.2,
    "minimal": 0.1,
    "none": 0.0,
}


@dataclass(frozen=True)
class Num:
    """A numeric range: the type and its bounds (``lo_open`` excludes the lower bound)."""

    kind: type
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False

    def describe(self) -> str:
        """The allowed range in words, for error messages and docs."""
        word = "an integer" if self.kind is int else "a number"
        if self.lo is not None and self.hi is not None:
            left = "(" if self.lo_open else "["
            return f"{word} in {left}{self.lo:g}, {self.hi:g}]"
        if self.lo is not None:
            return f"{word} {'>' if self.lo_open else '>='} {self.lo:g}"
        return word

    def check(self, name: str, value: Any) -> int | float:
        """Return the value normalised (ints for int params, floats for float params)."""

        def bad() -> RequestError:
            return RequestError(f"{name} must be {self.describe()}; got {value!r}", field=name)

        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad()
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            raise bad()
        if self.kind is int:
            if isinstance(value, float):
                if not value.is_integer():
                    raise bad()
                value = int(value)
        else:
            # 1 and 1.0 must be one cache key, and the wire must carry one spelling.
            value = float(value)
        if self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo)):
            raise bad()
        if self.hi is not None and value > self.hi:
            raise bad()
        return value


@dataclass(frozen=True)
class Param:
    """One request parameter."""

    name: str
    """The wire name (and the keyword of ``lab.chat``)."""
    doc: str
    """What it does, in a line."""
    allowed: str
    """The allowed values in words (error messages, CLI help)."""
    check: Callable[[Any], Any]
    """Validates and normalises a value; raises `RequestError` naming the field."""
    cli: type | None = None
    """The CLI flag's type (``--top-p``), or None when the CLI does not offer it."""
    local: str | None = None
    """The embedded llama.cpp server's name for it, or None when that server ignores it."""
    columns: tuple[str, ...] = ()
    """The result-frame columns it becomes (a nested object has one per sub-field)."""
    dtype: str = "object"
    """Its column's pandas dtype in every frame (``Int64``, ``float64``, ``boolean`` or
    ``object``); a nested object's sub-fields are typed in `NESTED_DTYPES`."""


def _num(name: str, num: Num) -> Callable[[Any], Any]:
    return lambda value: num.check(name, value)


# --- nested objects ---------------------------------------------------------------------------
REASONING_FIELDS = ("effort", "max_tokens", "exclude", "enabled", "wait")


def _check_reasoning(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise RequestError(
            "reasoning must be a dict like {'effort': 'high'} or {'max_tokens': 2000}",
            field="reasoning",
        )
    unknown = set(value) - set(REASONING_FIELDS)
    if unknown:
        raise RequestError(
            f"reasoning has unknown field(s) {sorted(unknown)}"
            f"{did_you_mean(min(map(str, unknown)), REASONING_FIELDS)} (allowed: "
            f"{sorted(REASONING_FIELDS)})",
            field="reasoning",
        )
    out: dict[str, Any] = {}
    if "effort" in value:
        if value["effort"] not in EFFORTS:
            raise RequestError(
                f"reasoning.effort must be one of {', '.join(EFFORTS)}; got {value['effort']!r}",
                field="reasoning.effort",
            )
        out["effort"] = value["effort"]
    if "max_tokens" in value:
        out["max_tokens"] = Num(int, 1).check("reasoning.max_tokens", value["max_tokens"])
    if "effort" in out and "max_tokens" in out:
        raise RequestError(
            "reasoning takes effort or max_tokens, not both (OpenRouter rejects the pair)",
            field="reasoning",
        )
    for flag in ("exclude", "enabled"):
        if flag in value:
            if not isinstance(value[flag], bool):
                raise RequestError(f"reasoning.{flag} must be true or false", f"reasoning.{flag}")
            out[flag] = value[flag]
    if "wait" in value:
        # budget forcing (s1): only endpoints that can continue a prefilled turn honour it,
        # and the others refuse it before anything is sent (Endpoint.check)
        out["wait"] = Num(int, 0, 64).check("reasoning.wait", value["wait"])
    return out


PROVIDER_FIELDS: dict[str, str] = {
    "order": "list",
    "only": "list",
    "ignore": "list",
    "quantizations": "list",
    "allow_fallbacks": "bool",
    "require_parameters": "bool",
    "zdr": "bool",
    "enforce_distillable_text": "bool",
    "data_collection": "allow|deny",
    "sort": "any",
    "max_price": "dict",
    "preferred_min_throughput": "any",
    "preferred_max_latency": "any",
}


def pin(*providers: str) -> dict[str, Any]:
    """Provider routing that serves a call from exactly these providers, in this order: no
    fallback to others, and only where every parameter sent is honoured — what a comparison
    across providers needs (``grid(provider=[pin("novita"), pin("minimax")])``; a plain
    string in a ``provider`` axis means the same)."""
    if not providers or not all(isinstance(p, str) and p.strip() for p in providers):
        raise RequestError("pin() takes one or more provider names", "provider")
    return {"only": list(providers), "allow_fallbacks": False, "require_parameters": True}


def expand(point: Mapping[str, Any]) -> dict[str, Any]:
    """A parameter point with its shorthands spelled out (``provider="x"`` → ``pin("x")``),
    so that its columns name what was sent."""
    provider = point.get("provider")
    if isinstance(provider, str) or (
        isinstance(provider, list | tuple) and all(isinstance(p, str) for p in provider)
    ):
        return {**point, "provider": _check_provider(provider)}
    return dict(point)


def _check_provider(value: Any) -> dict[str, Any]:
    if isinstance(value, str) or (
        isinstance(value, list | tuple) and value and all(isinstance(p, str) for p in value)
    ):
        return pin(*([value] if isinstance(value, str) else value))
    if not isinstance(value, Mapping):
        raise RequestError(
            "provider must be a dict of OpenRouter routing fields, or a provider name (pinned)",
            "provider",
        )
    unknown = set(value) - set(PROVIDER_FIELDS)
    if unknown:
        raise RequestError(
            f"provider has unknown field(s) {sorted(unknown)}"
            f"{did_you_mean(min(map(str, unknown)), PROVIDER_FIELDS)} "
            f"(allowed: {sorted(PROVIDER_FIELDS)})",
            field="provider",
        )
    for key, kind in PROVIDER_FIELDS.items():
        if key not in value:
            continue
        v = value[key]
        ok = {
            "list": isinstance(v, list) and all(isinstance(x, str) for x in v),
            "bool": isinstance(v, bool),
            "dict": isinstance(v, Mapping),
            "allow|deny": v in ("allow", "deny"),
            "any": True,
        }[kind]
        if not ok:
            raise RequestError(f"provider.{key} must be {kind}; got {v!r}", f"provider.{key}")
    return json.loads(json.dumps(dict(value)))  # a plain, detached copy


def _check_stop(value: Any) -> str | list[str]:
    if isinstance(value, str) and value:
        return value
    if (
        isinstance(value, list | tuple)
        and 1 <= len(value) <= 4
        and all(isinstance(s, str) and s for s in value)
    ):
        return list(value)
    raise RequestError("stop must be a non-empty string or a list of 1-4 non-empty strings", "stop")


def _plain_json(name: str, kind: type) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise RequestError(f"{name} must be a {kind.__name__}; got {value!r}", name)
        try:
            return json.loads(json.dumps(value, allow_nan=False))
        except (TypeError, ValueError):
            raise RequestError(f"{name} must be plain JSON (no NaN)", name) from None

    return check


def _check_name(name: str, what: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.strip() or len(value) > 256:
            raise RequestError(f"{name} must be {what}; got {value!r}", name)
        return value.strip()

    return check


def _numeric(
    name: str, num: Num, doc: str, *, cli: bool = False, local: str | None = None
) -> Param:
    return Param(
        name,
        doc,
        num.describe(),
        _num(name, num),
        cli=num.kind if cli else None,
        local=local,
        columns=(name,),
        dtype="Int64" if num.kind is int else "float64",
    )


#: Every request parameter mmlab accepts, in the order it is written on the wire. (The order
#: is part of the cache key's canonical form only through the body; OpenRouter's own response
#: cache hashes the body as sent, so a fixed order keeps it stable too.)
PARAMS: tuple[Param, ...] = (
    Param("model", "the model to ask (an axis: several models in one sweep)",
          "a model id such as 'minimax/minimax-m1'", _check_name("model", "a model id"),
          columns=("model",)),
    Param("endpoint", "which of the lab's endpoints to send to (an axis)",
          "a name given in Lab(endpoints={...})", _check_name("endpoint", "an endpoint name"),
          columns=("endpoint",)),
    _numeric("temperature", Num(float, 0, 2), "sampling temperature", cli=True,
             local="temperature"),
    _numeric("top_p", Num(float, 0, 1, lo_open=True), "nucleus sampling mass", cli=True,
             local="top_p"),
    _numeric("top_k", Num(int, 0), "sample among the k likeliest tokens (0: off)", cli=True,
             local="top_k"),
    _numeric("min_p", Num(float, 0, 1), "minimum token probability relative to the top one",
             local="min_p"),
    _numeric("top_a", Num(float, 0, 1), "dynamic top-p by the top probability squared"),
    _numeric("max_tokens", Num(int, 1), "tokens to generate, reasoning included", cli=True,
             local="max_tokens"),
    _numeric("seed", Num(int, -(2**63), 2**63 - 1), "sampling seed (best effort upstream)",
             cli=True, local="seed"),
    Param("stop", "stop sequences", "a non-empty string or 1-4 of them", _check_stop,
          local="stop"),
    _numeric("frequency_penalty", Num(float, -2, 2), "penalise tokens by their frequency",
             local="frequency_penalty"),
    _numeric("presence_penalty", Num(float, -2, 2), "penalise tokens already present",
             local="presence_penalty"),
    _numeric("repetition_penalty", Num(float, 0, 2, lo_open=True),
             "multiplicative repetition penalty", local="repeat_penalty"),
    Param("logprobs", "return token log-probabilities", "true or false",
          _plain_json("logprobs", bool), local="logprobs", columns=("logprobs",),
          dtype="boolean"),
    _numeric("top_logprobs", Num(int, 0, 20), "alternatives per token with logprobs",
             local="top_logprobs"),
    Param("logit_bias", "token id → bias", "a dict", _plain_json("logit_bias", dict),
          local="logit_bias"),
    Param("response_format", "structured output", "a dict",
          _plain_json("response_format", dict), local="response_format"),
    Param("reasoning", "thinking controls: effort | max_tokens, exclude, enabled, wait",
          "a dict with effort|max_tokens, exclude, enabled, wait", _check_reasoning,
          columns=tuple(f"reasoning.{f}" for f in REASONING_FIELDS)),
    Param("provider", "OpenRouter provider routing", "a dict of routing fields",
          _check_provider),
    Param("user", "an end-user id for the provider", "a string", _plain_json("user", str),
          local="user"),
)  # fmt: skip

#: Parameters that choose where a request goes and which model answers it; they are not
#: sent among the body's parameters (the model is the body's own ``model`` field).
ROUTING = ("model", "endpoint")
BY_NAME: dict[str, Param] = {p.name: p for p in PARAMS}
NAMES: tuple[str, ...] = tuple(BY_NAME)
_ORDER = {name: i for i, name in enumerate(NAMES)}
#: The columns a result frame gets from the parameters, in wire order.
COLUMNS: tuple[str, ...] = tuple(c for p in PARAMS for c in p.columns)
#: Parameter name → the embedded llama.cpp server's field name (what it honours).
LOCAL_FIELDS: dict[str, str] = {p.name: p.local for p in PARAMS if p.local is not None}
#: The dtypes of nested parameters' columns (the others are `Param.dtype` or ``object``).
NESTED_DTYPES: dict[str, str] = {
    "reasoning.max_tokens": "Int64",
    "reasoning.wait": "Int64",
    "reasoning.exclude": "boolean",
    "reasoning.enabled": "boolean",
    **{f"provider.{k}": "boolean" for k, kind in PROVIDER_FIELDS.items() if kind == "bool"},
}


def check_params(
    params: Mapping[str, Any], *, arguments: Sequence[str] = (), caller: str = ""
) -> dict[str, Any]:
    """Validate parameters; drop the ones given as None; return them normalised, in wire order.

    Raises `RequestError` naming the first bad field and its allowed range; an unknown name
    says which known one it is closest to ("did you mean 'temperature'?"). `arguments`: the
    caller's own keyword arguments (``repeats`` for a sweep), which its ``**params`` would
    otherwise swallow as unknown parameters — offered as suggestions too, and listed after
    the parameters under `caller`'s name.
    """
    for name in params:
        if name not in BY_NAME:
            own = f"; {caller} arguments: {', '.join(arguments)}" if arguments else ""
            raise RequestError(
                f"unknown parameter {name!r}{did_you_mean(name, (*arguments, *NAMES))} "
                f"(allowed: {', '.join(NAMES)}{own})",
                field=name,
            )
    given = sorted((n for n, v in params.items() if v is not None), key=_ORDER.__getitem__)
    return {n: BY_NAME[n].check(params[n]) for n in given}


def column_value(value: Any) -> Any:
    """A parameter value as a result-frame cell: lists (``provider.only``) as comma-joined
    text, so columns can be grouped and compared."""
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return value


def column_dtype(column: str) -> str:
    """The pandas dtype of parameter column `column` (``temperature``, ``reasoning.effort``)
    in every frame: what makes one call's parameters read the same in ``res.df``,
    ``sweep.plan()`` and ``lab.calls()``."""
    if column in NESTED_DTYPES:
        return NESTED_DTYPES[column]
    param = BY_NAME.get(column)
    return param.dtype if param is not None else "object"


def param_frame(points: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
                ) -> pd.DataFrame:
    """One row per parameter point (validated parameters, as sent): the flattened columns
    (`flat`, `column_value`), each with its declared dtype (`column_dtype`). `columns`: only
    these, in this order (default: every column any point has, in order of appearance)."""
    import pandas as pd

    flats = [{k: column_value(v) for k, v in flat(p).items()} for p in points]
    names = list(columns) if columns is not None else list(
        dict.fromkeys(k for f in flats for k in f)
    )
    return pd.DataFrame(
        {n: pd.Series([f.get(n) for f in flats], dtype=column_dtype(n)) for n in names},
        index=pd.RangeIndex(len(flats)),
    )


def flat(point: Mapping[str, Any]) -> dict[str, Any]:
    """Parameter columns: nested dicts (reasoning, provider) become ``reasoning.effort``."""
    out: dict[str, Any] = {}
    for k, v in point.items():
        if isinstance(v, Mapping):
            for kk, vv in v.items():
                out[f"{k}.{kk}"] = vv
        else:
            out[k] = v
    return out
