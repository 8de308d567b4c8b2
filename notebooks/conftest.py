"""nbval runs every notebook offline, replaying from the bundle committed beside it.

MMLAB_CACHE=replay means no socket is ever opened: a call that is not in the bundle raises
CacheMiss (naming the nearest recorded request) and fails its cell. The database is a fresh
temporary file, so the user's own cache and log are never touched; an OPENROUTER_API_KEY in
the environment is removed (a replay needs no key, and the notebooks must not see one); and
the kernels run with an audit hook that fails any network connection, so "offline" is
checked, not assumed (tests/test_notebooks.py does the same in a fresh copy).
"""

import os
import tempfile
from pathlib import Path

NO_SOCKETS = """
import sys
def _forbid(event, args):
    if event == "socket.connect":
        raise RuntimeError(f"network use during replay: {args!r}")
sys.addaudithook(_forbid)
"""


def pytest_configure(config):
    home = Path(tempfile.mkdtemp(prefix="mmlab-nbval-"))
    os.environ.pop("OPENROUTER_API_KEY", None)
    os.environ["MMLAB_CACHE"] = "replay"
    os.environ["MMLAB_DB"] = str(home / "replay.db")
    os.environ.setdefault("PLOTLY_RENDERER", "plotly_mimetype")
    startup = home / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-no-sockets.py").write_text(NO_SOCKETS)
    os.environ["IPYTHONDIR"] = str(home / "ipython")
