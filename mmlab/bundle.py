"""Bundles: a shared analysis is a notebook plus the exact cached calls it used.

Format (gzip-compressed JSON lines, schema ``mmlab-bundle`` version 1):

    {"schema": "mmlab-bundle", "version": 1, "key_version": 1, "count": N, "tag": ...}
    {"key": ..., "endpoint": ..., "model": ..., "sample": ..., "request": ..., "response": ...}
    ... N entry lines, sorted by key ...
    {"end": true, "count": N, "sha256": <sha256 of the N entry lines>}

No keys and no headers are ever in a bundle: cache rows hold neither. Importing is one
transaction; a corrupt, truncated or tampered bundle is rejected whole, and importing the
same bundle twice adds nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import zlib
from pathlib import Path
from typing import Any

from . import jsonfast
from .cachekey import KEY_VERSION, cache_key
from .config import redact
from .errors import BundleError
from .store import CacheEntry, Store
from .wire import canonical_json

SCHEMA, VERSION = "mmlab-bundle", 1


def export_bundle(store: Store, path: str | os.PathLike[str], *, tag: str) -> dict[str, Any]:
    """Write the cache entries that calls tagged `tag` used; returns count and sha256."""
    entries = store.cache_entries(tag)
    if not entries:
        raise BundleError(f"no cached calls are tagged {tag!r}; nothing to export")
    lines = [
        json.dumps(
            {
                "key": e.key,
                "endpoint": e.endpoint,
                "model": e.model,
                "sample": e.sample,
                "request": json.loads(e.request),
                "response": json.loads(redact(e.response)),
            },
            sort_keys=True,
            ensure_ascii=False,
        )
        for e in entries
    ]
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    header = {
        "schema": SCHEMA,
        "version": VERSION,
        "key_version": KEY_VERSION,
        "count": len(lines),
        "tag": tag,
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    # mtime=0: the same calls give byte-identical bundles (diff-friendly in git).
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as f:
        f.write((json.dumps(header) + "\n").encode())
        for line in lines:
            f.write((line + "\n").encode())
        f.write((json.dumps({"end": True, "count": len(lines), "sha256": digest}) + "\n").encode())
    tmp.replace(target)  # never a half-written bundle under the real name
    return {"count": len(lines), "sha256": digest, "path": str(target)}


def read_bundle(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read and verify a bundle completely; raise `BundleError` on any defect."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"bundle {path} does not exist")
    try:
        with gzip.open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise BundleError(f"bundle {path} is corrupt or truncated ({exc})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    try:
        header, trailer = json.loads(lines[0]), json.loads(lines[-1])
    except (ValueError, IndexError):
        raise BundleError(f"bundle {path} has no readable header/trailer") from None
    if not isinstance(header, dict) or header.get("schema") != SCHEMA:
        raise BundleError(f"{path} is not an mmlab bundle")
    if header.get("version") != VERSION:
        raise BundleError(
            f"bundle {path} has schema version {header.get('version')}; this mmlab reads "
            f"version {VERSION}"
        )
    if not isinstance(trailer, dict) or not trailer.get("end"):
        raise BundleError(f"bundle {path} is truncated (no end marker)")
    body = lines[1:-1]
    if len(body) != header.get("count") or len(body) != trailer.get("count"):
        raise BundleError(
            f"bundle {path} is truncated: {len(body)} of {header.get('count')} entries"
        )
    if hashlib.sha256("\n".join(body).encode()).hexdigest() != trailer.get("sha256"):
        raise BundleError(f"bundle {path} does not match its checksum (corrupt or edited)")
    entries = []
    for i, line in enumerate(body):
        try:
            entry = json.loads(line)
            material = entry["request"]
            if cache_key(material) != entry["key"]:
                raise ValueError("key does not match its request")
            json.dumps(entry["response"])
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleError(f"bundle {path} entry {i + 1} is invalid ({exc})") from None
        entries.append(entry)
    return entries


def import_bundle(store: Store, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a bundle into the cache in one transaction; entries already present are kept."""
    entries = read_bundle(path)
    added = store.cache_put(
        [
            CacheEntry(
                e["key"],
                e["endpoint"],
                e["model"],
                e["sample"],
                canonical_json(e["request"]),
                jsonfast.dumps(e["response"]),
                e["response"].get("created", 0.0),
            )
            for e in entries
        ]
    )
    return {"count": len(entries), "added": added}
