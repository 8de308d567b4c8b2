"""Sweep files: a sweep defined in YAML or TOML (see README, "Sweep files"), parsed and built
into a `Sweep` for an engine. The ``mmlab sweep`` command runs them (`mmlab.cli`).

A sweep file is untrusted input (it may come from anyone): the files it names are read only
from its own folder — an absolute path, a ``..`` that leaves the folder or a symlink pointing
out of it is refused unless the caller allows it (``allow_outside_paths=True``; the CLI's
``--allow-outside-paths``), so a file cannot smuggle a private table into its prompts. That a
file naming its own endpoint (``base_url``) sends nothing without the user's yes is the CLI's
part (`mmlab.cli`).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import scorers
from ..errors import ConfigError, RequestError, did_you_mean
from ..problems import load_problems
from ..stop import Rule
from .spaces import Space, grid, random_, zip_
from .spec import Sweep

if TYPE_CHECKING:
    from ..engine import Engine

#: Settings a sweep file may hold.
SETTINGS = frozenset(
    {
        "model",
        "base_url",
        "tag",
        "prompts",
        "prompts_file",
        "problems",
        "system",
        "repeats",
        "params",
        "fixed",
        "scorer",
        "concurrency",
        "budget_usd",
        "stop",
    }
)

#: The stopping rules a sweep file's ``stop`` may name (`mmlab.stop`), with the setting a
#: bare number stands for.
STOP_RULES = {"decided": None, "ci_width": None, "budget": "usd", "max_repeats": "n"}


#: The parameter spaces a sweep file's ``params`` may combine.
SPACES = ("grid", "zip", "random")

#: The settings that name a file, read relative to the sweep file's folder.
PATH_SETTINGS = ("prompts_file",)


def load_sweep_file(path: str | Path, *, allow_outside_paths: bool = False) -> dict[str, Any]:
    """Read a YAML or TOML sweep definition (see README: "Sweep files").

    The files it names (``prompts_file``) must lie inside the sweep file's folder: an
    absolute path, a ``..`` escape or a symlink leading out is a `ConfigError` unless
    `allow_outside_paths`. Such settings come back resolved to absolute paths.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            import tomllib

            spec = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            spec = yaml.safe_load(text)
        else:
            raise ConfigError(f"sweep file must be .yaml, .yml or .toml; got {path.name}")
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - a parse error of either format
        raise ConfigError(f"sweep file {path} does not parse: {exc}") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"sweep file {path} must hold a mapping of settings")
    unknown = sorted(map(str, set(spec) - SETTINGS))
    if unknown:
        hints = "".join(did_you_mean(name, SETTINGS) for name in unknown)
        raise ConfigError(
            f"sweep file {path}: unknown setting(s) {unknown}{hints} (allowed: "
            f"{sorted(SETTINGS)})"
        )
    spec["_dir"] = str(path.parent)
    for name in PATH_SETTINGS:
        if name in spec:
            spec[name] = str(_inside_folder(path, name, spec[name], allow_outside_paths))
    return spec


def _inside_folder(sweep_file: Path, setting: str, value: Any, allow_outside: bool) -> Path:
    """The file `value` names, relative to `sweep_file`'s folder and resolved (symlinks
    followed); a `ConfigError` if it lies outside that folder, unless `allow_outside`."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"sweep file {sweep_file}: {setting} must be a file name relative to the sweep "
            f"file's folder; got {value!r}"
        )
    folder = sweep_file.parent.resolve()
    given = Path(value)
    target = (folder / given).resolve()  # an absolute `given` replaces the folder
    if allow_outside or target.is_relative_to(folder):
        return target
    if given.is_absolute():
        why = "is an absolute path"
    elif not Path(os.path.normpath(folder / given)).is_relative_to(folder):
        why = "leaves the folder with '..'"
    else:
        why = f"is reached through a symlink that points outside it (to {target})"
    raise ConfigError(
        f"sweep file {sweep_file}: {setting} {value!r} {why}; a sweep file may only read files "
        f"inside its own folder ({folder}). Nothing was read or sent. If you trust this file, "
        "pass --allow-outside-paths (Python: load_sweep_file(..., allow_outside_paths=True))"
    )


def _space_from_spec(raw: Any) -> Space | list[dict[str, Any]] | None:
    if raw is None:
        return None
    if isinstance(raw, list):
        return [dict(p) for p in raw]
    if not isinstance(raw, dict) or not raw:
        raise RequestError(
            "params must be a mapping with grid / zip / random, or a list of points", field="params"
        )
    spaces: list[Space] = []
    for kind, axes in raw.items():
        if kind == "grid":
            spaces.append(grid(**axes))
        elif kind == "zip":
            spaces.append(zip_(**axes))
        elif kind == "random":
            axes = dict(axes)
            n, seed = axes.pop("n", None), axes.pop("seed", 0)
            spaces.append(
                random_(
                    n=n,
                    seed=seed,
                    **{
                        k: tuple(v["range"]) if isinstance(v, dict) and "range" in v else v
                        for k, v in axes.items()
                    },
                )
            )
        else:
            raise RequestError(
                f"params: unknown space {kind!r}{did_you_mean(kind, SPACES)}; use grid, zip or "
                "random",
                field="params",
            )
    out = spaces[0]
    for s in spaces[1:]:
        out = out | s
    return out


def _prompts_from_spec(spec: Mapping[str, Any]) -> Any:
    import pandas as pd

    given = [k for k in ("prompts", "prompts_file", "problems") if k in spec]
    if len(given) != 1:
        raise RequestError(
            "a sweep file needs exactly one of prompts, prompts_file, problems", field="prompts"
        )
    if "prompts" in spec:
        return spec["prompts"]
    if "problems" in spec:
        return load_problems(**(spec["problems"] if isinstance(spec["problems"], dict) else {}))
    path = Path(spec.get("_dir", ".")) / spec["prompts_file"]
    if not path.is_file():
        raise ConfigError(f"prompts_file {path} does not exist")
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix in (".jsonl", ".json"):
        return pd.read_json(path, lines=path.suffix == ".jsonl")
    raise ConfigError(f"prompts_file must be .csv or .jsonl; got {path.name}")


def stop_from_spec(raw: Any) -> Rule | None:
    """The stopping rule of a sweep file's ``stop`` setting (None: a fixed run).

    ``stop`` maps rule names to their settings — a mapping of keyword arguments, or for
    ``budget`` and ``max_repeats`` a bare number — and the run stops when any of them says so
    (the rules combined with ``|``)::

        stop: {decided: {by: temperature}, budget: 2.0, max_repeats: 12}
    """
    from .. import stop

    if raw is None:
        return None
    if not isinstance(raw, dict) or not raw:
        raise RequestError(
            f"stop must be a mapping of rules ({', '.join(STOP_RULES)}) to their settings; "
            f"got {raw!r}",
            field="stop",
        )
    rules: list[Rule] = []
    for name, settings in raw.items():
        if name not in STOP_RULES:
            raise RequestError(
                f"stop: unknown rule {name!r}{did_you_mean(name, STOP_RULES)}; use "
                f"{', '.join(STOP_RULES)}",
                field="stop",
            )
        bare = STOP_RULES[name]
        if bare is not None and not isinstance(settings, dict):
            settings = {bare: settings}
        if not isinstance(settings, dict):
            raise RequestError(
                f"stop.{name} must be a mapping of settings; got {settings!r}", field="stop"
            )
        make = getattr(stop, name)
        try:
            rules.append(make(**settings))
        except TypeError as exc:  # an unknown or missing setting
            known = inspect.signature(make).parameters
            hints = "".join(did_you_mean(str(k), known) for k in settings if k not in known)
            raise RequestError(f"stop.{name}: {exc}{hints}", field="stop") from None
    out = rules[0]
    for r in rules[1:]:
        out = out | r
    return out


def sweep_from_spec(spec: Mapping[str, Any], engine: Engine) -> Sweep:
    """Build a Sweep from a parsed sweep file."""
    scorer = None
    if spec.get("scorer"):
        scorer = getattr(scorers, str(spec["scorer"]), None)
        if scorer is None or not callable(scorer):
            raise RequestError(
                f"unknown scorer {spec['scorer']!r}"
                f"{did_you_mean(str(spec['scorer']), scorers.__all__)}; known: "
                f"{', '.join(scorers.__all__)}",
                field="scorer",
            )
    return Sweep(
        engine,
        _prompts_from_spec(spec),
        _space_from_spec(spec.get("params")),
        repeats=spec.get("repeats", 1),
        tag=spec.get("tag"),
        system=spec.get("system"),
        scorer=scorer,
        fixed=spec.get("fixed") or {},
    )


