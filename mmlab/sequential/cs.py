"""Anytime-valid confidence sequences for means in [0, 1], and why the scheduler's stay valid.

`ConfidenceSequence` is the interval that every `ci_width` group, every `decided` arm and
every pair of `decided` arms carries (`tree.py`). Below: the argument that these intervals
hold at whatever data-dependent round a sweep stops, and the two methods.

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
``alpha`` (see tests/test_sequential.py).

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
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ..errors import RequestError
from ..stop import check_alpha, check_method, method_text, unit_number

#: Candidate means the betting CS evaluates its capital on: 0, 1/GRID, ..., 1.
GRID = 1000
#: The bet truncation ``c`` of Waudby-Smith & Ramdas (1/2, as in their ``confseq`` package).
TRUNCATION = 0.5


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
