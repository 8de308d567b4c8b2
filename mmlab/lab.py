"""`Lab`: the one object a notebook holds. It owns the endpoint, cache, log and budget.

    request → validate → cache key → (cache hit | budget check → HTTP → parse) → log → result

`Lab` is the `Engine` (the call path, `mmlab.engine`) with the user's face on it: settings
resolved from arguments and the environment, ``chat``/``achat``, the log as DataFrames,
reconciliation and sweeps. Cache hits are served on the caller's thread without touching the
event loop or the network; misses run on mmlab's background loop (sync face) or the caller's
loop (async face), through the same coroutine.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import jsonfast
from .bundle import import_bundle
from .config import (
    DEFAULT_MODEL,
    Timeouts,
    default_db_path,
    env,
    resolve_budget,
    resolve_cache_mode,
)
from .endpoints import Endpoint, resolve_endpoint
from .engine import Call, Engine
from .errors import ConfigError
from .loop import run_sync
from .result import Result
from .retry import RetryPolicy
from .store import Store
from .sweep import Space, Sweep
from .tags import check_tag
from .wire import Delta

if TYPE_CHECKING:
    import pandas as pd

_ANNOUNCED: set[tuple[str, str, str]] = set()


class Lab(Engine):
    """Cached, logged, budgeted calls to MiniMax M1 (or any OpenAI-compatible endpoint).

    Args:
        model: model id; default ``MMLAB_MODEL``, else ``minimax/minimax-m1`` (remote) or the
            embedded model's id (local).
        base_url: an OpenAI-compatible endpoint; default: OpenRouter when a key is set, else
            ``MMLAB_BASE_URL``, else the embedded local model. OpenRouter is recognised by its
            URL (``openrouter.ai``).
        api_key: OpenRouter (or endpoint) key; default ``OPENROUTER_API_KEY``. Never stored.
        db: SQLite file for cache and log; default ``MMLAB_DB`` or the data dir.
        cache: use | refresh | replay | off; default ``MMLAB_CACHE`` or ``use``.
        budget_usd: refuse calls whose worst case could push spend past this cap; default
            ``MMLAB_BUDGET_USD``. Spend is read from the log (scoped to `tag` when set).
        tag: a label stored with every call (a study, a notebook); scopes the budget, log
            and bundle. Per-call and sweep tags nest below it (``study/x``).
        bundle: a bundle file to replay from: imported into the cache when ``cache`` is
            ``replay`` (how notebooks rerun offline); ignored by live modes.
        endpoint: an `mmlab.endpoints.Endpoint` to use instead of resolving one (e.g.
            ``OpenRouter(base_url=..., api_key=...)`` for a server speaking OpenRouter's
            extras on another URL).
        timeouts: transport timeouts (see `Timeouts`).
        retry: retry policy (see `RetryPolicy`).
        app_url, app_title: OpenRouter attribution headers (HTTP-Referer, X-OpenRouter-Title).
        transport: an httpx transport replacing the sockets (``httpx.MockTransport`` in unit
            tests).
        bundle_savings: count cache hits on entries imported from bundles as money saved
            (off: a bundle's costs are its author's word, not money this project paid).
        quiet: do not announce the endpoint.
    """

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        db: str | Path | None = None,
        cache: str | None = None,
        budget_usd: float | None = None,
        *,
        tag: str | None = None,
        bundle: str | Path | None = None,
        endpoint: Endpoint | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        app_url: str | None = None,
        app_title: str | None = "mmlab",
        transport: Any = None,
        bundle_savings: bool = False,
        quiet: bool = False,
    ) -> None:
        cache_mode = resolve_cache_mode(cache)
        budget = resolve_budget(budget_usd)
        if tag is not None:
            try:
                tag = check_tag(tag)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        if endpoint is None:
            headers = {}
            if app_url:
                headers["HTTP-Referer"] = app_url
            if app_title:
                headers["X-OpenRouter-Title"] = app_title
            endpoint = resolve_endpoint(
                base_url, api_key, headers, replay=cache_mode == "replay"
            )
        elif not isinstance(endpoint, Endpoint):
            raise ConfigError(f"endpoint must be an mmlab.endpoints.Endpoint; got {endpoint!r}")
        super().__init__(
            endpoint,
            Store(db if db is not None else default_db_path()),
            model=model or endpoint.default_model or env("MMLAB_MODEL") or DEFAULT_MODEL,
            cache_mode=cache_mode,
            budget_usd=budget,
            tag=tag,
            timeouts=timeouts or Timeouts(),
            retry=retry or RetryPolicy(),
            transport=transport,
            bundle_savings=bundle_savings,
        )
        bundle = bundle if bundle is not None else env("MMLAB_BUNDLE")
        if bundle is not None and self.cache_mode == "replay":
            # A bundle is a replay source; live modes ignore it so that a live run makes
            # fresh calls (seed a live cache on purpose with `mmlab bundle import`).
            import_bundle(self.store, bundle)
        if not quiet:
            self._announce()

    # --- presentation -------------------------------------------------------------------------
    def _announce(self) -> None:
        said = (self.endpoint.identity, self.model, self.cache_mode)
        if said in _ANNOUNCED:
            return
        _ANNOUNCED.add(said)
        mode = " (replay: no network)" if self.cache_mode == "replay" else ""
        # In a notebook, stdout: JupyterLab paints stderr pink, like an error. In a terminal,
        # stderr, so that piped output stays clean.
        stream = sys.stdout if _in_notebook() else sys.stderr
        print(
            f"mmlab: {self.endpoint.label} · model {self.model} · cache {self.cache_mode}{mode}",
            file=stream,
        )

    def __repr__(self) -> str:
        budget = "none" if self.budget_usd is None else f"${self.budget_usd:g}"
        return (
            f"Lab(model={self.model!r}, endpoint={self.endpoint.label!r}, "
            f"cache={self.cache_mode!r}, db={str(self.store.path)!r}, budget={budget}, "
            f"tag={self.tag!r}, api_key={'set' if self.endpoint.api_key else 'none'})"
        )

    # --- asking -------------------------------------------------------------------------------
    def chat(
        self,
        prompt: str | list[Mapping[str, Any]],
        *,
        system: str | None = None,
        stream: bool = False,
        sample: int = 0,
        tag: str | None = None,
        on_delta: Callable[[Delta], None] | None = None,
        **params: Any,
    ) -> Result:
        """Ask the model. Parameters (see `mmlab.params`): temperature, top_p, top_k, min_p,
        top_a, max_tokens, seed, stop, frequency_penalty, presence_penalty,
        repetition_penalty, logprobs, top_logprobs, logit_bias, response_format, reasoning,
        provider, user.

        `stream=True` streams (``on_delta`` receives ``(kind, text)`` with kind
        ``reasoning``, ``content`` or ``reset`` — a retried stream starts over, so drop the
        text shown so far) and measures time-to-first-token; `sample` picks a distinct cache
        entry for repeats; `tag` nests under the lab's tag.
        """
        call = self.prepare(prompt, system=system, sample=sample, tag=tag, **params)
        hit = self.lookup(call, on_delta)
        if hit is not None:
            return hit
        return run_sync(self.send(call, stream=stream, on_delta=on_delta))

    async def achat(
        self,
        prompt: str | list[Mapping[str, Any]],
        *,
        system: str | None = None,
        stream: bool = False,
        sample: int = 0,
        tag: str | None = None,
        on_delta: Callable[[Delta], None] | None = None,
        **params: Any,
    ) -> Result:
        """Async `chat`: same arguments, same result."""
        call = self.prepare(prompt, system=system, sample=sample, tag=tag, **params)
        hit = self.lookup(call, on_delta)
        if hit is not None:
            return hit
        return await self.send(call, stream=stream, on_delta=on_delta)

    # --- the log ------------------------------------------------------------------------------
    def calls(self, tag: str | None = None, *, all_tags: bool = False) -> pd.DataFrame:
        """The usage log as a DataFrame, one row per call (hits and errors included).

        Defaults to this lab's tag when it has one; `all_tags=True` shows everything. Request
        parameters are expanded into columns (``temperature``, ``max_tokens``, ...).
        """
        import pandas as pd

        scope = None if all_tags else (tag if tag is not None else self.tag)
        df = self.store.calls_frame(scope)
        if len(df):
            params = pd.json_normalize([jsonfast.loads(p or "{}") for p in df["params"]])
            params.index = df.index
            df = df.join(params[[c for c in params.columns if c not in df.columns]])
        return df

    def summary(self, by: str = "tag", tag: str | None = None) -> pd.DataFrame:
        """Totals of the log grouped `by` day | model | tag | endpoint | provider: calls, hits,
        errors, tokens, spent and saved USD."""
        return self.store.usage_summary(by, tag if tag is not None else self.tag)

    # --- reconciliation -----------------------------------------------------------------------
    def reconcile(self, *, attempts: int = 5, wait_s: float = 1.0) -> pd.DataFrame:
        """Fill missing or computed costs from OpenRouter's ``GET /generation`` (billed).

        The generation record can 404 for a moment after a completion, so each id is retried
        `attempts` times, `wait_s` apart. Returns the rows it updated.
        """
        return run_sync(self.areconcile(attempts=attempts, wait_s=wait_s))

    async def areconcile(self, *, attempts: int = 5, wait_s: float = 1.0) -> pd.DataFrame:
        """Async `reconcile`."""
        import pandas as pd

        if not self.endpoint.capabilities.generation_lookup:
            raise ConfigError(
                f"reconcile needs an endpoint with generation records (GET /generation, as "
                f"OpenRouter has); {self.endpoint.label} has none"
            )
        if self.cache_mode == "replay":
            raise ConfigError("reconcile talks to the network; not in replay mode")
        updated = []
        for call_id, gen_id, key in self.store.unbilled_calls(self.endpoint.identity):
            cost = await self._billed_cost(gen_id, attempts, wait_s)
            if cost is None:
                continue
            await asyncio.to_thread(self.store.rebill, call_id, key, cost)
            updated.append({"call_id": call_id, "generation_id": gen_id, "cost_usd": cost})
        return pd.DataFrame(updated, columns=["call_id", "generation_id", "cost_usd"])

    async def _billed_cost(self, gen_id: str, attempts: int, wait_s: float) -> float | None:
        for attempt in range(attempts):
            status, data = await self.endpoint.generation(self.http, gen_id)
            if status == 200 and isinstance(data, dict) and data.get("total_cost") is not None:
                return float(data["total_cost"])
            if status != 404 or attempt == attempts - 1:
                return None
            await asyncio.sleep(wait_s)  # the record lags the completion: a documented wait
        return None

    # --- sweeps -------------------------------------------------------------------------------
    def sweep(
        self,
        prompts: Any,
        params: Space | Any = None,
        *,
        repeats: int = 1,
        tag: str | None = None,
        system: str | None = None,
        scorer: Callable[..., Any] | None = None,
        **fixed: Any,
    ) -> Sweep:
        """Define a sampling-parameter sweep (see `mmlab.sweep.Sweep`)."""
        return Sweep(
            self,
            prompts,
            params,
            repeats=repeats,
            tag=tag,
            system=system,
            scorer=scorer,
            fixed=fixed,
        )

    def close(self) -> None:
        """Write queued rows and close this thread's database connection."""
        self.store.close()


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None  # type: ignore[attr-defined]
    return type(shell).__name__ == "ZMQInteractiveShell"


__all__ = ["Call", "Lab"]
