"""End to end in a real browser: JupyterLab + headless Chromium (Debian's, never downloaded).

JupyterLab starts on loopback with token auth and a random port, serving copies of the
notebooks; Playwright runs them in Chromium the way a person would. The PromptExplorer test
drags the temperature slider and clicks Run against the embedded model; the others check that
the ReasoningExplorer, CostPlanner and SweepBuilder render and respond. Screenshots go to
``build/screenshots/``. Assertions are on what the page shows (and on the usage log).

The HTML report (`mmlab report`) is opened from file:// with every request aborted and
counted: its figures drawn, its call browser listing, filtering, searching and deep-linking
exactly the bundle's calls — and a hostile study's report running none of its scripts.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import hostile_bundle, hostile_notebook

from mmlab.bundle import read_bundle
from mmlab.report import write

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "build" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}
KERNEL_IDLE = """() => { const w = window.jupyterapp.shell.currentWidget;
    return w && w.sessionContext && w.sessionContext.session &&
           w.sessionContext.session.kernel &&
           w.sessionContext.session.kernel.status === 'idle'; }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory) -> Iterator[tuple[str, str, Path]]:
    with _serve(tmp_path_factory.mktemp("lab")) as lab:
        yield lab


@contextlib.contextmanager
def _serve(tmp: Path) -> Iterator[tuple[str, str, Path]]:
    """A JupyterLab server on copies of the notebooks and their bundles, the bundles imported
    and trusted (a recorded cell is answered by its bundle, a click on Run calls live);
    yields its URL, token and database."""
    if not CHROMIUM.exists():
        pytest.fail(
            "the browser tests need Debian's chromium at /usr/bin/chromium: "
            "apt-get install chromium (make test installs it when run as root)"
        )
    work = tmp / "notebooks"
    work.mkdir()
    for nb in sorted((ROOT / "notebooks").glob("0*.ipynb")):
        shutil.copy(nb, work)
        shutil.copy(nb.with_name(f"{nb.stem}.bundle.jsonl.gz"), work)
    settings = tmp / "lab-settings"
    for rel, value in SETTINGS.items():
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(json.dumps(value))
    db = tmp / "mmlab.db"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MMLAB_") and k != "OPENROUTER_API_KEY"
    }
    env.update(
        MMLAB_DB=str(db),
        MMLAB_CACHE="use",
        # the recorded cells are answered by the imported bundles; clicks on Run call live
        MMLAB_TRUST_IMPORTS="1",
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        HOME=str(tmp / "home"),
        XDG_DATA_HOME=str(tmp / "home" / "data"),
    )
    # Recorded analyses come from the bundles (fast); clicks on Run are live calls.
    for bundle in sorted(work.glob("*.bundle.jsonl.gz")):
        subprocess.run(
            [sys.executable, "-m", "mmlab", "bundle", "import", str(bundle), "--db", str(db)],
            env=env,
            check=True,
            capture_output=True,
        )
    port, token = _free_port(), secrets.token_hex(16)
    log_path = tmp / "jupyterlab.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={work}",
            "--allow-root",
            "--LabApp.expose_app_in_browser=True",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=work,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=2.0) as client:
            for _ in range(600):
                try:
                    if client.get(f"{base}/api/status", params={"token": token}).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None:
                    pytest.fail("JupyterLab exited: " + log_path.read_text())
                time.sleep(0.1)  # waiting for a server's port: no readiness event exists
            else:
                pytest.fail("JupyterLab did not start")
        yield base, token, db
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium under Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(
            "the browser tests need Debian's chromium at /usr/bin/chromium: "
            "apt-get install chromium (make test installs it when run as root)"
        )
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def browser(jupyterlab, chromium):
    from playwright.sync_api import expect

    expect.set_options(timeout=180_000)  # a live generation on 2 cores takes seconds
    return chromium


def run_notebook(browser, jupyterlab, name: str):
    """Open a notebook, clear its stored outputs, Run All; return when the last cell ran."""
    from playwright.sync_api import expect

    base, token, _ = jupyterlab
    # the previous notebooks' kernels (and their embedded models) go first: on 2 cores a
    # kernel left behind slows this notebook's live calls
    with httpx.Client(base_url=base, params={"token": token}, timeout=30) as api:
        for kernel in api.get("/api/kernels").json():
            api.delete(f"/api/kernels/{kernel['id']}")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(180_000)
    # a workspace of its own: the default one would reopen the previous test's notebook
    page.goto(f"{base}/lab/workspaces/{name}/tree/{name}.ipynb?reset&token={token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    page.wait_for_function(
        """(path) => window.jupyterapp && window.jupyterapp.shell.currentWidget &&
                     window.jupyterapp.shell.currentWidget.context &&
                     window.jupyterapp.shell.currentWidget.context.path === path""",
        arg=f"{name}.ipynb",
    )
    page.wait_for_function(KERNEL_IDLE)  # the toolbar icon says idle too early
    page.evaluate("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    last = page.locator(".jp-CodeCell").last.locator(".jp-OutputArea-output")
    expect(last).to_have_count(0)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    expect(last.first).to_be_attached()  # the last code cell produced its output
    page.wait_for_function(KERNEL_IDLE)
    return page


@pytest.mark.timeout(600)
def test_prompt_explorer_runs_live(browser, jupyterlab):
    from playwright.sync_api import expect

    db = jupyterlab[2]
    page = run_notebook(browser, jupyterlab, "02_prompt_explorer")
    page.screenshot(path=str(SHOTS / "02-notebook-run.png"))
    explorer = page.locator(".jupyter-widgets", has_text="PromptExplorer").first
    stats = explorer.locator(".mmlab-stats")
    expect(stats).to_contain_text("cost —")
    slider = explorer.locator(".widget-slider", has_text="temperature").first
    readout = slider.locator(".widget-readout")
    before = readout.inner_text()
    handle = slider.locator(".noUi-handle")
    explorer.scroll_into_view_if_needed()
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] - 60, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    expect(readout).not_to_have_text(before)
    moved = float(readout.inner_text())
    assert moved < float(before)

    explorer.locator("button", has_text="Run").first.click()
    expect(stats).to_contain_text("$0.000000 (local)")
    expect(stats).to_contain_text("live call")
    answer = explorer.locator(".mmlab-answer")
    expect(answer).not_to_have_text("")
    expect(answer).not_to_have_text("…")
    assert answer.inner_text().strip()
    explorer.screenshot(path=str(SHOTS / "02-prompt-explorer-answer.png"))
    page.close()
    row = (
        sqlite3.connect(db)
        .execute(
            "SELECT params, cache_status, completion_tokens FROM calls "
            "WHERE tag = '02_prompt_explorer' ORDER BY ts DESC LIMIT 1"
        )
        .fetchone()
    )
    assert json.loads(row[0])["temperature"] == pytest.approx(moved)
    assert row[1] == "miss" and row[2] > 0


@pytest.mark.timeout(600)
def test_reasoning_explorer_renders_and_responds(browser, jupyterlab):
    from playwright.sync_api import expect

    page = run_notebook(browser, jupyterlab, "03_reasoning_lengths")
    rx = page.locator(".jupyter-widgets", has_text="ReasoningExplorer").first
    rx.scroll_into_view_if_needed()
    rx.screenshot(path=str(SHOTS / "03-reasoning-explorer.png"))
    expect(rx.locator(".js-plotly-plot")).to_have_count(1)
    expect(rx.locator(".mmlab-table")).to_contain_text("max_tokens")
    rx.locator("select").first.select_option("temperature")  # compare by temperature instead
    expect(rx.locator(".mmlab-table")).to_contain_text("temperature")
    expect(rx.locator(".js-plotly-plot .xtitle")).to_have_text("temperature")
    rx.screenshot(path=str(SHOTS / "03-reasoning-explorer.png"))
    page.close()


@pytest.mark.timeout(600)
def test_cost_planner_renders_and_responds(browser, jupyterlab):
    from playwright.sync_api import expect

    page = run_notebook(browser, jupyterlab, "04_cost_curves")
    cp = page.locator(".jupyter-widgets", has_text="CostPlanner").first
    cp.scroll_into_view_if_needed()
    expect(cp.locator(".js-plotly-plot")).to_have_count(1)
    table = cp.locator(".mmlab-table").first  # the cost table; the second is the design's
    expect(table).to_contain_text("minimax/minimax-m1")
    before = table.inner_text()
    calls = cp.locator(".widget-inline-hbox", has_text="calls/day").locator("input")
    calls.fill("250000")
    calls.press("Enter")
    expect(table).not_to_have_text(before)
    # "How many samples do I need?": a smaller effect needs more problems
    need = cp.locator(".widget-html", has_text="samples per arm").first
    expect(need).to_contain_text("problems")
    asked = need.inner_text()
    effect = cp.locator(".widget-inline-hbox", has_text="effect").locator("input")
    effect.fill("0.02")
    effect.press("Enter")
    expect(need).not_to_have_text(asked)
    cp.screenshot(path=str(SHOTS / "04-cost-planner.png"))
    page.close()


@pytest.mark.timeout(600)
def test_sweep_builder_renders_and_responds(browser, jupyterlab):
    from playwright.sync_api import expect

    page = run_notebook(browser, jupyterlab, "05_sweeps")
    sb = page.locator(".jupyter-widgets", has_text="SweepBuilder").first
    sb.scroll_into_view_if_needed()
    expect(sb).to_contain_text("cells:")
    box = sb.locator(".widget-inline-hbox", has_text="max_tokens").locator("input")
    box.fill("32, 64, 128")
    box.press("Enter")
    expect(sb).to_contain_text("× 6 points")  # 2 temperatures × 3 budgets
    sb.screenshot(path=str(SHOTS / "05-sweep-builder.png"))
    page.close()


@pytest.mark.timeout(900)
def test_adaptive_notebook_draws_its_intervals(browser, jupyterlab):
    from playwright.sync_api import expect

    page = run_notebook(browser, jupyterlab, "07_adaptive")
    plot = page.locator(".js-plotly-plot", has_text="Anytime-valid intervals").first
    plot.scroll_into_view_if_needed()
    expect(plot.locator(".xtitle")).to_have_text("round (repeat of every live cell)")
    expect(plot).to_contain_text("stopped")  # the round the rule stopped is marked
    expect(plot).to_contain_text("temperature=0.0")
    plot.screenshot(path=str(SHOTS / "07-adaptive-intervals.png"))
    page.close()


@pytest.mark.timeout(600)
def test_scaling_notebook_draws_its_curves(browser, jupyterlab):
    from playwright.sync_api import expect

    page = run_notebook(browser, jupyterlab, "06_test_time_scaling")
    curve = page.locator(".js-plotly-plot", has_text="Test-time scaling over").first
    curve.scroll_into_view_if_needed()
    expect(curve.locator(".gtitle")).to_contain_text("reasoning.wait")
    expect(curve.locator(".xtitle").first).to_contain_text("reasoning")
    curve.screenshot(path=str(SHOTS / "06-scaling-curve.png"))
    passk = page.locator(".js-plotly-plot", has_text="pass@k and maj@k").first
    passk.scroll_into_view_if_needed()
    expect(passk.locator(".xtitle").first).to_contain_text("k")
    passk.screenshot(path=str(SHOTS / "06-pass-at-k.png"))
    page.close()


@pytest.mark.timeout(600)
def test_thinking_notebook_draws_its_traces_without_errors(browser, jupyterlab):
    from playwright.sync_api import expect

    page = run_notebook(browser, jupyterlab, "09_where_thinking_goes")
    # no cell failed, nothing went to stderr (a traceback is shown as stderr)
    expect(page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
                        )).to_have_count(0)  # fmt: skip
    for title, x_title in (("Overthinking and loops by arm", "arm"),
                           ("Where the thinking goes", "position in the reasoning (tokens)"),
                           ("Token confidence", "generated token")):  # fmt: skip
        plot = page.locator(".js-plotly-plot", has_text=title).first
        plot.scroll_into_view_if_needed()
        expect(plot.locator(".main-svg").first).to_be_visible()
        expect(plot.locator(".xtitle").first).to_have_text(x_title)
    timeline = page.locator(".js-plotly-plot", has_text="Where the thinking goes").first
    expect(timeline).to_contain_text("first correct")
    expect(timeline).to_contain_text("reasoning.max_tokens=192")  # arms have lanes of their own
    timeline.screenshot(path=str(SHOTS / "09-reasoning-timeline.png"))
    verdicts = page.locator(".jp-OutputArea-output", has_text="Holm-adjusted p").first
    expect(verdicts).to_contain_text("after Holm: 0")
    page.close()
    statuses = sqlite3.connect(jupyterlab[2]).execute(
        "SELECT cache_status, COUNT(*) FROM calls WHERE tag LIKE '09_where_thinking_goes%' "
        "GROUP BY cache_status").fetchall()  # fmt: skip
    assert statuses == [("hit", 96)], statuses  # every call answered from the bundle


@pytest.mark.timeout(900)
def test_providers_notebook_and_usage_dashboard(browser, jupyterlab):
    from playwright.sync_api import expect

    page = run_notebook(browser, jupyterlab, "08_providers")
    figure = page.locator(".js-plotly-plot", has_text="Providers compared").first
    figure.scroll_into_view_if_needed()
    expect(figure).to_contain_text("minimax-m1 · Novita")
    figure.screenshot(path=str(SHOTS / "08-providers.png"))
    dash = page.locator(".jupyter-widgets", has_text="UsageDashboard").first
    dash.scroll_into_view_if_needed()
    expect(dash).to_contain_text("recent activity")
    expect(dash.locator(".mmlab-table").first).to_contain_text("minimax/minimax-m1")
    dash.locator("select").first.select_option("provider")  # break the spend down by provider
    expect(dash.locator(".mmlab-table").first).to_contain_text("Novita")
    expect(dash.locator(".js-plotly-plot .xtitle")).to_have_text("day (UTC)")
    dash.screenshot(path=str(SHOTS / "08-usage-dashboard.png"))
    page.close()


# --- the HTML report, opened from file:// with the network cut --------------------------------
def open_report(chromium, path: Path, fragment: str = ""):
    """Open a report from disk with every request that is not the file itself aborted and
    counted; wait until its calls are listed and its figures drawn. Returns the page and what
    it tried: network requests, console errors, dialogs."""
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    tried = {"requests": [], "errors": [], "dialogs": []}
    page.on("console", lambda m: tried["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: tried["errors"].append(str(e)))
    page.on("dialog", lambda d: (tried["dialogs"].append(d.message), d.dismiss()))
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else
            tried["requests"].append(r.url))  # fmt: skip
    page.route(lambda url: not url.startswith(("file:", "data:")), lambda route: route.abort())
    page.goto(path.as_uri() + fragment)
    # awaited through the debugging protocol: the page's policy forbids the eval that
    # Playwright's polling waits use
    page.evaluate("window.mmlabReport.ready")
    return page, tried


def _drawn(page) -> None:
    from playwright.sync_api import expect

    figures = page.locator(".mm-fig")
    expect(page.locator(".mm-fig.js-plotly-plot")).to_have_count(figures.count())
    expect(page.locator(".mm-fig .main-svg").first).to_be_visible()
    assert page.locator(".mm-fig:not(:has(svg.main-svg))").count() == 0


def _texts(entry: dict) -> str:
    """A call's searchable text, as the page builds it."""
    messages = [m["content"] for m in entry["request"]["request"]["messages"]]
    return "\n".join([*messages, entry["response"]["reasoning"], entry["response"]["content"]])


@pytest.mark.timeout(600)
def test_a_report_opens_offline_and_browses_every_call(chromium, tmp_path, lab):
    from playwright.sync_api import expect

    for name in ("05_sweeps.ipynb", "05_sweeps.bundle.jsonl.gz", "08_providers.bundle.jsonl.gz"):
        shutil.copy(ROOT / "notebooks" / name, tmp_path)
    notebook, bundle = tmp_path / "05_sweeps.ipynb", tmp_path / "05_sweeps.bundle.jsonl.gz"
    write(notebook, tmp_path / "05.html")
    write(tmp_path / "08_providers.bundle.jsonl.gz", tmp_path / "08.html")
    for prompt in ("What is 2 + 2?", "Name a prime.", "What is 2 + 2?"):
        lab.chat(prompt, max_tokens=64, tag="report-tag")
    lab.close()
    write(None, tmp_path / "tag.html", tag="report-tag", db=lab.db)
    entries = read_bundle(bundle)

    page, tried = open_report(chromium, tmp_path / "05.html")
    _drawn(page)
    # exactly the bundle's calls
    ids = page.evaluate("mmlabReport.visibleIds()")
    assert sorted(ids) == sorted(e["key"][:16] for e in entries)
    count = page.locator(".mm-count")
    expect(count).to_have_text(f"{len(entries)} of {len(entries)} calls")
    # a filter narrows them
    page.fill('input.mm-filter[data-col="temperature"]', "=0.7")
    at_07 = sum(1 for e in entries if e["request"]["request"]["temperature"] == 0.7)
    expect(count).to_have_text(f"{at_07} of {len(entries)} calls")
    page.fill('input.mm-filter[data-col="temperature"]', "")
    # sorted by a column, both ways
    reasoning = {e["key"][:16]: e["response"]["usage"]["reasoning_tokens"] for e in entries}
    page.click("button.mm-sort:text-is('reasoning tok')")
    assert reasoning[page.evaluate("mmlabReport.visibleIds()[0]")] == min(reasoning.values())
    page.click("button.mm-sort:text-is('reasoning tok')")
    assert reasoning[page.evaluate("mmlabReport.visibleIds()[0]")] == max(reasoning.values())
    # a search narrows them: a word some calls' texts have and others lack
    words = {w for e in entries for w in re.findall(r"[a-z]{5,}", _texts(e).lower())}
    word = next(w for w in sorted(words)
                if 0 < sum(w in _texts(e).lower() for e in entries) < len(entries))  # fmt: skip
    page.fill("input.mm-search", word)
    hits = sum(word in _texts(e).lower() for e in entries)
    expect(count).to_have_text(f"{hits} of {len(entries)} calls")
    page.locator(".mm-row").first.click()
    expect(page.locator(".mm-detail mark").first).to_have_text(word, ignore_case=True)
    page.screenshot(path=str(SHOTS / "report-05-search.png"))
    # a figure's point lists its calls: a heatmap cell is one temperature x max_tokens cell
    page.click("button.mm-clear")
    heatmap = page.locator(".js-plotly-plot", has_text="by temperature × max_tokens").first
    heatmap.evaluate("e => e.scrollIntoView({block: 'center'})")
    heatmap.locator(".nsewdrag").first.click()
    cell = page.evaluate("mmlabReport.count()")
    assert 0 < cell < len(entries)
    expect(page.locator(".mm-linknote")).to_contain_text("temperature")
    assert tried == {"requests": [], "errors": [], "dialogs": []}
    page.close()

    # a deep link opens one call
    target = sorted(ids)[3]
    page, tried = open_report(chromium, tmp_path / "05.html", f"#call={target}")
    expect(page.locator(".mm-detail .mm-permalink")).to_have_attribute("href", f"#call={target}")
    expect(page.locator(f'.mm-row.mm-selected[data-id="{target}"]')).to_have_count(1)
    expect(page.locator(".mm-detail .mm-reasoning summary")).to_contain_text("tokens")
    page.screenshot(path=str(SHOTS / "report-05-deep-link.png"))
    assert tried == {"requests": [], "errors": [], "dialogs": []}
    page.close()

    # a bundle alone, and a tag from the log: summary figures, a bar lists its calls
    for report, total in (("08.html", 116), ("tag.html", 3)):
        page, tried = open_report(chromium, tmp_path / report)
        _drawn(page)
        assert page.locator(".mm-fig").count() >= 4
        expect(page.locator(".mm-count")).to_have_text(f"{total} of {total} calls")
        first = page.locator(".mm-fig").first
        first.evaluate("e => e.scrollIntoView({block: 'center'})")
        bar = first.locator(".point path").first.bounding_box()  # under plotly's drag layer
        page.mouse.click(bar["x"] + bar["width"] / 2, bar["y"] + bar["height"] / 2)
        assert 0 < page.evaluate("mmlabReport.count()") <= total
        expect(page.locator(".mm-linknote")).to_contain_text("model")
        page.screenshot(path=str(SHOTS / f"report-{report.replace('.html', '')}.png"),
                        full_page=True)  # fmt: skip
        assert tried == {"requests": [], "errors": [], "dialogs": []}
        page.close()


@pytest.mark.timeout(600)
def test_a_hostile_study_runs_no_script_in_its_report(chromium, tmp_path):
    from playwright.sync_api import expect

    bundle = hostile_bundle(tmp_path / "hostile.bundle.jsonl.gz")
    notebook = hostile_notebook(tmp_path / "hostile.ipynb")  # its bundle: the hostile one
    write(bundle, tmp_path / "bundle.html")
    write(notebook, tmp_path / "notebook.html")
    for report in ("bundle.html", "notebook.html"):
        page, tried = open_report(chromium, tmp_path / report)
        total = page.evaluate("mmlabReport.total")
        assert total == 7
        page.fill("input.mm-search", "script")  # search marks the hostile text in the pane
        for i in range(page.evaluate("mmlabReport.count()")):
            page.locator(".mm-row").nth(i).click()
            expect(page.locator(".mm-detail h3")).to_be_visible()
        for figure in page.locator(".mm-fig").all():  # hover labels draw the hostile names
            figure.scroll_into_view_if_needed()
            box = figure.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_timeout(500)
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.evaluate("""() => [...document.querySelectorAll('*')].flatMap(e =>
            [...e.attributes].filter(a => a.name.startsWith('on') ||
            /^\\s*javascript:/i.test(a.value)).map(a => e.tagName + ' ' + a.name))""") == []
        assert page.locator("iframe, object, embed, body svg script").count() == 0
        assert tried == {"requests": [], "errors": [], "dialogs": []}, tried
        page.screenshot(path=str(SHOTS / f"report-hostile-{report.replace('.html', '')}.png"))
        page.close()
