"""Test-time scaling curves: accuracy and cost against the reasoning a model actually used.

    curve = lab.scaling_curve(problems, budgets=[64, 128, 256, 512], repeats=8,
                              knob="reasoning.max_tokens", scorer=scorers.final_answer)
    curve            # ScalingCurve(...: returns diminish after 256 ...)
    curve.df         # one row per budget: accuracy, pass@k, maj@k, tokens, truncation, USD
    curve.plot()     # accuracy and cost against reasoning tokens used; truncation beside
    curve.frontier() # the cost-accuracy Pareto frontier across budgets

A curve is a sweep (forecast first, budget-capped, cached, resumable, replayable from its
bundle) over one *knob*: ``reasoning.max_tokens`` (a thinking budget), ``max_tokens`` (the
whole output), ``reasoning.effort`` or ``reasoning.wait`` (budget forcing, on endpoints that
can continue a prefilled turn). Curves are drawn against reasoning tokens *used*, not the
budget asked for: endpoints ignore or round budgets (OpenRouter maps a budget to an effort
level for effort-only models), which the curve then shows — and says, with a warning, when
the knob moved nothing at all.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import analysis
from .errors import RequestError
from .probe import point

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from .sweep import SweepResult

KNOBS = ("reasoning.max_tokens", "max_tokens", "reasoning.effort", "reasoning.wait")
#: Room left for the answer when a thinking budget is swept without a ``max_tokens``.
ANSWER_TOKENS = 512


def points(
    knob: str, budgets: Sequence[Any], fixed: Mapping[str, Any], answer_tokens: int
) -> list[dict[str, Any]]:
    """One parameter point per budget (the sweep merges it into the fixed parameters)."""
    if knob not in KNOBS:
        raise RequestError(f"knob must be one of {', '.join(KNOBS)}; got {knob!r}", "knob")
    if isinstance(budgets, str | bytes) or not isinstance(budgets, Sequence) or len(budgets) < 2:
        raise RequestError("budgets must be a list of at least two values", field="budgets")
    if len({str(b) for b in budgets}) != len(budgets):
        raise RequestError("budgets must be distinct", field="budgets")
    out = []
    for budget in budgets:
        p = point(knob, budget)
        if knob == "reasoning.max_tokens" and "max_tokens" not in fixed:
            p["max_tokens"] = int(budget) + answer_tokens  # thinking budget + room to answer
        out.append(p)
    return out


@dataclass
class ScalingCurve:
    """A scaling curve: the sweep's result and the statistics per budget (see the module)."""

    knob: str
    budgets: list[Any]
    k: int
    result: SweepResult
    df: pd.DataFrame
    """One row per budget (see `curve_frame`)."""
    knob_effect: dict[str, Any] | None = None
    """Whether reasoning tokens used moved with the knob (`mmlab.analysis.knob_effect`)."""

    def __repr__(self) -> str:
        return f"ScalingCurve({self.knob}: {self.verdict()})"

    def verdict(self) -> str:
        """Where returns diminish, in one line."""
        df = self.df
        if self.knob_effect is not None and self.knob_effect["p_value"] >= 0.5:
            return (
                f"the knob did not move reasoning tokens used (p={self.knob_effect['p_value']:.2f})"
                " — the endpoint may ignore it"
            )
        if "accuracy" not in df or df["accuracy"].isna().all():
            return f"{len(df)} budgets; no scores (pass scorer=) to judge returns"
        acc = [-math.inf if math.isnan(a) else a for a in df["accuracy"].astype(float)]
        best = acc.index(max(acc))
        # the first budget whose accuracy is inside the best budget's interval (with no
        # interval — one problem — the best budget itself)
        low = df["ci_low"].iloc[best]
        low = df["accuracy"].iloc[best] if math.isnan(low) else low
        knee = next(i for i in range(len(df)) if df["accuracy"].iloc[i] >= low)
        used = df["reasoning_tokens"]
        if knee == len(df) - 1:
            return (
                f"accuracy still rising at {df['budget'].iloc[-1]} "
                f"({df['accuracy'].iloc[-1]:.0%} with {used.iloc[-1]:.0f} reasoning tokens used)"
            )
        gain = df["accuracy"].iloc[best] - df["accuracy"].iloc[knee]
        ratio = used.iloc[-1] / used.iloc[knee] if used.iloc[knee] else math.inf
        if best == knee:
            return (
                f"no larger budget does better than {df['budget'].iloc[knee]} "
                f"({df['accuracy'].iloc[knee]:.0%} with {used.iloc[knee]:.0f} reasoning tokens "
                f"used); the largest uses {ratio:.1f}x the tokens"
            )
        return (
            f"returns diminish after {df['budget'].iloc[knee]} "
            f"({df['accuracy'].iloc[knee]:.0%} with {used.iloc[knee]:.0f} reasoning tokens used): "
            f"larger budgets add {gain:+.0%} accuracy, within the best budget's 95% interval, "
            f"for {ratio:.1f}x the tokens"
        )

    def at_k(self, ks: Sequence[int] | None = None) -> pd.DataFrame:
        """pass@k and maj@k against k (default 1, 2, 4, ... up to the repeats), per budget."""
        import pandas as pd

        df = self.result.df
        ks = list(ks or [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= self.k])
        frames = []
        for budget, part in df.groupby(self.knob, sort=True):
            # a k above a budget's fewest scored samples of a problem (failed calls, or an
            # adaptive run that stopped early) has no unbiased estimate: left out, not a crash
            for k in (k for k in ks if k <= _fewest_samples(part)):
                frames.append(analysis.pass_at_k(part, k).assign(metric="pass@k", budget=budget))
                if "answer" in part:
                    frames.append(analysis.maj_at_k(part, k).assign(metric="maj@k",
                                                                   budget=budget))  # fmt: skip
        if not frames:
            return pd.DataFrame(columns=["budget", *analysis.AT_K_COLUMNS, "metric"])
        # by k, pass@k before maj@k, budgets in order within (a stable sort keeps them)
        out = pd.concat(frames, ignore_index=True)
        out = out.sort_values("k", kind="stable", key=lambda k: k * 2 + (out["metric"] == "maj@k"))
        return out[["budget", *(c for c in out.columns if c != "budget")]].reset_index(drop=True)

    def frontier(self) -> pd.DataFrame:
        """The cost-accuracy Pareto frontier across budgets (`mmlab.analysis.pareto_frontier`)."""
        return analysis.pareto_frontier(self.result.df, by=self.knob).rename(
            columns={self.knob: "budget"}
        )

    def plot(self) -> go.Figure:
        """Accuracy and USD per call against reasoning tokens used (one point per budget, with
        intervals), and the truncation rate per budget beside it."""
        from .plots import scaling_curve

        return scaling_curve(self)


def _fewest_samples(part: pd.DataFrame) -> int:
    """The fewest scored samples any problem has in `part` (0 when none is scored)."""
    scored = part[part["error"].isna() & part["score"].notna()] if "score" in part else part[:0]
    return int(scored.groupby("prompt_id").size().min()) if len(scored) else 0


def curve_frame(
    res: SweepResult, knob: str, budgets: Sequence[Any], k: int, scored: bool
) -> pd.DataFrame:
    """One row per budget, in the order given: ``budget``, ``n`` (cells), ``accuracy`` with
    ``ci_low``/``ci_high`` (pass@1, bootstrap-t), ``pass_at_k`` and ``maj_at_k`` at k =
    the repeats with intervals, ``reasoning_tokens`` (mean used) with a clustered t-interval,
    ``truncation_rate`` with a Wilson interval, ``usd`` (total) and ``usd_per_call``, and
    ``ci_method``."""
    import pandas as pd

    df = res.df
    ok = df[df["error"].isna()]
    tokens = analysis.summarize(ok, knob, ["reasoning_tokens", "cost_usd"])
    trunc = analysis.truncation_rate(ok, knob)
    rows = []
    for budget in budgets:
        part = ok[ok[knob] == budget]
        row: dict[str, Any] = {"budget": budget, "n": len(part)}
        t = tokens[(tokens[knob] == budget) & (tokens["metric"] == "reasoning_tokens")]
        c = tokens[(tokens[knob] == budget) & (tokens["metric"] == "cost_usd")]
        tr = trunc[trunc[knob] == budget]
        fewest = _fewest_samples(part) if scored else 0
        if scored:
            row.update(dict.fromkeys(("accuracy", "ci_low", "ci_high", "pass_at_k",
                                      "pass_at_k_low", "pass_at_k_high"), math.nan))  # fmt: skip
        if fewest:
            p1 = analysis.pass_at_k(part, 1).iloc[0]
            row.update(accuracy=p1["estimate"], ci_low=p1["ci_low"], ci_high=p1["ci_high"])
        if fewest >= k:  # else pass@k and maj@k have no unbiased estimate here: NaN
            pk = analysis.pass_at_k(part, k).iloc[0]
            row.update(pass_at_k=pk["estimate"], pass_at_k_low=pk["ci_low"],
                       pass_at_k_high=pk["ci_high"])  # fmt: skip
            if "answer" in part:
                mk = analysis.maj_at_k(part, k).iloc[0]
                row.update(maj_at_k=mk["estimate"], maj_at_k_low=mk["ci_low"],
                           maj_at_k_high=mk["ci_high"])  # fmt: skip
        row.update(
            reasoning_tokens=float(t["mean"].iloc[0]) if len(t) else math.nan,
            reasoning_tokens_low=float(t["ci_low"].iloc[0]) if len(t) else math.nan,
            reasoning_tokens_high=float(t["ci_high"].iloc[0]) if len(t) else math.nan,
            truncation_rate=float(tr["rate"].iloc[0]) if len(tr) else math.nan,
            truncation_low=float(tr["ci_low"].iloc[0]) if len(tr) else math.nan,
            truncation_high=float(tr["ci_high"].iloc[0]) if len(tr) else math.nan,
            usd=float(part["cost_usd"].fillna(0).sum()),
            usd_per_call=float(c["mean"].iloc[0]) if len(c) else math.nan,
        )
        rows.append(row)
    out = pd.DataFrame(rows)
    out["ci_method"] = (
        "accuracy and pass/maj@k: bootstrap-t over problems (Wilson bounds where problems show "
        "no spread), 2000 resamples, seed 0, 95%; reasoning tokens: Student t over per-problem "
        "means; truncation: Wilson"
    )
    return out


def build_curve(
    res: SweepResult,
    knob: str,
    budgets: Sequence[Any],
    k: int,
    scorer: Callable[..., Any] | None,
) -> ScalingCurve:
    """A `ScalingCurve` from its sweep's result; warns when the knob moved nothing."""
    effect = None
    ok = res.df[res.df["error"].isna()]
    if ok[knob].nunique() >= 2 and len(ok) >= 4:
        effect = analysis.knob_effect(
            ok, knob, ["prompt_id", "sample"], metric="reasoning_tokens", text=None,
            permutations=500,
        )  # fmt: skip
        if effect["p_value"] >= 0.5:
            warnings.warn(
                f"the scaling knob {knob} did not move reasoning tokens used "
                f"(permutation p={effect['p_value']:.2f}): the endpoint may ignore it — check "
                "with lab.probe() before spending on a curve",
                stacklevel=3,
            )
    frame = curve_frame(res, knob, budgets, k, scored=scorer is not None)
    return ScalingCurve(knob, list(budgets), k, res, frame, effect)
