"""Run llama.cpp's server as a child that dies with the mmlab process that started it.

    python -m mmlab._llama_child PARENT_PID <llama_cpp.server arguments>

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


def main() -> None:
    """Start the watcher, then hand over to ``python -m llama_cpp.server``."""
    parent = int(sys.argv[1])
    sys.argv = ["llama_cpp.server", *sys.argv[2:]]
    threading.Thread(target=_watch, args=(parent,), daemon=True, name="parent-watch").start()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
