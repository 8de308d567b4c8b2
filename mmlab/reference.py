"""Reference numbers from the MiniMax-M1 technical report, shipped as data, and what
reproducing one would cost.

Source: MiniMax, "MiniMax-M1: Scaling Test-Time Compute Efficiently with Lightning
Attention" (arXiv 2506.13585), Table 2 and §6.1: every benchmark at temperature 1.0 and top_p
0.95; AIME and GPQA scored as the mean pass rate over 32 samples, LiveCodeBench and
FullStackBench over 16; average responses on AIME and LiveCodeBench above 20,000 tokens
(Figure 4). Problem counts are the public benchmarks' sizes (AIME: 30 a year; MATH-500: 500;
GPQA-Diamond: 198); where the report's split is not pinned down they are left empty and a
forecast asks for them.

    from mmlab.reference import m1_report, forecast_reproduction
    m1_report()                                   # the table
    forecast_reproduction("AIME 2024")            # calls, expected and worst-case USD on M1

The same figures give sweep forecasts their M1-like lengths (`m1_expected_tokens`): a sweep
run on another model (the embedded one, say) is priced "at M1 list prices" with the lengths
M1 writes, not the other model's.
"""

from __future__ import annotations

import csv
import functools
import importlib.resources
import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import RequestError
from .pricing import EMBEDDED, PriceTable, completion_cap

if TYPE_CHECKING:
    import pandas as pd

SOURCE = "MiniMax-M1 technical report, arXiv 2506.13585, Table 2 and §6.1"
M1 = "minimax/minimax-m1"
#: Assumed prompt size of a benchmark problem (statement plus M1's math system prompt) when
#: none is given: AIME and GPQA statements run 100-300 tokens.
DEFAULT_PROMPT_TOKENS = 300


@functools.cache
def m1_response_tokens() -> int:
    """The M1 report's average response length on reasoning benchmarks, in tokens: the
    smallest ``mean_output_tokens`` it gives (20,000 — AIME 2024 and LiveCodeBench, where it
    says "above 20K": a lower bound). Read from the shipped table without pandas."""
    text = importlib.resources.files("mmlab").joinpath("data/m1_report.csv").read_text()
    means = [int(row["mean_output_tokens"]) for row in csv.DictReader(io.StringIO(text))
             if row["mean_output_tokens"].strip()]  # fmt: skip
    return min(means)


def m1_expected_tokens(cap: int) -> int:
    """The completion tokens an M1-like call is expected to write under a cap of `cap`:
    ``min(cap, m1_response_tokens())``. M1's responses on AIME and LiveCodeBench average
    above 20K tokens, so below that a reasoning prompt runs to its cap; an easy prompt runs
    shorter (the figure is for reasoning benchmarks, and a lower bound there)."""
    return min(int(cap), m1_response_tokens())


def m1_lengths_note() -> str:
    """One line saying where M1-like lengths come from (a forecast's label for them)."""
    return (
        f"M1-like lengths: min(max_tokens, {m1_response_tokens():,}) tokens a call — the M1 "
        "report's average on AIME and LiveCodeBench is 'above 20K' (a lower bound there; easy "
        "prompts run shorter; arXiv 2506.13585)"
    )


def m1_report() -> pd.DataFrame:
    """The report's headline results: ``benchmark``, ``m1_80k``, ``m1_40k`` (scores in %),
    ``samples`` (per problem), ``problems``, ``mean_output_tokens`` (a lower bound where the
    report says "above"), ``note``; ``source`` names the report."""
    import pandas as pd

    text = importlib.resources.files("mmlab").joinpath("data/m1_report.csv")
    with importlib.resources.as_file(text) as path:
        df = pd.read_csv(path)
    for column in ("samples", "problems", "mean_output_tokens"):
        df[column] = df[column].astype("Int64")
    df["source"] = SOURCE
    return df


@dataclass(frozen=True)
class Reproduction:
    """What reproducing one row of the report would cost (see `forecast_reproduction`)."""

    benchmark: str
    model: str
    problems: int
    samples: int
    calls: int
    prompt_tokens: int
    mean_output_tokens: int | None
    output_cap: int
    expected_usd: float | None
    worst_usd: float
    price_ref: str
    assumptions: tuple[str, ...]

    def __str__(self) -> str:
        expected = (
            f"expected ${self.expected_usd:,.2f}"
            if self.expected_usd is not None
            else "expected: unknown (pass mean_output_tokens=)"
        )
        return (
            f"{self.benchmark} on {self.model}: {self.problems} problems x {self.samples} "
            f"samples = {self.calls:,} calls; {expected}; worst case ${self.worst_usd:,.2f} "
            f"(every call at the {self.output_cap:,}-token output cap) [{self.price_ref}]"
        )

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def as_row(self) -> dict[str, Any]:
        """The figures as one DataFrame row."""
        return {k: v for k, v in self.__dict__.items() if k != "assumptions"}


def forecast_reproduction(
    benchmark: str,
    samples: int | None = None,
    model: str = M1,
    *,
    problems: int | None = None,
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
    mean_output_tokens: int | None = None,
    prices: PriceTable | None = None,
) -> Reproduction:
    """What reproducing `benchmark`'s row of the M1 report would cost on OpenRouter.

    Calls = problems × samples (the report's sample count unless `samples` is given).
    Expected USD uses the report's mean response length (a lower bound: "above 20,000 tokens")
    or `mean_output_tokens`; the worst case puts every call at the endpoint's output cap (the
    price table's ``max_completion_tokens``, 40K for M1 on OpenRouter). Prices come from
    `prices` (default: the embedded table; pass ``lab.prices`` for the live one).
    """
    table = m1_report()
    row = table[table["benchmark"].str.lower() == str(benchmark).lower()]
    if row.empty:
        raise RequestError(
            f"unknown benchmark {benchmark!r}; the report has: {', '.join(table['benchmark'])}",
            field="benchmark",
        )
    ref = row.iloc[0]
    assumptions = [f"scores and sample counts: {SOURCE}"]
    n = _count(problems, ref["problems"], "problems", benchmark)
    k = _count(samples, ref["samples"], "samples", benchmark)
    mean = mean_output_tokens
    if mean is None and not _missing(ref["mean_output_tokens"]):
        mean = int(ref["mean_output_tokens"])
        assumptions.append(f"mean output {mean:,} tokens: the report says 'above', a lower bound")
    if mean is not None and (isinstance(mean, bool) or not isinstance(mean, int) or mean < 1):
        raise RequestError(f"mean_output_tokens must be an integer >= 1; got {mean!r}",
                           "mean_output_tokens")  # fmt: skip
    if isinstance(prompt_tokens, bool) or not isinstance(prompt_tokens, int) or prompt_tokens < 1:
        raise RequestError(f"prompt_tokens must be an integer >= 1; got {prompt_tokens!r}",
                           "prompt_tokens")  # fmt: skip
    assumptions.append(f"{prompt_tokens} prompt tokens per problem")
    source = prices or EMBEDDED
    price = source.get(model)
    if price is None:
        raise RequestError(f"no price for {model!r} in {source.source}", field="model")
    cap = completion_cap({}, price)
    calls = n * k
    expected = None if mean is None else calls * price.cost(prompt_tokens, min(mean, cap))
    return Reproduction(
        benchmark=str(ref["benchmark"]),
        model=model,
        problems=n,
        samples=k,
        calls=calls,
        prompt_tokens=prompt_tokens,
        mean_output_tokens=mean,
        output_cap=cap,
        expected_usd=expected,
        worst_usd=calls * price.cost(prompt_tokens, cap),
        price_ref=source.source,
        assumptions=tuple(assumptions),
    )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value) == "<NA>"


def _count(given: int | None, listed: Any, name: str, benchmark: str) -> int:
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, int) or given < 1:
            raise RequestError(f"{name} must be an integer >= 1; got {given!r}", field=name)
        return given
    if _missing(listed):
        raise RequestError(
            f"the report does not pin down {benchmark}'s {name}; pass {name}=", field=name
        )
    return int(listed)
