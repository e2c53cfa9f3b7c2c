#!/usr/bin/env python3
"""Bulk indexing script: the same code path and options as `media-search index`.

    python scripts/index_media.py FOLDER... [--json] [--no-delete] [--uri URI]
"""

import sys

from media_search.cli import main

if __name__ == "__main__":
    sys.exit(main(["index", *sys.argv[1:]]))
