"""Shared fixtures: an isolated environment, a loopback stand-in server, a Lab pointed at it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmlab import Lab, RetryPolicy
from mmlab.endpoints import OpenRouter
from mmlab.testing import StandIn

#: Recognisable and obviously fake; tests scan for it to prove it never leaks.
FAKE_KEY = "sk-mmlab-TEST-not-a-real-key-7f3a9c1e5b"
FAST_RETRY = RetryPolicy(max_retries=6, base_s=0.001, cap_s=0.05)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test sees the user's keys, data dir or working directory."""
    for name in list(os.environ):
        if name.startswith("MMLAB_") or name == "OPENROUTER_API_KEY":
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "mmlab.db"


@pytest.fixture
def lab(standin: StandIn, db: Path) -> Iterator[Lab]:
    # the stand-in speaks OpenRouter's extras (/models, /generation) on a loopback URL
    endpoint = OpenRouter(standin.url, FAKE_KEY)
    lab = Lab(endpoint=endpoint, db=db, quiet=True, retry=FAST_RETRY)
    yield lab
    lab.close()
