"""The cache key, as a declared spec.

What goes in (KEY_VERSION 1):
    endpoint   the endpoint's stable identity (base URL; for the embedded model its model id
               and the GGUF file's sha256 — never the random port it happens to listen on)
    request    the canonical wire request: model, messages and every sampling, reasoning and
               provider field exactly as sent (sorted-key JSON; 1 and 1.0 are one spelling)
    sample     the sample index, so repeated samples of one request are distinct entries

What is left out, on purpose: ``stream`` (framing, not content: a streamed and a plain call
of one request share an entry), timeouts, retries, concurrency, headers and the API key.

Bump KEY_VERSION when this spec changes; old entries then simply stop matching.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from .wire import canonical_json

KEY_VERSION = 1


def key_material(endpoint: str, body: dict[str, Any], sample: int) -> dict[str, Any]:
    """Everything the key is made of (stored beside the cache row to explain misses)."""
    request = {k: v for k, v in body.items() if k != "stream"}
    return {"v": KEY_VERSION, "endpoint": endpoint, "request": request, "sample": sample}


def cache_key(material: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the key material."""
    return key_of(canonical_json(material))


def request_json(body: dict[str, Any]) -> str:
    """Canonical JSON of the request part of the key material (shared by a request's repeats)."""
    return canonical_json({k: v for k, v in body.items() if k != "stream"})


def material_json(endpoint: str, request: str, sample: int) -> str:
    """``canonical_json(key_material(...))``, assembled from the request's canonical JSON.

    The sorted keys are endpoint, request, sample, v: a sweep's repeats of one request share
    `request` and differ only in `sample`, so their material is built without re-encoding the
    messages (a test keeps the two spellings identical).
    """
    return (
        f'{{"endpoint":{_quoted(endpoint)},"request":{request},'
        f'"sample":{int(sample)},"v":{KEY_VERSION}}}'
    )


_quoted = functools.lru_cache(maxsize=64)(canonical_json)  # endpoint identities repeat


def key_of(material: str) -> str:
    """sha256 hex of canonical key material."""
    return hashlib.sha256(material.encode()).hexdigest()


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{path}.{k}" if path else k, out)
    elif isinstance(value, list):
        out[f"{path}.length"] = len(value)
        for i, v in enumerate(value):
            _flatten(v, f"{path}[{i}]", out)
    else:
        out[path] = value


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Field-by-field differences between two key materials, e.g. ``request.temperature``."""
    fa: dict[str, Any] = {}
    fb: dict[str, Any] = {}
    _flatten(a, "", fa)
    _flatten(b, "", fb)
    out = []
    for path in sorted(set(fa) | set(fb)):
        va, vb = fa.get(path, "<absent>"), fb.get(path, "<absent>")
        if va != vb:
            out.append(f"{path}: {_short(va)} (asked) != {_short(vb)} (stored)")
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def nearest(
    material: dict[str, Any], candidates: list[str]
) -> tuple[dict[str, Any] | None, list[str]]:
    """The stored key material closest to `material` (fewest differing fields)."""
    best: tuple[int, dict[str, Any] | None, list[str]] = (10**9, None, [])
    for text in candidates:
        other = json.loads(text)
        diffs = differences(material, other)
        if len(diffs) < best[0]:
            best = (len(diffs), other, diffs)
    return best[1], best[2]
