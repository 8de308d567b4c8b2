"""Endpoints: where requests go. One class per kind of server, each declaring its
`Capabilities`; `resolve_endpoint` picks one from arguments and the environment.

    Endpoint      any OpenAI-compatible server (vLLM, Ollama, llama.cpp, ...)    base.py
    OpenRouter    OpenRouter's API and its extras (prices, /generation, routing) openrouter.py
    Embedded      the embedded SmolLM2 model under llama.cpp on loopback         embedded.py
                  (its file and template: gguf.py; its process: llama_process.py;
                  its prompted-thinking template: thinking.py)

Which endpoint a lab uses and which key goes where is decided in one place, `resolve.py`
(`resolve_endpoint`, `endpoint_for_url`, `key_for`): the environment's OpenRouter key is
only ever sent to OpenRouter, an explicit key only to the server it was given for, and a key
only over https (or to this machine).
"""

from __future__ import annotations

from .base import Capabilities, Endpoint
from .embedded import Embedded
from .openrouter import OpenRouter, is_openrouter_url
from .resolve import endpoint_for_url, key_for, resolve_endpoint

__all__ = [
    "Capabilities",
    "Embedded",
    "Endpoint",
    "OpenRouter",
    "endpoint_for_url",
    "is_openrouter_url",
    "key_for",
    "resolve_endpoint",
]
