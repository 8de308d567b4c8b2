"""Adaptive sampling for sweeps: confidence sequences, the round scheduler, simulation.

Instead of running every repeat of every cell up front, a sweep samples in *rounds* and stops
a group (or the whole sweep) as soon as a stopping rule (`mmlab.stop`) says its question is
answered. This package is the pure, I/O-free core that executes the rules: the sweep runner
asks `AdaptiveScheduler.next_round` which cells to run, makes the calls, and feeds each score
back with `AdaptiveScheduler.observe`. Every decision is a deterministic function of the
observed scores (and costs), so replaying a sweep from the cache makes the same decisions in
the same order.

    rule = decided(by="temperature") | budget(2.0)
    sched = AdaptiveScheduler(sweep.plan(), rule, repeats=sweep.repeats)
    while ids := sched.next_round():
        for cell in ids:
            ...                                   # run cell `cell`, score it
            sched.observe(cell, score, usd)       # score None: the call failed / unscorable
    sched.winner, sched.stopped_reason, sched.intervals()

- `cs.py`: `ConfidenceSequence`, the anytime-valid betting and empirical-Bernstein CSs, and
  the argument why the intervals stay valid under optional stopping (the observation unit,
  ``unit="cell"`` vs ``"round"``, paired differences): read its module docstring.
- `tree.py`: the rules compiled against a fixed design (`Design`, `Groups`, `CSLeaf`, ...).
- `scheduler.py`: `AdaptiveScheduler`, the round loop, its budget check and its reports.
- `simulate.py`: `simulate` / `summarize_simulations` (a rule replayed on a logged full grid)
  and `expected_share` (a prior forecast of the share of calls an adaptive run makes).

Stopping rules, composable with ``|`` (stop when either does) and ``&`` (when both do):
`ci_width`, `decided` (successive elimination, Even-Dar, Mannor & Mansour, JMLR 2006, on
paired-difference confidence sequences), `budget` and `max_repeats`. `simulate` replays a
logged full grid to measure a rule's coverage, correct-pick rate and savings before spending
money on it.

numpy is imported with this package; pandas only when a DataFrame is built.
"""

from ..fields import NOT_PARAMETERS as NOT_PARAMETERS
from .cs import GRID as GRID
from .cs import TRUNCATION as TRUNCATION
from .cs import ConfidenceSequence
from .scheduler import AdaptiveScheduler
from .simulate import expected_share, simulate, summarize_simulations

__all__ = [
    "AdaptiveScheduler",
    "ConfidenceSequence",
    "expected_share",
    "simulate",
    "summarize_simulations",
]
