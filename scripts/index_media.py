#!/usr/bin/env python3
"""Bulk indexing: ``scripts/index_media.py FOLDER... [options]``.

The same code path and options as ``media-search index`` (see ``--help``):
incremental, resumable after a crash or Ctrl-C, decoding in worker processes,
a progress bar on a terminal, ``--json`` for one JSON report, exit 0 / 2 / 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
    from media_search.cli import main

    sys.exit(main(["index", *sys.argv[1:]]))
