"""``python -m media_search``: the same as the ``media-search`` command."""

import sys

from .cli import main

sys.exit(main())
