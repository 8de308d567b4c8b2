"""Run llama.cpp's server as a child that dies with the mmlab process that started it.

    python -m mmlab.endpoints._llama_child PARENT_PID <llama_cpp.server arguments>

(PARENT_PID 0: nothing to watch.)

A watcher thread blocks on a pidfd of the parent (no polling) and ends this process the
moment the parent is gone — even if the parent was SIGKILLed and ran no cleanup. (prctl's
PDEATHSIG is tied to the *thread* that forked, which in mmlab is a short-lived worker thread.)
"""

from __future__ import annotations

import os
import runpy
import select
import sys
import threading
import time


def _watch(parent: int) -> None:
    try:
        fd = os.pidfd_open(parent)
    except (AttributeError, OSError):  # not Linux >= 5.3: fall back to watching our ppid
        while os.getppid() == parent:
            time.sleep(1.0)
    else:
        select.select([fd], [], [])
    os._exit(0)


def _clean_environment() -> None:
    # llama_cpp.server's settings are pydantic BaseSettings: an environment variable named
    # like a field (PORT, HOST, MODEL, API_KEY, N_CTX, ...) silently overrides the command
    # line. `make lab PORT=8888` exports PORT, which sent the server to Jupyter's port.
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    fields = {name.lower() for s in (ModelSettings, ServerSettings) for name in s.model_fields}
    for name in list(os.environ):
        if name.lower() in fields:
            del os.environ[name]


def main() -> None:
    """Start the watcher, then hand over to ``python -m llama_cpp.server``."""
    parent = int(sys.argv[1])  # 0: nothing to watch (`mmlab serve-local` is the server)
    _clean_environment()
    sys.argv = ["llama_cpp.server", *sys.argv[2:]]
    if parent:
        threading.Thread(target=_watch, args=(parent,), daemon=True, name="parent-watch").start()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
