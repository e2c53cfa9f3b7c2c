"""A Ray worker setup hook for ``tests/test_ray_index.py``: files named ``kill-*`` kill the worker
that handles them, the way a decoder crash or the OOM killer would (``os._exit``, no cleanup).

* ``kill-always``: every decode of it kills its worker;
* ``kill-once``: the first decode of it kills its worker (a marker file remembers);
* ``kill-write``: the first write of its rows kills the writer just after its first upsert, so its
  manifest entry is ``pending`` and part of its rows are written.

Markers live in ``$MEDIA_SEARCH_TEST_KILL_DIR``; without it the hook changes nothing.
"""

from __future__ import annotations

import os
from typing import Any


def _first(tag: str, name: str) -> bool:
    marker = os.path.join(os.environ["MEDIA_SEARCH_TEST_KILL_DIR"], f"{tag}-{name}")
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def install() -> None:
    if not os.environ.get("MEDIA_SEARCH_TEST_KILL_DIR"):
        return
    from media_search.indexing import pool
    from media_search.store.milvus import MilvusStore

    decode = pool.decode_job
    upsert = MilvusStore.upsert_rows

    def decode_job(job: Any) -> Any:
        name = os.path.basename(job.real)
        if name.startswith("kill-always") or (name.startswith("kill-once") and _first("decode", name)):
            os._exit(13)
        return decode(job)

    def upsert_rows(self: MilvusStore, kind: Any, columns: dict[str, Any]) -> int:
        n = upsert(self, kind, columns)
        names = {os.path.basename(p) for p in columns.get("path", [])}
        if any(m.startswith("kill-write") and _first("write", m) for m in sorted(names)):
            os._exit(13)
        return n

    pool.decode_job = decode_job
    MilvusStore.upsert_rows = upsert_rows  # type: ignore[method-assign]
