"""PromptExplorer: prompt boxes, sampling controls, a Run button, streamed answer and stats."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from ..result import Result
from ._common import CSS, error_html, esc, launch, run_sync, table_html

if TYPE_CHECKING:
    from ..lab import Lab

REASONING_CHOICES: list[tuple[str, dict[str, Any] | None]] = [
    ("off", None),
    ("on", {"enabled": True}),
    ("effort: low", {"effort": "low"}),
    ("effort: medium", {"effort": "medium"}),
    ("effort: high", {"effort": "high"}),
]


class PromptExplorer:
    """Explore one prompt interactively; every run goes through ``lab.achat`` (cached, logged).

    Headless use (tests, scripts): set the controls' ``.value``, then ``run()`` (or
    ``run_button.click()``); read ``last``, ``history`` and the labels' values.
    """

    def __init__(
        self,
        lab: Lab,
        *,
        prompt: str = "",
        system: str = "",
        temperature: float = 1.0,
        top_p: float = 0.95,
        max_tokens: int = 512,
        seed: int = 0,
        reasoning: str = "on",
        stream: bool = True,
    ) -> None:
        self.lab = lab
        wide = W.Layout(width="100%")
        label = {"description_width": "90px"}
        self.system = W.Textarea(
            value=system,
            placeholder="system prompt (optional)",
            description="system",
            layout=W.Layout(width="100%", height="3.5em"),
        )
        self.prompt = W.Textarea(
            value=prompt,
            placeholder="ask something",
            description="user",
            layout=W.Layout(width="100%", height="6em"),
        )
        self.temperature = W.FloatSlider(
            value=temperature,
            min=0.0,
            max=2.0,
            step=0.05,
            description="temperature",
            readout_format=".2f",
            style=label,
        )
        self.top_p = W.FloatSlider(
            value=top_p,
            min=0.05,
            max=1.0,
            step=0.05,
            description="top_p",
            readout_format=".2f",
            style=label,
        )
        self.max_tokens = W.BoundedIntText(
            value=max_tokens, min=1, max=1_000_000, description="max_tokens", style=label
        )
        self.seed = W.IntText(value=seed, description="seed", style=label)
        self.reasoning = W.Dropdown(
            options=[name for name, _ in REASONING_CHOICES],
            value=reasoning,
            description="reasoning",
            style=label,
        )
        self.stream = W.Checkbox(value=stream, description="stream", indent=False)
        self.follow_up = W.Checkbox(
            value=False,
            description="follow up",
            indent=False,
            tooltip="send the prompt as the next turn of the last conversation (the model's "
            "reasoning blocks are handed back, as M1 expects)",
        )
        self.turns: list[dict[str, Any]] = []
        """The conversation so far (user turns and the model's, reasoning blocks kept)."""
        self.run_button = W.Button(
            description="Run",
            button_style="primary",
            icon="play",
            tooltip="send the prompt (cached calls are free)",
        )
        self.answer = W.HTML(self._answer_html(""))
        self.reasoning_text = W.HTML("")
        self.reasoning_pane = W.Accordion(
            children=[self.reasoning_text], titles=("reasoning",), selected_index=None
        )
        self.token_bar = W.HTML("")
        self.stats = W.HTML('<span class="mmlab-box mmlab-stats">cost — · latency —</span>')
        self.error = W.HTML("")
        self.history_table = W.HTML("")
        self.recall = W.Dropdown(
            options=[("—", None)], value=None, description="recall", layout=W.Layout(width="320px")
        )
        self.last: Result | None = None
        self.history: list[dict[str, Any]] = []
        self.running = False
        self._answer_parts: list[str] = []
        self._reasoning_parts: list[str] = []
        self.run_button.on_click(self._on_click)
        self.recall.observe(self._on_recall, names="value")
        controls = W.HBox(
            [
                W.VBox([self.temperature, self.top_p]),
                W.VBox([self.max_tokens, self.seed]),
                W.VBox([self.reasoning, W.HBox([self.stream, self.follow_up]),
                        self.run_button]),  # fmt: skip
            ]
        )
        self.widget = W.VBox(
            [
                W.HTML(
                    CSS + f'<b class="mmlab-box">PromptExplorer</b> <span class="mmlab-box">'
                    f"· {esc(lab.endpoint.label)} · model {esc(lab.model)}</span>"
                ),
                self.system,
                self.prompt,
                controls,
                self.error,
                self.answer,
                self.reasoning_pane,
                self.token_bar,
                self.stats,
                W.HBox([self.recall]),
                self.history_table,
            ],
            layout=wide,
        )

    # --- display ------------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    @staticmethod
    def _answer_html(text: str) -> str:
        return f'<div class="mmlab-answer mmlab-box">{esc(text)}</div>'

    def params(self) -> dict[str, Any]:
        """The request the controls describe (what ``lab.chat`` receives)."""
        reasoning = dict(REASONING_CHOICES)[self.reasoning.value]
        out: dict[str, Any] = {
            "temperature": self.temperature.value,
            "top_p": self.top_p.value,
            "max_tokens": self.max_tokens.value,
            "seed": self.seed.value,
        }
        if reasoning is not None:
            out["reasoning"] = reasoning
        return out

    # --- running ------------------------------------------------------------------------------
    def run(self) -> Result | None:
        """Send the prompt now and wait (scripts, tests, notebook cells)."""
        return run_sync(self.arun())

    def _on_click(self, _button: Any) -> None:
        if not self.running:
            launch(self.arun)

    async def arun(self) -> Result | None:
        """Send the prompt; stream into the answer pane; update stats and history."""
        if self.running:
            return None
        self.running = True
        self.run_button.disabled = True
        self.run_button.description = "Running…"
        self.error.value = ""
        self._answer_parts, self._reasoning_parts = [], []
        self.answer.value = self._answer_html("…")
        self.reasoning_text.value = ""
        started = time.perf_counter()
        result: Result | None = None
        try:
            earlier = self.turns if self.follow_up.value else []
            messages = [*earlier, {"role": "user", "content": self.prompt.value}]
            result = await self.lab.achat(
                messages,
                system=self.system.value or None,
                stream=self.stream.value,
                on_delta=self._on_delta,
                **self.params(),
            )
        except asyncio.CancelledError:
            self.error.value = error_html(RuntimeError("cancelled"))
            raise
        except Exception as exc:  # noqa: BLE001 - shown to the user, not re-raised
            self.error.value = error_html(exc)
            self.answer.value = self._answer_html("")
        else:
            # the next follow-up continues from here, with the model's reasoning blocks
            self.turns = [*messages, result.message()]
            self._show(result)
            self._remember(result, time.perf_counter() - started)
        finally:
            self.running = False
            self.run_button.disabled = False
            self.run_button.description = "Run"
        self.last = result
        return result

    def _on_delta(self, delta: tuple[str, str]) -> None:
        kind, text = delta
        if kind == "reset":  # a retried stream starts over
            self._answer_parts, self._reasoning_parts = [], []
        elif kind == "reasoning":
            self._reasoning_parts.append(text)
            self.reasoning_text.value = (
                f'<div class="mmlab-reasoning">{esc("".join(self._reasoning_parts))}</div>'
            )
        else:
            self._answer_parts.append(text)
            self.answer.value = self._answer_html("".join(self._answer_parts))

    def _show(self, r: Result) -> None:
        self.answer.value = self._answer_html(
            r.content
            if r.content.strip()
            else f"(no answer: stopped by {r.finish_reason}"
            + (", thinking used the whole budget)" if r.truncated else ")")
        )
        self.reasoning_text.value = f'<div class="mmlab-reasoning">{esc(r.reasoning)}</div>'
        u = r.usage
        total = max(u.prompt_tokens + u.completion_tokens, 1)
        segments = [
            (u.prompt_tokens, "#95a5a6", "prompt"),
            (u.reasoning_tokens, "#dc7633", "reasoning"),
            (u.answer_tokens, "#3366cc", "answer"),
        ]
        bar = "".join(
            f'<div title="{name}: {n} tokens" style="width:{100 * n / total:.2f}%;'
            f'background:{color}"></div>'
            for n, color, name in segments
            if n
        )
        self.token_bar.value = (
            f'<div class="mmlab-box">tokens: prompt {u.prompt_tokens} · reasoning '
            f"{u.reasoning_tokens} · answer {u.answer_tokens}</div>"
            f'<div class="mmlab-bar">{bar}</div>'
        )
        cost = "?" if r.cost_usd is None else f"${r.cost_usd:.6f}"
        badge = (
            '<span class="mmlab-badge mmlab-hit">cache hit · free</span>'
            if r.cache_hit
            else '<span class="mmlab-badge mmlab-miss">live call</span>'
        )
        ttft = f" · first token {r.ttft_s:.2f} s" if r.ttft_s is not None else ""
        latency = "—" if r.latency_s is None else f"{r.latency_s:.2f} s"
        turn = len(self.turns) // 2
        turns = f" · turn {turn} of a conversation" if turn > 1 else ""
        self.stats.value = (
            f'<span class="mmlab-box mmlab-stats">cost {cost} ({esc(r.cost_source)}) · '
            f"latency {latency}{ttft} · finish {esc(r.finish_reason)}{turns}{badge}</span>"
        )

    def _remember(self, r: Result, seconds: float) -> None:
        entry = {
            "run": len(self.history) + 1,
            "prompt": self.prompt.value,
            "system": self.system.value,
            "reasoning": self.reasoning.value,
            "params": self.params(),
            "result": r,
            "seconds": seconds,
        }
        self.history.append(entry)
        rows = [
            {
                "#": e["run"],
                "prompt": e["prompt"][:40],
                "temperature": e["params"]["temperature"],
                "max_tokens": e["params"]["max_tokens"],
                "reasoning": e["reasoning"],
                "tokens": e["result"].usage.completion_tokens,
                "cost": "?" if e["result"].cost_usd is None else f"${e['result'].cost_usd:.6f}",
                "hit": "yes" if e["result"].cache_hit else "no",
            }
            for e in self.history
        ]
        self.history_table.value = table_html(
            rows[::-1],
            ["#", "prompt", "temperature", "max_tokens", "reasoning", "tokens", "cost", "hit"],
        )
        options = [("—", None)] + [
            (f"#{e['run']}: {e['prompt'][:30]}", e["run"]) for e in self.history
        ]
        self.recall.unobserve(self._on_recall, names="value")
        self.recall.options = options
        self.recall.value = None
        self.recall.observe(self._on_recall, names="value")

    def _on_recall(self, change: dict[str, Any]) -> None:
        if change["new"] is None:
            return
        self.recall_run(change["new"])

    def recall_run(self, number: int) -> None:
        """Put run `number`'s prompt and parameters back in the controls and show its result."""
        entry = self.history[number - 1]
        self.prompt.value, self.system.value = entry["prompt"], entry["system"]
        p = entry["params"]
        self.temperature.value, self.top_p.value = p["temperature"], p["top_p"]
        self.max_tokens.value, self.seed.value = p["max_tokens"], p["seed"]
        self.reasoning.value = entry["reasoning"]
        self.last = entry["result"]
        self._show(entry["result"])
