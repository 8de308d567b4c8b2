"""`Lab`: the one object a notebook holds — what a researcher calls, and nothing else.

    request → validate → cache key → (cache hit | budget check → HTTP → parse) → log → result

A `Lab` *holds* an `Engine` (the call path, `mmlab.engine`), the way inspect's ``Model`` holds
a ``ModelAPI``: the lab resolves settings from arguments and the environment and offers
``chat``/``achat``, the log as DataFrames, the ledger, sweeps, scaling curves and probes; the
machinery (cache lookups, reservations, routing, log rows) stays on ``lab.engine``. Cache hits
are served on the caller's thread without touching the event loop or the network; misses run
on mmlab's background loop (sync face) or the caller's loop (async face), through the same
coroutine.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import jsonfast
from .bundle import import_bundle, origin_of
from .config import (
    DEFAULT_MODEL,
    Timeouts,
    default_db_path,
    env,
    resolve_budget,
    resolve_cache_mode,
    resolve_trust_imports,
)
from .endpoints import Endpoint, endpoint_for_url, resolve_endpoint
from .engine import DEFAULT_ENDPOINT, Call, Engine
from .errors import ConfigError
from .fields import typed
from .ledger import Account, reconcile
from .loop import run_sync
from .params import param_frame
from .pricing import PriceTable, reprice_usage
from .probe import ProbeResult
from .probe import analyse as probe_result
from .probe import build as probe_sweep
from .report import Written
from .report import write as write_report
from .result import Result
from .retry import RetryPolicy
from .scaling import ANSWER_TOKENS, ScalingCurve, build_curve
from .scaling import points as scaling_points
from .store import Store
from .sweep import Space, Sweep
from .tags import check_tag
from .wire import Delta

if TYPE_CHECKING:
    import pandas as pd

    from .stop import Rule

_ANNOUNCED: set[tuple[str, str, str]] = set()


def _named_endpoints(
    given: Mapping[str, Endpoint | str] | None,
    api_key: str | None,
    headers: dict[str, str],
    given_for: str,
) -> dict[str, Endpoint]:
    """`Lab(endpoints=...)` checked: names to endpoints (a URL string becomes one, with a key
    and headers by the one key policy, `mmlab.endpoints.endpoint_for_url`)."""
    out: dict[str, Endpoint] = {}
    if given is None:
        return out
    if not isinstance(given, Mapping):
        raise ConfigError("endpoints must be a mapping of names to endpoints or base URLs")
    for name, value in given.items():
        if not isinstance(name, str) or not name.strip() or name == DEFAULT_ENDPOINT:
            raise ConfigError(
                f"endpoint names must be non-empty strings other than {DEFAULT_ENDPOINT!r} "
                f"(the lab's own endpoint); got {name!r}"
            )
        if isinstance(value, str):
            value = endpoint_for_url(value, api_key, headers, given_for=given_for)
        if not isinstance(value, Endpoint):
            raise ConfigError(f"endpoints[{name!r}] must be an Endpoint or a base URL")
        out[name] = value
    return out


class Lab:
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
        endpoints: further endpoints by name — an `Endpoint` or a base URL (OpenRouter's
            URL takes ``OPENROUTER_API_KEY``) — so that ``endpoint="name"`` sends a call there
            and a sweep can take ``endpoint`` as an axis (OpenRouter against a self-hosted
            vLLM serving the open weights). Each is priced, keyed and logged as itself.
        trust_imports: let answers imported from bundles answer *live* calls too. Off by
            default: a bundle is someone else's recording — replay uses it, a live call
            is sent (and its own answer cached beside the import). Every result and log row
            answered from an import names its bundle (``origin``). Default:
            ``MMLAB_TRUST_IMPORTS`` (1 or 0), else off.
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
        endpoints: Mapping[str, Endpoint | str] | None = None,
        trust_imports: bool | None = None,
    ) -> None:
        cache_mode = resolve_cache_mode(cache)
        budget = resolve_budget(budget_usd)
        if tag is not None:
            try:
                tag = check_tag(tag)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        headers = {}
        if app_url:
            headers["HTTP-Referer"] = app_url
        if app_title:
            headers["X-OpenRouter-Title"] = app_title
        if endpoint is None:
            endpoint = resolve_endpoint(
                base_url, api_key, headers, replay=cache_mode == "replay"
            )
        elif not isinstance(endpoint, Endpoint):
            raise ConfigError(f"endpoint must be an mmlab.endpoints.Endpoint; got {endpoint!r}")
        self.engine = Engine(
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
            endpoints=_named_endpoints(endpoints, api_key, headers, endpoint.base_url),
            trust_imports=resolve_trust_imports(trust_imports),
        )
        """The call path this lab's calls take (cache, budget, retries, pricing, log)."""
        bundle = bundle if bundle is not None else env("MMLAB_BUNDLE")
        if bundle is not None and self.cache_mode == "replay":
            # A bundle is a replay source; live modes ignore it so that a live run makes
            # fresh calls (seed a live cache on purpose with `mmlab bundle import`).
            import_bundle(self.engine.store, bundle)
            self.engine.prefer_origin = origin_of(bundle)  # its own answers win on replay
        if not quiet:
            self._announce()

    # --- what the lab is ------------------------------------------------------------------------
    @property
    def model(self) -> str:
        """The model every call asks unless it names another."""
        return self.engine.model

    @property
    def endpoint(self) -> Endpoint:
        """Where calls go (`mmlab.endpoints`): its ``label``, ``identity`` and capabilities."""
        return self.engine.endpoint

    @property
    def tag(self) -> str | None:
        """The tag every call is logged under (per-call and sweep tags nest below it)."""
        return self.engine.tag

    @property
    def cache_mode(self) -> str:
        """use | refresh | replay | off."""
        return self.engine.cache_mode

    @property
    def budget_usd(self) -> float | None:
        """The cap on spend under this lab's tag (None: no cap)."""
        return self.engine.budget_usd

    @property
    def db(self) -> Path:
        """The SQLite file holding the cache and the usage log."""
        return self.engine.store.path

    @property
    def prices(self) -> PriceTable:
        """The price table in use: the endpoint's live list when it has one (OpenRouter's
        ``/models``, cached for a day), else its static table."""
        return self.engine.prices

    def spent_usd(self, tag: str | None = None) -> float:
        """USD spent by logged calls under `tag` (default: this lab's tag; the whole
        database when the lab has none)."""
        return self.engine.spent_usd(tag)

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
            f"cache={self.cache_mode!r}, db={str(self.db)!r}, budget={budget}, "
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
        """Ask the model. Parameters (see `mmlab.params`): model, endpoint, temperature,
        top_p, top_k, min_p, top_a, max_tokens, seed, stop, frequency_penalty,
        presence_penalty, repetition_penalty, logprobs, top_logprobs, logit_bias,
        response_format, reasoning, provider (a routing dict, or a provider name: pinned),
        user.

        `stream=True` streams (``on_delta`` receives ``(kind, text)`` with kind
        ``reasoning``, ``content`` or ``reset`` — a retried stream starts over, so drop the
        text shown so far) and measures time-to-first-token; `sample` picks a distinct cache
        entry for repeats; `tag` nests under the lab's tag.
        """
        engine = self.engine
        call = engine.prepare(prompt, system=system, sample=sample, tag=tag, **params)
        result = engine.lookup(call, on_delta)
        if result is None:
            result = run_sync(engine.send(call, stream=stream, on_delta=on_delta))
        return _said(call, result)

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
        engine = self.engine
        call = engine.prepare(prompt, system=system, sample=sample, tag=tag, **params)
        result = engine.lookup(call, on_delta)
        if result is None:
            result = await engine.send(call, stream=stream, on_delta=on_delta)
        return _said(call, result)

    # --- the log ------------------------------------------------------------------------------
    def calls(self, tag: str | None = None, *, all_tags: bool = False) -> pd.DataFrame:
        """The usage log as a DataFrame, one row per call (hits and errors included).

        Defaults to this lab's tag when it has one; `all_tags=True` shows everything. Request
        parameters are expanded into columns (``temperature``, ``max_tokens``, ...).
        """
        scope = None if all_tags else (tag if tag is not None else self.tag)
        df = typed(self.engine.store.calls_frame(scope))
        if len(df):
            params = param_frame([jsonfast.loads(p or "{}") for p in df["params"]])
            params.index = df.index
            df = df.join(params[[c for c in params.columns if c not in df.columns]])
        return df

    def summary(
        self,
        by: str | Sequence[str] = "tag",
        tag: str | None = None,
        *,
        reprice: str | None = None,
    ) -> pd.DataFrame:
        """Totals of the log grouped `by` one or more of day | model | tag | endpoint |
        provider (``["day", "model"]``): calls, hits, errors, tokens, spent and saved USD.

        `reprice` (a model id, e.g. ``"minimax/minimax-m1"``): also what the same tokens
        would cost at that model's list prices — ``repriced_spent_usd`` for the calls that
        were sent, ``repriced_saved_usd`` for the cache hits (what the cache saved there;
        on the free local model, spent and saved are always $0)."""
        scope = tag if tag is not None else self.tag
        if reprice is None:
            return self.engine.store.usage_summary(by, scope)
        price, table = run_sync(self.engine.price_for(self.endpoint, reprice))
        if price is None:
            raise ConfigError(f"no price for {reprice!r} in {table.source}")
        summary = self.engine.store.usage_summary(by, scope, hit_tokens=True)
        out = reprice_usage(summary, price)
        out.attrs["reprice"] = f"at {reprice} list prices ({table.source})"
        return out

    def report(
        self, path: str | Path, *, tag: str | None = None, title: str | None = None
    ) -> Written:
        """Write the calls under `tag` (default: this lab's) as one HTML file anyone can open
        offline: a header, summary figures and a browser over every call (`mmlab.report`)."""
        scope = tag if tag is not None else self.tag
        if scope is None:
            raise ConfigError("report which calls? give tag=..., or make the Lab with a tag")
        self.engine.store.flush()  # cache hits' rows are written in batches: write them now
        return write_report(None, path, tag=scope, db=self.db, title=title)

    # --- the ledger ---------------------------------------------------------------------------
    def reconcile(
        self, tag: str | None = None, *, attempts: int = 5, wait_s: float = 1.0
    ) -> pd.DataFrame:
        """Join each paid call with OpenRouter's own record of it (``GET /generation``).

        For every call under `tag` (default: this lab's) that has no record yet, fetches it
        (the record can 404 for a moment after a completion: each id is retried `attempts`
        times, `wait_s` apart) and stores it beside the log: native token counts, the
        provider and model that served it, latency and generation time, ``total_cost``,
        ``cache_discount``, finish reasons, and ``disagreements`` — every field where the
        record and the reply's usage block differ (`mmlab.ledger`). A call whose cost was
        computed from a price table (or unknown) takes the billed ``total_cost``. Returns
        every reconciled call under `tag`, the log's figures beside the record's.
        """
        return run_sync(self.areconcile(tag, attempts=attempts, wait_s=wait_s))

    async def areconcile(
        self, tag: str | None = None, *, attempts: int = 5, wait_s: float = 1.0
    ) -> pd.DataFrame:
        """Async `reconcile`."""
        scope = tag if tag is not None else self.tag
        return await reconcile(self.engine, scope, attempts=attempts, wait_s=wait_s)

    def account(self, *, settle_s: float = 15.0) -> Account:
        """The key's usage (``GET /key``) around a block of work, against the log's spend:
        ``with lab.account() as acct: sweep.run()``, then ``acct`` says whether they agree
        (within 1%) — see `mmlab.ledger.Account`."""
        return Account(self.engine, settle_s=settle_s)

    def key(self) -> dict[str, Any]:
        """The key's record now: ``usage`` (USD, all time), ``usage_daily``, ``limit`` and
        ``limit_remaining`` (None: no limit) — check the room left before a large sweep."""
        return run_sync(Account(self.engine).read())

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
            self.engine,
            prompts,
            params,
            repeats=repeats,
            tag=tag,
            system=system,
            scorer=scorer,
            fixed=fixed,
        )

    def scaling_curve(
        self,
        problems: Any,
        budgets: Sequence[Any],
        *,
        knob: str = "reasoning.max_tokens",
        repeats: int = 4,
        scorer: Callable[..., Any] | None = None,
        system: str | None = None,
        tag: str | None = None,
        concurrency: int = 8,
        budget_usd: float | None = None,
        progress: bool | Callable[[int, int], None] = True,
        answer_tokens: int = ANSWER_TOKENS,
        stop: Rule | None = None,
        **fixed: Any,
    ) -> ScalingCurve:
        """Accuracy and cost against reasoning used, over one knob (see `mmlab.scaling`).

        Plans a sweep of `problems` × `budgets` × `repeats`, prints its forecast, runs it
        (cached, resumable, capped by `budget_usd` like any sweep) and returns a
        `ScalingCurve`. `knob`: ``reasoning.max_tokens`` (then ``max_tokens`` is the budget
        plus `answer_tokens` unless fixed), ``max_tokens``, ``reasoning.effort`` or
        ``reasoning.wait`` (budget forcing: the embedded model). `fixed` parameters apply to
        every cell (their ``reasoning`` is merged with the knob's). `stop` (a rule from
        `mmlab.stop`, e.g. ``ci_width(by=knob, width=0.1)``) samples adaptively, with
        `repeats` the most any cell gets.
        """
        return run_sync(
            self.ascaling_curve(
                problems, budgets, knob=knob, repeats=repeats, scorer=scorer, system=system,
                tag=tag, concurrency=concurrency, budget_usd=budget_usd, progress=progress,
                answer_tokens=answer_tokens, stop=stop, **fixed,
            )
        )  # fmt: skip

    async def ascaling_curve(
        self,
        problems: Any,
        budgets: Sequence[Any],
        *,
        knob: str = "reasoning.max_tokens",
        repeats: int = 4,
        scorer: Callable[..., Any] | None = None,
        system: str | None = None,
        tag: str | None = None,
        concurrency: int = 8,
        budget_usd: float | None = None,
        progress: bool | Callable[[int, int], None] = True,
        answer_tokens: int = ANSWER_TOKENS,
        stop: Rule | None = None,
        **fixed: Any,
    ) -> ScalingCurve:
        """Async `scaling_curve`."""
        space = scaling_points(knob, budgets, fixed, answer_tokens)
        sweep = self.sweep(problems, space, repeats=repeats, tag=tag or f"scaling-{knob}",
                           system=system, scorer=scorer, **fixed)  # fmt: skip
        forecast = await sweep.aforecast(stop=stop)
        if progress is True:
            print(forecast, file=sys.stderr)
        res = await sweep.arun(
            concurrency=concurrency, budget_usd=budget_usd, progress=progress, stop=stop
        )
        return build_curve(res, knob, budgets, repeats, scorer)

    def probe(
        self,
        param: str,
        values: Sequence[Any],
        *,
        prompt: str,
        n: int = 20,
        tag: str | None = None,
        concurrency: int = 8,
        budget_usd: float | None = None,
        permutations: int = 2000,
        **fixed: Any,
    ) -> ProbeResult:
        """Is `param` honoured? `n` paired samples per value of `values` on `prompt` (plus `n`
        same-seed controls), then permutation tests of output length and content and an exact
        test against the controls (see `mmlab.probe`)."""
        sweep, controls = probe_sweep(self.engine, param, values, prompt, n, tag, fixed)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="sweeping ")  # the probe says it itself
            # a probe is a quick check: an earlier failed attempt is retried, never kept
            run = {"concurrency": concurrency, "budget_usd": budget_usd, "progress": False,
                   "retry_errors": True}  # fmt: skip
            res = sweep.run(**run)
            ctl = controls.run(**run).df if controls is not None else None
        return probe_result(sweep, param, res.df, permutations, ctl)

    def close(self) -> None:
        """Write queued rows and close this thread's database connection."""
        self.engine.store.close()


def _said(call: Call, result: Result) -> Result:
    """`result`, after warning when another model answered than the one asked on an endpoint
    that routes between models (OpenRouter's fallback): a hit reports the model that
    answered, and says so every time. (A self-hosted server's own name for its model is no
    fallback.)"""
    asked = call.model
    if call.via.capabilities.provider_routing and result.served_another_model(asked):
        warnings.warn(
            f"{result.model!r} answered, not the model asked ({asked!r}): OpenRouter fell "
            "back to another model. Its answer is logged and cached under the request as "
            "asked; compare like with like (provider={'allow_fallbacks': False})",
            stacklevel=3,
        )
    return result


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None  # type: ignore[attr-defined]
    return type(shell).__name__ == "ZMQInteractiveShell"


__all__ = ["Lab"]
