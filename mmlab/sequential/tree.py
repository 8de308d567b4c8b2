"""The rule tree: `mmlab.stop` rules compiled against a sweep's fixed design.

`Design` checks a cell table against a rule once and holds everything that does not change
while a scheduler runs: the cells in id order, their rounds, the groupings (`Groups`) each
`ci_width`/`decided` rule reads and how `decided` pairs its arms (`_Pairing`). `Design.build`
compiles the rule into a fresh runtime tree of `Node`s: a `CSLeaf` per `ci_width`/`decided`
(its confidence sequences, `cs.py`, and the arms or groups still live), a leaf per
`max_repeats`, and any/all combinators for ``|`` and ``&``; `budget` is left out of the tree
(the scheduler checks it before every round). The tree's state is sticky: once a node has
stopped it stays stopped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import RequestError
from ..fields import NOT_PARAMETERS
from ..stop import AllOf, AnyOf, Budget, CIWidth, Decided, MaxRepeats, Rule, norm_by
from .cs import ConfidenceSequence

if TYPE_CHECKING:
    import pandas as pd



class Groups:
    """A fixed grouping of the design's cells (positions in cell order) by some columns.

    ``labels[pos]``: the group of the cell at position ``pos``, groups numbered by first
    appearance in cell order; ``count`` groups; ``cols`` the grouping columns; ``keys[k]``
    group ``k``'s ``{column: value}``.
    """

    def __init__(self, frame: pd.DataFrame, cols: tuple[str, ...]) -> None:
        n = len(frame)
        if cols:
            try:
                codes = frame.groupby(list(cols), dropna=False, sort=False).ngroup().to_numpy()
            except TypeError as e:
                raise RequestError(f"cannot group by {list(cols)}: {e}", "by") from None
        else:
            codes = np.zeros(n, dtype=np.int64)
        # number groups by first appearance in cell order (deterministic, no sorting of values)
        _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        self.labels = rank[inverse].astype(np.intp)
        self.count = int(order.size)
        self.cols = cols
        firsts = first[order]
        self.keys: list[dict[str, Any]] = (
            frame.iloc[firsts][list(cols)].to_dict("records") if cols else [{}] * self.count
        )


class _Pairing:
    """How `decided` pairs two arms' cells within a round (`Decided`, "Pairing key").

    ``codes[pos]``: the pairing key of the cell at position ``pos`` (``count`` keys), or
    ``codes`` None when the arms cannot be paired (the separate-interval fallback).
    ``columns``: the key's columns, for reports.
    """

    def __init__(self, frame: pd.DataFrame, groups: Groups, points: Sequence[str]) -> None:
        self.codes: np.ndarray | None = None
        self.count = 0
        self.columns: tuple[str, ...] = ()
        other = tuple(c for c in points if c not in groups.cols and c != "prompt_id")
        tiers = [("prompt_id", *other)] + ([("prompt_id",)] if other else [])
        g = groups.count
        for cols in tiers:
            try:
                codes = frame.groupby(list(cols), dropna=False, sort=False).ngroup().to_numpy()
            except TypeError:  # unhashable values: cannot key on them
                continue
            n = int(codes.max()) + 1
            counts = np.bincount(groups.labels * n + codes, minlength=g * n).reshape(g, n)
            present = counts > 0
            # every arm at the same keys, and within an arm the same number of cells at each
            # key: then the mean over keys of an arm's key means is the arm's mean, and the
            # mean paired difference estimates mu_a - mu_b (and not some reweighting of it)
            if not (present == present[0]).all():
                continue
            most = counts.max(axis=1)
            least = np.where(present, counts, most[:, None]).min(axis=1)
            if (most != least).any():
                continue
            self.codes, self.count, self.columns = codes.astype(np.intp), n, cols
            return

    @property
    def paired(self) -> bool:
        """True if the arms' cells can be paired (else: separate intervals)."""
        return self.codes is not None

    @property
    def text(self) -> str:
        """How the arms are compared, for reports."""
        if self.codes is None:
            return "unpaired: the arms share no problems; separate per-arm intervals"
        return "paired on " + ", ".join(self.columns)


class Node:
    """A rule in the scheduler's tree: sticky stop state plus the cells it still wants.

    ``stopped_at``: the round count at which it stopped (None while running); ``kind`` and
    ``reason``: what stopped it, short and in words.
    """

    stopped_at: int | None = None
    reason: str = ""
    kind: str = ""

    def evaluate(self, rounds: int) -> bool:
        """Update the stop state after `rounds` rounds; True once stopped (and ever after)."""
        raise NotImplementedError

    def wants(self) -> np.ndarray | None:
        """Per cell position, whether the node still wants it sampled; None: no opinion."""
        raise NotImplementedError

    def leaves(self) -> list[Node]:
        """The leaf rules under this node, in rule order."""
        return [self]


class CSLeaf(Node):
    """`ci_width` or `decided`: one confidence sequence per group (per arm), and for
    `decided` one per pair of arms on their difference (`Decided`).

    Per group ``k``: ``cs[k]``, its interval ``lo[k]``/``hi[k]``, ``live[k]`` (still needs
    sampling) and ``rounds[k]`` (rounds that gave it an observation); ``winner`` is the arm
    `decided` picked, or None. For `decided`, ``pairs[q] = (i, j)`` and the CS of
    ``mu_i - mu_j`` in ``pair_lo[q]``/``pair_hi[q]``.
    """

    def __init__(
        self, rule: CIWidth | Decided, groups: Groups, pairing: _Pairing | None = None
    ) -> None:
        self.rule = rule
        self.kind = "decided" if isinstance(rule, Decided) else "ci_width"
        self.groups = groups
        self.metric = rule.metric
        g = groups.count
        self.cs_alpha = rule.alpha / g if isinstance(rule, Decided) else rule.alpha
        self.cs = [ConfidenceSequence(self.cs_alpha, rule.method) for _ in range(g)]
        self.lo = np.zeros(g)
        self.hi = np.ones(g)
        self.live = np.ones(g, dtype=bool)
        self.rounds = np.zeros(g, dtype=np.int64)  # rounds that gave the group an observation
        self.winner: int | None = None
        text = self.cs[0].method_text
        if isinstance(rule, Decided):
            text += f" per arm (alpha {rule.alpha:g} split over {g} arms, union bound)"
        self.method_text = text
        # decided: the pairs (i, j), i < j in arm order, and their CSs on mu_i - mu_j
        self.pairing = pairing
        self.pairs: list[tuple[int, int]] = []
        self.pair_cs: list[ConfidenceSequence] = []
        self.pair_method_text = ""
        if isinstance(rule, Decided):
            assert pairing is not None
            self.pairs = [(i, j) for i in range(g) for j in range(i + 1, g)]
            npairs = len(self.pairs)
            self.pair_alpha = rule.alpha / npairs
            self.pair_rounds = np.zeros(npairs, dtype=np.int64)
            self.pair_lo = np.full(npairs, -1.0)  # the CS of mu_i - mu_j, difference scale
            self.pair_hi = np.ones(npairs)
            if pairing.paired:
                self.pair_cs = [
                    ConfidenceSequence(self.pair_alpha, rule.method) for _ in range(npairs)
                ]
                self.pair_method_text = (
                    f"{self.pair_cs[0].method_text} on paired differences "
                    f"(alpha {rule.alpha:g} split over {npairs} pair{'s' * (npairs > 1)}, "
                    "union bound; "
                    f"{pairing.text})"
                )
            else:
                self.pair_method_text = f"{text}; {pairing.text}"

    def add_round(self, pos: np.ndarray, scheduled: np.ndarray, values: np.ndarray) -> None:
        """Fold in round observations: `pos` the round's cells, `scheduled` which ran."""
        g = self.groups.count
        labels = self.groups.labels[pos]
        full = np.bincount(labels[scheduled], minlength=g) == np.bincount(labels, minlength=g)
        ok = scheduled & ~np.isnan(values)
        lab, val = labels[ok], values[ok]
        counts = np.bincount(lab, minlength=g)
        eligible = np.flatnonzero(full & (counts > 0))
        if self.rule.unit == "round":
            sums = np.bincount(lab, weights=val, minlength=g)
            for k in eligible:
                self.cs[k].update(min(1.0, max(0.0, sums[k] / counts[k])))
        else:
            order = np.argsort(lab, kind="stable")
            by_group = val[order]
            bounds = np.concatenate([[0], np.cumsum(counts)])
            for k in eligible:
                self.cs[k].update_round(by_group[bounds[k] : bounds[k + 1]])
        for k in eligible:
            self.rounds[k] += 1
            self.lo[k], self.hi[k] = self.cs[k].lower, self.cs[k].upper
        if self.pairs:
            self._add_pairs(pos[ok], lab, val, full & (counts > 0))

    def _add_pairs(
        self, pos: np.ndarray, lab: np.ndarray, val: np.ndarray, eligible: np.ndarray
    ) -> None:
        """Feed each pair of live arms observed this round its paired differences."""
        # `live` is still the state the round was scheduled under (evaluate runs after):
        # a pair takes observations only while both its arms are live
        both_live = [q for q, (i, j) in enumerate(self.pairs) if self.live[i] and self.live[j]]
        active = [q for q in both_live if eligible[self.pairs[q][0]] and eligible[self.pairs[q][1]]]
        if not self.pair_cs:
            # unpaired fallback: the difference of the per-arm intervals, which is the old
            # two-interval comparison (b out when lo_a > hi_b)
            for q in both_live:
                i, j = self.pairs[q]
                self.pair_rounds[q] += q in active
                self.pair_lo[q], self.pair_hi[q] = self.lo[i] - self.hi[j], self.hi[i] - self.lo[j]
            return
        if not active:
            return
        assert self.pairing is not None and self.pairing.codes is not None
        nk = self.pairing.count
        # per (arm, key): sum and count of the round's scored cells; the key mean is the
        # arm's score there (one cell in a plain grid)
        flat = lab * nk + self.pairing.codes[pos]
        g = self.groups.count
        sums = np.bincount(flat, weights=val, minlength=g * nk).reshape(g, nk)
        cnt = np.bincount(flat, minlength=g * nk).reshape(g, nk)
        for q in active:
            i, j = self.pairs[q]
            both = (cnt[i] > 0) & (cnt[j] > 0)  # keys scored in both arms (in key order)
            if not both.any():
                continue
            ya = sums[i, both] / cnt[i, both]
            yb = sums[j, both] / cnt[j, both]
            d = np.clip((ya - yb + 1.0) / 2.0, 0.0, 1.0)  # clip: rounding only
            cs = self.pair_cs[q]
            if self.rule.unit == "round":
                cs.update(float(min(1.0, max(0.0, d.mean()))))
            else:
                cs.update_round(d)
            self.pair_rounds[q] += 1
            self.pair_lo[q], self.pair_hi[q] = 2.0 * cs.lower - 1.0, 2.0 * cs.upper - 1.0

    def pair_mean(self, q: int) -> float:
        """Point estimate of mu_i - mu_j for pair `q` (NaN before any observation)."""
        if self.pair_cs:
            cs = self.pair_cs[q]
            return 2.0 * cs.mean - 1.0 if cs.n else math.nan
        i, j = self.pairs[q]
        return self.cs[i].mean - self.cs[j].mean

    def leader(self) -> int | None:
        """The winner, else the live arm with the best point estimate (ties: first arm)."""
        if self.winner is not None:
            return self.winner
        if not self.pairs:
            return None
        means = np.array([self.cs[k].mean if self.live[k] else math.nan for k in
                          range(self.groups.count)])  # fmt: skip
        if np.isnan(means).all():
            return None
        maximize = self.rule.maximize  # type: ignore[union-attr]
        return int(np.nanargmax(means) if maximize else np.nanargmin(means))

    def evaluate(self, rounds: int) -> bool:
        """Drop met groups (`ci_width`) or beaten arms (`decided`); True once stopped."""
        if self.stopped_at is not None:
            return True
        rule = self.rule
        if isinstance(rule, CIWidth):
            self.live = (self.hi - self.lo) >= rule.width
            if not self.live.any():
                self.stopped_at = rounds
                self.reason = (
                    f"ci_width: every group's CS is narrower than {rule.width:g} "
                    f"after {rounds} rounds"
                )
        else:
            self._eliminate(rule)
            idx = np.flatnonzero(self.live)
            if idx.size == 1:
                self.winner = int(idx[0])
                self.stopped_at = rounds
                self.reason = (
                    f"decided: one arm left ({key_text(self.groups.keys[self.winner])}) "
                    f"after {rounds} rounds"
                )
            elif rule.margin is not None and self._equivalent(rule.margin):
                self.stopped_at = rounds
                arms = ", ".join(key_text(self.groups.keys[i]) for i in idx)
                self.reason = (
                    f"decided: live arms ({arms}) equivalent within margin {rule.margin:g} "
                    f"after {rounds} rounds"
                )
        return self.stopped_at is not None

    def _eliminate(self, rule: Decided) -> None:
        """Successive elimination: drop every live arm some live arm's pair CS beats."""
        live = self.live
        beaten = np.zeros_like(live)
        for q, (i, j) in enumerate(self.pairs):
            if not (live[i] and live[j]):
                continue
            lo, hi = self.pair_lo[q], self.pair_hi[q]  # CS of mu_i - mu_j
            if lo > 0:
                beaten[j if rule.maximize else i] = True
            elif hi < 0:
                beaten[i if rule.maximize else j] = True
        keep = live & ~beaten
        if not keep.any():
            # a cycle of certified wins (a > b > c > a), possible only when some pair CS
            # misses its difference (probability <= alpha): keep the live arm(s) with the
            # best point estimate, deterministically, rather than none
            means = np.array([c.mean for c in self.cs])
            best = np.nanmax(means[live]) if rule.maximize else np.nanmin(means[live])
            keep = live & (means == best)
            if not keep.any():
                keep = live.copy()
        self.live = keep

    def _equivalent(self, margin: float) -> bool:
        """Every pair of live arms has its difference CS within [-margin, margin]."""
        qs = [q for q, (i, j) in enumerate(self.pairs) if self.live[i] and self.live[j]]
        return bool(qs) and all(
            -margin <= self.pair_lo[q] and self.pair_hi[q] <= margin for q in qs
        )

    def wants(self) -> np.ndarray | None:
        """The cells of live groups, or None once stopped."""
        if self.stopped_at is not None:
            return None
        return self.live[self.groups.labels]


class _RepeatsLeaf(Node):
    kind = "max_repeats"

    def __init__(self, rule: MaxRepeats) -> None:
        self.n = rule.n

    def evaluate(self, rounds: int) -> bool:
        if self.stopped_at is None and rounds >= self.n:
            self.stopped_at = rounds
            self.reason = f"max_repeats: {self.n} rounds run"
        return self.stopped_at is not None

    def wants(self) -> np.ndarray | None:
        return None


class _Combo(Node):
    def __init__(self, children: list[Node], any_: bool) -> None:
        self.children = children
        self.any = any_

    def evaluate(self, rounds: int) -> bool:
        if self.stopped_at is not None:
            return True
        done = [c.evaluate(rounds) for c in self.children]  # every child sees every round
        if self.any and any(done):
            hit = [c for c, d in zip(self.children, done, strict=True) if d]
            self.kind = hit[0].kind
            self.reason = "; ".join(c.reason for c in hit)
        elif not self.any and all(done):
            self.kind = " & ".join(c.kind for c in self.children)
            self.reason = "all of: " + "; ".join(c.reason for c in self.children)
        else:
            return False
        self.stopped_at = rounds
        return True

    def wants(self) -> np.ndarray | None:
        masks = [m for c in self.children if (m := c.wants()) is not None]
        if not masks:
            return None
        out = masks[0].copy()
        for m in masks[1:]:
            out |= m
        return out

    def leaves(self) -> list[Node]:
        return [leaf for c in self.children for leaf in c.leaves()]


def key_text(key: Mapping[str, Any]) -> str:
    """A group's ``{column: value}`` as ``col=value, ...`` for reasons and reports."""
    return ", ".join(f"{k}={v!r}" for k, v in key.items()) or "all cells"


class Design:
    """Everything about a scheduler that does not change while it runs.

    Validates `cells` (see `AdaptiveScheduler`), `rule` and `repeats` once; one design can
    back any number of schedulers (`AdaptiveScheduler.from_design`), each with a fresh tree
    from `build`. Holds the cells in id order (``frame``, ``ids``, ``samples``, ``pos_of``
    a cell id's position, ``by_sample[r]`` round ``r``'s positions), ``point_columns``,
    ``metrics`` the rules read, per CS rule its ``groups`` and ``pairings``, and the
    ``budgets``.
    """

    def __init__(
        self,
        cells: pd.DataFrame,
        rule: Rule,
        repeats: int,
        point_columns: Sequence[str] | None,
    ) -> None:
        import pandas as pd

        if isinstance(repeats, bool) or not isinstance(repeats, int | np.integer) or repeats < 1:
            raise RequestError(f"repeats must be an integer >= 1, got {repeats!r}", "repeats")
        if not isinstance(rule, Rule) or type(rule) is Rule:
            raise RequestError(f"rule must be a stopping rule, got {rule!r}", "rule")
        if not isinstance(cells, pd.DataFrame):
            raise RequestError("cells must be a pandas DataFrame (one row per cell)", "cells")
        missing = [c for c in ("cell", "prompt_id", "sample") if c not in cells.columns]
        if missing:
            raise RequestError(f"cells lacks column(s) {missing}", "cells")
        if not len(cells):
            raise RequestError("cells is empty", "cells")
        self.repeats = int(repeats)
        try:
            ids = cells["cell"].to_numpy(dtype=np.int64)
            samples = cells["sample"].to_numpy(dtype=np.int64)
        except (TypeError, ValueError):
            raise RequestError("cells.cell and cells.sample must be integers", "cells") from None
        if not np.array_equal(samples, cells["sample"].to_numpy(dtype=float)):
            raise RequestError("cells.sample must be integers", "sample")
        if len(np.unique(ids)) != len(ids):
            raise RequestError("cells.cell has duplicate ids", "cell")
        if samples.min() < 0 or samples.max() >= self.repeats:
            raise RequestError(
                f"cells.sample must lie in 0..{self.repeats - 1} (repeats={self.repeats})",
                "sample",
            )
        order = np.argsort(ids, kind="stable")
        self.frame = cells.iloc[order].reset_index(drop=True)
        self.ids = ids[order]
        self.samples = samples[order]
        self.pos_of = {int(c): i for i, c in enumerate(self.ids)}
        self.by_sample = [np.flatnonzero(self.samples == r) for r in range(self.repeats)]
        if point_columns is None:
            points = tuple(c for c in self.frame.columns if c not in NOT_PARAMETERS)
        else:
            # no parameter columns (a sweep of prompts × repeats): one group of every cell
            points = norm_by(list(point_columns), required=False) if point_columns else ()
            points = points or ()
            self._check_columns(points, "point_columns")
        self.point_columns = points
        self.rule = rule
        self.groups: list[Groups] = []
        self.pairings: list[_Pairing | None] = []  # per CS rule: how `decided` pairs arms
        self.metrics: list[str] = []
        self.budgets: list[Budget] = []
        for leaf in rule.leaves():
            if isinstance(leaf, CIWidth | Decided):
                cols = leaf.by if leaf.by is not None else points
                self._check_columns(cols, "by")
                groups = Groups(self.frame, cols)
                if isinstance(leaf, Decided) and groups.count < 2:
                    raise RequestError(
                        f"decided needs at least two arms; {list(cols)} has one value", "by"
                    )
                self.groups.append(groups)
                self.pairings.append(
                    _Pairing(self.frame, groups, points) if isinstance(leaf, Decided) else None
                )
                if leaf.metric not in self.metrics:
                    self.metrics.append(leaf.metric)
            elif isinstance(leaf, Budget):
                self.budgets.append(leaf)
            elif not isinstance(leaf, MaxRepeats):
                raise RequestError(f"unknown rule {leaf!r}", "rule")

    def _check_columns(self, cols: Iterable[str], field: str) -> None:
        for c in cols:
            if c not in self.frame.columns:
                raise RequestError(f"{field}: cells has no column {c!r}", field)
            if c in ("cell", "sample"):
                raise RequestError(f"{field}: cannot group by {c!r}", field)

    def build(self) -> Node | None:
        """A fresh runtime tree (budgets removed: they are checked separately, always hard)."""
        groups = iter(zip(self.groups, self.pairings, strict=True))

        def walk(rule: Rule) -> Node | None:
            if isinstance(rule, CIWidth | Decided):
                return CSLeaf(rule, *next(groups))
            if isinstance(rule, MaxRepeats):
                return _RepeatsLeaf(rule)
            if isinstance(rule, AnyOf | AllOf):
                kids = [k for r in rule.rules if (k := walk(r)) is not None]
                if not kids:
                    return None
                return kids[0] if len(kids) == 1 else _Combo(kids, isinstance(rule, AnyOf))
            return None  # Budget

        return walk(self.rule)
