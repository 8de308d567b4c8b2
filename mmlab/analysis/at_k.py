"""How often do k samples get a problem right? pass@k and maj@k (cons@k), per group.

- ``pass_at_k``: the unbiased estimator of Chen et al. 2021, "Evaluating Large Language Models
  Trained on Code" (arXiv 2107.03374), §2.1. With n samples of a problem of which c are
  correct, pass@k = 1 - C(n-c, k) / C(n, k), averaged over problems. Best-of-k over k fixed
  samples, and 1 - (1 - c/n)^k, are both biased.
- ``maj_at_k`` (alias ``cons_at_k``): majority vote over extracted answers, i.e. the
  self-consistency of Wang et al. 2022, "Self-Consistency Improves Chain of Thought Reasoning
  in Language Models" (arXiv 2203.11171), with n > k samples taken as the exact expectation
  over all k-subsets (multivariate-hypergeometric counting).

Both average over problems (``prompt_id``), each problem weighted equally, and give the same
columns (`AT_K_COLUMNS`, then ``ci_target``) with an interval for the population of problems:
the studentized bootstrap over problems, with Wilson bounds where it has no spread to work
with (`mmlab.analysis.intervals`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ..errors import RequestError
from ..scorers import extract_answer, normalize_answer
from .frames import group_keys, groups, int_arg, level_arg, require_columns, scored_rows, successful
from .intervals import POPULATION, bootstrap_t_mean

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


#: The columns of an at-k table, after the `by` columns (`maj_at_k` adds ``tie_rule``; both end
#: with ``ci_target``).
AT_K_COLUMNS = [
    "k",
    "estimate",
    "ci_low",
    "ci_high",
    "n_problems",
    "samples_per_problem",
    "ci_method",
]


def _check_k(k: Any, n: np.ndarray, group: dict[str, Any]) -> int:
    """k is an integer from 1 to the smallest problem's sample count in the group."""
    smallest = int(n.min())
    where = f" in group {group}" if group else ""
    return int_arg(k, "k", 1, smallest, f" (the smallest problem{where} has {smallest} samples)")


def _problem_table(
    values: np.ndarray, n: np.ndarray, k: int, resamples: int, seed: int, level: float
) -> dict[str, Any]:
    """One at-k row: the mean of the per-problem `values`, its bootstrap-t interval."""
    low, high, method = bootstrap_t_mean(values, resamples, seed, level)
    return {
        "k": k,
        "estimate": float(values.mean()),
        "ci_low": low,
        "ci_high": high,
        "n_problems": len(values),
        "samples_per_problem": int(n.min()),
        "ci_method": method,
    }


def _pass_at_k_values(n: np.ndarray, c: np.ndarray, k: int) -> np.ndarray:
    """Chen et al.'s unbiased pass@k per problem: 1 - C(n-c, k) / C(n, k).

    In the product form 1 - prod_{i=n-c+1}^{n} (1 - k/i), which never forms the binomials
    (they overflow floats past n of about 1,000), vectorised over problems; 1 when n - c < k,
    since every k-subset then holds a correct sample.
    """
    import numpy as np

    out = np.ones(len(n))
    some = n - c >= k
    if some.any():
        nn, cc = n[some], c[some]
        i = np.arange(1, int(nn.max()) + 1)
        inside = (i > (nn - cc)[:, None]) & (i <= nn[:, None])
        out[some] = 1.0 - np.where(inside, 1.0 - k / i, 1.0).prod(axis=1)
    return out


def pass_at_k(
    df: pd.DataFrame,
    k: int,
    by: str | Sequence[str] | None = None,
    *,
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """pass@k per group: the chance that at least one of k samples of a problem is correct.

    Chen et al. 2021 (arXiv 2107.03374, §2.1): with n scored samples of a problem of which c
    are correct (``score == 1``), the unbiased estimate is 1 - C(n-c, k) / C(n, k), the
    average over all k-subsets of the n samples; the result is its mean over problems
    (``prompt_id``), each problem weighted equally. Failed calls are dropped; NaN scores
    (unscorable) are left out; other scores must be 0 or 1.

    The estimand is the population value: the mean over the population of problems these
    were drawn from of each problem's pass@k (Miller 2024, arXiv 2411.00640). The interval is
    the studentized bootstrap (bootstrap-t) over problems: problems resampled with
    replacement, all of a problem's samples together, `resamples` times with generator `seed`,
    at `level`; a bound it cannot give (no spread between problems, e.g. every problem solved)
    is the Wilson score bound over problems, never a zero-width interval
    (`mmlab.analysis.intervals.bootstrap_t_mean`). In simulation it covered the population
    value at least 0.94 of the time at 10 and at 30 problems × 8 samples (bench/RESULTS.md).
    NaN with fewer than two problems (``ci_method`` says why).

    Returns one row per group (one row in all when `by` is None): the `by` columns, ``k``,
    ``estimate``, ``ci_low``, ``ci_high``, ``n_problems``, ``samples_per_problem`` (the
    smallest n, which bounds k), ``ci_method`` and ``ci_target`` (``"the population"``).
    Raises RequestError naming ``k`` unless 1 <= k <= the smallest problem's n in every
    group (k larger than the samples is an error, never a silent 0), naming ``score`` for
    scores other than 0/1/NaN, and naming a missing column.
    """
    import pandas as pd

    keys = group_keys(by)
    data = successful(df)
    require_columns(data, [*keys, "prompt_id", "score"], "pass_at_k")
    int_arg(k, "k", 1)
    resamples = int_arg(resamples, "resamples", 1)
    seed = int_arg(seed, "seed", 0)
    level = level_arg(level)
    data = scored_rows(data, keys, "pass_at_k")
    # Problems in sorted order, so the bootstrap does not depend on the order of the rows.
    counts = (
        data.groupby([*keys, "prompt_id"], dropna=False, sort=True)["score"]
        .agg(["size", "sum"])
        .reset_index()
    )
    rows = []
    for group, part in groups(counts, keys):
        n = part["size"].to_numpy(dtype=int)
        c = part["sum"].to_numpy().round().astype(int)
        k = _check_k(k, n, group)
        values = _pass_at_k_values(n, c, k)
        rows.append({**group, **_problem_table(values, n, k, resamples, seed, level),
                     "ci_target": POPULATION})  # fmt: skip
    return pd.DataFrame(rows, columns=[*keys, *AT_K_COLUMNS, "ci_target"])


# Up to this many samples per problem, maj@k counts k-subsets in floats (C(1000, 500) is about
# 2.7e299, still finite); beyond it, in exact Python integers (slower, never overflows).
_FLOAT_MAX_N = 1000


def _maj_at_k_problem(gold: int, others: Sequence[int], abstain: int, k: int, tie: str) -> float:
    """Exact share of the C(n, k) k-subsets of one problem's samples whose vote is right.

    `gold` samples gave the gold answer, `others` are the sizes of the other answer classes and
    `abstain` samples gave no answer. For each j >= 1 gold votes in the subset, count the ways
    to fill the other k - j slots from the abstentions and the other classes with every other
    class below j (the gold answer wins), or exactly at j for t of them (a (t+1)-way tie). A
    polynomial product over the classes, dp[s, t] = ways to fill s slots with t classes tied;
    cost about k * n numpy operations per problem, instead of C(n, k) subsets.
    """
    import numpy as np

    n = gold + sum(others) + abstain
    exact = n > _FLOAT_MAX_N
    dtype: Any = object if exact else float
    comb: Callable[[int, int], Any] = (
        math.comb if exact else (lambda a, b: float(math.comb(a, b)))
    )
    hits: Any = Fraction(0) if exact else 0.0
    for j in range(1, min(gold, k) + 1):
        rest = k - j
        rivals = sum(a >= j for a in others)  # classes that could tie the gold answer at j
        dp = np.zeros((rest + 1, rivals + 1), dtype=dtype)
        for s in range(rest + 1):
            dp[s, 0] = comb(abstain, s)
        for a in others:
            new = np.zeros_like(dp)
            for t in range(min(a, j - 1, rest) + 1):
                new[t:] += comb(a, t) * dp[: rest + 1 - t]
            if a >= j and j <= rest:
                new[j:, 1:] += comb(a, j) * dp[: rest + 1 - j, :-1]
            dp = new
        ways = dp[rest]
        if tie == "none":
            won: Any = ways[0]  # a tie is not a majority
        elif exact:
            won = sum(Fraction(int(w), t + 1) for t, w in enumerate(ways))
        else:
            won = float((ways / np.arange(1, rivals + 2)).sum())
        hits += comb(gold, j) * won
    return float(hits / comb(n, k))


TIE_RULES = {
    "none": "a tie is not a majority (counts 0)",
    "random": "ties broken uniformly at random (1/m for an m-way tie with the gold answer)",
}


def maj_at_k(
    df: pd.DataFrame,
    k: int,
    by: str | Sequence[str] | None = None,
    *,
    extractor: Callable[[str], str | None] | None = None,
    tie: str = "none",
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    r"""maj@k (cons@k) per group: is the most frequent answer among k samples the gold one?

    Majority vote, or self-consistency (Wang et al. 2022, arXiv 2203.11171). Votes are answers
    *extracted* from ``content`` by `extractor` (default `mmlab.scorers.extract_answer`: the last
    ``\boxed{}`` if any, else the last number) and normalised by
    `mmlab.scorers.normalize_answer`, so "1,000", "1000" and "1000.0" are one vote; the gold
    ``answer`` column is normalised the same way. A sample with nothing extracted (no output,
    no number) abstains: it is one of the n samples and can be drawn, but casts no vote. The
    vote is a plurality; `tie` says what a tie for the most votes that includes the gold answer
    counts: ``"none"`` 0 (a tie is not a majority), ``"random"`` 1/m for an m-way tie (ties
    broken uniformly at random). No votes at all counts 0.

    With n > k samples per problem the estimate is the exact mean over all C(n, k) k-subsets
    of the problem's samples (not one arbitrary subset), computed by counting
    (multivariate hypergeometric) rather than enumerating, so n = 64, k = 32 is fast; it is
    then averaged over problems. For k = 1 it is the mean share of samples whose extracted
    answer equals the gold one. Problems without a gold answer are left out. Estimand,
    interval, columns and errors as in `pass_at_k`, plus ``tie_rule`` before ``ci_target``.
    """
    import numpy as np
    import pandas as pd

    keys = group_keys(by)
    data = successful(df)
    require_columns(data, [*keys, "prompt_id", "content", "answer"], "maj_at_k")
    int_arg(k, "k", 1)
    if tie not in TIE_RULES:
        raise RequestError(f"tie must be one of {sorted(TIE_RULES)}; got {tie!r}", field="tie")
    if extractor is not None and not callable(extractor):
        raise RequestError("extractor must be a function of the answer text", "extractor")
    resamples = int_arg(resamples, "resamples", 1)
    seed = int_arg(seed, "seed", 0)
    level = level_arg(level)
    if data.empty:
        raise RequestError("maj_at_k: no successful rows", field="content")
    extract = extractor or extract_answer

    def vote(text: Any) -> str | None:
        # An empty extraction is no answer, like None: it abstains rather than forming a class.
        return (normalize_answer(extract(text)) or None) if isinstance(text, str) else None

    data = data.assign(
        _vote=_each_once(vote, data["content"]),
        _gold=_each_once(lambda a: normalize_answer(a) or None, data["answer"]),
    )
    problems = _vote_counts(data, keys)
    rows = []
    memo: dict[tuple[Any, ...], float] = {}  # problems with the same counts have one value
    for group, part in groups(problems, keys):
        part = part[part["gold"].notna()]  # unscorable: no gold answer to compare with
        if part.empty:
            where = f" in group {group}" if group else ""
            raise RequestError(f"maj_at_k: no problem with a gold answer{where}", "answer")
        n = part["n"].to_numpy(dtype=int)
        k = _check_k(k, n, group)
        per_problem = []
        for gold, votes, abstain in zip(part["gold"], part["votes"], part["abstain"],
                                        strict=True):  # fmt: skip
            right = votes.get(gold, 0)
            others = sorted((c for v, c in votes.items() if v != gold), reverse=True)
            key = (right, tuple(others), int(abstain), k, tie)
            if key not in memo:
                memo[key] = _maj_at_k_problem(right, others, int(abstain), k, tie)
            per_problem.append(memo[key])
        rows.append(
            {
                **group,
                **_problem_table(np.array(per_problem), n, k, resamples, seed, level),
                "tie_rule": TIE_RULES[tie],
                "ci_target": POPULATION,
            }
        )
    return pd.DataFrame(rows, columns=[*keys, *AT_K_COLUMNS, "tie_rule", "ci_target"])


def _each_once(func: Callable[[Any], str | None], values: Any) -> list[str | None]:
    """`func` of every value, computed once per distinct value: answers and texts repeat
    (a problem's gold answer is on every sample; short answers recur)."""
    done: dict[Any, str | None] = {}
    out = []
    for v in values:
        try:
            out.append(done[v] if v in done else done.setdefault(v, func(v)))
        except TypeError:  # unhashable: computed as is
            out.append(func(v))
    return out


def _vote_counts(data: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per (group, problem), in sorted order: the `keys`, ``prompt_id``, ``n``
    (samples), ``abstain`` (samples without an answer), ``gold`` (the first gold answer, None
    if none) and ``votes`` (answer -> count). One pass of grouping, not one per problem."""
    import numpy as np

    grouper = [*keys, "prompt_id"]
    code = data.groupby(grouper, dropna=False, sort=True).ngroup().to_numpy()
    count = int(code.max()) + 1 if len(code) else 0
    first = np.unique(code, return_index=True)[1]
    out = data.iloc[first][grouper].reset_index(drop=True)
    voted = data["_vote"].notna().to_numpy()
    out["n"] = np.bincount(code, minlength=count)
    out["abstain"] = np.bincount(code[~voted], minlength=count)
    golds = data["_gold"].groupby(code).first().reindex(range(count))
    out["gold"] = [g if isinstance(g, str) else None for g in golds]
    votes: list[dict[str, int]] = [{} for _ in range(count)]
    tally = data["_vote"][voted].groupby([code[voted], data["_vote"][voted]]).size()
    for (c, answer), n in tally.items():
        votes[c][answer] = int(n)
    out["votes"] = votes
    return out


cons_at_k = maj_at_k  # cons@k (consensus@k) is the same estimator under another name
