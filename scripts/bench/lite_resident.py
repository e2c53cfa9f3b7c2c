"""What a store keeps in memory as it fills with one long recording's rows (issue 19).

Writes audio rows as the indexer does (``MilvusStore.upsert_rows``, 128 rows per part: a random
unit vector of 2,048 and a fingerprint of 875 hashes each, the mean a real 16-hour index holds)
into a fresh store, and prints this process's RSS after each 11,520 rows (16 hours of sound at a
5 s hop) and the peak within each block. Run it with the CLI's heap settings, which
``media-search index`` sets for itself (``cli._lean_heap``)::

    ARROW_DEFAULT_MEMORY_POOL=system MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=1048576 \\
        python scripts/bench/lite_resident.py /tmp/resident.db --blocks 4
    # against a Milvus server: the same with its URI instead of a .db path

No model runs: this measures the store alone, the part of an index run's memory that grows with
what the store holds (Milvus Lite reads every segment of a collection into this process,
``milvus_lite/storage/segment.py`` ``Segment.load``; a server keeps them in its own).
"""

from __future__ import annotations

import argparse
import shutil
import threading
import time
import uuid

import numpy as np

BLOCK_SECONDS = 16 * 3600
FP_HASHES = 875


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("uri", help="a fresh Lite .db path (removed first) or a Milvus server URI")
    ap.add_argument("--blocks", type=int, default=4, help="blocks of 16 hours of rows")
    args = ap.parse_args()

    from media_search.config import is_lite_uri
    from media_search.embed.audio import AUDIO_HOP, preprocess_id
    from media_search.embed.spec import ModelSpec
    from media_search.indexing.stream import PART_ROWS as PART
    from media_search.store.lite import write_buffer
    from media_search.store.milvus import MilvusStore

    write_buffer()
    lite = is_lite_uri(args.uri)
    if lite:
        shutil.rmtree(args.uri, ignore_errors=True)
    rows_per_block = int(BLOCK_SECONDS / AUDIO_HOP)
    spec = ModelSpec("panns-cnn14", "random:0", 2048, preprocess=preprocess_id())
    store = MilvusStore(args.uri, prefix=f"resident_{uuid.uuid4().hex[:8]}_")
    store.ensure("audio", spec)
    peak = [0]

    def sample() -> None:
        while True:
            peak[0] = max(peak[0], _rss())
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()
    print(f"start: {_rss() >> 20} MB", flush=True)
    rng = np.random.default_rng(0)
    fid, n, t0 = uuid.uuid4().hex, 0, time.time()
    for block in range(args.blocks):
        peak[0] = 0
        for _ in range(rows_per_block // PART):
            v = rng.standard_normal((PART, 2048)).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            store.upsert_rows("audio", {
                "id": [uuid.uuid4().hex for _ in range(PART)], "vector": v, "file_id": [fid] * PART,
                "path": ["/library/long.mp3"] * PART, "content_hash": [fid] * PART,
                "timestamp": list(np.arange(n, n + PART) * AUDIO_HOP), "duration": [float(BLOCK_SECONDS * args.blocks)] * PART,
                "source": ["audio"] * PART, "fp": [rng.integers(0, 2**23, FP_HASHES) for _ in range(PART)],
            })  # fmt: skip
            n += PART
        store.flush()
        time.sleep(3)  # Lite's background merge of the block's last segments
        print(f"{n} rows ({n * AUDIO_HOP / 3600:.0f} h): RSS {_rss() >> 20} MB, peak in the block {peak[0] >> 20} MB, "
              f"{time.time() - t0:.0f} s", flush=True)  # fmt: skip
    if not lite:  # a server's collections outlive this run
        for kind in ("audio", "files"):
            store.drop(kind)
    store.close()


if __name__ == "__main__":
    main()
