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


# --- the layers ARCHITECTURE.md lists are the layers the code has ---------------------------
LAYER = re.compile(r"^\d+\. \*\*(?P<name>[^*]+)\*\*[^:]*: (?P<mods>.+)$")


def _layer_index() -> dict[str, int]:
    text = (PKG.parent / "ARCHITECTURE.md").read_text().split("## Layers", 1)[1]
    index: dict[str, int] = {}
    n = 0
    for line in text.splitlines():
        m = LAYER.match(line.strip())
        if m:
            for mod in re.findall(r"`([\w_]+)`", m["mods"]):
                assert mod not in index, f"{mod} is listed in two layers"
                index[mod] = n
            n += 1
    return index


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_import_goes_down_the_layers_architecture_md_lists():
    layer = _layer_index()
    mods = _modules()
    tops = {_top(m) for m in mods} - {""}
    assert sorted(tops - set(layer)) == [], "modules ARCHITECTURE.md puts in no layer"
    assert sorted(set(layer) - tops) == [], "ARCHITECTURE.md lists modules that do not exist"
    upward = []
    for name, path in mods.items():
        here = _top(name)
        if not here:
            continue  # the package's own __init__: the lazy public face
        for dep in _imports(name, path, mods):
            there = _top(dep)
            if there and there != here and layer[there] > layer[here]:
                upward.append(f"{name} imports {dep} (layer {layer[there]} > {layer[here]})")
    assert upward == []
    # and the check bites: an import the list forbids is caught
    assert layer["engine"] < layer["sweep"] < layer["lab"]


# --- private names stay home ---------------------------------------------------------------
#: Underscore names that are other libraries' public API (IPython's display protocol, the
#: namedtuple API, os._exit in a forked child).
FOREIGN_PROTOCOL = {"_repr_mimebundle_", "_repr_html_", "_replace", "_asdict", "_fields",
                    "_make", "_exit", "_repr_pretty_", "_ipython_display_"}  # fmt: skip


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name not in FOREIGN_PROTOCOL


def test_no_private_name_is_used_across_modules():
    crossings = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                for alias in node.names:
                    if _private(alias.name):
                        crossings.append(f"{rel}:{node.lineno} imports {alias.name}")
            elif isinstance(node, ast.Attribute) and _private(node.attr):
                base = node.value
                # self._x / cls._x are the object's own; anything else reaches into another's
                if isinstance(base, ast.Name) and base.id in ("self", "cls"):
                    continue
                crossings.append(f"{rel}:{node.lineno} uses .{node.attr}")
    # private *modules* of a package (widgets/_common.py) are imported within the package
    assert crossings == []


def test_the_private_name_check_bites(tmp_path):
    tree = ast.parse("from .store import _Writer\nx = other._secret\nself._mine = 1\n")
    found = [n for n in ast.walk(tree)
             if (isinstance(n, ast.ImportFrom) and any(_private(a.name) for a in n.names))
             or (isinstance(n, ast.Attribute) and _private(n.attr)
                 and not (isinstance(n.value, ast.Name) and n.value.id == "self"))]  # fmt: skip
    assert len(found) == 2


# --- the public face -----------------------------------------------------------------------
def test_every_public_submodule_works_after_a_bare_import_and_stays_lazy():
    import mmlab

    code = (
        "import sys, mmlab\n"
        "heavy = lambda: [m for m in ('pandas', 'httpx', 'plotly', 'numpy') if m in sys.modules]\n"
        "assert mmlab.stop.decided(by='t') is not None and heavy() == [], heavy()\n"
        f"mods = {list(mmlab.SUBMODULES)!r}\n"
        "for m in mods:\n"
        "    assert getattr(mmlab, m).__name__ == 'mmlab.' + m\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
    # every submodule the README writes as mmlab.<name> is one of them
    readme = (PKG.parent / "README.md").read_text()
    named = set(re.findall(r"\bmmlab\.([a-z_]+)\b", readme))
    modules = {p.stem if p.suffix else p.name for p in PKG.iterdir()
               if not p.name.startswith("_") and (p.suffix == ".py" or p.is_dir())}  # fmt: skip
    assert sorted((named & modules) - set(mmlab.SUBMODULES)) == []


def test_public_names_are_listed_once_and_the_type_checkers_copy_agrees():
    import mmlab

    tree = ast.parse((PKG / "__init__.py").read_text())
    checking = next(n for n in tree.body if isinstance(n, ast.If)
                    and getattr(n.test, "id", None) == "TYPE_CHECKING")  # fmt: skip
    typed = {}
    for node in ast.walk(checking):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                typed[alias.asname or alias.name] = "mmlab." + node.module
    assert typed == mmlab._EXPORTS  # noqa: SLF001 - the list the test keeps in sync
    assert mmlab.__all__ == sorted(mmlab._EXPORTS)  # noqa: SLF001


def test_sweeps_go_through_the_engine_never_the_store():
    # one lookup path: a sweep's cells, forecasts and the adaptive scheduler read the cache
    # only through Engine.lookup_many / Engine.status / Engine.length_observations
    named = []
    for path in (PKG / "sweep").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "store":
                named.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and node.module and "store" in node.module:
                named.append(f"{path.name}:{node.lineno} imports {node.module}")
    assert named == []


def test_lab_is_not_an_engine_and_shows_only_what_the_readme_documents():
    from mmlab import Lab
    from mmlab.engine import Engine

    assert not issubclass(Lab, Engine)
    public = {n for n in dir(Lab) if not n.startswith("_")}
    readme = (PKG.parent / "README.md").read_text()
    undocumented = sorted(n for n in public
                          if not any(s in readme for s in (f"lab.{n}", f".{n}(", f"`{n}`")))
    assert undocumented == [], f"Lab shows names the README never mentions: {undocumented}"
