"""Sampling-parameter sweeps: spec → cells → plan → forecast → run → resume → DataFrame.

    sweep = lab.sweep(prompts, grid(temperature=[0.0, 1.0], max_tokens=[256, 1024]),
                      repeats=3, tag="temp-vs-length")
    sweep.plan(); sweep.forecast()
    res = sweep.run(concurrency=8, budget_usd=2.0)
    res.df

A cell is (prompt, parameter point, sample index), identified by its cache key, so a sweep's
identity survives restarts and **resume is by construction**: a rerun sends only the cells
with no successful (cached) result; cells whose last attempt failed are kept as errors until
``retry_errors=True`` reruns exactly those. Every cell goes through `Lab.send`, the same path
as `lab.chat` (validation, budget, retries, cache, log).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .client import Throttle
from .errors import APIError, BudgetExceeded, ConfigError, RequestError
from .result import Result
from .runner import run_sync
from .store import new_id, tag_filter
from .wire import KNOWN_PARAMS, canonical_json, check_messages, check_params, is_truncated

if TYPE_CHECKING:
    import pandas as pd

    from .lab import Call, Lab

#: Prior share of max_tokens a reasoning model spends, before the log has observations.
#: Reasoning models often run close to their budget (M1's RL responses pass 20K tokens).
PRIOR_COMPLETION_SHARE = 0.6
HIT_CHUNK = 2000
LABELS = frozenset({"cost_source", "finish_reason", "provider", "reasoning_mode"})


# --- parameter spaces --------------------------------------------------------------------------
class Space:
    """A list of parameter points. ``a | b`` concatenates, ``a * b`` crosses."""

    def points(self) -> list[dict[str, Any]]:
        """The points, in a deterministic order."""
        raise NotImplementedError

    def __or__(self, other: Space) -> Space:
        return _Concat(self, other)

    def __mul__(self, other: Space) -> Space:
        return _Product(self, other)

    def __len__(self) -> int:
        return len(self.points())

    def __repr__(self) -> str:
        return f"{type(self).__name__.strip('_')}({len(self)} points)"


def _check_axes(kind: str, axes: Mapping[str, Any]) -> None:
    if not axes:
        raise RequestError(f"{kind}() needs at least one parameter axis", field="params")
    for name, values in axes.items():
        if name not in KNOWN_PARAMS:
            raise RequestError(
                f"{kind}(): unknown parameter {name!r}; allowed: {', '.join(sorted(KNOWN_PARAMS))}",
                field=name,
            )
        if kind != "random_" and (
            isinstance(values, str | bytes | Mapping) or not isinstance(values, Sequence)
        ):
            raise RequestError(f"{kind}(): {name} must be a list of values", field=name)
        if kind != "random_" and len(values) == 0:
            raise RequestError(f"{kind}(): {name} has no values (an empty grid)", field=name)


@dataclass(repr=False)
class _Grid(Space):
    axes: dict[str, list[Any]]

    def points(self) -> list[dict[str, Any]]:
        names = list(self.axes)
        return [
            dict(zip(names, combo, strict=True)) for combo in itertools.product(*self.axes.values())
        ]


@dataclass(repr=False)
class _Zip(Space):
    axes: dict[str, list[Any]]

    def points(self) -> list[dict[str, Any]]:
        names = list(self.axes)
        return [
            dict(zip(names, combo, strict=True)) for combo in zip(*self.axes.values(), strict=True)
        ]


@dataclass(repr=False)
class _Random(Space):
    axes: dict[str, Any]
    n: int
    seed: int

    def points(self) -> list[dict[str, Any]]:
        rng = random.Random(self.seed)
        out = []
        for _ in range(self.n):
            point = {}
            for name, spec in self.axes.items():
                if isinstance(spec, tuple) and len(spec) == 2:
                    lo, hi = spec
                    if isinstance(lo, int) and isinstance(hi, int) and not isinstance(lo, bool):
                        point[name] = rng.randint(lo, hi)
                    else:
                        point[name] = round(rng.uniform(float(lo), float(hi)), 3)
                else:
                    point[name] = rng.choice(list(spec))
            out.append(point)
        return out


@dataclass(repr=False)
class _Concat(Space):
    a: Space
    b: Space

    def points(self) -> list[dict[str, Any]]:
        return self.a.points() + self.b.points()


@dataclass(repr=False)
class _Product(Space):
    a: Space
    b: Space

    def points(self) -> list[dict[str, Any]]:
        return [{**p, **q} for p in self.a.points() for q in self.b.points()]


def grid(**axes: Sequence[Any]) -> Space:
    """Every combination of the given values: ``grid(temperature=[0, 1], max_tokens=[256])``."""
    _check_axes("grid", axes)
    return _Grid({k: list(v) for k, v in axes.items()})


def zip_(**axes: Sequence[Any]) -> Space:
    """Values taken in parallel (all lists the same length)."""
    _check_axes("zip_", axes)
    lengths = {len(v) for v in axes.values()}
    if len(lengths) != 1:
        raise RequestError(
            f"zip_(): every list must have the same length; got "
            f"{ {k: len(v) for k, v in axes.items()} }",
            field="params",
        )
    return _Zip({k: list(v) for k, v in axes.items()})


def random_(*, n: int, seed: int = 0, **axes: Any) -> Space:
    """`n` random points: a ``(lo, hi)`` tuple samples a range (ints stay ints), a list is
    sampled uniformly. Deterministic for a given `seed`."""
    _check_axes("random_", axes)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise RequestError(f"random_(): n must be an integer >= 1; got {n!r}", field="n")
    for name, spec in axes.items():
        ok = (isinstance(spec, tuple) and len(spec) == 2) or (
            isinstance(spec, list) and len(spec) > 0
        )
        if not ok:
            raise RequestError(
                f"random_(): {name} must be a (lo, hi) tuple or a non-empty list", field=name
            )
    return _Random(dict(axes), n, seed)


# --- cells ---------------------------------------------------------------------------------------
@dataclass(slots=True)
class Cell:
    """One request of a sweep."""

    index: int
    prompt_id: str
    point: dict[str, Any]
    sample: int
    call: Call
    row: dict[str, Any]


@dataclass
class Forecast:
    """What a sweep will cost before it runs."""

    cells: int
    hits: int
    to_call: int
    errors_kept: int
    prompt_tokens: int
    worst_completion_tokens: int
    expected_completion_tokens: int
    worst_usd: float
    expected_usd: float
    m1_worst_usd: float
    m1_expected_usd: float
    price_ref: str
    observed_from: int
    """Logged calls the expected completion lengths were learned from (0: the prior)."""

    def __str__(self) -> str:
        basis = (
            f"observed completion lengths of {self.observed_from} logged call(s)"
            if self.observed_from
            else f"a prior of {PRIOR_COMPLETION_SHARE:.0%} of max_tokens (no similar calls yet)"
        )
        return (
            f"{self.cells} cells: {self.hits} cached, {self.to_call} to call"
            + (
                f", {self.errors_kept} failed (kept; retry_errors=True reruns them)"
                if self.errors_kept
                else ""
            )
            + "\n"
            f"tokens to send: ~{self.prompt_tokens:,} prompt; completion expected "
            f"~{self.expected_completion_tokens:,}, worst case {self.worst_completion_tokens:,}\n"
            f"cost ({self.price_ref}): expected ${self.expected_usd:.4f}, worst case "
            f"${self.worst_usd:.4f}\n"
            f"at MiniMax M1 list prices: expected ${self.m1_expected_usd:.4f}, worst case "
            f"${self.m1_worst_usd:.4f}\n"
            f"expected lengths from {basis}"
        )

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


@dataclass
class RunStats:
    """What one `Sweep.run` did."""

    cells: int = 0
    hits: int = 0
    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped_errors: int = 0
    retries: int = 0
    rate_limited: int = 0
    lowest_concurrency: int = 0
    spent_usd: float = 0.0
    seconds: float = 0.0
    stopped: str | None = None
    """Why the run ended early (budget, interrupt), or None."""
    remaining: int = 0
    remaining_forecast: Forecast | None = None

    def __str__(self) -> str:
        head = (
            f"{self.cells} cells · {self.hits} cached · {self.sent} sent "
            f"({self.succeeded} ok, {self.failed} failed) · {self.retries} retries · "
            f"{self.rate_limited} rate-limited (concurrency down to "
            f"{self.lowest_concurrency}) · spent ${self.spent_usd:.4f} · "
            f"{self.seconds:.1f} s"
        )
        if self.stopped:
            head += f"\nstopped: {self.stopped}; {self.remaining} cells left"
            if self.remaining_forecast is not None:
                head += (
                    f" (expected ${self.remaining_forecast.expected_usd:.4f}, worst "
                    f"${self.remaining_forecast.worst_usd:.4f})"
                )
        return head


class Sweep:
    """A sweep definition bound to a Lab. Build with `Lab.sweep`."""

    def __init__(
        self,
        lab: Lab,
        prompts: Any,
        params: Space | Sequence[Mapping[str, Any]] | Mapping[str, Any] | None,
        *,
        repeats: int = 1,
        tag: str | None = None,
        system: str | None = None,
        scorer: Callable[[Mapping[str, Any]], Any] | None = None,
        fixed: Mapping[str, Any] | None = None,
    ) -> None:
        if lab.cache_mode in ("off", "refresh"):
            raise ConfigError(
                f"sweeps resume from the cache, so they need cache='use' or 'replay'; this "
                f"lab has cache={lab.cache_mode!r}"
            )
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
            raise RequestError(f"repeats must be an integer >= 1; got {repeats!r}", "repeats")
        if scorer is not None and not callable(scorer):
            raise RequestError("scorer must be a function of a result row", "scorer")
        self.lab = lab
        self.repeats = repeats
        self.system = system
        self.scorer = scorer
        self.fixed = check_params(dict(fixed or {}))
        self.prompts = _prompt_table(prompts)
        self.points = _points(params)
        for point in self.points:
            check_params({**self.fixed, **point})  # every point valid before anything runs
        name = tag or "sweep-" + self._fingerprint()[:10]
        self.name = name
        self.tag = f"{lab.tag}/{name}" if lab.tag and not name.startswith(lab.tag + "/") else name
        self.cells = self._build_cells()

    # --- identity -----------------------------------------------------------------------------
    def _fingerprint(self) -> str:
        spec = {
            "model": self.lab.model,
            "endpoint": self.lab.endpoint.identity,
            "prompts": self.prompts.to_dict("records"),
            "points": self.points,
            "fixed": self.fixed,
            "repeats": self.repeats,
            "system": self.system,
        }
        return hashlib.sha256(canonical_json(spec).encode()).hexdigest()

    def _build_cells(self) -> list[Cell]:
        # Validation is per prompt and per point (done above), not per cell: 10k cells build
        # in a fraction of a second.
        from .lab import Call

        identity = self.lab.endpoint.identity
        checked = [check_params({**self.fixed, **point}) for point in self.points]
        params_json = [canonical_json(p) for p in checked]
        cells: list[Cell] = []
        for prow in self.prompts.to_dict("records"):
            system = prow.get("system")
            messages = check_messages(
                prow["prompt"], system if isinstance(system, str) else self.system
            )
            extra = {k: v for k, v in prow.items() if k not in ("prompt", "prompt_id")}
            prompt_id = str(prow["prompt_id"])
            for point, params, pj in zip(self.points, checked, params_json, strict=True):
                body = {"model": self.lab.model, "messages": messages, **params}
                for sample in range(self.repeats):
                    call = Call.make(identity, body, sample, self.tag, pj)
                    cells.append(Cell(len(cells), prompt_id, point, sample, call, extra))
        return cells

    def __len__(self) -> int:
        return len(self.cells)

    def __repr__(self) -> str:
        return (
            f"Sweep(tag={self.tag!r}, {len(self.prompts)} prompts × {len(self.points)} "
            f"points × {self.repeats} repeats = {len(self.cells)} cells)"
        )

    # --- status -------------------------------------------------------------------------------
    def _status(self) -> tuple[set[str], dict[str, str]]:
        """(keys with a cached reply, last error by key for keys with no success)."""
        cached = self.lab.store.cache_keys(c.call.key for c in self.cells)
        where, args = tag_filter("tag", self.tag)
        errors: dict[str, str] = {}
        rows = self.lab.store.query(
            f"SELECT cache_key, error, error_type FROM calls {where} "
            "AND cache_status != 'hit' ORDER BY ts, call_id",
            args,
        )
        for key, error, error_type in rows:
            if key in cached:
                continue
            if error is None or error_type == "cancelled":
                errors.pop(key, None)  # an interrupted cell was never really tried
            else:
                errors[key] = error
        return cached, errors

    def plan(self) -> pd.DataFrame:
        """One row per cell: prompt id, parameters, sample index, cache key and status
        (``hit``: cached; ``error``: last attempt failed; ``miss``: to call)."""
        import pandas as pd

        cached, errors = self._status()
        rows = []
        for c in self.cells:
            status = "hit" if c.call.key in cached else "error" if c.call.key in errors else "miss"
            rows.append(
                {
                    "cell": c.index,
                    "prompt_id": c.prompt_id,
                    **c.point,
                    "sample": c.sample,
                    "status": status,
                    "cache_key": c.call.key,
                }
            )
        return pd.DataFrame(rows)

    def forecast(self, *, retry_errors: bool = False) -> Forecast:
        """Calls to make, cache hits, and expected and worst-case tokens and USD."""
        return run_sync(self.aforecast(retry_errors=retry_errors))

    async def aforecast(self, *, retry_errors: bool = False) -> Forecast:
        """Async `forecast`."""
        cached, errors = self._status()
        todo = [
            c
            for c in self.cells
            if c.call.key not in cached and (retry_errors or c.call.key not in errors)
        ]
        return await self._forecast(todo, len(cached), 0 if retry_errors else len(errors))

    async def _forecast(self, todo: list[Cell], hits: int, errors_kept: int) -> Forecast:
        from .lab import FALLBACK_MAX_COMPLETION, estimate_prompt_tokens
        from .pricing import EMBEDDED

        table = await self.lab.aprices()
        price = table.get(self.lab.model)
        m1 = EMBEDDED["minimax/minimax-m1"]
        observed = self._observed_lengths()
        prompt_total = worst_total = expected_total = 0
        worst_usd = expected_usd = m1_worst = m1_expected = 0.0
        for c in todo:
            prompt = estimate_prompt_tokens(c.call.body["messages"])
            cap = c.call.body.get("max_tokens") or (
                price.max_completion_tokens
                if price and price.max_completion_tokens
                else FALLBACK_MAX_COMPLETION
            )
            expected = min(
                cap,
                observed.get(
                    c.call.body.get("max_tokens"), observed.get("any", PRIOR_COMPLETION_SHARE * cap)
                ),
            )
            expected = int(math.ceil(expected))
            prompt_total += prompt
            worst_total += cap
            expected_total += expected
            if price is not None and self.lab.endpoint.kind != "local":
                worst_usd += price.cost(prompt, cap)
                expected_usd += price.cost(prompt, expected)
            m1_worst += m1.cost(prompt, cap)
            m1_expected += m1.cost(prompt, expected)
        ref = (
            "local: free"
            if self.lab.endpoint.kind == "local"
            else (table.source if price else f"no price for {self.lab.model}")
        )
        return Forecast(
            cells=len(self.cells),
            hits=hits,
            to_call=len(todo),
            errors_kept=errors_kept,
            prompt_tokens=prompt_total,
            worst_completion_tokens=worst_total,
            expected_completion_tokens=expected_total,
            worst_usd=worst_usd,
            expected_usd=expected_usd,
            m1_worst_usd=m1_worst,
            m1_expected_usd=m1_expected,
            price_ref=ref,
            observed_from=int(observed.get("n", 0)),
        )

    def _observed_lengths(self) -> dict[Any, float]:
        """Mean completion tokens of logged successful calls to this model, by max_tokens."""
        rows = self.lab.store.query(
            "SELECT json_extract(params, '$.max_tokens'), AVG(completion_tokens), COUNT(*) "
            "FROM calls WHERE model = ? AND endpoint = ? AND error IS NULL "
            "AND cache_status != 'hit' AND completion_tokens IS NOT NULL GROUP BY 1",
            (self.lab.model, self.lab.endpoint.identity),
        )
        out: dict[Any, float] = {}
        n = 0
        total = 0.0
        for max_tokens, mean, count in rows:
            out[max_tokens] = float(mean)
            n += count
            total += float(mean) * count
        if n:
            out["any"] = total / n
            out["n"] = n
        return out

    # --- running ------------------------------------------------------------------------------
    def run(
        self,
        *,
        concurrency: int = 8,
        budget_usd: float | None = None,
        progress: bool | Callable[[int, int], None] = True,
        retry_errors: bool = False,
        max_calls: int | None = None,
        stream: bool = False,
    ) -> SweepResult:
        """Run the cells that have no result yet (see the module docstring).

        Safe to call from a notebook (its event loop is already running): the work runs on
        mmlab's own loop. Ctrl-C stops cleanly: finished cells are kept, in-flight ones are
        cancelled and will be resent by the next run. `progress` is a tqdm bar (True), nothing
        (False), or a function called with ``(done, total)`` after each cell.
        """
        return run_sync(
            self.arun(
                concurrency=concurrency,
                budget_usd=budget_usd,
                progress=progress,
                retry_errors=retry_errors,
                max_calls=max_calls,
                stream=stream,
            )
        )

    async def arun(
        self,
        *,
        concurrency: int = 8,
        budget_usd: float | None = None,
        progress: bool | Callable[[int, int], None] = True,
        retry_errors: bool = False,
        max_calls: int | None = None,
        stream: bool = False,
    ) -> SweepResult:
        """Async `run`. `stream=True` streams every call (TTFT is then measured)."""
        from .config import resolve_budget

        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise RequestError(
                f"concurrency must be an integer >= 1; got {concurrency!r}", "concurrency"
            )
        if budget_usd is not None:
            budget_usd = resolve_budget(budget_usd)
        if max_calls is not None and (not isinstance(max_calls, int) or max_calls < 0):
            raise RequestError(f"max_calls must be an integer >= 0; got {max_calls!r}", "max_calls")
        started = time.perf_counter()
        stats = RunStats(cells=len(self.cells), lowest_concurrency=concurrency)
        cached, errors = self._status()
        done = _Columns(len(self.cells))
        failures: dict[int, str] = {}
        hits: list[Cell] = []
        todo: list[Cell] = []
        for c in self.cells:
            if c.call.key in cached:
                hits.append(c)
            elif c.call.key in errors and not retry_errors:
                failures[c.index] = errors[c.call.key]
            elif retry_errors and c.call.key not in errors:
                continue  # retry_errors reruns failed cells only
            else:
                todo.append(c)
        # Cached cells in chunks: the parsed replies and log rows of one chunk at a time are
        # alive, not those of the whole sweep (100,000 cells would otherwise need GBs).
        for i in range(0, len(hits), HIT_CHUNK):
            chunk = hits[i : i + HIT_CHUNK]
            replies = self.lab.store.cache_get_many(c.call.key for c in chunk)
            rows = []
            for c in chunk:
                rec = replies.get(c.call.key)
                if rec is None:  # cleared meanwhile: call it after all
                    todo.append(c)
                    continue
                done.put(c.index, rec, hit=True, spent=0.0)
                rows.append(
                    self.lab.log_row(
                        c.call,
                        rec,
                        status="hit",
                        call_id=new_id(),
                        saved=rec.get("cost_usd") or 0.0,
                    )
                )
            self.lab.store.record_many(rows)  # every cell served is a logged call
            stats.hits += len(rows)
        stats.skipped_errors = len(failures)
        if max_calls is not None:
            todo, held_back = todo[:max_calls], todo[max_calls:]
        else:
            held_back = []
        if todo and self.lab.cache_mode == "replay":
            raise self.lab.miss_error(todo[0].call)
        bar = _progress(len(self.cells), progress, self.name)
        bar.update(stats.hits + len(failures))
        throttle = Throttle(concurrency)
        limits = [(self.tag, budget_usd)] if budget_usd is not None else []
        stop = asyncio.Event()

        def show() -> None:
            bar.set_postfix(
                hits=stats.hits,
                spent=f"${stats.spent_usd:.4f}",
                errors=len(failures),
                conc=throttle.limit,
                refresh=False,
            )

        inflight = 0
        finished = asyncio.Condition()

        async def send(cell: Cell) -> Result | None:
            # A refused reservation is final only when nothing else is in flight: calls
            # usually cost far less than their worst case, so waiting for one to finish
            # often frees enough budget to go on (serially, near the end).
            nonlocal inflight
            while not stop.is_set():
                inflight += 1
                try:
                    result = await self.lab.send(
                        cell.call, stream=stream, throttle=throttle, limits=limits
                    )
                except BudgetExceeded as exc:
                    inflight -= 1
                    if inflight == 0:
                        if not stop.is_set():
                            stats.stopped = f"budget: {exc}"
                        stop.set()
                        async with finished:
                            finished.notify_all()
                        return None
                    async with finished:
                        await finished.wait()
                    continue
                except BaseException:
                    inflight -= 1
                    async with finished:
                        finished.notify_all()
                    raise
                inflight -= 1
                async with finished:
                    finished.notify_all()
                return result
            return None

        async def one(cell: Cell) -> None:
            if stop.is_set():
                return
            async with throttle:
                if stop.is_set():
                    return
                try:
                    r = await send(cell)
                    if r is None:
                        return
                    stats.sent += 1
                except APIError as exc:
                    stats.sent += 1
                    stats.failed += 1
                    stats.retries += max(exc.attempts - 1, 0)
                    failures[cell.index] = str(exc)
                else:
                    stats.succeeded += 1
                    stats.retries += r.retries
                    stats.spent_usd += r.spent_usd
                    done.put(cell.index, r.record(), hit=False, spent=r.spent_usd)
                    failures.pop(cell.index, None)
                stats.lowest_concurrency = min(stats.lowest_concurrency, throttle.lowest)
                bar.update(1)
                show()

        tasks = [asyncio.ensure_future(one(c)) for c in todo]
        try:
            if tasks:
                await asyncio.gather(*tasks)
        except BaseException:
            # Interrupted (Ctrl-C, cancellation) or a failure that is not the endpoint's
            # (e.g. the disk is full): stop everything; finished cells are already stored,
            # in-flight ones log a cancelled row and are resent by the next run.
            stop.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            stats.stopped = "interrupted"
            raise
        finally:
            stats.rate_limited = throttle.throttled
            stats.seconds = time.perf_counter() - started
            bar.close()
        left = [c for c in self.cells if not done.done[c.index] and c.index not in failures]
        stats.remaining = len(left)
        if held_back and not stats.stopped:
            stats.stopped = f"max_calls={max_calls} reached"
        if left:
            stats.remaining_forecast = await self._forecast(left, 0, 0)
        res = SweepResult(self, self._frame(done, failures), stats)
        if stats.stopped and progress is True:
            print(f"mmlab sweep {self.name}: {stats}", file=sys.stderr)
        return res

    # --- results ------------------------------------------------------------------------------
    def _frame(self, done: _Columns, failures: Mapping[int, str]) -> pd.DataFrame:
        # Built from preallocated arrays, column by column: objects per row (dicts, Results)
        # would cost more memory than the answers themselves.
        import numpy as np
        import pandas as pd

        cells = self.cells
        n = len(cells)

        def column(values: Any) -> pd.Series:
            # filled straight into an object array (no list, no string-dtype copy)
            return pd.Series(np.fromiter(values, dtype=object, count=n), dtype=object, copy=False)

        cols: dict[str, Any] = {
            "cell": np.arange(n),
            "prompt_id": column(c.prompt_id for c in cells),
        }
        for name in self.prompts.columns:
            if name not in ("prompt", "prompt_id"):
                cols[name] = pd.Series([c.row.get(name) for c in cells])
        # cells share their point dicts: flatten each point once, not once per cell
        flat = {id(p): _flat(p) for p in self.points}
        for name in dict.fromkeys(k for f in flat.values() for k in f):
            cols[name] = pd.Series([flat[id(c.point)].get(name) for c in cells])
        cols["sample"] = np.fromiter((c.sample for c in cells), dtype=np.int64, count=n)
        cols.update(done.frame_columns())
        cols["error"] = column(
            None if done.done[c.index] else failures.get(c.index, "not run") for c in cells
        )
        cols["cache_key"] = column(c.call.key for c in cells)
        df = pd.DataFrame(cols)
        if self.scorer is not None:
            df["score"] = [
                None if row["error"] is not None else _score(self.scorer, row)
                for row in df.to_dict("records")
            ]
            df["score"] = df["score"].astype(float)
        return df


class _Columns:
    """A sweep's results as preallocated column arrays, filled cell by cell."""

    TEXT = ("content", "reasoning", "cost_source", "finish_reason", "provider", "reasoning_mode")

    TOKENS = ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens")
    NUMBERS = ("cost_usd", "spent_usd", "latency_s", "ttft_s")

    def __init__(self, n: int) -> None:
        import numpy as np

        self.done = np.zeros(n, dtype=bool)
        self.hit = np.zeros(n, dtype=bool)
        self.text = {k: np.full(n, None, dtype=object) for k in self.TEXT}
        self.tokens = {k: np.zeros(n, dtype=np.int64) for k in self.TOKENS}
        self.numbers = {k: np.full(n, np.nan) for k in self.NUMBERS}

    def put(self, i: int, rec: Mapping[str, Any], *, hit: bool, spent: float) -> None:
        """Store one response record (`Result.record()` or a cache entry) for cell `i`."""
        self.done[i], self.hit[i] = True, hit
        usage = rec.get("usage") or {}
        for k in self.TOKENS:
            self.tokens[k][i] = usage.get(k) or 0
        for k in self.TEXT:
            v = rec.get(k)
            # labels like "stop" or "billed" repeat in every row: keep one copy of each
            self.text[k][i] = sys.intern(v) if isinstance(v, str) and k in LABELS else v
        for k, v in (
            ("cost_usd", rec.get("cost_usd")),
            ("spent_usd", spent),
            ("latency_s", rec.get("latency_s")),
            ("ttft_s", rec.get("ttft_s")),
        ):
            if v is not None:
                self.numbers[k][i] = v

    def frame_columns(self) -> dict[str, Any]:
        """The result columns, in res.df order, with missing cells as <NA>/NaN/None."""
        import numpy as np
        import pandas as pd

        missing = ~self.done
        # Text stays as the Python strings already in memory (object dtype): letting pandas
        # infer its string dtype would copy every answer and reasoning into a second buffer.
        text = {k: pd.Series(v, dtype=object, copy=False) for k, v in self.text.items()}
        ints = {k: pd.arrays.IntegerArray(v, missing.copy()) for k, v in self.tokens.items()}
        answer = np.maximum(self.tokens["completion_tokens"] - self.tokens["reasoning_tokens"], 0)
        truncated = np.array(
            [
                is_truncated(f, c)
                for f, c in zip(self.text["finish_reason"], self.text["content"], strict=True)
            ],
            dtype=bool,
        )
        return {
            "content": text["content"],
            "reasoning": text["reasoning"],
            "prompt_tokens": ints["prompt_tokens"],
            "completion_tokens": ints["completion_tokens"],
            "reasoning_tokens": ints["reasoning_tokens"],
            "answer_tokens": pd.arrays.IntegerArray(answer, missing.copy()),
            "cached_tokens": ints["cached_tokens"],
            "cost_usd": self.numbers["cost_usd"],
            "cost_source": text["cost_source"],
            "spent_usd": self.numbers["spent_usd"],
            "latency_s": self.numbers["latency_s"],
            "ttft_s": self.numbers["ttft_s"],
            "finish_reason": text["finish_reason"],
            "truncated": pd.arrays.BooleanArray(truncated, missing.copy()),
            "cache_hit": pd.arrays.BooleanArray(self.hit, missing.copy()),
            "provider": text["provider"],
            "reasoning_mode": text["reasoning_mode"],
        }


def _score(scorer: Callable[[Mapping[str, Any]], Any], row: Mapping[str, Any]) -> float | None:
    value = scorer(row)
    return None if value is None else float(value)


def _flat(point: Mapping[str, Any]) -> dict[str, Any]:
    """Parameter columns: nested dicts (reasoning, provider) become ``reasoning.effort``."""
    out: dict[str, Any] = {}
    for k, v in point.items():
        if isinstance(v, Mapping):
            for kk, vv in v.items():
                out[f"{k}.{kk}"] = vv
        else:
            out[k] = v
    return out


def _prompt_table(prompts: Any) -> pd.DataFrame:
    import pandas as pd

    if isinstance(prompts, str):
        raise RequestError(
            "prompts must be a list of strings or a DataFrame with a 'prompt' "
            "column, not a single string",
            field="prompts",
        )
    if isinstance(prompts, pd.DataFrame):
        if "prompt" not in prompts.columns:
            raise RequestError(
                f"the prompts DataFrame has no 'prompt' column (columns: {list(prompts.columns)})",
                field="prompts",
            )
        df = prompts.reset_index(drop=True).copy()
    elif isinstance(prompts, Sequence):
        df = pd.DataFrame({"prompt": list(prompts)})
    else:
        raise RequestError(
            "prompts must be a list of strings or a DataFrame with a 'prompt' column",
            field="prompts",
        )
    if df.empty:
        raise RequestError("prompts is empty", field="prompts")
    bad = [i for i, p in enumerate(df["prompt"]) if not isinstance(p, str) or not p.strip()]
    if bad:
        raise RequestError(f"prompt {bad[0]} is not a non-blank string", field="prompts")
    if "prompt_id" not in df.columns:
        df.insert(
            0,
            "prompt_id",
            df["id"].astype(str) if "id" in df.columns else [f"p{i}" for i in range(len(df))],
        )
    if df["prompt_id"].duplicated().any():
        raise RequestError("prompt ids must be unique", field="prompt_id")
    return df


def _points(params: Any) -> list[dict[str, Any]]:
    if params is None:
        return [{}]
    if isinstance(params, Space):
        points = params.points()
    elif isinstance(params, Mapping):
        points = grid(**params).points()
    elif isinstance(params, Sequence) and not isinstance(params, str):
        points = [dict(p) for p in params]
    else:
        raise RequestError(
            "params must be grid(...), zip_(...), random_(...), a dict of "
            "lists, or a list of dicts",
            field="params",
        )
    if not points:
        raise RequestError("the parameter space is empty", field="params")
    return points


def _progress(total: int, enabled: bool | Callable[[int, int], None], name: str) -> Any:
    if callable(enabled):
        return _CallbackBar(total, enabled)
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=name, unit="cell", dynamic_ncols=True)


class _CallbackBar:
    """Progress reported to a function ``(done, total)`` (what widgets use)."""

    def __init__(self, total: int, callback: Callable[[int, int], None]) -> None:
        self.total, self.done, self.callback = total, 0, callback

    def update(self, n: int = 1) -> None:
        self.done += n
        self.callback(self.done, self.total)

    def set_postfix(self, **kw: Any) -> None:
        pass

    def close(self) -> None:
        pass


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kw: Any) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class SweepResult:
    """A sweep's outcome: ``df`` (one row per cell) and ``stats`` (what the run did)."""

    sweep: Sweep
    df: pd.DataFrame
    stats: RunStats = field(default_factory=RunStats)

    def __repr__(self) -> str:
        return f"SweepResult({self.sweep.tag!r}: {self.stats})"

    @property
    def complete(self) -> bool:
        """Every cell has a successful result."""
        return bool(self.df["error"].isna().all())

    def summary(
        self, by: str | Sequence[str], metrics: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Per-parameter means with 95% confidence intervals over repeats and prompts."""
        from .analysis import summarize

        return summarize(self.df, by, metrics)

    def truncation_rate(self, by: str | Sequence[str] = "max_tokens") -> pd.DataFrame:
        """Share of cells stopped by length with an empty answer, with a Wilson interval."""
        from .analysis import truncation_rate

        return truncation_rate(self.df, by)

    def cost_per_correct(self, by: str | Sequence[str] = "max_tokens") -> pd.DataFrame:
        """USD spent per correct answer (needs a scorer)."""
        from .analysis import cost_per_correct

        return cost_per_correct(self.df, by)


# --- sweep files and the CLI ----------------------------------------------------------------------
def load_sweep_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or TOML sweep definition (see README: "Sweep files")."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            import tomllib

            spec = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            spec = yaml.safe_load(text)
        else:
            raise ConfigError(f"sweep file must be .yaml, .yml or .toml; got {path.name}")
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - a parse error of either format
        raise ConfigError(f"sweep file {path} does not parse: {exc}") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"sweep file {path} must hold a mapping of settings")
    allowed = {
        "model",
        "base_url",
        "tag",
        "prompts",
        "prompts_file",
        "problems",
        "system",
        "repeats",
        "params",
        "fixed",
        "scorer",
        "concurrency",
        "budget_usd",
    }
    unknown = set(spec) - allowed
    if unknown:
        raise ConfigError(
            f"sweep file {path}: unknown setting(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
        )
    spec["_dir"] = str(path.parent)
    return spec


def _space_from_spec(raw: Any) -> Space | list[dict[str, Any]] | None:
    if raw is None:
        return None
    if isinstance(raw, list):
        return [dict(p) for p in raw]
    if not isinstance(raw, dict) or not raw:
        raise RequestError(
            "params must be a mapping with grid / zip / random, or a list of points", field="params"
        )
    spaces: list[Space] = []
    for kind, axes in raw.items():
        if kind == "grid":
            spaces.append(grid(**axes))
        elif kind == "zip":
            spaces.append(zip_(**axes))
        elif kind == "random":
            axes = dict(axes)
            n, seed = axes.pop("n", None), axes.pop("seed", 0)
            spaces.append(
                random_(
                    n=n,
                    seed=seed,
                    **{
                        k: tuple(v["range"]) if isinstance(v, dict) and "range" in v else v
                        for k, v in axes.items()
                    },
                )
            )
        else:
            raise RequestError(
                f"params: unknown space {kind!r}; use grid, zip or random", field="params"
            )
    out = spaces[0]
    for s in spaces[1:]:
        out = out | s
    return out


def _prompts_from_spec(spec: Mapping[str, Any]) -> Any:
    import pandas as pd

    given = [k for k in ("prompts", "prompts_file", "problems") if k in spec]
    if len(given) != 1:
        raise RequestError(
            "a sweep file needs exactly one of prompts, prompts_file, problems", field="prompts"
        )
    if "prompts" in spec:
        return spec["prompts"]
    if "problems" in spec:
        from .problems import load_problems

        return load_problems(**(spec["problems"] if isinstance(spec["problems"], dict) else {}))
    path = Path(spec["_dir"]) / spec["prompts_file"]
    if not path.is_file():
        raise ConfigError(f"prompts_file {path} does not exist")
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix in (".jsonl", ".json"):
        return pd.read_json(path, lines=path.suffix == ".jsonl")
    raise ConfigError(f"prompts_file must be .csv or .jsonl; got {path.name}")


def sweep_from_spec(spec: Mapping[str, Any], lab: Lab) -> Sweep:
    """Build a Sweep from a parsed sweep file."""
    from . import scorers

    scorer = None
    if spec.get("scorer"):
        scorer = getattr(scorers, str(spec["scorer"]), None)
        if scorer is None or not callable(scorer):
            raise RequestError(
                f"unknown scorer {spec['scorer']!r}; known: {', '.join(scorers.__all__)}",
                field="scorer",
            )
    return lab.sweep(
        _prompts_from_spec(spec),
        _space_from_spec(spec.get("params")),
        repeats=spec.get("repeats", 1),
        tag=spec.get("tag"),
        system=spec.get("system"),
        scorer=scorer,
        **(spec.get("fixed") or {}),
    )


def run_sweep_file(
    path: str,
    *,
    output: str | None,
    db: str | None,
    cache: str | None,
    budget_usd: float | None,
    concurrency: int | None,
    plan_only: bool,
    retry_errors: bool,
) -> int:
    """``mmlab sweep FILE``: plan, forecast, run with a terminal progress bar, write results."""
    from .lab import Lab

    spec = load_sweep_file(path)
    if output is not None and Path(output).suffix not in (".parquet", ".csv"):
        raise ConfigError(f"output must end in .parquet or .csv; got {output}")
    lab = Lab(model=spec.get("model"), base_url=spec.get("base_url"), db=db, cache=cache)
    sweep = sweep_from_spec(spec, lab)
    print(sweep)
    print(sweep.forecast(retry_errors=retry_errors))
    if plan_only:
        return 0
    res = sweep.run(
        concurrency=concurrency or int(spec.get("concurrency", 8)),
        budget_usd=budget_usd if budget_usd is not None else spec.get("budget_usd"),
        retry_errors=retry_errors,
    )
    print(res.stats)
    if output:
        out = Path(output)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".parquet":
            res.df.to_parquet(out, index=False)
        else:
            res.df.to_csv(out, index=False)
        print(f"wrote {len(res.df)} rows to {out}")
    return 0 if res.complete else 3


__all__ = ["Forecast", "RunStats", "Space", "Sweep", "SweepResult", "grid", "random_", "zip_"]
