#!/usr/bin/env python3
"""Copy detection benchmark: is an edited copy's original ranked first?

    python scripts/bench_copy.py [--out /tmp/bench_copy] [--per-family N] [--only images|audio|videos|audio-real]
        [--sources N] [--k-check N] [--per-cell N] [--answered-only]   # the last four: audio-real

``--only audio-real`` (``scripts/bench/real_audio.py``, ``real_product.py``) uses real recordings from Debian packages
instead of generated tunes: a library of 1,000+ clips, edited copies of 300 of them split into a
calibration half and a report half (tables per half; tune only on the calibration half), 100
unrelated recordings, and the first result checked for k = 3, 10 and 50.

Generates a library and edited copies (``scripts/bench/copy_media.py``: image families crop
60-80 %, downscale, JPEG 20, rotation 8-15 deg, brightness/contrast, grayscale, mirror, text and
logo overlay, screenshot frame, crop + JPEG 20; audio families 2-5 s snippet, 10 dB SNR noise,
gain, 24 kbit/s mp3, resampling to 8-16 kHz, tempo +-4-5 %, 1-2 s clips; ``scripts/bench/copy_video.py``:
pans over real photos, edited by re-encoding at 320x180, trimming, mirroring, speeding up, cropping,
grayscale, overlaid boxes and 15 fps), then reports recall@1 per family for

* **media_search**: the whole product path -- ``Library(image_weights="random",
  audio_weights="random")`` indexes the library (Milvus Lite), ``Library.search`` each query;
  a hit is the original ranked first. Also: how often that first result is flagged ``copy``,
  and how many unrelated queries (not in the library) got any ``copy`` flag;
* **pHash / dHash** (``imagehash``): nearest Hamming distance over the library;
* **Chromaprint** (``fpcalc -raw``): lowest bit error rate over aligned offsets (no fingerprint
  at all, which fpcalc gives for short clips, is a miss).

Writes ``bench_copy.json`` and ``bench_copy.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.copy_media import AUDIO_FAMILIES, IMAGE_FAMILIES, make_audio, make_images  # noqa: E402
from bench.copy_video import VIDEO_FAMILIES, make_videos  # noqa: E402
from bench.real_audio import make_real_audio  # noqa: E402
from bench.real_product import load_answers, media_search_real, real_markdown, real_tables  # noqa: E402


# -- baselines ---------------------------------------------------------------------------------------
def imagehash_rank(data: dict) -> dict[str, dict[str, str]]:
    """Per method, query -> nearest library file by Hamming distance."""
    import imagehash
    from PIL import Image

    out: dict[str, dict[str, str]] = {}
    for name, fn in (("pHash", imagehash.phash), ("dHash", imagehash.dhash)):
        lib = [(p, fn(Image.open(p).convert("RGB"))) for p in data["library"]]
        out[name] = {}
        for q in data["queries"]:
            h = fn(Image.open(q["query"]).convert("RGB"))
            out[name][q["query"]] = min(lib, key=lambda item: (item[1] - h, item[0]))[0]
    return out


#: Where ``_fpcalc`` keeps its outputs (``--out``/fpcalc-cache.json; None: no cache).
FPCALC_CACHE: dict = {"path": None, "data": None}


def _fpcalc(path: str) -> np.ndarray:
    cache = FPCALC_CACHE["path"]
    if cache is not None:
        if FPCALC_CACHE["data"] is None:
            FPCALC_CACHE["data"] = json.loads(Path(cache).read_text()) if Path(cache).exists() else {}
        st = Path(path).stat()
        key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
        if key not in FPCALC_CACHE["data"]:
            FPCALC_CACHE["data"][key] = _fpcalc_run(path).tolist()
            if len(FPCALC_CACHE["data"]) % 50 == 0:
                Path(cache).write_text(json.dumps(FPCALC_CACHE["data"]))
        return np.asarray(FPCALC_CACHE["data"][key], dtype=np.int64).astype(np.uint32)
    return _fpcalc_run(path)


def _fpcalc_run(path: str) -> np.ndarray:
    # fpcalc may exit non-zero after printing a good fingerprint ("Error decoding audio frame (End of
    # file)" on some wav files): trust the JSON, not the exit status.
    r = subprocess.run(["fpcalc", "-raw", "-json", path], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            return np.asarray(json.loads(line).get("fingerprint") or [], dtype=np.int64).astype(np.uint32)
    return np.zeros(0, dtype=np.uint32)


_POP = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _ber(q: np.ndarray, c: np.ndarray, min_overlap: int = 4) -> float:
    """Lowest bit error rate of ``q`` slid along ``c`` (overlap at least ``min_overlap`` items)."""
    best = 1.0
    for off in range(-len(q) + min_overlap, len(c) - min_overlap + 1):
        a0, b0 = max(0, -off), max(0, off)
        n = min(len(q) - a0, len(c) - b0)
        if n < min_overlap:
            continue
        x = np.bitwise_xor(q[a0 : a0 + n], c[b0 : b0 + n])
        best = min(best, float(_POP[x.view(np.uint8)].sum()) / (32 * n))
    return best


def _ber_all(q: np.ndarray, lib: list[np.ndarray], min_overlap: int = 4) -> np.ndarray:
    """Lowest bit error rate of ``q`` against every library print at once, over offsets where the
    prints overlap by 3/4 of the shorter one (1.0 where none does)."""
    sizes = np.array([len(c) for c in lib])
    if not len(q) or not sizes.sum():
        return np.ones(len(lib))
    cat = np.concatenate([c for c in lib if len(c)])
    fidx = np.repeat(np.arange(len(lib)), sizes)
    local = np.arange(len(cat)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    pop = _POP[(q[:, None] ^ cat[None, :]).view(np.uint8)].reshape(len(q), len(cat), 4).sum(axis=2)
    width = int(sizes.max()) + len(q)
    key = fidx[None, :] * width + (local[None, :] - np.arange(len(q))[:, None] + len(q))
    bits = np.bincount(key.ravel(), weights=pop.ravel(), minlength=len(lib) * width).reshape(len(lib), width)
    n = np.bincount(key.ravel(), minlength=len(lib) * width).reshape(len(lib), width)
    # At least 3/4 of the shorter print must overlap: a handful of items matches anything.
    need = np.maximum(min(min_overlap, len(q)), np.ceil(0.75 * np.minimum(len(q), sizes)))[:, None]
    ber = np.where(n >= need, bits / np.maximum(32 * n, 1), 1.0)
    return ber.min(axis=1)


def chromaprint_answers(data: dict, queries: list[str] | None = None) -> dict[str, tuple[str | None, float, bool]]:
    """Per query: (nearest library file or None, its bit error rate, whether fpcalc printed the query)."""
    lib = [(p, _fpcalc(p)) for p in data["library"]]
    prints = [fc for _, fc in lib]
    out: dict[str, tuple[str | None, float, bool]] = {}
    for q in queries if queries is not None else [q["query"] for q in data["queries"]]:
        fq = _fpcalc(q)
        if len(fq) == 0:
            out[q] = (None, 1.0, False)
            continue
        ber = _ber_all(fq, prints)
        best = min(zip(ber.tolist(), (p for p, _ in lib)))
        out[q] = (best[1] if best[0] < 1.0 else None, best[0], True)
    return out


def chromaprint_rank(data: dict) -> dict[str, dict[str, str | None]]:
    return {"Chromaprint": {q: a[0] for q, a in chromaprint_answers(data).items()}}


# -- the product ---------------------------------------------------------------------------------------
def media_search_rank(data: dict, kind: str, uri: str) -> tuple[dict[str, dict], dict]:
    from media_search import Library

    per_query: dict[str, dict] = {}
    with Library(uri=uri, image_weights="random", audio_weights="random", device="cpu") as lib:
        t = time.monotonic()
        report = lib.index(data["library"])
        index_s = time.monotonic() - t
        t = time.monotonic()
        for q in data["queries"] + [{"query": u, "original": None, "family": "unrelated"} for u in data["unrelated"]]:
            res = lib.search(q["query"], k=5, kinds=[kind])
            top = res.results[0] if res.results else None
            per_query[q["query"]] = {
                "top": top.path if top else None,
                "copy": bool(getattr(top, "copy", False)) if top else False,
                "confidence": getattr(top, "copy_confidence", None) if top else None,
                "any_copy": any(getattr(m, "copy", False) for m in res.results),
                "others": [getattr(m, "copy_confidence", None) for m in res.results[1:]],
            }
        query_s = time.monotonic() - t
    n = len(data["queries"]) + len(data["unrelated"])
    return {"media_search": per_query}, {"index_s": round(index_s, 1), "indexed": report.indexed,
                                         "failed": len(report.failed), "query_ms": round(1000 * query_s / max(n, 1))}  # fmt: skip


# -- report -------------------------------------------------------------------------------------------
def recall_table(data: dict, families: list[str], methods: dict[str, dict]) -> dict:
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for method, answers in methods.items():
        hits: dict[str, list[int]] = defaultdict(list)
        for q in data["queries"]:
            a = answers.get(q["query"])
            top = a["top"] if isinstance(a, dict) else a
            ok = top is not None and Path(top).resolve() == Path(q["original"]).resolve()
            hits[q["family"]].append(int(ok))
            hits["overall"].append(int(ok))
        for fam in [*families, "overall"]:
            table[method][fam] = round(float(np.mean(hits[fam])), 3) if hits[fam] else float("nan")
    return dict(table)


def copy_flags(data: dict, answers: dict) -> dict:
    flagged = defaultdict(list)
    for q in data["queries"]:
        a = answers[q["query"]]
        ok = a["top"] is not None and Path(a["top"]).resolve() == Path(q["original"]).resolve()
        flagged[q["family"]].append(int(ok and a["copy"]))
        flagged["overall"].append(int(ok and a["copy"]))
    false_pos = sum(answers[u]["any_copy"] for u in data["unrelated"])
    wrong = sum(1 for q in data["queries"] for c in answers[q["query"]]["others"] if c is not None and c >= 0.5)
    return {"top1_flagged_copy": {f: round(float(np.mean(v)), 3) for f, v in flagged.items()},
            "unrelated_with_a_copy": f"{false_pos}/{len(data['unrelated'])}", "non_originals_flagged": wrong}  # fmt: skip


def markdown(results: dict) -> str:
    lines = ["# Copy detection benchmark (recall@1)", "", f"Command: `{results['command']}`", ""]
    if "audio-real" in results:
        lines += real_markdown(results["audio-real"])
    for kind in ("images", "audio", "videos"):
        if kind not in results:
            continue
        r = results[kind]
        fams = [*r["families"], "overall"]
        lines += [f"## {kind} ({r['n_library']} library files, {r['n_queries']} queries)", "",
                  "| method | " + " | ".join(fams) + " |", "|---|" + "---|" * len(fams)]  # fmt: skip
        for method, row in r["recall_at_1"].items():
            lines.append(f"| {method} | " + " | ".join(f"{row[f]:.2f}" for f in fams) + " |")
        c = r["copy_flags"]
        lines += ["", "media_search `copy=True` on the correct first result: "
                  + ", ".join(f"{f} {v:.2f}" for f, v in c["top1_flagged_copy"].items()),
                  f"Unrelated queries with any `copy` result: {c['unrelated_with_a_copy']}; "
                  f"other (non-original) results flagged copy: {c['non_originals_flagged']}.",
                  f"Timing: {r['timing']}", ""]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="/tmp/bench_copy")
    ap.add_argument("--per-family", type=int, default=None, help="originals per family (default: all)")
    ap.add_argument("--only", choices=["images", "audio", "videos", "audio-real"])
    ap.add_argument("--sources", type=int, default=300, help="audio-real: recordings edited into queries")
    ap.add_argument("--per-cell", type=int, default=None, help="audio-real: queries evaluated per family and half (default: all)")
    ap.add_argument("--answered-only", action="store_true", help="audio-real: tables from the answers file of a stopped run")
    ap.add_argument("--k-check", type=int, default=None, help="audio-real: queries per family and half also run at k=3 and 50")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"command": "python scripts/bench_copy.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    sections = (("images", "image", make_images, imagehash_rank, IMAGE_FAMILIES),
                ("audio", "audio", make_audio, chromaprint_rank, AUDIO_FAMILIES),
                ("videos", "video", make_videos, lambda data: {}, VIDEO_FAMILIES))  # fmt: skip
    if args.only == "audio-real":
        data = make_real_audio(out, per_family=args.per_family, n_sources=args.sources)
        if args.per_cell:  # the first N queries of each family and half
            cell: dict[tuple[str, str], int] = defaultdict(int)
            keep = []
            for q in data["queries"]:
                cell[(q["family"], q["half"])] += 1
                if cell[(q["family"], q["half"])] <= args.per_cell:
                    keep.append(q)
            data["queries"] = keep
        answers = out / f"audio-real-answers-{args.sources}.jsonl"
        if args.answered_only:  # the tables from the answers a stopped run left, no index, no search
            ms = load_answers(answers)
            data["queries"] = [q for q in data["queries"] if q["query"] in ms]
            data["unrelated"] = [u for u in data["unrelated"] if u in ms]
            timing = {"query_ms_median": round(float(np.median([a["ms"] for a in ms.values()]))),
                      "query_ms_p90": round(float(np.percentile([a["ms"] for a in ms.values()], 90)))}  # fmt: skip
        else:
            ms, timing = media_search_real(data, str(out / "audio-real.db"), k_check=args.k_check, answers=answers)
        FPCALC_CACHE["path"] = str(out / "fpcalc-cache.json")
        fp = chromaprint_answers(data, [q["query"] for q in data["queries"]] + data["unrelated"])
        Path(FPCALC_CACHE["path"]).write_text(json.dumps(FPCALC_CACHE["data"]))
        results["audio-real"] = {"n_library": len(data["library"]), "n_recordings": data["n_recordings"],
                                 "n_queries": len(data["queries"]), "tables": real_tables(data, ms, fp),
                                 "timing": timing, "answers": ms}  # fmt: skip
    for name, kind, make, baseline, families in sections:
        if args.only not in (None, name):
            continue
        data = make(out, per_family=args.per_family)
        ms, timing = media_search_rank(data, kind, str(out / f"{name}.db"))
        methods = {**ms, **baseline(data)}
        results[name] = {"families": families, "n_library": len(data["library"]), "n_queries": len(data["queries"]),
                         "recall_at_1": recall_table(data, families, methods),
                         "copy_flags": copy_flags(data, ms["media_search"]), "timing": timing, "answers": ms["media_search"]}  # fmt: skip
    (out / "bench_copy.json").write_text(json.dumps(results, indent=1))
    md = markdown(results)
    (out / "bench_copy.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
