"""Parameter spaces: the points a sweep visits. ``a | b`` concatenates, ``a * b`` crosses.

    grid(temperature=[0.0, 1.0], max_tokens=[256, 1024])     every combination
    zip_(temperature=[0.2, 0.8], top_p=[0.9, 0.95])          values taken in parallel
    random_(n=20, seed=0, temperature=(0, 2), top_k=[0, 40])  seeded random points
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import RequestError, did_you_mean
from ..params import NAMES


class Space:
    """A list of parameter points. ``a | b`` concatenates, ``a * b`` crosses."""

    def points(self) -> list[dict[str, Any]]:
        """The points, in a deterministic order."""
        raise NotImplementedError

    def size(self) -> int:
        """How many points, counted without making them where the space knows how (grid,
        zip_, random_ and their combinations do): a sweep checks its size first."""
        return len(self.points())

    def __or__(self, other: Space) -> Space:
        return _Concat(self, other)

    def __mul__(self, other: Space) -> Space:
        return _Product(self, other)

    def __len__(self) -> int:
        return self.size()

    def __repr__(self) -> str:
        return f"{type(self).__name__.strip('_')}({self.size()} points)"


def _check_axes(kind: str, axes: Mapping[str, Any]) -> None:
    if not axes:
        raise RequestError(f"{kind}() needs at least one parameter axis", field="params")
    for name, values in axes.items():
        if name not in NAMES:
            raise RequestError(
                f"{kind}(): unknown parameter {name!r}{did_you_mean(name, NAMES)} (allowed: "
                f"{', '.join(NAMES)})",
                field=name,
            )
        if kind != "random_" and (
            isinstance(values, str | bytes | Mapping) or not isinstance(values, Sequence)
        ):
            raise RequestError(f"{kind}(): {name} must be a list of values", field=name)
        if kind != "random_" and len(values) == 0:
            raise RequestError(f"{kind}(): {name} has no values (an empty grid)", field=name)


@dataclass(repr=False)
class _Grid(Space):
    axes: dict[str, list[Any]]

    def size(self) -> int:
        return math.prod(len(v) for v in self.axes.values())

    def points(self) -> list[dict[str, Any]]:
        names = list(self.axes)
        return [
            dict(zip(names, combo, strict=True)) for combo in itertools.product(*self.axes.values())
        ]


@dataclass(repr=False)
class _Zip(Space):
    axes: dict[str, list[Any]]

    def size(self) -> int:
        return len(next(iter(self.axes.values())))

    def points(self) -> list[dict[str, Any]]:
        names = list(self.axes)
        return [
            dict(zip(names, combo, strict=True)) for combo in zip(*self.axes.values(), strict=True)
        ]


@dataclass(repr=False)
class _Random(Space):
    axes: dict[str, Any]
    n: int
    seed: int

    def size(self) -> int:
        return self.n

    def points(self) -> list[dict[str, Any]]:
        rng = random.Random(self.seed)
        out = []
        for _ in range(self.n):
            point = {}
            for name, spec in self.axes.items():
                if isinstance(spec, tuple) and len(spec) == 2:
                    lo, hi = spec
                    if isinstance(lo, int) and isinstance(hi, int) and not isinstance(lo, bool):
                        point[name] = rng.randint(lo, hi)
                    else:
                        point[name] = round(rng.uniform(float(lo), float(hi)), 3)
                else:
                    point[name] = rng.choice(list(spec))
            out.append(point)
        return out


@dataclass(repr=False)
class _Concat(Space):
    a: Space
    b: Space

    def size(self) -> int:
        return self.a.size() + self.b.size()

    def points(self) -> list[dict[str, Any]]:
        return self.a.points() + self.b.points()


@dataclass(repr=False)
class _Product(Space):
    a: Space
    b: Space

    def size(self) -> int:
        return self.a.size() * self.b.size()

    def points(self) -> list[dict[str, Any]]:
        return [{**p, **q} for p in self.a.points() for q in self.b.points()]


def grid(**axes: Sequence[Any]) -> Space:
    """Every combination of the given values: ``grid(temperature=[0, 1], max_tokens=[256])``."""
    _check_axes("grid", axes)
    return _Grid({k: list(v) for k, v in axes.items()})


def zip_(**axes: Sequence[Any]) -> Space:
    """Values taken in parallel (all lists the same length)."""
    _check_axes("zip_", axes)
    lengths = {len(v) for v in axes.values()}
    if len(lengths) != 1:
        raise RequestError(
            f"zip_(): every list must have the same length; got "
            f"{ {k: len(v) for k, v in axes.items()} }",
            field="params",
        )
    return _Zip({k: list(v) for k, v in axes.items()})


def random_(*, n: int, seed: int = 0, **axes: Any) -> Space:
    """`n` random points: a ``(lo, hi)`` tuple samples a range (ints stay ints), a list is
    sampled uniformly. Deterministic for a given `seed`."""
    _check_axes("random_", axes)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise RequestError(f"random_(): n must be an integer >= 1; got {n!r}", field="n")
    for name, spec in axes.items():
        ok = (isinstance(spec, tuple) and len(spec) == 2) or (
            isinstance(spec, list) and len(spec) > 0
        )
        if not ok:
            raise RequestError(
                f"random_(): {name} must be a (lo, hi) tuple or a non-empty list", field=name
            )
    return _Random(dict(axes), n, seed)


def size_of(params: Any) -> int:
    """How many points `params` (anything `points_of` takes) has, counted without making them:
    a grid of ten 100-value axes is 10**20 points, known at once."""
    if isinstance(params, Space):
        return params.size()
    if isinstance(params, Mapping):
        return grid(**params).size()
    if isinstance(params, Sequence) and not isinstance(params, str):
        return len(params)
    return 1  # None: one empty point (anything else: points_of says what is wrong)


def points_of(params: Any) -> list[dict[str, Any]]:
    """The points of a space, a dict of lists (a grid), a list of dicts, or None (one empty
    point: the fixed parameters only)."""
    if params is None:
        return [{}]
    if isinstance(params, Space):
        points = params.points()
    elif isinstance(params, Mapping):
        points = grid(**params).points()
    elif isinstance(params, Sequence) and not isinstance(params, str):
        points = [dict(p) for p in params]
    else:
        raise RequestError(
            "params must be grid(...), zip_(...), random_(...), a dict of "
            "lists, or a list of dicts",
            field="params",
        )
    if not points:
        raise RequestError("the parameter space is empty", field="params")
    return points
