"""A sweep's results: columns filled cell by cell, then one DataFrame (``res.df``).

The frame is built from preallocated arrays, column by column: objects per row (dicts,
Results) would cost more memory than the answers themselves (100,000 replayed cells peak at
under 2x the size of their responses).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..analysis import cost_per_correct, summarize, truncation_rate
from ..fields import SWEPT
from ..params import column_dtype, column_value, flat
from ..result import same_model
from .forecast import Forecast

if TYPE_CHECKING:
    import pandas as pd

    from ..result import Result
    from .cells import Cell, SweepLike

class Columns:
    """A sweep's results as preallocated column arrays, one per result field `mmlab.fields`
    declares for ``res.df`` (`SWEPT`), filled cell by cell."""

    def __init__(self, n: int) -> None:
        import numpy as np

        self.done = np.zeros(n, dtype=bool)
        empty = {"int": lambda: np.zeros(n, dtype=np.int64),
                 "float": lambda: np.full(n, np.nan),
                 "bool": lambda: np.zeros(n, dtype=bool)}  # fmt: skip
        self.arrays: dict[str, Any] = {
            f.column: empty.get(f.kind, lambda: np.full(n, None, dtype=object))()
            for f in SWEPT
        }
        # (array, reader, intern?, skip None?) per field: the loop in `put` runs per cell
        self._writers = [
            (self.arrays[f.column], f.read, f.kind == "label", f.kind in ("int", "float"))
            for f in SWEPT
        ]

    def put(self, i: int, r: Result) -> None:
        """Store cell `i`'s result."""
        self.done[i] = True
        for array, read, label, numeric in self._writers:
            v = read(r)  # type: ignore[misc]
            if v is None and numeric:
                continue  # stays NaN: unknown, not 0
            array[i] = sys.intern(v) if label and isinstance(v, str) else v

    def cost(self, i: int) -> float:
        """What producing cell `i`'s response cost (0 when unknown or not done)."""
        cost = self.arrays["cost_usd"][i]
        return 0.0 if cost != cost else float(cost)

    def response(self, i: int) -> dict[str, Any]:
        """Cell `i`'s result fields as plain Python values, as its row of ``res.df`` reads."""
        out: dict[str, Any] = {}
        for f in SWEPT:
            v = self.arrays[f.column][i]
            out[f.column] = v.item() if hasattr(v, "item") else v
        return out

    def frame_columns(self) -> dict[str, Any]:
        """The result columns, in res.df order, each with its declared dtype; cells not done
        are <NA>/NaN/None."""
        import pandas as pd

        missing = ~self.done
        out: dict[str, Any] = {}
        for f in SWEPT:
            v = self.arrays[f.column]
            if f.kind == "int":
                out[f.column] = pd.arrays.IntegerArray(v, missing.copy())
            elif f.kind == "bool":
                out[f.column] = pd.arrays.BooleanArray(v, missing.copy())
            elif f.kind == "float":
                out[f.column] = v
            else:
                # Text stays as the Python strings already in memory (object dtype): letting
                # pandas infer its string dtype would copy every answer into a second buffer.
                out[f.column] = pd.Series(v, dtype=object, copy=False)
        return out


def result_row(cell: Cell, done: Columns, columns: Sequence[str]) -> dict[str, Any]:
    """Finished cell `cell` as its row of ``res.df`` will read, parameter `columns` included
    (what a scorer is given while an adaptive sweep runs, so its live decisions score exactly
    what the frame scores)."""
    i = cell.index
    row: dict[str, Any] = {"cell": i, "prompt_id": cell.prompt_id}
    row.update((k, v) for k, v in cell.row.items() if k not in ("prompt", "prompt_id"))
    row["model"] = cell.call.model
    params = flat(cell.point)
    row.update((k, column_value(params.get(k))) for k in columns if k != "model")
    row["sample"] = cell.sample
    row.update(done.response(i))
    row["error"] = None
    row["cache_key"] = cell.call.key
    return row


def build_frame(
    cells: Sequence[Cell],
    prompts: pd.DataFrame,
    columns: Sequence[str],
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
    # the model asked, whether or not it is an axis (its answers may come from another one)
    cols["model"] = column(sys.intern(c.call.model) for c in cells)
    # cells share their point dicts: flatten each point once, not once per cell; values as
    # sent (validated), typed as every other frame types them (`mmlab.params.param_frame`)
    flats: dict[int, dict[str, Any]] = {}
    for c in cells:
        if id(c.point) not in flats:
            flats[id(c.point)] = {k: column_value(v) for k, v in flat(c.point).items()}
    for name in columns:
        if name != "model":
            cols[name] = pd.Series([flats[id(c.point)].get(name) for c in cells],
                                   dtype=column_dtype(name))  # fmt: skip
    cols["sample"] = pd.array(np.fromiter((c.sample for c in cells), dtype=np.int64, count=n),
                              dtype="Int64")  # fmt: skip
    cols.update(done.frame_columns())
    cols["error"] = column(
        None if done.done[c.index] else failures.get(c.index, "not run") for c in cells
    )
    cols["cache_key"] = column(c.call.key for c in cells)
    df = pd.DataFrame(cols)
    if scorer is not None:
        # the same rows an adaptive run's live scorer is given (`result_row`), built per cell
        # rather than through df.to_dict, which would copy the whole frame into dicts at once
        df["score"] = pd.Series(
            [score(scorer, result_row(c, done, columns)) if done.done[c.index] else None
             for c in cells],  # fmt: skip
            dtype=float,
        )
    return df


#: Fewer comparable groups than this say nothing about whether an axis is ignored.
MIN_GROUPS = 5


def ignored_axes(df: pd.DataFrame, columns: Sequence[str]) -> list[tuple[str, int]]:
    """Swept axes whose values changed no answer at all: (axis, groups compared) for each.

    Cells that differ only in the axis (same prompt, sample and other parameters) are
    compared; an axis is reported when at least `MIN_GROUPS` such groups exist and in every
    one of them all its values gave the identical output (answer, reasoning and token count)
    — proof, not a statistical hunch, that the endpoint ignored it (OpenRouter drops
    unsupported parameters silently).
    """
    import pandas as pd

    axes = [a for a in columns if a in df]
    if not axes:
        return []
    done = df["error"].isna() & df["content"].notna()
    # every compared column, and the output, as integer codes: joining answers and reasoning
    # into new strings (or hashing them) cost more memory than the whole result frame on a
    # 100,000-cell replay
    ok = pd.DataFrame({k: _codes(df.loc[done, k]) for k in ["prompt_id", "sample", *axes]})
    output = _codes(df.loc[done, "content"])
    for k in ("reasoning", "completion_tokens"):  # one code per distinct (answer, reasoning, n)
        more = _codes(df.loc[done, k])
        output = pd.factorize(output * (int(more.max(initial=0)) + 1) + more)[0]
    ok["_output"] = output
    out = []
    for axis in axes:
        if ok[axis].nunique() < 2:
            continue
        keys = ["prompt_id", "sample", *(a for a in axes if a != axis)]
        groups = ok.groupby(keys, dropna=False)
        sizes = groups[axis].nunique()
        full = sizes[sizes >= 2].index
        if len(full) < MIN_GROUPS:
            continue
        answers = groups["_output"].nunique().loc[full]
        if (answers == 1).all():
            out.append((axis, len(full)))
    return out


def _codes(col: pd.Series) -> Any:
    """`col` as integer codes, equal values (None included) sharing one."""
    import pandas as pd

    try:
        return pd.factorize(col, use_na_sentinel=False)[0]
    except TypeError:  # unhashable values (a list, a mapping): compare them as text
        return pd.factorize(col.astype(str), use_na_sentinel=False)[0]


def routing_warnings(df: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """What makes cells meant to be comparable not comparable: answers from another model
    than the one asked (OpenRouter's fallback), and cells of one parameter point served by
    different providers (unpinned routing spreads them)."""
    out: list[str] = []
    axes = [a for a in columns if a in df]
    keys = ["model", *(a for a in axes if a != "model")]
    # only the columns looked at: a filtered copy of the whole frame is as big as the frame
    ok = df.loc[df["error"].isna() & df["served_model"].notna(),
                list(dict.fromkeys([*keys, "served_model", "provider"]))]  # fmt: skip
    if not len(ok):
        return out

    other = ok[[not same_model(m, s) for m, s in
                zip(ok["model"], ok["served_model"], strict=True)]]  # fmt: skip
    if len(other):
        pairs = other.groupby(["model", "served_model"]).size()
        said = "; ".join(f"{m} → {s} ({k} cells)" for (m, s), k in pairs.items())
        out.append(
            f"{len(other)} cells were answered by another model than the one asked "
            f"(fallback): {said}. Compare like with like: drop them, or keep fallbacks off."
        )
    served = ok.loc[ok["provider"].notna(), list(dict.fromkeys([*keys, "provider"]))]
    if len(served):
        spread = served.astype({k: str for k in keys}).groupby(keys, dropna=False)["provider"]
        mixed = spread.nunique()
        mixed = mixed[mixed > 1]
        if len(mixed):
            counts = spread.value_counts()
            first = mixed.index[0]
            first = first if isinstance(first, tuple) else (first,)
            shares = ", ".join(f"{p} ({k})" for p, k in counts.loc[first].items())
            out.append(
                f"{len(mixed)} parameter point(s) were served by more than one provider "
                f"(e.g. {dict(zip(keys, first, strict=True))}: {shares}): latency, cost and "
                "even answers differ by provider. Pin one per point: provider=pin('name')."
            )
    return out


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
    """The lowest the concurrency limit went (rate limits halve it)."""
    spent_usd: float = 0.0
    seconds: float = 0.0
    stopped: str | None = None
    """Why the run ended early (budget, interrupt, max_calls), or None."""
    remaining: int = 0
    remaining_forecast: Forecast | None = None
    adaptive_stop: str | None = None
    """Why an adaptive run's stopping rule ended it (None: a fixed run, or not yet decided)."""
    adaptive: AdaptiveOutcome | None = None
    concurrency: int = 0
    """The concurrency the run started with (0: not known)."""

    def __str__(self) -> str:
        # the limit is news only when rate limits lowered it below where the run started
        lowered = (
            f" (concurrency down to {self.lowest_concurrency})"
            if self.lowest_concurrency < self.concurrency
            or (not self.concurrency and self.rate_limited)
            else ""
        )
        head = (
            f"{self.cells} cells · {self.hits} cached · {self.sent} sent "
            f"({self.succeeded} ok, {self.failed} failed) · {self.retries} retries · "
            f"{self.rate_limited} rate-limited{lowered} · spent ${self.spent_usd:.4f} · "
            f"{self.seconds:.1f} s"
        )
        if self.adaptive is not None:
            head += f"\n{self.adaptive}"
        if self.stopped:
            head += f"\nstopped: {self.stopped}; {self.remaining} cells left"
            if self.remaining_forecast is not None:
                head += (
                    f" (expected ${self.remaining_forecast.expected_usd:.4f}, worst "
                    f"${self.remaining_forecast.worst_usd:.4f})"
                )
        return head


@dataclass
class AdaptiveOutcome:
    """Why and when an adaptive run stopped, what it sampled against the fixed design, and
    its anytime-valid intervals (see `mmlab.stop`)."""

    rule: str
    """The stopping rule, in words."""
    reason: str | None
    """Why it stopped (rule and round), or None if it has not decided yet."""
    rounds: int
    """Rounds run (round r samples repeat r of every cell still wanted)."""
    cells: int
    """Cells sampled."""
    design_cells: int
    """Cells of the fixed design (every repeat of every cell)."""
    usd: float
    """What producing the sampled responses cost."""
    design_usd: float
    """What the fixed design would have cost at the observed cost per sampled cell."""
    design_forecast_usd: float
    """The fixed design's forecast before the run (expected USD at the endpoint's prices)."""
    design_m1_usd: float
    """The fixed design's forecast at M1's list prices."""
    winner: dict[str, Any] | None
    """The best arm of a `decided` rule, when it named one."""
    intervals: pd.DataFrame
    """Per group: ``mean``, ``cs_low``, ``cs_high`` (anytime-valid), ``live``, ``cs_method``."""
    history: pd.DataFrame
    """The intervals round by round, as they narrowed."""
    pairs: pd.DataFrame
    """For `decided`: per pair of arms, the anytime-valid interval on the difference of their
    means (``arm_a`` minus ``arm_b``) that its eliminations are made on."""
    leader: dict[str, Any] | None = None
    """The winner once certified, else the arm ahead on its point estimate (not a decision)."""

    @classmethod
    def of(cls, scheduler: Any, rule: str, design: Forecast | None) -> AdaptiveOutcome:
        """The outcome of a finished (or interrupted) `mmlab.stop.AdaptiveScheduler`."""
        summary = scheduler.summary()
        cells, design_cells = int(summary["cells_sampled"]), int(summary["cells_fixed_design"])
        usd = float(scheduler.spent_usd)
        return cls(
            rule=rule,
            reason=scheduler.stopped_reason,
            rounds=scheduler.round,
            cells=cells,
            design_cells=design_cells,
            usd=usd,
            design_usd=usd / cells * design_cells if cells else math.nan,
            design_forecast_usd=design.expected_usd if design is not None else math.nan,
            design_m1_usd=design.m1_expected_usd if design is not None else math.nan,
            winner=scheduler.winner,
            intervals=scheduler.intervals(),
            history=scheduler.history(),
            pairs=scheduler.pair_intervals(),
            leader=scheduler.leader,
        )

    def alongside(self, summary: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
        """`summary` (from `mmlab.analysis.summarize`) with the anytime-valid interval
        (``cs_low``, ``cs_high``, ``cs_method``) on the rows whose grouping and metric a
        stopping rule tracked; NaN elsewhere."""
        out = summary.assign(cs_low=math.nan, cs_high=math.nan, cs_method=None)
        iv = self.intervals
        fixed = {"rule", "metric", "n_rounds", "n_scores", "mean", "cs_low", "cs_high", "live",
                 "cs_method"}  # fmt: skip
        for _, rows in iv.groupby("rule", sort=False):
            keys = [c for c in rows.columns if c not in fixed and rows[c].notna().all()]
            if set(keys) != set(by):
                continue
            metric = rows["metric"].iloc[0]
            lookup = {
                tuple(str(r[k]) for k in by): r for r in rows.to_dict("records")
            }
            for i, row in out[out["metric"] == metric].iterrows():
                hit = lookup.get(tuple(str(row[k]) for k in by))
                if hit is not None:
                    out.loc[i, ["cs_low", "cs_high", "cs_method"]] = [
                        hit["cs_low"], hit["cs_high"], hit["cs_method"]
                    ]
        return out

    def __str__(self) -> str:
        share = self.cells / self.design_cells if self.design_cells else math.nan
        why = self.reason or f"{self.rule}: not decided yet (a rerun goes on)"
        winner = ""
        if self.winner:
            winner = "; best: " + ", ".join(f"{k}={v}" for k, v in self.winner.items())
        return (
            f"adaptive: {why}; sampled {self.cells} of {self.design_cells} cells ({share:.0%}); "
            f"cost ${self.usd:.4f} vs ~${self.design_usd:.4f} for the fixed design at the same "
            f"cost per cell{winner}"
        )


@dataclass
class SweepResult:
    """A sweep's outcome: ``df`` (one row per cell run; for an adaptive run, the cells it
    sampled), ``stats`` (what the run did) and ``adaptive`` (why an adaptive run stopped)."""

    sweep: SweepLike
    df: pd.DataFrame
    stats: RunStats
    adaptive: AdaptiveOutcome | None = None

    def __repr__(self) -> str:
        return f"SweepResult({self.sweep.tag!r}: {self.stats})"

    @property
    def parameters(self) -> list[str]:
        """The parameter columns of `df` this sweep varied or set (``temperature``,
        ``provider.only``, ...): what `mmlab.sequential.simulate` groups cells by."""
        return [c for c in self.sweep.columns if c in self.df]

    @property
    def complete(self) -> bool:
        """Every cell has a successful result."""
        return bool(self.df["error"].isna().all())

    def summary(
        self, by: str | Sequence[str], metrics: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Per-parameter means with 95% confidence intervals over repeats and prompts; for
        an adaptive run, with the stopping rule's anytime-valid interval alongside (``cs_low``,
        ``cs_high``, ``cs_method``) — the one that stays valid although the run chose when to
        stop."""
        out = summarize(self.df, by, metrics)
        if self.adaptive is not None and len(out):
            out = self.adaptive.alongside(out, [by] if isinstance(by, str) else list(by))
        return out

    def truncation_rate(self, by: str | Sequence[str] = "max_tokens") -> pd.DataFrame:
        """Share of cells stopped by length with an empty answer, with a Wilson interval."""
        return truncation_rate(self.df, by)

    def cost_per_correct(self, by: str | Sequence[str] = "max_tokens") -> pd.DataFrame:
        """USD spent per correct answer (needs a scorer)."""
        return cost_per_correct(self.df, by)

