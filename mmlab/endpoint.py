"""Endpoints: where requests go, how they are authenticated, and their stable identity.

Choice (first match wins): an explicit ``base_url``/``api_key`` argument; else
``OPENROUTER_API_KEY`` → OpenRouter; else ``MMLAB_BASE_URL`` → that OpenAI-compatible server;
else the embedded local model (`mmlab.local`).

The environment's OpenRouter key is only ever sent to OpenRouter: a custom base URL gets a key
only when one is passed explicitly, so a typo'd URL cannot receive it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .client import Http
from .config import OPENROUTER_URL, env, normalize_base_url, register_secret
from .wire import Delta, Reply


@dataclass(repr=False)
class Endpoint:
    """An OpenAI-compatible chat endpoint (OpenRouter, vLLM, Ollama, a stand-in server)."""

    base_url: str
    """Root URL; ``/chat/completions`` is appended."""
    kind: str = "openai"
    """``openrouter`` (speaks OpenRouter's extras: usage.cost, /models prices, /generation),
    ``openai`` (any compatible server) or ``local`` (the embedded model)."""
    api_key: str | None = None
    """Sent as a Bearer token; never stored, logged, or shown."""
    default_model: str | None = None
    """The model used when a Lab is given none."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra headers (attribution: HTTP-Referer, X-OpenRouter-Title)."""

    @property
    def identity(self) -> str:
        """Stable name for cache keys: the base URL (never a random port for local models)."""
        return self.base_url

    @property
    def label(self) -> str:
        """How the endpoint is announced to the user."""
        if self.kind == "openrouter" and self.base_url == OPENROUTER_URL:
            return "OpenRouter (OPENROUTER_API_KEY)"
        return f"OpenAI-compatible endpoint at {self.base_url}"

    def __repr__(self) -> str:
        key = "set" if self.api_key else "none"
        return f"Endpoint(kind={self.kind!r}, base_url={self.base_url!r}, api_key={key})"

    def request_headers(self) -> dict[str, str]:
        """Headers for one request (the key is added here and nowhere else)."""
        out = dict(self.headers)
        if self.api_key:
            out["Authorization"] = f"Bearer {self.api_key}"
        return out

    async def url(self) -> str:
        """The base URL to use now (the embedded model may start or move)."""
        return self.base_url

    async def complete(
        self,
        http: Http,
        body: dict[str, Any],
        stream: bool,
        on_delta: Callable[[Delta], None] | None,
    ) -> Reply:
        """Send one chat request and return the reply (no retries here)."""
        base = await self.url()
        return await http.chat(
            f"{base}/chat/completions", self.request_headers(), body, stream, on_delta
        )

    def close(self) -> None:
        """Release what the endpoint holds (nothing, for remote endpoints)."""


def resolve_endpoint(
    base_url: str | None,
    api_key: str | None,
    model: str | None,
    headers: dict[str, str],
) -> Endpoint:
    """Pick the endpoint from arguments and environment (see module docstring)."""
    if base_url is not None:
        url = normalize_base_url(base_url)
        kind = "openrouter" if (api_key or "openrouter.ai" in url) else "openai"
        key = api_key
    elif api_key is not None or env("OPENROUTER_API_KEY"):
        url, kind, key = OPENROUTER_URL, "openrouter", api_key or env("OPENROUTER_API_KEY")
    elif env("MMLAB_BASE_URL"):
        url, kind, key = normalize_base_url(env("MMLAB_BASE_URL") or ""), "openai", None
    else:
        from .local import local_endpoint

        return local_endpoint(headers)
    register_secret(key)
    default = env("MMLAB_MODEL") or "minimax/minimax-m1"
    return Endpoint(
        base_url=url, kind=kind, api_key=key, default_model=model or default, headers=headers
    )
