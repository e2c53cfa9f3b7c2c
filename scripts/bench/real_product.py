"""The real-recording section of ``scripts/bench_copy.py --only audio-real`` through the
product: ``media_search_real`` indexes the library and runs the queries with the public API
(answers appended to a JSON-lines file, a stopped run resumes), ``real_tables`` and
``real_markdown`` make the per-half, per-family tables (media_search and Chromaprint)."""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench.real_audio import REAL_FAMILIES

#: Chromaprint's bit error rate up to which its nearest file counts as a copy (AcoustID-style
#: matching treats about a third of the bits wrong as the edge of a match).
FPCALC_COPY_BER = 0.35


def load_answers(path: Path | None) -> dict[str, dict]:
    """The answers ``media_search_real`` appended to ``path`` (JSON lines), by query path."""
    out: dict[str, dict] = {}
    if path is not None and path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                a = json.loads(line)
                out[a.pop("query")] = a
    return out


def media_search_real(data: dict, uri: str, ks: tuple[int, ...] = (3, 10, 50), k_check: int | None = None,
                      answers: Path | None = None) -> tuple[dict, dict]:  # fmt: skip
    """The real-recording section through the public API: ``Library.index`` on the library files,
    ``Library.find_similar`` on each query file at k = 10, and also at every k in ``ks`` for the
    first ``k_check`` queries of each family and half (all by default).

    Each answer is appended to ``answers`` (JSON lines) as it comes; a rerun skips the queries
    found there (an interrupted run resumes; the index is resumed by ``Library.index`` itself)."""
    from media_search import Library

    per_query = load_answers(answers)
    seen: dict[tuple[str, str], int] = defaultdict(int)
    with Library(uri=uri, image_weights="random", audio_weights="random", device="cpu") as lib:
        t = time.monotonic()
        report = lib.index(data["library"])
        index_s = time.monotonic() - t
        print(f"indexed {report.indexed} ({len(report.failed)} failed) in {index_s:.0f} s", file=sys.stderr, flush=True)
        t = time.monotonic()
        seen_k: dict[tuple[str, str], list[int]] = {}
        todo = data["queries"] + [{"query": u, "original": None, "family": "unrelated", "half": "-"} for u in data["unrelated"]]
        rank: list[float] = []
        for q in todo:
            seen[(q["family"], q["half"])] += 1
            rank.append(seen[(q["family"], q["half"])])
        # Round robin over families and halves, unrelated queries 4 a round: a run stopped early
        # has every cell alike, and most unrelated queries.
        rank = [r / 4 if q["family"] == "unrelated" else r for r, q in zip(rank, todo)]
        for n, (r, q) in enumerate(sorted(zip(rank, todo), key=lambda x: x[0])):
            counted = seen_k.setdefault((q["family"], q["half"]), [0])
            check = k_check is None or counted[0] < k_check
            if check:
                counted[0] += 1
            if q["query"] in per_query:
                continue
            tops = {}
            for k in sorted(set(ks) | {10} if check else {10}):
                t0 = time.monotonic()
                tops[k] = lib.find_similar(q["query"], k=k, kinds=["audio"])
                if k == 10:
                    ms10 = round(1000 * (time.monotonic() - t0))
            res = tops[10]
            top = res[0] if res else None
            per_query[q["query"]] = {
                "top": top.path if top else None,
                "copy": bool(top.copy) if top else False,
                "confidence": top.copy_confidence if top else None,
                "any_copy": any(m.copy for m in res),
                "others": [m.copy_confidence if m.copy else None for m in res[1:]],
                "flagged": [(m.path, m.copy) for m in res if m.copy],
                "k_same": len({(r[0].path if r else None) for r in tops.values()}) == 1 if check else None,
                "ms": ms10,
            }
            if answers is not None:
                with answers.open("a") as f:
                    f.write(json.dumps({"query": q["query"], **per_query[q["query"]]}) + "\n")
            if n % 100 == 99:
                print(f"{n + 1}/{len(todo)} queries, {time.monotonic() - t:.0f} s", file=sys.stderr, flush=True)
        query_s = time.monotonic() - t
    return per_query, {"index_s": round(index_s, 1), "indexed": report.indexed, "failed": len(report.failed),
                       "query_ms_median": round(float(np.median([a["ms"] for a in per_query.values()]))),
                       "query_s_total": round(query_s)}  # fmt: skip


def real_tables(data: dict, ms: dict, fp: dict) -> dict:
    """Per half and family: recall@1 of both methods, media_search's copy flag on the right first
    result, false flags (another file flagged copy anywhere in the results when it holds none of the
    source's samples, ``real_audio.shares_audio``; ``shared`` counts those that do), k-stability."""
    from bench.real_audio import shares_audio

    same = lambda a, b: a is not None and b is not None and Path(a).resolve() == Path(b).resolve()  # noqa: E731
    verdicts: dict[tuple[str, str], bool] = {}

    def flags(x: dict, q: dict) -> tuple[int, int]:
        """(false, shared): the other files flagged copy for query ``q``."""
        others = [p for p, f in x.get("flagged", []) if f and not same(p, q["original"])]
        shared = 0
        for p in others:
            if q["original"] is not None and (q["original"], p) not in verdicts:
                verdicts[(q["original"], p)] = shares_audio(q["original"], p)
            shared += q["original"] is not None and verdicts[(q["original"], p)]
        return len(others) - shared, shared

    out: dict = {}
    for half in ("calibration", "report"):
        rows: dict[str, dict] = {}
        qs = [q for q in data["queries"] if q["half"] == half and q["query"] in ms]
        for fam in [*REAL_FAMILIES, "overall"]:
            sel = [q for q in qs if fam == "overall" or q["family"] == fam]
            if not sel:
                continue
            a = [ms[q["query"]] for q in sel]
            ks = [x["k_same"] for x in a if x["k_same"] is not None]
            fl = [flags(x, q) for x, q in zip(a, sel)]
            rows[fam] = {
                "n": len(sel),
                "media_search": round(float(np.mean([same(x["top"], q["original"]) for x, q in zip(a, sel)])), 3),
                "fpcalc": round(float(np.mean([same(fp[q["query"]][0], q["original"]) for q in sel])), 3),
                "flagged": round(float(np.mean([same(x["top"], q["original"]) and x["copy"] for x, q in zip(a, sel)])), 3),
                "false_flags": sum(f for f, _ in fl),
                "shared": sum(s for _, s in fl),
                "k_same": f"{sum(ks)}/{len(ks)}",
                "fpcalc_printed": sum(fp[q["query"]][2] for q in sel),
                "fpcalc_false_flags": sum(fp[q["query"]][1] <= FPCALC_COPY_BER and not same(fp[q["query"]][0], q["original"]) for q in sel),
            }
        out[half] = rows
    un = [ms[u] for u in data["unrelated"] if u in ms]
    out["unrelated"] = {"n": len(un), "with_a_copy_flag": sum(x["any_copy"] for x in un),
                        "max_confidence": max([x["confidence"] or 0.0 for x in un if x["copy"]], default=0.0),
                        "fpcalc_false": sum(fp[u][1] <= FPCALC_COPY_BER for u in data["unrelated"] if u in ms),
                        "k_same": f"{sum(x['k_same'] for x in un if x['k_same'] is not None)}/{sum(x['k_same'] is not None for x in un)}"}  # fmt: skip
    return out


def real_markdown(r: dict) -> list[str]:
    u = r["tables"]["unrelated"]
    lines = [f"## audio, real recordings ({r['n_library']} library clips from {r['n_recordings']} recordings, "
             f"{r['n_queries']} queries, {u['n']} unrelated)", ""]  # fmt: skip
    for half in ("report", "calibration"):
        lines += [f"### {half} half", "",
                  "| family | n | media_search recall@1 | fpcalc recall@1 | fpcalc printed | source flagged copy | false copy flags (ms / fpcalc) | other files sharing the audio flagged | same top k=3/10/50 |",
                  "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for fam, row in r["tables"][half].items():
            lines.append(f"| {fam} | {row['n']} | {row['media_search']:.2f} | {row['fpcalc']:.2f} | {row['fpcalc_printed']} | {row['flagged']:.2f} | "
                         f"{row['false_flags']} / {row['fpcalc_false_flags']} | {row['shared']} | {row['k_same']} |")  # fmt: skip
        lines.append("")
    lines += [f"Unrelated queries (not in the library) with a `copy` result: {u['with_a_copy_flag']}/{u['n']} "
              f"(highest confidence {u['max_confidence']}); fpcalc nearest file under BER {FPCALC_COPY_BER}: {u['fpcalc_false']}/{u['n']}; "
              f"same top for k=3/10/50: {u['k_same']}.", f"Timing: {r['timing']}", ""]  # fmt: skip
    return lines
