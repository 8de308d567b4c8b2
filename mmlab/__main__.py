"""``python -m mmlab`` is the ``mmlab`` command."""

import sys

from .cli import main

sys.exit(main())
