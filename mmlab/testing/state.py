"""What a stand-in knows: its settings, its providers, and what it has seen and billed
(`StandInState`, shared by the handler threads), with the `Provider` and `Seen` records."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mmlab.testing.faults import Fault, FaultRates


@dataclass
class Provider:
    """One upstream provider the stand-in routes a model to: its prices (USD per token), its
    speed (simulated generation time: time to first token, then tokens per second; None:
    instant) and how often it is down (then OpenRouter falls back to the next provider,
    unless ``allow_fallbacks`` is false)."""

    name: str
    prompt_price: float = 0.40 / 1e6
    completion_price: float = 2.20 / 1e6
    ttft_s: float = 0.0
    tokens_per_s: float | None = None
    down: float = 0.0


@dataclass
class Seen:
    """One request the server received."""

    path: str
    body: dict[str, Any]
    authorized: bool
    headers: dict[str, str]
    fault: str | None
    ok: bool = False
    """Answered and billed in full, as the server sees it."""
    usable: bool = False
    """With `ok`: the answer could be read (a malformed reply is billed but unusable)."""
    billed: float = 0.0
    """The share of the reply's cost the key was billed (1.0 for `ok`)."""


@dataclass
class StandInState:
    """Everything the handler threads share (guarded by `lock`)."""

    delay_s: float = 0.0
    think_s: float = 0.0
    keepalives: int = 2
    leak_think: bool = False
    omit_cost: bool = False
    echo_auth: bool = False
    ignore: frozenset[str] = frozenset()
    accuracy: Callable[[dict[str, Any]], float] | None = None
    models_body: Any = None
    generation_404s: int = 1
    providers: dict[str, list[Provider]] = field(default_factory=dict)
    served_as: dict[str, str] = field(default_factory=dict)
    key_usage: float = 0.0
    key_limit: float | None = None
    native_skew: int = 0
    bill_failures: bool = True
    stream_usage: str = "always"
    """``always`` (OpenRouter) or ``when_asked`` (vLLM and other OpenAI-compatible servers:
    a stream carries usage only with ``stream_options.include_usage``)."""
    max_completion_tokens: int | None = 40_000
    """What ``/models`` lists as each model's longest reply (None: not listed)."""
    thinks: int | None = None
    """Reasoning tokens a reply spends when its request sets no ``max_tokens``."""
    logprobs: bool = False
    """Answer ``logprobs`` + ``top_logprobs`` with synthetic log-probabilities (one token per
    word; a wrong answer's tokens less confident than a right one's)."""
    lengths: int | Callable[[dict[str, Any]], int] | None = None
    """Completion tokens every reply runs to before ``max_tokens`` cuts it (a number, or a
    function of the request body); None: the synthetic model's own lengths."""
    response_cache: dict[str, dict[str, Any]] = field(default_factory=dict)
    asked: Counter[str] = field(default_factory=Counter)
    model_prices: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {"minimax/minimax-m1": ("0.0000004", "0.0000022")}
    )
    rates: FaultRates = field(default_factory=FaultRates)
    queue: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    generations: dict[str, dict[str, Any]] = field(default_factory=dict)
    generation_polls: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    serial: int = 0
