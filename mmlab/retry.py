"""Retry policy: how long to wait before retrying a retryable failure.

What is retryable is decided where the error is built (`mmlab.errors.classify_status`):
429/503 honour ``Retry-After`` (or ``error.availability.retry_after``); 502/504/524/529 and
dropped connections back off exponentially with jitter; 400/401/402/403/404 never retry.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long to retry a retryable failure."""

    max_retries: int = 6
    """Retries after the first attempt (so at most max_retries + 1 requests)."""
    base_s: float = 0.5
    """First backoff; doubles each attempt, with full jitter."""
    cap_s: float = 60.0
    """Longest single wait, including a server's Retry-After."""

    def wait(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        if retry_after is not None:
            # The server's figure, plus a little jitter so a herd does not return in step.
            return min(retry_after, self.cap_s) * (1.0 + 0.1 * random.random())
        ceiling = min(self.cap_s, self.base_s * 2 ** (attempt - 1))
        return ceiling * (0.5 + 0.5 * random.random())
