"""Adaptive sampling, simulated: coverage, correct picks and savings of `mmlab.stop` rules.

Replays a logged FULL grid (every cell run many times, non-adaptively) through the
`AdaptiveScheduler` 1,000 times per rule: each simulation plays the model by resampling every
cell's scores (with their tokens and cost) from its logged repeats, and records whether the
reported confidence sequences covered the grid's true group means, whether `decided` picked
the arm the full grid ranks best, and what share of the fixed design's calls and tokens it used.

Columns: coverage = every reported CS (for `decided`, the per-arm CSs at alpha/K) covered its
group's true mean at the stop; correct / wrong pick = `decided` certified the best / another
arm; leader pick = the certified pick or, when the repeats ran out undecided, the arm leading
by point estimate is the best (what you would pick if you had to; not a guarantee).
`decided` decides on paired-difference confidence sequences (see `mmlab.stop.Decided`).

Default grid (synthetic): 3 arms with accuracy 0.3 / 0.5 / 0.8 over 10 problems; problem i
shifts every arm's accuracy by linspace(-0.2, 0.2)[i] (problems differ in difficulty; a second
grid gives each arm those shifts in its own random order, which pairing cancels less); each
cell is logged `repeats` times with exactly round(p * repeats) correct answers, so the grid's
arm means are the nominal accuracies; completion tokens are uniform in 200-2000, x1.5 for wrong
answers (failed reasoning runs longer); cost $2 per million completion tokens. It is run at
20 repeats (the example in the design brief) and at 32 (the MiniMax-M1 report's AIME count).

A hard grid (`hard_table`) puts the arms close — 0.45 / 0.50 / 0.55, the same 10 problems
of shared difficulty — and asks how often `decided` certifies a winner within the fixed design
at all, and that it never certifies a wrong one.

    python bench/adaptive_sim.py                       # the synthetic grid
    python bench/adaptive_sim.py --hard                # the hard grid (arms 0.45 / 0.50 / 0.55)
    python bench/adaptive_sim.py --parquet full.parquet --by temperature --repeats 16

A parquet file needs columns prompt_id, sample, the metric (in [0, 1]), the `--by` column(s)
naming the arms, and optionally cost_usd and completion_tokens. Timings are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from mmlab.sequential import simulate, summarize_simulations
from mmlab.stop import Rule, ci_width, decided

ACCURACIES = (0.3, 0.5, 0.8)
#: The hard grid: three arms five points apart.
HARD = (0.45, 0.5, 0.55)
PROBLEMS = 10
SPREAD = 0.2


def synthetic_grid(
    repeats: int, seed: int = 0, *, shared: bool = True, accuracies: tuple[float, ...] = ACCURACIES
) -> pd.DataFrame:
    """The default logged grid (see the module docstring). `shared=False`: each arm gets the
    problem offsets in its own random order — problems hard for one arm are not the hard ones
    for another, so pairing cancels less (the harder, more honest case for `decided`).
    `accuracies`: the arms' (`HARD`: the hard grid)."""
    rng = np.random.default_rng(seed)
    offsets = np.linspace(-SPREAD, SPREAD, PROBLEMS)
    rows = []
    for acc in accuracies:
        arm_offsets = offsets if shared else rng.permutation(offsets)
        for i in range(PROBLEMS):
            ones = round(min(1.0, max(0.0, acc + arm_offsets[i])) * repeats)
            scores = np.array([1.0] * ones + [0.0] * (repeats - ones))
            rng.shuffle(scores)
            for s, score in enumerate(scores):
                tokens = int(rng.integers(200, 2001) * (1.0 if score else 1.5))
                rows.append(
                    {
                        "prompt_id": f"p{i}",
                        "arm": f"acc={acc}",
                        "sample": s,
                        "score": score,
                        "completion_tokens": tokens,
                        "cost_usd": tokens * 2e-6,
                    }
                )
    return pd.DataFrame(rows)


def rules(by: list[str], width: float) -> list[tuple[str, Rule]]:
    return [
        ("decided", decided(by)),
        ("decided, eb", decided(by, method="eb")),
        ("decided, unit=round", decided(by, unit="round")),
        (f"ci_width({width:g})", ci_width(width=width, by=by)),
        (f"ci_width({width:g}), unit=round", ci_width(width=width, by=by, unit="round")),
    ]


def fmt(x: float) -> str:
    return "—" if x != x else f"{x:.3f}"  # NaN: no decided rule


def table(
    grids: list[tuple[str, pd.DataFrame, int]],
    by: list[str],
    *,
    metric: str = "score",
    sims: int = 1000,
    width: float = 0.2,
    seed: int = 0,
) -> list[str]:
    """The results as markdown lines: one row per (grid, repeats, rule)."""
    lines = [
        f"{sims} simulations per row; alpha = 0.05 (decided: split over the pairs of arms for "
        "its decisions, over the arms for the per-arm CSs covered; ci_width: per group). "
        "Correct pick: the certified winner is the grid's best arm; leader pick: the certified "
        "winner, else the arm ahead when the repeats ran out.",
        "",
        "| grid | repeats | rule | coverage (all CSs) | per-CS coverage | correct pick "
        "| wrong pick | leader pick | call share | token share | mean rounds | time |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, full, repeats in grids:
        for label, rule in rules(by, width):
            t0 = time.perf_counter()
            out = simulate(full, rule, repeats=repeats, metric=metric, n_sims=sims, seed=seed)
            dt = time.perf_counter() - t0
            s = summarize_simulations(out)
            lines.append(
                f"| {name} | {repeats} | {label} | {fmt(s['coverage'])} "
                f"| {fmt(s['group_coverage'])} | {fmt(s['correct_pick'])} "
                f"| {fmt(s['wrong_pick'])} | {fmt(s['leader_pick'])} "
                f"| {fmt(s['call_share'])} | {fmt(s['token_share'])} "
                f"| {s['rounds_mean']:.1f} | {dt:.1f} s ({1000 * dt / sims:.2f} ms/sim) |"
            )
    return lines


def synthetic_grids(repeats: list[int] | None = None) -> list[tuple[str, pd.DataFrame, int]]:
    """The default grids: the synthetic one at 20 and 32 repeats."""
    name = f"{len(ACCURACIES)} arms x {PROBLEMS} problems"
    out = [(f"{name}, shared difficulty", synthetic_grid(r), r) for r in (repeats or [20, 32])]
    out += [(f"{name}, own difficulty per arm", synthetic_grid(r, shared=False), r)
            for r in (repeats or [20])]  # fmt: skip
    return out


def hard_table(
    repeats: tuple[int, ...] = (20, 32, 64), sims: int = 1000, seed: int = 0
) -> list[str]:
    """The hard grid (arms `HARD`) as markdown lines: how often `decided` certifies a winner
    within the fixed design (decided), how often that winner is the best arm (correct) or
    not (wrong: must be 0), and the calls it used."""
    lines = [
        f"{sims} simulations per row; 3 arms at accuracy {' / '.join(map(str, HARD))} over "
        f"{PROBLEMS} problems of shared difficulty (offsets ±{SPREAD}); alpha = 0.05 split over "
        "the 3 pairs. Decided: a winner certified before the repeats ran out.",
        "",
        "| repeats | rule | decided | correct pick | wrong pick | leader pick | coverage "
        "| call share | mean rounds | time |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in repeats:
        full = synthetic_grid(r, seed, accuracies=HARD)
        for label, rule in (("decided", decided(["arm"])),
                            ("decided, eb", decided(["arm"], method="eb"))):  # fmt: skip
            t0 = time.perf_counter()
            s = summarize_simulations(simulate(full, rule, repeats=r, n_sims=sims, seed=seed))
            dt = time.perf_counter() - t0
            lines.append(
                f"| {r} | {label} | {fmt(s['correct_pick'] + s['wrong_pick'])} "
                f"| {fmt(s['correct_pick'])} | {fmt(s['wrong_pick'])} | {fmt(s['leader_pick'])} "
                f"| {fmt(s['coverage'])} | {fmt(s['call_share'])} | {s['rounds_mean']:.1f} "
                f"| {dt:.1f} s |"
            )
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parquet", help="a logged full grid (default: the synthetic grid)")
    ap.add_argument("--by", nargs="+", default=["arm"], help="column(s) naming the arms")
    ap.add_argument("--metric", default="score", help="the score column, values in [0, 1]")
    ap.add_argument("--repeats", type=int, nargs="+", help="simulated repeats per cell")
    ap.add_argument("--sims", type=int, default=1000)
    ap.add_argument("--width", type=float, default=0.2, help="ci_width target")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hard", action="store_true", help="the hard grid (arms 0.45/0.50/0.55)")
    args = ap.parse_args()
    if args.hard:
        hard_table(tuple(args.repeats or (20, 32, 64)), args.sims, args.seed)
        return

    if args.parquet:
        full = pd.read_parquet(args.parquet)
        logged = int(full.groupby(["prompt_id", *args.by]).size().min())
        grids = [(args.parquet, full, r) for r in (args.repeats or [logged])]
    else:
        grids = synthetic_grids(args.repeats)
    total = time.perf_counter()
    for line in table(grids, args.by, metric=args.metric, sims=args.sims, width=args.width,
                      seed=args.seed):  # fmt: skip
        print(line, flush=True)
    print(f"\ntotal {time.perf_counter() - total:.1f} s")


if __name__ == "__main__":
    main()
