"""Where the thinking goes: switches, first answers, overthinking, underthinking and loops in
a reasoning text, one row per call — pure functions over result frames (``res.df``, a
scaling curve's ``curve.result.df``, ``lab.calls()`` joined with its responses by
`with_responses`).

What is measured, and after whom:

- **Thought switches** — Wang et al. 2025, "Thoughts Are All Over the Place: On the
  Underthinking of o1-Like LLMs" (arXiv 2501.18585): a new line of thought opens with a
  marker such as "alternatively" or "wait" (`SWITCH_MARKERS`); a marker counts when it opens
  a sentence or a line (optionally after "but", "hmm", "oh", "okay"), case-insensitive. The
  thoughts are the spans between switches.
- **Candidate answers** — where the reasoning states an answer: a ``\\boxed{...}``, "answer
  is / answer: X", a result "= X" that ends an expression, or "is / equals / gives X" ending
  a sentence (`answer_spans`; pass `extract` for another rule, e.g. `number_spans`). The
  correct one is a candidate equal to the gold answer after `mmlab.scorers.normalize_answer`.
- **Overthinking** — Chen et al. 2024, "Do NOT Think That Much for 2+3=? On the Overthinking
  of o1-Like LLMs" (arXiv 2412.21187). Outcome efficiency xi_O = mean over responses of
  sigma_i * T^_i / T_i (sigma_i = 1 if the response is correct, T^_i the tokens up to the end
  of the first correct solution, T_i all of them): the column holds sigma * T^/T per call, so
  its mean over calls is xi_O — 0 for an incorrect call (sigma = 0), T^/T for a correct one
  (1 when the correct answer first appears in the final answer, after all the thinking).
  ``overthinking_tokens`` is what comes after: reasoning tokens past the first correct answer.
- **Underthinking** — Wang et al.: xi_UT = mean over *incorrect* responses of 1 - T^/T,
  T^ = tokens up to the end of the first correct thought (the thought holding the first
  correct candidate): high when a correct line of thought was abandoned early. An incorrect
  call whose reasoning never holds a correct thought has T^ = T (0: nothing abandoned — our
  reading of the paper's convention, said in ``note``); correct calls are NaN.
- **Loops** — Pipis et al. 2025, "Wait, Wait, Wait... Why Do Reasoning Models Loop?"
  (arXiv 2512.12895): looping (repeating the same text) rises at low temperature and in small
  or distilled models; detected here by repeated word n-grams. ``loop_share`` is the share of
  the reasoning's words inside a repeat of an earlier `ngram`-word span (default 30);
  ``looped`` when some n-gram occurs at least `loop_repeats` times (default 20). The paper
  detects loops by repeated n-grams; these two constants are this module's choice.

Positions are measured in characters of the reasoning text and reported as a share of it;
token counts are that share of the call's ``reasoning_tokens`` (proportional conversion: the
model's tokenizer could count exactly, but these functions work offline over frames without
it, and a share of characters is within a few tokens of the share of tokens on long text).
Rows that cannot be measured get NaN (or <NA>) with the reason in ``note``, never 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import RequestError
from .scorers import boxed, extract_answer, normalize_answer

if TYPE_CHECKING:
    import pandas as pd

#: Words that open a new thought (Wang et al. 2025; "wait" is also budget forcing's cue).
SWITCH_MARKERS = ("alternatively", "wait", "on second thought", "another approach",
                  "let me try another", "let's try another", "instead, let")  # fmt: skip
#: Words per n-gram for loop detection.
NGRAM = 30
#: Occurrences of one n-gram that make a trace ``looped``.
LOOP_REPEATS = 20
#: The columns `trace_stats` adds.
STATS_COLUMNS = ("switches", "first_answer_at", "first_correct_at", "overthinking_tokens",
                 "correct", "outcome_efficiency", "underthinking", "loop_share", "max_repeats",
                 "looped", "note")  # fmt: skip
#: Long text columns `trace_stats` leaves out of its result.
TEXT_COLUMNS = ("content", "reasoning", "confidence", "reasoning_details", "prompt")

_NUM = r"-?\d[\d,]*(?:\.\d+)?"
_SPANS = re.compile(
    r"(?:final\s+answer|answer|result)\s*(?:is|:|=|would\s+be|should\s+be)\s*\**\$?\s*"
    rf"(?P<a>{_NUM})"
    rf"|=\s*\$?(?P<b>{_NUM})(?!\s*[-+*/×÷^(\d])"
    rf"|\b(?:is|equals|gives|get|makes)\s+\$?(?P<c>{_NUM})\s*\$?\s*(?=[.!?\n]|$)",
    re.IGNORECASE,
)
_NUMBERS = re.compile(_NUM)
#: A candidate answer: (start, end) in the text and the answer as written.
Span = tuple[int, int, str]


def answer_spans(text: str) -> list[Span]:
    r"""Where `text` states an answer (the default rule; see the module docstring), in order:
    ``\boxed{X}``, "answer is X", "= X" closing an expression, "is X." ending a sentence."""
    found: list[Span] = []
    start = text.find("\\boxed{")
    while start >= 0:
        inner = boxed(text[: _close(text, start)])
        if inner is not None:
            found.append((start, _close(text, start), inner))
        start = text.find("\\boxed{", start + 1)
    for m in _SPANS.finditer(text):
        name = next(g for g in ("a", "b", "c") if m.group(g) is not None)
        found.append((m.start(), m.end(name), m.group(name).rstrip(",")))
    return sorted(found)


def _close(text: str, start: int) -> int:
    """The end of the ``\\boxed{...}`` opening at `start` (len(text) if unclosed)."""
    depth = 0
    for j in range(start + len("\\boxed"), len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return j + 1
    return len(text)


def number_spans(text: str) -> list[Span]:
    """Every number in `text` as a candidate (a looser rule than `answer_spans`: any mention
    of the gold number counts as reaching it)."""
    return [(m.start(), m.end(), m.group().rstrip(",")) for m in _NUMBERS.finditer(text)]


def _switch_pattern(markers: Sequence[str]) -> re.Pattern[str]:
    words = "|".join(re.escape(m).replace(r"\ ", r"\s+") for m in sorted(markers, key=len,
                                                                          reverse=True))
    return re.compile(
        rf"(?:^|(?<=[.!?:;]))[\s\"'*_(]*(?:(?:but|hmm+|oh|okay|ok|no)[,.!]?\s+)?"
        rf"(?P<m>{words})\b",
        re.IGNORECASE | re.MULTILINE,
    )


@dataclass(frozen=True)
class Trace:
    """One reasoning text read for switches, candidate answers and loops (character spans)."""

    length: int
    """Characters in the text."""
    switches: tuple[tuple[int, int], ...]
    """The switch markers' spans."""
    candidates: tuple[tuple[int, int, str, bool | None], ...]
    """Candidate answers: (start, end, answer, equals the gold answer: None without one)."""
    loops: tuple[tuple[int, int], ...]
    """Spans that repeat an earlier `ngram`-word span (merged)."""
    loop_share: float
    """Share of the text's words inside `loops` (NaN without words)."""
    max_repeats: int
    """Occurrences of the most repeated n-gram (0 when the text is shorter than one)."""

    def share(self, position: int) -> float:
        """A character position as a share of the text."""
        return position / self.length if self.length else math.nan

    @property
    def first_answer(self) -> int | None:
        """Where the first candidate answer ends (None: no candidate)."""
        return self.candidates[0][1] if self.candidates else None

    @property
    def first_correct(self) -> int | None:
        """Where the first correct candidate ends (None: none, or no gold answer)."""
        return next((end for _, end, _, ok in self.candidates if ok), None)

    def thought_end(self, position: int) -> int:
        """The end of the thought holding `position`: the next switch, or the text's end."""
        return next((s for s, _ in self.switches if s > position), self.length)


def read_trace(
    text: str,
    gold: Any = None,
    *,
    markers: Sequence[str] = SWITCH_MARKERS,
    extract: Callable[[str], Iterable[Span]] | None = None,
    ngram: int = NGRAM,
) -> Trace:
    """Read one reasoning text (see the module docstring for each rule)."""
    import numpy as np

    gold_norm = normalize_answer(gold)
    switches = tuple(m.span("m") for m in _switch_pattern(markers).finditer(text))
    candidates = tuple(
        (s, e, a, None if gold_norm is None else normalize_answer(a) == gold_norm)
        for s, e, a in (extract or answer_spans)(text)
    )
    words = [m.span() for m in re.finditer(r"\S+", text)]
    loops: list[tuple[int, int]] = []
    share, most = (math.nan if not words else 0.0), 0
    if len(words) >= ngram:
        ids: dict[str, int] = {}
        seq = np.array([ids.setdefault(text[s:e], len(ids)) for s, e in words], dtype=np.int64)
        # each n-gram as a 64-bit random linear hash of its word ids (wrapping arithmetic;
        # two different n-grams collide with chance about 2**-64): one sort of numbers
        # instead of a sort of rows
        weights = np.random.default_rng(0).integers(1, 2**63, size=ngram, dtype=np.uint64)
        count = len(seq) - ngram + 1
        grams = np.zeros(count, dtype=np.uint64)
        ids_u = seq.astype(np.uint64)
        for j in range(ngram):
            grams += ids_u[j : j + count] * weights[j]
        _, first, inverse, counts = np.unique(grams, return_index=True, return_inverse=True,
                                              return_counts=True)  # fmt: skip
        most = int(counts.max())
        repeats = np.flatnonzero(first[inverse.ravel()] != np.arange(count))
        cover = np.zeros(len(seq) + 1, dtype=np.int64)
        np.add.at(cover, repeats, 1)
        np.add.at(cover, repeats + ngram, -1)
        inside = np.cumsum(cover[:-1]) > 0
        share = float(inside.mean())
        edges = np.flatnonzero(np.diff(np.concatenate(([0], inside.astype(np.int8), [0]))))
        loops = [(words[a][0], words[b - 1][1]) for a, b in zip(edges[::2], edges[1::2],
                                                                 strict=True)]
    return Trace(len(text), switches, candidates, tuple(loops), share, most)


def _gold_column(df: pd.DataFrame, answer: str | None) -> str | None:
    if answer is None:
        return "answer" if "answer" in df else None
    if answer not in df:
        raise RequestError(
            f"trace_stats: answer={answer!r} names no column (the gold answers: a column of "
            "the prompts frame, which res.df carries)",
            field=answer,
        )
    return answer


def _correct(row: Any, gold: Any) -> bool | None:
    """Whether the call's final answer is right: its ``score`` when scored, else its content's
    extracted answer against the gold one; None when unknown."""
    if row.score is not None:
        return bool(row.score == 1)
    g = normalize_answer(gold)
    if g is None or not isinstance(row.content, str):
        return None
    return normalize_answer(extract_answer(row.content)) == g


def trace_stats(
    df: pd.DataFrame,
    answer: str | None = None,
    extract: Callable[[str], Iterable[Span]] | None = None,
    *,
    markers: Sequence[str] = SWITCH_MARKERS,
    ngram: int = NGRAM,
    loop_repeats: int = LOOP_REPEATS,
) -> pd.DataFrame:
    """Where each call's thinking went: one row per row of `df`, its columns without the long
    texts, plus `STATS_COLUMNS`.

    - ``switches``: thought switches (markers opening a sentence; Wang et al. 2025).
    - ``first_answer_at`` / ``first_correct_at``: where the first candidate answer / the first
      correct one ends, as a share of the reasoning (NaN when there is none).
    - ``overthinking_tokens``: reasoning tokens after the first correct answer (Chen et al.).
    - ``correct``: the call's final answer is right (``score`` if the frame is scored, else
      the extracted answer of ``content`` against the gold answer).
    - ``outcome_efficiency``: sigma * T^/T (Chen et al.'s xi_O is its mean over calls: 0 for
      incorrect calls); ``underthinking``: 1 - T^/T over incorrect calls (Wang et al.).
    - ``loop_share``, ``max_repeats``, ``looped``: repeated `ngram`-word spans (Pipis et al.).
    - ``note``: why a value is missing (failed call, no reasoning, no candidate answer, no
      gold answer, unknown reasoning tokens).

    `answer` names the gold-answer column (default ``answer`` when present); `extract` finds
    candidate answers in a text, ``text -> [(start, end, answer)]`` (default `answer_spans`);
    `markers`, `ngram` and `loop_repeats` as documented in the module. Raises RequestError
    naming a missing ``reasoning`` or ``reasoning_tokens`` column (``res.df`` has both; for
    ``lab.calls()``, join the responses first: `with_responses`).
    """
    import numpy as np
    import pandas as pd

    for column in ("reasoning", "reasoning_tokens"):
        if column not in df:
            raise RequestError(
                f"trace_stats needs a {column!r} column: res.df (lab.sweep(...).run()) has it; "
                "for lab.calls() add the responses first: traces.with_responses(lab.calls(), "
                "lab)",
                field=column,
            )
    for name, value, low in (("ngram", ngram, 2), ("loop_repeats", loop_repeats, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise RequestError(f"{name} must be an integer >= {low}; got {value!r}", name)
    if extract is not None and not callable(extract):
        raise RequestError("extract must be a function text -> [(start, end, answer)]",
                           "extract")  # fmt: skip
    gold_col = _gold_column(df, answer)
    # the few columns read, under fixed names (a column such as "reasoning.effort" is not an
    # attribute name); missing optional ones read as None
    view = pd.DataFrame({
        name: df[column] if column is not None and column in df else None
        for name, column in (("reasoning", "reasoning"), ("reasoning_tokens", "reasoning_tokens"),
                             ("score", "score"), ("content", "content"), ("error", "error"),
                             ("gold", gold_col))
    }, index=df.index)  # fmt: skip
    view = view.astype(object).where(view.notna(), None)  # NaN and <NA> read as None
    rows = [_row_stats(row, gold_col, markers, extract, ngram, loop_repeats)
            for row in view.itertuples(index=False)]  # fmt: skip
    stats = pd.DataFrame(rows, index=df.index, columns=list(STATS_COLUMNS))
    for column, dtype in (("switches", "Int64"), ("max_repeats", "Int64"),
                          ("correct", "boolean"), ("looped", "boolean")):  # fmt: skip
        stats[column] = stats[column].astype(dtype)
    for column in ("first_answer_at", "first_correct_at", "overthinking_tokens",
                   "outcome_efficiency", "underthinking", "loop_share"):  # fmt: skip
        stats[column] = stats[column].astype(np.float64)
    keep = df.drop(columns=[c for c in (*TEXT_COLUMNS, *STATS_COLUMNS) if c in df])
    return pd.concat([keep, stats], axis=1)


def _row_stats(row: Any, gold_col: str | None, markers: Sequence[str], extract: Any,
               ngram: int, loop_repeats: int) -> list[Any]:
    nan, gold = math.nan, row.gold
    if isinstance(row.error, str) and row.error:
        return [None, nan, nan, nan, None, nan, nan, nan, None, None, "failed call"]
    text = row.reasoning if isinstance(row.reasoning, str) else ""
    correct = _correct(row, gold)
    efficiency = nan if correct is None else (nan if correct else 0.0)
    if not text.strip():
        return [None, nan, nan, nan, correct, efficiency if correct is False else nan, nan, nan,
                None, None, "no reasoning text"]  # fmt: skip
    trace = read_trace(text, gold, markers=markers, extract=extract, ngram=ngram)
    notes = []
    tokens = float(row.reasoning_tokens) if row.reasoning_tokens is not None else nan
    tokens = tokens if tokens > 0 else nan
    if tokens != tokens:
        notes.append("reasoning_tokens unknown: no token counts")
    first_answer = nan if trace.first_answer is None else trace.share(trace.first_answer)
    first_correct = nan if trace.first_correct is None else trace.share(trace.first_correct)
    if trace.first_answer is None:
        notes.append("no candidate answer in the reasoning")
    if gold_col is None or normalize_answer(gold) is None:
        notes.append("no gold answer")
    elif trace.first_correct is None and trace.first_answer is not None:
        notes.append("no correct candidate in the reasoning")
    if correct is None:
        notes.append("correctness unknown (no score, no gold answer or no content)")
    under = nan
    if correct:
        efficiency = 1.0 if first_correct != first_correct else first_correct
    elif correct is False:
        if trace.first_correct is None:
            under = 0.0  # T^ = T: no correct thought was abandoned
            notes.append("incorrect without a correct thought: underthinking 0 (T^ = T)")
        else:
            under = 1.0 - trace.share(trace.thought_end(trace.first_correct))
    return [
        len(trace.switches),
        first_answer,
        first_correct,
        (1.0 - first_correct) * tokens,
        correct,
        efficiency,
        under,
        trace.loop_share,
        trace.max_repeats,
        trace.max_repeats >= loop_repeats,
        "; ".join(notes) or None,
    ]


def with_responses(calls: pd.DataFrame, source: Any) -> pd.DataFrame:
    """``lab.calls()`` with each call's response read back from the cache: ``content``,
    ``reasoning`` and ``confidence`` (None where the cache holds no response — a failed or
    uncached call). `source` is the `Lab` (or its ``engine.store``)."""
    from .confidence import scores_of

    if "cache_key" not in calls:
        raise RequestError("with_responses needs the 'cache_key' column of lab.calls()",
                           "cache_key")  # fmt: skip
    store = getattr(getattr(source, "engine", None), "store", source)
    if not hasattr(store, "cache_get_many"):
        raise RequestError("with_responses needs a Lab (or its engine.store)", "source")
    keys = [k for k in calls["cache_key"].dropna().unique()]
    found = store.cache_get_many(keys)
    out = calls.copy()
    for column in ("content", "reasoning", "confidence"):
        out[column] = [
            (found[k][0].get(column) if isinstance(k, str) and k in found else None)
            for k in calls["cache_key"]
        ]
    for i, name in enumerate(("conf_mean", "conf_lowest", "conf_bottom10", "conf_tail")):
        out[name] = [scores_of(c)[i] if isinstance(c, str) else math.nan
                     for c in out["confidence"]]  # fmt: skip
    return out


__all__ = [
    "LOOP_REPEATS",
    "NGRAM",
    "STATS_COLUMNS",
    "SWITCH_MARKERS",
    "Span",
    "Trace",
    "answer_spans",
    "number_spans",
    "read_trace",
    "trace_stats",
    "with_responses",
]
