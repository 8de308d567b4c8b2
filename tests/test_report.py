"""`mmlab.report`: one self-contained HTML file of a notebook, a bundle or a tag's calls.

What the file holds is checked here, in Python (its call data decoded from the page); that it
opens offline, draws every figure and runs no script from the study is checked in a real
browser (tests/test_browser.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import stat
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from helpers import (
    FAKE_KEY,
    HOSTILE,
    hostile_bundle,
    hostile_notebook,
    response,
    run_mmlab,
    write_bundle,
)

import mmlab
from mmlab import Lab, grid
from mmlab.bundle import export_bundle, read_bundle
from mmlab.errors import BundleError, ConfigError
from mmlab.redaction import register_secret
from mmlab.report import write
from mmlab.report.page import decompress
from mmlab.report.sanitize import Scrubber, clean_html, script_json
from mmlab.store.files import replace_atomically

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))


def calls_of(html: str) -> dict:
    """The call browser's data, as the page inflates it (table and texts joined)."""
    table = re.search(r'<script type="application/octet-stream" id="mm-calls"[^>]*>([^<]*)<', html)
    texts = re.search(r'<script type="application/octet-stream" id="mm-texts"[^>]*>([^<]*)<', html)
    return {**decompress(table.group(1)), **decompress(texts.group(1))}


def figures_of(html: str) -> list:
    return json.loads(re.search(r'id="mm-figures">(.*?)</script>', html, re.S).group(1))


def visible(html: str) -> str:
    """The report without plotly.js (whose minified code is not the report's text)."""
    return re.sub(r'<script type="text/plain" id="mm-plotly">.*?</script>', "", html, flags=re.S)


def markup(html: str) -> str:
    """The report's HTML without its script elements (its data and code)."""
    return re.sub(r"<script\b[^>]*>.*?</script>", "", html, flags=re.S)


def unsafe(html: str) -> list[str]:
    """Elements and attributes in `html` that could run or load something."""
    found = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag in ("script", "iframe", "svg", "object", "embed", "style", "form", "base"):
                found.append(tag)
            for name, value in attrs:
                if name.startswith("on") or (value or "").strip().lower().startswith(
                    ("javascript:", "vbscript:")
                ):
                    found.append(f"{tag} {name}={value}")
                if tag == "img" and name == "src" and not (value or "").startswith("data:image/"):
                    found.append(f"img src={value}")

    Parser().feed(markup(html))
    return [f for f in found if f != "style"]  # the page's own stylesheet


@pytest.fixture
def study(lab, tmp_path):
    """A small swept study on the stand-in, exported as a bundle."""
    sweep = lab.sweep(["What is 2 + 3?", "What is 7 + 5?"],
                      grid(temperature=[0.0, 1.0], max_tokens=[64, 256]), tag="study")  # fmt: skip
    sweep.run(concurrency=4)
    lab.chat("And 1 + 1?", max_tokens=64, tag="study")
    lab.chat("And 1 + 1?", max_tokens=64, tag="study")  # a cache hit
    path = tmp_path / "study.bundle.jsonl.gz"
    export_bundle(lab.engine.store, path, tag="study")
    lab.close()
    return path


# --- what a report holds -------------------------------------------------------------------
def test_a_bundle_report_lists_every_call_with_its_header_and_summary_figures(study, tmp_path):
    out = tmp_path / "out" / "study.html"
    info = write(study, out)
    html = out.read_text()
    entries = read_bundle(study)
    data = calls_of(html)
    assert info.kind == "bundle" and info.calls == len(entries) == 9 == len(data["ids"])
    assert sorted(data["ids"]) == sorted(e["key"][:16] for e in entries)
    names = [c["name"] for c in data["columns"]]
    assert names[:3] == ["prompt_id", "temperature", "max_tokens"]  # the swept parameters
    assert {"model", "reasoning_tokens", "cost_usd", "latency_s", "finish_reason"} <= set(names)
    assert all(data["reasoning"]) and all(data["answer"])
    # the header: what, when, with what, how much, which bundle, how to reproduce
    sha = hashlib.sha256(study.read_bytes()).hexdigest()
    assert info.sha256 == sha and sha in html
    assert f"mmlab {mmlab.__version__}" in html
    assert "MMLAB_CACHE=replay MMLAB_BUNDLE=study.bundle.jsonl.gz" in html
    assert "mmlab report study.bundle.jsonl.gz -o study.html" in html
    for fact in ("endpoints", "models", "tokens", "cache hits", "imported", "reproduce"):
        assert f"<dt>{fact}</dt>" in html
    # summary figures, every axis titled, each linked to the browser's columns
    figures = figures_of(html)
    titles = [f["layout"]["title"]["text"] for f in figures]
    assert titles[:2] == ["Calls by model and parameters", "Tokens by class"]
    assert {"Reasoning length per call", "Cost per call", "Finish reasons"} <= set(titles)
    for fig in figures:
        assert fig["layout"]["xaxis"]["title"]["text"], fig["layout"]["title"]
        for trace in fig["data"]:
            assert set(trace["meta"]["link"]) <= set(names)
    # one plotly.js, no CDN, figures without their own copy
    assert html.count('id="mm-plotly"') == 1 and "cdn.plot.ly" not in visible(html)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_a_tag_report_reads_the_log_and_names_the_bundle_export_would_write(study, lab, tmp_path):
    out = tmp_path / "tag.html"
    info = write(None, out, tag="study", db=lab.db)
    data = calls_of(out.read_text())
    assert info.kind == "tag" and info.calls == 10  # 9 misses and the hit: every logged call
    statuses = data["values"]["cache_status"]
    assert statuses.count("hit") == 1 and statuses.count("miss") == 9
    # the sha256 is the bundle `mmlab bundle export --tag study` writes (byte-identical)
    assert info.sha256 == hashlib.sha256(study.read_bytes()).hexdigest()
    html = out.read_text()
    assert "mmlab bundle export --tag study -o study.bundle.jsonl.gz" in html
    assert "cache hits</dt><dd>1</dd>" in html
    # Lab.report: the same, for the lab's tag
    tagged = Lab(endpoint=lab.endpoint, db=lab.db, tag="study", quiet=True)
    assert tagged.report(tmp_path / "lab.html").calls == 10
    with pytest.raises(ConfigError, match="tag"):
        Lab(endpoint=lab.endpoint, db=lab.db, quiet=True).report(tmp_path / "x.html")
    with pytest.raises(ConfigError, match="no calls"):
        write(None, tmp_path / "none.html", tag="nothing-here", db=lab.db)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_shipped_notebook_reports_with_its_calls_figures_and_widgets(notebook, tmp_path):
    out = tmp_path / f"{notebook.stem}.html"
    info = write(notebook, out)
    html = out.read_text()
    nb = nbformat.read(notebook, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    plotly = sum(1 for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {}))
    widgets = sum(1 for o in outputs
                  if "application/vnd.jupyter.widget-view+json" in o.get("data", {}))  # fmt: skip
    # every figure interactive (drawn by the page), every widget shown or named, never empty
    assert info.figures >= plotly and len(figures_of(html)) == info.figures
    assert html.count('class="mm-widget"') + html.count('class="mm-widget-missing"') == widgets
    # code folded: one <details> per code cell, none open
    code = sum(1 for c in nb.cells if c.cell_type == "code" and c.source.strip())
    assert html.count('<details class="mm-code">') == code and "<details open" not in html
    assert info.calls == len(read_bundle(notebook.with_name(f"{notebook.stem}.bundle.jsonl.gz")))
    assert "NBVAL_" not in visible(html)
    title = nb.cells[0].source.splitlines()[0].lstrip("# ")
    assert html.replace("&amp;", "&").count(f"<h1>{title}") == 1  # in the header, not twice


def test_a_notebook_without_its_bundle_still_reports(tmp_path):
    nb = tmp_path / "alone.ipynb"
    nb.write_text((ROOT / "notebooks" / "01_quickstart.ipynb").read_text())
    info = write(nb, tmp_path / "alone.html")
    html = (tmp_path / "alone.html").read_text()
    assert info.calls == 0 and info.sha256 is None
    assert "No calls: alone.bundle.jsonl.gz is not beside the notebook." in html
    assert calls_of(html)["ids"] == []


def test_notebook_cells_render_markdown_outputs_and_saved_widgets(tmp_path):
    nb = nbformat.v4.new_notebook()
    png = (
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5"
        "ErkJggg=="
    )
    state = {"state": {
        "v": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_s", "IPY_MODEL_p"]}},
        "s": {"model_name": "FloatSliderModel", "state": {"description": "temperature",
                                                         "value": 0.7}},
        "p": {"model_name": "FloatProgressModel", "state": {"value": 3, "min": 0, "max": 4}},
    }}  # fmt: skip
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": state}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n**bold**"),
        nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint('hi')", execution_count=3,
                                  outputs=[nbformat.v4.new_output("stream", name="stdout",
                                                                  text="hi\r\x1b[31mthere\x1b[0m\n")]),
        nbformat.v4.new_code_cell("df", outputs=[nbformat.v4.new_output("execute_result", data={
            "text/html": '<div><style>td {color: red}</style><table class="dataframe">'
                         '<tr><td style="x" onclick="y">1</td></tr></table></div>',
            "text/plain": "df"})]),
        nbformat.v4.new_code_cell("img", outputs=[nbformat.v4.new_output("display_data",
                                                                         data={"image/png": png})]),
        nbformat.v4.new_code_cell("Explorer(lab)", outputs=[nbformat.v4.new_output(
            "display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "v"},
                                  "text/plain": "VBox(...)"})]),
        nbformat.v4.new_code_cell("CostPlanner(lab)", outputs=[nbformat.v4.new_output(
            "display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "x"},
                                  "text/plain": "VBox(...)"})]),
    ]  # fmt: skip
    path = tmp_path / "cells.ipynb"
    nbformat.write(nb, path)
    write(path, tmp_path / "cells.html")
    html = (tmp_path / "cells.html").read_text()
    assert "<h1>Title</h1>" in html and "<table>" in html and "<strong>bold</strong>" in html
    assert '<details class="mm-code"><summary>code [3]</summary>' in html
    assert "NBVAL" not in visible(html) and ">there\n</pre>" in html  # \r and colours handled
    assert '<table class="dataframe"><tbody><tr><td>1</td></tr></tbody></table>' in html
    assert f'src="data:image/png;base64,{png}"' in html
    # a saved widget: its controls' values and progress; a widget with no state: one line
    assert 'temperature</span><span class="mm-widget-value">0.7' in html
    assert 'style="width:75.0%"' in html
    assert "Explorer: a static snapshot of the widget as it was saved" in html
    assert "<b>CostPlanner</b> — an interactive widget; the notebook saved no picture" in html
    assert "<code>make lab</code>, then open <code>cells.ipynb</code>" in html


# --- bad input and safety ------------------------------------------------------------------
def test_study_strings_cannot_run_script(tmp_path):
    bundle = hostile_bundle(tmp_path / "hostile.bundle.jsonl.gz")
    info = write(bundle, tmp_path / "hostile.html")
    html = (tmp_path / "hostile.html").read_text()
    assert info.calls == len(HOSTILE)
    # nothing from the study is markup: the only script elements are the page's own six
    assert len(re.findall(r"<script\b", visible(html), re.I)) == 5
    assert unsafe(html) == []
    assert "&lt;script&gt;window.__pwned = 9&lt;/script&gt;" in markup(html)  # the tag, as text
    # data in script elements cannot close them
    for block in re.findall(r'type="application/json" id="[\w-]+">(.*?)</script>', html, re.S):
        assert "<" not in block and "\u2028" not in block
    # and every string is still there, as text, for the reader
    data = calls_of(html)
    assert {HOSTILE[0], HOSTILE[2]} <= set(data["values"]["provider"])
    assert any(HOSTILE[1] in m[1] for ms in data["messages"] for m in ms)


def test_notebook_html_is_sanitised_and_markdown_links_cannot_run(tmp_path):
    nb = hostile_notebook(tmp_path / "hostile.ipynb")
    write(nb, tmp_path / "nb.html")
    html = (tmp_path / "nb.html").read_text()
    assert unsafe(html) == []
    body = markup(html)
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in body  # code and streams: text
    assert 'class="mm-widget"' in body and 'class="mm-widget-missing"' in body


def test_sanitizer_and_script_json():
    assert clean_html('<a href="javascript:x()">a</a><img src=x onerror=y()>') == (
        '<a rel="noopener noreferrer">a</a><img>'
    )
    assert clean_html("<table><tr><td>1</td></tr></table>") == (
        "<table><tbody><tr><td>1</td></tr></tbody></table>"
    )
    assert "<" not in script_json({"x": "</script><!--", "y": "\u2028"})
    assert json.loads(script_json({"x": "</script>&", "nan": float("nan")})) == {
        "x": "</script>&", "nan": None}  # fmt: skip


def test_no_key_path_or_user_name_reaches_the_report(tmp_path, monkeypatch):
    user = "mmlab-report-user-qz"
    monkeypatch.setenv("LOGNAME", user)
    monkeypatch.setenv("USER", user)
    home = tmp_path / "home" / user
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    register_secret(FAKE_KEY)
    work = home / "studies" / "secret-project"
    work.mkdir(parents=True)
    leaks = f"see {work}/notes.txt, /home/{user}/x and key {FAKE_KEY}"
    bundle = write_bundle(work / "s.bundle.jsonl.gz", [{
        "messages": [{"role": "user", "content": f"Summarise {leaks}"}],
        "response": response(content=leaks, reasoning=leaks, provider=FAKE_KEY, notice=leaks),
    }])  # fmt: skip
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            f"open('{work}/data.csv')",
            outputs=[
                nbformat.v4.new_output(
                    "stream", name="stdout", text=f"wrote {work}/out.csv\n{leaks}"
                )
            ],
        )
    ]
    nbformat.write(nb, work / "s.ipynb")
    for source in (bundle, work / "s.ipynb"):
        out = work / "report.html"
        write(source, out)
        html = out.read_text()
        text = html + json.dumps(calls_of(html))
        for leak in (FAKE_KEY, user, str(tmp_path), "secret-project"):
            assert leak not in text, leak


def test_a_damaged_bundle_is_refused_as_bundle_import_refuses_it(study, tmp_path):
    study.write_bytes(study.read_bytes()[:200])
    out = tmp_path / "study.html"
    out.write_text("the previous report")
    with pytest.raises(BundleError, match="corrupt or truncated"):
        write(study, out)
    assert out.read_text() == "the previous report"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".study.html")] == []
    report = run_mmlab("report", str(study), "-o", str(out))
    imported = run_mmlab("bundle", "import", str(study), "--db", str(tmp_path / "x.db"))
    assert report.returncode == imported.returncode == 2
    assert report.stderr == imported.stderr and "corrupt or truncated" in report.stderr


def test_writing_is_atomic(study, tmp_path, monkeypatch):
    folder = tmp_path / "reports"
    folder.mkdir()
    out = folder / "study.html"
    out.write_text("the previous report")
    real = replace_atomically

    @contextlib.contextmanager
    def failing(target):  # the disk fills half-way through the file
        with real(target) as f:

            class Half:
                def write(self, data):
                    f.write(data[: len(data) // 2])
                    raise OSError(28, "No space left on device")

            yield Half()

    monkeypatch.setattr("mmlab.report.build.replace_atomically", failing)
    with pytest.raises(OSError, match="No space"):
        write(study, out)
    assert out.read_text() == "the previous report"
    assert [p.name for p in folder.iterdir()] == ["study.html"]  # no half-written file


@pytest.mark.slow  # five runs of the command, each importing mmlab
def test_cli_reports_a_bundle_a_notebook_and_a_tag(study, lab, tmp_path):
    out = run_mmlab("report", str(study), "-o", str(tmp_path / "a.html"))
    assert out.returncode == 0 and "bundle report, 9 calls" in out.stdout
    out = run_mmlab("report", "--tag", "study", "--db", str(lab.db), "-o", str(tmp_path / "t.html"))
    assert out.returncode == 0 and "tag report, 10 calls" in out.stdout
    nb = ROOT / "notebooks" / "01_quickstart.ipynb"
    out = run_mmlab("report", str(nb), "-o", str(tmp_path / "n.html"), "--title", "Quick")
    assert out.returncode == 0 and "notebook report, 1 calls" in out.stdout
    assert "<title>Quick</title>" in (tmp_path / "n.html").read_text()
    for args in ([], [str(study), "--tag", "study"]):
        bad = run_mmlab("report", *args, "-o", str(tmp_path / "x.html"))
        assert bad.returncode == 2 and "SOURCE" in bad.stderr
    assert not (tmp_path / "x.html").exists()
    missing = run_mmlab("report", str(tmp_path / "nope.bundle.jsonl.gz"), "-o", "y.html")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_scrubber_keeps_honest_text():
    scrub = Scrubber()
    assert scrub.text("use sk-learn and 3/4 of a cup") == "use sk-learn and 3/4 of a cup"
    assert scrub.label(f"{Path.home()}/x.db") == "…"


def test_bad_sources_and_targets_are_clear_errors_and_write_nothing(study, tmp_path):
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="not a readable notebook"):
        write(broken, tmp_path / "b.html")
    with pytest.raises(ConfigError, match="overwrite its own source"):
        write(study, study)
    with pytest.raises(ConfigError, match="folder"):
        write(study, tmp_path)
    with pytest.raises(ConfigError, match="not both"):
        write(study, tmp_path / "x.html", tag="study")
    with pytest.raises(ConfigError, match="does not exist"):
        write(tmp_path / "missing.ipynb", tmp_path / "x.html")
    assert not (tmp_path / "b.html").exists() and not (tmp_path / "x.html").exists()
    assert read_bundle(study)  # untouched
