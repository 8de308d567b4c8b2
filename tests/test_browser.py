"""End to end in a real browser: JupyterLab + headless Chromium (Debian's, never downloaded).

JupyterLab starts on loopback with token auth and a random port; Playwright opens
``02_prompt_explorer``, runs it, drags the temperature slider, clicks Run on the
PromptExplorer against the embedded model, waits for the answer, and saves screenshots to
``build/screenshots/``. Assertions are on what the page shows, and on the usage log.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "build" / "screenshots"
NOTEBOOK = "02_prompt_explorer"
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def jupyterlab(tmp_path):
    if not CHROMIUM.exists():
        pytest.fail(
            "the browser test needs Debian's chromium at /usr/bin/chromium: "
            "apt-get install chromium (make test installs it when run as root)"
        )
    work = tmp_path / "notebooks"
    work.mkdir()
    for name in (f"{NOTEBOOK}.ipynb", f"{NOTEBOOK}.bundle.jsonl.gz"):
        shutil.copy(ROOT / "notebooks" / name, work)
    settings = tmp_path / "lab-settings"
    for rel, value in SETTINGS.items():
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(json.dumps(value))
    db = tmp_path / "mmlab.db"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MMLAB_") and k != "OPENROUTER_API_KEY"
    }
    env.update(
        MMLAB_DB=str(db),
        MMLAB_CACHE="use",
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        HOME=str(tmp_path / "home"),
        XDG_DATA_HOME=str(tmp_path / "home" / "data"),
    )
    # The recorded comparison comes from the bundle (fast); the clicks below are live calls.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mmlab",
            "bundle",
            "import",
            str(work / f"{NOTEBOOK}.bundle.jsonl.gz"),
            "--db",
            str(db),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    port, token = _free_port(), secrets.token_hex(16)
    log = open(tmp_path / "jupyterlab.log", "wb")  # noqa: SIM115 - closed below
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
                    pytest.fail("JupyterLab exited: " + (tmp_path / "jupyterlab.log").read_text())
                # waiting for a server's port; there is no readiness event to block on
                import time

                time.sleep(0.1)
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


@pytest.mark.timeout(600)
def test_prompt_explorer_in_jupyterlab(jupyterlab):
    from playwright.sync_api import expect, sync_playwright

    base, token, db = jupyterlab
    SHOTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=180_000)  # a live generation on 2 cores takes seconds
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(180_000)
        page.goto(f"{base}/lab/tree/{NOTEBOOK}.ipynb?token={token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell")
        page.wait_for_function(
            "() => window.jupyterapp && window.jupyterapp.shell"
            " && document.querySelector('.jp-Notebook')"
        )
        # The toolbar icon says idle too early; ask the session's kernel through the app.
        page.wait_for_function(
            """() => { const w = window.jupyterapp.shell.currentWidget;
                       return w && w.sessionContext && w.sessionContext.session &&
                              w.sessionContext.session.kernel &&
                              w.sessionContext.session.kernel.status === 'idle'; }"""
        )
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        explorer = page.locator(".jupyter-widgets", has_text="PromptExplorer").first
        expect(explorer).to_be_visible()
        # the last cell prints the per-prompt means once the whole notebook has run
        expect(page.get_by_text("every call should have thought first")).to_have_count(1)
        page.wait_for_function(
            """() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel
                      .status === 'idle'"""
        )
        page.screenshot(path=str(SHOTS / "02-notebook-run.png"), full_page=False)

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
        text = answer.inner_text().strip()
        assert text
        explorer.scroll_into_view_if_needed()
        explorer.screenshot(path=str(SHOTS / "02-prompt-explorer-answer.png"))
        browser.close()

    row = (
        sqlite3.connect(db)
        .execute(
            "SELECT params, cache_status, completion_tokens FROM calls ORDER BY ts DESC LIMIT 1"
        )
        .fetchone()
    )
    params = json.loads(row[0])
    assert params["temperature"] == pytest.approx(moved)
    assert row[1] == "miss" and row[2] > 0
