"""Check mmlab's client against real recorded traffic: the realwire fixtures, served by their
replay server over loopback, read by `Lab` exactly as a researcher's call would be.

    python bench/realwire_check.py [--realwire ../shared/realwire] [-v]

For every fixture it starts nothing new but one replay server (stdlib, from the realwire
folder), points a `Lab` at ``/fx/NAME/api/v1`` (OpenRouter's endpoint when the recording was
made against OpenRouter, a plain OpenAI-compatible one otherwise), makes the call the recording
answers (streamed or not) and compares what mmlab read with the fixture's ``expect`` block:
outcome, content, reasoning, finish reason, truncation, token counts, billed cost, provider,
generation id, TTFT, reasoning mode, error status/retryability and the upstream reason in the
message (``advisory``). Prints one row per fixture and exits 1 if any required field differs.

The fixtures are other projects' recordings and are not part of this repository; the
behaviours they show are covered by our own stand-in cases in tests/test_realwire.py.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mmlab import Lab
from mmlab.endpoints import OpenRouter
from mmlab.errors import APIError
from mmlab.retry import RetryPolicy

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "realwire"
KEY = "sk-or-v1-realwire-check-0000000000000000"
TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens")


def _start(folder: Path, tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    portfile = tmp / "port"
    proc = subprocess.Popen(
        [sys.executable, str(folder / "replay_server.py"), "--portfile", str(portfile),
         "--log", str(tmp / "requests.jsonl"), "--no-sleep"],  # fmt: skip
    )
    deadline = time.monotonic() + 20
    while not (portfile.exists() and portfile.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the replay server did not start")
        time.sleep(0.05)  # waiting for another process to write a file: nothing to await
    return proc, int(portfile.read_text().strip())


def _same_text(got: str, want: str, strip: bool) -> bool:
    return got.strip() == want.strip() if strip else got == want


def _read(lab: Lab, fx: dict[str, Any]) -> dict[str, Any]:
    """What mmlab reads from the fixture: the result's fields, or the error's."""
    try:
        r = lab.chat("hello", stream=bool(fx["stream"]), max_tokens=64)
    except APIError as exc:
        return {"outcome": "error", "status": exc.status, "retryable": exc.retryable,
                "mid_stream": exc.mid_stream, "message": str(exc)}  # fmt: skip
    out = {
        "outcome": "ok",
        "content": r.content,
        "reasoning": r.reasoning,
        "finish_reason": r.finish_reason,
        "truncated": r.truncated,
        "cost_usd": r.cost_usd,
        "cost_source": r.cost_source,
        "provider": r.provider,
        "generation_id": r.generation_id,
        "ttft": r.ttft_s is not None,
        "reasoning_mode": r.reasoning_mode,
        "model": r.model,
    }
    out.update({k: getattr(r.usage, k) for k in TOKEN_FIELDS})
    return out


def _compare(expect: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """Every required expectation `got` misses, as 'field: want ≠ got'."""
    bad = []
    if got["outcome"] != expect["outcome"]:
        return [f"outcome: {expect['outcome']} ≠ {got['outcome']} ({got.get('message', '')})"]
    strip = expect.get("text_compare") == "strip"
    if expect["outcome"] == "error":
        err = expect.get("error", {})
        for k in ("status", "retryable", "mid_stream"):
            if k in err and err[k] != got[k]:
                bad.append(f"error.{k}: {err[k]} ≠ {got[k]}")
        need = expect.get("advisory", {}).get("error_message_contains")
        if need and need not in got["message"]:
            bad.append(f"message lacks {need!r}: {got['message'][:120]!r}")
        return bad
    # "advisory" fields are not required by the fixtures' authors; mmlab holds itself to them
    wanted = {**expect, **expect.get("advisory", {})}
    for k, want in wanted.items():
        if k in ("outcome", "text_compare", "advisory", "error", "note"):
            continue
        if k == "cost_source_not":
            if got["cost_source"] == want:
                bad.append(f"cost_source must not be {want!r}")
            continue
        have = got.get(k)
        if k in ("content", "reasoning"):
            ok = _same_text(have or "", want or "", strip)
        elif k == "cost_usd":
            ok = have is not None and math.isclose(have, want, rel_tol=1e-9, abs_tol=1e-12)
        else:
            ok = have == want
        if not ok:
            bad.append(f"{k}: {str(want)[:60]!r} ≠ {str(have)[:60]!r}")
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--realwire", type=Path, default=Path(os.environ.get("REALWIRE", DEFAULT)))
    ap.add_argument("-v", "--verbose", action="store_true", help="print every difference")
    args = ap.parse_args()
    fixtures = sorted((args.realwire / "fixtures").glob("*.json"))
    if not fixtures:
        raise SystemExit(f"no fixtures under {args.realwire}/fixtures")
    failed = 0
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        server, port = _start(args.realwire, tmp)
        try:
            print("| fixture | outcome | mmlab reads it | differences |\n|---|---|---|---|")
            for path in fixtures:
                fx = json.loads(path.read_text())
                name = path.stem
                url = f"http://127.0.0.1:{port}/fx/{name}/api/v1"
                endpoint = OpenRouter(url, KEY) if fx.get("openrouter") else None
                lab = Lab(endpoint=endpoint, base_url=None if endpoint else url, api_key=KEY,
                          db=tmp / f"{name}.db", cache="off", quiet=True,
                          retry=RetryPolicy(max_retries=0), model="minimax/minimax-m1")  # fmt: skip
                try:
                    got = _read(lab, fx)
                finally:
                    lab.close()
                bad = _compare(fx["expect"], got)
                failed += bool(bad)
                shown = "; ".join(bad) if args.verbose else (bad[0] if bad else "")
                print(f"| {name} | {fx['expect']['outcome']} | {'no' if bad else 'yes'} "
                      f"| {shown} |")  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(f"\n{len(fixtures) - failed} of {len(fixtures)} recordings read correctly")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
