"""The shipped problem set: arithmetic and short word problems with exact answers.

Four difficulty levels, 12 problems each, generated deterministically by `generate` (the
shipped ``data/problems.jsonl`` is its output; a test keeps the two identical and checks
every answer). Nothing is downloaded.

    1  one-digit addition            "What is 7 + 5?"
    2  two-digit addition/subtraction "What is 83 - 29?"
    3  multiplication                "What is 23 × 14?"
    4  multi-step word problems      "A baker makes 24 rolls, sells 9, then bakes 15 more. ..."
"""

from __future__ import annotations

import importlib.resources
import json
import random
from typing import TYPE_CHECKING, Any

from .errors import RequestError

if TYPE_CHECKING:
    import pandas as pd

LEVELS = {
    1: "one-digit addition",
    2: "two-digit addition and subtraction",
    3: "multiplication",
    4: "multi-step word problems",
}
PER_LEVEL = 12
_WORD = [
    (
        "A baker makes {a} rolls, sells {b}, then bakes {c} more. How many rolls does the baker "
        "have now?",
        lambda a, b, c: a - b + c,
    ),
    (
        "A library has {a} books. It lends out {b} and receives {c} as gifts. How many books "
        "are in the library?",
        lambda a, b, c: a - b + c,
    ),
    (
        "Sam buys {b} packs of {c} stickers and already had {a} stickers. How many stickers "
        "does Sam have?",
        lambda a, b, c: a + b * c,
    ),
    (
        "A train carries {a} people. At the first stop {b} get off and {c} get on. How many "
        "people are on the train?",
        lambda a, b, c: a - b + c,
    ),
]


def generate(seed: int = 2026) -> list[dict[str, Any]]:
    """Build the problem set (deterministic for a seed)."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []

    def add(level: int, kind: str, prompt: str, answer: int) -> None:
        out.append(
            {
                "id": f"L{level}-{sum(1 for p in out if p['difficulty'] == level) + 1:02d}",
                "difficulty": level,
                "kind": kind,
                "prompt": prompt,
                "answer": str(answer),
            }
        )

    for _ in range(PER_LEVEL):
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        add(1, "addition", f"What is {a} + {b}?", a + b)
    for i in range(PER_LEVEL):
        a, b = rng.randint(21, 99), rng.randint(11, 89)
        if i % 2:
            a, b = max(a, b), min(a, b)
            add(2, "subtraction", f"What is {a} - {b}?", a - b)
        else:
            add(2, "addition", f"What is {a} + {b}?", a + b)
    for _ in range(PER_LEVEL):
        a, b = rng.randint(12, 49), rng.randint(3, 19)
        add(3, "multiplication", f"What is {a} × {b}?", a * b)
    for i in range(PER_LEVEL):
        template, solve = _WORD[i % len(_WORD)]
        a, b, c = rng.randint(20, 60), rng.randint(2, 9), rng.randint(3, 19)
        add(4, "word", template.format(a=a, b=b, c=c), solve(a, b, c))
    return out


def load_problems(
    difficulty: int | list[int] | None = None, per_level: int | None = None
) -> pd.DataFrame:
    """The problem set as a DataFrame (prompt_id, difficulty, kind, prompt, answer).

    `difficulty` keeps some levels; `per_level` keeps the first N problems of each level.
    """
    import pandas as pd

    text = importlib.resources.files("mmlab").joinpath("data/problems.jsonl").read_text()
    df = pd.DataFrame([json.loads(line) for line in text.splitlines() if line.strip()])
    df = df.rename(columns={"id": "prompt_id"})
    if difficulty is not None:
        levels = [difficulty] if isinstance(difficulty, int) else list(difficulty)
        unknown = [x for x in levels if x not in LEVELS]
        if unknown:
            raise RequestError(
                f"difficulty must be among {sorted(LEVELS)}; got {unknown}", field="difficulty"
            )
        df = df[df["difficulty"].isin(levels)]
    if per_level is not None:
        if isinstance(per_level, bool) or not isinstance(per_level, int) or per_level < 1:
            raise RequestError(
                f"per_level must be an integer >= 1; got {per_level!r}", field="per_level"
            )
        df = df.groupby("difficulty", sort=True).head(per_level)
    return df.reset_index(drop=True)
