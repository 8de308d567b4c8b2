"""What keeps a report safe to open: every string from a study is untrusted.

A report is read by other people, and everything in it came from a bundle, a log or a notebook
someone else may have written: prompts, answers, reasoning, model and provider names, tags,
markdown with raw HTML, pandas tables. Four rules, one function each:

- text becomes HTML only through `esc` (the browser's JavaScript builds the call browser with
  ``textContent``, never ``innerHTML``);
- HTML from a study (markdown's raw HTML, ``text/html`` outputs, widget HTML) keeps only an
  allow-list of tags and attributes (`clean_html`, Ammonia through ``nh3``): no script, no
  event handler, no ``javascript:`` link, no style, no frame;
- JSON placed inside a ``<script>`` element is escaped so that no string can close it
  (`script_json`);
- no API key, absolute local path or user name leaves the machine (`Scrubber`).

The page's Content-Security-Policy (`mmlab.report.page`) is a second line: even a hole in the
above could run no script but the page's own two.
"""

from __future__ import annotations

import getpass
import html
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .. import jsonfast
from ..redaction import redact, redact_secrets

#: Tags study HTML may keep: text structure, tables, lists, images (data: URLs only, by the
#: page's policy), details. Nothing that runs, loads, embeds or submits.
TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del",
    "details", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
    "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strong",
    "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
})  # fmt: skip
#: Attributes kept, per tag ("*": every tag). No ``style`` and no ``on*``: `class` can only
#: name the report's own rules.
ATTRIBUTES = {
    "*": {"class", "title", "lang", "dir"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
    "ol": {"start"},
    "details": {"open"},
}
#: Link schemes kept (a ``javascript:`` or ``data:`` link loses its href); images are checked
#: separately (`safe_image_src`).
URL_SCHEMES = frozenset({"http", "https", "mailto"})
#: Image types a report shows inline (as ``data:`` URLs: no file beside the page). SVG is
#: shown through ``<img>``, where its scripts never run.
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml", "image/webp")
_DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/=\s]*$")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def esc(value: Any) -> str:
    """`value` as HTML text (quotes escaped too: safe in an attribute)."""
    return html.escape("" if value is None else str(value), quote=True)


def plain(text: str) -> str:
    """Terminal text as plain text: ANSI colour codes and control characters removed (a
    traceback, a progress bar's carriage returns)."""
    text = _ANSI.sub("", text)
    if "\r" in text:  # a progress bar redraws its line: keep what it showed last
        text = "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))
    return _CONTROL.sub("", text)


def safe_image_src(src: str) -> bool:
    """Whether an image source is an inline ``data:`` image of a type a report shows."""
    return bool(_DATA_IMAGE.match(src))


def _attribute(tag: str, name: str, value: str) -> str | None:
    if tag == "img" and name == "src":
        return value if safe_image_src(value) else None
    return value


def clean_html(fragment: str) -> str:
    """Study HTML reduced to the allow-list (`TAGS`, `ATTRIBUTES`, `URL_SCHEMES`): scripts,
    styles, frames, forms and event handlers go with their content; links get
    ``rel="noopener noreferrer"``; images must be inline data."""
    import nh3

    return nh3.clean(
        fragment,
        tags=set(TAGS),
        attributes={k: set(v) for k, v in ATTRIBUTES.items()},
        attribute_filter=_attribute,
        url_schemes=set(URL_SCHEMES),
        clean_content_tags={"script", "style", "template", "textarea", "title", "noscript"},
        strip_comments=True,
        link_rel="noopener noreferrer",
    )


def script_json(value: Any) -> str:
    """`value` as JSON that can sit inside a ``<script>`` element: ``<``, ``>``, ``&`` and the
    line separators U+2028/U+2029 are written as ``\\uXXXX``, so no string can end the element
    (``</script>``), open a comment or break a line in older parsers."""
    text = jsonfast.dumps(value)  # NaN and infinities become null: JSON.parse reads them
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


class Scrubber:
    """Removes what identifies the machine a report was written on: registered API keys (and
    key-shaped strings, in labels), absolute paths under the home folder, the temporary
    folder, the working folder and the folders given, and the user name inside paths.

    `text` is for a model's own words (only registered secrets are removed: an answer about
    ``sk-learn`` survives); `label` for names and outputs (key shapes and Bearer credentials
    too)."""

    def __init__(self, folders: Iterable[str | os.PathLike[str]] = ()) -> None:
        roots = {str(Path(f).resolve()) for f in folders}
        roots.add(str(Path.home()))
        roots.add(str(Path(tempfile.gettempdir()).resolve()))
        roots.add(tempfile.gettempdir())
        roots.add(os.getcwd())
        # the longest first: /home/u/project is named before /home/u
        self.roots = sorted((r for r in roots if len(r) > 1), key=len, reverse=True)
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no name for this uid (a container)
            user = ""
        names = [re.escape(r) for r in self.roots]
        if user:
            # a user's folder, wherever it is named: /home/<user>, /Users/<user>, C:\Users\<user>
            names.append(rf"(?:/home|/Users|[A-Za-z]:\\Users)[/\\]{re.escape(user)}(?![\w.-])")
        self.user = user
        self.pattern = re.compile(rf"(?:{'|'.join(names)})(?:[/\\][^\s'\"<>()`]*)?")
        self.needles = [*self.roots, *([user] if user else [])]
        self.labels: dict[str, str] = {}  # names repeat across calls: each is cleaned once

    def paths(self, text: str) -> str:
        """`text` with local absolute paths replaced by ``…`` (only when one may be there:
        cheap substring tests first: answers can be megabytes, and most hold no path)."""
        if ("/" not in text and "\\" not in text) or not any(n in text for n in self.needles):
            return text
        return self.pattern.sub("…", text)

    def text(self, text: str) -> str:
        """A model's words or a prompt: registered secrets and local paths removed."""
        return self.paths(redact_secrets(text))

    def label(self, value: Any) -> str | None:
        """A name, a label or an output line: secrets, key shapes and paths removed."""
        if value is None:
            return None
        text = str(value)
        clean = self.labels.get(text)
        if clean is None:
            clean = self.labels[text] = self.paths(redact(text))
        return clean


__all__ = [
    "ATTRIBUTES",
    "IMAGE_TYPES",
    "Scrubber",
    "TAGS",
    "URL_SCHEMES",
    "clean_html",
    "esc",
    "plain",
    "safe_image_src",
    "script_json",
]
