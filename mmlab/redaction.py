"""Secrets never leave mmlab: every key a Lab (or the embedded server) was given is
registered here, and `redact` scrubs registered secrets and anything shaped like an API key
from text. Every `MmlabError` redacts its own message when it is made, so no error path —
an echoed Authorization header in an HTTP body, a 200-with-error body, a mid-stream error
chunk, an unparseable event — can carry a key to the user, a log row or the CLI.
"""

from __future__ import annotations

import re

_SECRETS: set[str] = set()
# OpenRouter/OpenAI-style keys, and Bearer credentials of any shape
_KEY_SHAPE = re.compile(r"sk-[A-Za-z0-9_\-]{8,}")
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=\-]{8,}", re.IGNORECASE)


def register_secret(secret: str | None) -> None:
    """Remember a secret so that `redact` removes it from any text."""
    if secret and len(secret) >= 8:
        _SECRETS.add(secret)


def redact(text: str) -> str:
    """Remove registered secrets, Bearer credentials and API-key-shaped strings from `text`."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    text = _BEARER.sub(r"\1[REDACTED]", text)
    return _KEY_SHAPE.sub("sk-[REDACTED]", text)


def redact_secrets(text: str) -> str:
    """Remove registered secrets only — whatever their shape — leaving other text as it is:
    for a model's own words (an answer about ``sk-learn`` must survive), where `redact`'s
    key-shaped patterns would mangle honest text."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    return text


#: Header names whose values are credentials (``Authorization``, Azure's ``api-key``,
#: ``x-api-key``, tokens, secrets): registered as secrets wherever an endpoint is given them.
SECRET_HEADER = re.compile(r"auth|key|token|secret|cookie|session", re.IGNORECASE)
