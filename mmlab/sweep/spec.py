"""`Sweep`: a definition (prompts × parameter points × repeats) bound to an engine.

A cell is (prompt, parameter point, sample index), identified by its cache key, so a sweep's
identity survives restarts and **resume is by construction**: a rerun sends only the cells
with no successful (cached) result; cells whose last attempt failed are kept as errors until
``retry_errors=True`` reruns exactly those. Every cell is built and sent through the engine's
own call path (`Engine.calls_for`, `Engine.send`): validation, budget, retries, cache, log.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, RequestError
from ..loop import run_sync
from ..params import check_params, expand
from ..stop import Rule
from ..tags import nest
from ..wire import canonical_json
from .cells import (
    build_cells,
    check_points,
    check_size,
    plan_frame,
    point_columns,
    prompt_table,
)
from .forecast import Forecast, forecast
from .results import SweepResult
from .runner import Runner, check_stop
from .spaces import Space, points_of, size_of

if TYPE_CHECKING:
    import pandas as pd

    from ..engine import Call, Engine


#: A sweep's own keyword arguments (beside the fixed request parameters), for suggestions.
SWEEP_ARGUMENTS = ("repeats", "tag", "system", "scorer")


class Sweep:
    """A sweep definition bound to an engine (a `Lab`). Build with `Lab.sweep`.

    Its size (prompts × points × repeats) is counted before any point or cell is made; above
    `mmlab.sweep.cells.MAX_CELLS` (or ``MMLAB_SWEEP_MAX_CELLS``) it raises `RequestError`.
    """

    def __init__(
        self,
        engine: Engine,
        prompts: Any,
        params: Space | Sequence[Mapping[str, Any]] | Mapping[str, Any] | None,
        *,
        repeats: int = 1,
        tag: str | None = None,
        system: str | None = None,
        scorer: Callable[[Mapping[str, Any]], Any] | None = None,
        fixed: Mapping[str, Any] | None = None,
    ) -> None:
        if engine.cache_mode in ("off", "refresh"):
            raise ConfigError(
                f"sweeps resume from the cache, so they need cache='use' or 'replay'; this "
                f"lab has cache={engine.cache_mode!r}"
            )
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
            raise RequestError(f"repeats must be an integer >= 1; got {repeats!r}", "repeats")
        if scorer is not None and not callable(scorer):
            raise RequestError("scorer must be a function of a result row", "scorer")
        self.engine = engine
        self.repeats = repeats
        self.system = system
        self.scorer = scorer
        # Lab.sweep's **fixed takes any keyword: a misspelt argument (repeat=2) lands here
        self.fixed = check_params(dict(fixed or {}), arguments=SWEEP_ARGUMENTS, caller="sweep")
        self.prompts = prompt_table(prompts)
        # counted before a point or a cell is made: a typo must not end in a MemoryError
        check_size(len(self.prompts), size_of(params), repeats)
        self.points = [expand(p) for p in points_of(params)]
        # every point valid before anything runs
        checked = check_points(self.fixed, self.points, self._defaults)
        self.name = tag or "sweep-" + self._fingerprint()[:10]
        self.tag: str = nest(engine.tag, self.name, "tag") or self.name
        self.cells = build_cells(
            engine,
            self.prompts,
            self.points,
            checked,
            system=system,
            repeats=repeats,
            tag=self.tag,
        )

    def _defaults(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults for a point whose own parameters are `params`: on an endpoint with provider
        routing, ``require_parameters`` — OpenRouter silently drops a parameter the chosen
        provider does not support, so a sweep over it would measure nothing; only providers
        that honour every parameter sent are used (override with
        ``provider={"require_parameters": False}``)."""
        try:
            via = self.engine.route(params)[0]
        except RequestError:
            return {}  # an unknown endpoint name: check_params / calls_for will say so
        if via.capabilities.provider_routing:
            return {"provider": {"require_parameters": True}}
        return {}

    def _fingerprint(self) -> str:
        spec = {
            "model": self.engine.model,
            "endpoint": self.engine.endpoint.identity,
            "prompts": self.prompts.to_dict("records"),
            "points": self.points,
            "fixed": self.fixed,
            "repeats": self.repeats,
            "system": self.system,
        }
        return hashlib.sha256(canonical_json(spec).encode()).hexdigest()

    def __len__(self) -> int:
        return len(self.cells)

    def __repr__(self) -> str:
        return (
            f"Sweep(tag={self.tag!r}, {len(self.prompts)} prompts × {len(self.points)} "
            f"points × {self.repeats} repeats = {len(self.cells)} cells)"
        )

    @property
    def columns(self) -> list[str]:
        """The parameter columns this sweep varies or sets (``temperature``,
        ``reasoning.effort``, ``provider.only``, ...), as every frame of it names them."""
        return point_columns(self.points)

    def plan(self) -> pd.DataFrame:
        """One row per cell: prompt id, parameters (typed as in ``res.df`` and
        ``lab.calls()``), sample index, status (``hit``: cached; ``error``: last attempt
        failed; ``miss``: to call) and cache key."""
        return plan_frame(self.cells, self.columns, self.engine.status(self.calls, self.tag))

    @property
    def calls(self) -> list[Call]:
        """Every cell's prepared call, in cell order."""
        return [c.call for c in self.cells]

    def forecast(self, *, retry_errors: bool = False, stop: Rule | None = None) -> Forecast:
        """Calls to make, cache hits, and expected and worst-case tokens and USD; with a
        `stop` rule, also what an adaptive run is expected to sample."""
        return run_sync(self.aforecast(retry_errors=retry_errors, stop=stop))

    async def aforecast(self, *, retry_errors: bool = False, stop: Rule | None = None) -> Forecast:
        """Async `forecast`."""
        check_stop(self, stop)
        cached, errors = await asyncio.to_thread(self.engine.status, self.calls, self.tag)
        todo = [
            c
            for c in self.cells
            if c.call.key not in cached and (retry_errors or c.call.key not in errors)
        ]
        kept = 0 if retry_errors else len(errors)
        out = await forecast(self.engine, len(self.cells), todo, len(cached), kept)
        if stop is not None:
            from ..sequential import expected_share  # loads numpy: only when asked (see runner)

            out.adaptive_rule = str(stop)
            out.adaptive_share = await asyncio.to_thread(
                expected_share,
                plan_frame(self.cells, self.columns),
                stop,
                repeats=self.repeats,
                point_columns=self.columns,
                # what a call is expected to cost, so a budget rule binds where it would
                usd_per_cell=out.expected_usd / len(todo) if todo else 0.0,
            )
        return out

    def run(
        self,
        *,
        concurrency: int = 8,
        budget_usd: float | None = None,
        progress: bool | Callable[[int, int], None] = True,
        retry_errors: bool = False,
        max_calls: int | None = None,
        stream: bool = False,
        stop: Rule | None = None,
    ) -> SweepResult:
        """Run the cells that have no result yet (see the module docstring).

        Safe to call from a notebook (its event loop is already running): the work runs on
        mmlab's own loop. Ctrl-C stops cleanly: finished cells are kept, in-flight ones are
        cancelled and will be resent by the next run. `progress` is a tqdm bar (True), nothing
        (False), or a function called with ``(done, total)`` after each cell.

        `stop` (a rule from `mmlab.stop`) samples adaptively: round r runs repeat r of the
        cells the rule still wants, scoring as results arrive, and the run ends when the rule
        says the question is answered (`repeats` is then the most any cell may get); the
        result's ``adaptive`` says why and when, with anytime-valid intervals.
        """
        return run_sync(
            self.arun(
                concurrency=concurrency,
                budget_usd=budget_usd,
                progress=progress,
                retry_errors=retry_errors,
                max_calls=max_calls,
                stream=stream,
                stop=stop,
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
        stop: Rule | None = None,
    ) -> SweepResult:
        """Async `run`. `stream=True` streams every call (TTFT is then measured)."""
        runner = Runner(
            self,
            concurrency=concurrency,
            budget_usd=budget_usd,
            progress=progress,
            retry_errors=retry_errors,
            max_calls=max_calls,
            stream=stream,
            stop=stop,
        )
        return await runner.run()
