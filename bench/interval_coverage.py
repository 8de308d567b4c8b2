"""Interval coverage at small n, simulated: how often pass@1, pass@4 and maj@4 intervals
contain the POPULATION value, at 10 and 30 problems x 8 samples.

Each simulated study draws its problems' success rates from a Beta population, 8 samples
per problem (a wrong sample answers "7" with probability 0.6, else "13"), and runs
`mmlab.analysis.pass_at_k` / `maj_at_k` (tie rule "none") grouped by study. The population
value is exact: pass@k = 1 - B(a, b + k) / B(a, b); maj@k sums the multinomial outcomes of k
draws in which the gold answer has strictly the most votes, each weighted by E[p^j (1-p)^(k-j)]
under the Beta. "old" is the clustered percentile bootstrap mmlab used before (the same
resamples), "new" the bootstrap-t over problems with Wilson bounds that it uses now.

    python bench/interval_coverage.py               # 2,000 studies per row
    python bench/interval_coverage.py --studies 500
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from math import comb, lgamma

import numpy as np
import pandas as pd

from mmlab.analysis import maj_at_k, pass_at_k
from mmlab.analysis.intervals import percentile_interval, resampled_sums

#: (label, a, b): the populations of problem success rates.
POPULATIONS = (
    ("Beta(2, 3): mean 0.4, moderate spread", 2.0, 3.0),
    ("Beta(0.5, 0.5): mean 0.5, mostly solved or failed", 0.5, 0.5),
    ("Beta(4, 1): mean 0.8, easy, near the ceiling", 4.0, 1.0),
)
WRONG = (0.6, 0.4)  # how a wrong sample splits between the two wrong answers
SAMPLES = 8
K = 4


def _log_beta(a: float, b: float) -> float:
    return lgamma(a) + lgamma(b) - lgamma(a + b)


def population_pass_at_k(a: float, b: float, k: int) -> float:
    """E[1 - (1 - p)^k] for p ~ Beta(a, b)."""
    return 1.0 - math.exp(_log_beta(a, b + k) - _log_beta(a, b))


def population_maj_at_k(a: float, b: float, k: int) -> float:
    """P(the gold answer has strictly the most of k votes), p ~ Beta(a, b)."""
    total = 0.0
    for j in range(k + 1):
        for w1 in range(k - j + 1):
            w2 = k - j - w1
            if j > max(w1, w2):
                ways = math.factorial(k) / (math.factorial(j) * math.factorial(w1)
                                            * math.factorial(w2))  # fmt: skip
                moment = math.exp(_log_beta(a + j, b + k - j) - _log_beta(a, b))
                total += ways * WRONG[0] ** w1 * WRONG[1] ** w2 * moment
    return total


def studies(a: float, b: float, problems: int, n: int, seed: int) -> pd.DataFrame:
    """`n` simulated studies as one frame (column ``study``)."""
    rng = np.random.default_rng(seed)
    p = rng.beta(a, b, size=(n, problems))
    right = rng.random((n, problems, SAMPLES)) < p[:, :, None]
    first = rng.random((n, problems, SAMPLES)) < WRONG[0]
    answer = np.where(right, "42", np.where(first, "7", "13"))
    return pd.DataFrame({
        "study": np.repeat(np.arange(n), problems * SAMPLES),
        "prompt_id": np.tile(np.repeat(np.arange(problems), SAMPLES), n),
        "score": right.ravel().astype(float),
        "content": ["\\boxed{" + x + "}" for x in answer.ravel()],
        "answer": "42",
    })  # fmt: skip


def _maj_table(k: int) -> dict[tuple[int, int], float]:
    """maj@k of a problem by its counts (gold, first wrong answer) among 8 samples, by
    enumerating all k-subsets (tie: not a majority)."""
    out = {}
    for g in range(SAMPLES + 1):
        for w1 in range(SAMPLES - g + 1):
            labels = [0] * g + [1] * w1 + [2] * (SAMPLES - g - w1)
            wins = [
                sub.count(0) > max(sub.count(1), sub.count(2))
                for sub in map(list, itertools.combinations(labels, k))
            ]
            out[(g, w1)] = sum(wins) / len(wins)
    return out


def _old_interval(df: pd.DataFrame, name: str, resamples: int, seed: int) -> pd.DataFrame:
    """The percentile bootstrap over problems, on the per-problem values of pass@k / maj@k."""
    k = 1 if name == "pass@1" else K
    table = _maj_table(k)
    per = df.assign(g=df["score"], w1=(df["content"] == "\\boxed{7}").astype(float))
    per = per.groupby(["study", "prompt_id"], sort=True)[["g", "w1"]].sum().astype(int)
    rows = []
    for study, part in per.groupby(level="study", sort=True):
        g, w1 = part["g"].to_numpy(), part["w1"].to_numpy()
        if name.startswith("pass"):
            values = np.array([1 - comb(SAMPLES - x, k) / comb(SAMPLES, k) for x in g])
        else:
            values = np.array([table[(x, y)] for x, y in zip(g, w1, strict=True)])
        sums = resampled_sums(values.reshape(-1, 1), resamples, seed)[:, 0] / len(values)
        rows.append((study, *percentile_interval(sums, 0.95)))
    return pd.DataFrame(rows, columns=["study", "ci_low", "ci_high"])


def coverage(out: pd.DataFrame, truth: float) -> tuple[float, float]:
    """Share of studies whose interval holds `truth`, and the mean width."""
    hit = (out["ci_low"] <= truth) & (truth <= out["ci_high"])
    return float(hit.mean()), float((out["ci_high"] - out["ci_low"]).mean())


def table(n: int = 2000, resamples: int = 2000, seed: int = 0) -> list[str]:
    """The results as markdown lines."""
    lines = [
        f"{n} simulated studies per row, {resamples} resamples, nominal 95%; coverage of the "
        "population value (width in brackets). old: clustered percentile bootstrap; new: "
        "bootstrap-t over problems, Wilson bounds where problems show no spread.",
        "",
        "| population | problems x samples | estimator | population value | old | new | time |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for label, a, b in POPULATIONS:
        for problems in (10, 30):
            df = studies(a, b, problems, n, seed + problems)
            for name, k in (("pass@1", 1), ("pass@4", K), ("maj@4", K)):
                t0 = time.perf_counter()
                if name.startswith("pass"):
                    truth = population_pass_at_k(a, b, k)
                    new = pass_at_k(df, k, by="study", resamples=resamples, seed=seed)
                else:
                    truth = population_maj_at_k(a, b, k)
                    new = maj_at_k(df, k, by="study", resamples=resamples, seed=seed)
                dt = time.perf_counter() - t0
                cn, wn = coverage(new, truth)
                co, wo = coverage(_old_interval(df, name, resamples, seed), truth)
                lines.append(
                    f"| {label} | {problems} x {SAMPLES} | {name} | {truth:.3f} "
                    f"| {co:.3f} ({wo:.2f}) | {cn:.3f} ({wn:.2f}) | {dt:.1f} s |"
                )
                print(lines[-1], flush=True)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=2000)
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    table(args.studies, args.resamples, args.seed)


if __name__ == "__main__":
    main()
