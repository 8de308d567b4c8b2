"""Is a knob honoured? `probe` sends small paired samples across a parameter's values and tests
whether the output moves.

OpenRouter silently drops parameters a provider does not support (unless
``provider.require_parameters`` is true), so a sweep over ``top_k`` can measure nothing at
all. A probe is the cheap check before spending on a sweep: n samples per value, *paired*
(sample i of every value uses ``seed=i``, so on an endpoint that honours seeds an ignored
parameter gives byte-identical outputs), then within-pair permutation tests of output length
and content (`mmlab.analysis.knob_effect`), and an exact test against *controls* — the first
value sent twice at every seed — that needs no idea of what a moved output looks like
(`paired_test`).

    lab.probe("temperature", [0.0, 1.0], prompt="Name a colour.", n=20)
    ProbeResult(temperature moves the output: p=0.0010 (length p=0.0005, content p=0.0005))
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .analysis import knob_effect
from .errors import RequestError
from .params import BY_NAME
from .sweep import Sweep

if TYPE_CHECKING:
    import pandas as pd

    from .engine import Engine

#: Below this p-value a probe says the knob moves the output.
ALPHA = 0.05


def point(param: str, value: Any) -> dict[str, Any]:
    """A parameter point for a possibly dotted name: ``reasoning.effort`` → ``{"reasoning":
    {"effort": value}}``."""
    head, _, tail = param.partition(".")
    if head not in BY_NAME:
        raise RequestError(f"unknown parameter {param!r}", field=param)
    return {head: {tail: value}} if tail else {head: value}


@dataclass
class ProbeResult:
    """What a probe found: per-value figures (``df``), the tests' p-values and a verdict."""

    param: str
    df: pd.DataFrame
    """Per value: ``n``, ``mean_completion_tokens``, ``distinct_answers``, ``errors``."""
    length_p: float
    content_p: float
    p_value: float
    identical_share: float
    method: str
    paired_p: float = math.nan
    """The exact control test's p-value (NaN: no control, e.g. probing ``seed`` itself)."""
    control_identical_share: float = math.nan
    """Share of seeds whose two control samples (the first value, sent twice) were identical:
    1.0 means the endpoint is deterministic given the seed."""
    moves: bool = field(init=False)
    """Whether the output moves with the parameter (``p_value`` < 0.05)."""

    def __post_init__(self) -> None:
        self.moves = self.p_value < ALPHA

    def __repr__(self) -> str:
        detail = f"length p={self.length_p:.4f}, content p={self.content_p:.4f}"
        if self.paired_p == self.paired_p:
            detail += (
                f", paired p={self.paired_p:.4f} with controls identical in "
                f"{self.control_identical_share:.0%} of seeds"
            )
        if self.moves:
            return f"ProbeResult({self.param} moves the output: p={self.p_value:.4f} ({detail}))"
        same = (
            f"; identical outputs in {self.identical_share:.0%} of pairs"
            if self.identical_share == self.identical_share
            else ""
        )
        return (
            f"ProbeResult({self.param} shows no effect: p={self.p_value:.4f} ({detail}{same}); "
            "the endpoint may ignore it)"
        )


def build(
    engine: Engine,
    param: str,
    values: Sequence[Any],
    prompt: str,
    n: int,
    tag: str | None,
    fixed: Mapping[str, Any],
) -> tuple[Sweep, Sweep | None]:
    """The probe's cells as sweeps, so they cache, budget and resume like any sweep: one point
    per (value, seed); and the controls — the first value at every seed sent a second time
    (its first samples are the main sweep's own cells, served from the cache)."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or len(values) < 2:
        raise RequestError("values must be a list of at least two values", field="values")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise RequestError(f"n must be an integer >= 2; got {n!r}", field="n")
    if not isinstance(prompt, str) or not prompt.strip():
        raise RequestError("prompt must be a non-blank string", field="prompt")
    paired = param != "seed" and "seed" not in fixed
    points = [
        {**point(param, v), **({"seed": i} if paired else {})} for v in values for i in range(n)
    ]
    name = tag or f"probe-{param}"
    main = Sweep(
        engine,
        [prompt],
        points if paired else [point(param, v) for v in values],
        repeats=1 if paired else n,
        tag=name,
        fixed=dict(fixed),
    )
    if not paired:
        return main, None
    controls = [{**point(param, values[0]), "seed": i} for i in range(n)]
    return main, Sweep(engine, [prompt], controls, repeats=2, tag=name, fixed=dict(fixed))


def paired_test(
    df: pd.DataFrame, control: pd.DataFrame, param: str, first: Any, last: Any
) -> tuple[float, float]:
    """(p-value, control identical share) of the exact control test.

    For each seed, the *treatment* pair is (first value, last value) and the *control* pair is
    the first value sent twice. If the endpoint ignores `param`, the last value's output at a
    seed is distributed exactly as a second sample of the first value's, so "the treatment
    pair is identical" and "the control pair is identical" are exchangeable within a seed:
    among seeds where exactly one of the two pairs is identical, the control is the identical
    one with probability 1/2 (McNemar's exact test, one-sided). On an endpoint deterministic
    given the seed, a knob that moves the output gives p = 2^-n; one that does not, p = 1.
    Unlike the permutation tests this needs no assumption about what "moving" looks like.
    """
    ok = df[df["error"].isna()]
    ctl = control[control["error"].isna()]

    def output(part: pd.DataFrame) -> dict[Any, tuple[str, int]]:
        rows = zip(part["seed"], part["content"], part["completion_tokens"], strict=True)
        return {s: (str(c), int(t)) for s, c, t in rows}

    a = output(ok[(ok[param] == first)])
    b = output(ok[(ok[param] == last)])
    twice = ctl.groupby("seed")
    discordant = [0, 0]  # [control identical & treatment differs, the reverse]
    same_controls = seeds = 0
    for s, part in twice:
        if len(part) != 2 or s not in a or s not in b:
            continue
        seeds += 1
        outs = list(zip(part["content"].astype(str), part["completion_tokens"].astype(int),
                        strict=True))  # fmt: skip
        control_same = outs[0] == outs[1]
        treatment_same = a[s] == b[s]
        same_controls += control_same
        if control_same and not treatment_same:
            discordant[0] += 1
        elif treatment_same and not control_same:
            discordant[1] += 1
    m = sum(discordant)
    p = sum(math.comb(m, k) for k in range(discordant[0], m + 1)) / 2**m if m else 1.0
    return p, (same_controls / seeds if seeds else math.nan)


def analyse(
    sweep: Sweep,
    param: str,
    df: pd.DataFrame,
    permutations: int,
    control: pd.DataFrame | None = None,
) -> ProbeResult:
    """The probe's verdict from its sweeps' results: the permutation tests of length and
    content, and (with `control`) the exact control test; the p-value is the smallest of
    them times their number (Bonferroni)."""
    import pandas as pd

    column = param  # res.df flattens nested parameters to dotted columns
    blocks = ["seed"] if "seed" in df and param != "seed" else ["sample"]
    effect = knob_effect(df, column, blocks, permutations=permutations)
    paired_p = same = math.nan
    p_value = effect["p_value"]
    if control is not None:
        paired_p, same = paired_test(df, control, column, effect["values"][0],
                                     effect["values"][-1])  # fmt: skip
        p_value = min(1.0, 3 * min(effect["length_p"], effect["content_p"], paired_p))
    ok = df[df["error"].isna()]
    rows = []
    for value in effect["values"]:
        part = ok[ok[column] == value]
        rows.append(
            {
                param: value,
                "n": len(part),
                "mean_completion_tokens": float(part["completion_tokens"].astype(float).mean()),
                "distinct_answers": part["content"].str.strip().nunique(),
                "errors": int(((df[column] == value) & df["error"].notna()).sum()),
            }
        )
    return ProbeResult(
        param=param,
        df=pd.DataFrame(rows),
        length_p=effect["length_p"],
        content_p=effect["content_p"],
        p_value=p_value,
        identical_share=effect["identical_share"],
        method=effect["ci_method"]
        + ("; exact McNemar test against same-seed controls; Bonferroni over the three"
           if control is not None else ""),
        paired_p=paired_p,
        control_identical_share=same,
    )
