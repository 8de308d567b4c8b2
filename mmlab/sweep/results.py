"""A sweep's results: columns filled cell by cell, then one DataFrame (``res.df``).

The frame is built from preallocated arrays, column by column: objects per row (dicts,
Results) would cost more memory than the answers themselves (100,000 replayed cells peak at
under 2x the size of their responses).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..analysis import cost_per_correct, summarize, truncation_rate
from ..params import flat
from ..result import Response
from ..wire import is_truncated
from .forecast import Forecast

if TYPE_CHECKING:
    import pandas as pd

    from .cells import Cell, SweepLike

#: Labels like "stop" or "billed" repeat in every row: one interned copy each.
LABELS = frozenset({"cost_source", "finish_reason", "provider", "reasoning_mode"})


class Columns:
    """A sweep's results as preallocated column arrays, filled cell by cell."""

    TEXT = ("content", "reasoning", "cost_source", "finish_reason", "provider", "reasoning_mode")
    TOKENS = ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens")
    NUMBERS = ("cost_usd", "spent_usd", "latency_s", "ttft_s")

    def __init__(self, n: int) -> None:
        import numpy as np

        self.done = np.zeros(n, dtype=bool)
        self.hit = np.zeros(n, dtype=bool)
        self.text = {k: np.full(n, None, dtype=object) for k in self.TEXT}
        self.tokens = {k: np.zeros(n, dtype=np.int64) for k in self.TOKENS}
        self.numbers = {k: np.full(n, np.nan) for k in self.NUMBERS}

    def put(self, i: int, r: Response, *, hit: bool, spent: float) -> None:
        """Store cell `i`'s response."""
        self.done[i], self.hit[i] = True, hit
        u = r.usage
        self.tokens["prompt_tokens"][i] = u.prompt_tokens
        self.tokens["completion_tokens"][i] = u.completion_tokens
        self.tokens["reasoning_tokens"][i] = u.reasoning_tokens
        self.tokens["cached_tokens"][i] = u.cached_tokens
        for k in self.TEXT:
            v = getattr(r, k)
            self.text[k][i] = sys.intern(v) if isinstance(v, str) and k in LABELS else v
        for k, v in (
            ("cost_usd", r.cost_usd),
            ("spent_usd", spent),
            ("latency_s", r.latency_s),
            ("ttft_s", r.ttft_s),
        ):
            if v is not None:
                self.numbers[k][i] = v

    def frame_columns(self) -> dict[str, Any]:
        """The result columns, in res.df order, with missing cells as <NA>/NaN/None."""
        import numpy as np
        import pandas as pd

        missing = ~self.done
        # Text stays as the Python strings already in memory (object dtype): letting pandas
        # infer its string dtype would copy every answer and reasoning into a second buffer.
        text = {k: pd.Series(v, dtype=object, copy=False) for k, v in self.text.items()}
        ints = {k: pd.arrays.IntegerArray(v, missing.copy()) for k, v in self.tokens.items()}
        answer = np.maximum(self.tokens["completion_tokens"] - self.tokens["reasoning_tokens"], 0)
        truncated = np.array(
            [
                is_truncated(f, c)
                for f, c in zip(self.text["finish_reason"], self.text["content"], strict=True)
            ],
            dtype=bool,
        )
        return {
            "content": text["content"],
            "reasoning": text["reasoning"],
            "prompt_tokens": ints["prompt_tokens"],
            "completion_tokens": ints["completion_tokens"],
            "reasoning_tokens": ints["reasoning_tokens"],
            "answer_tokens": pd.arrays.IntegerArray(answer, missing.copy()),
            "cached_tokens": ints["cached_tokens"],
            "cost_usd": self.numbers["cost_usd"],
            "cost_source": text["cost_source"],
            "spent_usd": self.numbers["spent_usd"],
            "latency_s": self.numbers["latency_s"],
            "ttft_s": self.numbers["ttft_s"],
            "finish_reason": text["finish_reason"],
            "truncated": pd.arrays.BooleanArray(truncated, missing.copy()),
            "cache_hit": pd.arrays.BooleanArray(self.hit, missing.copy()),
            "provider": text["provider"],
            "reasoning_mode": text["reasoning_mode"],
        }


def build_frame(
    cells: Sequence[Cell],
    prompts: pd.DataFrame,
    points: Sequence[Mapping[str, Any]],
    done: Columns,
    failures: Mapping[int, str],
    scorer: Callable[[Mapping[str, Any]], Any] | None,
) -> pd.DataFrame:
    """``res.df``: one row per cell — prompt columns, parameters, sample, response columns,
    ``error`` (None, the failure, or "not run"), ``cache_key`` and ``score``."""
    import numpy as np
    import pandas as pd

    n = len(cells)

    def column(values: Any) -> pd.Series:
        # filled straight into an object array (no list, no string-dtype copy)
        return pd.Series(np.fromiter(values, dtype=object, count=n), dtype=object, copy=False)

    cols: dict[str, Any] = {"cell": np.arange(n), "prompt_id": column(c.prompt_id for c in cells)}
    for name in prompts.columns:
        if name not in ("prompt", "prompt_id"):
            cols[name] = pd.Series([c.row.get(name) for c in cells])
    # cells share their point dicts: flatten each point once, not once per cell
    flats = {id(p): flat(p) for p in points}
    for name in dict.fromkeys(k for f in flats.values() for k in f):
        cols[name] = pd.Series([flats[id(c.point)].get(name) for c in cells])
    cols["sample"] = np.fromiter((c.sample for c in cells), dtype=np.int64, count=n)
    cols.update(done.frame_columns())
    cols["error"] = column(
        None if done.done[c.index] else failures.get(c.index, "not run") for c in cells
    )
    cols["cache_key"] = column(c.call.key for c in cells)
    df = pd.DataFrame(cols)
    if scorer is not None:
        df["score"] = [
            None if row["error"] is not None else score(scorer, row)
            for row in df.to_dict("records")
        ]
        df["score"] = df["score"].astype(float)
    return df


def score(scorer: Callable[[Mapping[str, Any]], Any], row: Mapping[str, Any]) -> float | None:
    """A scorer's verdict on a result row, as a float (None: cannot score)."""
    value = scorer(row)
    return None if value is None else float(value)


@dataclass
class RunStats:
    """What one `Sweep.run` did."""

    cells: int = 0
    hits: int = 0
    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    retries: int = 0
    rate_limited: int = 0
    lowest_concurrency: int = 0
    spent_usd: float = 0.0
    seconds: float = 0.0
    stopped: str | None = None
    """Why the run ended early (budget, interrupt, max_calls), or None."""
    remaining: int = 0
    remaining_forecast: Forecast | None = None

    def __str__(self) -> str:
        head = (
            f"{self.cells} cells · {self.hits} cached · {self.sent} sent "
            f"({self.succeeded} ok, {self.failed} failed) · {self.retries} retries · "
            f"{self.rate_limited} rate-limited (concurrency down to "
            f"{self.lowest_concurrency}) · spent ${self.spent_usd:.4f} · "
            f"{self.seconds:.1f} s"
        )
        if self.stopped:
            head += f"\nstopped: {self.stopped}; {self.remaining} cells left"
            if self.remaining_forecast is not None:
                head += (
                    f" (expected ${self.remaining_forecast.expected_usd:.4f}, worst "
                    f"${self.remaining_forecast.worst_usd:.4f})"
                )
        return head


@dataclass
class SweepResult:
    """A sweep's outcome: ``df`` (one row per cell) and ``stats`` (what the run did)."""

    sweep: SweepLike
    df: pd.DataFrame
    stats: RunStats

    def __repr__(self) -> str:
        return f"SweepResult({self.sweep.tag!r}: {self.stats})"

    @property
    def complete(self) -> bool:
        """Every cell has a successful result."""
        return bool(self.df["error"].isna().all())

    def summary(
        self, by: str | Sequence[str], metrics: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Per-parameter means with 95% confidence intervals over repeats and prompts."""
        return summarize(self.df, by, metrics)

    def truncation_rate(self, by: str | Sequence[str] = "max_tokens") -> pd.DataFrame:
        """Share of cells stopped by length with an empty answer, with a Wilson interval."""
        return truncation_rate(self.df, by)

    def cost_per_correct(self, by: str | Sequence[str] = "max_tokens") -> pd.DataFrame:
        """USD spent per correct answer (needs a scorer)."""
        return cost_per_correct(self.df, by)

