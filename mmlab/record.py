"""``mmlab record NOTEBOOK``: re-run a notebook live and rewrite its outputs and bundle.

The notebook runs under papermill (its ``parameters`` cell honoured) against the current
endpoint — the embedded model, or MiniMax M1 when ``OPENROUTER_API_KEY`` is set — and the
user's own database (``MMLAB_DB``, else the project's default): its live calls are logged
there like any other (``mmlab usage`` shows them, budgets count them) and calls already in
the cache are reused, not paid again (``refresh`` forgets the notebook's cached answers
first). Every call a notebook makes is tagged with the notebook's name, so its bundle is
exported by that tag — restricted to this run's calls, so it holds exactly the answers the
notebook showed, fresh or reused. The executed notebook (outputs kept, papermill's
timestamps dropped) and its bundle are replayed together under nbval against a fresh
database to prove the pair reruns offline, and only then replace the originals; the run
ends by saying what it sent and spent ("N live calls, $X").
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .bundle import export_bundle
from .config import OPENROUTER_URL, default_db_path
from .errors import ConfigError, MmlabError
from .figures import add_static_views, renderer_ready
from .store import Store


def bundle_path(notebook: Path) -> Path:
    """Where a notebook's bundle lives: beside it, ``NAME.bundle.jsonl.gz``."""
    return notebook.with_name(f"{notebook.stem}.bundle.jsonl.gz")


#: The mime type of a plotly figure in a notebook output.
FIGURE = "application/vnd.plotly.v1+json"


def _clean(executed: Path, target: Path, keep: Path | None = None) -> None:
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    if keep is not None:
        # the live run's outputs stay where the code is unchanged and the output is neither
        # data nor a figure (figures are drawn from the data by mmlab's own plotting code)
        old = {c.source: c for c in nbformat.read(keep, as_version=4).cells}
        for cell in nb.cells:
            before = old.get(cell.source)
            if (
                cell.cell_type == "code"
                and before is not None
                and before.get("outputs")
                and "NBVAL_CHECK_OUTPUT" not in cell.source
                and not any(FIGURE in o.get("data", {}) for o in before.outputs)
            ):
                cell.outputs = before.outputs
                cell.execution_count = before.execution_count
    # papermill's own error banner cells, if a cell raised
    nb.cells = [c for c in nb.cells if "papermill-error-cell-tag" not in c.metadata.get("tags", [])]
    nb.metadata.pop("papermill", None)
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    lang = nb.metadata.get("language_info", {})
    lang.pop("version", None)  # the patch version is noise in diffs
    for cell in nb.cells:
        for key in ("papermill", "execution"):
            cell.metadata.pop(key, None)
        if cell.cell_type == "code" and cell.outputs:
            # a stored traceback would be a recorded failure, not a result
            errors = [o for o in cell.outputs if o.get("output_type") == "error"]
            tags = cell.metadata.get("tags", [])
            if errors and "raises-exception" not in tags:
                raise MmlabError(
                    f"{target.name}: a cell failed while recording:\n"
                    f"{errors[0].get('ename')}: {errors[0].get('evalue')}"
                )
    # readers without a kernel (GitHub, nbviewer) see every figure and widget
    add_static_views(nb, previous=nbformat.read(keep, as_version=4) if keep else None)
    nbformat.write(nb, target)


def record_notebook(
    path: str | os.PathLike[str],
    *,
    cache: str = "use",
    verify: bool = True,
    from_bundle: bool = False,
    only_data: bool = False,
    parameters: dict[str, Any] | None = None,
    db: str | os.PathLike[str] | None = None,
    refresh: bool = False,
) -> Path:
    """Execute `path` live, rewrite it with outputs, write its bundle; returns the bundle.

    Live calls go to `db` (default: ``MMLAB_DB``, else the project's database, as every
    other command) and calls already cached there are reused; `refresh` (or
    ``cache="refresh"``) first forgets the cached answers of the notebook's earlier calls —
    those no other tag shares — so its calls are made afresh. The bundle holds exactly the
    calls of this run (the notebook's tag, logged since it started).

    `from_bundle=True` re-executes from the existing bundle instead (replay in a scratch
    database: no network, the bundle is kept): how outputs are refreshed after the analysis
    code changes. `parameters` override the notebook's ``parameters`` cell (papermill
    injects them after it). `only_data` (with `from_bundle`): refresh only the data cells
    (``NBVAL_CHECK_OUTPUT``), figures and cells whose code changed, keeping the live run's
    other outputs (progress, timings, cache status) — how outputs follow a change in mmlab's
    own tables and plots.

    Nothing is overwritten until the new pair is complete and (`verify`) replays under
    nbval: notebook and bundle are written to a staging folder beside the originals, checked
    there, and only then moved into place, bundle first. A failed cell, a crash or a full
    disk leaves the old pair as it was — and the calls made so far in the database, where a
    rerun reuses them.
    """
    import papermill

    notebook = Path(path).resolve()
    if not notebook.is_file() or notebook.suffix != ".ipynb":
        raise ConfigError(f"not a notebook: {path}")
    if cache not in ("use", "refresh"):
        raise ConfigError(f"record's cache must be 'use' or 'refresh'; got {cache!r}")
    tag = notebook.stem
    bundle = bundle_path(notebook)
    if from_bundle and not bundle.is_file():
        raise ConfigError(f"{notebook.name} has no bundle to replay ({bundle.name})")
    if only_data and not from_bundle:
        raise ConfigError("only_data refreshes a notebook from its bundle: use it with from_bundle")
    renderer_ready()  # figures' images need kaleido and Chromium: say so before the run
    store = None if from_bundle else Store(Path(db) if db is not None else default_db_path())
    if store is not None and (refresh or cache == "refresh"):
        forgot = store.cache_clear(tag)
        print(f"refresh: forgot {forgot} cached answer(s) of tag {tag!r} (those no other "
              "tag uses)", file=sys.stderr)  # fmt: skip
    started = time.time()
    # Beside the originals, so the final moves are renames within one filesystem.
    staging = Path(tempfile.mkdtemp(prefix=".mmlab-record-", dir=notebook.parent))
    ok = False
    try:
        staged_nb, staged_bundle = staging / notebook.name, staging / bundle.name
        with tempfile.TemporaryDirectory(prefix="mmlab-record-") as tmp:
            target = Path(tmp) / "record.db" if store is None else store.path
            executed = Path(tmp) / notebook.name
            how = "from its bundle" if from_bundle else f"live, logging to {target}"
            print(f"recording {notebook.name} {how} (tag {tag!r}) ...", file=sys.stderr)
            mode = "replay" if from_bundle else "use"
            # answers imported from bundles never answer a recording, whatever the shell says
            with _environment(MMLAB_DB=str(target), MMLAB_CACHE=mode, MMLAB_TRUST_IMPORTS="0"):
                try:
                    papermill.execute_notebook(
                        str(notebook),
                        str(executed),
                        cwd=str(notebook.parent),
                        kernel_name="python3",
                        progress_bar=False,
                        parameters=parameters or {},
                    )
                except papermill.PapermillExecutionError:
                    pass  # every cell ran; _clean() accepts only errors tagged raises-exception
            _clean(executed, staged_nb, keep=notebook if only_data else None)
            if store is None:
                shutil.copy2(bundle, staged_bundle)
            else:
                info = export_bundle(store, staged_bundle, tag=tag, since=started)
        if verify:
            verify_replay(staged_nb)
        if not from_bundle:
            os.replace(staged_bundle, bundle)
        os.replace(staged_nb, notebook)
        ok = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if store is not None:
            live, spent = store.live_calls(tag, started)
            kept = "" if ok else f" (logged in {store.path}: a rerun reuses their answers)"
            print(f"{live} live calls, ${spent:.4f}{kept}", file=sys.stderr)
    if from_bundle:
        print(f"wrote {notebook.name} (bundle unchanged)", file=sys.stderr)
    else:
        print(
            f"wrote {notebook.name} and {bundle.name} ({info['count']} cached calls)",
            file=sys.stderr,
        )
    return bundle


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables (and drop MMLAB_BUNDLE) for the block, then restore them."""
    names = (*values, "MMLAB_BUNDLE")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(values)
    os.environ.pop("MMLAB_BUNDLE", None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def nbval_command(*paths: Path, extra: tuple[str, ...] = ()) -> list[str]:
    """How notebooks are checked (as `make test` does): nbval, lax, in this interpreter."""
    return [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--nbval-lax",
        "--nbval-current-env",
        *extra,
        *map(str, paths),
    ]


def verify_replay(notebook: Path) -> None:
    """Run the notebook under nbval, replaying from its bundle; raise if it does not pass."""
    with tempfile.TemporaryDirectory(prefix="mmlab-verify-") as tmp:
        env = {**os.environ, "MMLAB_CACHE": "replay", "MMLAB_DB": str(Path(tmp) / "v.db")}
        if env.pop("OPENROUTER_API_KEY", None):
            # Replay needs the endpoint's identity, never the key.
            env["MMLAB_BASE_URL"] = OPENROUTER_URL
        out = subprocess.run(
            nbval_command(notebook),
            env=env,
            capture_output=True,
            text=True,
            cwd=notebook.parent,
        )
    if out.returncode != 0:
        raise MmlabError(f"{notebook.name} does not replay from its bundle:\n{out.stdout[-3000:]}")
    print(f"verified: {notebook.name} replays offline under nbval", file=sys.stderr)
