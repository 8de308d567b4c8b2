"""What a sweep will cost before it runs: calls, tokens, and expected and worst-case USD.

Each call is priced as its own model at its own endpoint (a sweep may span several).
Expected completion lengths come from logged calls of the same model and ``max_tokens`` once
there are any, else a prior share of ``max_tokens``; the worst case is every call using its
whole completion cap (the same arithmetic the budget reserves, `mmlab.pricing`).
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

if TYPE_CHECKING:
    import pandas as pd

    from ..engine import Engine
    from .cells import Cell

#: Prior share of max_tokens a reasoning model spends, before the log has observations.
#: Reasoning models often run close to their budget (M1's RL responses pass 20K tokens).
PRIOR_COMPLETION_SHARE = 0.6
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
    ``expected_usd``, ``worst_usd``, ``price_ref``, ``observed_from`` — each model at its
    own price."""

    def table(self) -> pd.DataFrame:
        """`by_model` as a DataFrame (one row per endpoint and model)."""
        import pandas as pd

        return pd.DataFrame(self.by_model)

    def __str__(self) -> str:
        basis = (
            f"observed completion lengths of {self.observed_from} logged call(s)"
            if self.observed_from
            else f"a prior of {PRIOR_COMPLETION_SHARE:.0%} of max_tokens (no similar calls yet)"
        )
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
            f"at MiniMax M1 list prices: expected ${self.m1_expected_usd:.4f}, worst case "
            f"${self.m1_worst_usd:.4f}\n"
            f"expected lengths from {basis}"
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
    own model's price, its expected length learned from that model's logged calls."""
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
        observed, observed_n = await asyncio.to_thread(
            engine.observed_lengths, model, identity
        )
        worst_usd = expected_usd = 0.0
        for c in group:
            body = c.call.body
            prompt = estimate_prompt_tokens(body["messages"])
            bound = prompt_tokens_bound(body)  # the worst case a budget holds
            cap = completion_cap(body, price)
            prior = observed.get("any", PRIOR_COMPLETION_SHARE * cap)
            expected = int(math.ceil(min(cap, observed.get(body.get("max_tokens"), prior))))
            total.prompt_tokens += prompt
            total.worst_completion_tokens += cap
            total.expected_completion_tokens += expected
            if price is not None:
                worst_usd += price.cost(bound, cap)
                expected_usd += price.cost(prompt, expected)
            total.m1_worst_usd += m1.cost(bound, cap)
            total.m1_expected_usd += m1.cost(prompt, expected)
        ref = "local: free" if free else table.source if price else f"no price for {model}"
        total.worst_usd += worst_usd
        total.expected_usd += expected_usd
        total.observed_from += observed_n
        total.by_model.append({"model": model, "endpoint": identity, "calls": len(group),
                               "expected_usd": expected_usd, "worst_usd": worst_usd,
                               "price_ref": ref, "observed_from": observed_n})  # fmt: skip
    refs = list(dict.fromkeys(g["price_ref"] for g in total.by_model))
    total.price_ref = refs[0] if len(refs) == 1 else "; ".join(refs)
    return total
