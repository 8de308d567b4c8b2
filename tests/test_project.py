"""The project's own promises: environment.yml agrees with pyproject.toml; CI = README; each
test in one place, in a file named after a room of mmlab/ or a declared cross-cutting suite."""

from __future__ import annotations

import ast
import re
import tomllib
from collections import Counter, defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"llama-cpp-python": "llama-cpp-python"}
TESTS = ROOT / "tests"
#: The test files not named after a room of mmlab/, and what each one is for. Every other
#: tests/test_<name>.py is named after a module or package of mmlab/ (see `_rooms`).
SUITES = {
    "trust": "one test per hole a hostile review found (issue 11), budget and key holes included",
    "security": "the key never leaks: database, bundles, logs, reprs, errors, CLI, notebooks",
    "reliability": "fault storms, kill and resume, many writers, budgets under faults (slow)",
    "realwire": "reply shapes seen in real recorded traffic, served verbatim",
    "bad_input": "the table of bad inputs: a clear error, nothing sent, nothing written",
    "budget": "every budget and reservation behaviour, whichever room enforces it",
    "keys": "the one API-key policy (endpoints/resolve.py), for every way to name an endpoint",
    "notebooks": "the shipped notebooks, replayed under nbval (marked notebook)",
    "browser": "JupyterLab driven in headless Chromium (marked browser)",
    "architecture": "the rules between modules that ARCHITECTURE.md states",
    "project": "the project's own promises, this file",
}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge", "nodefaults"]
    deps = env["dependencies"]
    conda = {_name(d) for d in deps if isinstance(d, str)}
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    assert python.replace("python", "").lstrip("=>") == project["requires-python"].lstrip(">=")
    assert "pip" in conda
    for req in project["dependencies"]:
        assert _name(req) in conda, f"{req} is in pyproject.toml but not environment.yml"
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    extras = set(re.search(r"\[(.*)\]", pip[0]).group(1).split(","))
    assert pip[0].startswith("-e") and extras == {"local", "test", "dev"}
    assert extras <= set(project["optional-dependencies"])


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme.split("\n## ")[0]  # the opening two commands
    assert re.search(r"^\s*make test\s*$", ci, re.M)


def _rooms() -> set[str]:
    """Every package and module of mmlab/ a test file may be named after: ``engine``,
    ``sweep``, ``sweep_files``, and a submodule's bare name where it is unambiguous
    (``forecast``, ``embedded``; not ``files``, which store/ and sweep/ both have)."""
    package = ROOT / "mmlab"
    rooms: set[str] = set()
    stems: Counter[str] = Counter()
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).with_suffix("").parts
        if parts[-1].startswith("_"):  # __init__, __main__, private modules
            continue
        rooms.add("_".join(parts))
        rooms.update(parts[:-1])  # the packages
        stems[parts[-1]] += 1
    return rooms | {stem for stem, count in stems.items() if count == 1}


def test_every_test_file_is_named_after_a_room_or_a_declared_suite():
    names = {path.stem.removeprefix("test_") for path in TESTS.glob("test_*.py")}
    stray = names - _rooms() - set(SUITES)
    assert stray == set(), f"name these after a room of mmlab/ or declare them in SUITES: {stray}"
    assert set(SUITES) <= names, f"declared but missing: {set(SUITES) - names}"


def test_each_test_is_in_one_place():
    files = defaultdict(list)
    for path in sorted(TESTS.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test"
            ):
                files[node.name].append(path.name)
    shared = {name: where for name, where in files.items() if len(where) > 1}
    assert shared == {}, f"test functions sharing a name: {shared}"
