"""What one query holds while it is ranked (``Ctx``), and its widening vector searches (``candidates``).

Shared by the query's rankers (``query.search``, ``query.sounds``, ``query.text``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..config import Settings
    from ..embed.embedders import Embedders
    from ..store.milvus import MilvusStore
    from ..store.records import Hit, Row
    from ..types import Kind

__all__ = ["Ctx", "candidates", "HIT_BUDGET"]

#: Hits (rows per query vector times query vectors) a widened search may not pass: the files the
#: last search found are the nearest ones, a wider search only adds farther ones. A 10-minute query's
#: 120 windows against a 16-hour recording (11,520 windows, one file) widened to 16,384 rows each:
#: 2 million hits, 41 s and 700 MB, to learn that the library holds no other file.
HIT_BUDGET = 65_536


@dataclass
class Ctx:
    """What a query uses: the store, the embedders, the settings."""

    store: MilvusStore
    embedders: Embedders
    settings: Settings
    lengths: dict[str, float] = dataclasses.field(default_factory=dict)  # sound seconds per result path, from its rows
    # Searches that found every file the filter lets through (``candidates``), by kind, source,
    # exclusion and query vectors: (their groups, the rows per query vector, or ``sys.maxsize``
    # when a widened search left some rows out, the files).
    complete: dict[tuple[Any, ...], tuple[dict[str, list[Hit]], int, int]] = dataclasses.field(default_factory=dict)
    # A sound ranked against both sources (``sounds.read_sounds``): each source's shortlist and head, and
    # the rows of all of them, read in one call.
    sound_short: dict[str, tuple[list[str], set[str]]] = dataclasses.field(default_factory=dict)
    sound_rows: list[Row] = dataclasses.field(default_factory=list)
    # The files the fingerprint index finds for the query's sound, by source (``sounds.voted``).
    votes: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def ensure(self, kind: Kind) -> None:
        self.store.ensure(kind, self.embedders.spec(kind))


def candidates(
    lib: Ctx, kind: Kind, vecs: np.ndarray, want: int, exclude: str, source: str | None = None, *, per_file: int = 4
) -> dict[str, list[Hit]]:
    """Hits grouped per file, widening the search until ``want`` distinct files (or all) are found.

    A widened search leaves out the files already found (``exclude_files``): it looks for more
    files, and the rows it would return again cost their time (Milvus Lite reads each hit's whole
    row, vector included: a 10 s video query against 4 videos of 30 s widened from 40 to 160 rows a
    keyframe, 0.14 s of its 1.6, to learn that there is no fifth video). So the files found first
    keep the rows of the first search (their nearest ``limit`` a vector), the later ones those of
    the search that found them.

    A search that came back with fewer hits than its limit for every vector found every file
    there is: a later call of the same query (a larger ``k``'s wider pool) that wants more files
    than there are, or (when nothing was widened) starts past that many rows, takes them from it
    instead of searching again (the same groups: a video query against a few videos searched each
    view four times, 0.2 s at 10k files). A search is not widened past ``HIT_BUDGET`` hits (a long
    query has many vectors).

    ``per_file``: the rows asked for each file wanted, 4 (a video's keyframes, a sound's windows);
    1 where a file is one row (a picture)."""
    key = (kind, source, exclude, hashlib.blake2b(np.ascontiguousarray(vecs, np.float32).tobytes(), digest_size=16).digest())
    limit = max(want * per_file, 16)
    if key in lib.complete:
        known, rows, files = lib.complete[key]
        if limit >= rows or want > files:
            return known
    groups: dict[str, list[Hit]] = {}
    widened = False
    while True:
        per_query = lib.store.search(kind, vecs, limit, exclude_hash=exclude, source=source, exclude_files=list(groups))
        saturated = False
        for hits in per_query:
            saturated |= len(hits) >= limit
            for h in hits:
                groups.setdefault(h.file_id, []).append(h)
        if not saturated:  # every file; every row too, unless widened (then a larger limit reads again)
            rows = sys.maxsize if widened else max((len(h) for h in per_query), default=0)
            lib.complete[key] = (groups, rows, len(groups))
        wider = min(limit * 4, 16384)
        if len(groups) >= want or not saturated or limit >= 16384 or wider * len(vecs) > HIT_BUDGET:
            return groups
        limit, widened = wider, True
