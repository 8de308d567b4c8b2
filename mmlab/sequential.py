"""Adaptive sampling for sweeps: confidence sequences, the round scheduler, simulation.

Instead of running every repeat of every cell up front, a sweep samples in *rounds* and stops
a group (or the whole sweep) as soon as a stopping rule (`mmlab.stop`) says its question is
answered. This module is the pure, I/O-free core that executes the rules: the sweep runner
asks `AdaptiveScheduler.next_round` which cells to run, makes the calls, and feeds each score
back with `AdaptiveScheduler.observe`.
Every decision is a deterministic function of the observed scores (and costs), so replaying
a sweep from the cache makes the same decisions in the same order.

    rule = decided(by="temperature") | budget(2.0)
    sched = AdaptiveScheduler(sweep.plan(), rule, repeats=sweep.repeats)
    while ids := sched.next_round():
        for cell in ids:
            ...                                   # run cell `cell`, score it
            sched.observe(cell, score, usd)       # score None: the call failed / unscorable
    sched.winner, sched.stopped_reason, sched.intervals()

Observation unit, and why the intervals stay valid under optional stopping
---------------------------------------------------------------------------
Round ``r`` samples repeat index ``r`` of every cell of every still-live group (an arm of
`decided`, or any ``by`` grouping of `ci_width`). Conditional on the fixed set of problems,
the group's P cells in round ``r`` are independent draws ``X_1..X_P`` in [0, 1] with means
``mu_1..mu_P`` (one per problem and parameter point), the same in every round; the target is
the group's expected score averaged over its cells, ``mu = mean(mu_p)``. Cells whose call
failed or whose score is None are left out of the round; a round with no scored cell of the
group, or in which only part of the group was scheduled, gives the group no observation.

``unit="round"``: the group's observation for round ``r`` is the MEAN score of its cells
sampled in that round. These round means are iid in [0, 1] with mean ``mu``, so an anytime-
valid confidence sequence (CS) for iid bounded observations covers ``mu`` at every round
simultaneously with probability ``1 - alpha``.

``unit="cell"`` (default): every scored cell of the round enters the CS, all under one bet
``lambda`` fixed before the round (`ConfidenceSequence.update_round`). For a candidate mean
``m`` the round multiplies the betting capital by ``prod_p (1 + lambda (X_p - m))``, whose
conditional expectation is ``prod_p (1 + lambda (mu_p - m)) <= (1 + lambda (mu - m))^P`` by
the AM-GM inequality (every factor is positive since ``|lambda|`` is truncated at ``c/m`` or
``c/(1 - m)``, c < 1): at ``m = mu`` the capital is a nonnegative supermartingale over rounds
although the cells' means differ, and Ville's inequality makes the CS valid at every round
boundary. (For the empirical-Bernstein CS each cell's factor ``exp(lambda (X_p - mu_p) -
psi_E(lambda) (X_p - mu_hat)^2)`` has expectation <= 1, and the product's exponent involves
the ``mu_p`` only through their sum ``P mu``.) A round then carries the evidence of P scores
instead of one: a [0, 1]-valued round mean can multiply the capital by at most ~``1 + gap/m``
however many problems it averages, so ``unit="round"`` needs ~30-50 rounds to separate
accuracies 0.5 and 0.8 at alpha = 0.05/3, whereas ``unit="cell"`` with 10 problems needs ~10.

Either way, whether a group is sampled in a round depends only on earlier rounds, and the
time the sweep stops is a stopping time; since the CS covers ``mu`` at all rounds at once, it
covers it at whatever data-dependent round the sweep stops. A fixed-n interval (Wilson,
Student-t) re-checked after every round does not: peeking inflates its error far above
``alpha`` (see tests/test_stop.py).

Caveats: the target is the mean over *these* problems, not over a population of problems
(for that, use clustered intervals on the finished data); failures that depend on the problem
make a round a sample of a random subset of problems, which shifts its mean; `ci_width`'s
guarantee holds per group (pass ``alpha / groups`` for a simultaneous one), whereas `decided`
splits ``alpha`` over its pairs of arms for its decisions and over its arms for the per-arm
intervals it reports (union bounds).

Paired differences: how `decided` compares two arms
---------------------------------------------------
Live arms are sampled in the same rounds on the same problems, so `decided` compares arms a
and b through a CS on their *difference* rather than through two separate intervals (which
needs the gap to exceed ``w_a + w_b`` where a difference CS needs ~``sqrt(w_a^2 + w_b^2)``,
and in addition cancels the between-problem spread both arms share). In a round in which
both arms were sampled, each pairing key ``k`` (a problem; see `Decided` for the key) scored
in both arms gives

    d_k = (Y_{a,k} - Y_{b,k} + 1) / 2   in [0, 1],

``Y_{arm,k}`` being the arm's score at ``k`` (the mean of its scored cells there, normally one
cell). The ``d_k`` of a round are independent across ``k`` -- they are functions of disjoint
sets of cells -- with means ``nu_k = (mu_{a,k} - mu_{b,k} + 1) / 2``; nothing is assumed about
the dependence between ``Y_{a,k}`` and ``Y_{b,k}`` (same prompt, maybe the same cache or
seed): ``d_k`` is bounded with the right mean whatever it is. So the AM-GM argument above
applies verbatim with ``d_k`` for ``X_p``: under one bet ``lambda`` fixed before the round,
``E prod_k (1 + lambda (d_k - m)) = prod_k (1 + lambda (nu_k - m)) <= (1 + lambda (nu - m))^P``
with ``nu = mean_k nu_k`` (for ``"eb"``, each factor ``exp(lambda (d_k - nu_k) - psi_E(lambda)
(d_k - mu_hat)^2)`` has expectation <= 1 and ``nu_k`` enter only through their sum), hence at
``m = nu`` a nonnegative supermartingale over rounds and, by Ville's inequality, a CS for
``nu = (Delta_ab + 1) / 2``, i.e. for ``Delta_ab = 2 nu - 1 = mean_k (mu_{a,k} - mu_{b,k})``,
valid at every round and so at the stopping time. ``Delta_ab = mu_a - mu_b`` whenever both arms
hold the same keys with the same number of cells at every key (any grid sweep); `decided`
pairs only on such keys and otherwise falls back to separate intervals. A pair's CS takes
observations only while both arms are live (which arms are live depends only on earlier
rounds, so the rounds a pair is fed are predictable, as optional stopping requires).

Confidence sequences (`ConfidenceSequence`), for observations in [0, 1]:

- ``"betting"`` (default): the hedged-capital betting CS of Waudby-Smith & Ramdas,
  "Estimating means of bounded random variables by betting" (JRSS-B 2024, arXiv 2010.09686),
  with predictable plug-in bets, evaluated on a grid of candidate means; the CS at time t is
  the running intersection of the sets of means whose capital has stayed below ``1/alpha``.
- ``"eb"``: the predictable plug-in empirical-Bernstein CS of the same paper (closed form),
  a descendant of the empirical-Bernstein boundaries of Howard, Ramdas, McAuliffe & Sekhon,
  "Time-uniform, nonparametric, nonasymptotic confidence sequences" (Annals of Statistics
  2021, arXiv 1810.08240). Wider than betting, but O(1) per update.

Stopping rules, composable with ``|`` (stop when either does) and ``&`` (when both do):
`ci_width`, `decided` (successive elimination, Even-Dar, Mannor & Mansour, JMLR 2006, on
paired-difference confidence sequences), `budget` and `max_repeats`. `simulate` replays a
logged full grid to measure a rule's coverage, correct-pick rate and savings before spending
money on it.

numpy is imported with this module; pandas only when a DataFrame is built.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import RequestError
from .stop import (
    AllOf,
    AnyOf,
    Budget,
    CIWidth,
    Decided,
    MaxRepeats,
    Rule,
    check_alpha,
    check_method,
    check_metric,
    method_text,
    norm_by,
    positive_number,
    unit_number,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "AdaptiveScheduler",
    "ConfidenceSequence",
    "expected_share",
    "simulate",
    "summarize_simulations",
]


#: Candidate means the betting CS evaluates its capital on: 0, 1/GRID, ..., 1.
GRID = 1000
#: The bet truncation ``c`` of Waudby-Smith & Ramdas (1/2, as in their ``confseq`` package).
TRUNCATION = 0.5
#: Columns of a cell table (or a sweep's results) that are never parameter columns.
NOT_PARAMETERS = frozenset(
    {
        "cell",
        "prompt_id",
        "prompt",
        "sample",
        "status",
        "cache_key",
        "error",
        "score",
        "content",
        "reasoning",
        "prompt_tokens",
        "completion_tokens",
        "reasoning_tokens",
        "answer_tokens",
        "cached_tokens",
        "cost_usd",
        "cost_source",
        "spent_usd",
        "latency_s",
        "ttft_s",
        "finish_reason",
        "truncated",
        "cache_hit",
        "provider",
        "served_model",
        "reasoning_mode",
    }
)



class ConfidenceSequence:
    """An anytime-valid confidence sequence for the mean of iid observations in [0, 1].

    ``P(mean in [lower_t, upper_t] for every t) >= 1 - alpha``, so the interval may be
    checked after every observation and the sampling stopped whenever it is narrow enough.

    Both methods follow Waudby-Smith & Ramdas, "Estimating means of bounded random variables
    by betting" (JRSS-B 2024, arXiv 2010.09686), with the predictable plug-in

        mu_t      = (1/2 + sum_{i<=t} X_i) / (t + 1)
        sigma2_t  = (1/4 + sum_{i<=t} (X_i - mu_i)^2) / (t + 1)
        lambda_t  = sqrt(2 log(2/alpha) / (sigma2_{t-1} t log(1 + t)))

    ``method="betting"``, their hedged capital process: for each candidate mean m on a grid
    of 1001 points, ``K+_t(m) = prod(1 + l+_i(m) (X_i - m))`` with ``l+_i(m) = min(lambda_i,
    c/m)`` and ``K-_t(m) = prod(1 - l-_i(m) (X_i - m))`` with ``l-_i(m) = min(lambda_i,
    c/(1 - m))``, c = 1/2 (the truncation of the authors' ``confseq`` package), theta = 1/2;
    m is rejected once ``max(theta K+, (1 - theta) K-) >= 1/alpha`` (Ville's inequality).
    The CS at time t is the hull of the unrejected grid points inside the CS at t - 1 (a
    running intersection of hulls, never narrower than the exact one), widened by one grid
    step (1/1000) on each side. Only that stretch of the grid is updated: ~15-25 µs an update.

    ``method="eb"``, their predictable plug-in empirical-Bernstein CS, closed form:
    ``sum(l_i X_i)/sum(l_i) +/- (log(2/alpha) + sum(v_i psi_E(l_i))) / sum(l_i)`` with
    ``l_i = min(lambda_i, c)``, ``v_i = 4 (X_i - mu_{i-1})^2`` and
    ``psi_E(l) = (-log(1 - l) - l) / 4``: the empirical-Bernstein supermartingale of Howard,
    Ramdas, McAuliffe & Sekhon,
    "Time-uniform, nonparametric, nonasymptotic confidence sequences" (Annals of Statistics
    2021, arXiv 1810.08240) with predictable weights; running intersection. Wider than
    betting, ~3 µs an update.

    `update_round` adds a batch of independent observations under one bet (the same
    ``lambda``, scaled for the batch's last index ``t``); their means may differ and the CS
    then covers the average mean (AM-GM argument in the module docstring). `update(x)` is a
    batch of one.

    An empty running intersection (itself a miscoverage, probability <= alpha) leaves the
    interval as it was. Before any observation the interval is [0, 1].
    """

    def __init__(self, alpha: float = 0.05, method: str = "betting") -> None:
        self.alpha = check_alpha(alpha)
        self.method = check_method(method)
        self._n = 0
        self._sum = 0.0
        self._mu = 0.5  # regularised running mean mu_{t-1}
        self._ss = 0.25  # 1/4 + sum (X_i - mu_i)^2
        self._log_thr = math.log(2.0 / self.alpha)
        self._lo, self._hi = 0.0, 1.0
        if self.method == "betting":
            self._m = _GRID_M
            self._lp = np.zeros(GRID + 1)  # log K+
            self._lm = np.zeros(GRID + 1)  # log K-
            self._a, self._b = 0, GRID  # the unrejected grid points: [a, b]
        else:
            self._sl = 0.0  # sum lambda
            self._slx = 0.0  # sum lambda x
            self._svp = 0.0  # sum v psi

    # -- updates
    def update(self, x: float) -> None:
        """Add one observation in [0, 1]."""
        self._add(np.array([unit_number(x, "x")]))

    def extend(self, xs: Iterable[float]) -> None:
        """Add observations one at a time, in order (each gets its own bet)."""
        for x in xs:
            self.update(x)

    def update_round(self, xs: Iterable[float]) -> None:
        """Add one round of independent observations, all under one bet fixed in advance.

        Their means may differ (one score per problem): the CS then covers the average of
        their means (see the module docstring). An empty round changes nothing.
        """
        try:
            arr = np.asarray(xs if isinstance(xs, np.ndarray) else list(xs), dtype=float).ravel()
        except (TypeError, ValueError):
            raise RequestError("observations must be numbers in [0, 1]", "x") from None
        if not ((arr >= 0.0) & (arr <= 1.0)).all():
            bad = arr[~((arr >= 0.0) & (arr <= 1.0))][0]
            raise RequestError(f"x must lie in [0, 1], got {bad!r}", "x")
        if arr.size:
            self._add(arr)

    def _add(self, xs: np.ndarray) -> None:
        k = xs.size
        n = self._n
        t = n + k  # the bet is scaled for the end of the round (t = n + 1 for one value)
        sigma2 = self._ss / (n + 1)  # sigma2 from the observations before this round
        lam = math.sqrt(2.0 * self._log_thr / (sigma2 * t * math.log1p(t)))
        if self.method == "betting":
            self._add_betting(xs, lam)  # truncated at c/m and c/(1 - m) per candidate m
        else:
            self._add_eb(xs, min(TRUNCATION, lam))
        # the predictable plug-in estimates, one observation at a time
        if k == 1:
            self._sum += float(xs[0])
            self._mu = (0.5 + self._sum) / (n + 2)
            self._ss += (float(xs[0]) - self._mu) ** 2
        else:
            total = self._sum + np.cumsum(xs)
            mus = (0.5 + total) / (n + 2 + np.arange(k))
            self._ss += float(((xs - mus) ** 2).sum())
            self._sum = float(total[-1])
            self._mu = float(mus[-1])
        self._n = n + k

    def _add_betting(self, xs: np.ndarray, lam: float) -> None:
        a, b = self._a, self._b
        m = self._m[a : b + 1]
        lam_p = np.minimum(lam, _CAP_POS[a : b + 1])
        lam_m = np.minimum(lam, _CAP_NEG[a : b + 1])
        lp = self._lp[a : b + 1]
        lm = self._lm[a : b + 1]
        if xs.size == 1:
            values, counts = xs, (1,)
        else:  # scores repeat (0/1): one pass per distinct value
            values, counts = np.unique(xs, return_counts=True)
        for x, c in zip(values, counts, strict=True):
            d = x - m
            if c == 1:
                lp += np.log1p(lam_p * d)
                lm += np.log1p(-lam_m * d)
            else:
                lp += c * np.log1p(lam_p * d)
                lm += c * np.log1p(-lam_m * d)
        keep = np.flatnonzero(np.maximum(lp, lm) < self._log_thr)
        if keep.size:  # else: an empty intersection, keep the last interval
            self._a, self._b = a + int(keep[0]), a + int(keep[-1])
            # the capital is evaluated on a grid: widen by one step each side
            self._lo = 0.0 if self._a == 0 else float(self._m[self._a - 1])
            self._hi = 1.0 if self._b == GRID else float(self._m[self._b + 1])

    def _add_eb(self, xs: np.ndarray, lam: float) -> None:
        if xs.size == 1:
            x = float(xs[0])
            v, sx = (x - self._mu) ** 2, x
        else:
            v, sx = float(((xs - self._mu) ** 2).sum()), float(xs.sum())
        # v psi_E(l) summed over the round = sum (x - mu_{i-1})^2 (-log(1 - l) - l)
        self._sl += lam * xs.size
        self._slx += lam * sx
        self._svp += v * (-math.log1p(-lam) - lam)
        centre = self._slx / self._sl
        radius = (self._log_thr + self._svp) / self._sl
        lo = max(self._lo, centre - radius, 0.0)
        hi = min(self._hi, centre + radius, 1.0)
        if lo <= hi:
            self._lo, self._hi = lo, hi

    # -- state
    @property
    def n(self) -> int:
        """Number of observations."""
        return self._n

    @property
    def mean(self) -> float:
        """Sample mean of the observations (NaN before the first)."""
        return self._sum / self._n if self._n else math.nan

    @property
    def lower(self) -> float:
        """Lower end of the confidence sequence now."""
        return self._lo

    @property
    def upper(self) -> float:
        """Upper end of the confidence sequence now."""
        return self._hi

    @property
    def width(self) -> float:
        """``upper - lower``."""
        return self._hi - self._lo

    @property
    def method_text(self) -> str:
        """One line naming the method, its source and alpha, for reports."""
        return method_text(self.method, self.alpha)

    def __repr__(self) -> str:
        return (
            f"ConfidenceSequence(n={self._n}, mean={self.mean:.4g}, "
            f"[{self._lo:.4g}, {self._hi:.4g}], {self.method}, alpha={self.alpha:.4g})"
        )


_GRID_M = np.linspace(0.0, 1.0, GRID + 1)
with np.errstate(divide="ignore"):
    _CAP_POS = TRUNCATION / _GRID_M  # c/m (inf at m = 0)
    _CAP_NEG = TRUNCATION / (1.0 - _GRID_M)  # c/(1 - m) (inf at m = 1)



# --- the scheduler's runtime state -------------------------------------------------------------
class _Groups:
    """A fixed grouping of the design's cells (positions in cell order) by some columns."""

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

    def __init__(self, frame: pd.DataFrame, groups: _Groups, points: Sequence[str]) -> None:
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


class _Node:
    """A rule in the scheduler's tree: sticky stop state plus the cells it still wants."""

    stopped_at: int | None = None
    reason: str = ""
    kind: str = ""

    def evaluate(self, rounds: int) -> bool:
        raise NotImplementedError

    def wants(self) -> np.ndarray | None:
        raise NotImplementedError

    def leaves(self) -> list[_Node]:
        return [self]


class _CSLeaf(_Node):
    """`ci_width` or `decided`: one confidence sequence per group (per arm), and for
    `decided` one per pair of arms on their difference (`Decided`)."""

    def __init__(
        self, rule: CIWidth | Decided, groups: _Groups, pairing: _Pairing | None = None
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
                    f"decided: one arm left ({_key_text(self.groups.keys[self.winner])}) "
                    f"after {rounds} rounds"
                )
            elif rule.margin is not None and self._equivalent(rule.margin):
                self.stopped_at = rounds
                arms = ", ".join(_key_text(self.groups.keys[i]) for i in idx)
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
        if self.stopped_at is not None:
            return None
        return self.live[self.groups.labels]


class _RepeatsLeaf(_Node):
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


class _Combo(_Node):
    def __init__(self, children: list[_Node], any_: bool) -> None:
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

    def leaves(self) -> list[_Node]:
        return [leaf for c in self.children for leaf in c.leaves()]


def _key_text(key: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in key.items()) or "all cells"


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _arm_value(groups: _Groups, k: int) -> Any:
    """Group `k`'s value of the grouping column, or a tuple of values for several."""
    vals = tuple(_plain(groups.keys[k][c]) for c in groups.cols)
    return vals[0] if len(vals) == 1 else vals


class _Design:
    """Everything about a scheduler that does not change while it runs."""

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
        self.groups: list[_Groups] = []
        self.pairings: list[_Pairing | None] = []  # per CS rule: how `decided` pairs arms
        self.metrics: list[str] = []
        self.budgets: list[Budget] = []
        for leaf in rule.leaves():
            if isinstance(leaf, CIWidth | Decided):
                cols = leaf.by if leaf.by is not None else points
                self._check_columns(cols, "by")
                groups = _Groups(self.frame, cols)
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

    def build(self) -> _Node | None:
        """A fresh runtime tree (budgets removed: they are checked separately, always hard)."""
        groups = iter(zip(self.groups, self.pairings, strict=True))

        def walk(rule: Rule) -> _Node | None:
            if isinstance(rule, CIWidth | Decided):
                return _CSLeaf(rule, *next(groups))
            if isinstance(rule, MaxRepeats):
                return _RepeatsLeaf(rule)
            if isinstance(rule, AnyOf | AllOf):
                kids = [k for r in rule.rules if (k := walk(r)) is not None]
                if not kids:
                    return None
                return kids[0] if len(kids) == 1 else _Combo(kids, isinstance(rule, AnyOf))
            return None  # Budget

        return walk(self.rule)


# --- the scheduler -----------------------------------------------------------------------------
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
        design = _Design(cells, rule, repeats, point_columns)
        if worst_usd_per_cell is not None and not callable(worst_usd_per_cell):
            worst_usd_per_cell = positive_number(
                worst_usd_per_cell, "worst_usd_per_cell", allow_zero=True
            )
        self._setup(design, worst_usd_per_cell)

    @classmethod
    def _from_design(
        cls, design: _Design, worst: float | Callable[[int], float] | None = None
    ) -> AdaptiveScheduler:
        self = cls.__new__(cls)
        self._setup(design, worst)
        return self

    def _setup(self, design: _Design, worst: float | Callable[[int], float] | None) -> None:
        d = self._d = design
        n = len(d.ids)
        self._worst = worst
        self._root = d.build()
        self._leaves: list[_CSLeaf] = [
            leaf
            for leaf in (self._root.leaves() if self._root else [])
            if isinstance(leaf, _CSLeaf)
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

    def _observe_round(self, values: Mapping[str, np.ndarray], usd: np.ndarray) -> None:
        """Fast path for `simulate`: observe every cell of the open round at once.

        `values[m]` and `usd` are indexed by cell position (= cell id order).
        """
        pos = self._open
        assert pos is not None
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
                else f"leading: {_key_text(leaf.groups.keys[lead])} (not significant)"
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

    def _group_rows(self) -> Iterable[tuple[int, _CSLeaf, int, dict[str, Any]]]:
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


# --- simulation from a logged full grid --------------------------------------------------------
def simulate(
    full: Any,
    rule: Rule,
    *,
    repeats: int,
    metric: str = "score",
    n_sims: int = 1000,
    seed: int = 0,
    by: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Replay a logged full grid through the adaptive scheduler, `n_sims` times.

    `full`: a finished, non-adaptive sweep with many repeats per cell — its `SweepResult`
    (then the parameter columns are the sweep's own), or a DataFrame with columns
    ``prompt_id``, ``sample``, the metric column(s) (in [0, 1]; NaN/None = failed),
    optionally ``cost_usd`` and ``completion_tokens`` (missing ones count as 0), and the
    parameter columns. A cell is (``prompt_id``, parameter point); `by` names the parameter
    columns (default: the sweep's, for a DataFrame every column that is not a known result
    column, see `NOT_PARAMETERS`, nor a metric — pass `by` for a ``res.df``, whose prompt
    columns such as ``answer`` would otherwise count as parameters).

    Each simulation plays the model by resampling, for each cell and each of `repeats`
    repeats, one of that cell's logged rows with replacement (score, cost and tokens
    together), runs an `AdaptiveScheduler` on the result and records, per simulation:
    ``covered`` (every reported CS contains its group's true mean at the stop: the mean over
    the group's cells of the cell's logged mean), ``group_coverage`` (the share of the
    reported CSs that do; for `decided`, the per-arm CSs), ``picked`` / ``correct`` (a
    `decided` rule named a winner / the arm the full grid ranks best; NaN without a `decided`
    rule), ``leader_correct`` (its winner, or failing one the live arm leading by point
    estimate when the run ended -- `AdaptiveScheduler.leader` -- is the full grid's best),
    ``call_share`` and ``token_share`` / ``usd_share`` (used / what the fixed design of
    ``cells x repeats`` would have used in that simulation), ``rounds`` and ``stopped_by``.

    `metric`: the column read for the rules' default metric ``"score"`` (rules naming other
    metrics read the column of that name). Deterministic for a given `seed`.
    Summarise with `summarize_simulations`.
    """
    import pandas as pd

    if isinstance(getattr(full, "df", None), pd.DataFrame) and hasattr(full, "parameters"):
        by = by if by is not None else (list(full.parameters) or None)
        full = full.df
    if not isinstance(full, pd.DataFrame) or not len(full):
        raise RequestError("full must be a non-empty DataFrame of logged results", "full")
    if not isinstance(rule, Rule):
        raise RequestError(f"rule must be a stopping rule, got {rule!r}", "rule")
    if isinstance(n_sims, bool) or not isinstance(n_sims, int | np.integer) or n_sims < 1:
        raise RequestError(f"n_sims must be an integer >= 1, got {n_sims!r}", "n_sims")
    check_metric(metric)
    rule_metrics = list(
        dict.fromkeys(leaf.metric for leaf in rule.leaves() if isinstance(leaf, CIWidth | Decided))
    )
    columns = {m: (metric if m == "score" else m) for m in rule_metrics}
    for c in ("prompt_id", "sample", *columns.values()):
        if c not in full.columns:
            raise RequestError(f"full lacks column {c!r}", "full")
    if by is None:
        skip = NOT_PARAMETERS | set(columns.values()) | {metric}
        points = tuple(c for c in full.columns if c not in skip)
    else:
        points = norm_by(by, required=False) or ()
        for c in points:
            if c not in full.columns:
                raise RequestError(f"by: full has no column {c!r}", "by")
    extra = [
        c
        for leaf in rule.leaves()
        if isinstance(leaf, CIWidth | Decided) and leaf.by is not None
        for c in leaf.by
        if c not in points and c != "prompt_id"
    ]
    key = ["prompt_id", *points, *dict.fromkeys(extra)]

    # logged rows, grouped by cell
    codes = full.groupby(key, dropna=False, sort=False).ngroup().to_numpy()
    order = np.argsort(codes, kind="stable")
    codes_sorted = codes[order]
    n_cells = int(codes.max()) + 1
    counts = np.bincount(codes, minlength=n_cells)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    first = order[offsets]
    logged = {m: _unit_column(full[col].to_numpy()[order], col) for m, col in columns.items()}

    def numeric(col: str) -> np.ndarray:
        if col not in full.columns:
            return np.zeros(len(full))
        return np.nan_to_num(pd.to_numeric(full[col], errors="coerce").to_numpy(float))[order]

    cost, tokens = numeric("cost_usd"), numeric("completion_tokens")

    # the simulated design: cell id = cell index * repeats + sample
    base = full.iloc[first][key].reset_index(drop=True)
    design = base.loc[base.index.repeat(repeats)].reset_index(drop=True)
    design.insert(0, "cell", np.arange(len(design)))
    design["sample"] = np.tile(np.arange(repeats), n_cells)
    template = AdaptiveScheduler(design, rule, repeats=repeats, point_columns=points)
    d = template._d

    # true group means and the full grid's best arm, per CS rule
    truths = []
    for leaf in template._leaves:
        cell_mean = _nan_group_mean(logged[leaf.metric], codes_sorted, n_cells)
        labels = leaf.groups.labels[::repeats]  # one row per cell (sample 0 is first)
        group_true = _nan_group_mean(cell_mean, labels, leaf.groups.count)
        best = None
        if leaf.kind == "decided":
            maximize = leaf.rule.maximize  # type: ignore[union-attr]
            best = int(np.nanargmax(group_true) if maximize else np.nanargmin(group_true))
        truths.append((group_true, best))

    rng = np.random.default_rng(seed)
    rows = []
    for sim in range(int(n_sims)):
        pick = offsets[:, None] + (rng.random((n_cells, repeats)) * counts[:, None]).astype(
            np.int64
        )
        pick = pick.ravel()  # position = cell id = cell index * repeats + sample
        values = {m: v[pick] for m, v in logged.items()}
        usd, tok = cost[pick], tokens[pick]
        s = AdaptiveScheduler._from_design(d)
        while s.next_round():
            s._observe_round(values, usd)
        oks = []
        picked = correct = leader = math.nan
        for leaf, (group_true, best) in zip(s._leaves, truths, strict=True):
            oks.append(np.isnan(group_true) | ((leaf.lo <= group_true) & (group_true <= leaf.hi)))
            if best is not None and math.isnan(picked):
                picked = float(leaf.winner is not None)
                correct = float(leaf.winner == best)
                leader = float(leaf.leader() == best)
        used = s._issued
        tok_total, usd_total = tok.sum(), usd.sum()
        rows.append(
            {
                "sim": sim,
                "rounds": s.round,
                "stopped_by": s.stopped_by,
                "covered": bool(all(ok.all() for ok in oks)),
                "group_coverage": float(np.concatenate(oks).mean()) if oks else math.nan,
                "picked": picked,
                "correct": correct,
                "leader_correct": leader,
                "cells_sampled": int(used.sum()),
                "call_share": float(used.mean()),
                "token_share": float(tok[used].sum() / tok_total) if tok_total else math.nan,
                "usd_share": float(usd[used].sum() / usd_total) if usd_total else math.nan,
                "usd_spent": s.spent_usd,
            }
        )
    out = pd.DataFrame(rows)
    out.attrs.update(
        rule=str(rule), repeats=repeats, cells=n_cells, fixed_design=n_cells * repeats, seed=seed
    )
    return out


def _unit_column(values: np.ndarray, name: str) -> np.ndarray:
    import pandas as pd

    v = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float)
    bad = ~np.isnan(v) & ((v < 0) | (v > 1))
    if bad.any():
        raise RequestError(f"column {name!r} has values outside [0, 1]", "full")
    return v


def _nan_group_mean(values: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    ok = ~np.isnan(values)
    sums = np.bincount(labels[ok], weights=values[ok], minlength=n)
    counts = np.bincount(labels[ok], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def summarize_simulations(sims: pd.DataFrame) -> dict[str, Any]:
    """Coverage, correct-pick rate and mean call/token shares of `simulate`'s output.

    ``coverage``: share of simulations whose reported CSs all covered the true means;
    ``group_coverage``: share of reported CSs (over groups and simulations) that did;
    ``correct_pick``: share that named the full grid's best arm (NaN without `decided`);
    ``wrong_pick``: share that named another arm (what ``alpha`` bounds);
    ``leader_pick``: share whose certified pick, or failing one the point-estimate leader
    when the run ended, is the full grid's best arm (what you would pick if you had to);
    ``call_share`` / ``token_share`` / ``usd_share``: mean share of the fixed design used.
    """
    n = len(sims)
    if not n:
        raise RequestError("no simulations to summarise", "sims")
    picked = sims["picked"].astype(float)
    correct = sims["correct"].astype(float)
    return {
        "n_sims": n,
        "coverage": float(sims["covered"].mean()),
        "group_coverage": float(sims["group_coverage"].mean()),
        "correct_pick": float(correct.mean()),
        "wrong_pick": float((picked - correct).mean()),
        "leader_pick": float(sims["leader_correct"].astype(float).mean())
        if "leader_correct" in sims.columns
        else math.nan,
        "call_share": float(sims["call_share"].mean()),
        "token_share": float(sims["token_share"].mean()),
        "usd_share": float(sims["usd_share"].mean()),
        "rounds_mean": float(sims["rounds"].mean()),
        "stopped_by": sims["stopped_by"].value_counts().to_dict(),
    }


def expected_share(
    cells: pd.DataFrame,
    rule: Rule,
    *,
    repeats: int,
    point_columns: Sequence[str] | None = None,
    usd_per_cell: float = 0.0,
    sims: int = 200,
    seed: int = 0,
) -> float:
    """The share of the fixed design's cells an adaptive run is expected to sample, before
    any data: the mean over `sims` simulated studies in which every parameter point's accuracy
    is drawn uniformly from [0, 1] and each problem's from a Beta around it (mean the point's
    accuracy, concentration 4), every metric the rule reads is a Bernoulli draw from it, and
    every cell costs `usd_per_cell` (the forecast's expected cost of a call: a `budget` rule
    binds where the real one would).

    A prior expectation, not a promise: arms that differ a lot stop far sooner than this, arms
    that barely differ run to the full design (the worst case). Deterministic for a `seed`.
    """
    design = _Design(cells, rule, repeats, point_columns)
    usd = positive_number(usd_per_cell, "usd_per_cell", allow_zero=True)
    metrics = list(design.metrics) or ["score"]
    rng = np.random.default_rng(seed)
    cols = list(design.point_columns)
    point_of = (
        cells.groupby(cols, sort=False, dropna=False).ngroup().to_numpy()
        if cols
        else np.zeros(len(cells), dtype=int)
    )
    # one success probability per (problem, point), shared by that pair's repeats
    problem_of = cells.groupby(["prompt_id", *cols], sort=False, dropna=False).ngroup().to_numpy()
    pos_of_cell = dict(zip(cells["cell"].tolist(), range(len(cells)), strict=True))
    shares = []
    for _ in range(sims):
        accuracy = rng.uniform(0, 1, point_of.max() + 1)
        pair_point = np.zeros(problem_of.max() + 1, dtype=int)
        pair_point[problem_of] = point_of
        mean = accuracy[pair_point]
        p = rng.beta(mean * 4 + 0.05, (1 - mean) * 4 + 0.05)[problem_of]
        scheduler = AdaptiveScheduler._from_design(design, usd)
        while ids := scheduler.next_round():
            for cell in ids:
                i = pos_of_cell[cell]
                draws = {m: float(rng.random() < p[i]) for m in metrics}
                scheduler.observe(cell, draws, usd)
        shares.append(scheduler.summary()["call_share"])
    return float(np.mean(shares))
