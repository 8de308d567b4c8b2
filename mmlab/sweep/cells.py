"""A sweep's cells: (prompt, parameter point, sample index), each a prepared `Call`.

A cell is identified by its cache key, so a sweep's identity survives restarts: its status is
read from the cache (done) and the log (last attempt failed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import RequestError
from ..params import check_params
from ..wire import canonical_json, check_messages

if TYPE_CHECKING:
    import pandas as pd

    from ..engine import Call, Engine


@dataclass(slots=True)
class Cell:
    """One request of a sweep."""

    index: int
    """Position in the sweep (the ``cell`` column)."""
    prompt_id: str
    """The prompt's id."""
    point: dict[str, Any]
    """The parameter point (shared by the cells of that point)."""
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
    scorer: Callable[[Mapping[str, Any]], Any] | None


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
    elif isinstance(prompts, Sequence):
        df = pd.DataFrame({"prompt": list(prompts)})
    else:
        raise RequestError(
            "prompts must be a list of strings or a DataFrame with a 'prompt' column",
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
    fixed: Mapping[str, Any], points: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Each point merged over the fixed parameters and validated (once per point, not per
    cell: 10k cells build in a fraction of a second)."""
    return [check_params({**fixed, **point}) for point in points]


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
    params_json = [canonical_json(p) for p in checked]
    samples = range(repeats)
    cells: list[Cell] = []
    for prow in prompts.to_dict("records"):
        own = prow.get("system")
        messages = check_messages(prow["prompt"], own if isinstance(own, str) else system)
        extra = {k: v for k, v in prow.items() if k not in ("prompt", "prompt_id")}
        prompt_id = str(prow["prompt_id"])
        for point, params, pj in zip(points, checked, params_json, strict=True):
            for call in engine.calls_for(messages, params, samples, tag, pj):
                cells.append(Cell(len(cells), prompt_id, point, call.sample, call, extra))
    return cells


def status(engine: Engine, cells: Sequence[Cell], tag: str) -> tuple[set[str], dict[str, str]]:
    """(keys with a cached response, last error by key for keys with no success)."""
    keys = [c.call.key for c in cells]
    cached = engine.store.cache_keys(keys)
    return cached, engine.store.last_errors(tag, set(keys) - cached)
