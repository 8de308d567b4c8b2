"""The result record, declared once: every figure a call produces, with its type, its column
name and where it appears.

`mmlab.params` declares what a request may carry; this module declares what a call gives back.
Everything that shows a call derives from `FIELDS`:

- the cache form of a response (``Response.to_dict``) and the check of a stored or imported
  response (`check_response`: one schema for what the live path stores and what a bundle
  import accepts);
- the usage log's row (`log_values`, used by the engine) and the log as a DataFrame
  (``lab.calls()``);
- a sweep's result columns (``res.df``) and the row a scorer is given;
- the columns the adaptive scheduler must not mistake for parameters (`NOT_PARAMETERS`).

So one call shows the same value and the same dtype wherever it is looked at: tokens are
nullable integers (``Int64``), money and seconds floats, flags nullable booleans, labels text.
Parameter columns come from `mmlab.params.param_frame` in every frame alike.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .confidence import series_problem

if TYPE_CHECKING:
    import pandas as pd

#: A call's result as the getters read it (a `mmlab.result.Result`; not imported here, since
#: the result module derives its cache form from this one).
Result = Any

COST_SOURCES = ("billed", "computed", "local", "unknown", "provider_cache", "refund")
REASONING_MODES = ("native", "leaked", "prompted", "encrypted", "none")
USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens")

#: What a field's values are. ``text``: a string that is always there (an answer);
#: ``label``: a short string or None (repeats across rows: interned); ``int``: a count >= 0;
#: ``float``: a finite number >= 0; ``bool``: a flag; ``json``: structured data as returned;
#: ``series``: a per-token series in its compact stored form (`mmlab.confidence`) or None.
KINDS = ("text", "label", "int", "float", "bool", "json", "series")
#: The pandas dtype each kind has in every frame.
DTYPES = {"text": "object", "label": "object", "int": "Int64", "float": "float64",
          "bool": "boolean", "json": "object", "series": "object"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Field:
    """One figure of a call's result."""

    column: str
    """Its name in ``res.df``, ``lab.calls()`` and the usage log (and, for the response's own
    fields, in the cache form — see `key`)."""
    kind: str
    """One of `KINDS`."""
    doc: str
    """What it is, in a line."""
    cached: bool = False
    """Part of the response as produced (stored in the cache and in bundles)."""
    log: bool = False
    """A column of the usage log (``lab.calls()``)."""
    sweep: bool = False
    """A column of a sweep's results (``res.df``)."""
    key: str | None = None
    """Its key in the cache form when that differs from `column` (``usage.prompt_tokens``:
    nested; ``model`` for ``served_model``)."""
    choices: tuple[str, ...] = ()
    """The values a label may take (empty: any)."""
    attr: str | None = None
    """Where a `Result` holds it (a dotted path: ``usage.prompt_tokens``); None: a fact of
    the call, not of its result."""
    stored: bool = True
    """For a log column: stored in the log table (False: derived when the log is read, as
    ``cache_hit`` is from ``cache_status``)."""

    @property
    def read(self) -> Callable[[Result], Any] | None:
        """How the value is read from a `Result`."""
        return None if self.attr is None else operator.attrgetter(self.attr)

    @property
    def dtype(self) -> str:
        """The pandas dtype of this column in every frame."""
        return DTYPES[self.kind]


def _f(column: str, kind: str, doc: str, flags: str, **kw: Any) -> Field:
    """A field; `flags` says where it appears: c(ache) l(og) s(weep)."""
    return Field(column, kind, doc, "c" in flags, "l" in flags, "s" in flags, **kw)


FIELDS: tuple[Field, ...] = (
    _f("content", "text", "the answer, with any reasoning split out", "cs",
       attr="content"),
    _f("reasoning", "text", "the model's thinking ('' when none was returned)", "cs",
       attr="reasoning"),
    *(_f(name, "int", doc, "cls", key=f"usage.{name}", attr=f"usage.{name}") for name, doc in (
        ("prompt_tokens", "tokens in the prompt"),
        ("completion_tokens", "tokens generated, reasoning included"),
        ("reasoning_tokens", "tokens of thinking (inside completion_tokens)"),
    )),
    _f("answer_tokens", "int", "completion tokens that are not reasoning", "s",
       attr="usage.answer_tokens"),
    _f("cached_tokens", "int", "prompt tokens served from the provider's prompt cache", "cls",
       key="usage.cached_tokens", attr="usage.cached_tokens"),
    _f("cost_usd", "float", "what producing the response cost (None: unknown)", "cls",
       attr="cost_usd"),
    _f("cost_source", "label", "where cost_usd came from", "cls", choices=COST_SOURCES,
       attr="cost_source"),
    _f("price_ref", "label", "the price table a computed cost came from", "cl",
       attr="price_ref"),
    _f("spent_usd", "float", "USD this call spent now (0 on a cache hit)", "ls",
       attr="spent_usd"),
    _f("saved_usd", "float", "USD a cache hit saved (the original cost)", "l",
       attr="saved_usd"),
    _f("latency_s", "float", "seconds from request to complete reply", "cls",
       attr="latency_s"),
    _f("ttft_s", "float", "seconds to the first streamed token (None: not streamed)", "cls",
       attr="ttft_s"),
    _f("finish_reason", "label", "stop | length | tool_calls | content_filter", "cls",
       attr="finish_reason"),
    _f("native_finish_reason", "label", "the provider's own finish reason", "c",
       attr="native_finish_reason"),
    _f("truncated", "bool", "stopped by the token limit with an empty answer", "ls",
       attr="truncated"),
    _f("cache_hit", "bool", "served from the cache", "ls", attr="cache_hit",
       stored=False),
    _f("provider", "label", "the upstream provider that served the request", "cls",
       attr="provider"),
    _f("served_model", "label", "the model that answered (model is the one asked)", "cls",
       key="model", attr="model"),
    _f("generation_id", "label", "OpenRouter's generation id (for reconcile)", "cl",
       attr="generation_id"),
    _f("reasoning_mode", "label", "native | leaked | prompted | encrypted | none", "cls",
       choices=REASONING_MODES, attr="reasoning_mode"),
    _f("call_id", "label", "this call's row in the usage log", "ls", attr="call_id"),
    _f("origin", "label", "a hit's source: None this project's own, else its bundle", "ls",
       attr="origin"),
    _f("retries", "int", "retries this call needed (0 on a hit)", "l", attr="retries"),
    _f("created", "float", "when the response was generated (epoch seconds)", "c",
       attr="created"),
    _f("reasoning_details", "json", "the provider's structured reasoning blocks", "c",
       attr="reasoning_details"),
    _f("notice", "label", "what the endpoint said besides the answer", "c",
       attr="notice"),
    # token confidence (DeepConf, `mmlab.confidence`): the series is stored, its scores derived
    _f("confidence", "series", "per-token confidence, half floats in base64 (None: no "
       "top_logprobs; mmlab.confidence.decode reads it)", "cs", attr="confidence"),
    *(_f(f"conf_{name}", "float", doc, "s", attr=f"trace_confidence.{name}") for name, doc in (
        ("mean", "mean token confidence (NaN: no series)"),
        ("lowest", "lowest 2048-token group confidence (DeepConf)"),
        ("bottom10", "mean of the lowest 10% of 2048-token groups (DeepConf)"),
        ("tail", "mean confidence of the last 2048 tokens (DeepConf)"),
    )),
)  # fmt: skip

BY_COLUMN: dict[str, Field] = {f.column: f for f in FIELDS}
#: The response as produced: the cache form's fields.
CACHED: tuple[Field, ...] = tuple(f for f in FIELDS if f.cached)
#: Result figures the usage log stores (beside the call's own facts: ts, tag, params, ...).
LOGGED: tuple[Field, ...] = tuple(f for f in FIELDS if f.log and f.stored and f.attr is not None)
#: The `LOGGED` values of a result as one tuple, in one C call (the cache-hit path runs it).
read_logged = operator.attrgetter(*(f.attr for f in LOGGED))  # type: ignore[arg-type]
#: The names of `LOGGED`, in the same order.
LOGGED_COLUMNS: tuple[str, ...] = tuple(f.column for f in LOGGED)
#: Result columns of ``res.df``, in order.
SWEPT: tuple[Field, ...] = tuple(f for f in FIELDS if f.sweep)

#: The facts of a call, beside its result's figures: column → (dtype, what it is). The log
#: has them all; ``res.df`` has ``model``, ``sample``, ``cache_key`` and ``error``.
CALL_FACTS: dict[str, tuple[str, str]] = {
    "ts": ("datetime64[us, UTC]", "when the call was made (UTC)"),
    "tag": ("object", "the tag path the call was logged under"),
    "cache_status": ("object", "hit | miss | refresh | off"),
    "endpoint": ("object", "the endpoint's stable identity"),
    "model": ("object", "the model asked"),
    "sample": ("Int64", "the sample (repeat) index"),
    "cache_key": ("object", "the cache entry (see mmlab.cachekey)"),
    "params": ("object", "the sampling/reasoning/provider fields sent, as JSON"),
    "status": ("Int64", "HTTP status (200, or the error's)"),
    "error_type": ("object", "the error's type, when the call failed"),
    "error": ("object", "the error, when the call failed (res.df: or 'not run')"),
}
#: Columns of a sweep's cell table that are facts of the cell, not parameters or results.
CELL_COLUMNS = ("cell", "prompt_id", "prompt", "sample", "status", "cache_key", "error",
                "score")  # fmt: skip
#: Columns that are never parameter columns: what the scheduler must not group by (``model``
#: is one: a model can be an axis).
NOT_PARAMETERS = frozenset({*CELL_COLUMNS, *BY_COLUMN})


def log_values(result: Result) -> dict[str, Any]:
    """The usage-log columns of `result` (the figures only: the engine adds the call's
    facts)."""
    return dict(zip(LOGGED_COLUMNS, read_logged(result), strict=True))


def dtype_of(column: str) -> str | None:
    """The declared dtype of a result or call column (None: not declared here)."""
    f = BY_COLUMN.get(column)
    if f is not None:
        return f.dtype
    fact = CALL_FACTS.get(column)
    return fact[0] if fact is not None else None


def typed(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with every column this module declares cast to its declared dtype (in place;
    returned for chaining): what makes ``lab.calls()`` and ``res.df`` agree."""
    for name in df.columns:
        dtype = dtype_of(name)
        if dtype is None or dtype.startswith("date"):
            continue
        col = df[name]
        if dtype == "object":
            # text as Python strings and None for "missing", as res.df holds them (pandas
            # reads text from SQLite into its own string dtype, with NaN for NULL)
            if str(col.dtype) != "object" or col.isna().any():
                df[name] = col.astype(object).where(col.notna(), None)
        elif str(col.dtype) != dtype:
            df[name] = col.astype(dtype)
    return df


# --- the cache form ----------------------------------------------------------------------------
def cache_form(values: Mapping[str, Any]) -> dict[str, Any]:
    """The cache form (``usage`` nested, the served model under ``model``) from flat column
    values; optional fields that are empty are left out."""
    out: dict[str, Any] = {}
    usage: dict[str, Any] = {}
    for f in CACHED:
        v = values.get(f.column)
        key = f.key or f.column
        if key.startswith("usage."):
            usage[key[6:]] = v
        elif f.column in _OPTIONAL:
            if v:
                out[key] = v
        else:
            out[key] = v
    out["usage"] = usage
    return out


#: Cache-form fields written only when they hold something (older entries lack them).
_OPTIONAL = frozenset({"reasoning_details", "notice", "confidence"})
#: Cache-form fields every stored response has, besides its text.
_REQUIRED = frozenset({"cost_source", "created"})


def check_response(rec: Any) -> None:
    """Raise ValueError naming the first field of a stored response (the cache form) that is
    missing, unknown or of the wrong type: responses read from elsewhere (bundles) are
    untrusted, and a malformed one would break every later cache hit. The live path stores
    only what passes this check, so a study's own bundle always imports."""
    if not isinstance(rec, Mapping):
        raise ValueError(f"response must be an object; got {type(rec).__name__}")
    keys = {(f.key or f.column) for f in CACHED}
    known = {k for k in keys if not k.startswith("usage.")} | {"usage"}
    unknown = sorted(set(rec) - known)
    if unknown:
        raise ValueError(f"response has unknown field(s) {unknown}")
    usage = rec.get("usage")
    if not isinstance(usage, Mapping) or set(usage) - set(USAGE_FIELDS):
        raise ValueError(f"response.usage must be an object with only {', '.join(USAGE_FIELDS)}")
    for f in CACHED:
        key = f.key or f.column
        if key.startswith("usage."):
            value, required = usage.get(key[6:], 0), True
        else:
            value, required = rec.get(key), f.kind == "text" or f.column in _REQUIRED
        problem = _problem(f, value, required)
        if problem:
            raise ValueError(f"response.{key} must be {problem}")


def _problem(f: Field, v: Any, required: bool) -> str | None:
    """What is wrong with `v` as a value of `f` (None: nothing)."""
    if v is None and not required and f.kind != "text":
        return None
    if f.kind == "text":
        return None if isinstance(v, str) else "a string"
    if f.kind == "label":
        if not isinstance(v, str):
            return "a string or null"
        if f.choices and v not in f.choices:
            return f"one of {', '.join(f.choices)}"
        return None
    if f.kind == "int":
        ok = not isinstance(v, bool) and isinstance(v, int) and v >= 0
        return None if ok else "an integer >= 0"
    if f.kind == "float":
        ok = (not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)
              and v >= 0)  # fmt: skip
        return None if ok else "a finite number >= 0"
    if f.kind == "bool":
        return None if isinstance(v, bool) else "true or false"
    if f.kind == "json":
        ok = isinstance(v, list) and all(isinstance(d, Mapping) for d in v)
        return None if ok else "a list of objects or null"
    if f.kind == "series":
        return series_problem(v)
    raise AssertionError(f"unknown kind {f.kind}")


__all__ = [
    "BY_COLUMN",
    "CACHED",
    "CALL_FACTS",
    "CELL_COLUMNS",
    "COST_SOURCES",
    "DTYPES",
    "FIELDS",
    "Field",
    "KINDS",
    "LOGGED",
    "NOT_PARAMETERS",
    "REASONING_MODES",
    "SWEPT",
    "USAGE_FIELDS",
    "cache_form",
    "check_response",
    "dtype_of",
    "log_values",
    "typed",
]
