"""The adaptive round scheduler: which cells to run next, and when to stop.

The pure, I/O-free loop that executes a stopping rule (`mmlab.stop`) over a sweep's fixed
design, compiled to a tree (`tree.py`): the sweep runner asks `AdaptiveScheduler.next_round`
which cells to run, makes the calls, and feeds each score back with `observe` (the package
docstring has the loop). Every decision is a deterministic function of the observed scores
(and costs), so replaying a sweep from the cache makes the same decisions in the same order.
Simulation (`simulate.py`) runs many schedulers on one `Design` through `from_design`,
`observe_round`, `leaves` and `issued`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import RequestError
from ..stop import Rule, positive_number
from .tree import CSLeaf, Design, Groups, key_text

if TYPE_CHECKING:
    import pandas as pd


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _arm_value(groups: Groups, k: int) -> Any:
    """Group `k`'s value of the grouping column, or a tuple of values for several."""
    vals = tuple(_plain(groups.keys[k][c]) for c in groups.cols)
    return vals[0] if len(vals) == 1 else vals


class AdaptiveScheduler:
    """Decides, round by round, which cells of a sweep to run, and when to stop.

    `cells`: one row per cell with ``cell`` (int id), ``prompt_id``, ``sample`` (repeat index
    ``0..repeats-1``) and the parameter columns the rules group by (`Sweep.plan()` has this
    shape). Round ``r`` offers repeat ``r`` of the cells the rules still want, in cell-id
    order; the caller runs them and calls `observe` for each. The scheduler never offers a
    cell twice and never runs more than `repeats` rounds.

    `rule`: a stopping rule (`ci_width`, `decided`, `budget`, `max_repeats`, or ``|``/``&``
    combinations). `point_columns`: the parameter columns (groups of ``ci_width(by=None)``);
    default every column except ``cell``, ``prompt_id``, ``sample`` and known result columns
    (``status``, ``cache_key``, ``score``, tokens, costs...). `worst_usd_per_cell`: a number,
    or a function of a cell id, giving the most a cell can cost, for `budget`; without it the
    budget check uses the mean cost observed so far.

    Observations are folded in when a round is complete (every offered cell observed) or when
    `next_round` is called again (cells not observed by then count as failed, at no cost).
    Decisions depend only on the observed values, so a replay decides identically.
    """

    def __init__(
        self,
        cells: pd.DataFrame,
        rule: Rule,
        *,
        repeats: int,
        point_columns: Sequence[str] | None = None,
        worst_usd_per_cell: float | Callable[[int], float] | None = None,
    ) -> None:
        self._setup(Design(cells, rule, repeats, point_columns), worst_usd_per_cell)

    @classmethod
    def from_design(
        cls,
        design: Design,
        *,
        worst_usd_per_cell: float | Callable[[int], float] | None = None,
    ) -> AdaptiveScheduler:
        """A fresh scheduler on an already validated `Design` (another scheduler's `design`).

        What `simulate` and `expected_share` use to run many schedulers on one design
        without re-validating the cell table each time; `worst_usd_per_cell` as for the
        constructor.
        """
        self = cls.__new__(cls)
        self._setup(design, worst_usd_per_cell)
        return self

    def _setup(self, design: Design, worst: float | Callable[[int], float] | None) -> None:
        if worst is not None and not callable(worst):
            worst = positive_number(worst, "worst_usd_per_cell", allow_zero=True)
        d = self._d = design
        n = len(d.ids)
        self._worst = worst
        self._root = d.build()
        self._leaves: list[CSLeaf] = [
            leaf for leaf in (self._root.leaves() if self._root else []) if isinstance(leaf, CSLeaf)
        ]
        self._values = {m: np.full(n, np.nan) for m in d.metrics}
        self._usd = np.zeros(n)
        self._issued = np.zeros(n, dtype=bool)
        self._observed = np.zeros(n, dtype=bool)
        self._spent = 0.0
        self._n_observed = 0
        self._unobserved = 0
        self._rounds = 0  # rounds started
        self._next_r = 0  # sample index of the next round to consider
        self._open: np.ndarray | None = None  # positions of the open round
        self._open_r = -1
        self._pending = 0
        self._next: np.ndarray | None = None
        self._next_at = -1
        self._done = False
        self._stopped_by: str | None = None
        self._reason: str | None = None
        self._history: list[tuple[Any, ...]] = []
        self._plan()

    # -- the protocol
    def next_round(self) -> list[int]:
        """The cell ids to run now, in cell order; ``[]`` once finished.

        Closes the previous round first if it is still open (unobserved cells count as
        failed).
        """
        if self._open is not None:
            self._close()
        if self._done or self._next is None:
            return []
        pos, self._next = self._next, None
        self._issued[pos] = True
        self._open, self._open_r, self._pending = pos, self._next_at, len(pos)
        self._next_r = self._next_at + 1
        self._rounds += 1
        return [int(c) for c in self._d.ids[pos]]

    def observe(
        self,
        cell: int,
        score: float | None | Mapping[str, float | None],
        usd: float | None = 0.0,
    ) -> None:
        """Record the outcome of a cell of the open round.

        `score`: the value in [0, 1] of the metric ``"score"``, None if the call failed or
        could not be scored, or a mapping ``{metric: value}`` when rules use other metrics.
        `usd`: what the call cost (None counts as 0).
        """
        if self._open is None:
            raise RequestError("no round is open: call next_round() first", "cell")
        try:
            pos = self._d.pos_of[int(cell)]
        except (KeyError, TypeError, ValueError):
            raise RequestError(f"unknown cell {cell!r}", "cell") from None
        if not self._issued[pos] or self._d.samples[pos] != self._open_r:
            raise RequestError(f"cell {cell} is not in the open round", "cell")
        if self._observed[pos]:
            raise RequestError(f"cell {cell} was already observed", "cell")
        values = self._parse_score(score)
        cost = 0.0 if usd is None else positive_number(usd, "usd", allow_zero=True)
        for m, v in values.items():
            self._values[m][pos] = v
        self._usd[pos] = cost
        self._spent += cost
        self._observed[pos] = True
        self._n_observed += 1
        self._pending -= 1
        if self._pending == 0:
            self._close()

    def _parse_score(self, score: Any) -> dict[str, float]:
        metrics = self._d.metrics
        if isinstance(score, Mapping):
            raw = {m: score.get(m) for m in metrics}
        elif score is None or set(metrics) <= {"score"}:
            raw = {m: score for m in metrics}
        else:
            raise RequestError(
                f"rules use metric(s) {metrics}: pass score as {{metric: value}}", "score"
            )
        out: dict[str, float] = {}
        for m, v in raw.items():
            if v is None:
                out[m] = math.nan
                continue
            try:
                f = float(v)
            except (TypeError, ValueError):
                raise RequestError(f"score {m}={v!r} is not a number", "score") from None
            if math.isnan(f):
                out[m] = math.nan
            elif not 0.0 <= f <= 1.0:
                raise RequestError(f"score {m}={v!r} must lie in [0, 1] (or be None)", "score")
            else:
                out[m] = f
        return out

    def observe_round(self, values: Mapping[str, np.ndarray], usd: np.ndarray) -> None:
        """Observe every cell of the open round at once, and close it (`simulate`'s fast path).

        `values[m]`, for every metric in ``design.metrics``, and `usd` are arrays over ALL
        the design's cells, indexed by cell position (cell id order, ``design.pos_of``); the
        round reads its own cells' entries. Values are taken as given (in [0, 1] or NaN for
        a failed cell; `usd` >= 0), unlike `observe`, which checks each one.
        """
        pos = self._open
        if pos is None:
            raise RequestError("no round is open: call next_round() first", "values")
        for m in self._d.metrics:
            self._values[m][pos] = values[m][pos]
        self._usd[pos] = usd[pos]
        self._spent += float(usd[pos].sum())
        self._observed[pos] = True
        self._n_observed += len(pos)
        self._pending = 0
        self._close()

    def _close(self) -> None:
        pos, r = self._open, self._open_r
        assert pos is not None
        self._open, self._pending = None, 0
        self._unobserved += int((~self._observed[pos]).sum())
        d = self._d
        round_pos = d.by_sample[r]
        scheduled = self._issued[round_pos]
        for leaf in self._leaves:
            leaf.add_round(round_pos, scheduled, self._values[leaf.metric][round_pos])
        self._plan()
        self._record(self._rounds)

    def _plan(self) -> None:
        """After a round (or at the start): stop, or pick the next round's cells."""
        d = self._d
        rounds = self._next_r
        if self._root is not None and self._root.evaluate(rounds):
            self._finish(self._root.kind, self._root.reason)
            return
        wants = self._root.wants() if self._root is not None else None
        r = self._next_r
        while r < d.repeats:
            pos = d.by_sample[r]
            if wants is not None:
                pos = pos[wants[pos]]
            if pos.size:
                break
            r += 1
        else:
            self._finish(
                "repeats", f"repeats: all {d.repeats} rounds run without a stopping rule firing"
            )
            return
        for b in d.budgets:
            need = self._projected(pos)
            if need is not None and self._spent + need > b.usd:
                self._finish(
                    "budget",
                    f"budget: round {self._rounds + 1} ({pos.size} cells, ~${need:.4g}) could "
                    f"take spending from ${self._spent:.4g} past ${b.usd:g}",
                )
                return
        self._next, self._next_at = pos, r

    def _projected(self, pos: np.ndarray) -> float | None:
        worst = self._worst
        if worst is None:
            if not self._n_observed:
                return None
            return float(self._usd[self._observed].mean()) * pos.size
        if callable(worst):
            total = 0.0
            for c in self._d.ids[pos]:
                total += positive_number(worst(int(c)), "worst_usd_per_cell", allow_zero=True)
            return total
        return worst * pos.size

    def _finish(self, kind: str, reason: str) -> None:
        self._done = True
        self._next = None
        self._stopped_by = kind
        # a `decided` rule that ends without a decision names no winner, but says which arm
        # leads, flagged as not significant (the reader would otherwise go and look)
        for leaf in self._leaves:
            if leaf.kind != "decided" or leaf.stopped_at is not None:
                continue
            lead = leaf.leader()
            reason += "; decided: no arm separated; " + (
                "no scores yet"
                if lead is None
                else f"leading: {key_text(leaf.groups.keys[lead])} (not significant)"
            )
        self._reason = reason

    def _record(self, rounds: int) -> None:
        for li, leaf in enumerate(self._leaves):
            for k, cs in enumerate(leaf.cs):
                self._history.append(
                    (
                        rounds,
                        li,
                        k,
                        int(leaf.rounds[k]),
                        cs.n,
                        cs.mean,
                        cs.lower,
                        cs.upper,
                        bool(leaf.live[k]),
                    )
                )

    # -- state
    @property
    def design(self) -> Design:
        """The fixed design this scheduler runs (shared with `from_design` schedulers)."""
        return self._d

    @property
    def leaves(self) -> tuple[CSLeaf, ...]:
        """The `ci_width`/`decided` rules' runtime leaves, in rule order: their groups,
        confidence sequences (``lo``/``hi``), live groups, ``winner`` and ``leader()``."""
        return tuple(self._leaves)

    @property
    def issued(self) -> np.ndarray:
        """Per cell position (cell id order): was the cell offered in some round (read-only)."""
        view = self._issued.view()
        view.flags.writeable = False
        return view

    @property
    def done(self) -> bool:
        """True once a stopping rule fired, the budget would be crossed or repeats ran out."""
        return self._done

    @property
    def stopped_by(self) -> str | None:
        """Short name of what stopped the sweep (``"decided"``, ``"budget"``...), or None."""
        return self._stopped_by

    @property
    def stopped_reason(self) -> str | None:
        """Why the sweep stopped, in words (the rule and the round), or None while running."""
        return self._reason

    @property
    def round(self) -> int:
        """Rounds started so far."""
        return self._rounds

    @property
    def spent_usd(self) -> float:
        """USD reported through `observe`."""
        return self._spent

    @property
    def winner(self) -> dict[str, Any] | None:
        """The winning arm of `decided`, as ``{column: value}``, or None (not decided yet)."""
        for leaf in self._leaves:
            if leaf.winner is not None:
                return {k: _plain(v) for k, v in leaf.groups.keys[leaf.winner].items()}
        return None

    @property
    def leader(self) -> dict[str, Any] | None:
        """The arm of `decided` to bet on now, as ``{column: value}``: the `winner` once
        there is one, else the live arm with the best point estimate (its per-arm mean; the
        first in cell order on a tie), which is not a certified decision; None before any
        score or without a `decided` rule."""
        for leaf in self._leaves:
            if leaf.kind == "decided":
                lead = leaf.leader()
                if lead is not None:
                    return {k: _plain(v) for k, v in leaf.groups.keys[lead].items()}
        return None

    def worst_case_cells(self) -> list[int]:
        """Every cell id of the fixed design: what a non-adaptive sweep would run."""
        return [int(c) for c in self._d.ids]

    def _group_rows(self) -> Iterable[tuple[int, CSLeaf, int, dict[str, Any]]]:
        for li, leaf in enumerate(self._leaves):
            for k, key in enumerate(leaf.groups.keys):
                yield li, leaf, k, key

    def intervals(self) -> pd.DataFrame:
        """One row per (rule, group): the rule and its ``metric``, the group's columns,
        ``n_rounds`` (observations), ``n_scores``,
        ``mean``, ``cs_low``, ``cs_high``, ``live`` (still needs sampling: the arm is not
        eliminated / the width is not met) and ``cs_method``.

        For `decided` these are the per-arm CSs, at level ``alpha / K`` each (simultaneous
        over the K arms); the decisions are made on the pairs' difference CSs, see
        `pair_intervals`: an arm can be eliminated while its interval still overlaps the
        winner's."""
        import pandas as pd

        rows = []
        for _, leaf, k, key in self._group_rows():
            cs = leaf.cs[k]
            rows.append(
                {
                    "rule": str(leaf.rule),
                    "metric": leaf.rule.metric,
                    **key,
                    "n_rounds": int(leaf.rounds[k]),
                    "n_scores": cs.n,
                    "mean": cs.mean,
                    "cs_low": cs.lower,
                    "cs_high": cs.upper,
                    "live": bool(leaf.live[k]),
                    "cs_method": leaf.method_text,
                }
            )
        cols = ["rule", "metric", "n_rounds", "n_scores", "mean", "cs_low", "cs_high", "live",
                "cs_method"]  # fmt: skip
        return pd.DataFrame(rows) if rows else pd.DataFrame(columns=cols)

    def pair_intervals(self) -> pd.DataFrame:
        """One row per (`decided` rule, pair of arms): the CS its decisions are made on.

        Columns: ``rule``, ``metric``, ``arm_a`` and ``arm_b`` (the arms' `by` value, a
        tuple for several `by` columns; ``a`` before ``b`` in cell order), ``n_rounds``
        (rounds that fed the pair), ``n_pairs`` (paired differences observed; 0 for the
        unpaired fallback), ``mean`` (estimate of ``mu_a - mu_b``), ``cs_low`` and ``cs_high``
        (the anytime-valid CS of ``mu_a - mu_b``, in the difference scale, [-1, 1]),
        ``live`` (both arms live: the pair still takes observations) and ``cs_method`` (its
        level ``alpha / pairs``, and how the cells are paired). See `Decided`.
        """
        import pandas as pd

        rows = []
        for leaf in self._leaves:
            if leaf.kind != "decided":
                continue
            for q, (i, j) in enumerate(leaf.pairs):
                rows.append(
                    {
                        "rule": str(leaf.rule),
                        "metric": leaf.rule.metric,
                        "arm_a": _arm_value(leaf.groups, i),
                        "arm_b": _arm_value(leaf.groups, j),
                        "n_rounds": int(leaf.pair_rounds[q]),
                        "n_pairs": leaf.pair_cs[q].n if leaf.pair_cs else 0,
                        "mean": leaf.pair_mean(q),
                        "cs_low": float(leaf.pair_lo[q]),
                        "cs_high": float(leaf.pair_hi[q]),
                        "live": bool(leaf.live[i] and leaf.live[j]),
                        "cs_method": leaf.pair_method_text,
                    }
                )
        cols = ["rule", "metric", "arm_a", "arm_b", "n_rounds", "n_pairs", "mean", "cs_low",
                "cs_high", "live", "cs_method"]  # fmt: skip
        return pd.DataFrame(rows, columns=cols)

    def history(self) -> pd.DataFrame:
        """One row per (round, rule, group): the intervals after each round, for a plot.

        ``round`` counts rounds completed (1, 2, ...).
        """
        import pandas as pd

        keys = {(li, k): (str(leaf.rule), key) for li, leaf, k, key in self._group_rows()}
        rows = []
        for rounds, li, k, nr, n, mean, lo, hi, live in self._history:
            rule, key = keys[(li, k)]
            rows.append(
                {
                    "round": rounds,
                    "rule": rule,
                    **key,
                    "n_rounds": nr,
                    "n_scores": n,
                    "mean": mean,
                    "cs_low": lo,
                    "cs_high": hi,
                    "live": live,
                }
            )
        cols = ["round", "rule", "n_rounds", "n_scores", "mean", "cs_low", "cs_high", "live"]
        return pd.DataFrame(rows) if rows else pd.DataFrame(columns=cols)

    def summary(self) -> dict[str, Any]:
        """Cells sampled against the fixed design, USD spent, rounds, and how it ended."""
        n = len(self._d.ids)
        sampled = int(self._issued.sum())
        failed = 0
        if self._d.metrics:
            nan = np.ones(n, dtype=bool)
            for v in self._values.values():
                nan &= np.isnan(v)
            failed = int((nan & self._observed).sum())
        return {
            "cells_sampled": sampled,
            "cells_fixed_design": n,
            "call_share": sampled / n,
            "usd_spent": self._spent,
            "rounds": self._rounds,
            "repeats": self._d.repeats,
            "failed": failed,
            "unobserved": self._unobserved,
            "done": self._done,
            "stopped_by": self._stopped_by,
            "stopped_reason": self._reason,
            "winner": self.winner,
        }

    def __repr__(self) -> str:
        state = self._reason if self._done else f"running, round {self._rounds}"
        return f"AdaptiveScheduler({self._d.rule}, {len(self._d.ids)} cells: {state})"
