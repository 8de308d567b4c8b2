"""Stopping rules for adaptive sweeps: what question a sweep samples until it is answered.

Pass a rule as ``stop=`` to `Sweep.run`, `Lab.scaling_curve` or a sweep file's ``stop:``;
combine rules with ``|`` (stop when either does) and ``&`` (when both do):

    from mmlab import stop
    res = sweep.run(stop=stop.decided(by="temperature") | stop.budget(2.0))

- `decided`: successive elimination (Even-Dar, Mannor & Mansour, JMLR 2006) on
  paired-difference confidence sequences — stop when one arm is certified best (or all
  remaining arms are within ``margin``);
- `ci_width`: stop a group once its anytime-valid interval is narrower than ``width``;
- `budget`, `max_repeats`: hard limits.

The rules are plain, validated settings; the confidence sequences, the round scheduler and
the simulator that execute them live in `mmlab.sequential` (with the argument why the
intervals stay valid under optional stopping). This module does not import numpy.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .errors import RequestError

__all__ = [
    "AllOf",
    "AnyOf",
    "Budget",
    "CIWidth",
    "Decided",
    "MaxRepeats",
    "Rule",
    "budget",
    "ci_width",
    "decided",
    "max_repeats",
]

METHODS = ("betting", "eb")
#: How a round feeds a group's CS: every scored cell under one bet, or the round's mean.
UNITS = ("cell", "round")


# --- validation shared with mmlab.sequential ---------------------------------------------------
def check_alpha(alpha: Any) -> float:
    """`alpha` as a float in (0, 1), else RequestError naming ``alpha``."""
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise RequestError(f"alpha must be a number in (0, 1), got {alpha!r}", "alpha") from None
    if not 0.0 < a < 1.0:
        raise RequestError(f"alpha must be in (0, 1), got {alpha!r}", "alpha")
    return a


def check_method(method: Any) -> str:
    """`method`, one of `METHODS`, else RequestError naming ``method``."""
    if method not in METHODS:
        raise RequestError(f"method must be one of {METHODS}, got {method!r}", "method")
    return str(method)


def unit_number(x: Any, field: str) -> float:
    """`x` as a float in [0, 1], else RequestError naming `field`."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        raise RequestError(f"{field} must be a number in [0, 1], got {x!r}", field) from None
    if not 0.0 <= f <= 1.0:
        raise RequestError(f"{field} must lie in [0, 1], got {x!r}", field)
    return f


def method_text(method: str, alpha: float) -> str:
    """How an interval of `method` at level `alpha` is described (its ``cs_method``)."""
    if method == "betting":
        return (
            "betting CS (Waudby-Smith & Ramdas 2024, hedged capital, predictable plug-in), "
            f"alpha={alpha:.4g}"
        )
    return (
        "empirical-Bernstein CS (Waudby-Smith & Ramdas 2024 predictable plug-in; "
        f"Howard et al. 2021), alpha={alpha:.4g}"
    )


# --- stopping rules ----------------------------------------------------------------------------
def norm_by(by: Any, *, required: bool) -> tuple[str, ...] | None:
    """A rule's ``by`` as a tuple of column names (None when not given and not `required`)."""
    if by is None:
        if required:
            raise RequestError("by is required: the column(s) that define the arms", "by")
        return None
    cols = (by,) if isinstance(by, str) else tuple(by) if isinstance(by, Iterable) else None
    if not cols or not all(isinstance(c, str) and c for c in cols):
        raise RequestError(f"by must be a column name or a list of them, got {by!r}", "by")
    if len(set(cols)) != len(cols):
        raise RequestError(f"by names a column twice: {list(cols)}", "by")
    return cols


def _check_unit(unit: Any) -> None:
    if unit not in UNITS:
        raise RequestError(f"unit must be one of {UNITS}, got {unit!r}", "unit")


def check_metric(metric: Any) -> None:
    """A metric is a non-empty column name, else RequestError naming ``metric``."""
    if not isinstance(metric, str) or not metric:
        hint = " (did you mean width=...?)" if isinstance(metric, int | float) else ""
        raise RequestError(f"metric must be a column name, got {metric!r}{hint}", "metric")


def positive_number(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """`value` as a finite float > 0 (>= 0 with `allow_zero`), else RequestError naming `name`."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise RequestError(f"{name} must be a number, got {value!r}", name) from None
    if isinstance(value, bool) or not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        need = ">= 0" if allow_zero else "> 0"
        raise RequestError(f"{name} must be a finite number {need}, got {value!r}", name)
    return v


def _fmt_by(by: tuple[str, ...] | None) -> str:
    if by is None:
        return "point"
    return repr(by[0]) if len(by) == 1 else repr(list(by))


def _fmt_cs(method: str, unit: str) -> str:
    return ("" if method == "betting" else f", method={method!r}") + (
        "" if unit == "cell" else f", unit={unit!r}"
    )


class Rule:
    """A stopping rule. ``a | b`` stops when either does, ``a & b`` when both do."""

    def __or__(self, other: Rule) -> AnyOf:
        if not isinstance(other, Rule):
            return NotImplemented
        return AnyOf(_flatten(AnyOf, self) + _flatten(AnyOf, other))

    def __and__(self, other: Rule) -> AllOf:
        if not isinstance(other, Rule):
            return NotImplemented
        return AllOf(_flatten(AllOf, self) + _flatten(AllOf, other))

    def leaves(self) -> list[Rule]:
        """The simple rules inside this one, left to right."""
        return [self]


def _flatten(kind: type, rule: Rule) -> tuple[Rule, ...]:
    return tuple(rule.rules) if isinstance(rule, kind) else (rule,)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class CIWidth(Rule):
    """Stop when every group's confidence sequence is narrower than `width`.

    Groups are the distinct values of the `by` columns (``None``: every parameter point).
    A group whose CS is already narrower than `width` stops being sampled; the others go on.
    Each group's CS has level ``1 - alpha`` on its own (not simultaneously over groups).
    `method`: ``"betting"`` or ``"eb"`` (`mmlab.sequential.ConfidenceSequence`); `unit`:
    ``"cell"`` or ``"round"`` (`mmlab.sequential`'s module docstring).
    """

    metric: str = "score"
    width: float = 0.1
    by: tuple[str, ...] | None = None
    alpha: float = 0.05
    method: str = "betting"
    unit: str = "cell"

    def __post_init__(self) -> None:
        check_metric(self.metric)
        _check_unit(self.unit)
        width = positive_number(self.width, "width")
        if width >= 1:  # every metric lives in [0, 1]: such a width is met before any data
            raise RequestError(f"width must be in (0, 1), got {self.width!r}", "width")
        object.__setattr__(self, "width", width)
        object.__setattr__(self, "by", norm_by(self.by, required=False))
        object.__setattr__(self, "alpha", check_alpha(self.alpha))
        check_method(self.method)

    def __str__(self) -> str:
        metric = "" if self.metric == "score" else f"metric={self.metric!r}, "
        return (
            f"ci_width({metric}width={self.width:g}, by={_fmt_by(self.by)}, "
            f"alpha={self.alpha:g}{_fmt_cs(self.method, self.unit)})"
        )


@dataclass(frozen=True)
class Decided(Rule):
    """Best-arm identification between the arms given by the `by` column(s).

    Successive elimination (Even-Dar, Mannor & Mansour, "Action elimination and stopping
    conditions for the multi-armed bandit and reinforcement learning problems", JMLR 2006)
    on paired differences: every live arm is sampled each round, on the same problems; each
    pair of arms (a, b) has a confidence sequence on ``mu_a - mu_b`` built from the round's
    paired differences ``(Y_a - Y_b + 1) / 2`` (`mmlab.sequential`: why it is valid), at level
    ``alpha / (K (K - 1) / 2)`` (K arms; a union bound makes every pair's CS hold at once with
    probability ``>= 1 - alpha``). Arm b is eliminated, and no longer sampled, as soon as the
    CS of ``mu_a - mu_b`` for some live arm a lies above 0 (``maximize=False``: below 0). A
    pair's CS stops taking observations once either arm is eliminated. The rule is satisfied
    when one arm remains -- the winner, which on that event is the truly best arm -- or, if
    `margin` is given, when the CS of every pair of live arms lies within
    ``[-margin, margin]`` (shown equivalent; no winner is then reported). If the repeats run
    out first, no winner is named; the stop reason names the arm leading by point estimate.

    Pairing key: the cells of a round are paired on ``prompt_id`` and every parameter column
    other than the `by` columns (so ``by="temperature"`` over a ``temperature x top_p`` grid
    compares ``temperature=0`` with ``temperature=1`` at the same problem and top_p). That
    is used when every arm holds the same keys, each arm the same number of cells at each of
    its keys (then the mean of the key differences is exactly ``mu_a - mu_b``); several
    cells of one arm at a key in a round (parameter columns not among the point columns) are
    averaged first. Otherwise, the per-problem means of the round are paired (key
    ``prompt_id`` alone, same conditions: arms whose other parameters differ, e.g. each model
    with its own max_tokens values). Failing that too -- arms on different problems, e.g.
    ``by`` a column of the problems -- nothing can be paired and the rule falls back to
    separate intervals: b is eliminated when a's per-arm lower bound exceeds b's upper bound
    (the pair's difference interval is then ``[lo_a - hi_b, hi_a - lo_b]``).

    Every arm also keeps its own CS, at level ``alpha / K`` (simultaneous over the arms by a
    union bound), for `AdaptiveScheduler.intervals` and `simulate`'s coverage (both in
    `mmlab.sequential`); the pairs' CSs are in `AdaptiveScheduler.pair_intervals`. `method`
    and `unit` as for `CIWidth`.
    """

    by: tuple[str, ...] = ()
    metric: str = "score"
    alpha: float = 0.05
    margin: float | None = None
    maximize: bool = True
    method: str = "betting"
    unit: str = "cell"

    def __post_init__(self) -> None:
        object.__setattr__(self, "by", norm_by(self.by, required=True))
        check_metric(self.metric)
        _check_unit(self.unit)
        object.__setattr__(self, "alpha", check_alpha(self.alpha))
        if self.margin is not None:
            object.__setattr__(
                self, "margin", positive_number(self.margin, "margin", allow_zero=True)
            )
        if not isinstance(self.maximize, bool):
            raise RequestError(f"maximize must be True or False, got {self.maximize!r}", "maximize")
        check_method(self.method)

    def __str__(self) -> str:
        extra = "" if self.metric == "score" else f", metric={self.metric!r}"
        extra += "" if self.margin is None else f", margin={self.margin:g}"
        extra += "" if self.maximize else ", maximize=False"
        extra += f", alpha={self.alpha:g}{_fmt_cs(self.method, self.unit)}"
        return f"decided(by={_fmt_by(self.by)}{extra})"


@dataclass(frozen=True)
class Budget(Rule):
    """Stop before a round whose cost could take the spending past `usd`.

    A hard limit wherever it appears, even inside ``&``: the scheduler never starts a round
    when ``spent + cost per cell x cells in the round > usd``, the cost per cell being the
    caller's worst case (``worst_usd_per_cell``) or else the mean observed so far (no estimate
    before the first round, which therefore always starts).
    """

    usd: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "usd", positive_number(self.usd, "budget", allow_zero=True))

    def __str__(self) -> str:
        return f"budget(${self.usd:g})"


@dataclass(frozen=True)
class MaxRepeats(Rule):
    """Stop after `n` rounds (at most `n` repeats of any cell)."""

    n: int

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, numbers.Integral) or self.n < 1:
            raise RequestError(
                f"max_repeats must be an integer >= 1, got {self.n!r}", "max_repeats"
            )
        object.__setattr__(self, "n", int(self.n))

    def __str__(self) -> str:
        return f"max_repeats({self.n})"


@dataclass(frozen=True)
class _Combined(Rule):
    """Rules combined by an operator (`AnyOf`, `AllOf`)."""

    rules: tuple[Rule, ...]
    #: How `__str__` joins the rules.
    OP: ClassVar[str] = ""

    def __post_init__(self) -> None:
        _check_children(self.rules)

    def leaves(self) -> list[Rule]:
        """The simple rules inside this one, left to right."""
        return [leaf for r in self.rules for leaf in r.leaves()]

    def __str__(self) -> str:
        return "(" + f" {self.OP} ".join(map(str, self.rules)) + ")"


@dataclass(frozen=True)
class AnyOf(_Combined):
    """Stop as soon as any of `rules` says stop (built by ``a | b``)."""

    OP: ClassVar[str] = "|"


@dataclass(frozen=True)
class AllOf(_Combined):
    """Stop once all of `rules` have said stop (built by ``a & b``).

    A rule that is satisfied stays satisfied; while the others are not, the cells they need
    are sampled (all cells if none of them restricts sampling, e.g. `max_repeats`).
    """

    OP: ClassVar[str] = "&"


def _check_children(rules: Any) -> None:
    if not isinstance(rules, tuple) or not rules or not all(isinstance(r, Rule) for r in rules):
        raise RequestError("a combined rule needs a tuple of rules", "rule")


def ci_width(
    metric: str = "score",
    width: float = 0.1,
    by: str | Sequence[str] | None = None,
    alpha: float = 0.05,
    *,
    method: str = "betting",
    unit: str = "cell",
) -> CIWidth:
    """Stop when every group's CS (level ``1 - alpha`` each) is narrower than `width`.

    `by`: column(s) defining the groups; ``None`` makes every parameter point a group.
    Groups that meet the width stop being sampled while the others continue. `method`:
    ``"betting"`` or ``"eb"``; `unit`: ``"cell"`` or ``"round"`` (`mmlab.sequential`).
    """
    return CIWidth(
        metric=metric,
        width=width,
        by=by,  # type: ignore[arg-type]  # normalised to a tuple
        alpha=alpha,
        method=method,
        unit=unit,
    )


def decided(
    by: str | Sequence[str],
    metric: str = "score",
    alpha: float = 0.05,
    margin: float | None = None,
    maximize: bool = True,
    *,
    method: str = "betting",
    unit: str = "cell",
) -> Decided:
    """Stop when the best arm (distinct values of `by`) is identified; see `Decided`.

    Successive elimination (Even-Dar et al. 2006) on anytime-valid confidence sequences of
    the paired differences between arms, ``alpha`` split over the pairs (union bound).
    """
    return Decided(
        by=by,  # type: ignore[arg-type]
        metric=metric,
        alpha=alpha,
        margin=margin,
        maximize=maximize,
        method=method,
        unit=unit,
    )


def budget(usd: float) -> Budget:
    """Hard limit: never start a round that could take the spending past `usd`."""
    return Budget(usd)


def max_repeats(n: int) -> MaxRepeats:
    """Hard limit: stop after `n` rounds."""
    return MaxRepeats(n)
