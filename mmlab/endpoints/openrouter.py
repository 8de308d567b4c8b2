"""OpenRouter: the OpenAI-compatible API plus its extras — billed ``usage.cost``, live prices
from ``GET /models``, billed records from ``GET /generation``, provider routing.

mmlab recognises OpenRouter by its URL (``openrouter.ai``), never by the presence of a key: a
self-hosted server given a key is still just an OpenAI-compatible endpoint. Anything that
speaks OpenRouter's extras on another URL (the loopback stand-in in `mmlab.testing`) is
declared explicitly: ``Lab(endpoint=OpenRouter(base_url=..., api_key=...))``.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ..client import Http
from ..config import OPENROUTER_URL
from ..errors import APIError, ConfigError
from ..pricing import PriceTable, parse_models
from .base import Capabilities, Endpoint


def is_openrouter_url(url: str) -> bool:
    """Whether `url` is OpenRouter's (the host ``openrouter.ai`` or a subdomain of it)."""
    host = (urlsplit(url).hostname or "").lower()
    return host == "openrouter.ai" or host.endswith(".openrouter.ai")


class OpenRouter(Endpoint):
    """OpenRouter's chat API (https://openrouter.ai/api/v1) or anything speaking it."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        live_prices=True, generation_lookup=True, provider_routing=True, key_usage=True,
        logprobs=True,
    )

    def __init__(
        self,
        base_url: str = OPENROUTER_URL,
        api_key: str | None = None,
        *,
        default_model: str | None = None,
        headers: dict[str, str] | None = None,
        identity: str | None = None,
    ) -> None:
        headers = dict(headers or {})
        for name, value in headers.items():
            if name.lower() == "x-openrouter-cache" and str(value).strip().lower() != "false":
                # it answers every repeat with the first response, whatever the temperature:
                # repeated samples would measure nothing (mmlab's own cache does the caching)
                raise ConfigError(
                    "X-OpenRouter-Cache must stay off: OpenRouter's response cache returns "
                    "the same response for every sample regardless of temperature"
                )
        # explicit, so that a preset turning the response cache on cannot apply to mmlab
        if not any(name.lower() == "x-openrouter-cache" for name in headers):
            headers["X-OpenRouter-Cache"] = "false"
        super().__init__(
            base_url, api_key, default_model=default_model, headers=headers, identity=identity
        )

    @property
    def label(self) -> str:
        """How the endpoint is announced."""
        if self.base_url == OPENROUTER_URL:
            return "OpenRouter (OPENROUTER_API_KEY)"
        return f"OpenRouter-compatible endpoint at {self.base_url}"

    async def fetch_prices(self, http: Http) -> PriceTable | None:
        """``GET /models`` as a price table, or None when it cannot be had (offline)."""
        try:
            status, body = await http.get_json(f"{self.base_url}/models", self.request_headers())
        except APIError:
            return None  # offline: the caller falls back to the embedded table
        table = parse_models(body, f"openrouter:/models@{time.strftime('%Y-%m-%d')}")
        return table if status == 200 and table.prices else None

    async def generation(self, http: Http, generation_id: str) -> tuple[int, Any]:
        """(HTTP status, ``data``) of ``GET /generation?id=...`` (it 404s for a moment after a
        completion; the caller retries)."""
        status, body = await http.get_json(
            f"{self.base_url}/generation", self.request_headers(), params={"id": generation_id}
        )
        data = body.get("data") if isinstance(body, dict) else None
        return status, data

    async def key_info(self, http: Http) -> tuple[int, Any]:
        """(HTTP status, ``data``) of ``GET /key``: the key's ``usage`` (USD, all time),
        ``usage_daily``, ``limit``, ``limit_remaining``, ``is_free_tier``."""
        status, body = await http.get_json(f"{self.base_url}/key", self.request_headers())
        data = body.get("data") if isinstance(body, dict) else None
        return status, data
