"""The audio copy path offline: the product's landmark fingerprint, the hash-index vote
(``signals.print_index.vote`` on in-memory arrays instead of sqlite), ``audio.match`` and
``audio.decide``, on the real-recording benchmark's library and queries, without Milvus or Cnn14
(minutes instead of the product run's hours on a shared 2-core machine).

    H17_OUT=/tmp/b17q python scripts/bench/fingerprint_offline.py report|calibration

``H17_OUT`` is a folder that ``scripts/bench_copy.py --only audio-real --out`` (or
``real_audio.make_real_audio``) filled; library fingerprints are cached in /tmp.
"""
import sys, time, pickle, os
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1])); sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import numpy as np
from bench.real_audio import plan_real_audio, REAL_FAMILIES
from media_search.decode.audio import decode_audio
from media_search.signals import audio as fa

OUT = Path(os.environ.get("H17_OUT", "/tmp/b17"))
library, cands, halves, unrelated, _ = plan_real_audio(OUT, n_sources=100)
cache = Path(f"/tmp/h17_lib_{fa.FP_VERSION}.pkl")
prints = pickle.loads(cache.read_bytes()) if cache.exists() else {}
miss = [p for p in library if p not in prints]
if miss:
    t = time.time()
    for p in miss:
        a = decode_audio(p)
        prints[p] = fa.pack(fa.landmarks(a.samples, a.sr))
    cache.write_bytes(pickle.dumps(prints)); print("lib prints", len(miss), time.time() - t, file=sys.stderr)
files = library
sizes = [len(prints[p]) for p in files]
allv = np.concatenate([prints[p] for p in files])
H, T = fa.unpack(allv); F = np.repeat(np.arange(len(files)), sizes)
o = np.argsort(H, kind="stable"); H, T, F = H[o], T[o], F[o]

def cand(q, maxc=16, min_hits=3):
    best = {}
    for scale in fa.SCALES:
        qh = q.hashes(scale)
        lo = np.searchsorted(H, qh, "left"); hi = np.searchsorted(H, qh, "right"); n = hi - lo
        if n.sum() == 0: continue
        qi = np.repeat(np.arange(len(qh)), n)
        li = np.concatenate([np.arange(a, b) for a, b in zip(lo[n > 0], hi[n > 0])])
        bins = np.floor((T[li] - q.t1[qi] * scale) / 4.0).astype(np.int64)
        key = np.unique(np.stack([F[li], bins, q.t1[qi] // fa.TILE], 1), axis=0)
        fb, c = np.unique(key[:, :2], axis=0, return_counts=True)
        for (f, _), cc in zip(fb.tolist(), c.tolist()):
            if cc > best.get(f, 0): best[f] = cc
    r = sorted((f for f, c in best.items() if c >= min_hits), key=lambda f: -best[f])
    return r[:maxc]

def run(qpaths):
    res = []
    for qp, orig, fam, half in qpaths:
        a = decode_audio(qp)
        q = fa.landmarks(a.samples, a.sr)
        cs = cand(q)
        ms = fa.match(q, [prints[files[c]] for c in cs]) if cs else []
        sc = sorted(zip(ms, cs), key=lambda x: -x[0].votes)
        top = sc[0] if sc else None
        res.append(dict(fam=fam, half=half, orig=orig, dur=a.duration, n=len(q), slots=len(np.unique(q.t1 // fa.TILE)),
                        top=files[top[1]] if top else None, votes=top[0].votes if top else 0,
                        runner=top[0].runner_up if top else 0, hits=top[0].hits if top else 0,
                        second=sc[1][0].votes if len(sc) > 1 else 0,
                        allc=[(files[c]==orig, m.votes, m.runner_up, m.repeats) for m, c in sc],
                        src_votes=next((m.votes for m, c in sc if files[c] == orig), 0)))
    return res

if __name__ == "__main__":
    half = sys.argv[1] if len(sys.argv) > 1 else "calibration"
    qs = []
    for fam in REAL_FAMILIES:
        for i, orig in enumerate(cands):
            if halves[orig] != half: continue
            d = OUT / "audio-real" / "queries" / fam
            m = list(d.glob(f"{i:04d}_*"))
            m = [x for x in m if ".tmp" not in x.name]
            if m: qs.append((str(m[0]), orig, fam, half))
    qs += [(u, None, "unrelated", half) for u in unrelated]
    t = time.time(); res = run(qs); print("queries", len(qs), time.time() - t, file=sys.stderr)
    pickle.dump(res, open(f"/tmp/h17_res_{half}_{fa.FP_VERSION}.pkl", "wb"))
    for fam in REAL_FAMILIES + ["unrelated"]:
        r = [x for x in res if x["fam"] == fam]
        if fam == "unrelated":
            v = sorted(x["votes"] for x in r); print(fam, len(r), "top votes max", v[-5:], "flagged", sum(any(fa.decide(v, x["slots"], ru, rep).copy for s, v, ru, rep in x["allc"]) for x in r)); continue
        ok = [x["top"] == x["orig"] for x in r]
        fl = [x["top"] == x["orig"] and fa.decide(x["allc"][0][1], x["slots"], x["allc"][0][2], x["allc"][0][3]).copy for x in r]
        other = sum(fa.decide(v, x["slots"], ru, rep).copy for x in r for s, v, ru, rep in x["allc"] if not s)
        wrong = [x["votes"] for x in r if x["top"] != x["orig"]]
        print(f"{fam:10s} n={len(r)} r@1={np.mean(ok):.2f} flagged={np.mean(fl):.2f} other_files_flagged={other} src_votes_min={sorted(x['src_votes'] for x in r)[:6]} second_max={sorted(x['second'] for x in r)[-4:]} wrongtop={sorted(wrong)[-4:]}")
