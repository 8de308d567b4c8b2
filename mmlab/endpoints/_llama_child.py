"""Run llama.cpp's server as a child that dies with the mmlab process that started it.

    python -m mmlab.endpoints._llama_child PARENT_PID REPORT_FD <llama_cpp.server arguments>

PARENT_PID 0: nothing to watch (``mmlab serve-local`` is the server). REPORT_FD -1: print the
URL instead of reporting the port to a parent.

A watcher thread blocks on a pidfd of the parent (no polling) and ends this process the
moment the parent is gone — even if the parent was SIGKILLed and ran no cleanup. (prctl's
PDEATHSIG is tied to the *thread* that forked, which in mmlab is a short-lived worker thread.)

The child binds its own socket and writes the port to REPORT_FD, a pipe only the parent
holds: no port is ever released for another process to take between choosing and binding
it. The API key arrives in the environment (``MMLAB_LLAMA_KEY``), never on the command line
that other users can list.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
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


def _clean_environment() -> str | None:
    # llama_cpp.server's settings are pydantic BaseSettings: an environment variable named
    # like a field (PORT, HOST, MODEL, API_KEY, N_CTX, ...) silently overrides the command
    # line. `make lab PORT=8888` exports PORT, which sent the server to Jupyter's port.
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    key = os.environ.pop("MMLAB_LLAMA_KEY", None)
    fields = {name.lower() for s in (ModelSettings, ServerSettings) for name in s.model_fields}
    for name in list(os.environ):
        if name.lower() in fields:
            del os.environ[name]
    return key


def main() -> None:
    """Start the watcher, bind the socket, report the port, then serve."""
    parent, report = int(sys.argv[1]), int(sys.argv[2])
    key = _clean_environment()
    if parent:
        threading.Thread(target=_watch, args=(parent,), daemon=True, name="parent-watch").start()

    import uvicorn
    from llama_cpp.server.app import create_app
    from llama_cpp.server.cli import add_args_from_model, parse_model_from_args
    from llama_cpp.server.settings import ModelSettings, ServerSettings, Settings

    parser = argparse.ArgumentParser(prog="mmlab-llama")
    add_args_from_model(parser, Settings)
    args = parser.parse_args(sys.argv[3:])
    server = parse_model_from_args(ServerSettings, args)
    server.api_key = key  # every route then requires it as a Bearer token
    model = parse_model_from_args(ModelSettings, args)
    app = create_app(server_settings=server, model_settings=[model])

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((server.host, server.port))
    sock.listen(128)
    port = sock.getsockname()[1]
    if report >= 0:
        os.write(report, f"{port}\n".encode())
        os.close(report)
    else:
        print(f"mmlab: http://{server.host}:{port}/v1", flush=True)
    config = uvicorn.Config(app, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
