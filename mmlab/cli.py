"""The ``mmlab`` command.

    mmlab chat "What is 17*23?" --effort high --max-tokens 2000
    mmlab usage --by day
    mmlab cache stats | mmlab cache clear [--tag T]
    mmlab sweep sweep.yaml -o results.parquet [--yes] [--allow-outside-paths]
    mmlab bundle export --tag T -o study.bundle.jsonl.gz | mmlab bundle import FILE
    mmlab record notebooks/01_quickstart.ipynb
    mmlab report notebooks/06_test_time_scaling.ipynb -o 06.html | --tag T -o study.html
    mmlab serve-local [--port N]

Exit codes: 0 ok, 1 the endpoint failed, 2 bad input or configuration (nothing was sent).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .bundle import export_bundle, import_bundle, read_bundle
from .config import CACHE_MODES, default_db_path, normalize_base_url
from .endpoints import Embedded, is_openrouter_url
from .endpoints.llama_process import serve_forever
from .errors import APIError, ConfigError, MmlabError, RequestError, did_you_mean
from .lab import Lab
from .params import BY_NAME, EFFORTS
from .pricing import reprice_usage
from .record import record_notebook
from .redaction import redact
from .report import write as write_report
from .result import M1
from .store import SUMMARY_GROUPS, Store
from .sweep import load_sweep_file, stop_from_spec, sweep_from_spec

#: The request parameters offered as ``mmlab chat`` flags (declared in `mmlab.params`).
CLI_PARAMS = tuple(p.name for p in BY_NAME.values() if p.cli is not None)


class Parser(argparse.ArgumentParser):
    """mmlab's argument parser, for the command and every subcommand (``add_subparsers``
    makes its subparsers of the parser's own class): no abbreviations — ``--max-token`` is
    not silently ``--max-tokens`` —, and an option a subcommand does not know is refused by
    that subcommand, with its usage and the closest option it has ("did you mean
    --temperature?"), not by the top-level parser. The parser that read the subcommand's
    arguments is left on the namespace as ``command_parser``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Parse, refusing any argument this parser (or its subcommand's) does not know."""
        namespace, extras = super().parse_known_args(args, namespace)
        if getattr(namespace, "command_parser", None) is None:
            namespace.command_parser = self  # the innermost parser sets it first
        if extras:
            options = list(self._option_string_actions)
            hints = "".join(did_you_mean(x.split("=")[0], options) for x in extras
                            if x.startswith("-"))  # fmt: skip
            self.error(f"unrecognized arguments: {' '.join(extras)}{hints}")
        return namespace, extras


#: The help of every ``--db`` and ``--cache`` option.
DB_HELP = "the SQLite file of cache and log (default: MMLAB_DB, else the project's or data dir)"
CACHE_HELP = (
    "use: answer from the cache, else call and cache; refresh: always call; replay: the "
    "cache only, a miss is an error; off: no cache (default: MMLAB_CACHE, else use)"
)


def _usage_error(args: argparse.Namespace, message: str) -> int:
    """A command used wrongly: its usage line and ``mmlab CMD: error: message`` on stderr, exit
    status 2 (as argparse says it)."""
    args.command_parser.print_usage(sys.stderr)
    print(f"{args.command_parser.prog}: error: {message}", file=sys.stderr)
    return 2


def _lab_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("endpoint and storage")
    g.add_argument("--model", help="model id (default: MMLAB_MODEL or the endpoint's default)")
    g.add_argument("--base-url", help="OpenAI-compatible endpoint (default: see README)")
    g.add_argument("--db", help=DB_HELP)
    g.add_argument("--cache", choices=CACHE_MODES, help=CACHE_HELP)
    g.add_argument("--budget", type=float, dest="budget_usd", help="spend cap in USD")
    g.add_argument("--tag", help="label stored with each call (scopes the budget)")


def _make_lab(args: argparse.Namespace, **extra: Any) -> Lab:
    return Lab(
        model=args.model,
        base_url=args.base_url,
        db=args.db,
        cache=args.cache,
        budget_usd=args.budget_usd,
        tag=args.tag,
        **extra,
    )


def _print_frame(df: Any) -> None:
    import pandas as pd

    with pd.option_context(
        "display.width", 200, "display.max_columns", 30, "display.max_colwidth", 40
    ):
        print(df.to_string(index=False) if len(df) else "(nothing logged)")


def cmd_chat(args: argparse.Namespace) -> int:
    """Ask once; print the answer and what it cost."""
    lab = _make_lab(args)
    params: dict[str, Any] = {
        name: getattr(args, name) for name in CLI_PARAMS if getattr(args, name) is not None
    }
    if args.effort or args.reasoning_max_tokens:
        params["reasoning"] = (
            {"effort": args.effort} if args.effort else {"max_tokens": args.reasoning_max_tokens}
        )

    shown = {"reasoning": False, "content": False}

    def show(delta: tuple[str, str]) -> None:
        kind, text = delta
        if kind == "reasoning" and args.show_reasoning:
            if not shown["reasoning"]:
                print("[reasoning]", flush=True)
            shown["reasoning"] = True
            print(text, end="", flush=True)
        elif kind == "content":
            if shown["reasoning"] and not shown["content"]:
                print("\n[answer]", flush=True)
            shown["content"] = True
            print(text, end="", flush=True)
        elif kind == "reset":  # the stream failed and is retried from the start
            shown.update(reasoning=False, content=False)
            print("\n[the stream was interrupted and is retried; the answer starts over]",
                  flush=True)  # fmt: skip

    r = lab.chat(
        args.prompt,
        system=args.system,
        stream=args.stream,
        sample=args.sample,
        on_delta=show if args.stream else None,
        **params,
    )
    if args.json:
        print(json.dumps(r.summary(), indent=2))
        return 0
    if not args.stream or r.cache_hit:
        if args.show_reasoning and r.reasoning:
            print(f"[reasoning]\n{r.reasoning}\n[answer]")
        print(r.content if r.content else "(no answer: " + str(r.finish_reason) + ")")
    else:
        print()
    u = r.usage
    cost = "unknown" if r.cost_usd is None else f"${r.cost_usd:.6f} ({r.cost_source})"
    if lab.endpoint.capabilities.free:  # what the same tokens cost where money is spent
        cost += f" ≈ ${r.cost_at(M1):.6f} on {M1}"
    status = (
        f"cache hit — spent $0, saved ${r.saved_usd:.6f}"
        if r.cache_hit
        else f"cache {lab.cache_mode if lab.cache_mode != 'use' else 'miss'}"
    )
    print(
        f"--\nreasoning: {u.reasoning_tokens} tokens · tokens: prompt {u.prompt_tokens}, "
        f"completion {u.completion_tokens} (reasoning {u.reasoning_tokens}) · cost {cost} · "
        f"{status} · {r.latency_s or 0:.2f} s" + (" · TRUNCATED" if r.truncated else ""),
        file=sys.stderr if args.quiet_stats else sys.stdout,
    )
    return 0


def _existing_store(db: str | None) -> Store | None:
    """The database `db` names (default: ``MMLAB_DB`` or the project's) if it exists, else
    None after saying so: a command that only reads creates no database."""
    path = Path(db).expanduser() if db else default_db_path()
    if not path.exists():
        print(f"(nothing logged: no database at {path})")
        return None
    return Store(path)


def cmd_usage(args: argparse.Namespace) -> int:
    """Totals of the usage log (`--reprice MODEL`: also at that model's list prices)."""
    store = _existing_store(args.db)
    if store is None:
        return 0
    if args.reprice is None:
        _print_frame(store.usage_summary(args.by, args.tag))
        return 0
    df = reprice_usage(store.usage_summary(args.by, args.tag, hit_tokens=True), args.reprice)
    _print_frame(df.drop(columns=["hit_prompt_tokens", "hit_completion_tokens"]))
    sent = int((df["calls"] - df["hits"] - df["errors"]).sum())
    print(
        f"{df.attrs['reprice']}: the {sent} calls sent would have cost "
        f"${df['repriced_spent_usd'].sum():.4f}; the cache's {int(df['hits'].sum())} hits "
        f"saved ${df['repriced_saved_usd'].sum():.4f}"
    )
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    """Cache statistics, or clear it."""
    if args.action == "clear" and sum((args.tag is not None, args.all, args.imported)) != 1:
        return _usage_error(
            args, "cache clear needs one of --tag T (entries only that tag's calls used), "
            "--imported (entries from bundles) or --all"
        )
    store = _existing_store(args.db)
    if store is None:
        return 0
    if args.action == "stats":
        import pandas as pd

        rows, hits, calls = store.cache_stats()
        df = pd.DataFrame(rows, columns=["endpoint", "model", "entries", "bytes"])
        _print_frame(df)
        print(
            f"{int(df['entries'].sum()) if len(df) else 0} entries; "
            f"{hits} of {calls} logged calls were hits"
        )
        return 0
    n = store.cache_clear(None if args.all else args.tag, imported=args.imported)
    print(f"cleared {n} cache entries (the usage log is kept)")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check the set-up end to end: endpoint, database, and one real generation."""
    import time

    lab = _make_lab(args, quiet=True)
    print(f"endpoint : {lab.endpoint.label}")
    print(f"model    : {lab.model}")
    print(f"identity : {lab.endpoint.identity}")
    print(
        f"database : {lab.db} (cache {lab.cache_mode}; paid rows "
        f"synchronous={lab.engine.store.durability()})"
    )
    if lab.cache_mode == "replay":
        print("replay mode: no network check")
        return 0
    started = time.perf_counter()
    r = lab.chat(
        "Say hello in three words.",
        max_tokens=16,
        temperature=0.0,
        seed=0,
        sample=int(time.time()),
        tag="mmlab-doctor",
    )
    took = time.perf_counter() - started
    print(
        f"generate : {r.usage.completion_tokens} tokens in {took:.2f} s "
        f"({r.cost_source} cost {r.cost_usd if r.cost_usd is not None else '?'}): "
        f"{r.content.strip()[:60]!r}"
    )
    if isinstance(lab.endpoint, Embedded) and lab.endpoint.server.ready_s is not None:
        print(f"embedded : llama.cpp server ready in {lab.endpoint.server.ready_s:.2f} s")
    print("ok")
    return 0


def cmd_serve_local(args: argparse.Namespace) -> int:
    """Run the embedded model's server in the foreground."""
    serve_forever(args.port)
    return 0


def _confirm_file_endpoint(file: str, url: str, *, yes: bool, plan: bool) -> None:
    """A sweep file that names its own endpoint sends its prompts wherever its author chose:
    say so on stderr, and go on only with ``--yes`` or a yes typed at a terminal (`plan`
    sends nothing, so it only says so). Refusing raises `ConfigError` before the lab (and
    its database) exists: nothing is sent, nothing is written."""
    print(
        f"mmlab: the sweep file {file} chooses its own endpoint: {url}\n"
        "mmlab: running it sends the sweep's prompts to that server"
        + ("" if is_openrouter_url(url) else " (no API key goes with them)"),
        file=sys.stderr,
    )
    if yes or plan:
        return
    if not sys.stdin.isatty():
        raise ConfigError(
            f"the sweep file chose the endpoint {url}; pass --yes to send its prompts there "
            "(or --plan to see the plan first). Nothing was sent"
        )
    print(f"Send the prompts to {url}? [y/N] ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise ConfigError(f"not confirmed: nothing was sent to {url}")


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run a sweep file (YAML or TOML): plan, forecast, run with a progress bar, write."""
    spec = load_sweep_file(args.file, allow_outside_paths=args.allow_outside_paths)
    output = args.output
    if output is not None and Path(output).suffix not in (".parquet", ".csv"):
        raise ConfigError(f"output must end in .parquet or .csv; got {output}")
    if spec.get("base_url") is not None:
        url = normalize_base_url(spec["base_url"])  # refuses credentials without echoing them
        _confirm_file_endpoint(args.file, url, yes=args.yes, plan=args.plan)
    db = Path(args.db).expanduser() if args.db else default_db_path()
    with contextlib.ExitStack() as scratch:
        if args.plan and not db.exists():
            # a plan only reads: with no database yet, it reads an empty scratch one
            db = Path(scratch.enter_context(tempfile.TemporaryDirectory())) / "plan.db"
        lab = Lab(model=spec.get("model"), base_url=spec.get("base_url"), db=db,
                  cache=args.cache)  # fmt: skip
        sweep = sweep_from_spec(spec, lab.engine)
        stop = stop_from_spec(spec.get("stop"))
        print(sweep)
        print(sweep.forecast(retry_errors=args.retry_errors, stop=stop))
        if args.plan:
            lab.close()
            return 0
    res = sweep.run(
        concurrency=args.concurrency or int(spec.get("concurrency", 8)),
        budget_usd=args.budget_usd if args.budget_usd is not None else spec.get("budget_usd"),
        retry_errors=args.retry_errors,
        stop=stop,
    )
    print(res.stats)
    if output:
        out = Path(output)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".parquet":
            res.df.to_parquet(out, index=False)
        else:
            res.df.to_csv(out, index=False)
        print(f"wrote {len(res.df)} rows to {out}")
    return 0 if res.complete else 3


def cmd_bundle(args: argparse.Namespace) -> int:
    """Export or import a bundle."""
    if args.action == "export":
        tag = args.tag or args.notebook
        if not tag or not args.output:
            return _usage_error(
                args, "needs --tag T (a script's calls) or --notebook N (a notebook's), and -o FILE"
            )
        store = _existing_store(args.db)
        if store is None:
            return 2
        info = export_bundle(
            store, args.output, tag=_notebook_tag(tag), allow_missing=args.allow_missing
        )
        print(f"wrote {info['count']} cached calls to {args.output} (sha256 {info['sha256'][:12]})")
        if info["missing"]:
            print(
                f"mmlab: {info['missing']} call(s) had no cache entry any more and are not in "
                "the bundle",
                file=sys.stderr,
            )
        return 0
    if not args.file:
        return _usage_error(
            args, "bundle import needs a FILE: mmlab bundle import study.bundle.jsonl.gz"
        )
    entries = read_bundle(args.file)  # a rejected file is refused before any database exists
    store = Store(Path(args.db).expanduser() if args.db else default_db_path())
    info = import_bundle(store, args.file, entries=entries)
    print(f"imported {info['added']} new of {info['count']} cached calls from {args.file}")
    return 0


def _notebook_tag(name: str) -> str:
    return Path(name).stem if name.endswith(".ipynb") else name


def cmd_record(args: argparse.Namespace) -> int:
    """Re-execute a notebook live and rewrite its bundle and outputs."""
    import yaml

    parameters = {}
    for item in args.param or []:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            print(f"mmlab: error: --param takes NAME=VALUE; got {item!r}", file=sys.stderr)
            return 2
        parameters[key] = yaml.safe_load(value)  # 3 → int, [1, 2] → list, text → str
    for nb in args.notebooks:
        record_notebook(
            nb,
            cache=args.cache,
            from_bundle=args.from_bundle,
            only_data=args.only_data,
            parameters=parameters,
            db=args.db,
            refresh=args.refresh,
        )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write one self-contained HTML report of a notebook, a bundle or a tag's calls."""
    if (args.source is None) == (args.tag is None):
        print(
            "mmlab: error: report needs a SOURCE (a notebook or a bundle) or --tag NAME, "
            "not both: mmlab report study.bundle.jsonl.gz -o study.html",
            file=sys.stderr,
        )
        return 2
    info = write_report(args.source, args.output, tag=args.tag, db=args.db, title=args.title)
    print(f"{info}; open it in any browser, offline")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = Parser(prog="mmlab", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("chat", help="ask once; print answer, reasoning length, tokens, cost")
    p.add_argument("prompt", help="the user message (quote it)")
    p.add_argument("--system", help="a system message sent before the prompt")
    for name in CLI_PARAMS:
        param = BY_NAME[name]
        p.add_argument(
            "--" + name.replace("_", "-"),
            type=param.cli,
            dest=name,
            help=f"{param.doc} ({param.allowed})",
        )
    p.add_argument("--effort", choices=EFFORTS, help="reasoning effort")
    p.add_argument(
        "--reasoning-max-tokens", type=int, dest="reasoning_max_tokens",
        help="a cap on reasoning tokens (OpenRouter's reasoning.max_tokens)",
    )  # fmt: skip
    p.add_argument("--stream", action="store_true", help="print the answer as it arrives")
    p.add_argument("--sample", type=int, default=0, help="sample index (distinct cache entry)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--show-reasoning",
        action="store_true",
        dest="show_reasoning",
        help="print the model's reasoning before the answer (not only its length)",
    )
    p.add_argument("--quiet-stats", action="store_true", help="stats line to stderr")
    _lab_args(p)
    p.set_defaults(fn=cmd_chat)

    p = sub.add_parser("usage", help="totals by day / model / tag: calls, tokens, spent, saved")
    p.add_argument("--by", choices=SUMMARY_GROUPS, default="day", help="one row per (default: day)")
    p.add_argument("--tag", help="only the calls logged under this tag (and below it)")
    p.add_argument("--db", help=DB_HELP)
    p.add_argument(
        "--reprice",
        metavar="MODEL",
        help=f"also price the log at MODEL's list prices (e.g. {M1}): what the calls sent "
        "would have cost and what the cache saved",
    )
    p.set_defaults(fn=cmd_usage)

    p = sub.add_parser("cache", help="cache stats | clear")
    p.add_argument("action", choices=["stats", "clear"],
                   help="stats: entries, size and hits; clear: drop entries (--tag, --all, "
                   "--imported)")  # fmt: skip
    p.add_argument("--tag", help="clear only entries calls with this tag used")
    p.add_argument("--all", action="store_true", help="clear every entry")
    p.add_argument(
        "--imported", action="store_true", help="clear the entries imported from bundles"
    )
    p.add_argument("--db", help=DB_HELP)
    p.set_defaults(fn=cmd_cache)

    p = sub.add_parser("sweep", help="run a sweep defined in a YAML/TOML file")
    p.add_argument("file", help="the sweep file (.yaml, .yml or .toml; README: Sweep files)")
    p.add_argument("-o", "--output", help="results file (.parquet or .csv)")
    p.add_argument("--db", help=DB_HELP)
    p.add_argument(
        "--cache", choices=["use", "replay"],
        help="use: cached cells are free, the rest are sent; replay: the cache only",
    )  # fmt: skip
    p.add_argument("--budget", type=float, dest="budget_usd",
                   help="spend cap in USD for this run (default: MMLAB_BUDGET_USD)")  # fmt: skip
    p.add_argument(
        "--concurrency", type=int, help="calls in flight at once (default: the file's, else 8)"
    )
    p.add_argument("--plan", action="store_true", help="print plan and forecast; send nothing")
    p.add_argument(
        "--retry-errors", action="store_true", dest="retry_errors",
        help="send again the cells whose last attempt failed (default: keep them failed)",
    )  # fmt: skip
    p.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="send to the endpoint the sweep file names (base_url) without asking",
    )
    p.add_argument(
        "--allow-outside-paths",
        action="store_true",
        dest="allow_outside_paths",
        help="let the sweep file read files outside its own folder (absolute, '..', symlinks)",
    )
    p.set_defaults(fn=cmd_sweep)

    p = sub.add_parser("bundle", help="export / import the cached calls of an analysis")
    actions = p.add_subparsers(dest="action", required=True, metavar="{export,import}")
    q = actions.add_parser(
        "export",
        help="write the cached calls of a tag (a script's) or a notebook to a bundle file",
        description="Write the cache entries the calls tagged T (or a notebook's) used to a "
        "bundle: a script's calls by its tag (Lab(tag=...)), a notebook's by its name.",
    )
    q.add_argument("--tag", help="export the calls logged under this tag (and below it)")
    q.add_argument("--notebook", help="export the calls a notebook made (its tag)")
    q.add_argument("-o", "--output", help="the bundle file to write (.bundle.jsonl.gz)")
    q.add_argument(
        "--allow-missing",
        action="store_true",
        dest="allow_missing",
        help="export even if some calls' cache entries were cleared (they are left out)",
    )
    q.add_argument("--db", help=DB_HELP)
    q.set_defaults(fn=cmd_bundle)
    q = actions.add_parser(
        "import",
        help="load a bundle's cached calls into the database (checked first)",
        description="Load a bundle into the cache: every entry is checked before anything "
        "is written, and a rejected file creates no database.",
    )
    q.add_argument("file", nargs="?", help="bundle to import")
    q.add_argument("--db", help=DB_HELP)
    q.set_defaults(fn=cmd_bundle)

    p = sub.add_parser("record", help="re-run notebooks live; rewrite their bundles and outputs")
    p.add_argument(
        "notebooks", nargs="+", help="the .ipynb files to record (their bundles beside them)"
    )
    p.add_argument("--cache", choices=["use", "refresh"], default="use",
                   help="refresh: the same as --refresh (default: use)")  # fmt: skip
    p.add_argument(
        "--refresh",
        action="store_true",
        help="forget the notebook's cached answers and make its calls afresh (default: "
        "reuse what the database has cached)",
    )
    p.add_argument("--db", help="the database live calls are logged to (default: MMLAB_DB "
                   "or the project's)")  # fmt: skip
    p.add_argument(
        "-p",
        "--param",
        action="append",
        metavar="NAME=VALUE",
        help="override a parameters-cell value (YAML), e.g. -p MAX_TOKENS=[64,256]",
    )
    p.add_argument(
        "--from-bundle",
        action="store_true",
        dest="from_bundle",
        help="refresh outputs by replaying the existing bundle (no network)",
    )
    p.add_argument(
        "--only-data",
        action="store_true",
        dest="only_data",
        help="with --from-bundle: refresh only data cells (NBVAL_CHECK_OUTPUT), figures and "
        "changed code",
    )
    p.set_defaults(fn=cmd_record)

    p = sub.add_parser(
        "report", help="one HTML file anyone can open: the analysis and a browser over its calls"
    )
    p.add_argument("source", nargs="?", help="a notebook (its bundle beside it) or a bundle")
    p.add_argument("--tag", help="report the calls logged under this tag instead")
    p.add_argument("-o", "--output", required=True, help="the .html file to write")
    p.add_argument("--title", help="the report's title (default: the notebook's first heading)")
    p.add_argument("--db", help="with --tag: the database (default: MMLAB_DB or the data dir)")
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("doctor", help="check endpoint, database and one real generation")
    _lab_args(p)
    p.set_defaults(fn=cmd_doctor)

    p = sub.add_parser("serve-local", help="run the embedded model's server in the foreground")
    p.add_argument("--port", type=int, help="the loopback port to serve on (default: a free one)")
    p.set_defaults(fn=cmd_serve_local)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mmlab`` command."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except APIError as exc:
        print(f"mmlab: endpoint error: {exc}", file=sys.stderr)
        return 1
    except RequestError as exc:  # bad input to the subcommand: its usage, as argparse does
        return _usage_error(args, str(exc))
    except MmlabError as exc:
        print(f"mmlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mmlab: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug, not bad input: show it, without any key a server echoed
        print(redact(traceback.format_exc()), file=sys.stderr, end="")
        return 1


if __name__ == "__main__":
    sys.exit(main())
