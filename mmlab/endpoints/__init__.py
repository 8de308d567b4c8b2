"""Endpoints: where requests go. One class per kind of server, each declaring its
`Capabilities`; `resolve_endpoint` picks one from arguments and the environment.

    Endpoint      any OpenAI-compatible server (vLLM, Ollama, llama.cpp, ...)    base.py
    OpenRouter    OpenRouter's API and its extras (prices, /generation, routing) openrouter.py
    Embedded      the embedded SmolLM2 model under llama.cpp on loopback         embedded.py
                  (its file and template: gguf.py; its process: llama_process.py;
                  its prompted-thinking template: thinking.py)

Choice (first match wins): an explicit ``endpoint``; an explicit ``base_url`` (OpenRouter if
its host is ``openrouter.ai``); ``api_key`` or ``OPENROUTER_API_KEY`` → OpenRouter;
``MMLAB_BASE_URL`` → that server; else the embedded model.

The environment's OpenRouter key is only ever sent to OpenRouter: a custom base URL gets a key
only when one is passed explicitly, so a typo'd URL cannot receive it.
"""

from __future__ import annotations

from ..config import OPENROUTER_URL, env
from .base import Capabilities, Endpoint
from .embedded import Embedded
from .openrouter import OpenRouter, is_openrouter_url


def resolve_endpoint(
    base_url: str | None,
    api_key: str | None,
    headers: dict[str, str],
    *,
    replay: bool = False,
) -> Endpoint:
    """Pick the endpoint from arguments and environment (see the module docstring).

    `replay`: only the endpoint's identity will be needed (the embedded model's file need
    not be installed)."""
    if base_url is not None:
        kind = OpenRouter if is_openrouter_url(base_url) else Endpoint
        return kind(base_url, api_key, headers=headers)
    if api_key is not None or env("OPENROUTER_API_KEY"):
        return OpenRouter(OPENROUTER_URL, api_key or env("OPENROUTER_API_KEY"), headers=headers)
    custom = env("MMLAB_BASE_URL")
    if custom:
        kind = OpenRouter if is_openrouter_url(custom) else Endpoint
        return kind(custom, None, headers=headers)
    return Embedded(headers=headers, replay=replay)


__all__ = ["Capabilities", "Embedded", "Endpoint", "OpenRouter", "resolve_endpoint"]
