"""Bundles: a shared analysis is a notebook plus the exact cached calls it used.

Format (gzip-compressed JSON lines, schema ``mmlab-bundle`` version 1):

    {"schema": "mmlab-bundle", "version": 1, "key_version": 1, "count": N, "tag": ...}
    {"key": ..., "endpoint": ..., "model": ..., "sample": ..., "request": ..., "response": ...}
    ... N entry lines, sorted by key ...
    {"end": true, "count": N, "sha256": <sha256 of the N entry lines>}

No keys and no headers are ever in a bundle: cache rows hold neither.

A bundle from a colleague or a stranger is untrusted input. Reading streams it line by line
under a cap on its decompressed size (``MMLAB_BUNDLE_MAX_MB``, default 1024) and on each
line, so a gzip bomb fails with `BundleError` before memory is at risk. Every field of every
entry is checked — types, the request against mmlab's own validation, the key against its
request, the entry's endpoint/model/sample against the request, the response against the
cache schema — and any defect rejects the whole bundle: importing is one transaction and
imports nothing unless everything is sound. Imported entries remember the bundle they came
from (``bundle:<sha256>``): a hit on one saves no money unless the Lab is told to count it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from . import jsonfast
from .cachekey import KEY_VERSION, cache_key
from .config import env
from .errors import BundleError, MmlabError
from .fields import check_response
from .params import check_params
from .redaction import redact
from .store import CacheEntry, Store
from .store.files import replace_atomically
from .wire import canonical_json, check_messages

SCHEMA, VERSION = "mmlab-bundle", 1
#: Default cap on a bundle's decompressed size: generous for real studies (10,000 calls with
#: 50,000-token answers is about 1 GB), and bounded so that a bomb cannot exhaust memory.
MAX_MB = 1024
#: No single line may exceed this (one response with a 1M-token context fits easily).
MAX_LINE = 64 << 20
ENTRY_FIELDS = frozenset({"key", "endpoint", "model", "sample", "request", "response"})
MATERIAL_FIELDS = frozenset({"v", "endpoint", "request", "sample"})


def max_bytes() -> int:
    """The decompressed-size cap: ``MMLAB_BUNDLE_MAX_MB`` megabytes, default `MAX_MB`."""
    raw = env("MMLAB_BUNDLE_MAX_MB")
    try:
        mb = float(raw) if raw is not None else MAX_MB
    except ValueError:
        raise BundleError(f"MMLAB_BUNDLE_MAX_MB must be a number of MB; got {raw!r}") from None
    if mb <= 0:
        raise BundleError(f"MMLAB_BUNDLE_MAX_MB must be > 0; got {raw!r}")
    return int(mb * 2**20)


def export_bundle(
    store: Store,
    path: str | os.PathLike[str],
    *,
    tag: str,
    allow_missing: bool = False,
    since: float | None = None,
) -> dict[str, Any]:
    """Write the cache entries that calls tagged `tag` used; returns count, sha256, missing.

    `since`: only the calls logged at or after that time (one run of a notebook, in a
    database that holds its earlier runs too).

    Calls whose cache entries are gone (cleared since) cannot be replayed from the bundle:
    that is an error unless `allow_missing`, and the count is reported either way. The file
    appears under its name only when complete and on disk (written aside under a fresh
    private name, fsynced, renamed: `mmlab.store.files.replace_atomically`), mode 0600.
    """
    entries, missing = store.cache_entries(tag, since)
    if missing and not allow_missing:
        raise BundleError(
            f"{missing} call(s) tagged {tag!r} have no cache entry any more (cleared?): the "
            "bundle could not replay them. Re-run them, or export with allow_missing=True "
            "(CLI: --allow-missing) to share the rest"
        )
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
    # never a half-written bundle under the real name, nor one written through a planted link
    with replace_atomically(target) as raw:
        # mtime=0: the same calls give byte-identical bundles (diff-friendly in git).
        with gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as f:
            f.write((json.dumps(header) + "\n").encode())
            for line in lines:
                f.write((line + "\n").encode())
            end = {"end": True, "count": len(lines), "sha256": digest}
            f.write((json.dumps(end) + "\n").encode())
    return {"count": len(lines), "sha256": digest, "path": str(target), "missing": missing}


def _lines(f: IO[bytes], path: Path, cap: int) -> Iterator[bytes]:
    """The decompressed lines of `f` (without newlines), under the size caps."""
    total = 0
    while True:
        line = f.readline(MAX_LINE + 1)
        if not line:
            return
        total += len(line)
        if total > cap:
            raise BundleError(
                f"bundle {path} decompresses to more than {cap >> 20} MB (MMLAB_BUNDLE_MAX_MB); "
                "refusing it before it exhausts memory"
            )
        if len(line) > MAX_LINE:
            raise BundleError(f"bundle {path} has a line longer than {MAX_LINE >> 20} MB")
        yield line.rstrip(b"\n")


def read_bundle(
    path: str | os.PathLike[str], *, max_size: int | None = None
) -> list[dict[str, Any]]:
    """Read and verify a bundle completely; raise `BundleError` on any defect.

    `max_size` caps the decompressed bytes (default: `max_bytes()`).
    """
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"bundle {path} does not exist")
    cap = max_size if max_size is not None else max_bytes()
    digest = hashlib.sha256()
    entries: list[dict[str, Any]] = []
    try:
        with gzip.open(path, "rb") as f:
            lines = _lines(f, path, cap)
            header = _json_line(next(lines, b""), path, "header")
            if not isinstance(header, dict) or header.get("schema") != SCHEMA:
                raise BundleError(f"{path} is not an mmlab bundle")
            if header.get("version") != VERSION:
                raise BundleError(
                    f"bundle {path} has schema version {header.get('version')}; this mmlab "
                    f"reads version {VERSION}"
                )
            count = header.get("count")
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise BundleError(f"bundle {path} header has no valid count")
            pending: bytes | None = None
            for line in lines:
                if pending is not None:  # not the last line: an entry
                    if entries:
                        digest.update(b"\n")
                    digest.update(pending)
                    entries.append(_entry(_json_line(pending, path, "entry"), path, len(entries)))
                    if len(entries) > count:
                        raise BundleError(f"bundle {path} has more entries than its header says")
                pending = line
    except (OSError, EOFError, zlib.error) as exc:
        raise BundleError(f"bundle {path} is corrupt or truncated ({exc})") from None
    trailer = _json_line(pending or b"", path, "end marker") if pending is not None else None
    if not isinstance(trailer, dict) or trailer.get("end") is not True:
        raise BundleError(f"bundle {path} is truncated (no end marker)")
    if len(entries) != count or trailer.get("count") != count:
        raise BundleError(f"bundle {path} is truncated: {len(entries)} of {count} entries")
    if digest.hexdigest() != trailer.get("sha256"):
        raise BundleError(f"bundle {path} does not match its checksum (corrupt or edited)")
    return entries


def _json_line(line: bytes, path: Path, what: str) -> Any:
    try:
        return json.loads(line.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise BundleError(f"bundle {path} has no readable {what}") from None


def _entry(entry: Any, path: Path, i: int) -> dict[str, Any]:
    """Check every field of one entry; return it, or raise `BundleError` naming the defect."""
    try:
        _check_entry(entry)
    except (ValueError, TypeError, MmlabError) as exc:
        raise BundleError(f"bundle {path} entry {i + 1} is invalid: {exc}") from None
    return entry  # type: ignore[no-any-return]


def _check_entry(entry: Any) -> None:
    if not isinstance(entry, Mapping) or set(entry) != ENTRY_FIELDS:
        fields = sorted(entry) if isinstance(entry, Mapping) else type(entry).__name__
        raise ValueError(f"an entry has exactly {sorted(ENTRY_FIELDS)}; got {fields}")
    for name in ("key", "endpoint", "model"):
        if not isinstance(entry[name], str) or not entry[name]:
            raise ValueError(f"{name} must be a non-empty string")
    sample = entry["sample"]
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 0:
        raise ValueError("sample must be an integer >= 0")
    material = entry["request"]
    if not isinstance(material, Mapping) or set(material) != MATERIAL_FIELDS:
        raise ValueError("request must be key material {v, endpoint, request, sample}")
    if material["v"] != KEY_VERSION:
        raise ValueError(f"request.v is {material['v']!r}; this mmlab reads key version 1")
    for name in ("endpoint", "sample"):
        if material[name] != entry[name]:
            raise ValueError(f"{name} {entry[name]!r} disagrees with its request's")
    body = material["request"]
    if not isinstance(body, Mapping) or body.get("model") != entry["model"]:
        raise ValueError(f"model {entry['model']!r} disagrees with its request's")
    messages = body.get("messages")
    if check_messages(messages) != messages:  # type: ignore[arg-type]
        raise ValueError("request.messages are not in mmlab's canonical form")
    params = {k: v for k, v in body.items() if k not in ("model", "messages")}
    if check_params(params) != params:
        raise ValueError("request parameters are not in mmlab's canonical form")
    if cache_key(dict(material)) != entry["key"]:
        raise ValueError("key does not match its request")
    check_response(entry["response"])


def import_bundle(
    store: Store, path: str | os.PathLike[str], *, entries: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Load a bundle into the cache in one transaction; entries already present are kept.

    Returns the entry count and how many were new. Entries are recorded as coming from
    ``bundle:<sha256 of the file>``. `entries`: the bundle as `read_bundle` already read and
    verified it (the CLI reads first, so a rejected file never creates a database).
    """
    path = Path(path)
    entries = read_bundle(path) if entries is None else entries
    origin = origin_of(path)
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
                origin,
            )
            for e in entries
        ]
    )
    return {"count": len(entries), "added": added}


def origin_of(path: str | os.PathLike[str]) -> str:
    """How entries imported from the bundle at `path` are marked: ``bundle:<sha256 of the
    file>`` (the same bytes, the same origin, wherever the file is)."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return f"bundle:{sha.hexdigest()}"
