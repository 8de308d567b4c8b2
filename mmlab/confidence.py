"""Token confidence from log-probabilities: the per-token series, its compact stored form and
the trace scores of DeepConf (Fu et al. 2025, "Deep Think with Confidence", arXiv 2508.15260).

- **Token confidence** at position i, over the top-k candidates the server returned:
  C_i = -(1/k) * sum_{j<=k} log P_i(j). A peaked distribution (the sampled token near-certain,
  the alternatives unlikely) has a *high* confidence; a flat one a low one. k is the number of
  alternatives asked for (``top_logprobs``); servers that add the sampled token to the list
  when it is not among the top k (llama.cpp, vLLM's completion route) give k + 1 entries for
  such tokens, so k is read as the most common list length in the reply and each token
  averages its k largest entries (llama.cpp keys candidates by their text, so two tokens
  spelled alike leave one entry: such a token averages the ones it has). Tokens without any
  candidates are skipped (as DeepConf's reference code does).
- **Stored form**: one IEEE half-precision float per token, little-endian, base64 — 2 bytes
  per token, 2.67 characters in the cache's JSON (the full top-k lists are never stored).
  Half precision keeps about 3 significant digits; confidences are clipped to [0, 65504].
- **Trace scores** (DeepConf §3 and its reference code): ``mean`` over all tokens; group
  confidences are means over sliding windows of `window` tokens (stride 1; default 2048, or
  the whole trace when it is shorter); ``lowest`` is the lowest group, ``bottom10`` the mean
  of the lowest 10% of groups (at least one), ``tail`` the mean of the last `window` tokens.

Pure functions; numpy is imported only to decode and score.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import numpy as np

#: DeepConf's group size: sliding windows of 2048 tokens.
DEFAULT_WINDOW = 2048
#: The share of lowest groups ``bottom10`` averages.
BOTTOM_SHARE = 0.1
#: The trace scores, in the order `Scores` holds them.
SCORES = ("mean", "lowest", "bottom10", "tail")
#: The lowest log-probability read from a reply: anything below is not a real figure (a
#: float32 logit never gets there) and makes the reply's confidence unreadable.
LOGPROB_FLOOR = -1e4
#: Rounding in a server may report log P a hair above 0; read as 0. Anything larger is wrong.
LOGPROB_SLACK = 1e-3
#: The longest series kept (tokens): a reply claiming more is not read.
MAX_TOKENS = 2**22
_HALF_MAX = 65504.0


def read_logprob(x: object) -> float | None:
    """A log-probability from an untrusted reply: a finite number in [`LOGPROB_FLOOR`, 0]
    (a hair above 0 read as 0), else None."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    v = float(x)
    if not math.isfinite(v) or v < LOGPROB_FLOOR or v > LOGPROB_SLACK:
        return None
    return min(v, 0.0)


def checked_tops(rows: list[Any]) -> list[list[float]]:
    """Each token's candidate log-probabilities as read from a reply (a list of numbers per
    token; None for a token without candidates, as the first of an echo), every number
    checked by `read_logprob`. ValueError when any row or number is unreadable, or when there
    are more than `MAX_TOKENS` tokens: a reply's numbers are untrusted."""
    if len(rows) > MAX_TOKENS:
        raise ValueError(f"logprobs: more than {MAX_TOKENS} tokens")
    out: list[list[float]] = []
    for row in rows:
        if row is None:
            out.append([])  # skipped by token_confidences
            continue
        if not isinstance(row, list):
            raise ValueError("logprobs: a token's candidates are not a list")
        values = [read_logprob(x) for x in row]
        if any(v is None for v in values):
            raise ValueError("logprobs: a log-probability is not a finite number <= 0")
        out.append(values)  # type: ignore[arg-type]
    return out


def token_confidences(tops: Sequence[Sequence[float]]) -> list[float] | None:
    """The confidence C_i of each token from its candidates' log-probabilities (checked
    numbers, as `read_logprob` gives them). None when no token has any candidate (the server
    returned no ``top_logprobs``: nothing to measure)."""
    sizes = Counter(len(t) for t in tops if t)
    if not sizes:
        return None
    # the most common length is k (ties: the smaller, i.e. without the appended sampled token)
    k = min(sizes, key=lambda n: (-sizes[n], n))
    out = []
    for top in tops:
        if not top:
            continue
        best = sorted(top, reverse=True)[:k] if len(top) > k else top
        out.append(-sum(best) / len(best))
    return out


def encode(series: Sequence[float]) -> str:
    """The stored form of a confidence series: half floats, little-endian, base64."""
    clipped = [min(max(float(c), 0.0), _HALF_MAX) for c in series]
    return base64.b64encode(struct.pack(f"<{len(clipped)}e", *clipped)).decode("ascii")


def series_problem(value: object) -> str | None:
    """What is wrong with `value` as a stored series (None: nothing): it must be base64 text
    of whole half floats, at most `MAX_TOKENS` of them. (Read from bundles: untrusted.)"""
    if not isinstance(value, str):
        return "base64 text of half floats, or null"
    if len(value) > 4 * ((2 * MAX_TOKENS + 2) // 3):
        return f"at most {MAX_TOKENS} half floats"
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return "base64 text of half floats, or null"
    return None if len(raw) % 2 == 0 else "a whole number of half floats (2 bytes each)"


def decode(value: str) -> np.ndarray:
    """A stored series as float64 values (ValueError if `value` is not one; non-finite
    values, which `encode` never writes, are dropped)."""
    import numpy as np

    problem = series_problem(value)
    if problem:
        raise ValueError(f"a confidence series must be {problem}")
    out = np.frombuffer(base64.b64decode(value), dtype="<f2").astype(np.float64)
    return out[np.isfinite(out)]


class Scores(NamedTuple):
    """A trace's confidence scores (NaN: no series)."""

    mean: float
    """Mean token confidence over the whole trace."""
    lowest: float
    """The lowest sliding-window (group) mean: DeepConf's lowest group confidence."""
    bottom10: float
    """Mean of the lowest 10% of group means (at least one group)."""
    tail: float
    """Mean over the last `window` tokens."""


NO_SCORES = Scores(math.nan, math.nan, math.nan, math.nan)


def trace_scores(
    series: Sequence[float] | np.ndarray,
    window: int = DEFAULT_WINDOW,
    bottom: float = BOTTOM_SHARE,
) -> Scores:
    """DeepConf's trace scores of a token-confidence series (see the module docstring).

    `window` is the group size (tokens, default 2048; a trace shorter than it is one group,
    its mean); `bottom` the share of lowest groups ``bottom10`` averages. An empty series has
    no scores (all NaN)."""
    import numpy as np

    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an integer >= 1; got {window!r}")
    if not 0 < bottom <= 1:
        raise ValueError(f"bottom must be a share in (0, 1]; got {bottom!r}")
    c = np.asarray(series, dtype=np.float64)
    if c.size == 0:
        return NO_SCORES
    w = min(window, c.size)
    sums = np.concatenate(([0.0], np.cumsum(c)))
    groups = (sums[w:] - sums[:-w]) / w
    n_low = max(1, int(len(groups) * bottom))
    low = np.partition(groups, n_low - 1)[:n_low]
    return Scores(float(c.mean()), float(groups.min()), float(low.mean()), float(c[-w:].mean()))


@lru_cache(maxsize=4096)
def scores_of(value: str | None, window: int = DEFAULT_WINDOW) -> Scores:
    """`trace_scores` of a stored series (NaN scores for None or an unreadable one); cached,
    since a frame reads four scores of each row."""
    if value is None:
        return NO_SCORES
    try:
        return trace_scores(decode(value), window)
    except ValueError:
        return NO_SCORES


__all__ = [
    "BOTTOM_SHARE",
    "DEFAULT_WINDOW",
    "LOGPROB_FLOOR",
    "MAX_TOKENS",
    "NO_SCORES",
    "SCORES",
    "Scores",
    "checked_tops",
    "decode",
    "encode",
    "read_logprob",
    "scores_of",
    "series_problem",
    "token_confidences",
    "trace_scores",
]
