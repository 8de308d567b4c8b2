"""What a sweep will cost before it runs: calls, tokens, and expected and worst-case USD.

Each call is priced as its own model at its own endpoint (a sweep may span several).
Expected completion lengths come from logged calls of the same model, endpoint and
``max_tokens``; else from the model's calls at other caps, read as a censored sample (a call
cut at its cap only says the model writes *more*: `mmlab.sweep.lengths`); else a prior share
of ``max_tokens`` — and the forecast says which, per length. The worst case is every call
using its whole completion cap (the same arithmetic the budget reserves, `mmlab.pricing`).

"At MiniMax M1 list prices" prices what M1 would write: on another model (the embedded one,
say), M1-like lengths from the M1 report (`mmlab.reference.m1_expected_tokens`), shown beside
the run model's own lengths at M1's prices — a 135M model's 100-token answers say nothing of
what a 20,000-token M1 study costs.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..pricing import (
    EMBEDDED,
    completion_cap,
    estimate_prompt_tokens,
    prompt_tokens_bound,
    worst_case_usd,
)
from ..reference import m1_expected_tokens, m1_lengths_note
from ..result import same_model
from .lengths import PRIOR_COMPLETION_SHARE, Expected, cap_name, expected_length

if TYPE_CHECKING:
    import pandas as pd

    from ..engine import Engine
    from .cells import Cell

__all__ = ["M1", "PRIOR_COMPLETION_SHARE", "Forecast", "cell_worst_usd", "forecast"]

M1 = "minimax/minimax-m1"


@dataclass
class Forecast:
    """What a sweep will cost before it runs."""

    cells: int
    hits: int
    to_call: int
    errors_kept: int
    prompt_tokens: int
    worst_completion_tokens: int
    expected_completion_tokens: int
    worst_usd: float
    expected_usd: float
    m1_worst_usd: float
    m1_expected_usd: float
    """Expected USD at M1's list prices with the lengths M1 would write: M1's own logged
    lengths for calls to M1, M1-like lengths (the M1 report's) for calls to any other model."""
    price_ref: str
    observed_from: int
    """Logged calls the expected completion lengths were learned from (0: the prior)."""
    adaptive_rule: str | None = None
    """The stopping rule an adaptive run would use, if one was given."""
    adaptive_share: float | None = None
    """The share of the design an adaptive run is expected to sample (a prior expectation:
    `mmlab.stop.expected_share`); its worst case is the fixed design."""
    by_model: list[dict[str, Any]] = field(default_factory=list)
    """One entry per (endpoint, model) the calls go to: ``model``, ``endpoint``, ``calls``,
    ``expected_usd``, ``worst_usd``, ``price_ref``, ``observed_from``, ``lengths_from``
    (where its expected lengths came from), ``m1_expected_usd`` (M1's prices, M1-like
    lengths) and ``m1_own_lengths_usd`` (M1's prices, this model's lengths) — each model at
    its own price."""
    m1_own_lengths_usd: float = 0.0
    """Expected USD at M1's list prices with the run models' own expected lengths."""
    lengths: list[dict[str, Any]] = field(default_factory=list)
    """One entry per (endpoint, model, ``max_tokens``): ``calls``, ``expected_tokens`` (per
    call), ``method`` (same max_tokens | censored | prior), ``source`` (one line), and
    ``learned_from`` (logged calls)."""

    def table(self) -> pd.DataFrame:
        """`by_model` as a DataFrame (one row per endpoint and model)."""
        import pandas as pd

        return pd.DataFrame(self.by_model)

    @property
    def m1_like(self) -> bool:
        """Whether the M1 line uses M1-like lengths for some calls (they go to other models)."""
        return any(not same_model(M1, g["model"]) for g in self.by_model if g["calls"])

    def _m1_line(self) -> str:
        line = (
            f"at MiniMax M1 list prices: expected ${self.m1_expected_usd:.4f}, worst case "
            f"${self.m1_worst_usd:.4f}"
        )
        if not self.m1_like:
            return line
        others = ", ".join(
            g["model"] for g in self.by_model if g["calls"] and not same_model(M1, g["model"])
        )
        return (
            f"at MiniMax M1 list prices: expected ${self.m1_expected_usd:.4f} with M1-like "
            f"lengths, ${self.m1_own_lengths_usd:.4f} with {others}'s own lengths; worst case "
            f"${self.m1_worst_usd:.4f}\n  {m1_lengths_note()}"
        )

    def _lengths_lines(self) -> str:
        many = len({(g["model"], g["endpoint"]) for g in self.lengths}) > 1
        lines = []
        for g in self.lengths:
            where = f"{g['model']} @ {g['endpoint']}, " if many else ""
            lines.append(
                f"\n  {where}{cap_name(g['max_tokens'])}: ~{g['expected_tokens']:,.0f} tokens a "
                f"call — {g['source']}"
            )
        return "".join(lines)

    def __str__(self) -> str:
        kept = (
            f", {self.errors_kept} failed (kept; retry_errors=True reruns them)"
            if self.errors_kept
            else ""
        )
        return (
            f"{self.cells} cells: {self.hits} cached, {self.to_call} to call{kept}\n"
            f"tokens to send: ~{self.prompt_tokens:,} prompt; completion expected "
            f"~{self.expected_completion_tokens:,}, worst case {self.worst_completion_tokens:,}\n"
            f"cost ({self.price_ref}): expected ${self.expected_usd:.4f}, worst case "
            f"${self.worst_usd:.4f}\n"
            f"{self._m1_line()}\n"
            f"expected lengths (learned from {self.observed_from} logged call(s)):"
            + self._lengths_lines()
            + (
                "".join(
                    f"\n  {g['model']} @ {g['endpoint']}: {g['calls']} calls, expected "
                    f"${g['expected_usd']:.4f}, worst case ${g['worst_usd']:.4f} "
                    f"({g['price_ref']})"
                    for g in self.by_model
                )
                if len(self.by_model) > 1
                else ""
            )
            + (
                f"\nadaptive ({self.adaptive_rule}): expected ~{self.adaptive_share:.0%} of the "
                f"design — ~{self.adaptive_share * self.to_call:,.0f} calls, expected "
                f"${self.adaptive_share * self.expected_usd:.4f} (M1 prices: "
                f"${self.adaptive_share * self.m1_expected_usd:.4f}); worst case the fixed "
                "design above (under a uniform prior on each point's accuracy)"
                if self.adaptive_share is not None
                else ""
            )
        )

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


async def cell_worst_usd(
    engine: Engine, cells: Sequence[Cell], *, bounded: bool = False
) -> dict[int, float]:
    """The most each cell can cost (what its reservation holds), by cell index.

    `bounded` (a budget rule will read these): a cell whose cost cannot be bounded — an
    unpriced model, no cap on its reply — raises `BudgetExceeded` before anything is sent,
    as a `Lab` budget refuses such a call; otherwise it counts 0 here."""
    out: dict[int, float] = {}
    for group in _groups(cells).values():
        call = group[0].call
        free = call.via.capabilities.free
        price = None if free else (await engine.price_for(call.via, call.model))[0]
        if bounded and not free:
            await engine.worst_case_usd(call, bounded=True)  # refuses what cannot be bounded
            for c in group[1:]:
                if not c.call.body.get("max_tokens"):
                    await engine.worst_case_usd(c.call, bounded=True)
        for c in group:
            out[c.index] = 0.0 if price is None else worst_case_usd(price, c.call.body)
    return out


def _groups(cells: Sequence[Cell]) -> dict[tuple[str, str], list[Cell]]:
    """Cells by (endpoint identity, model): each group is priced as its model."""
    out: dict[tuple[str, str], list[Cell]] = {}
    for c in cells:
        out.setdefault((c.call.endpoint, c.call.model), []).append(c)
    return out


async def forecast(
    engine: Engine, cells: int, todo: Sequence[Cell], hits: int, errors_kept: int
) -> Forecast:
    """The forecast of sending `todo` (of `cells` in all, `hits` cached): each call at its
    own model's price, its expected length learned from that model's logged calls (see the
    module docstring), and at M1's list prices with M1's lengths."""
    m1 = EMBEDDED[M1]
    total = Forecast(cells=cells, hits=hits, to_call=len(todo), errors_kept=errors_kept,
                     prompt_tokens=0, worst_completion_tokens=0, expected_completion_tokens=0,
                     worst_usd=0.0, expected_usd=0.0, m1_worst_usd=0.0, m1_expected_usd=0.0,
                     price_ref="", observed_from=0)  # fmt: skip
    groups = _groups(todo) or {(engine.endpoint.identity, engine.model): []}
    for (identity, model), group in groups.items():
        via = group[0].call.via if group else engine.endpoint
        free = via.capabilities.free
        price, table = (None, EMBEDDED) if free else await engine.price_for(via, model)
        observations = await asyncio.to_thread(engine.length_observations, model, identity)
        is_m1 = same_model(M1, model)
        known: dict[tuple[Any, int], Expected] = {}
        per_cap: dict[Any, dict[str, Any]] = {}
        usd = {"expected": 0.0, "worst": 0.0, "m1": 0.0, "m1_own": 0.0}
        for c in group:
            body = c.call.body
            prompt = estimate_prompt_tokens(body["messages"])
            bound = prompt_tokens_bound(body)  # the worst case a budget holds
            cap = completion_cap(body, price)
            asked = body.get("max_tokens")
            guess = known.get((asked, cap))
            if guess is None:
                guess = known[(asked, cap)] = expected_length(observations, model, asked, cap)
            expected = int(math.ceil(guess.tokens))
            entry = per_cap.setdefault(asked, {"guess": guess, "calls": 0})
            entry["calls"] += 1
            total.prompt_tokens += prompt
            total.worst_completion_tokens += cap
            total.expected_completion_tokens += expected
            if price is not None:
                usd["worst"] += price.cost(bound, cap)
                usd["expected"] += price.cost(prompt, expected)
            m1_cap = completion_cap(body, m1)
            m1_tokens = expected if is_m1 else m1_expected_tokens(m1_cap)
            total.m1_worst_usd += m1.cost(bound, m1_cap)
            usd["m1"] += m1.cost(prompt, m1_tokens)
            usd["m1_own"] += m1.cost(prompt, expected)
        learned = {k for e in known.values() for k in e.max_tokens}
        observed_n = sum(o[3] for o in observations if o[0] in learned)
        for asked, entry in per_cap.items():
            g: Expected = entry["guess"]
            total.lengths.append({"model": model, "endpoint": identity, "max_tokens": asked,
                                  "calls": entry["calls"], "expected_tokens": g.tokens,
                                  "method": g.method, "source": g.source,
                                  "learned_from": g.calls})  # fmt: skip
        ref = "local: free" if free else table.source if price else f"no price for {model}"
        total.worst_usd += usd["worst"]
        total.expected_usd += usd["expected"]
        total.m1_expected_usd += usd["m1"]
        total.m1_own_lengths_usd += usd["m1_own"]
        total.observed_from += observed_n
        sources = [e["guess"].source for e in per_cap.values()]
        if len(sources) > 1:
            sources = [f"{cap_name(a)}: {e['guess'].source}" for a, e in per_cap.items()]
        total.by_model.append({"model": model, "endpoint": identity, "calls": len(group),
                               "expected_usd": usd["expected"], "worst_usd": usd["worst"],
                               "price_ref": ref, "observed_from": observed_n,
                               "lengths_from": "; ".join(sources), "m1_expected_usd": usd["m1"],
                               "m1_own_lengths_usd": usd["m1_own"]})  # fmt: skip
    refs = list(dict.fromkeys(g["price_ref"] for g in total.by_model))
    total.price_ref = refs[0] if len(refs) == 1 else "; ".join(refs)
    return total
