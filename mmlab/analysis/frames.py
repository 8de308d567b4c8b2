"""The frame helpers every analysis shares: drop failed calls, check columns and arguments,
group rows.

They raise `RequestError` naming the offending column or argument, with the calling
function's name in the message, so an analysis reports a bad frame in its own words.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import RequestError
from .intervals import POPULATION, THESE_PROBLEMS

if TYPE_CHECKING:
    import pandas as pd


def successful(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of calls that succeeded (``error`` unset); all rows without an ``error`` column."""
    return df[df["error"].isna()] if "error" in df else df


def as_list(by: str | Sequence[str]) -> list[str]:
    """A `by` argument (one column name or several) as a list of column names."""
    return [by] if isinstance(by, str) else list(by)


def group_keys(by: str | Sequence[str] | None) -> list[str]:
    """Like `as_list`, with None (no grouping: one group of everything) as no columns."""
    return [] if by is None else as_list(by)


#: Where a column an analysis needs comes from, for the error that says it is missing.
PRODUCERS = {
    "score": "a sweep run with a scorer: lab.sweep(..., scorer=scorers.final_answer).run().df",
    "prompt_id": "a sweep's result, res.df (Sweep.run)",
    "content": "a sweep's result, res.df (Sweep.run), or lab.calls()",
    "answer": "a sweep over problems with an answer column (mmlab.problems.load_problems), "
    "res.df",
    "sample": "a sweep's result, res.df (Sweep.run)",
}
#: The source named for any other column: the result frames carry it, or a sweep varies it.
OTHER_PRODUCER = "a sweep's result, res.df (Sweep.run: its result and parameter columns), or " \
    "lab.calls()"  # fmt: skip


def producer(column: str) -> str:
    """Which function makes `column` (for a missing-column error)."""
    return PRODUCERS.get(column, OTHER_PRODUCER)


def require_columns(df: pd.DataFrame, columns: Sequence[str], func: str) -> None:
    """Raise RequestError naming the first of `columns` that `df` lacks (`func` needs it) and
    the function that produces such a column (`producer`)."""
    for column in columns:
        if column not in df:
            raise RequestError(
                f"{func} needs a {column!r} column, as in {producer(column)}", field=column
            )


def per_sample_target(part: pd.DataFrame) -> str:
    """The target of a per-sample interval over `part`'s rows: these problems when a problem
    has several rows (its samples are not independent draws from the population), else the
    population (each row its own problem: ``prompt_id`` unique, or no ``prompt_id`` column,
    where rows are taken as independent as everywhere in this package)."""
    if "prompt_id" in part and not part["prompt_id"].is_unique:
        return THESE_PROBLEMS
    return POPULATION


def groups(df: pd.DataFrame, keys: list[str]) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    """(group values, rows) per group of `keys`; one group of everything when there are none."""
    if not keys:
        yield {}, df
        return
    for group, part in df.groupby(keys, dropna=False, sort=True):
        group = group if isinstance(group, tuple) else (group,)
        yield dict(zip(keys, group, strict=True)), part


def int_arg(value: Any, name: str, low: int, high: int | None = None, why: str = "") -> int:
    """`value` as an int if it is an integer (not a bool) in `low`..`high` (no upper bound
    when `high` is None); else RequestError naming `name`, with `why` after the range."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < low
        or (high is not None and value > high)
    ):
        allowed = f"{low}..{high}" if high is not None else f">= {low}"
        raise RequestError(
            f"{name} must be an integer in {allowed}{why}; got {value!r}", field=name
        )
    return int(value)


def level_arg(level: Any) -> float:
    """A confidence level as a float strictly between 0 and 1; else RequestError."""
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < level < 1:
        raise RequestError(f"level must be a number between 0 and 1; got {level!r}", "level")
    return float(level)


def numeric_column(df: pd.DataFrame, column: str, func: str) -> pd.Series:
    """`df[column]` as floats; RequestError naming the column if it does not convert."""
    try:
        return df[column].astype(float)
    except (TypeError, ValueError) as exc:
        raise RequestError(f"{func}: column {column!r} must be numeric", field=column) from exc


def scored_rows(df: pd.DataFrame, keys: list[str], func: str) -> pd.DataFrame:
    """The rows that have a score, each checked to be 0 or 1; a group without any is an error.

    NaN means the scorer could not score the row (no gold answer, say): such rows are left out
    rather than counted wrong, so `n` counts scored samples.
    """
    score = numeric_column(df, "score", func)
    bad = score.notna() & ~score.isin([0.0, 1.0])
    if bad.any():
        raise RequestError(
            f"{func} needs binary scores (1 correct, 0 wrong, NaN unscorable); "
            f"got {score[bad].iloc[0]!r}",
            field="score",
        )
    data = df.assign(score=score)
    if data["score"].notna().sum() == 0:
        raise RequestError(f"{func}: no scored samples (or no successful rows)", field="score")
    if keys:
        scored = data.groupby(keys, dropna=False, sort=True)["score"].count()
        if (scored == 0).any():
            group = scored.index[scored.to_numpy() == 0][0]
            raise RequestError(f"{func}: no scored samples in group {group!r}", field="score")
    return data[data["score"].notna()]
