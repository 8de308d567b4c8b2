"""A sweep's cells: (prompt, parameter point, sample index), each a prepared `Call`.

A cell is identified by its cache key, so a sweep's identity survives restarts: its status is
read from the cache (done) and the log (last attempt failed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .. import jsonfast
from ..config import env
from ..errors import ConfigError, RequestError
from ..params import check_params, flat, param_frame
from ..wire import check_messages

if TYPE_CHECKING:
    import pandas as pd

    from ..engine import Call, Engine


#: The most cells a sweep may have unless ``MMLAB_SWEEP_MAX_CELLS`` says otherwise. A built
#: cell (its prepared call, cache key and row) takes about 4 KB and 85 µs to build, so a
#: million cells is some 4 GB and over a minute before the first request — ten times the
#: 100,000-cell sweep ``bench/memory.py`` replays, and thousands of dollars of calls at M1's
#: prices. Past it, a typo (``repeats: 100000000``) would end in a `MemoryError` after minutes;
#: the limit turns it into a clear error at once. A study that big is better split into
#: several sweeps (tags), or the limit raised on purpose.
MAX_CELLS = 1_000_000


def max_cells() -> int:
    """The cell limit: ``MMLAB_SWEEP_MAX_CELLS`` if set, else `MAX_CELLS`."""
    raw = env("MMLAB_SWEEP_MAX_CELLS")
    if raw is None:
        return MAX_CELLS
    try:
        limit = int(raw.replace("_", "").replace(",", ""))
    except ValueError:
        limit = 0
    if limit < 1:
        raise ConfigError(f"MMLAB_SWEEP_MAX_CELLS must be a whole number >= 1; got {raw!r}")
    return limit


def check_size(prompts: int, points: int, repeats: int) -> int:
    """The number of cells (prompts × points × repeats), counted before any is built; raise
    `RequestError` (naming ``repeats`` and the count) above `max_cells`."""
    cells = prompts * points * repeats
    limit = max_cells()
    if cells > limit:
        raise RequestError(
            f"this sweep would have {cells:,} cells ({prompts:,} prompts × {points:,} points "
            f"× {repeats:,} repeats), over the limit of {limit:,}: lower repeats or shrink "
            "the parameter space, or split the study into several sweeps. To go beyond on "
            "purpose, set MMLAB_SWEEP_MAX_CELLS",
            field="repeats",
        )
    return cells


@dataclass(slots=True)
class Cell:
    """One request of a sweep."""

    index: int
    """Position in the sweep (the ``cell`` column)."""
    prompt_id: str
    """The prompt's id."""
    point: dict[str, Any]
    """The parameters sent, validated and merged with the fixed ones (shared by the cells of
    that point): the values every frame shows."""
    sample: int
    """Repeat index."""
    call: Call
    """The prepared request."""
    row: dict[str, Any]
    """The prompt row's other columns (answer, difficulty, ...), shared per prompt."""


class SweepLike(Protocol):
    """What running and collecting a sweep need of it (`mmlab.sweep.Sweep` has these)."""

    engine: Engine
    cells: list[Cell]
    tag: str
    name: str
    prompts: pd.DataFrame
    points: list[dict[str, Any]]
    repeats: int
    scorer: Callable[[Mapping[str, Any]], Any] | None

    @property
    def columns(self) -> list[str]:
        """The parameter columns the sweep varies or sets."""
        ...


def prompt_table(prompts: Any) -> pd.DataFrame:
    """Prompts as a DataFrame with unique ``prompt_id`` and non-blank ``prompt`` columns."""
    import pandas as pd

    if isinstance(prompts, str):
        raise RequestError(
            "prompts must be a list of strings or a DataFrame with a 'prompt' "
            "column, not a single string",
            field="prompts",
        )
    if isinstance(prompts, pd.DataFrame):
        if "prompt" not in prompts.columns:
            raise RequestError(
                f"the prompts DataFrame has no 'prompt' column (columns: {list(prompts.columns)})",
                field="prompts",
            )
        df = prompts.reset_index(drop=True).copy()
    elif isinstance(prompts, Sequence) and prompts and all(isinstance(p, Mapping) for p in prompts):
        # rows with a prompt and more (an answer for the scorer, an id): a sweep file's table
        missing = [i for i, p in enumerate(prompts) if "prompt" not in p]
        if missing:
            raise RequestError(f"prompt row {missing[0]} has no 'prompt'", field="prompts")
        df = pd.DataFrame([dict(p) for p in prompts])
    elif isinstance(prompts, Sequence):
        df = pd.DataFrame({"prompt": list(prompts)})
    else:
        raise RequestError(
            "prompts must be a list of strings (or of rows with a 'prompt') or a DataFrame "
            "with a 'prompt' column",
            field="prompts",
        )
    if df.empty:
        raise RequestError("prompts is empty", field="prompts")
    bad = [i for i, p in enumerate(df["prompt"]) if not isinstance(p, str) or not p.strip()]
    if bad:
        raise RequestError(f"prompt {bad[0]} is not a non-blank string", field="prompts")
    if "prompt_id" not in df.columns:
        df.insert(
            0,
            "prompt_id",
            df["id"].astype(str) if "id" in df.columns else [f"p{i}" for i in range(len(df))],
        )
    if df["prompt_id"].duplicated().any():
        raise RequestError("prompt ids must be unique", field="prompt_id")
    return df


def check_points(
    fixed: Mapping[str, Any],
    points: Sequence[Mapping[str, Any]],
    defaults: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Each point merged over the fixed parameters (over its `defaults`, a function of the
    merged parameters: they may depend on the point's endpoint) and validated — once per
    point, not per cell: 10k cells build in a fraction of a second.

    Nested objects merge field by field, the point winning: fixed ``reasoning={"enabled":
    True}`` and a point's ``reasoning={"max_tokens": 64}`` make ``{"enabled": True,
    "max_tokens": 64}``.
    """
    out = []
    for point in points:
        params = check_params(merge(fixed, point))
        if defaults is not None:
            params = check_params(merge(defaults(params), params))
        out.append(params)
    return out


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Parameter dicts merged left to right; nested objects (reasoning, provider) per field."""
    out: dict[str, Any] = {}
    for layer in layers:
        for name, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(name), Mapping):
                out[name] = {**out[name], **value}
            else:
                out[name] = value
    return out


def build_cells(
    engine: Engine,
    prompts: pd.DataFrame,
    points: list[dict[str, Any]],
    checked: list[dict[str, Any]],
    *,
    system: str | None,
    repeats: int,
    tag: str,
) -> list[Cell]:
    """Every (prompt, point, sample) as a `Cell`, through the engine's own call path."""
    params_json = [jsonfast.dumps_sorted(p) for p in checked]
    samples = range(repeats)
    cells: list[Cell] = []
    for prow in prompts.to_dict("records"):
        own = prow.get("system")
        messages = check_messages(prow["prompt"], own if isinstance(own, str) else system)
        extra = {k: v for k, v in prow.items() if k not in ("prompt", "prompt_id")}
        prompt_id = str(prow["prompt_id"])
        for params, pj in zip(checked, params_json, strict=True):
            for call in engine.calls_for(messages, params, samples, tag, pj):
                cells.append(Cell(len(cells), prompt_id, params, call.sample, call, extra))
    return cells


def plan_frame(
    cells: Sequence[Cell],
    columns: Sequence[str],
    status: tuple[set[str], dict[str, str]] | None = None,
) -> pd.DataFrame:
    """The plan: one row per cell — ``cell``, ``prompt_id``, the parameter `columns` (as
    `mmlab.params.param_frame` types them everywhere), ``sample``, and with `status` (from
    `Engine.status`) the cell's ``status`` (``hit``: cached; ``error``: last attempt failed;
    ``miss``: to call) and ``cache_key``. `Sweep.plan` shows it; the adaptive scheduler plans
    its rounds on it."""
    import pandas as pd

    # cells share their point dicts: one frame row per distinct point, then taken per cell
    points: dict[int, int] = {}
    distinct: list[dict[str, Any]] = []
    for c in cells:
        if id(c.point) not in points:
            points[id(c.point)] = len(distinct)
            distinct.append(c.point)
    params = param_frame(distinct, [k for k in columns if k != "model"])
    params = params.take([points[id(c.point)] for c in cells]).reset_index(drop=True)
    # the same dtypes as res.df's columns of the same names (`mmlab.fields`)
    out = pd.DataFrame({"cell": [c.index for c in cells],
                        "prompt_id": pd.Series([c.prompt_id for c in cells], dtype=object)})
    if "model" in columns:
        out["model"] = pd.Series([c.call.model for c in cells], dtype=object)
    out = pd.concat([out, params], axis=1)
    out["sample"] = pd.array([c.sample for c in cells], dtype="Int64")
    if status is not None:
        cached, errors = status
        out["status"] = pd.Series([
            "hit" if c.call.key in cached else "error" if c.call.key in errors else "miss"
            for c in cells
        ], dtype=object)
        out["cache_key"] = pd.Series([c.call.key for c in cells], dtype=object)
    return out


def point_columns(points: Sequence[Mapping[str, Any]]) -> list[str]:
    """The flattened parameter columns the points vary (or set)."""
    return list(dict.fromkeys(k for p in points for k in flat(p)))
