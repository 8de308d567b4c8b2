"""The prompted-thinking template: reasoning on a model that does not reason by itself.

When a request asks for reasoning (a ``reasoning`` field that is not ``effort: none`` or
``enabled: false``), the prompt is the model's own chat template with the assistant turn
prefilled with ``<think>\\n``, and generation runs in two phases on a text-completion route:

1. *Think* until the model stops, writes ``</think>``, or reaches the thinking budget:
   ``reasoning.max_tokens`` if given, else ``effort`` × ``max_tokens`` (OpenRouter's shares:
   high 0.8, medium 0.5, low 0.2), else all of ``max_tokens``. Like M1, which ignores effort,
   thinking may then eat the whole budget and leave an empty, truncated answer.
2. *Answer*: ``</think>`` is written and the answer generated with what is left of
   ``max_tokens``.

The combined text ``<think>…</think>answer`` goes through the client's ordinary ``<think>``
split; ``reasoning_tokens`` are counted with the model's own tokenizer. With ``logprobs`` and
``top_logprobs`` the phases' token confidences are joined in order (the cues mmlab writes —
``</think>``, ``Wait`` — were not generated and have none).

Budget forcing (Muennighoff et al. 2025, "s1: Simple test-time scaling", arXiv 2501.19393)
controls thinking exactly, on this endpoint that can continue a prefilled turn:

- ``reasoning.max_tokens = N`` caps thinking: phase 1 generates at most N tokens, then the
  end of thinking is forced and the answer generated. ``reasoning_tokens`` is the thought
  counted with the model's tokenizer — N when the cap was reached (re-tokenizing a cut text
  can, rarely, merge across the cut and count one fewer).
- ``reasoning.wait = k`` extends it: each time the model ends its thought, the end is
  suppressed and ``\nWait`` appended, up to k times (within the thinking budget). The cues
  are part of ``reasoning`` and of ``reasoning_tokens``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..params import EFFORT_SHARE
from ..wire import Delta, Reply, ThinkSplitter, Usage, split_think

#: What budget forcing appends to a thought the model tried to end (Muennighoff et al. 2025).
WAIT = "\nWait"
#: One completion on the text route: (prompt, max_tokens, stop, relay) → the reply.
Complete = Callable[
    [str, int, "list[str] | str | None", Callable[[Delta], None]], Awaitable[Reply]
]
#: Tokens in a text, by the model's own tokenizer.
Count = Callable[[str], Awaitable[int]]


def wants_reasoning(body: dict[str, Any]) -> bool:
    """Whether the request asks for thinking."""
    r = body.get("reasoning")
    return r is not None and r.get("effort") != "none" and r.get("enabled", True) is not False


def wait_count(body: dict[str, Any]) -> int:
    """How many times budget forcing suppresses the end of thinking (``reasoning.wait``)."""
    return int((body.get("reasoning") or {}).get("wait", 0))


def think_budget(body: dict[str, Any], max_tokens: int) -> int:
    """Tokens phase 1 may spend thinking (see the module docstring)."""
    r = body.get("reasoning") or {}
    if "max_tokens" in r:
        return min(int(r["max_tokens"]), max_tokens)
    if "effort" in r:
        return max(1, int(max_tokens * EFFORT_SHARE[r["effort"]]))
    return max_tokens


async def think_then_answer(
    prompt: str,
    *,
    budget: int,
    max_tokens: int,
    stop: list[str] | str | None,
    stream: bool,
    complete: Complete,
    count: Count,
    on_delta: Callable[[Delta], None] | None,
    wait: int = 0,
) -> Reply:
    """Run the two phases on `prompt` (the rendered chat template, without ``<think>``).

    `wait` > 0 is budget forcing's other half (s1): each time the model ends its thinking,
    the end is suppressed, ``Wait`` is appended to the thought and thinking goes on, up to
    `wait` times and within the thinking budget.
    """
    prompt = prompt + "<think>\n"
    splitter = ThinkSplitter()
    raw: list[str] = []

    def feed(text: str) -> None:
        # The combined text goes through the client's ordinary <think> split.
        raw.append(text)
        if on_delta is not None:
            for delta in splitter.feed(text):
                on_delta(delta)

    def relay(delta: Delta) -> None:
        feed(delta[1])  # a phase's streamed text, whatever its own assembler called it

    started = time.perf_counter()
    feed("<think>\n")
    think = await complete(prompt, budget, ["</think>"], relay)
    series = [think.confidence]  # each phase's token confidences: the cues are not generated
    if not stream:
        feed(think.content)
    thought = think.content
    ttft = think.ttft_s
    for _ in range(wait):
        if think.finish_reason == "length":
            break  # the budget ended the thought, not the model
        spent = await count(thought)
        if spent >= budget:
            break
        # The model closed its thought: suppress the close, append the cue, think on.
        feed(WAIT)
        thought = thought.rstrip() + WAIT
        think = await complete(prompt + thought, budget - spent - await count(WAIT), ["</think>"],
                               relay)  # fmt: skip
        series.append(think.confidence)
        if not stream:
            feed(think.content)
        thought += think.content
    thought_tokens = await count(thought)
    thought = thought.rstrip()
    answer = Reply(finish_reason="length")
    left = max_tokens - thought_tokens
    ran_out = think.finish_reason == "length" and budget >= max_tokens
    if not ran_out and left > 0:
        feed("\n</think>\n\n")
        answer = await complete(f"{prompt}{thought}\n</think>\n\n", left, stop, relay)
        series.append(answer.confidence)
        if not stream:
            feed(answer.content)
    if on_delta is not None:
        for delta in splitter.flush():
            on_delta(delta)
    reasoning, content = split_think("".join(raw))
    answer_tokens = await count(content)
    prompt_tokens = await count(prompt.removesuffix("<think>\n"))
    return Reply(
        content=content,
        reasoning=reasoning,
        finish_reason=answer.finish_reason or "stop",
        native_finish_reason=answer.finish_reason,
        usage=Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=thought_tokens + answer_tokens,
            reasoning_tokens=thought_tokens,
        ),
        usage_reported=True,
        reasoning_mode="prompted",
        ttft_s=ttft if stream else None,
        generation_id=f"local-{int(started * 1e6):x}",
        confidence=None if all(c is None for c in series) else [
            c for part in series for c in part or ()
        ],
    )
