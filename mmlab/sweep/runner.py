"""Running a sweep: cached cells are served from the cache (and logged as hits), the rest are
sent concurrently through `Engine.send` under an adaptive concurrency limit and a budget.

A cell refused by the budget is not necessarily the end: calls usually cost far less than the
worst case reserved for them, so the refused cell waits for a call in flight to finish and
tries again (near the cap the run goes on serially). The run stops when a refusal happens with
nothing left in flight.
"""

from __future__ import annotations

import asyncio
import sys
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..client import Throttle
from ..config import resolve_budget
from ..errors import APIError, BudgetExceeded, RequestError
from ..result import Result
from ..stop import Budget, CIWidth, Decided, Rule
from .cells import Cell, SweepLike, plan_frame
from .forecast import Forecast, cell_worst_usd, forecast
from .results import (
    AdaptiveOutcome,
    Columns,
    RunStats,
    SweepResult,
    build_frame,
    ignored_axes,
    result_row,
    routing_warnings,
    score,
)

if TYPE_CHECKING:
    from ..sequential import AdaptiveScheduler

#: Cached cells are read this many at a time: the parsed responses and log rows of one chunk
#: are alive at once, not those of the whole sweep.
HIT_CHUNK = 2000


class _InFlight:
    """Calls in flight, and a way for a call refused by the budget to wait for one to end."""

    def __init__(self) -> None:
        self.active = 0
        self.finished = 0
        self._changed = asyncio.Event()

    async def send(self, runner: Runner, cell: Cell) -> Result:
        self.active += 1
        refused = False
        try:
            return await runner.sweep.engine.send(
                cell.call, stream=runner.stream, throttle=runner.throttle, limits=runner.limits
            )
        except BudgetExceeded:
            refused = True  # nothing was sent: finishing it frees no budget
            raise
        finally:
            self.active -= 1
            if not refused:
                self.finished += 1
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    async def wait_for_a_finish(self, since: int) -> bool:
        """Wait until a sent call has finished after `since`; False if none is in flight."""
        while self.finished == since:
            if self.active == 0:
                return False
            await self._changed.wait()
        return True


#: What a sweep's stopping rules can read of a finished cell: the scorer's score, and
#: whether the reply was truncated (1.0) or not.
STOP_METRICS = ("score", "truncated")


def check_stop(sweep: SweepLike, stop: Any) -> None:
    """Refuse a stopping rule this sweep cannot run, before anything is sent."""
    if stop is None:
        return
    if not isinstance(stop, Rule):
        raise RequestError(
            f"stop must be a rule from mmlab.stop (decided, ci_width, budget, max_repeats); "
            f"got {stop!r}",
            "stop",
        )
    read = [r.metric for r in stop.leaves() if isinstance(r, CIWidth | Decided)]
    unknown = sorted(set(read) - set(STOP_METRICS))
    if unknown:
        # any other metric would never be observed: the rule would silently never decide
        raise RequestError(
            f"a sweep's stop rules can read {', '.join(STOP_METRICS)}; got metric "
            f"{', '.join(map(repr, unknown))}",
            "metric",
        )
    if sweep.scorer is None and "score" in read:
        raise RequestError("stop rules read scores: give the sweep a scorer=", "scorer")


class Runner:
    """One run of a sweep (see the module docstring). Build with `Sweep.arun`."""

    def __init__(
        self,
        sweep: SweepLike,
        *,
        concurrency: int,
        budget_usd: float | None,
        progress: bool | Callable[[int, int], None],
        retry_errors: bool,
        max_calls: int | None,
        stream: bool,
        stop: Rule | None = None,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise RequestError(
                f"concurrency must be an integer >= 1; got {concurrency!r}", "concurrency"
            )
        if max_calls is not None and (
            isinstance(max_calls, bool) or not isinstance(max_calls, int) or max_calls < 0
        ):
            raise RequestError(f"max_calls must be an integer >= 0; got {max_calls!r}", "max_calls")
        budget = resolve_budget(budget_usd) if budget_usd is not None else None
        check_stop(sweep, stop)
        self.sweep = sweep
        self.progress = progress
        self.retry_errors = retry_errors
        self.max_calls = max_calls
        self.stream = stream
        self.limits = [(sweep.tag, budget)] if budget is not None else []
        self.throttle = Throttle(concurrency)
        self.stats = RunStats(
            cells=len(sweep.cells), lowest_concurrency=concurrency, concurrency=concurrency
        )
        self.columns = Columns(len(sweep.cells))
        self.failures: dict[int, str] = {}
        self.flight = _InFlight()
        self.stopping = False
        self.bar: Any = None
        self.held_back: list[Cell] = []
        self.assigned = 0
        self.stop = stop
        self.scheduler: AdaptiveScheduler | None = None
        self.offered: set[int] = set()

    async def run(self) -> SweepResult:
        """Serve the cached cells, send the others, and return the result."""
        started = time.perf_counter()
        # Reading the log waits for queued writes, and another process may hold the write
        # lock: database work runs off the event loop, so calls in flight never stall.
        engine, cells = self.sweep.engine, self.sweep.cells
        known = await asyncio.to_thread(engine.status, [c.call for c in cells], self.sweep.tag)
        if self.stop is not None:
            self.scheduler = await self._scheduler()
        self.bar = _progress(len(self.sweep.cells), self.progress, self.sweep.name)
        try:
            if self.scheduler is None:
                await self._round(self.sweep.cells, *known)
            else:
                await self._rounds(*known)
        finally:
            if self.scheduler is not None and self.scheduler.done:
                self.bar.retotal(len(self.offered))  # the design shrank to what was sampled
            self.stats.rate_limited = self.throttle.throttled
            self.stats.seconds = time.perf_counter() - started
            self.bar.close()
        if self.held_back and not self.stats.stopped:
            self.stats.stopped = f"max_calls={self.max_calls} reached"
        return await self._result()

    async def _round(self, cells: list[Cell], cached: set[str], errors: dict[str, str]) -> None:
        """Serve the cached cells of `cells` and send the others (within `max_calls`)."""
        hits, todo = self._partition(cells, cached, errors)
        unreadable = await asyncio.to_thread(self._serve_hits, hits)  # sent after all
        served = len(hits) - len(unreadable)
        todo += unreadable
        todo, held_back = self._limit(todo)
        self.held_back += held_back
        if todo and self.sweep.engine.cache_mode == "replay":
            # explained against this sweep's own entries: reading the log waits for its
            # queued hit rows, off the event loop
            raise await asyncio.to_thread(self.sweep.engine.miss_error, todo[0].call)
        self.bar.update(served + sum(c.index in self.failures for c in cells))
        await self._send_all(todo)

    async def _rounds(self, cached: set[str], errors: dict[str, str]) -> None:
        """Adaptive sampling: round by round, the cells the stopping rule still wants."""
        scheduler = self.scheduler
        assert scheduler is not None
        while not self.stopping and not self.held_back:
            ids = scheduler.next_round()
            if not ids:
                break
            cells = [self.sweep.cells[i] for i in ids]
            self.offered.update(ids)
            await self._round(cells, cached, errors)
            if self.stopping or self.held_back:
                break  # an interrupted round decides nothing; a rerun replays it
            for c in cells:
                scheduler.observe(c.index, self._scores(c), self._cost(c))
        self.stats.adaptive_stop = scheduler.stopped_reason

    design: Forecast | None = None

    async def _scheduler(self) -> AdaptiveScheduler:
        sweep = self.sweep
        assert self.stop is not None
        # a budget rule must bound every cell's cost, as a Lab budget does (an unpriced model
        # would otherwise count as free and the rule would never stop anything)
        budgeted = any(isinstance(r, Budget) for r in self.stop.leaves())
        worst = await cell_worst_usd(sweep.engine, sweep.cells, bounded=budgeted)
        self.design = await forecast(sweep.engine, len(sweep.cells), sweep.cells, 0, 0)
        # imported here, not at the top: it loads numpy, which `from mmlab import Lab` should
        # not pay for unless a sweep samples adaptively
        from ..sequential import AdaptiveScheduler

        return AdaptiveScheduler(
            plan_frame(sweep.cells, sweep.columns),
            self.stop,
            repeats=sweep.repeats,
            point_columns=sweep.columns,
            worst_usd_per_cell=lambda i: worst[i],
        )

    def _scores(self, cell: Cell) -> dict[str, float | None] | None:
        """What the stopping rule reads of a finished cell (None: it failed)."""
        if not self.columns.done[cell.index]:
            return None
        # the row res.df will score: the same decisions
        row = result_row(cell, self.columns, self.sweep.columns)
        value = score(self.sweep.scorer, row) if self.sweep.scorer is not None else None
        return {"score": value, "truncated": float(row["truncated"])}

    def _cost(self, cell: Cell) -> float:
        # What producing the response cost, not what this run spent: a replay (all hits,
        # nothing spent) must decide exactly as the live run did.
        return self.columns.cost(cell.index)

    def _partition(
        self, cells: list[Cell], cached: set[str], errors: dict[str, str]
    ) -> tuple[list[Cell], list[Cell]]:
        """(cached cells, cells to send); cells whose last attempt failed are kept as
        failures unless `retry_errors`, which sends them again with the cells never run (as
        `Sweep.forecast(retry_errors=True)` counts them)."""
        hits: list[Cell] = []
        todo: list[Cell] = []
        for c in cells:
            if c.call.key in cached:
                hits.append(c)
            elif c.call.key in errors and not self.retry_errors:
                self.failures[c.index] = errors[c.call.key]
            else:
                todo.append(c)
        return hits, todo

    def _serve_hits(self, hits: list[Cell]) -> list[Cell]:
        """Serve cached cells through the engine's lookup (every cell served is a logged
        call); returns the cells whose entries vanished meanwhile (cleared by another
        process), to be sent after all."""
        engine = self.sweep.engine
        vanished: list[Cell] = []
        for i in range(0, len(hits), HIT_CHUNK):
            chunk = hits[i : i + HIT_CHUNK]
            for c, result in zip(chunk, engine.lookup_many([c.call for c in chunk]), strict=True):
                if result is None:
                    vanished.append(c)
                    continue
                self.columns.put(c.index, result)
                self.stats.hits += 1
        return vanished

    def _limit(self, todo: list[Cell]) -> tuple[list[Cell], list[Cell]]:
        if self.max_calls is None:
            return todo, []
        room = max(self.max_calls - self.assigned, 0)
        self.assigned += min(room, len(todo))
        return todo[:room], todo[room:]

    async def _send_all(self, todo: list[Cell]) -> None:
        tasks = [asyncio.ensure_future(self._one(c)) for c in todo]
        try:
            if tasks:
                await asyncio.gather(*tasks)
        except BaseException:
            # Interrupted (Ctrl-C, cancellation) or a failure that is not the endpoint's
            # (e.g. the disk is full): stop everything; finished cells are already stored,
            # in-flight ones log a cancelled row and are resent by the next run.
            self.stopping = True
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.stats.stopped = "interrupted"
            raise

    async def _one(self, cell: Cell) -> None:
        # The concurrency limit (`throttle`) is taken inside Engine.send, around the
        # reservation and the request.
        if self.stopping:
            return
        try:
            result = await self._send(cell)
            if result is None:
                return
        except APIError as exc:
            self._failed(cell, exc)
        else:
            self._succeeded(cell, result)
        self.stats.lowest_concurrency = min(self.stats.lowest_concurrency, self.throttle.lowest)
        self.bar.update(1)
        self._show()

    async def _send(self, cell: Cell) -> Result | None:
        while not self.stopping:
            since = self.flight.finished
            try:
                return await self.flight.send(self, cell)
            except BudgetExceeded as exc:
                if not await self.flight.wait_for_a_finish(since):
                    if not self.stopping:
                        self.stats.stopped = f"budget: {exc}"
                    self.stopping = True
                    return None
        return None

    def _succeeded(self, cell: Cell, result: Result) -> None:
        self.stats.sent += 1
        self.stats.succeeded += 1
        self.stats.retries += result.retries
        self.stats.spent_usd += result.spent_usd
        self.columns.put(cell.index, result)
        self.failures.pop(cell.index, None)

    def _failed(self, cell: Cell, exc: APIError) -> None:
        self.stats.sent += 1
        self.stats.failed += 1
        self.stats.retries += max(exc.attempts - 1, 0)
        self.failures[cell.index] = str(exc)

    def _show(self) -> None:
        self.bar.set_postfix(
            hits=self.stats.hits,
            spent=f"${self.stats.spent_usd:.4f}",
            errors=len(self.failures),
            conc=self.throttle.limit,
            refresh=False,
        )

    async def _result(self) -> SweepResult:
        sweep = self.sweep
        done, failed = self.columns.done, self.failures
        wanted = (
            sweep.cells
            if self.scheduler is None or not self.scheduler.done
            else [c for c in sweep.cells if c.index in self.offered]
        )  # an adaptive run that decided wants no more than it sampled
        left = [c for c in wanted if not done[c.index] and c.index not in failed]
        self.stats.remaining = len(left)
        if left:
            self.stats.remaining_forecast = await forecast(sweep.engine, len(left), left, 0, 0)
        df = build_frame(
            sweep.cells, sweep.prompts, sweep.columns, self.columns, self.failures, sweep.scorer
        )
        adaptive = None
        if self.scheduler is not None:
            df = df[df["cell"].isin(self.offered)].reset_index(drop=True)  # cells sampled
            adaptive = AdaptiveOutcome.of(self.scheduler, str(self.stop), self.design)
            self.stats.adaptive = adaptive
        res = SweepResult(sweep, df, self.stats, adaptive)
        for said in routing_warnings(df, sweep.columns):
            warnings.warn(said, stacklevel=4)
        for axis, compared in ignored_axes(df, sweep.columns):
            warnings.warn(
                f"sweeping {axis} changed no answer in any of {compared} comparable cell groups "
                "(same prompt, sample and other parameters): the endpoint may ignore it — "
                "check with lab.probe()",
                stacklevel=4,
            )
        if self.stats.stopped and self.progress is True:
            print(f"mmlab sweep {sweep.name}: {self.stats}", file=sys.stderr)
        return res


def _progress(total: int, enabled: bool | Callable[[int, int], None], name: str) -> Any:
    if callable(enabled):
        return _CallbackBar(total, enabled)
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    class _Bar(tqdm):  # type: ignore[misc, valid-type]
        def retotal(self, total: int) -> None:
            self.total = total
            self.refresh()

    return _Bar(total=total, desc=name, unit="cell", dynamic_ncols=True)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def retotal(self, total: int) -> None:
        pass

    def set_postfix(self, **kw: Any) -> None:
        pass

    def close(self) -> None:
        pass


class _CallbackBar(_NoBar):
    """Progress reported to a function ``(done, total)`` (what widgets use)."""

    def __init__(self, total: int, callback: Callable[[int, int], None]) -> None:
        self.total, self.done, self.callback = total, 0, callback

    def update(self, n: int = 1) -> None:
        self.done += n
        self.callback(self.done, self.total)

    def retotal(self, total: int) -> None:
        self.total = total
        self.callback(self.done, self.total)
