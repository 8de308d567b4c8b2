"""The embedded model's server process: llama.cpp's OpenAI-compatible server as a child on
127.0.0.1, started lazily, shared by every Lab in the process, restarted once if it dies,
stopped at exit — and with its parent even if the parent is SIGKILLed (`._llama_child`).
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import secrets
import select
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..errors import LocalModelError
from ..redaction import register_secret
from .gguf import model_id, model_path

N_CTX = 8192
READY_TIMEOUT_S = 120.0
#: The module that runs the server as a child watching its parent.
CHILD = "mmlab.endpoints._llama_child"
#: The environment variable that hands the child its key (never its command line).
KEY_ENV = "MMLAB_LLAMA_KEY"
MAX_STARTS = 4  # the first start and three restarts after deaths


class LocalServer:
    """One llama.cpp server child process for one GGUF file.

    The server answers only mmlab: each start draws a random key (handed to the child in its
    environment, which other users cannot read, never on its command line) that every
    request must carry as a Bearer token. The child binds its own socket on 127.0.0.1 and
    reports the port over a pipe only this process holds, so the server at that port is the
    child mmlab started — no port is released for another process to take.
    """

    def __init__(self, path: Path, alias: str) -> None:
        self.path = path
        self.alias = alias
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.key: str | None = None
        self.starts = 0
        self.ready_s: float | None = None
        self.failure: LocalModelError | None = None
        self._lock = threading.Lock()
        self._log: Path | None = None

    @property
    def url(self) -> str:
        """The server's OpenAI-compatible base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    def headers(self) -> dict[str, str]:
        """The Authorization header this server requires."""
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def command(self, port: int) -> list[str]:
        """The llama.cpp server's settings, as ``llama_cpp.server`` command-line arguments."""
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

    def ready(self) -> bool:
        """The child is running and has answered: its URL can be used. (A child being started
        is alive before its port is known: checking only `alive` from another task, outside
        the start lock, would hand out a URL without a port.)"""
        return self.ready_s is not None and self.alive()

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
        started = time.monotonic()
        self.ready_s, self.port = None, None  # not ready until this start has finished
        self.key = secrets.token_urlsafe(32)
        register_secret(self.key)
        # A private log: mkstemp makes it 0600 with an unpredictable name, opened O_EXCL.
        fd, name = tempfile.mkstemp(prefix="mmlab-llama-", suffix=".log")
        self._log = Path(name)
        report_r, report_w = os.pipe()
        env = {**os.environ, KEY_ENV: self.key}
        # The child watches this process and exits with it, even after a SIGKILL.
        cmd = [sys.executable, "-m", CHILD, str(os.getpid()), str(report_w), *self.command(0)]
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdout=fd,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                pass_fds=(report_w,),
            )
        finally:
            os.close(fd)
            os.close(report_w)
        self.starts += 1
        try:
            self.port = self._read_port(report_r, started)
        finally:
            os.close(report_r)
        if self.port is None or not self._wait_ready(started):
            tail = self._log_tail()
            self.stop()
            raise LocalModelError(
                f"the embedded llama.cpp server did not start (attempt {self.starts}). "
                f"Its log ({self._log}) ends with:\n{tail}"
            )
        self.ready_s = time.monotonic() - started

    def _read_port(self, fd: int, started: float) -> int | None:
        """The port the child bound, from its report pipe (None if it died first)."""
        data = b""
        while time.monotonic() - started < READY_TIMEOUT_S:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                if self.proc is None or self.proc.poll() is not None:
                    return None
                continue
            chunk = os.read(fd, 64)
            if not chunk:  # closed without a port: the child failed
                break
            data += chunk
            if b"\n" in data:
                return int(data.split(b"\n", 1)[0])
        return None

    def _wait_ready(self, started: float) -> bool:
        import httpx

        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while time.monotonic() - started < READY_TIMEOUT_S:
                if self.proc is None or self.proc.poll() is not None:
                    return False
                try:
                    if client.get(f"{self.url}/models", headers=self.headers()).status_code == 200:
                        return True
                except httpx.HTTPError:
                    pass
                # Polling a child process's port: there is no readiness event to wait on.
                time.sleep(0.05)
        return False

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self._log.read_text(errors="replace") if self._log else ""
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

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
    server — nothing is left behind. It serves on 127.0.0.1 without a key, for other tools
    on this machine (the servers mmlab starts for itself require one).
    """
    path = model_path()
    alias = model_id(path)
    args = LocalServer(path, alias).command(port or 0)
    print(f"mmlab: serving {alias} ({path.name}) on 127.0.0.1 — Ctrl-C stops it", flush=True)
    os.execv(sys.executable, [sys.executable, "-m", CHILD, "0", "-1", *args])
