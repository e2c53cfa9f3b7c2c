"""The whole-library pHash lookup of a Lite store's pictures: which rows are within a few bits of a
query's pHashes, at any library size, without a vector search.

An image query compares the pHash of each picture the embeddings gather, so that an edited copy
the embeddings rank low (a brightness change, with ``random`` weights) is still checked. That
made the vector search ask for 128 pictures a view where the ranking needs 32: Milvus Lite turns
every hit's whole row into Python objects, the 2,048-d vector included (about 0.08 ms a row), and
its scalar queries scan the collection (41 ms for one row at 10k). So the pHashes live in the
local-feature file beside the ``.db`` (``store.features``: written with the rows, forgotten with
them, filled from the collection once when missing) and this module holds them in memory as one
``uint64`` array: a lookup over 10k pictures is a fraction of a millisecond, and it finds a copy
whatever its rank. A server store has no such file: its queries keep the wide search.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .features import HashRow, LocalFeatures

__all__ = ["HashLookup", "Near", "hash_rows", "LOOKED_UP"]

#: The kinds whose pHashes are kept and looked up: pictures (a query's keyframe candidates still
#: come from the vector search, 4 rows a video, and have their pHashes compared there).
LOOKED_UP = ("image",)


@dataclass(frozen=True)
class Near:
    """A stored picture row within the asked distance of a query pHash."""

    id: str
    file_id: str
    path: str
    content_hash: str
    timestamp: float | None
    phash: str
    bits: int


class HashLookup:
    """One collection's pHashes in memory, read again after its ``generations`` entry changes (a
    write of this process: Lite lets one process hold the ``.db``)."""

    def __init__(self, local: LocalFeatures, coll: str) -> None:
        self.local, self.coll = local, coll
        self._lock = threading.Lock()
        self._seen = -1
        self._rows: list[HashRow] = []
        self._hashes = np.zeros(0, np.uint64)

    def ready(self) -> bool:
        """Whether the file holds every row of the collection (else ``MilvusStore`` fills it)."""
        with self._lock:
            return self._load()

    def _load(self) -> bool:
        generation = self.local.generations.get(self.coll, 0)
        if self._seen == generation:
            return True
        rows = self.local.hashes(self.coll)
        if rows is None:
            return False
        keep = [r for r in rows if r[5]]
        self._rows = keep
        self._hashes = np.array([int(r[5], 16) for r in keep], dtype=np.uint64)
        self._seen = generation
        return True

    def near(self, hashes: Sequence[int], bits: int, *, exclude_hash: str | None = None, limit: int) -> list[Near]:
        """The ``limit`` nearest rows within ``bits`` of any of ``hashes``, nearest first (ties by
        path), leaving out the rows of ``exclude_hash`` (the query's own bytes)."""
        with self._lock:
            self._load()
            rows, stored = self._rows, self._hashes
        if not len(stored) or not hashes:
            return []
        dist = np.min([np.bitwise_count(stored ^ np.uint64(h)) for h in hashes], axis=0)
        found = [(int(dist[i]), rows[i]) for i in np.flatnonzero(dist <= bits)]
        found = [(d, r) for d, r in found if r[3] != exclude_hash]
        found.sort(key=lambda x: (x[0], x[1][2], x[1][4] or 0.0))
        return [Near(r[0], r[1], r[2], r[3], r[4], r[5], d) for d, r in found[:limit]]


def hash_rows(columns: dict[str, Sequence[object] | np.ndarray]) -> list[HashRow]:
    """The pHash rows of rows given as columns (``MilvusStore.upsert_rows``)."""
    n = len(columns["id"])
    times = columns.get("timestamp")
    phashes = columns.get("phash")
    if phashes is None:  # a writer without copy signals
        phashes = [""] * n
    return [
        (str(columns["id"][i]), str(columns["file_id"][i]), str(columns["path"][i]), str(columns["content_hash"][i]),
         None if times is None else float(times[i]), str(phashes[i] or ""))  # type: ignore[arg-type,index]
        for i in range(n)
    ]  # fmt: skip
