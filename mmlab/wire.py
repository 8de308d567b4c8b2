"""The wire format: message validation and body building, response and SSE parsing, the
`<think>` split.

Pure functions and small state machines, no I/O, so the same code serves the sync and async
faces, the stand-in test server and the benchmarks. Field names follow OpenRouter's
OpenAI-compatible chat API (https://openrouter.ai/docs/api-reference/overview); request
parameters are declared in `mmlab.params`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import jsonfast
from .confidence import MAX_TOKENS, checked_tops, token_confidences
from .errors import APIError, RequestError, classify_status
from .redaction import redact, redact_secrets

ROLES = ("system", "user", "assistant", "tool")
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def check_messages(
    prompt: str | list[Mapping[str, Any]], system: str | None = None
) -> list[dict[str, Any]]:
    """Turn a prompt string or a messages list into validated chat messages."""
    if system is None and isinstance(prompt, str):
        # the common case, taken on every call (cache hits included) without the general walk
        if not prompt.strip():
            raise RequestError("messages must contain some non-blank content", field="messages")
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, str):
        messages: list[Any] = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, list | tuple):
        messages = list(prompt)
    else:
        raise RequestError(
            f"prompt must be a string or a list of {{role, content}} messages; got "
            f"{type(prompt).__name__}",
            field="messages",
        )
    if system is not None:
        if not isinstance(system, str):
            raise RequestError("system must be a string", field="system")
        messages = [{"role": "system", "content": system}, *messages]
    if not messages:
        raise RequestError("messages must not be empty", field="messages")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise RequestError(f"{where} must be a dict with role and content", field=where)
        extra = set(message) - {"role", "content", "name", "reasoning", "reasoning_details"}
        if extra:
            raise RequestError(
                f"{where} has unknown field(s) {sorted(extra)}; allowed: role, content, name, "
                "reasoning, reasoning_details",
                field=where,
            )
        role = message.get("role")
        if role not in ROLES:
            raise RequestError(
                f"{where}.role must be one of {', '.join(ROLES)}; got {role!r}", f"{where}.role"
            )
        content = message.get("content")
        if not isinstance(content, str):
            raise RequestError(
                f"{where}.content must be a string; got {type(content).__name__}",
                field=f"{where}.content",
            )
        clean: dict[str, Any] = {"role": role, "content": content}
        for opt in ("name", "reasoning"):
            if opt in message:
                if not isinstance(message[opt], str):
                    raise RequestError(f"{where}.{opt} must be a string", f"{where}.{opt}")
                clean[opt] = message[opt]
        if "reasoning_details" in message:
            # a prior assistant turn's reasoning blocks, handed back unchanged (`Result.message`)
            details = message["reasoning_details"]
            if role != "assistant" or not isinstance(details, list) or not all(
                isinstance(d, Mapping) and isinstance(d.get("type"), str) for d in details
            ):
                raise RequestError(
                    f"{where}.reasoning_details must be a list of {{type, ...}} objects on an "
                    "assistant turn",
                    f"{where}.reasoning_details",
                )
            clean["reasoning_details"] = [dict(d) for d in details]
        out.append(clean)
    if not any(m["content"].strip() for m in out):
        raise RequestError("messages must contain some non-blank content", field="messages")
    return out


def build_body(
    model: str, messages: list[dict[str, Any]], params: Mapping[str, Any]
) -> dict[str, Any]:
    """The wire body, in a fixed field order (OpenRouter's own cache hashes key order)."""
    if not isinstance(model, str) or not model.strip():
        raise RequestError(f"model must be a non-empty string; got {model!r}", field="model")
    return {"model": model, "messages": messages, **params}


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(obj: Any) -> str:
    """Sorted-key, compact JSON: the one spelling of a value used for hashing (the
    standard library's; through orjson when that is provably the same text)."""
    return jsonfast.canonical(obj) or _CANONICAL.encode(obj)


# --- results ---------------------------------------------------------------------------------
def is_truncated(finish_reason: str | None, content: str | None) -> bool:
    """Stopped by the token limit with an empty answer: thinking ate the whole budget."""
    return finish_reason == "length" and not (content or "").strip()


@dataclass(slots=True)
class Usage:
    """Token counts of one call. `reasoning_tokens` are *inside* `completion_tokens`."""

    prompt_tokens: int = 0
    """Tokens in the prompt, by the model's own tokenizer."""
    completion_tokens: int = 0
    """Tokens generated, reasoning included."""
    reasoning_tokens: int = 0
    """Generated tokens spent thinking (a part of `completion_tokens`, never extra)."""
    cached_tokens: int = 0
    """Prompt tokens read from the provider's prompt cache (a part of `prompt_tokens`)."""

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def answer_tokens(self) -> int:
        """Generated tokens that are not reasoning."""
        return max(self.completion_tokens - self.reasoning_tokens, 0)


@dataclass
class Reply:
    """What an endpoint returned for one request, before cost, cache and log are applied."""

    content: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    provider: str | None = None
    model: str | None = None
    generation_id: str | None = None
    usage: Usage = field(default_factory=Usage)
    billed_cost_usd: float | None = None
    usage_reported: bool = False
    """The reply reported readable token counts (`usage_readable`); without them a priced
    reply's cost is unknown."""
    reasoning_mode: str = "none"
    ttft_s: float | None = None
    reasoning_details: list[Any] | None = None
    """The provider's structured reasoning blocks (text, summaries, encrypted), kept so a
    next turn can hand them back (M1 and others continue a thought from them)."""
    notice: str | None = None
    """What the endpoint said besides the answer (MiniMax's "Token limit reached" chunk)."""
    cache_status: str | None = None
    """OpenRouter's ``X-OpenRouter-Cache-Status`` response header (HIT | MISS), if sent."""
    confidence: list[float] | None = None
    """Each generated token's confidence (`mmlab.confidence`), when the reply carried readable
    ``top_logprobs``; None otherwise (not asked, not given, or malformed: never an error)."""


def scrub_reply(reply: Reply) -> Reply:
    """Remove every secret mmlab knows from every string of `reply`, in place, before it is
    stored, logged or shown: a server that echoes the key (in its provider name, model id,
    generation id, answer or reasoning) must not get it into the cache, the log or a
    bundle. Labels also lose anything key-shaped; a model's own text only loses registered
    secrets (an answer may honestly mention ``sk-...``-like words)."""
    for name in ("provider", "model", "generation_id", "finish_reason",
                 "native_finish_reason", "notice"):  # fmt: skip
        value = getattr(reply, name)
        if value:
            setattr(reply, name, redact(value))
    reply.content = redact_secrets(reply.content)
    reply.reasoning = redact_secrets(reply.reasoning)
    if reply.reasoning_details:
        dumped = json.dumps(reply.reasoning_details)
        clean = redact_secrets(dumped)
        if clean != dumped:
            reply.reasoning_details = json.loads(clean)
    return reply


#: The largest count or cost a server reply may report: 2**53, the last integer a double
#: holds exactly (far above any real figure, inside SQLite's INTEGER range); anything beyond
#: is nonsense from an untrusted reply, read as not reported.
MAX_COUNT = 2**53


def reported_number(x: Any, *, signed: bool = False) -> float | None:
    """A number from an untrusted reply or record: finite, at most `MAX_COUNT` in size and,
    unless `signed`, >= 0 — else None (not reported). A server's negative cost would raise a
    budget's headroom, an infinite one end every later call, NaN or 1e400 lose the row."""
    if isinstance(x, bool) or not isinstance(x, int | float) or abs(x) > MAX_COUNT:
        return None
    f = float(x)
    return f if math.isfinite(f) and (signed or f >= 0) else None


def _num(x: Any) -> int:
    """A token count from a reply (`reported_number`), 0 when not reported."""
    v = reported_number(x)
    return int(v) if v is not None else 0


def _details(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key)
    return value if isinstance(value, Mapping) else {}


def parse_usage(raw: Mapping[str, Any] | None) -> tuple[Usage, float | None]:
    """Read a usage object: token counts and the billed `cost` (USD) if present.

    OpenRouter's spelling first; cached prompt tokens also where other servers put them
    (``usage.cached_tokens``: Together; ``prompt_cache_hit_tokens``: DeepSeek). Counts that
    cannot be read are 0 here; `usage_readable` says whether the counts a price needs were
    there at all.
    """
    if not isinstance(raw, Mapping) or not raw:
        return Usage(), None
    cached = _details(raw, "prompt_tokens_details").get("cached_tokens")
    for alias in ("cached_tokens", "prompt_cache_hit_tokens"):
        if cached is None:
            cached = raw.get(alias)
    usage = Usage(
        prompt_tokens=_num(raw.get("prompt_tokens")),
        completion_tokens=_num(raw.get("completion_tokens")),
        reasoning_tokens=_num(_details(raw, "completion_tokens_details").get("reasoning_tokens")),
        cached_tokens=_num(cached),
    )
    return usage, reported_number(raw.get("cost"))


def usage_readable(raw: Any) -> bool:
    """Whether a usage object reports the counts a price needs — prompt and completion
    tokens as whole numbers >= 0. Missing, text ("12"), negative or fractional counts are
    unreadable: such a reply's cost is unknown (charged at its worst case), never free."""
    if not isinstance(raw, Mapping):
        return False
    for name in ("prompt_tokens", "completion_tokens"):
        v = reported_number(raw.get(name))
        if v is None or v != int(v):
            return False
    return True


#: The longest label (provider, model, generation id) kept from a reply.
MAX_LABEL = 256


def label(x: Any) -> str | None:
    """A short text field of a reply (provider, model, id, finish reason): a string, cut to
    `MAX_LABEL`; anything else (an object, a number) is not a label and is dropped. Replies
    are untrusted: a field of the wrong type must never reach the log's columns."""
    return x[:MAX_LABEL] if isinstance(x, str) and x else None


def text_of(x: Any, where: str) -> str:
    """A reply's text (answer or reasoning): a string, nothing (""), or a list of content
    parts (``[{"type": "text", "text": ...}]``, as some servers send) joined; anything else
    is a malformed reply (`ValueError` naming `where`)."""
    if x is None:
        return ""
    if isinstance(x, str):
        return x
    if isinstance(x, list) and all(isinstance(p, Mapping) for p in x):
        texts = [p.get("text") for p in x if p.get("type", "text") in ("text", "output_text")]
        if all(isinstance(t, str) for t in texts):
            return "".join(texts)
    raise ValueError(f"{where} is neither text nor a list of text parts ({type(x).__name__})")


def choice_texts(choice: Mapping[str, Any], key: str) -> tuple[Mapping[str, Any], str, str]:
    """A choice's `key` part (``message`` of a reply, ``delta`` of a stream chunk), its
    content and its reasoning (``reasoning``, else ``reasoning_content``), each read as text.
    A text-completion choice (the embedded model's thinking route) has ``text`` instead: its
    content. ValueError naming the field when the part or a text is not what it must be."""
    part = choice.get(key)
    if part is None:
        part = {"content": choice.get("text")}
    if not isinstance(part, Mapping):
        raise ValueError(f"{key} is a {type(part).__name__}, not an object")
    reasoning = text_of(part.get("reasoning"), f"{key}.reasoning") or text_of(
        part.get("reasoning_content"), f"{key}.reasoning_content"
    )
    return part, text_of(part.get("content"), f"{key}.content"), reasoning

def usage_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A response's (or chunk's) usage object, wherever the server put it: ``usage``, else
    Groq's ``x_groq.usage``."""
    usage = obj.get("usage")
    if isinstance(usage, Mapping) and usage:
        return usage
    extra = obj.get("x_groq")
    if isinstance(extra, Mapping) and isinstance(extra.get("usage"), Mapping):
        return extra["usage"]
    return None


#: The longest upstream reason quoted in an error message.
MAX_REASON = 400


def upstream_reason(metadata: Mapping[str, Any]) -> str | None:
    """What the upstream provider said, from OpenRouter's ``error.metadata.raw`` (a string,
    often itself a JSON error body, or an object)."""
    raw = metadata.get("raw")
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
            return raw.strip()[:MAX_REASON]
    if isinstance(raw, Mapping):
        inner = raw.get("error", raw)
        if isinstance(inner, Mapping) and inner.get("message"):
            return str(inner["message"]).strip()[:MAX_REASON]
        if isinstance(inner, str):
            return inner.strip()[:MAX_REASON]
    return json.dumps(raw)[:MAX_REASON]


def error_from_body(err: Any, status: int, *, mid_stream: bool = False) -> APIError:
    """Build an `APIError` from an OpenRouter error object ``{code, message, metadata}``."""
    if not isinstance(err, Mapping):
        err = {"message": str(err)}
    code = err.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else status
    metadata = err.get("metadata") if isinstance(err.get("metadata"), Mapping) else {}
    availability = err.get("availability") if isinstance(err.get("availability"), Mapping) else {}
    retry_after = availability.get("retry_after")
    kind, retryable = classify_status(code)
    if isinstance(availability.get("retryable"), bool):
        retryable = availability["retryable"]
    error_type = metadata.get("error_type") or availability.get("code") or kind
    message = str(err.get("message") or "no message")
    # "Provider returned error" says nothing: the reason is in the metadata
    reason = upstream_reason(metadata)
    provider = metadata.get("provider_name")
    if reason and reason not in message:
        message = f"{message}: {reason}"
    if isinstance(provider, str) and provider:
        message = f"{message} (provider: {provider})"
    return APIError(
        message,
        status=code,
        error_type=str(error_type),
        retryable=retryable,
        retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
        mid_stream=mid_stream,
    )


def split_think(content: str) -> tuple[str, str]:
    """Split a leading ``<think>…</think>`` block out of `content`: (reasoning, answer).

    Some OpenAI-compatible servers leak the model's raw thinking into `content`. An unclosed
    ``<think>`` (the budget ran out mid-thought) is all reasoning and no answer.
    """
    stripped = content.lstrip()
    if not stripped.startswith(THINK_OPEN):
        return "", content
    body = stripped[len(THINK_OPEN) :]
    end = body.find(THINK_CLOSE)
    if end < 0:
        return body.strip(), ""
    return body[:end].strip(), body[end + len(THINK_CLOSE) :].lstrip()


def parse_completion(body: Any) -> Reply:
    """Parse a non-streamed chat completion. Raises `APIError` for error bodies."""
    if not isinstance(body, Mapping):
        raise APIError(
            "the endpoint returned a non-object JSON body",
            status=200,
            error_type="bad_response",
            retryable=True,
        )
    choices = body.get("choices")
    if body.get("error") is not None and not choices:
        raise error_from_body(body["error"], 200)
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], Mapping):
        raise APIError(
            "the endpoint returned no choices",
            status=200,
            error_type="bad_response",
            retryable=True,
        )
    choice = choices[0]
    raw_usage = usage_of(body)
    usage, billed = parse_usage(raw_usage)
    gen_id = label(body.get("id"))
    if choice.get("error") is not None:
        exc = error_from_body(choice["error"], 200, mid_stream=True)
        exc.billed_usd, exc.generation_id = billed, gen_id
        exc.billable = exc.billable or billed is not None
        raise exc
    _check_finish(choice, billed, gen_id)
    try:
        message, content, reasoning = choice_texts(choice, "message")
    except ValueError as err:
        # read as far as its cost: the server may have billed what it could not say
        raise malformed(str(err), billed, gen_id) from None
    mode = "native" if reasoning else "none"
    if not reasoning:
        reasoning, content = split_think(content)
        mode = "leaked" if reasoning else "none"
    details = message.get("reasoning_details")
    details = list(details) if isinstance(details, list) and details else None
    return Reply(
        content=content,
        reasoning=reasoning,
        finish_reason=label(choice.get("finish_reason")),
        native_finish_reason=label(choice.get("native_finish_reason")),
        provider=label(body.get("provider")),
        model=label(body.get("model")),
        generation_id=gen_id,
        usage=usage,
        billed_cost_usd=billed,
        usage_reported=usage_readable(raw_usage),
        reasoning_mode=_mode(mode, reasoning, usage, details),
        reasoning_details=details,
        confidence=confidence_of(choice.get("logprobs")),
    )


def malformed(why: str, billed: float | None = None, generation_id: str | None = None) -> APIError:
    """The error for a 200 reply mmlab cannot read (a string where an object belongs, a
    number for an answer): retryable, and billable — the server answered, so it may have
    charged; its reported cost, when there is one, is kept."""
    return APIError(
        f"the endpoint returned a malformed reply: {why}",
        status=200,
        error_type="bad_response",
        retryable=True,
        billed_usd=billed,
        billable=True,
        generation_id=generation_id,
    )


def _check_finish(
    choice: Mapping[str, Any], billed: float | None = None, generation_id: str | None = None
) -> None:
    """A generation that ended in error is an error, whatever ``finish_reason`` claims:
    providers report it in ``native_finish_reason`` under a harmless normalised one. It was
    generated, so it may have been billed."""
    finish, native = label(choice.get("finish_reason")), label(choice.get("native_finish_reason"))
    if finish == "error" or native == "error":
        raise APIError(
            f"generation ended in error (finish_reason {finish!r}, native {native!r})",
            status=200,
            error_type="provider_error",
            retryable=True,
            mid_stream=True,
            billed_usd=billed,
            billable=True,
            generation_id=generation_id,
        )


def _mode(mode: str, reasoning: str, usage: Usage, details: list[Any] | None) -> str:
    """``encrypted`` when the model reasoned but returned no readable text of it (reasoning
    tokens billed, or encrypted reasoning blocks): never report that as no reasoning."""
    if reasoning:
        return mode
    encrypted = any(
        isinstance(d, Mapping) and d.get("type") == "reasoning.encrypted" for d in details or ()
    )
    return "encrypted" if encrypted or usage.reasoning_tokens > 0 else mode


# --- log-probabilities ---------------------------------------------------------------------
def logprob_tops(logprobs: Any) -> list[list[float]] | None:
    """The candidates' log-probabilities for each generated token of a choice's ``logprobs``:
    the chat form (``content[*].top_logprobs[*].logprob``: OpenAI, OpenRouter; streamed, one
    part per chunk) or the text-completion form (``top_logprobs[*]`` as ``{token: logprob}``:
    llama.cpp's completion route). None when there are none; ValueError when any is
    unreadable (`mmlab.confidence.checked_tops`): the caller drops the confidence, never the
    answer."""
    if not isinstance(logprobs, Mapping):
        return None
    content = logprobs.get("content")
    if isinstance(content, list):
        tops = [e.get("top_logprobs") if isinstance(e, Mapping) else False for e in content]
        rows = [[t.get("logprob") if isinstance(t, Mapping) else None for t in top]
                if isinstance(top, list) else top for top in tops]  # fmt: skip
    elif isinstance(logprobs.get("top_logprobs"), list):
        rows = [list(d.values()) if isinstance(d, Mapping) else (None if d is None else False)
                for d in logprobs["top_logprobs"]]  # fmt: skip
    else:
        return None
    return checked_tops(rows)


def confidence_of(logprobs: Any) -> list[float] | None:
    """The token confidences of a non-streamed choice's ``logprobs`` (`logprob_tops`), None
    when there are none or they are malformed."""
    try:
        tops = logprob_tops(logprobs)
    except ValueError:
        return None
    return token_confidences(tops) if tops else None


# --- streaming --------------------------------------------------------------------------------
class ThinkSplitter:
    """Routes streamed content deltas inside a leading ``<think>`` block to reasoning.

    Tags may arrive split across deltas, so a possible partial tag is held back until the
    next delta decides it.
    """

    def __init__(self) -> None:
        self.state = "start"  # start → (think → answer) | answer
        self.pending = ""

    def feed(self, text: str) -> list[tuple[str, str]]:
        """Feed a content delta; return ``[(kind, text)]`` with kind reasoning|content."""
        self.pending += text
        out: list[tuple[str, str]] = []
        if self.state == "start":
            stripped = self.pending.lstrip()
            if stripped.startswith(THINK_OPEN):
                self.pending = stripped[len(THINK_OPEN) :]
                self.state = "think"
            elif THINK_OPEN.startswith(stripped):
                return out  # still undecided: "", "<", "<th", ...
            else:
                self.state = "answer"
        if self.state == "think":
            end = self.pending.find(THINK_CLOSE)
            if end >= 0:
                out.append(("reasoning", self.pending[:end]))
                self.pending = self.pending[end + len(THINK_CLOSE) :].lstrip()
                self.state = "answer"
            else:
                keep = _partial_suffix(self.pending, THINK_CLOSE)
                emit = self.pending[: len(self.pending) - keep]
                self.pending = self.pending[len(self.pending) - keep :]
                if emit:
                    out.append(("reasoning", emit))
                return out
        if self.state == "answer" and self.pending:
            out.append(("content", self.pending))
            self.pending = ""
        return out

    def flush(self) -> list[tuple[str, str]]:
        """End of stream: whatever is held back belongs to the current state."""
        rest, self.pending = self.pending, ""
        if not rest:
            return []
        return [("reasoning" if self.state == "think" else "content", rest)]


def _partial_suffix(text: str, tag: str) -> int:
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


#: A streamed delta handed to ``on_delta`` callbacks: ("reasoning" | "content", text).
Delta = tuple[str, str]


class StreamAssembler:
    """Builds a `Reply` from SSE lines, as OpenRouter documents them.

    Comment lines (``: OPENROUTER PROCESSING``) are skipped; usage is taken from the final
    ``choices: []`` chunk, which arrives *after* the chunk carrying ``finish_reason``; a
    top-level ``error`` in a chunk is a mid-stream error.
    """

    def __init__(
        self, on_delta: Callable[[Delta], None] | None, clock: Callable[[], float], started: float
    ) -> None:
        self.reply = Reply()
        self.on_delta = on_delta
        self.clock = clock
        self.started = started
        self.splitter = ThinkSplitter()
        self.native_reasoning = False
        self.done = False
        self._data: list[str] = []
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._details: list[Any] = []
        self._tops: list[list[float]] | None = []  # None: a chunk's logprobs were unreadable

    def feed_line(self, line: str) -> None:
        """Feed one line of the event stream (without its newline)."""
        if line == "":
            self._dispatch()
        elif line.startswith(":"):
            return  # SSE comment: a keep-alive, never JSON
        elif line.startswith("data:"):
            self._data.append(line[5:].lstrip(" "))
        # other SSE fields (event:, id:, retry:) carry nothing for chat completions

    def _dispatch(self) -> None:
        if not self._data:
            return
        data, self._data = "\n".join(self._data), []
        if data == "[DONE]":
            self.done = True
            return
        if data.startswith(":"):
            return  # a proxy re-wrapped a keep-alive comment as data (mnfst/llm-gateway#2053)
        try:
            chunk = json.loads(data)
        except ValueError:
            raise APIError(
                f"unparseable stream event: {data[:80]!r}",
                status=200,
                error_type="bad_response",
                retryable=True,
            ) from None
        self._chunk(chunk)

    def _emit(self, kind: str, text: str) -> None:
        if not text:
            return
        if self.reply.ttft_s is None:
            self.reply.ttft_s = self.clock() - self.started
        (self._reasoning if kind == "reasoning" else self._content).append(text)
        if self.on_delta is not None:
            self.on_delta((kind, text))

    def _chunk(self, chunk: Any) -> None:
        if not isinstance(chunk, Mapping):
            return
        reply = self.reply
        reply.generation_id = reply.generation_id or label(chunk.get("id"))
        reply.provider = reply.provider or label(chunk.get("provider"))
        reply.model = reply.model or label(chunk.get("model"))
        raw_usage = usage_of(chunk)
        if raw_usage is not None:
            reply.usage, reply.billed_cost_usd = parse_usage(raw_usage)
            reply.usage_reported = usage_readable(raw_usage)
        if chunk.get("error") is not None:
            if not self._token_limit(chunk["error"], raw_usage):
                exc = error_from_body(chunk["error"], 200, mid_stream=True)
                # an error chunk may say what the failed stream cost: that is money spent
                exc.billed_usd = reply.billed_cost_usd if raw_usage is not None else None
                raise exc
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, Mapping):
                continue
            try:
                delta, text, reasoning = choice_texts(choice, "delta")
            except ValueError as err:
                raise malformed(str(err), reply.billed_cost_usd, reply.generation_id) from None
            details = delta.get("reasoning_details")
            if isinstance(details, list) and details:
                self._details.extend(details)
            self._logprobs(choice.get("logprobs"))
            if reasoning:
                self.native_reasoning = True
                self._emit("reasoning", reasoning)
            if text:
                if self.native_reasoning:
                    self._emit("content", text)
                else:
                    for kind, part in self.splitter.feed(text):
                        self._emit(kind, part)
            if choice.get("finish_reason") and reply.notice is None:
                reply.finish_reason = label(choice["finish_reason"])
                reply.native_finish_reason = label(choice.get("native_finish_reason"))
                _check_finish(choice, reply.billed_cost_usd, reply.generation_id)

    def _logprobs(self, logprobs: Any) -> None:
        if self._tops is None:
            return
        try:
            tops = logprob_tops(logprobs)
        except ValueError:
            self._tops = None  # one unreadable part spoils the series (it would misalign)
            return
        if tops:
            self._tops.extend(tops)
            if len(self._tops) > MAX_TOKENS:
                self._tops = None

    @property
    def began(self) -> bool:
        """Whether any of the reply reached us (a token, a usage block): a stream that fails
        after this may have been billed."""
        return self.reply.ttft_s is not None or bool(self._details) or self.reply.usage_reported

    def _token_limit(self, err: Any, raw_usage: Mapping[str, Any] | None) -> bool:
        """MiniMax ends a stream whose thinking ate ``max_tokens`` with an error chunk that
        carries the usage: a truncated, billed reply, not a failure. Recognised by the error
        coming after ``finish_reason: length``, or by MiniMax's own words ("Token limit
        reached"), with usage attached — not by any message mentioning a token limit ("...
        token limit exceeds the context window" is a real error, and must not be cached)."""
        if not isinstance(err, Mapping) or raw_usage is None:
            return False
        message = str(err.get("message") or "")
        said = message.strip().rstrip(".").lower() == "token limit reached"
        if self.reply.finish_reason != "length" and not said:
            return False
        self.reply.finish_reason = "length"
        self.reply.notice = message or "token limit reached"
        return True

    def finish(self) -> Reply:
        """Close the stream; raise if it ended without a finish reason (a cut stream)."""
        self._dispatch()
        for kind, part in self.splitter.flush():
            self._emit(kind, part)
        if self.reply.finish_reason is None:
            raise APIError(
                "the stream ended before a finish_reason",
                status=0,
                error_type="connection",
                retryable=True,
            )
        self.reply.content = "".join(self._content)
        self.reply.reasoning = "".join(self._reasoning)
        if self.native_reasoning:
            self.reply.reasoning_mode = "native"
        elif self.reply.reasoning:
            # same spelling as split_think gives a non-streamed reply
            self.reply.reasoning = self.reply.reasoning.strip()
            self.reply.reasoning_mode = "leaked"
        self.reply.reasoning_details = _merge_details(self._details) or None
        self.reply.confidence = token_confidences(self._tops) if self._tops else None
        self.reply.reasoning_mode = _mode(
            self.reply.reasoning_mode, self.reply.reasoning, self.reply.usage,
            self.reply.reasoning_details,
        )  # fmt: skip
        return self.reply


def _merge_details(parts: list[Any]) -> list[Any]:
    """Streamed ``reasoning_details`` arrive as fragments: text blocks of the same index and
    type are joined back into one block (what the non-streamed reply would have held)."""
    out: list[Any] = []
    for part in parts:
        if not isinstance(part, Mapping):
            continue
        last = out[-1] if out else None
        if (
            last is not None
            and part.get("type") == "reasoning.text" == last.get("type")
            and part.get("index") == last.get("index")
        ):
            texts = (last.get("text"), part.get("text"))
            if not all(t is None or isinstance(t, str) for t in texts):
                out.append(dict(part))  # a malformed fragment stays its own block, no crash
                continue
            last["text"] = (last.get("text") or "") + (part.get("text") or "")
            if part.get("signature"):
                last["signature"] = part["signature"]
        else:
            out.append(dict(part))
    return out
