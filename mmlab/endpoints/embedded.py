"""The embedded endpoint: SmolLM2-135M-Instruct (or any GGUF) served by llama.cpp on loopback.

Without an API key mmlab still does its whole job with a real model. mmlab talks to the
server over httpx exactly as it talks to OpenRouter, so the wire, cache, log and errors are
the same path. Requests without ``reasoning`` pass through untouched (`reasoning_mode`
``none``); requests with it use the prompted-thinking template (`.thinking`, mode
``prompted``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from ..client import Http
from ..config import env
from ..errors import APIError, LocalModelError, RequestError
from ..params import LOCAL_FIELDS
from ..pricing import FREE, PriceTable
from ..wire import Delta, Reply, Usage
from .base import Capabilities, Endpoint
from .gguf import (
    PACKAGED_ID,
    PACKAGED_SHA256,
    ChatTemplate,
    file_sha256,
    load_template,
    model_id,
    model_path,
)
from .llama_process import LocalServer, server_for
from .thinking import think_budget, think_then_answer, wait_count, wants_reasoning

DEFAULT_MAX_TOKENS = 1024  # llama.cpp's completion route would otherwise stop at 16 tokens


def local_body(body: dict[str, Any], alias: str) -> dict[str, Any]:
    """The request in llama.cpp's names for what it honours (`mmlab.params.LOCAL_FIELDS`);
    the rest (provider routing, top_a) is dropped, as OpenRouter drops parameters a provider
    does not support."""
    out: dict[str, Any] = {LOCAL_FIELDS[k]: v for k, v in body.items() if k in LOCAL_FIELDS}
    # reasoning blocks handed back from another provider mean nothing to llama.cpp
    out["messages"] = [
        {k: v for k, v in m.items() if k != "reasoning_details"} for m in body["messages"]
    ]
    out["model"] = alias
    return out


class Embedded(Endpoint):
    """The embedded model, speaking through llama.cpp's OpenAI-compatible server."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        free=True, tokenizer=True, prefill=True, logprobs=True
    )

    def __init__(
        self,
        path: Path | None = None,
        headers: dict[str, str] | None = None,
        *,
        replay: bool = False,
    ) -> None:
        self._identity: str | None = None
        self._template: ChatTemplate | None = None
        try:
            path = path or model_path()
        except LocalModelError:
            # A replay needs the model's identity, never the model: without the wheel, the
            # packaged model's identity is a constant (a custom MMLAB_LOCAL_MODEL must exist).
            if not replay or env("MMLAB_LOCAL_MODEL"):
                raise
            self._identity = f"local:{PACKAGED_ID}@sha256:{PACKAGED_SHA256[:16]}"
        self.path = path
        self.alias = model_id(path) if path is not None else PACKAGED_ID
        super().__init__("http://127.0.0.1/v1", default_model=self.alias, headers=headers)

    @property
    def identity(self) -> str:
        """``local:<model id>@sha256:<file hash>``: the same on every machine, any port."""
        if self._identity is None:
            assert self.path is not None
            self._identity = f"local:{self.alias}@sha256:{file_sha256(self.path)[:16]}"
        return self._identity

    def check_model(self, model: str) -> None:
        """The embedded server holds one model: asking it for another would mislabel its
        answers."""
        if model != self.alias:
            raise RequestError(
                f"the embedded endpoint serves only {self.alias!r}; got model {model!r} "
                "(give that model's endpoint: Lab(endpoints={...}) and endpoint=...)",
                "model",
            )

    @property
    def label(self) -> str:
        """How the endpoint is announced."""
        return f"embedded {self.alias} (llama.cpp on 127.0.0.1, no API key needed)"

    def __repr__(self) -> str:
        return f"Embedded(model={self.alias!r})"

    def request_headers(self) -> dict[str, str]:
        """The server's per-process key (it answers no one else), plus any extra headers."""
        return {**self.headers, **self.server.headers()}

    @property
    def server(self) -> LocalServer:
        """The shared server process."""
        return server_for(self._model_file(), self.alias)

    @property
    def template(self) -> ChatTemplate:
        """The model's chat template."""
        if self._template is None:
            self._template = load_template(self._model_file())
        return self._template

    def _model_file(self) -> Path:
        if self.path is None:
            return model_path()  # raises the clear "install the local extra" error
        return self.path

    def static_prices(self) -> PriceTable:
        """The embedded model is free."""
        return FREE

    async def url(self) -> str:
        """Start (or restart) the server without blocking the event loop."""
        server = self.server
        if server.ready():
            return server.url
        url = await asyncio.to_thread(server.ensure)
        self.base_url = url
        return url

    async def count_tokens(self, http: Http, base: str, text: str) -> int:
        """Tokens in `text` by the model's own tokenizer."""
        if not text:
            return 0
        root = base.removesuffix("/v1")
        try:
            resp = await http.client().post(
                f"{root}/extras/tokenize/count",
                json={"input": text, "model": self.alias},
                headers=self.request_headers(),
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
        """Plain chat pass-through, or the prompted-thinking template (`.thinking`)."""
        base = await self.url()
        local = local_body(body, self.alias)
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
        # the completion route's `logprobs` is the number of alternatives per token; it is
        # asked exactly when the chat route would ask it (`logprobs` and `top_logprobs` given)
        logprobs, top = local.pop("logprobs", None), local.pop("top_logprobs", None)
        if logprobs and top is not None:
            local["logprobs"] = top
        url, headers = f"{base}/completions", self.request_headers()

        async def complete(
            prompt: str, limit: int, stops: Any, relay: Callable[[Delta], None]
        ) -> Reply:
            request = {**local, "prompt": prompt, "max_tokens": limit}
            if stops:
                request["stop"] = stops
            return await http.chat(url, headers, request, stream, relay)

        async def count(text: str) -> int:
            return await self.count_tokens(http, base, text)

        return await think_then_answer(
            self.template.render(messages),
            budget=think_budget(body, max_tokens),
            wait=wait_count(body),
            max_tokens=max_tokens,
            stop=stop,
            stream=stream,
            complete=complete,
            count=count,
            on_delta=on_delta,
        )


__all__ = ["DEFAULT_MAX_TOKENS", "Embedded", "local_body"]
