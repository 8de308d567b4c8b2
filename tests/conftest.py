"""Shared fixtures: an isolated environment, a loopback stand-in server, a Lab pointed at it;
the routed and the arms stand-ins; the embedded model (on one thread under pytest-xdist).
Plain helpers are in helpers.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import FAKE_KEY, FAST_RETRY, PROVIDERS, R1, arm_accuracy

from mmlab import Lab
from mmlab.endpoints import Embedded, OpenRouter
from mmlab.endpoints.llama_process import LocalServer
from mmlab.testing import StandIn


@pytest.fixture(autouse=True, scope="session")
def one_llama_thread_under_xdist() -> Iterator[None]:
    """Under `make test-fast` (pytest-xdist) the other worker keeps every core busy, and a
    llama.cpp server spinning a thread per core then waits on its own threads, 5-25x slower:
    there the embedded server decodes on one thread. `make test` runs it as shipped."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    shipped = LocalServer.command

    def command(self: LocalServer, port: int) -> list[str]:
        args = shipped(self, port)
        args[args.index("--n_threads") + 1] = "1"
        return args

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LocalServer, "command", command)
        yield


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


@pytest.fixture
def routed(db):
    """A lab on a stand-in serving M1 and R1 through two providers at different prices."""
    with StandIn(providers=PROVIDERS) as server:
        server.state.model_prices[R1] = ("0.00000055", "0.00000219")
        lab = Lab(endpoint=OpenRouter(server.url, FAKE_KEY), db=db, quiet=True, retry=FAST_RETRY)
        yield lab, server
        lab.close()


@pytest.fixture
def arms(db):
    """A lab on a stand-in that answers correctly 90% of the time at temperature 0, 30% at 1."""
    with StandIn(accuracy=arm_accuracy) as server:
        lab = Lab(endpoint=OpenRouter(server.url, FAKE_KEY), db=db, quiet=True, retry=FAST_RETRY)
        yield lab, server
        lab.close()


@pytest.fixture
def local_lab(db):
    """A lab on the embedded model (a real llama.cpp server on loopback)."""
    lab = Lab(db=db, quiet=True)
    assert isinstance(lab.endpoint, Embedded) and lab.endpoint.capabilities.free
    return lab
