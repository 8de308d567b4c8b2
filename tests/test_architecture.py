"""The shape ARCHITECTURE.md promises, checked: no import cycles, SQL only in the store, one
declaration of request parameters, and `import mmlab` that stays lazy."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from mmlab import params, plots
from mmlab.cli import CLI_PARAMS
from mmlab.endpoints.embedded import local_body

PKG = Path(__file__).resolve().parents[1] / "mmlab"
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|PRAGMA|BEGIN|COMMIT)\b", re.I)


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PKG.rglob("*.py"):
        name = ".".join(path.relative_to(PKG.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Every mmlab module `name` imports — at the top, in functions, or for type checking."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    deps = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            target = ".".join(parts + ([node.module] if node.module else []))
            for cand in [target] + [f"{target}.{a.name}" for a in node.names]:
                while cand and cand not in mods:
                    cand = cand.rpartition(".")[0]
                if cand and cand != name and not (
                    path.name == "__init__.py" and cand.startswith(name + ".")
                ):
                    deps.add(cand)
    return deps


def test_no_import_cycles_not_even_in_functions_or_type_checking():
    mods = _modules()
    graph = {m: _imports(m, p, mods) for m, p in mods.items()}
    # a package's __init__ re-exporting its own modules is not a cycle
    for m, deps in graph.items():
        graph[m] = {d for d in deps if not (mods[d].name == "__init__.py" and m.startswith(d))}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d) :] + [d])
            elif d not in state:
                visit(d, stack)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert cycles == [], cycles


def test_sql_lives_only_in_the_store():
    offenders = []
    for path in PKG.rglob("*.py"):
        if path.is_relative_to(PKG / "store"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if SQL.match(node.value) and ("FROM" in node.value or "INTO" in node.value):
                    offenders.append(f"{path.relative_to(PKG)}:{node.lineno}")
    assert offenders == []


def test_request_parameters_are_declared_once():
    # validation, CLI flags, plot columns and the embedded server's field map all derive
    # from mmlab.params.PARAMS
    help_text = subprocess.run(
        [sys.executable, "-m", "mmlab", "chat", "--help"], capture_output=True, text=True
    ).stdout
    assert "--temperature" in help_text and "[0, 2]" in help_text
    assert set(CLI_PARAMS) == {p.name for p in params.PARAMS if p.cli is not None}
    assert plots.PARAM_COLUMNS == params.COLUMNS
    body = {"model": "m", "messages": [], "repetition_penalty": 1.1, "top_a": 0.2,
            "provider": {"only": ["x"]}, "temperature": 0.5}  # fmt: skip
    local = local_body(body, "m")
    assert local["repeat_penalty"] == 1.1 and local["temperature"] == 0.5
    assert "top_a" not in local and "provider" not in local


def test_import_mmlab_stays_lazy():
    code = (
        "import sys, mmlab; heavy = [m for m in ('pandas', 'httpx', 'plotly', 'numpy') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    # the Lab, its sweeps and its stopping rules load no numerics until they are used
    code = code.replace("import sys, mmlab;", "import sys; from mmlab import Lab, stop;")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "numpy" not in out.stdout and "pandas" not in out.stdout, out.stdout


def test_architecture_md_names_every_module():
    text = (PKG.parent / "ARCHITECTURE.md").read_text()
    missing = [
        str(p.relative_to(PKG))
        for p in PKG.rglob("*.py")
        if p.name != "__init__.py" and f"`{p.name}`" not in text
    ]
    assert missing == [], f"ARCHITECTURE.md does not say what these own: {missing}"
