"""The embedded model's server process: llama.cpp's OpenAI-compatible server as a child on
127.0.0.1, started lazily, shared by every Lab in the process, restarted once if it dies,
stopped at exit — and with its parent even if the parent is SIGKILLed (`._llama_child`).
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..errors import LocalModelError
from .gguf import model_id, model_path

N_CTX = 8192
READY_TIMEOUT_S = 120.0
#: The module that runs the server as a child watching its parent.
CHILD = "mmlab.endpoints._llama_child"
MAX_STARTS = 4  # the first start and three restarts after deaths


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalServer:
    """One llama.cpp server child process for one GGUF file."""

    def __init__(self, path: Path, alias: str) -> None:
        self.path = path
        self.alias = alias
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.starts = 0
        self.ready_s: float | None = None
        self.failure: LocalModelError | None = None
        self._lock = threading.Lock()
        self._log = Path(tempfile.gettempdir()) / f"mmlab-llama-{os.getpid()}.log"

    @property
    def url(self) -> str:
        """The server's OpenAI-compatible base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self, port: int) -> list[str]:
        """The llama.cpp server's arguments (after ``python -m llama_cpp.server``)."""
        return [
            "--model",
            str(self.path),
            "--model_alias",
            self.alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(N_CTX),
            "--n_threads",
            str(max(1, os.cpu_count() or 1)),
            # queue concurrent requests; the default cuts a running stream short
            "--interrupt_requests",
            "False",
        ]

    def alive(self) -> bool:
        """The child process is running."""
        return self.proc is not None and self.proc.poll() is None

    def ensure(self) -> str:
        """Start the server if needed (restarting one that died); return its URL.

        A server that died is started again, up to `MAX_STARTS` times per process. A start
        that fails is final: the error is kept and raised again at once by every later call,
        rather than each call waiting up to `READY_TIMEOUT_S` for a server that cannot come up.
        """
        with self._lock:
            if self.alive():
                return self.url
            if self.failure is not None:
                raise self.failure
            if self.starts >= MAX_STARTS:
                self.failure = LocalModelError(
                    f"the embedded llama.cpp server died {self.starts} times; not restarting "
                    f"it again. Its log ({self._log}) ends with:\n{self._log_tail()}"
                )
                raise self.failure
            try:
                self._start()
            except LocalModelError as exc:
                self.failure = exc
                raise
            return self.url

    def _start(self) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise LocalModelError(
                "the embedded model needs llama-cpp-python[server]: pip install 'mmlab[local]'"
            )
        port = _free_port()
        started = time.monotonic()
        log = open(self._log, "ab")  # noqa: SIM115 - handed to the child
        # The child watches this process and exits with it, even after a SIGKILL.
        cmd = [sys.executable, "-m", CHILD, str(os.getpid()), *self.command(port)]
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        self.port = port
        self.starts += 1
        if not self._wait_ready(started):
            tail = self._log_tail()
            self.stop()
            raise LocalModelError(
                f"the embedded llama.cpp server did not start (attempt {self.starts}). "
                f"Its log ({self._log}) ends with:\n{tail}"
            )
        self.ready_s = time.monotonic() - started

    def _wait_ready(self, started: float) -> bool:
        import httpx

        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while time.monotonic() - started < READY_TIMEOUT_S:
                if self.proc is None or self.proc.poll() is not None:
                    return False
                try:
                    if client.get(f"{self.url}/models").status_code == 200:
                        return True
                except httpx.HTTPError:
                    pass
                # Polling a child process's port: there is no readiness event to wait on.
                time.sleep(0.05)
        return False

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the child process (SIGTERM, then SIGKILL)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


_SERVERS: dict[Path, LocalServer] = {}
_SERVERS_LOCK = threading.Lock()


def server_for(path: Path, alias: str) -> LocalServer:
    """The process-wide server for `path` (shared by every Lab)."""
    with _SERVERS_LOCK:
        server = _SERVERS.get(path)
        if server is None:
            server = _SERVERS[path] = LocalServer(path, alias)
        return server


@atexit.register
def stop_all() -> None:
    """Stop every embedded server this process started."""
    for server in list(_SERVERS.values()):
        server.stop()




def serve_forever(port: int | None = None) -> None:
    """``mmlab serve-local``: become the embedded model's server, in the foreground.

    The process execs llama.cpp's server itself, so stopping it (Ctrl-C, SIGTERM) stops the
    server — nothing is left behind.
    """
    path = model_path()
    alias = model_id(path)
    args = LocalServer(path, alias).command(port or _free_port())
    url = f"http://127.0.0.1:{args[args.index('--port') + 1]}/v1"
    print(f"mmlab: serving {alias} ({path.name}) at {url} — Ctrl-C stops it", flush=True)
    os.execv(sys.executable, [sys.executable, "-m", CHILD, "0", *args])
