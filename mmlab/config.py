"""Where settings come from: arguments first, then environment variables, then defaults.

Environment variables (all optional):

    OPENROUTER_API_KEY   use OpenRouter (https://openrouter.ai/api/v1)
    MMLAB_BASE_URL       any OpenAI-compatible endpoint (vLLM, Ollama, ...) when no key is set
    MMLAB_MODEL          the model id to request
    MMLAB_DB             the SQLite file holding cache and usage log
    MMLAB_CACHE          use | refresh | replay | off
    MMLAB_BUDGET_USD     a spend cap in USD
    MMLAB_LOCAL_MODEL    a GGUF file to serve instead of the shipped SmolLM2-135M-Instruct
    MMLAB_BUNDLE         a bundle to replay from (imported into the cache when MMLAB_CACHE=replay)
    MMLAB_TRUST_IMPORTS  1: answers imported from bundles may answer live calls (default 0)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError

OPENROUTER_URL = "https://openrouter.ai/api/v1"
DEFAULT_MODEL = "minimax/minimax-m1"
CACHE_MODES = ("use", "refresh", "replay", "off")

#: M1's recommended sampling (MiniMax-M1 README §3.1, tech report §6.1). A documented preset,
#: never injected silently: pass ``**M1_RECOMMENDED`` to ``lab.chat`` to use it.
M1_RECOMMENDED: dict[str, float] = {"temperature": 1.0, "top_p": 0.95}

#: System prompts the MiniMax-M1 README suggests (§3.2).
M1_SYSTEM_PROMPTS: dict[str, str] = {
    "general": "You are a helpful assistant.",
    "math": "Please reason step by step, and put your final answer within \\boxed{}.",
}


@dataclass(frozen=True)
class Timeouts:
    """Transport timeouts. None of these is part of the cache key."""

    connect_s: float = 15.0
    """Seconds to open a connection."""
    read_s: float = 900.0
    """Seconds to wait for a non-streamed reply: M1 may think for many minutes."""
    stall_s: float = 180.0
    """A stream counts as stalled only after this many seconds without a single byte
    (SSE keep-alive comments count as bytes)."""


def env(name: str) -> str | None:
    """An environment variable, with empty strings treated as unset."""
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def resolve_cache_mode(mode: str | None) -> str:
    """Validate a cache mode, defaulting to ``MMLAB_CACHE`` and then ``use``."""
    mode = mode or env("MMLAB_CACHE") or "use"
    if mode not in CACHE_MODES:
        raise ConfigError(f"cache must be one of {', '.join(CACHE_MODES)}; got {mode!r}")
    return mode


def resolve_trust_imports(trust: bool | None) -> bool:
    """Validate `trust_imports`, defaulting to ``MMLAB_TRUST_IMPORTS`` (1/0, true/false,
    yes/no) and then off."""
    if trust is None:
        raw = env("MMLAB_TRUST_IMPORTS")
        if raw is None:
            return False
        flags = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
        if raw.strip().lower() not in flags:
            raise ConfigError(f"MMLAB_TRUST_IMPORTS must be 1 or 0 (true/false); got {raw!r}")
        return flags[raw.strip().lower()]
    if not isinstance(trust, bool):
        raise ConfigError(f"trust_imports must be True or False; got {trust!r}")
    return trust


def resolve_budget(budget_usd: float | None) -> float | None:
    """Validate a budget, defaulting to ``MMLAB_BUDGET_USD``."""
    if budget_usd is None:
        raw = env("MMLAB_BUDGET_USD")
        if raw is None:
            return None
        try:
            budget_usd = float(raw)
        except ValueError:
            raise ConfigError(f"MMLAB_BUDGET_USD must be a number of USD; got {raw!r}") from None
    if isinstance(budget_usd, bool) or not isinstance(budget_usd, int | float):
        raise ConfigError(f"budget_usd must be a number of USD >= 0; got {budget_usd!r}")
    if math.isnan(budget_usd) or budget_usd < 0 or math.isinf(budget_usd):
        raise ConfigError(f"budget_usd must be a finite number of USD >= 0; got {budget_usd!r}")
    return float(budget_usd)


def normalize_base_url(url: str) -> str:
    """Check an endpoint URL and return it without a trailing slash.

    The URL must be http(s) with a host, e.g. ``http://127.0.0.1:8000/v1``; the chat route
    ``/chat/completions`` is appended to it.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(
            f"base_url must be an http(s) URL such as http://host:port/v1; got {url!r}"
        )
    url = url.strip()
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        # user:pass@ would become the endpoint's identity: stored in the cache and the log,
        # written into bundles, printed by the announcement. Never echo it back either.
        host = parts.netloc.rpartition("@")[2]
        shown = parts._replace(netloc=f"***@{host}").geturl()
        raise ConfigError(
            f"base_url must not carry credentials (user:password@); got {shown!r}. Pass the "
            "key as api_key= (sent as a Bearer token, never stored) or set OPENROUTER_API_KEY"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"base_url must be an http(s) URL such as http://host:port/v1; got {url!r}"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"base_url must not carry a query or fragment; got {url!r}")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ConfigError(f"base_url has a malformed port; got {url!r}") from None
    return url.rstrip("/")


def data_dir() -> Path:
    """The directory for mmlab's database and caches.

    A project opts in by having a ``.mmlab/`` directory (searched upwards from the working
    directory); otherwise the user's data dir (``$XDG_DATA_HOME/mmlab`` or
    ``~/.local/share/mmlab``). Never the working directory silently.
    """
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / ".mmlab").is_dir():
            return folder / ".mmlab"
    base = env("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mmlab"


def default_db_path() -> Path:
    """``MMLAB_DB`` or ``<data dir>/mmlab.db``."""
    raw = env("MMLAB_DB")
    return Path(raw).expanduser() if raw else data_dir() / "mmlab.db"
