"""nbval runs every notebook offline, replaying from the bundle committed beside it.

MMLAB_CACHE=replay means no socket is ever opened: a call that is not in the bundle raises
CacheMiss (naming the nearest recorded request) and fails its cell. The database is a fresh
temporary file, so the user's own cache and log are never touched.
"""

import os
import tempfile


def pytest_configure(config):
    os.environ["MMLAB_CACHE"] = "replay"
    os.environ["MMLAB_DB"] = os.path.join(tempfile.mkdtemp(prefix="mmlab-nbval-"), "replay.db")
    os.environ.setdefault("PLOTLY_RENDERER", "plotly_mimetype")
