"""Does the output move with a parameter? Permutation tests within blocks (`knob_effect`).

Probes (`mmlab.probe`) and scaling curves (`mmlab.scaling`) ask it of a knob an endpoint may
silently ignore.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import RequestError
from .frames import int_arg, require_columns, successful

if TYPE_CHECKING:
    import pandas as pd


KNOB_CI = (
    "within-block permutation tests ({permutations} permutations, seed {seed}): output length "
    "(spread of the values' mean completion tokens) and content (mean Jaccard similarity of "
    "word sets within a value minus between values, pairs from different blocks); p = "
    "Bonferroni minimum of the two"
)


def knob_effect(
    df: pd.DataFrame,
    param: str,
    blocks: Sequence[str],
    *,
    metric: str = "completion_tokens",
    text: str | None = "content",
    permutations: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Does the output move with `param`? Permutation tests within blocks.

    `blocks` are the columns that hold everything else equal (the prompt, the sample index or
    the seed, the other parameters): under "the endpoint ignores `param`", the values' labels
    are exchangeable within each block, so shuffling them there gives the null distribution of
    any statistic. Two statistics: the spread of the values' means of `metric` (default
    ``completion_tokens``), and the content contrast — mean Jaccard similarity of the `text`
    column's word sets between samples of the same value minus between samples of different
    values, counting only pairs from different blocks (a seeded endpoint that ignores `param`
    then gives a contrast of exactly zero). The p-value is the smaller of the two, doubled
    (Bonferroni); with ``text=None`` only the first is tested. ``identical_share`` is the share
    of blocks in which every value gave the same text (or metric): 1.0 is proof that `param`
    changed nothing there.

    Returns a dict: ``param``, ``values``, ``blocks`` (how many), ``length_p``, ``content_p``,
    ``p_value``, ``identical_share``, ``ci_method``.
    """
    import numpy as np

    data = successful(df)
    require_columns(data, [param, metric, *([text] if text else []), *blocks], "knob_effect")
    permutations = int_arg(permutations, "permutations", 1)
    seed = int_arg(seed, "seed", 0)
    data = data[data[text].notna()] if text else data
    values = sorted(data[param].dropna().unique(), key=str)
    if len(values) < 2:
        raise RequestError(f"knob_effect needs at least two values of {param!r}", field=param)
    label = data[param].map({v: i for i, v in enumerate(values)}).to_numpy()
    block = (
        data.groupby(list(blocks), dropna=False, sort=True).ngroup().to_numpy()
        if blocks
        else np.zeros(len(data), dtype=int)
    )
    length = data[metric].astype(float).to_numpy()
    answers = data[text] if text else data[metric].astype(str)
    words = [frozenset(str(t).lower().split()) for t in answers]
    sims = np.array([[_jaccard(a, b) for b in words] for a in words]) if text else None
    other_block = block[:, None] != block[None, :]
    rng = np.random.default_rng(seed)
    by_block = np.argsort(block, kind="stable")

    def shuffled() -> np.ndarray:
        # a permutation of the labels within each block: sort by (block, random key)
        out = np.empty_like(label)
        out[by_block] = label[np.lexsort((rng.random(len(label)), block))]
        return out

    def spread(y: np.ndarray) -> float:
        means = [length[y == i].mean() for i in range(len(values)) if (y == i).any()]
        return float(np.var(means))

    def contrast(y: np.ndarray) -> float:
        if sims is None:
            return 0.0
        same = (y[:, None] == y[None, :]) & other_block
        diff = (y[:, None] != y[None, :]) & other_block
        if not same.any() or not diff.any():
            return 0.0
        return float(sims[same].mean() - sims[diff].mean())

    observed = (spread(label), contrast(label))
    exceed = [0, 0]
    for _ in range(permutations):
        y = shuffled()
        exceed[0] += spread(y) >= observed[0] - 1e-12
        exceed[1] += contrast(y) >= observed[1] - 1e-12
    length_p, content_p = ((1 + e) / (1 + permutations) for e in exceed)
    if not text:
        content_p = math.nan
    identical = [
        len({answers.iloc[i] for i in np.flatnonzero(block == b)}) == 1
        for b in np.unique(block)
        if len(set(label[block == b])) == len(values)
    ]
    return {
        "param": param,
        "values": values,
        "blocks": int(len(np.unique(block))),
        "length_p": length_p,
        "content_p": content_p,
        "p_value": length_p if not text else min(1.0, 2 * min(length_p, content_p)),
        "identical_share": float(np.mean(identical)) if identical else math.nan,
        "ci_method": KNOB_CI.format(permutations=permutations, seed=seed),
    }


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return 1.0 if not a and not b else len(a & b) / len(a | b)
