"""One small hierarchy of errors, so callers can catch at the level they care about.

MmlabError
├── ConfigError        bad configuration (base URL, DB path, cache mode, env vars); nothing sent
├── RequestError       a bad request (parameter, message, spec); nothing sent, nothing written
├── BudgetExceeded     the call's worst case could cross the budget; nothing sent
├── CacheMiss          replay mode and the request is not in the cache; no socket opened
├── APIError           the endpoint answered with an error (HTTP status, 200 + error body,
│                      or a mid-stream error); `retryable` says whether waiting could help
├── BundleError        a bundle file is corrupt, truncated or from an unknown schema
├── StorageError       the database cannot be written (disk full, read-only, locked too long)
└── LocalModelError    the embedded model could not be found or started
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from .redaction import redact

RATE_LIMIT = {429}
WAIT_AND_RETRY = {503}  # "no provider available right now": Retry-After when given
TRANSIENT = {408, 500, 502, 504, 520, 522, 524, 529}


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` — did you mean 'x'?`` naming the closest of `choices` to a misspelt `word` (difflib's
    ratio, as Python's own NameError hints), or "" when none is close: the hint an error
    about an unknown name ends with."""
    close = difflib.get_close_matches(str(word), list(choices), n=2, cutoff=0.6)
    if not close:
        return ""
    return " — did you mean " + " or ".join(repr(c) for c in close) + "?"


def classify_status(status: int) -> tuple[str, bool]:
    """(kind, retryable) for an HTTP status or an error body's code.

    OpenRouter's guidance (https://openrouter.ai/docs/api-reference/errors): 429 and 503 may
    be retried after Retry-After; 502/504/524/529 and dropped connections are transient;
    400/401/402/403/404 never succeed on a retry.
    """
    if status in RATE_LIMIT:
        return "rate_limit", True
    if status in WAIT_AND_RETRY:
        return "unavailable", True
    if status in TRANSIENT:
        return "transient", True
    if status == 0:
        return "connection", True
    return "http", False


class MmlabError(Exception):
    """Base class of every error mmlab raises on purpose.

    Its message is redacted when the error is made (`mmlab.redaction`): whatever text a
    server sent back, no registered key or Bearer credential survives into it.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


class ConfigError(MmlabError, ValueError):
    """The configuration is unusable (bad base URL, unreadable or foreign DB, bad env var)."""


class RequestError(MmlabError, ValueError):
    """A request or spec is invalid; raised before any network call and any write.

    `field` names the offending field (e.g. ``"temperature"`` or ``"messages[1].role"``).
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class BudgetExceeded(MmlabError):
    """The call (or sweep) was refused because its worst case could cross the budget."""

    def __init__(
        self, message: str, *, budget_usd: float, spent_usd: float, needed_usd: float
    ) -> None:
        super().__init__(message)
        self.budget_usd = budget_usd
        self.spent_usd = spent_usd
        self.needed_usd = needed_usd


class CacheMiss(MmlabError, LookupError):
    """Replay mode found no cached response for the request.

    `nearest` is the closest stored request (or None) and `differences` lists the fields that
    differ from it, e.g. ``["request.temperature: 0.7 != 1.0"]``.
    """

    def __init__(
        self, message: str, *, nearest: dict[str, Any] | None, differences: list[str]
    ) -> None:
        super().__init__(message)
        self.nearest = nearest
        self.differences = differences


class APIError(MmlabError):
    """The endpoint answered with an error.

    Attributes:
        status: HTTP status (or the error body's ``code`` for 200-with-error and mid-stream
            errors; 0 for a dropped connection).
        error_type: OpenRouter's ``error.metadata.error_type`` when given, else a short
            classification (``rate_limit``, ``transient``, ``connection``, ``http``).
        retryable: whether the same request may succeed later.
        retry_after: seconds the server asked us to wait, when it said so.
        mid_stream: the error arrived inside a 200 stream after tokens were sent.
        billed_usd: what the server said this failed attempt cost (``usage.cost`` in the
            error), when it said so.
        billable: the attempt may have been billed although it failed: tokens of it reached
            us (a stream cut or ended in error after it began) or the server answered 200
            with a reply mmlab could not read. Such an attempt is charged (see
            `mmlab.engine`).
        generation_id: the server's id for the attempt, when it sent one (``reconcile`` can
            then fetch what it really cost).
        spent_usd: what the failed call's attempts were charged in all.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        error_type: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        mid_stream: bool = False,
        attempts: int = 1,
        billed_usd: float | None = None,
        billable: bool = False,
        generation_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.retryable = retryable
        self.retry_after = retry_after
        self.mid_stream = mid_stream
        self.attempts = attempts
        self.billed_usd = billed_usd
        self.billable = billable or billed_usd is not None
        self.generation_id = generation_id
        self.spent_usd = 0.0

    def __str__(self) -> str:
        head = f"HTTP {self.status}" if self.status else "connection"
        kind = f" {self.error_type}" if self.error_type else ""
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        return redact(f"{head}{kind}{tries}: {self.args[0]}")  # error_type is the server's too


class BundleError(MmlabError, ValueError):
    """A bundle is corrupt, truncated, tampered with, or of an unknown schema version."""


class StorageError(MmlabError, OSError):
    """The database could not be read or written; nothing was half-written."""


class LocalModelError(MmlabError, RuntimeError):
    """The embedded local model could not be located, started, or kept running."""
