"""Is the first result the same for k = 3, 10 and 50? On the index and queries that
``scripts/bench_copy.py --only audio-real --out OUT --sources S`` left, with the code as it is now:

    python scripts/bench/k_check.py --out OUT --sources S [--n 20]

Runs the first ``n`` unrelated queries and ``n`` report-half queries (round robin over the
families) through ``Library.find_similar`` at each k and prints the disagreements.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.real_audio import REAL_FAMILIES, make_real_audio  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--sources", type=int, default=300)
    ap.add_argument("--n", type=int, default=20)
    args = ap.parse_args()
    from media_search import Library

    data = make_real_audio(Path(args.out), n_sources=args.sources)
    by_fam = {f: [q["query"] for q in data["queries"] if q["family"] == f and q["half"] == "report"] for f in REAL_FAMILIES}
    edited = [by_fam[f][i] for i in range(args.n) for f in REAL_FAMILIES if i < len(by_fam[f])][: args.n]
    groups = {"unrelated": data["unrelated"][: args.n], "report (edited copies)": edited}
    with Library(uri=str(Path(args.out) / "audio-real.db"), image_weights="random", audio_weights="random", device="cpu") as lib:
        for name, queries in groups.items():
            differ = 0
            for q in queries:
                firsts = {k: (lambda r: r[0].path if r else None)(lib.find_similar(q, k=k, kinds=["audio"])) for k in (3, 10, 50)}
                differ += len(set(firsts.values())) > 1
            print(f"{name}: first result differs between k = 3, 10, 50 on {differ}/{len(queries)} queries", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
