"""What goes in a report, and its header: `write` — a notebook with its bundle, a bundle
alone, or a tag's calls from the log — to one HTML file, written whole or not at all.

Every report opens with a header: title, when it was written, mmlab's version, the
endpoints and models asked (and the providers and models that served them, where those
differ), totals (calls, tokens by class, cost, cache hits and imports where a log says so),
the bundle's sha256 and the commands that reproduce it. A notebook report then shows the
notebook; a bundle or tag report summary figures; every report ends with the call browser.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shlex
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..bundle import export_bundle, read_bundle
from ..config import default_db_path
from ..errors import BundleError, ConfigError
from ..record import bundle_path
from ..store import Store
from ..store.files import replace_atomically
from .calls import Call, calls_from_entries, calls_from_log, parameters, payload, totals
from .figures import summary_figures
from .notebook import render_notebook
from .page import page
from .sanitize import Scrubber, esc


@dataclass(frozen=True, slots=True)
class Written:
    """What `write` wrote."""

    path: Path
    """The report."""
    kind: str
    """notebook | bundle | tag."""
    calls: int
    """Calls in its browser."""
    figures: int
    """Figures drawn (the notebook's and the summary's)."""
    size: int
    """Bytes written."""
    sha256: str | None
    """The bundle's sha256 (the file's: ``sha256sum``), None when there is none."""

    def __str__(self) -> str:
        return (
            f"wrote {self.path.name} ({self.size / 2**20:.1f} MB): {self.kind} report, "
            f"{self.calls} calls, {self.figures} figures"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _bundle_tag(path: Path) -> str | None:
    """The tag a (verified) bundle's header names."""
    with gzip.open(path, "rb") as f:
        header = json.loads(f.readline(1 << 16) or b"{}")
    tag = header.get("tag") if isinstance(header, dict) else None
    return tag if isinstance(tag, str) else None


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _distinct(calls: Sequence[Call], name: str, details: bool = False) -> list[str]:
    seen = ((c.details if details else c.values).get(name) for c in calls)
    return sorted({str(v) for v in seen if v is not None})


def _fact(label: str, value: str, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f"<dt>{esc(label)}</dt><dd{klass}>{value}</dd>"


def _list(values: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(f"<code>{esc(v)}</code>" for v in values[:limit])
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return (shown + more) if values else "—"


def header_html(
    *,
    title: str,
    kind: str,
    source: str,
    calls: Sequence[Call],
    bundle: str | None,
    sha256: str | None,
    commands: Sequence[tuple[str, str]],
    notes: Sequence[str] = (),
) -> str:
    """The report's header (every value escaped here)."""
    t = totals(calls)
    facts = [_fact("source", f"{esc(kind)} <code>{esc(source)}</code>")]
    facts.append(_fact("endpoints", _list(_distinct(calls, "endpoint", details=True))))
    facts.append(_fact("models", _list(_distinct(calls, "model"))))
    served = _distinct(calls, "served_model")
    if served and served != _distinct(calls, "model"):
        facts.append(_fact("models that answered", _list(served)))
    providers = _distinct(calls, "provider")
    if providers:
        facts.append(_fact("providers", _list(providers)))
    errors = f" ({t['errors']} failed)" if t["errors"] else ""
    facts.append(_fact("calls", f"{t['calls']:,}{errors}"))
    cached = f" · cached {t['cached_tokens']:,}" if t["cached_tokens"] else ""
    facts.append(_fact(
        "tokens",
        f"prompt {t['prompt_tokens']:,} · reasoning {t['reasoning_tokens']:,} · answer "
        f"{t['answer_tokens']:,} (completion {t['completion_tokens']:,}){cached}",
    ))  # fmt: skip
    unknown = f" ({t['cost_unknown']} of unknown cost)" if t["cost_unknown"] else ""
    sources = set(_distinct(calls, "cost_source", details=True))
    if calls and not t["cost_usd"] and sources == {"local"}:
        facts.append(_fact("cost", "$0: a local model"))
    else:
        facts.append(_fact("cost", f"${t['cost_usd']:,.6f} to produce{unknown}"))
    if t["spent_usd"] is not None:
        facts.append(_fact("spent", f"${t['spent_usd']:,.6f} by these calls (hits spend $0)"))
    no_log = "— (a bundle holds answers, not the log of calls)"
    facts.append(_fact("cache hits", no_log if t["cache_hits"] is None else f"{t['cache_hits']:,}"))
    facts.append(_fact("imported", no_log if t["imported"] is None else
                       f"{t['imported']:,} answered from bundles"))  # fmt: skip
    created = [c.details["created"] for c in calls if c.details.get("created")]
    if created:
        span = _when(min(created))
        span += "" if _when(max(created)) == span else f" – {_when(max(created))}"
        facts.append(_fact("recorded", esc(span)))
    _, fixed = parameters(calls)
    if fixed:
        shown = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in fixed.items()]
        facts.append(_fact("fixed parameters", _list(shown, 12)))
    if bundle is not None:
        digest = f" · sha256 <code>{esc(sha256)}</code>" if sha256 else " (not found)"
        facts.append(_fact("bundle", f"<code>{esc(bundle)}</code>{digest}", "mm-sha"))
    lines = "\n".join(f"{cmd}   # {why}" for cmd, why in commands)
    facts.append(_fact("reproduce", f'<pre class="mm-cmd">{esc(lines)}</pre>'))
    for note in notes:
        facts.append(_fact("note", esc(note)))
    written = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<header class="mm-header">'
        f"<h1>{esc(title)}</h1>"
        f'<p class="mm-sub">written {esc(written)} by mmlab {esc(__version__)} · opens offline, '
        "anywhere: no server, no network</p>"
        f'<dl class="mm-facts">{"".join(facts)}</dl></header>'
    )


def _nav(sections: Sequence[tuple[str, str]], calls: int) -> str:
    links = "".join(f'<a href="#{sid}">{esc(label)}</a>' for sid, label in sections)
    return f'<nav class="mm-nav">{links}<a href="#calls">Calls ({calls:,})</a></nav>'


def _calls_section(calls: Sequence[Call], why_none: str) -> str:
    empty = f' data-empty="{esc(why_none)}"' if not calls else ""
    return (
        '<section id="calls" class="mm-section"><h2>Calls</h2>'
        f'<div id="mm-browser" data-count="{len(calls)}"{empty}>'
        f'<p class="mm-loading">{esc(why_none) if not calls else f"Loading {len(calls):,} calls…"}'
        "</p></div><noscript><p>The call browser needs JavaScript (the figures too).</p>"
        "</noscript></section>"
    )


def _summary(calls: Sequence[Call]) -> tuple[str, list[dict[str, Any]]]:
    figures, notes = summary_figures(calls)
    # the first (calls by group) has long labels: it takes the whole width
    cells = "".join(
        f'<div class="mm-fig{" mm-wide" if i == 0 else ""}" data-fig="{i}" role="img" '
        f'aria-label="summary figure {i + 1}"></div>'
        for i in range(len(figures))
    )
    lines = "".join(f'<p class="mm-note">{esc(n)}</p>' for n in notes)
    hint = '<p class="mm-note">Click a bar to list its calls below.</p>' if figures else ""
    html = (f'<section id="summary" class="mm-section"><h2>Summary</h2>{hint}'
            f'<div class="mm-grid">{cells}</div>{lines}</section>')  # fmt: skip
    return html, figures


def _resolve(source: str | os.PathLike[str] | None, tag: str | None) -> tuple[str, Path | None]:
    if tag is not None:
        if source is not None:
            raise ConfigError("report either a source (notebook or bundle) or a tag, not both")
        return "tag", None
    if source is None:
        raise ConfigError("report needs a source: a notebook, a bundle, or tag=NAME")
    path = Path(source)
    if path.suffix == ".ipynb":
        if not path.is_file():
            raise ConfigError(f"notebook {path.name} does not exist")
        return "notebook", path
    if not path.is_file():
        raise BundleError(f"bundle {path.name} does not exist")
    return "bundle", path


@dataclass
class _Study:
    """What one kind of source gives a report."""

    calls: list[Call]
    title: str
    source: str
    why_none: str
    commands: list[tuple[str, str]]
    bundle: str | None = None
    sha256: str | None = None
    body: str = ""
    figures: list[dict[str, Any]] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)


def _notebook(src: Path, out: str, scrub: Scrubber, title: str | None) -> _Study:
    import nbformat

    bundle = bundle_path(src)
    calls, sha, why = [], None, f"No calls: {bundle.name} is not beside the notebook."
    if bundle.is_file():
        calls, sha = calls_from_entries(read_bundle(bundle), scrub), _sha256(bundle)
        why = "This notebook's bundle holds no calls."
    try:
        nb = nbformat.reads(src.read_text("utf-8"), as_version=4)
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{src.name} is not a readable notebook ({type(exc).__name__})") from None
    rendered = render_notebook(nb, src.name, scrub)
    q = shlex.quote  # names in the commands are pasted into a shell: quoted, whatever they are
    replay = (
        f"MMLAB_CACHE=replay MMLAB_BUNDLE={q(bundle.name)} jupyter nbconvert --to notebook "
        f"--execute {q(src.name)} --output {q(src.stem + '.replayed.ipynb')}"
    )
    return _Study(
        calls=calls,
        title=title or rendered.title or src.stem,
        source=src.name,
        why_none=why,
        commands=[
            (replay, "rerun every cell from the bundle, no network"),
            (f"mmlab report {q(src.name)} -o {q(out)}", "this report"),
        ],  # fmt: skip
        bundle=bundle.name,
        sha256=sha,
        body=f'<section id="analysis" class="mm-section mm-notebook">{rendered.html}</section>',
        figures=rendered.figures,
        sections=[("analysis", "Analysis")],
    )


def _bundle(src: Path, out: str, scrub: Scrubber, title: str | None) -> _Study:
    calls = calls_from_entries(read_bundle(src), scrub)
    q = shlex.quote
    name = scrub.label(_bundle_tag(src)) or src.name
    return _Study(
        calls=calls,
        title=title or f"{name} — {len(calls):,} calls",
        source=src.name,
        why_none="This bundle holds no calls.",
        commands=[
            (f"mmlab bundle import {q(src.name)}", "its answers into your cache (idempotent)"),
            (
                f"MMLAB_CACHE=replay MMLAB_BUNDLE={q(src.name)} python analysis.py",
                "the study's own code, answered from the bundle, no network",
            ),
            (f"mmlab report {q(src.name)} -o {q(out)}", "this report"),
        ],  # fmt: skip
        bundle=src.name,
        sha256=_sha256(src),
    )


def _tag(store: Store, tag: str, out: str, scrub: Scrubber, title: str | None) -> _Study:
    calls, sha, name = _from_log(store, tag, scrub)
    q = shlex.quote
    return _Study(
        calls=calls,
        title=title or f"{scrub.label(tag)} — {len(calls):,} calls",
        source=scrub.label(tag) or "",
        why_none=f"No calls are logged under {tag!r}.",
        commands=[
            (
                f"mmlab bundle export --tag {q(tag)} -o {q(name)}",
                "the bundle of these calls (the same bytes: the sha256 above)",
            ),
            (
                f"MMLAB_CACHE=replay MMLAB_BUNDLE={q(name)} python analysis.py",
                "the study's own code, answered from the bundle, no network",
            ),
            (f"mmlab report --tag {q(tag)} -o {q(out)}", "this report"),
        ],  # fmt: skip
        bundle=name,
        sha256=sha,
    )


def write(
    source: str | os.PathLike[str] | None,
    path: str | os.PathLike[str],
    *,
    tag: str | None = None,
    db: str | os.PathLike[str] | None = None,
    title: str | None = None,
) -> Written:
    """Write the report of `source` — a notebook (its bundle ``NAME.bundle.jsonl.gz`` beside
    it), a bundle — or of the calls tagged `tag` in the log at `db` (default: ``MMLAB_DB`` or
    the data dir) to `path`: one self-contained HTML file (see `mmlab.report`).

    A damaged bundle raises `BundleError` and writes nothing; a notebook without a bundle is
    reported with an empty call browser. The file appears only complete (a private
    temporary renamed over `path`), mode 0600.
    """
    kind, src = _resolve(source, tag)
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{target} is a folder: give the report a file name (study.html)")
    if src is not None and target.resolve() in (src.resolve(), bundle_path(src).resolve()):
        raise ConfigError(f"the report would overwrite its own source {src.name}")
    scrub = Scrubber([target.parent] + ([src.parent] if src is not None else []))
    if src is not None and kind == "notebook":
        study = _notebook(src, target.name, scrub, title)
    elif src is not None:
        study = _bundle(src, target.name, scrub, title)
    else:
        store = Store(db if db is not None else default_db_path())
        study = _tag(store, str(tag), target.name, scrub, title)
    body = [study.body] if study.body else []
    if kind != "notebook":
        summary, study.figures = _summary(study.calls)
        body.append(summary)
        study.sections.append(("summary", "Summary"))
    body.append(_calls_section(study.calls, study.why_none))
    header = header_html(
        title=study.title,
        kind=kind,
        source=study.source,
        calls=study.calls,
        bundle=study.bundle,
        sha256=study.sha256,
        commands=[(scrub.label(c) or "", why) for c, why in study.commands],
    )
    meta = {"kind": kind, "title": study.title, "count": len(study.calls)}
    data = page(
        title=study.title,
        header=header + _nav(study.sections, len(study.calls)),
        body="\n".join(body),
        figures=study.figures,
        calls=payload(study.calls),
        meta=meta,
    ).encode("utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    with replace_atomically(target) as f:
        f.write(data)
    return Written(target, kind, len(study.calls), len(study.figures), len(data), study.sha256)


def _from_log(store: Store, tag: str, scrub: Scrubber) -> tuple[list[Call], str | None, str]:
    """The calls tagged `tag` (or below), with their cache entries; the sha256 of the bundle
    ``mmlab bundle export --tag`` would write of them (byte-identical for the same calls)."""
    name = f"{tag.replace('/', '-')}.bundle.jsonl.gz"
    log = store.calls_frame(tag)
    if not len(log):
        raise ConfigError(f"no calls are logged under the tag {tag!r}")
    entries: dict[str, Any] = {}
    sha = None
    with tempfile.TemporaryDirectory(prefix="mmlab-report-") as tmp:
        bundle = Path(tmp) / name
        try:
            export_bundle(store, bundle, tag=tag, allow_missing=True)
        except BundleError:
            pass  # no call left a cache entry (all failed, or cleared): the log still reports
        else:
            sha = _sha256(bundle)
            for entry in read_bundle(bundle):
                entries.setdefault(entry["key"], entry)
    return calls_from_log(log, entries, scrub), sha, name


__all__ = ["Written", "header_html", "write"]
