"""How often do k samples get a problem right? pass@k and maj@k (cons@k), per group.

- ``pass_at_k``: the unbiased estimator of Chen et al. 2021, "Evaluating Large Language Models
  Trained on Code" (arXiv 2107.03374), §2.1. With n samples of a problem of which c are
  correct, pass@k = 1 - C(n-c, k) / C(n, k), averaged over problems. Best-of-k over k fixed
  samples, and 1 - (1 - c/n)^k, are both biased.
- ``maj_at_k`` (alias ``cons_at_k``): majority vote over extracted answers, i.e. the
  self-consistency of Wang et al. 2022, "Self-Consistency Improves Chain of Thought Reasoning
  in Language Models" (arXiv 2203.11171), with n > k samples taken as the exact expectation
  over all k-subsets (multivariate-hypergeometric counting).

- ``short_m_at_k``: vote over the m of k samples that finish thinking first (Hassid et al.
  2025, arXiv 2505.17813), with the thinking tokens it spends; exact over k-subsets.
- ``conf_at_k``: DeepConf offline (Fu et al. 2025, arXiv 2508.15260): keep the most confident
  share of k samples, vote weighted by confidence; beside maj@k at the same k.

All average over problems (``prompt_id``), each problem weighted equally, and give the same
columns (`AT_K_COLUMNS`, then ``ci_target``) with an interval for the population of problems:
the studentized bootstrap over problems, with Wilson bounds where it has no spread to work
with (`mmlab.analysis.intervals`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from itertools import combinations
from typing import TYPE_CHECKING, Any

from ..confidence import DEFAULT_WINDOW, SCORES, scores_of
from ..errors import RequestError
from ..scorers import extract_answer, normalize_answer
from .frames import (
    group_keys,
    groups,
    int_arg,
    level_arg,
    numeric_column,
    require_columns,
    scored_rows,
    successful,
)
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


# --- short-m@k and conf@k: which k samples to trust --------------------------------------------
def _voted(data: pd.DataFrame, extractor: Callable[[str], str | None] | None) -> pd.DataFrame:
    """`data` with each row's normalised vote (``_vote``: None abstains) and gold answer
    (``_gold``), by `maj_at_k`'s rule."""
    extract = extractor or extract_answer

    def vote(text: Any) -> str | None:
        return (normalize_answer(extract(text)) or None) if isinstance(text, str) else None

    return data.assign(
        _vote=[vote(text) for text in data["content"]],
        _gold=[normalize_answer(a) or None for a in data["answer"]],
    )


def _check_at_k_args(k: Any, m: Any, extractor: Any, tie: str) -> None:
    int_arg(k, "k", 1)
    if m is not None:
        int_arg(m, "m", 1, int(k), f" (m of the k={k} samples)")
    if tie not in TIE_RULES:
        raise RequestError(f"tie must be one of {sorted(TIE_RULES)}; got {tie!r}", field="tie")
    if extractor is not None and not callable(extractor):
        raise RequestError("extractor must be a function of the answer text", "extractor")


def _labels(votes: Sequence[str | None], gold: str) -> list[int]:
    """Votes as labels: 0 the gold answer, 1, 2, ... the other answers, -1 no answer."""
    ids: dict[str | None, int] = {gold: 0, None: -1}
    # pandas may hold a missing vote as NaN: anything but text abstains
    return [ids.setdefault(v if isinstance(v, str) else None, len(ids) - 1) for v in votes]


def _first_m_wins(labels: Sequence[int], r: int, m: int) -> int:
    """How many (m-1)-subsets T of positions 0..r-1 make the gold answer (label 0) win the
    vote over S = T + {r}: the most votes, a tie going to the answer met first in the order
    (the shortest thinking). For each possible first gold member f of S, the other answers'
    members are counted by a polynomial product: a class may take fewer votes than gold, or
    as many only from members after f."""
    yr = labels[r]
    golds = [i for i in range(r) if labels[i] == 0]
    total = 0
    for f in [*golds, *([r] if yr == 0 else [])]:
        before_f = labels[:f]
        between = [labels[i] for i in range(f + 1, r)] if f < r else []
        slots = m - 1 - (1 if f < r else 0)  # T's places left after f itself
        if slots < 0:
            continue
        gold_between = sum(1 for y in between if y == 0)
        classes = {y for y in (*before_f, *between, yr) if y > 0}
        abstain = sum(1 for y in (*before_f, *between) if y < 0)
        for u in range(min(gold_between, slots) + 1):
            g = 1 + u + (1 if yr == 0 and f < r else 0)
            rest = slots - u
            poly = [math.comb(abstain, t) for t in range(rest + 1)]
            for c in classes:
                early = sum(1 for y in before_f if y == c)
                late = sum(1 for y in between if y == c)
                e = 1 if yr == c else 0
                terms = [
                    math.comb(early + late, t) if t + e < g
                    else math.comb(late, t) if t + e == g else 0
                    for t in range(rest + 1)
                ]  # fmt: skip
                poly = [sum(poly[i] * terms[s - i] for i in range(s + 1)) for s in range(rest + 1)]
            total += math.comb(gold_between, u) * poly[rest]
    return total


def _short_m_problem(labels: Sequence[int], lengths: Sequence[float], m: int, k: int
                     ) -> tuple[float, float]:
    """(exact share of k-subsets whose first m (by `labels`' order) vote right, expected
    thinking tokens spent): subset S is the first m of C(n-1-r, k-m) k-subsets, r its last."""
    n = len(labels)
    subsets = math.comb(n, k)
    wins, tokens = 0, 0.0
    prefix = 0.0
    for r in range(n):
        if r >= m - 1 and n - 1 - r >= k - m:
            after = math.comb(n - 1 - r, k - m)
            wins += after * _first_m_wins(labels, r, m)
            # the m-th to finish is r: m-1 earlier ones (a uniform draw from the r before it)
            # stopped on their own, the other k-m were stopped at r's length
            share = math.comb(r, m - 1) * after / subsets
            earlier = (m - 1) * prefix / r if r else 0.0
            tokens += share * (earlier + (k - m + 1) * lengths[r])
        prefix += lengths[r]
    return wins / subsets, tokens


def short_m_at_k(
    df: pd.DataFrame,
    m: int,
    k: int,
    by: str | Sequence[str] | None = None,
    *,
    length: str = "reasoning_tokens",
    extractor: Callable[[str], str | None] | None = None,
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """short-m@k per group: sample k, vote over the m that finish thinking first.

    Hassid et al. 2025, "Don't Overthink it. Preferring Shorter Thinking Chains for Improved
    LLM Reasoning" (arXiv 2505.17813): run k chains in parallel, stop all of them when the
    first m have finished thinking, and take the majority answer of those m, a tie going to
    the answer whose thinking was shortest. short-1@k is the shortest chain's answer.

    Estimand: the chance that this answer is the gold one, for a uniformly random k-subset of
    a problem's n samples — computed exactly over all C(n, k) subsets (a subset's first m are
    fixed by its m-th shortest member, so the subsets are counted, not enumerated) — averaged
    over problems, each weighted equally. "Finishing first" is the fewest `length` tokens
    (default ``reasoning_tokens``); equal lengths finish in sample order (then row order).
    Votes and the gold answer are extracted and normalised as in `maj_at_k`; a sample without
    an answer is drawn but casts no vote; no votes counts 0. m = k is maj@k with ties broken
    by the shortest thinking.

    Also returns what it spends: ``thinking_tokens``, the expected thinking tokens of the k
    chains when generation stops at the m-th finish (the m finished chains' lengths plus k-m
    chains stopped at the m-th's length), ``all_k_tokens`` (k chains run to the end, as maj@k
    spends) and their ratio ``token_share``, each averaged over problems.

    Interval: the bootstrap-t over problems of `pass_at_k` (NaN with one problem).
    Raises RequestError naming a missing column (``content``, ``answer``: ``res.df`` has them;
    `length`), NaN lengths among successful rows, m outside 1..k, or k above a problem's
    sample count.
    """
    import numpy as np
    import pandas as pd

    keys = group_keys(by)
    data = successful(df)
    require_columns(data, [*keys, "prompt_id", "content", "answer", length], "short_m_at_k")
    _check_at_k_args(k, m, extractor, "none")
    resamples = int_arg(resamples, "resamples", 1)
    seed = int_arg(seed, "seed", 0)
    level = level_arg(level)
    if data.empty:
        raise RequestError("short_m_at_k: no successful rows", field="content")
    lengths = numeric_column(data, length, "short_m_at_k")
    if lengths.isna().any():
        raise RequestError(
            f"short_m_at_k: {int(lengths.isna().sum())} successful row(s) have no {length!r} "
            "(the order of finishing is unknown)",
            field=length,
        )
    order = ["_length", *(["sample"] if "sample" in data else [])]
    data = _voted(data, extractor).assign(_length=lengths)
    rows = []
    for group, part in groups(data, keys):
        n_list, per_problem = [], []
        for _, problem in part.groupby("prompt_id", dropna=False, sort=True):
            golds = problem["_gold"].dropna()
            if golds.empty:
                continue
            problem = problem.sort_values(order, kind="stable")
            n_list.append(len(problem))
            per_problem.append((_labels(list(problem["_vote"]), golds.iloc[0]),
                                problem["_length"].tolist()))  # fmt: skip
        if not per_problem:
            where = f" in group {group}" if group else ""
            raise RequestError(f"short_m_at_k: no problem with a gold answer{where}", "answer")
        n = np.array(n_list)
        k = _check_k(k, n, group)
        results = [_short_m_problem(labels, lens, m, k) for labels, lens in per_problem]
        values = np.array([v for v, _ in results])
        spent = np.array([t for _, t in results])
        full = np.array([k * float(np.mean(lens)) for _, lens in per_problem])
        rows.append({
            **group, **_problem_table(values, n, k, resamples, seed, level), "m": m,
            "thinking_tokens": float(spent.mean()), "all_k_tokens": float(full.mean()),
            "token_share": float(spent.mean() / full.mean()) if full.mean() > 0 else math.nan,
            "ci_target": POPULATION,
        })  # fmt: skip
    columns = [*keys, *AT_K_COLUMNS, "m", "thinking_tokens", "all_k_tokens", "token_share",
               "ci_target"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


#: DeepConf's trace scores `conf_at_k` can rank by (`mmlab.confidence.Scores`).
CONF_SCORES = SCORES


def _kept(valid: int, keep: float) -> int:
    """How many of `valid` traces DeepConf keeps: those at or above the (1 - keep) percentile
    of their scores (numpy's linear rule), which for distinct scores is the top
    valid - ceil((1 - keep)(valid - 1))."""
    return valid - math.ceil(round((1 - keep) * (valid - 1), 9))


def _vote_share(votes: Sequence[int], weights: Sequence[float], tie: str) -> float:
    """1 if the gold answer (0) wins the (weighted) vote, 1/m in an m-way tie under
    ``tie="random"``, else 0; labels < 0 abstain."""
    totals: dict[int, float] = {}
    for v, w in zip(votes, weights, strict=True):
        if v >= 0:
            totals[v] = totals.get(v, 0.0) + w
    if 0 not in totals:
        return 0.0
    top = max(totals.values())
    if totals[0] < top:
        return 0.0
    tied = sum(1 for t in totals.values() if t == top)
    return 1.0 if tied == 1 else (1.0 / tied if tie == "random" else 0.0)


def _conf_problem(labels: Sequence[int], scores: Sequence[float], k: int, keep: float,
                  weight: bool, tie: str, limit: int, rng: Any) -> tuple[float, bool]:
    """(the expected DeepConf vote over a problem's k-subsets, whether it was exact): the
    traces with an answer in the subset, the top share `keep` of them by score, their vote
    weighted by score (`weight`) or counted. Exact by enumerating each kept set with the
    number of subsets that keep it, unless that is more than `limit` sets: then the mean over
    `limit` random k-subsets (Monte Carlo)."""
    valid = [(s, y) for s, y in zip(scores, labels, strict=True) if y >= 0]
    valid.sort(key=lambda p: -p[0])  # highest score first; equal scores keep sample order
    n, nv = len(labels), len(valid)
    sizes = {kv: _kept(kv, keep) for kv in range(1, min(k, nv) + 1)}
    work = sum(math.comb(nv, q) for q in sizes.values())
    if work > limit:
        hits = 0.0
        for _ in range(limit):
            pick = sorted(rng.choice(n, size=k, replace=False))
            sub = sorted(((scores[i], labels[i]) for i in pick if labels[i] >= 0),
                         key=lambda p: -p[0])  # fmt: skip
            kept = sub[: _kept(len(sub), keep)] if sub else []
            hits += _vote_share([y for _, y in kept], [s if weight else 1.0 for s, _ in kept],
                                tie) if kept else 0.0  # fmt: skip
        return hits / limit, False
    total = 0.0
    for kv, q in sizes.items():
        # kv of the k drawn have an answer (hypergeometric); of those, the top q are kept
        p_kv = math.comb(nv, kv) * math.comb(n - nv, k - kv) / math.comb(n, k)
        if p_kv == 0:
            continue
        won = 0.0
        for r in range(q - 1, nv - (kv - q)):
            ways = math.comb(nv - 1 - r, kv - q)
            for rest in combinations(range(r), q - 1):
                kept = [valid[i] for i in (*rest, r)]
                won += ways * _vote_share([y for _, y in kept],
                                          [s if weight else 1.0 for s, _ in kept], tie)
        total += p_kv * won / math.comb(nv, kv)
    return total, True


def conf_at_k(
    df: pd.DataFrame,
    k: int,
    by: str | Sequence[str] | None = None,
    *,
    keep: float = 0.1,
    weight: bool = True,
    score: str = "bottom10",
    window: int = DEFAULT_WINDOW,
    extractor: Callable[[str], str | None] | None = None,
    tie: str = "none",
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    limit: int = 100_000,
) -> pd.DataFrame:
    """conf@k per group (DeepConf offline), beside maj@k at the same k.

    Fu et al. 2025, "Deep Think with Confidence" (arXiv 2508.15260), offline mode: of k
    sampled traces, those with an answer are ranked by a trace confidence `score`
    (`mmlab.confidence`: ``mean``, ``lowest`` group, ``bottom10`` groups or ``tail``, groups
    of `window` tokens), the top `keep` share is kept (η = 10% or 90% in the paper: the traces
    at or above the (1 - η) percentile of the scores, at least one) and their answers are
    voted, each weighted by its score (`weight`) or counted once. Votes and gold answers are
    extracted and normalised as in `maj_at_k`; `tie` rules a tie for the most weight as there.

    Estimand: the chance the vote is right for a uniformly random k-subset of a problem's
    samples, averaged over problems — exact (every kept set counted with the number of
    k-subsets that keep it) when a problem needs at most `limit` kept sets, else the mean over
    `limit` random k-subsets (``ci_method`` says which); equal scores rank in sample order.
    ``maj_estimate`` is `maj_at_k` on the same rows, ``diff`` conf@k minus maj@k; every
    interval is the bootstrap-t over problems with Wilson bounds, as in `pass_at_k` (paired for
    ``diff``: the same resampled problems), NaN with one problem.

    Needs the ``confidence`` column (``res.df`` of calls made with ``logprobs=True,
    top_logprobs=k``). A group in which some call has no confidence series (the endpoint
    returned no log-probabilities — `Capabilities.logprobs` — or the call did not ask) gets
    NaN conf@k with the reason in ``note``; its maj@k is still given.
    """
    import numpy as np
    import pandas as pd

    keys = group_keys(by)
    data = successful(df)
    require_columns(data, [*keys, "prompt_id", "content", "answer", "confidence"], "conf_at_k")
    _check_at_k_args(k, None, extractor, tie)
    if isinstance(keep, bool) or not isinstance(keep, int | float) or not 0 < keep <= 1:
        raise RequestError(f"keep must be a share in (0, 1] (0.1 or 0.9); got {keep!r}", "keep")
    if score not in CONF_SCORES:
        raise RequestError(f"score must be one of {', '.join(CONF_SCORES)}; got {score!r}",
                           "score")  # fmt: skip
    window = int_arg(window, "window", 1)
    limit = int_arg(limit, "limit", 1)
    resamples = int_arg(resamples, "resamples", 1)
    seed = int_arg(seed, "seed", 0)
    level = level_arg(level)
    if data.empty:
        raise RequestError("conf_at_k: no successful rows", field="content")
    at = CONF_SCORES.index(score)
    data = _voted(data, extractor).assign(
        _score=[scores_of(c if isinstance(c, str) else None, window)[at]
                for c in data["confidence"]]  # fmt: skip
    )
    rng = np.random.default_rng(seed)
    rows = []
    for group, part in groups(data, keys):
        n_list, conf, maj, exact = [], [], [], True
        missing = int(part["_score"].isna().sum())
        for _, problem in part.groupby("prompt_id", dropna=False, sort=True):
            golds = problem["_gold"].dropna()
            if golds.empty:
                continue
            if "sample" in problem:
                problem = problem.sort_values("sample", kind="stable")
            labels = _labels(list(problem["_vote"]), golds.iloc[0])
            n_list.append(len(problem))
            counts = [labels.count(c) for c in range(1, max(labels, default=0) + 1)]
            maj.append((labels.count(0), counts, labels.count(-1)))
            conf.append((labels, problem["_score"].tolist()))
        if not conf:
            where = f" in group {group}" if group else ""
            raise RequestError(f"conf_at_k: no problem with a gold answer{where}", "answer")
        n = np.array(n_list)
        k = _check_k(k, n, group)
        maj_values = np.array([_maj_at_k_problem(g, o, z, k, tie) for g, o, z in maj])
        note = None
        if missing:
            note = (f"{missing} call(s) have no confidence series (no top_logprobs asked, "
                    "or none or unreadable ones returned): conf@k is undefined")
            values = np.zeros(len(conf))  # placeholders: the row's figures are set to NaN
        else:
            results = [_conf_problem(lab, sc, k, keep, weight, tie, limit, rng) for lab, sc in conf]
            values = np.array([v for v, _ in results])
            exact = all(e for _, e in results)
        row = {**group, **_problem_table(values, n, k, resamples, seed, level)}
        if not exact:
            row["ci_method"] += f"; estimate: Monte Carlo over {limit} k-subsets per problem"
        if missing:
            row["estimate"], row["ci_low"], row["ci_high"] = math.nan, math.nan, math.nan
        maj_low, maj_high, _ = bootstrap_t_mean(maj_values, resamples, seed, level)
        diff = values - maj_values if not missing else np.full(len(conf), math.nan)
        # paired: the same resampled problems (one seed); a difference of shares lies in [-1, 1]
        diff_low, diff_high = (bootstrap_t_mean(diff, resamples, seed, level, (-1.0, 1.0))[:2]
                               if not missing else (math.nan, math.nan))  # fmt: skip
        rows.append({
            **row, "keep": keep, "weight": bool(weight), "score": score, "window": window,
            "maj_estimate": float(maj_values.mean()), "maj_ci_low": maj_low,
            "maj_ci_high": maj_high, "diff": float(diff.mean()), "diff_ci_low": diff_low,
            "diff_ci_high": diff_high, "tie_rule": TIE_RULES[tie], "note": note,
            "ci_target": POPULATION,
        })  # fmt: skip
    columns = [*keys, *AT_K_COLUMNS, "keep", "weight", "score", "window", "maj_estimate",
               "maj_ci_low", "maj_ci_high", "diff", "diff_ci_low", "diff_ci_high", "tie_rule",
               "note", "ci_target"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)
