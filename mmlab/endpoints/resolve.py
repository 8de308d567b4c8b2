"""Which endpoint a lab talks to, and which key it sends there: the one policy.

Endpoint choice (first match wins): an explicit ``endpoint``; an explicit ``base_url``
(OpenRouter if its host is ``openrouter.ai``); ``api_key`` or ``OPENROUTER_API_KEY`` →
OpenRouter; ``MMLAB_BASE_URL`` → that server; else the embedded model.

The key policy (`key_for`), the same whichever way an endpoint is named — ``base_url=``,
``endpoint=``, ``endpoints={...}`` or the environment:

- a key passed as ``api_key=`` goes to the endpoint it was given for, and to other URLs of the
  same origin (scheme, host and port), nowhere else;
- the environment's ``OPENROUTER_API_KEY`` goes only to OpenRouter's own URL;
- any other URL gets no key (pass an `Endpoint` with one, explicitly);
- a key only ever travels over https, or over plain http to this machine (loopback): anything
  else is refused when the endpoint is made (`mmlab.endpoints.base.check_key_transport`).

The lab's attribution headers (``HTTP-Referer``, ``X-OpenRouter-Title``) go with every
request, wherever it goes: they name the app, not the user.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..config import OPENROUTER_URL, env, normalize_base_url
from .base import Endpoint
from .embedded import Embedded
from .openrouter import OpenRouter, is_openrouter_url


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of `url`, the port spelled out: what "the same server" means."""
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def key_for(url: str, api_key: str | None = None, given_for: str | None = None) -> str | None:
    """The key to send to `url` (see the module docstring): `api_key` if it was given for this
    origin (`given_for`: the URL it was given with; None: this one), else the environment's
    OpenRouter key if `url` is OpenRouter's, else none."""
    if api_key is not None and (given_for is None or origin(given_for) == origin(url)):
        key: str | None = api_key
    elif is_openrouter_url(url):
        key = env("OPENROUTER_API_KEY")
    else:
        key = None
    return key


def endpoint_for_url(
    url: str,
    api_key: str | None,
    headers: dict[str, str],
    *,
    given_for: str | None = None,
) -> Endpoint:
    """An endpoint for `url`: OpenRouter when its host is ``openrouter.ai``, else a plain
    OpenAI-compatible one; its key by `key_for`."""
    url = normalize_base_url(url)
    kind = OpenRouter if is_openrouter_url(url) else Endpoint
    return kind(url, key_for(url, api_key, given_for), headers=dict(headers))


def resolve_endpoint(
    base_url: str | None,
    api_key: str | None,
    headers: dict[str, str],
    *,
    replay: bool = False,
) -> Endpoint:
    """Pick the lab's own endpoint from arguments and environment (see the module docstring).

    `replay`: only the endpoint's identity will be needed (the embedded model's file need
    not be installed)."""
    if base_url is not None:
        return endpoint_for_url(base_url, api_key, headers)
    if api_key is not None or env("OPENROUTER_API_KEY"):
        return endpoint_for_url(OPENROUTER_URL, api_key, headers)
    custom = env("MMLAB_BASE_URL")
    if custom:
        return endpoint_for_url(custom, None, headers)
    return Embedded(headers=headers, replay=replay)


__all__ = [
    "endpoint_for_url",
    "key_for",
    "origin",
    "resolve_endpoint",
]
