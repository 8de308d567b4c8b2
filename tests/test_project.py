"""The project's own promises: environment.yml agrees with pyproject.toml; CI = README."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"llama-cpp-python": "llama-cpp-python"}


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
