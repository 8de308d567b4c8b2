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
from ..params import check_params
from ..tags import nest
from ..wire import canonical_json
from .cells import build_cells, check_points, prompt_table, status
from .forecast import Forecast, forecast
from .results import SweepResult
from .runner import Runner
from .spaces import Space, points_of

if TYPE_CHECKING:
    import pandas as pd

    from ..engine import Engine


class Sweep:
    """A sweep definition bound to an engine (a `Lab`). Build with `Lab.sweep`."""

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
        self.fixed = check_params(dict(fixed or {}))
        self.prompts = prompt_table(prompts)
        self.points = points_of(params)
        checked = check_points(self.fixed, self.points)  # every point valid before anything runs
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

    def plan(self) -> pd.DataFrame:
        """One row per cell: prompt id, parameters, sample index, cache key and status
        (``hit``: cached; ``error``: last attempt failed; ``miss``: to call)."""
        import pandas as pd

        cached, errors = status(self.engine, self.cells, self.tag)
        rows = []
        for c in self.cells:
            key = c.call.key
            state = "hit" if key in cached else "error" if key in errors else "miss"
            rows.append(
                {
                    "cell": c.index,
                    "prompt_id": c.prompt_id,
                    **c.point,
                    "sample": c.sample,
                    "status": state,
                    "cache_key": key,
                }
            )
        return pd.DataFrame(rows)

    def forecast(self, *, retry_errors: bool = False) -> Forecast:
        """Calls to make, cache hits, and expected and worst-case tokens and USD."""
        return run_sync(self.aforecast(retry_errors=retry_errors))

    async def aforecast(self, *, retry_errors: bool = False) -> Forecast:
        """Async `forecast`."""
        cached, errors = await asyncio.to_thread(status, self.engine, self.cells, self.tag)
        todo = [
            c
            for c in self.cells
            if c.call.key not in cached and (retry_errors or c.call.key not in errors)
        ]
        kept = 0 if retry_errors else len(errors)
        return await forecast(self.engine, len(self.cells), todo, len(cached), kept)

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
        runner = Runner(
            self,
            concurrency=concurrency,
            budget_usd=budget_usd,
            progress=progress,
            retry_errors=retry_errors,
            max_calls=max_calls,
            stream=stream,
        )
        return await runner.run()
