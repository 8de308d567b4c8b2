"""Expected completion lengths for forecasts, learned from the log, and where each came from.

A logged call's completion length says what the model writes — unless the call was cut at
its cap (finish reason ``length``): then it is a *lower bound*, a right-censored observation.
A forecast of calls capped at ``max_tokens`` = T needs E[min(L, T)], and takes it from, in
order:

1. calls of the same model and endpoint at the same ``max_tokens``: their mean (they were cut
   exactly where the new calls will be, so their lengths are the thing itself);
2. else the model's calls at other caps, as a censored sample: the Kaplan–Meier estimate of
   the length's survival S(t), integrated up to T (the restricted mean, ∫₀ᵀ S(t) dt). Calls
   cut at a cap count as "longer than this", never as "this long" — so 14 calls cut at 128
   tokens say only that the model writes more than 128, not that it writes 128. Where the
   log cannot see as far as T (the longest observation is a cut one), the mass beyond it gets
   the prior's share of the room left;
3. else the prior: `PRIOR_COMPLETION_SHARE` of the cap.

Each estimate carries one line saying which it was ("12 calls of smollm2 at max_tokens=1024",
"prior: 60% of max_tokens"). Pure: the observations come from `Engine.length_observations`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Prior share of max_tokens a reasoning model spends, before the log has observations.
#: Reasoning models often run close to their budget (M1's RL responses pass 20K tokens).
PRIOR_COMPLETION_SHARE = 0.6

#: One logged observation group: (max_tokens or None, completion tokens, cut at the cap,
#: how many calls) — `mmlab.store.Store.length_observations`'s rows.
Observation = tuple[int | None, int, bool, int]


@dataclass(frozen=True)
class Expected:
    """An expected completion length per call, and where it came from."""

    tokens: float
    """Expected completion tokens of one call (reasoning included), E[min(L, cap)]."""
    method: str
    """``same max_tokens`` | ``censored`` (Kaplan–Meier over other caps) | ``prior``."""
    source: str
    """Where it came from, in one line."""
    calls: int
    """Logged calls it was learned from (0: the prior)."""
    max_tokens: tuple[int | None, ...] = ()
    """The ``max_tokens`` values of the calls it was learned from."""


def cap_name(max_tokens: int | None) -> str:
    """``max_tokens=1024``, or ``no max_tokens``."""
    return "no max_tokens" if max_tokens is None else f"max_tokens={max_tokens}"


def expected_length(
    observations: Sequence[Observation],
    model: str,
    max_tokens: int | None,
    cap: int,
    share: float = PRIOR_COMPLETION_SHARE,
) -> Expected:
    """E[min(L, `cap`)] for a call of `model` asking `max_tokens` (its cap: `cap`), from the
    model's logged `observations` (see the module docstring for the order)."""
    same = [o for o in observations if o[0] == max_tokens]
    if same:
        n = sum(o[3] for o in same)
        cut = sum(o[3] for o in same if o[2])
        mean = sum(o[1] * o[3] for o in same) / n
        note = f", {cut} cut at the cap" if cut else ""
        return Expected(min(float(cap), mean), "same max_tokens",
                        f"{n} calls of {model} at {cap_name(max_tokens)}{note}", n,
                        (max_tokens,))  # fmt: skip
    others = [o for o in observations if o[3] > 0]
    prior = share * cap
    what = "max_tokens" if max_tokens is not None else f"the {cap:,}-token cap"
    if not others:
        return Expected(prior, "prior", f"prior: {share:.0%} of {what}", 0)
    area, left, seen_to = restricted_mean(((o[1], o[2], o[3]) for o in others), cap)
    n = sum(o[3] for o in others)
    cut = sum(o[3] for o in others if o[2])
    caps = tuple(sorted({o[0] for o in others}, key=lambda c: (c is None, c or 0)))
    shown = ", ".join("none" if c is None else str(c) for c in caps[:4])
    shown += ", ..." if len(caps) > 4 else ""
    source = (
        f"censored estimate (Kaplan–Meier) from {n} calls of {model} at max_tokens {shown}, "
        f"{cut} cut at their cap (known only to run longer)"
    )
    tokens = area
    if left > 0 and seen_to < cap:
        # the log cannot see past `seen_to` (its longest observation was cut there): the
        # mass still "alive" gets the prior's share of the room left
        tokens += left * share * (cap - seen_to)
        source += f"; past {seen_to:,} tokens ({left:.0%} of calls) the prior"
    return Expected(min(float(cap), tokens), "censored", source, n, caps)


def restricted_mean(
    lengths: Iterable[tuple[int, bool, int]], horizon: int
) -> tuple[float, float, int]:
    """The Kaplan–Meier restricted mean of right-censored lengths, as far as they reach.

    `lengths`: (tokens, censored, count). Returns (∫₀ᵉ S(t) dt, S(e), e) where e is
    `horizon` when the observations reach it, else the longest observation: the estimate
    covers [0, e], and S(e) is the share of calls known only to be longer than e (0 when
    every call beyond was seen to finish). An event and a censoring at the same length: the
    event first (the usual convention)."""
    at: dict[int, list[int]] = {}
    for tokens, censored, count in lengths:
        slot = at.setdefault(int(tokens), [0, 0])
        slot[1 if censored else 0] += int(count)
    at_risk = sum(d + c for d, c in at.values())
    survival, area, previous = 1.0, 0.0, 0
    for t in sorted(at):
        if t >= horizon:
            return area + survival * (horizon - previous), survival, horizon
        area += survival * (t - previous)
        previous = t
        events, censored = at[t]
        if at_risk > 0:
            survival *= 1.0 - events / at_risk
        at_risk -= events + censored
    return area, survival, previous
