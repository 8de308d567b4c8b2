"""The ledger: what mmlab logged, checked against what OpenRouter recorded and billed.

Two checks, both read-only on the account:

- **Per call** (`generation_record`): OpenRouter keeps a record of every generation
  (``GET /generation?id=``: native token counts, the provider that served it, the model that
  answered, timings, ``total_cost``, ``cache_discount``, finish reasons). `Lab.reconcile`
  fetches it for each paid call, stores it beside the log and lists every field where the
  record and the reply's usage block disagree.
- **Per key** (`Account`): ``GET /key`` reports the key's total usage in USD. Read before and
  after a block of work, its growth is what the account was charged meanwhile; the log's
  spend over the same window should match it (goal: within 1%). The key's usage counts every
  use of the key — other programs, other machines — and OpenRouter updates it with a lag, so
  `Account` waits (briefly, bounded) for it to settle and says what it compared.

Server replies are untrusted: every number is checked (finite, >= 0) before it is used.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .loop import run_sync
from .pricing import NOT_BILLED
from .wire import reported_number

if TYPE_CHECKING:
    import pandas as pd

    from .endpoints import Endpoint
    from .engine import Engine

#: Relative difference between two costs treated as agreement (float formatting upstream).
COST_TOLERANCE = 1e-6
#: A key's logged spend and its usage growth agree when within this share of each other.
ACCOUNT_TOLERANCE = 0.01


def _count(x: Any) -> int | None:
    """A token count from an untrusted record: a whole number SQLite can store, else None."""
    v = reported_number(x)
    return int(v) if v is not None and v == int(v) else None


def _text(x: Any) -> str | None:
    return x[:200] if isinstance(x, str) and x else None


def generation_record(call: Mapping[str, Any], data: Any, now: float) -> dict[str, Any]:
    """The ``generations`` row for a logged call (`call`: its log fields) and OpenRouter's
    record of it (`data`, untrusted), with the fields where they disagree in
    ``disagreements`` (a JSON list of ``{field, logged, recorded}``; empty: they agree)."""
    data = data if isinstance(data, Mapping) else {}
    ms = 1000.0
    latency = reported_number(data.get("latency"))
    gen_time = reported_number(data.get("generation_time"))
    record = {
        "call_id": call["call_id"],
        "generation_id": call["generation_id"],
        "fetched": now,
        "provider": _text(data.get("provider_name")),
        "model": _text(data.get("model")),
        "native_prompt_tokens": _count(data.get("native_tokens_prompt")),
        "native_completion_tokens": _count(data.get("native_tokens_completion")),
        "native_reasoning_tokens": _count(data.get("native_tokens_reasoning")),
        "native_cached_tokens": _count(data.get("native_tokens_cached")),
        "total_cost": reported_number(data.get("total_cost")),
        "cache_discount": reported_number(data.get("cache_discount")),
        "latency_s": None if latency is None else latency / ms,
        "generation_time_s": None if gen_time is None else gen_time / ms,
        "finish_reason": _text(data.get("finish_reason")),
        "native_finish_reason": _text(data.get("native_finish_reason")),
    }
    found = []
    pairs = [
        ("prompt_tokens", "native_prompt_tokens"),
        ("completion_tokens", "native_completion_tokens"),
        ("reasoning_tokens", "native_reasoning_tokens"),
        ("cached_tokens", "native_cached_tokens"),
        ("provider", "provider"),
        ("served_model", "model"),
        ("finish_reason", "finish_reason"),
    ]
    for mine, theirs in pairs:
        logged, recorded = _plain(call.get(mine)), record[theirs]
        if logged is not None and recorded is not None and logged != recorded:
            found.append({"field": mine, "logged": logged, "recorded": recorded})
    logged_cost, billed = _plain(call.get("cost_usd")), record["total_cost"]
    if logged_cost is not None and billed is not None:
        if abs(logged_cost - billed) > COST_TOLERANCE * max(billed, 1e-9):
            found.append({"field": "cost_usd", "logged": logged_cost, "recorded": billed})
    record["disagreements"] = json.dumps(found)
    return record


def _plain(x: Any) -> Any:
    """A value from a pandas row as plain Python (NaN and <NA> → None)."""
    if x is None:
        return None
    try:
        if x != x:  # NaN
            return None
    except TypeError:  # pandas NA
        return None
    if hasattr(x, "item"):
        return x.item()
    return x


async def reconcile(
    engine: Engine, scope: str | None, *, attempts: int, wait_s: float
) -> pd.DataFrame:
    """Join each paid call under tag `scope` with its endpoint's record of it (see
    `mmlab.lab.Lab.reconcile`): fetch the records not fetched yet (each id retried `attempts`
    times, `wait_s` apart, while it 404s), store them, re-bill calls whose cost was not from
    the bill, and return every reconciled call under `scope`."""
    sources = [e for e in engine.all_endpoints() if e.capabilities.generation_lookup]
    if not sources:
        raise ConfigError(
            f"reconcile needs an endpoint with generation records (GET /generation, as "
            f"OpenRouter has); {engine.endpoint.label} has none"
        )
    if engine.cache_mode == "replay":
        raise ConfigError("reconcile talks to the network; not in replay mode")
    store = engine.store
    gate = asyncio.Semaphore(8)  # a few lookups at once: 1,000 calls in seconds, politely

    async def one(endpoint: Endpoint, call: dict[str, Any]) -> dict[str, Any] | None:
        async with gate:
            data = await _generation(engine, endpoint, call["generation_id"], attempts, wait_s)
        if data is None:
            return None
        record = generation_record(call, data, time.time())
        billed = record["total_cost"]
        rebill = ("unknown", "computed", *NOT_BILLED)  # never a figure OpenRouter gave
        if call["cost_source"] in rebill and billed is not None:
            # a failed attempt has no cache entry of its own: only its log row is re-billed
            entry = call["cache_key"] if call.get("error") is None else None
            await asyncio.to_thread(store.rebill, call["call_id"], entry, billed)
        return record

    for endpoint in dict.fromkeys(sources):
        todo = await asyncio.to_thread(store.unreconciled_calls, endpoint.identity, scope)
        found = await asyncio.gather(*(one(endpoint, c) for c in todo.to_dict("records")))
        await asyncio.to_thread(store.put_generations, [r for r in found if r])
    return await asyncio.to_thread(store.generations_frame, scope)


async def _generation(
    engine: Engine, endpoint: Endpoint, gen_id: str, attempts: int, wait_s: float
) -> Any:
    for attempt in range(attempts):
        status, data = await endpoint.generation(engine.http, gen_id)
        if status == 200 and isinstance(data, dict):
            return data
        if status != 404 or attempt == attempts - 1:
            return None
        await asyncio.sleep(wait_s)  # the record lags the completion: a documented wait
    return None


@dataclass
class Account:
    """The key's usage (``GET /key``) around a block of work, against the log's spend.

        with lab.account() as acct:
            sweep.run()
        acct            # key usage grew $0.0412; the log spent $0.0412 in 35 calls: agrees

    ``key_delta_usd`` (the growth of the key's ``usage``) counts everything the key paid for
    meanwhile, from anywhere; ``logged_usd`` is what this database logged as spent in the
    window. After the block, the key is re-read until its usage reaches the logged spend or
    `settle_s` passes (OpenRouter updates it with a lag).
    """

    engine: Engine
    settle_s: float = 15.0
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    started: float = 0.0
    ended: float = 0.0
    logged_usd: float = 0.0
    logged_calls: int = 0
    notes: list[str] = field(default_factory=list)

    def __enter__(self) -> Account:
        return run_sync(self.__aenter__())

    def __exit__(self, *exc: object) -> None:
        run_sync(self.__aexit__(*exc))

    async def __aenter__(self) -> Account:
        self.before = await self.read()
        self.started = time.time()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.ended = time.time()
        self.logged_usd, self.logged_calls = await asyncio.to_thread(
            self.engine.store.spent_between, self.started, self.ended, self.engine.endpoint.identity
        )
        if exc and exc[0] is not None:
            # the block failed: one read, no waiting, and nothing here may replace its error
            try:
                self.after = await self.read()
            except Exception as e:  # noqa: BLE001 - the block's own exception must surface
                self.notes.append(f"the key could not be read after the failed block: {e}")
            return
        deadline = time.monotonic() + self.settle_s
        wait = 0.25
        while True:
            self.after = await self.read()
            if self.key_delta_usd + 1e-12 >= self.logged_usd or time.monotonic() >= deadline:
                break
            # the key's usage lags the calls: poll with backoff, bounded by settle_s
            await asyncio.sleep(min(wait, max(deadline - time.monotonic(), 0)))
            wait = min(wait * 2, 4.0)
        if self.key_delta_usd + 1e-12 < self.logged_usd:
            self.notes.append(f"the key's usage had not caught up after {self.settle_s:g} s")

    async def read(self) -> dict[str, Any]:
        """The key's record now: ``usage``, ``limit``, ``limit_remaining`` (None: no limit;
        negative: overshot) and ``usage_daily``, in USD."""
        endpoint = self.engine.endpoint
        if not endpoint.capabilities.key_usage:
            raise ConfigError(
                f"account needs an endpoint that reports its key's usage (GET /key, as "
                f"OpenRouter has); {endpoint.label} has none"
            )
        if self.engine.cache_mode == "replay":
            raise ConfigError("account talks to the network; not in replay mode")
        status, data = await endpoint.key_info(self.engine.http)
        usage = reported_number(data.get("usage")) if isinstance(data, Mapping) else None
        if status != 200 or usage is None:
            raise ConfigError(f"GET /key did not report the key's usage (HTTP {status})")
        return {
            "usage": usage,
            "limit": reported_number(data.get("limit")),
            # may be negative (a key that overshot its limit): None would read as "no limit"
            "limit_remaining": reported_number(data.get("limit_remaining"), signed=True),
            "usage_daily": reported_number(data.get("usage_daily")),
        }

    @property
    def key_delta_usd(self) -> float:
        """How much the key's usage grew between the two reads."""
        if self.before is None or self.after is None:
            return math.nan
        return self.after["usage"] - self.before["usage"]

    @property
    def difference_usd(self) -> float:
        """Key growth minus logged spend (> 0: the account paid for more than was logged)."""
        return self.key_delta_usd - self.logged_usd

    @property
    def agrees(self) -> bool:
        """Logged spend within `ACCOUNT_TOLERANCE` of the key's growth (both ~0 agrees)."""
        scale = max(abs(self.key_delta_usd), abs(self.logged_usd))
        return scale < 1e-9 or abs(self.difference_usd) <= ACCOUNT_TOLERANCE * scale

    def __repr__(self) -> str:
        if self.after is None:
            return "Account(open: the key was read; the block has not ended)"
        verdict = "agrees" if self.agrees else "DISAGREES"
        share = (
            f" ({self.difference_usd / self.key_delta_usd:+.1%} of the key's growth)"
            if self.key_delta_usd > 0
            else ""
        )
        text = (
            f"key usage grew ${self.key_delta_usd:.6f}; the log spent ${self.logged_usd:.6f} in "
            f"{self.logged_calls} calls: {verdict} within {ACCOUNT_TOLERANCE:.0%}; difference "
            f"${self.difference_usd:+.6f}{share}"
        )
        if not self.agrees and self.difference_usd > 0:
            text += (
                " — the key paid for more than was logged: other use of the key meanwhile"
            )
        elif not self.agrees:
            text += (
                " — the log charged more than the key paid: attempts that failed after they "
                "began (and replies without readable usage) are charged their worst case until "
                "lab.reconcile() puts the bill in its place"
            )
        if self.notes:
            text += "; " + "; ".join(self.notes)
        return text
