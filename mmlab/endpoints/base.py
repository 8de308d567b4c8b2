"""The OpenAI-compatible endpoint: where requests go, how they are authenticated, their stable
identity, and what the endpoint can do (`Capabilities`).

An endpoint only knows how to send one request and read one reply, and what it offers
besides (price lists, generation records, exact token counts, prefill); the `Engine` owns
cache, retries, budget and log. Code that needs to know what an endpoint can do asks its
capabilities, never its class.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ..client import Http
from ..config import normalize_base_url
from ..errors import ConfigError, RequestError
from ..pricing import EMBEDDED, PriceTable
from ..redaction import SECRET_HEADER, register_secret
from ..wire import Delta, Reply


@dataclass(frozen=True)
class Capabilities:
    """What an endpoint offers beyond ``POST /chat/completions``."""

    free: bool = False
    """Calls cost nothing (the embedded model): cost 0, ``cost_source="local"``, no budget."""
    live_prices: bool = False
    """``GET /models`` lists per-token prices (OpenRouter); else the embedded table is used."""
    generation_lookup: bool = False
    """``GET /generation?id=`` returns the billed cost of a call (OpenRouter)."""
    provider_routing: bool = False
    """The ``provider`` routing object is honoured (OpenRouter)."""
    tokenizer: bool = False
    """Tokens can be counted exactly with the model's own tokenizer (the embedded model)."""
    prefill: bool = False
    """The endpoint can continue a prefilled assistant turn (a completion route)."""
    key_usage: bool = False
    """``GET /key`` reports the key's total usage in USD (OpenRouter): the account's side of
    the ledger."""
    logprobs: bool = False
    """``logprobs``/``top_logprobs`` can come back with the answer (the embedded model; some
    OpenRouter providers — pin one with ``require_parameters``): a call that asks for them
    stores each token's confidence (`mmlab.confidence`). Without it they are still sent, and
    a reply without them leaves the confidence empty (its scores NaN), never an error."""


def is_loopback(url: str) -> bool:
    """Whether `url` points at this machine (127.0.0.0/8, ::1 or localhost)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_key_transport(url: str, key: str | None) -> None:
    """Refuse to attach `key` to `url` unless the key would travel encrypted (https) or stay
    on this machine: a key sent over plain http can be read by anyone on the path."""
    if key and urlsplit(url).scheme != "https" and not is_loopback(url):
        raise ConfigError(
            f"refusing to send an API key over plain http to {urlsplit(url).hostname}: keys "
            "only travel over https (or to this machine). Use an https:// URL, or pass no key"
        )


class Endpoint:
    """Any OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp, a stand-in server)."""

    capabilities: ClassVar[Capabilities] = Capabilities()
    #: What a streamed request adds: OpenAI-compatible servers (vLLM and others) send no usage
    #: in a stream unless asked, and a reply without usage has an unknown cost.
    stream_extras: ClassVar[dict[str, Any]] = {"stream_options": {"include_usage": True}}

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        default_model: str | None = None,
        headers: dict[str, str] | None = None,
        identity: str | None = None,
    ) -> None:
        if identity is not None and (not isinstance(identity, str) or not identity.strip()):
            raise RequestError(f"identity must be a non-empty string; got {identity!r}",
                               "identity")  # fmt: skip
        self._name = identity
        self.base_url = normalize_base_url(base_url)
        """Root URL; ``/chat/completions`` is appended."""
        check_key_transport(self.base_url, api_key)
        self.api_key = api_key
        """Sent as a Bearer token; never stored, logged, or shown."""
        register_secret(api_key)
        self.default_model = default_model
        """The model used when a Lab is given none."""
        self.headers = dict(headers or {})
        """Extra headers (attribution: HTTP-Referer, X-OpenRouter-Title; a server's own
        credential header, e.g. Azure's ``api-key``)."""
        for name, value in self.headers.items():
            if SECRET_HEADER.search(name) and isinstance(value, str):
                register_secret(value)  # redacted wherever text leaves mmlab, like api_key
                check_key_transport(self.base_url, value)

    @property
    def identity(self) -> str:
        """Stable name for cache keys: the base URL (never a random port for local models), or
        the name given as `identity` — the same server under another URL (a moved vLLM host,
        a demo server on a free port) keeps its cache."""
        return self._name or self.base_url

    @property
    def label(self) -> str:
        """How the endpoint is announced to the user."""
        return f"OpenAI-compatible endpoint at {self.base_url}"

    def __repr__(self) -> str:
        key = "set" if self.api_key else "none"
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={key})"

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
            f"{base}/chat/completions", self.request_headers(), body, stream, on_delta,
            self.stream_extras,
        )

    def check(self, params: Mapping[str, Any]) -> None:
        """Refuse, before anything is sent, what this endpoint cannot do."""
        reasoning = params.get("reasoning") or {}
        if "wait" in reasoning and not self.capabilities.prefill:
            raise RequestError(
                "reasoning.wait (budget forcing) needs an endpoint that can continue a "
                f"prefilled assistant turn (capability 'prefill', as the embedded model has); "
                f"{self.label} has no such route",
                field="reasoning.wait",
            )

    def check_model(self, model: str) -> None:
        """Refuse, before anything is sent, a model this endpoint cannot serve (by default
        any id is passed on: the server decides)."""

    def static_prices(self) -> PriceTable:
        """The price table used when no live one is available: the embedded list prices."""
        return EMBEDDED

    async def fetch_prices(self, http: Http) -> PriceTable | None:
        """A live price table, for endpoints with `Capabilities.live_prices`."""
        return None

    async def generation(self, http: Http, generation_id: str) -> tuple[int, Any]:
        """(HTTP status, ``data``) of a generation record, for `Capabilities.generation_lookup`."""
        raise NotImplementedError(f"{type(self).__name__} has no generation records")

    async def key_info(self, http: Http) -> tuple[int, Any]:
        """(HTTP status, ``data``) of the key's record, for `Capabilities.key_usage`."""
        raise NotImplementedError(f"{type(self).__name__} has no key record")

    def close(self) -> None:
        """Release what the endpoint holds (nothing, for remote endpoints)."""
