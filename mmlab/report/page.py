"""The report's one HTML file: template, styles, the call browser's script, plotly.js once,
the figures as JSON and the calls compressed.

Nothing is fetched when the page opens: plotly.js (plotly's own ``package_data/plotly.min.js``)
is inlined once, whatever the number of figures; figures are JSON the page's script draws with
it; the calls are gzip-compressed JSON in base64, inflated by the browser's own
``DecompressionStream("gzip")``. A Content-Security-Policy allows exactly the page's two
scripts (by their sha256), no connection, no frame, no plugin, images only as inline data — so
even a string that slipped past the escaping could run nothing and send nothing.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.resources
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .. import jsonfast
from .sanitize import esc, script_json

#: gzip level for the calls: 5 compresses study text within ~3% of 9, three times faster.
LEVEL = 5
#: The calls' texts, kept in a second element: the table inflates first and is usable while
#: these (most of a study's bytes) inflate.
TEXTS = ("messages", "reasoning", "answer")
#: Input per compression job: large enough that the 32 KB each job repeats (its dictionary)
#: costs nothing, small enough that a study of 100 MB keeps every core busy.
CHUNK = 4 << 20


def asset(name: str) -> str:
    """A file of the report's own (``assets/``): its script and styles."""
    return importlib.resources.files("mmlab.report").joinpath("assets", name).read_text("utf-8")


def plotly_js() -> str:
    """plotly.js as plotly ships it for offline use (``include_plotlyjs=True``'s copy)."""
    text = (
        importlib.resources.files("plotly")
        .joinpath("package_data", "plotly.min.js")
        .read_text("utf-8")
    )
    return _inline_script(text)


def _inline_script(text: str) -> str:
    """`text` checked to be safe inside ``<script>``: it must not close the element."""
    lowered = text.lower()
    if "</script" in lowered or "<!--" in lowered:
        raise ValueError("a script to inline contains </script or <!--")
    return text


def _hash(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


def policy(*scripts: str) -> str:
    """The page's Content-Security-Policy: only `scripts` run; nothing is fetched."""
    hashes = " ".join(_hash(s) for s in scripts)
    return (
        f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; "
        "img-src data: blob:; font-src data:; base-uri 'none'; form-action 'none'"
    )


def gzip_parallel(raw: bytes, level: int = LEVEL) -> bytes:
    """`raw` as one gzip member, compressed on every core (zlib releases the GIL).

    As pigz does it: the input is cut into chunks, each deflated on its own with the 32 KB
    before it as its dictionary and ended on a byte boundary (a sync flush), so the chunks'
    outputs joined are one deflate stream; the header and the CRC-32 trailer are gzip's.
    The bytes do not depend on the number of threads."""

    def deflate(i: int) -> bytes:
        start = i * CHUNK
        window = raw[max(0, start - 32768) : start]
        z = zlib.compressobj(level, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY,
                             **({"zdict": window} if window else {}))  # fmt: skip
        last = start + CHUNK >= len(raw)
        return z.compress(raw[start : start + CHUNK]) + z.flush(
            zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH
        )

    chunks = max(1, -(-len(raw) // CHUNK))
    with ThreadPoolExecutor(max_workers=min(chunks, os.cpu_count() or 1)) as pool:
        body = b"".join(pool.map(deflate, range(chunks)))
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, mtime 0
    trailer = struct.pack("<II", zlib.crc32(raw), len(raw) & 0xFFFFFFFF)
    return header + body + trailer


def compress(value: Any) -> str:
    """`value` as JSON, gzipped and base64-encoded (what the page's data element holds)."""
    raw = jsonfast.dumps(value).encode()
    return base64.b64encode(gzip_parallel(raw)).decode("ascii")


def decompress(text: str) -> Any:
    """The inverse of `compress` (for tests and tools that read a report)."""
    return jsonfast.loads(gzip.decompress(base64.b64decode(text)))


def page(
    *,
    title: str,
    header: str,
    body: str,
    figures: list[dict[str, Any]],
    calls: dict[str, Any],
    meta: dict[str, Any],
) -> str:
    """The whole report. `header` and `body` are HTML made safe by their makers; `figures`
    (plotly JSON), `calls` (`mmlab.report.calls.payload`) and `meta` are data."""
    app = _inline_script(asset("browser.js"))
    plotly = plotly_js()
    return "".join(
        (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
            f'<meta http-equiv="Content-Security-Policy" content="{esc(policy(plotly, app))}">\n',
            '<meta name="referrer" content="no-referrer">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            '<meta name="generator" content="mmlab report">\n',
            f"<title>{esc(title)}</title>\n<style>\n{asset('report.css')}\n</style>\n</head>\n",
            "<body>\n",
            header,
            "\n<main>\n",
            body,
            "\n</main>\n",
            '<script type="application/json" id="mm-meta">',
            script_json(meta),
            "</script>\n",
            '<script type="application/json" id="mm-figures">',
            script_json(figures),
            "</script>\n",
            '<script type="application/octet-stream" id="mm-calls" data-encoding="gzip+base64">',
            compress({k: v for k, v in calls.items() if k not in TEXTS}),
            # the browser's script runs here, before the bulk of the file is parsed: the table
            # is usable while the texts and plotly.js (after it) are still being read
            "</script>\n<script>",
            app,
            '</script>\n<script type="application/octet-stream" id="mm-texts" '
            'data-encoding="gzip+base64">',
            compress({k: calls.get(k, []) for k in TEXTS}),
            # plotly.js waits as data: the browser script runs it (allowed by its hash) once
            # the call browser is up, so a large study is usable before its figures are drawn
            '</script>\n<script type="text/plain" id="mm-plotly">',
            plotly,
            "</script>\n</body>\n</html>\n",
        )
    )


__all__ = ["CHUNK", "LEVEL", "TEXTS", "asset", "compress", "decompress", "gzip_parallel", "page",
           "plotly_js", "policy"]  # fmt: skip
