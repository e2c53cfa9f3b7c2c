#!/usr/bin/env python3
"""Latency of the landmark hash index (``store.prints`` + ``signals.print_index.vote``) at a
given number of 5 s audio windows, and through the product at the smaller size.

    python scripts/bench_print_index.py [--windows 10000 100000] [--per-window 900] [--queries 20]

Postings are real landmark hashes (of the sample sounds and any real recordings
``scripts/bench/real_audio.py`` finds), spread over the hash space by a per-copy XOR so that each
hash's posting list is as long as in a library of that many distinct windows; ``--per-window``
values per window (a 5 s window of busy audio gives about 900). Reports the sqlite file size, the
build time and the median and worst lookup + vote time of queries of 1 to 5 s of real audio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _sounds(n: int) -> list[str]:
    from bench.real_audio import find_recordings

    root = Path(__file__).resolve().parents[1] / "sample_media" / "audio"
    found = [p for p, d in find_recordings() if d >= 2.0][:n] if n else []
    return sorted(str(p) for p in root.iterdir()) + found


def main(argv: list[str] | None = None) -> int:
    from media_search.signals import audio as fa
    from media_search.signals.print_index import vote
    from media_search.decode.audio import decode_audio
    from media_search.store.prints import PrintIndex

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--windows", type=int, nargs="+", default=[10000, 100000])
    ap.add_argument("--per-window", type=int, default=900)
    ap.add_argument("--queries", type=int, default=20)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    sounds = _sounds(200)
    base = np.concatenate([fa.unpack(fa.pack(fa.landmarks(*(lambda a: (a.samples, a.sr))(decode_audio(p)))))[0] for p in sounds])
    queries = []
    for p in sounds[: args.queries]:
        a = decode_audio(p)
        d = min(a.duration, float(rng.uniform(1, 5)))
        s = float(rng.uniform(0, a.duration - d))
        queries.append(fa.landmarks(a.samples[int(s * a.sr) : int((s + d) * a.sr)], a.sr))
    print(f"{len(base)} real hashes from {len(sounds)} recordings; {len(queries)} queries of 1-5 s")
    for n_win in args.windows:
        with tempfile.TemporaryDirectory() as tmp:
            store = SimpleNamespace(is_lite=True, uri=str(Path(tmp) / "x.db"), prefix="", writes=0)
            idx = PrintIndex(store, fa.FP_VERSION)  # type: ignore[arg-type]
            db = idx.db
            t0 = time.monotonic()
            db.execute("BEGIN")
            for w0 in range(0, n_win, 10000):  # 10k windows at a time
                ws = np.arange(w0, min(n_win, w0 + 10000))
                h = base[rng.integers(0, len(base), (len(ws), args.per_window))] ^ rng.integers(0, 1 << 23, (len(ws), 1))
                t = rng.integers(0, 5 * 62, (len(ws), args.per_window))
                f = np.repeat(ws + 1, args.per_window)
                packed = (h << 31) | t  # each window's landmarks as ``files.prints`` holds them
                db.executemany("INSERT INTO files (fid, file_id, path, source, stamp, prints) VALUES (?, ?, ?, 'audio', '', ?)",
                               ((int(w) + 1, f"{w:x}", f"/w{w}", packed[i].tobytes()) for i, w in enumerate(ws)))  # fmt: skip
                idx._insert(np.stack([h.ravel(), f, t.ravel()], 1))
            db.execute("COMMIT")
            build = time.monotonic() - t0
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the size on disk once the index is closed
            size = sum(f.stat().st_size for f in Path(tmp).iterdir()) / 2**20
            times = []
            for q in queries * 2:
                t0 = time.monotonic()
                vote(idx, q)
                times.append(1000 * (time.monotonic() - t0))
            times = times[len(queries):]  # the first pass warms the page cache
            print(f"{n_win} windows ({idx.n_postings()} postings, {size:.0f} MiB, built in {build:.0f} s): "
                  f"lookup + vote median {np.median(times):.0f} ms, worst {max(times):.0f} ms")
            idx.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
