"""mmlab: cached, logged, budgeted research calls to MiniMax M1, with sweeps and notebooks.

    from mmlab import Lab
    lab = Lab()                       # OpenRouter with OPENROUTER_API_KEY, else the embedded model
    r = lab.chat("What is 17 * 23?", reasoning={"effort": "high"}, max_tokens=2000)
    r.content, r.reasoning, r.usage.reasoning_tokens, r.cost_usd, r.cache_hit
    lab.calls()                       # the usage log as a DataFrame

The implementation lives in small modules; this file is the public face. Names and
submodules are imported on first use, so that ``import mmlab`` stays fast (pandas, httpx,
numpy and plotly load when something needs them) and ``mmlab.stop.decided(...)`` works after
a bare ``import mmlab``. The public names are listed once, in `_EXPORTS`; the type checkers'
copy below is kept in sync by a test.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Lab": "mmlab.lab",
    "Call": "mmlab.engine",
    "Engine": "mmlab.engine",
    "Result": "mmlab.result",
    "Response": "mmlab.result",
    "Endpoint": "mmlab.endpoints",
    "OpenRouter": "mmlab.endpoints",
    "Embedded": "mmlab.endpoints",
    "Usage": "mmlab.wire",
    "Timeouts": "mmlab.config",
    "M1_RECOMMENDED": "mmlab.config",
    "M1_SYSTEM_PROMPTS": "mmlab.config",
    "RetryPolicy": "mmlab.retry",
    "Price": "mmlab.pricing",
    "PriceTable": "mmlab.pricing",
    "Sweep": "mmlab.sweep",
    "SweepResult": "mmlab.sweep",
    "grid": "mmlab.sweep",
    "zip_": "mmlab.sweep",
    "random_": "mmlab.sweep",
    "pin": "mmlab.params",
    "MmlabError": "mmlab.errors",
    "ConfigError": "mmlab.errors",
    "RequestError": "mmlab.errors",
    "BudgetExceeded": "mmlab.errors",
    "CacheMiss": "mmlab.errors",
    "APIError": "mmlab.errors",
    "BundleError": "mmlab.errors",
    "StorageError": "mmlab.errors",
    "LocalModelError": "mmlab.errors",
    "export_bundle": "mmlab.bundle",
    "import_bundle": "mmlab.bundle",
    "setup_notebook": "mmlab.plots",
}

#: The public submodules, reachable as ``mmlab.<name>`` after ``import mmlab``.
SUBMODULES = (
    "analysis", "bundle", "cachekey", "confidence", "config", "design", "endpoints", "engine",
    "errors", "fields", "ledger", "params", "plots", "plots_traces", "pricing", "probe",
    "problems", "reference", "report", "result", "scaling", "scorers", "sequential", "stop",
    "store", "sweep", "testing", "traces", "widgets",
)  # fmt: skip

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
    elif name in SUBMODULES:
        value = importlib.import_module(f"mmlab.{name}")
    else:
        raise AttributeError(f"module 'mmlab' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(SUBMODULES))


if TYPE_CHECKING:
    from .bundle import export_bundle, import_bundle
    from .config import M1_RECOMMENDED, M1_SYSTEM_PROMPTS, Timeouts
    from .endpoints import Embedded, Endpoint, OpenRouter
    from .engine import Call, Engine
    from .errors import (
        APIError,
        BudgetExceeded,
        BundleError,
        CacheMiss,
        ConfigError,
        LocalModelError,
        MmlabError,
        RequestError,
        StorageError,
    )
    from .lab import Lab
    from .params import pin
    from .plots import setup_notebook
    from .pricing import Price, PriceTable
    from .result import Response, Result
    from .retry import RetryPolicy
    from .sweep import Sweep, SweepResult, grid, random_, zip_
    from .wire import Usage
