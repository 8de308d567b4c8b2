"""What a sweep will cost before it runs: calls, tokens, and expected and worst-case USD.

Expected completion lengths come from logged calls of the same model and ``max_tokens`` once
there are any, else a prior share of ``max_tokens``; the worst case is every call using its
whole completion cap (the same arithmetic the budget reserves, `mmlab.pricing`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..pricing import EMBEDDED, completion_cap, estimate_prompt_tokens, prompt_tokens_bound

if TYPE_CHECKING:
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
        )

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


async def forecast(
    engine: Engine, cells: int, todo: Sequence[Cell], hits: int, errors_kept: int
) -> Forecast:
    """The forecast of sending `todo` (of `cells` in all, `hits` cached)."""
    free = engine.endpoint.capabilities.free
    table = await engine.aprices()
    price = table.get(engine.model)
    m1 = EMBEDDED[M1]
    observed, observed_n = await asyncio.to_thread(
        engine.store.observed_lengths, engine.model, engine.endpoint.identity
    )
    prompt_total = worst_total = expected_total = 0
    worst_usd = expected_usd = m1_worst = m1_expected = 0.0
    for c in todo:
        body = c.call.body
        prompt = estimate_prompt_tokens(body["messages"])
        bound = prompt_tokens_bound(body["messages"])  # the worst case is what a budget holds
        cap = completion_cap(body, price)
        prior = observed.get("any", PRIOR_COMPLETION_SHARE * cap)
        expected = int(math.ceil(min(cap, observed.get(body.get("max_tokens"), prior))))
        prompt_total += prompt
        worst_total += cap
        expected_total += expected
        if price is not None and not free:
            worst_usd += price.cost(bound, cap)
            expected_usd += price.cost(prompt, expected)
        m1_worst += m1.cost(bound, cap)
        m1_expected += m1.cost(prompt, expected)
    if free:
        ref = "local: free"
    else:
        ref = table.source if price else f"no price for {engine.model}"
    return Forecast(
        cells=cells,
        hits=hits,
        to_call=len(todo),
        errors_kept=errors_kept,
        prompt_tokens=prompt_total,
        worst_completion_tokens=worst_total,
        expected_completion_tokens=expected_total,
        worst_usd=worst_usd,
        expected_usd=expected_usd,
        m1_worst_usd=m1_worst,
        m1_expected_usd=m1_expected,
        price_ref=ref,
        observed_from=observed_n,
    )
