#!/usr/bin/env python3
"""Library-wide duplicates benchmark: pair precision and recall, and the grouping time.

    python scripts/bench_duplicates.py [--out /tmp/bench_dups] [--per-family N] [--sections quality,timing,real]
                                       [--sizes 1000,10000] [--real-sizes 1000,2000] [--peers-python /tmp/peers-venv/bin/python]

**quality** (real files): ``scripts/bench/copy_media.py`` makes originals (sample photos, real
photos and scans from scikit-image and matplotlib, procedural paintings; sample sounds, espeak-ng
speech, generated songs and noise textures), their edited copies (10 picture and 7 sound edit
families) and unrelated files; this script adds videos that show an original photo from a given
time and videos whose soundtrack holds an original sound from a given offset. Everything is
indexed with ``media-search index`` (random weights, Milvus Lite), then ``media-search duplicates
--json`` runs. The truth: each original with its edits and the videos made from it is one group.
Pairs are the unordered pairs of files inside one reported group (for every tool); precision and
recall count them against the truth's pairs, over everything and per part. On the image part
(the same pictures, flattened into one folder) the script also runs imagededup (PHash, CNN) and
the ``czkawka`` PyPI bindings, in ``--peers-python`` (a venv where they are installed).

**timing** (synthetic store rows, *only* for the grouping step's time): a fresh Lite store is
filled with N image rows (random unit vectors, random pHashes, 10 % of them near-copies by pHash,
256 random SIFT-like stored local features each, a near-copy sharing its source's), N/50 videos
of 30 keyframes and N/10 sounds of 6 fingerprinted windows, then ``find_duplicates`` runs on it
twice (the second reuses the kept pair verdicts). The files do not exist: stored-feature screens
run for real, decoded checks fail at once (counted).

**real** (real files on disk, ``scripts/bench/dup_library.py``): N pictures cut from the real
photos and wallpapers on this machine, N/50 videos, N/10 sounds, indexed with ``media-search
index``; ``media-search duplicates --json`` runs, runs again (verdicts kept), then 1 % more files
are made and indexed and it runs a third time.

Writes ``bench_duplicates.json`` and ``.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.copy_media import make_audio, make_images  # noqa: E402

FPS = 10


# -- media --------------------------------------------------------------------------------------------
def _write_video(path: Path, frames: list[np.ndarray], sound: Path | None = None) -> None:
    import cv2

    h, w = frames[0].shape[:2]
    silent = path.with_suffix(".silent.mp4") if sound else path
    out = cv2.VideoWriter(str(silent), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
    for f in frames:
        out.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    out.release()
    if sound:
        subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(silent), "-i", str(sound), "-c:v", "copy",
                        "-c:a", "aac", "-b:a", "128k", "-shortest", str(path)], check=True)  # fmt: skip
        silent.unlink()


def make_videos(out: Path, images: dict, audio: dict, n: int = 6) -> list[dict]:
    """Videos showing an original photo from ``at`` s, and videos whose soundtrack holds an original sound."""
    import soundfile as sf
    from PIL import Image

    from bench.copy_media import painting
    from media_search.decode.audio import decode_audio

    vdir = out / "videos"
    shutil.rmtree(vdir, ignore_errors=True)
    vdir.mkdir(parents=True)
    rng = np.random.default_rng(7)
    made = []
    originals = sorted({q["original"] for q in images["queries"]})
    for i, orig in enumerate(originals[:: max(1, len(originals) // n)][:n]):
        pic = np.asarray(Image.open(orig).convert("RGB").resize((480, 360)))
        filler = [np.asarray(Image.fromarray(painting(rng, 500 + 2 * i + k)).resize((480, 360))) for k in range(2)]
        at = 2.0 + i % 3
        frames = [filler[0]] * int(at * FPS) + [pic] * 30 + [filler[1]] * 20
        path = vdir / f"shows_{Path(orig).stem}.mp4"
        _write_video(path, frames)
        made.append({"video": str(path), "original": orig, "time": at})
    sounds = sorted({q["original"] for q in audio["queries"]})
    for i, orig in enumerate(sounds[:: max(1, len(sounds) // n)][:n]):
        a = decode_audio(orig)
        at = 1.0 + i % 3
        pre = rng.normal(0, 0.02, int(at * a.sr)).astype(np.float32)
        track = np.concatenate([pre, a.samples[: int(8 * a.sr)], rng.normal(0, 0.02, a.sr).astype(np.float32)])
        wav = vdir / f"track_{i}.wav"
        sf.write(wav, track, a.sr)
        pic = np.asarray(Image.fromarray(painting(rng, 700 + i)).resize((480, 360)))
        path = vdir / f"soundtrack_{Path(orig).stem}.mp4"
        _write_video(path, [pic] * int(len(track) / a.sr * FPS), wav)
        wav.unlink()
        made.append({"video": str(path), "original": orig, "offset": at})
    return made


def truth_groups(images: dict, audio: dict, videos: list[dict]) -> tuple[dict[str, str], list[str]]:
    """(file -> original it derives from, every file)."""
    of: dict[str, str] = {}
    for q in images["queries"] + audio["queries"]:
        of[q["query"]] = q["original"]
    for v in videos:
        of[v["video"]] = v["original"]
    for o in set(of.values()):
        of[o] = o
    every = sorted(set(images["library"]) | set(audio["library"]) | set(of) | set(images["unrelated"]) | set(audio["unrelated"]))
    return of, every


# -- scoring ------------------------------------------------------------------------------------------
def pairs_of_groups(groups: list[list[str]]) -> set[frozenset[str]]:
    return {frozenset(p) for g in groups for p in itertools.combinations(sorted(set(g)), 2)}


def score(pred: set[frozenset[str]], truth: set[frozenset[str]], universe: set[str]) -> dict:
    pred = {p for p in pred if p <= universe}
    truth = {p for p in truth if p <= universe}
    tp = len(pred & truth)
    return {"pairs_true": len(truth), "pairs_reported": len(pred), "tp": tp,
            "precision": round(tp / len(pred), 4) if pred else None, "recall": round(tp / len(truth), 4) if truth else None}  # fmt: skip


# -- peers (run in the peers' interpreter) ---------------------------------------------------------------
PEERS_CODE = r"""
import json, sys, time, traceback
folder = sys.argv[1]
out = {}
def run(name, fn):
    t = time.monotonic()
    try:
        out[name] = {"groups": fn(), "seconds": round(time.monotonic() - t, 1)}
    except BaseException as e:
        out[name] = {"error": f"{type(e).__name__}: {e}"[:400]}
def dedup(method, **kw):
    d = method.find_duplicates(image_dir=folder, **kw)
    return [[k] + list(v) for k, v in d.items() if v]
try:
    from imagededup.methods import PHash, CNN
    run("imagededup PHash (max_distance_threshold=10, default)", lambda: dedup(PHash(verbose=False)))
    run("imagededup CNN (min_similarity_threshold=0.9, default)", lambda: dedup(CNN(verbose=False)))
except BaseException as e:
    out["imagededup"] = {"error": f"{type(e).__name__}: {e}"[:400]}
try:
    from czkawka import ImageSimilarity
    for level in (5, 10, 15):
        def f(level=level):
            s = ImageSimilarity(); s.set_directories([folder]); s.set_similarity(level)
            return [[str(p) for p in g] for g in s.find_similar()]
        run(f"czkawka (PyPI bindings, similarity {level})", f)
except BaseException as e:
    out["czkawka"] = {"error": f"{type(e).__name__}: {e}"[:400]}
print(json.dumps(out))
"""


def run_peers(python: str, files: list[str], out: Path) -> tuple[dict, dict[str, str]]:
    """Run the peers on a flat folder of the image part; returns (results, flat name -> real path)."""
    flat = out / "flat_images"
    shutil.rmtree(flat, ignore_errors=True)
    flat.mkdir()
    back = {}
    for f in files:
        rel = Path(f).relative_to(out / "images")
        name = "__".join(rel.parts)
        shutil.copy(f, flat / name)
        back[os.path.realpath(flat / name)] = f
        back[name] = f
    if not Path(python).exists():
        return {"peers": {"error": f"{python} not found: create it with `python -m venv --system-site-packages {Path(python).parents[1]}` "
                          "and `pip install imagededup czkawka`"}}, back  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    p = subprocess.run([python, "-c", PEERS_CODE, str(flat)], capture_output=True, text=True, env=env, timeout=3600)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1]), back
    except (IndexError, json.JSONDecodeError):
        return {"peers": {"error": (p.stderr or p.stdout)[-400:]}}, back


# -- quality ------------------------------------------------------------------------------------------
def cli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "media_search", *args], capture_output=True, text=True, env=env)


def quality(out: Path, per_family: int | None, peers_python: str, reuse_index: bool = False) -> dict:
    images = make_images(out, per_family=per_family)
    audio = make_audio(out, per_family=per_family)
    videos = make_videos(out, images, audio)
    of, every = truth_groups(images, audio, videos)
    truth_sets: dict[str, list[str]] = {}
    for f, o in of.items():
        truth_sets.setdefault(o, []).append(f)
    truth = pairs_of_groups(list(truth_sets.values()))
    db = out / "index.db"
    if not reuse_index:
        shutil.rmtree(db, ignore_errors=True)
    env = {**os.environ, "MEDIA_SEARCH_IMAGE_WEIGHTS": "random", "MEDIA_SEARCH_AUDIO_WEIGHTS": "random",
           "MEDIA_SEARCH_DEVICE": "cpu", "MEDIA_SEARCH_MILVUS_URI": str(db), "MEDIA_SEARCH_HOME": str(out / "home")}  # fmt: skip
    t = time.monotonic()
    if not reuse_index:  # (--reuse-index: the .db of an earlier run over the same generated media)
        p = cli(["index", str(out / "images"), str(out / "audio"), str(out / "videos"), "--json"], env)
        rep = json.loads(p.stdout)
        if rep["failed"]:
            print("failed to index:", rep["failed"], file=sys.stderr)
    index_s = time.monotonic() - t
    Path(str(db) + ".duplicates.sqlite").unlink(missing_ok=True)  # no verdicts kept from an earlier run
    t = time.monotonic()
    p = cli(["duplicates", "--json"], env)
    dup_s = time.monotonic() - t
    if p.returncode:
        raise SystemExit(p.stderr)
    report = json.loads(p.stdout)
    groups = [[f["path"] for f in g["files"]] for g in report["groups"] if g["tier"] == "copies"]
    ours = pairs_of_groups(groups)
    img_part = {f for f in every if f.startswith(str(out / "images"))}
    parts = {"all": set(every), "images": img_part, "sounds": {f for f in every if f.startswith(str(out / "audio"))},
             "across kinds (photo in video, sound in soundtrack)": None}  # fmt: skip
    res: dict = {"files": len(every), "truth_groups": sum(len(v) > 1 for v in truth_sets.values()),
                 "index_s": round(index_s, 1), "duplicates_s": round(dup_s, 1), "stats": report.get("stats", {})}  # fmt: skip
    table = {}
    for name, universe in parts.items():
        if universe is None:
            vids = {v["video"] for v in videos}
            cross_t = {p for p in truth if p & vids}
            cross_p = {p for p in ours if p & vids}
            tp = len(cross_t & cross_p)
            table[name] = {"pairs_true": len(cross_t), "pairs_reported": len(cross_p), "tp": tp,
                           "precision": round(tp / len(cross_p), 4) if cross_p else None, "recall": round(tp / len(cross_t), 4) if cross_t else None}  # fmt: skip
        else:
            table[name] = score(ours, truth, universe)
    res["media_search"] = table
    # per-family recall of the image part: edits linked to their original's group
    fam = {}
    group_of = {f: i for i, g in enumerate(groups) for f in g}
    for q in images["queries"] + audio["queries"]:
        hit = q["query"] in group_of and group_of.get(q["query"]) == group_of.get(q["original"])
        fam.setdefault(q["family"], []).append(hit)
    res["edit_linked_to_original"] = {k: f"{sum(v)}/{len(v)}" for k, v in fam.items()}
    peers, back = run_peers(peers_python, sorted(img_part), out)
    res["peers"] = {}
    for name, r in peers.items():
        if "error" in r:
            res["peers"][name] = {"error": r["error"]}
            continue
        g = [[back.get(os.path.realpath(x), back.get(Path(x).name, x)) for x in grp] for grp in r["groups"]]
        # a peer's duplicate lists joined into groups (the same closure as ours)
        res["peers"][name] = {**score(pairs_of_groups(_closure(g)), truth, img_part), "seconds": r["seconds"]}
    res["media_search_images_only"] = score(ours, truth, img_part)
    return res


def _closure(groups: list[list[str]]) -> list[list[str]]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for g in groups:
        for x in g[1:]:
            ra, rb = find(g[0]), find(x)
            if ra != rb:
                parent[ra] = rb
    comp: dict[str, list[str]] = {}
    for x in list(parent):
        comp.setdefault(find(x), []).append(x)
    return list(comp.values())


# -- timing (synthetic rows) ---------------------------------------------------------------------------
def timing(out: Path, n_images: int) -> dict:
    from media_search.signals.audio import FRAME_S
    from media_search.identity import file_id, row_id
    from media_search.duplicates import find_duplicates
    from media_search.embed.spec import ModelSpec
    from media_search.store.milvus import MilvusStore
    from media_search.store.records import FileRecord
    from media_search.signals.image import Features, pack_features

    rng = np.random.default_rng(n_images)
    db = out / f"synthetic_{n_images}.db"
    shutil.rmtree(db, ignore_errors=True)
    Path(str(db) + ".duplicates.sqlite").unlink(missing_ok=True)
    store = MilvusStore(str(db))
    spec = ModelSpec("synthetic", "random:0", 2048)
    n_videos, n_sounds, frames, windows = max(1, n_images // 50), max(1, n_images // 10), 30, 6

    def unit(n: int) -> np.ndarray:
        v = rng.normal(size=(n, 2048)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def hashes(n: int) -> tuple[list[str], list[str]]:
        """pHashes (10 %: a near-copy of another row, a few bits flipped) and stored local features
        (256 random SIFT-like keypoints each, as indexing stores them; a near-copy shares its source's)."""
        h = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
        near = rng.random(n) < 0.1
        src = rng.integers(0, n, n)
        flips = np.uint64(1) << rng.integers(0, 64, n).astype(np.uint64)
        h = np.where(near, h[src] ^ flips, h)
        local = []
        for _ in range(n):
            pts = rng.uniform(0, 480, (256, 2)).astype(np.float32)
            desc = np.minimum(rng.gamma(0.6, 30, (256, 128)), 255).astype(np.float32)
            local.append(pack_features(Features(pts, desc, (480, 640))))
        local = [local[s] if c else x for x, s, c in zip(local, src.tolist(), near.tolist())]
        return [f"{int(x):016x}" for x in h], local

    t = time.monotonic()
    for kind in ("image", "video", "audio"):
        store.ensure(kind, spec)  # type: ignore[arg-type]
    recs = []
    ph, local = hashes(n_images)
    paths = [f"/synthetic/img_{i}.jpg" for i in range(n_images)]
    fids = [file_id(p) for p in paths]
    store.upsert_rows("image", {"id": fids, "vector": unit(n_images), "file_id": fids, "path": paths,
                                "content_hash": [f"{i:064x}" for i in range(n_images)], "size": [1000] * n_images,
                                "mtime": [0.0] * n_images, "phash": ph, "local": local})  # fmt: skip
    recs += [FileRecord(f, p, "image", f"{i:064x}", 1000, 0.0, "done", 1) for i, (f, p) in enumerate(zip(fids, paths))]
    vp = [f"/synthetic/vid_{i}.mp4" for i in range(n_videos)]
    vf = [file_id(p) for p in vp]
    ids, vfid, vpath, ts = [], [], [], []
    for f, p in zip(vf, vp):
        for k in range(frames):
            ids.append(row_id(f, "v", float(k)))
            vfid.append(f)
            vpath.append(p)
            ts.append(float(k))
    nrow = len(ids)
    vph, vlocal = hashes(nrow)
    store.upsert_rows("video", {"id": ids, "vector": unit(nrow), "file_id": vfid, "path": vpath, "content_hash": [f"v{x}" for x in vfid],
                                "timestamp": ts, "duration": [float(frames)] * nrow, "phash": vph, "local": vlocal})  # fmt: skip
    recs += [FileRecord(f, p, "video", f"v{f}", 10**6, 0.0, "done", frames) for f, p in zip(vf, vp)]
    sp = [f"/synthetic/snd_{i}.wav" for i in range(n_sounds)]
    sfid = [file_id(p) for p in sp]
    ids, afid, apath, ats, fps = [], [], [], [], []
    per_window = 900  # packed landmarks per 5 s window (about what a song gives)
    for f, p in zip(sfid, sp):
        for k in range(windows):
            ids.append(row_id(f, "a", 5.0 * k))
            afid.append(f)
            apath.append(p)
            ats.append(5.0 * k)
            h = rng.integers(0, 2**23, per_window, dtype=np.int64)
            tt = np.sort(rng.integers(int(5 * k / FRAME_S), int(5 * (k + 1) / FRAME_S), per_window))
            fps.append(((h << 31) | tt).tolist())
    na = len(ids)
    store.upsert_rows("audio", {"id": ids, "vector": unit(na), "file_id": afid, "path": apath, "content_hash": [f"a{x}" for x in afid],
                                "timestamp": ats, "duration": [30.0] * na, "source": ["audio"] * na, "fp": fps})  # fmt: skip
    recs += [FileRecord(f, p, "audio", f"a{f}", 10**5, 0.0, "done", windows) for f, p in zip(sfid, sp)]
    store.put_files(recs)
    store.flush()
    fill_s = time.monotonic() - t
    t = time.monotonic()
    rep = find_duplicates(store)
    seconds = time.monotonic() - t
    t = time.monotonic()
    again = find_duplicates(store)  # the pair verdicts of the first run are kept beside the .db
    again_s = time.monotonic() - t
    store.close()
    return {"images": n_images, "videos": n_videos, "keyframes": n_videos * frames, "sounds": n_sounds,
            "windows": na, "fill_s": round(fill_s, 1), "grouping_s": round(seconds, 1), "second_run_s": round(again_s, 1),
            "pairs_to_verify": rep.stats.get("verify_attempts"), "stats": rep.stats, "second_stats": again.stats,
            "groups": len(rep.groups)}  # fmt: skip


# -- real files: indexing, grouping, a second run, then 1 % new files ----------------------------------
def real(out: Path, n_images: int) -> dict:
    from bench.dup_library import make_library

    lib = out / f"real_{n_images}"
    shutil.rmtree(lib, ignore_errors=True)
    t = time.monotonic()
    made = make_library(lib / "media", n_images)
    make_s = time.monotonic() - t
    db = lib / "index.db"
    env = {**os.environ, "MEDIA_SEARCH_IMAGE_WEIGHTS": "random", "MEDIA_SEARCH_AUDIO_WEIGHTS": "random",
           "MEDIA_SEARCH_DEVICE": "cpu", "MEDIA_SEARCH_MILVUS_URI": str(db), "MEDIA_SEARCH_HOME": str(lib / "home")}  # fmt: skip
    res: dict = {"images": len(made["image"]), "videos": len(made["video"]), "sounds": len(made["audio"]), "make_s": round(make_s, 1)}

    def index() -> float:
        t = time.monotonic()
        p = cli(["index", str(lib / "media"), "--json"], env)
        if p.returncode not in (0, 2):
            raise SystemExit(p.stderr)
        rep = json.loads(p.stdout)
        if rep["failed"]:
            print("failed to index:", rep["failed"][:3], file=sys.stderr)
        return round(time.monotonic() - t, 1)

    def group(name: str) -> None:
        t = time.monotonic()
        p = cli(["duplicates", "--json"], env)
        if p.returncode:
            raise SystemExit(p.stderr)
        rep = json.loads(p.stdout)
        res[name] = {"wall_s": round(time.monotonic() - t, 1), "seconds": rep["seconds"], "groups": len(rep["groups"]),
                     "files_in_groups": sum(len(g["files"]) for g in rep["groups"]), "stats": rep.get("stats", {})}  # fmt: skip
        print(name, res[name], file=sys.stderr)

    res["index_s"] = index()
    group("first_run")
    group("second_run")
    added = make_library(lib / "media", max(1, n_images // 100), start=n_images, seed=1)
    res["added"] = {k: len(v) for k, v in added.items()}
    res["index_added_s"] = index()
    group("after_adding")
    return res


# -- report -------------------------------------------------------------------------------------------
def markdown(res: dict) -> str:
    lines = [f"`{res['command']}`", ""]
    q = res.get("quality")
    if q:
        lines += [f"Quality: {q['files']} real files ({q['truth_groups']} true groups), indexed in {q['index_s']} s, "
                  f"`media-search duplicates` in {q['duplicates_s']} s (random weights, Milvus Lite).", "",
                  "| tool | part | true pairs | reported pairs | pair precision | pair recall |", "|---|---|---|---|---|---|"]  # fmt: skip
        for part, s in q["media_search"].items():
            lines.append(f"| media_search | {part} | {s['pairs_true']} | {s['pairs_reported']} | {s['precision']} | {s['recall']} |")
        for name, s in q["peers"].items():
            if "error" in s:
                lines.append(f"| {name} | images | - | - | did not run: {s['error']} | |")
            else:
                lines.append(f"| {name} | images | {s['pairs_true']} | {s['pairs_reported']} | {s['precision']} | {s['recall']} |")
        lines += ["", "Edits linked to their original: " + ", ".join(f"{k} {v}" for k, v in q["edit_linked_to_original"].items()), ""]
    for t in res.get("timing", []):
        st = t["stats"]
        lines.append(f"Synthetic rows (grouping step only): {t['images']} images + {t['videos']} videos ({t['keyframes']} keyframes) + "
                     f"{t['sounds']} sounds ({t['windows']} windows): grouped in {t['grouping_s']} s, again in {t['second_run_s']} s "
                     f"(stages {st.get('timings')}; {st.get('stored_feature_checks')} stored-feature checks in {st.get('stored_feature_s')} s, "
                     f"{st.get('verify_attempts')} decode checks attempted (the files do not exist); second run: "
                     f"{t['second_stats'].get('verdicts_reused')} verdicts reused, stages {t['second_stats'].get('timings')})")  # fmt: skip
    for r in res.get("real", []):
        lines.append(f"Real files: {r['images']} images + {r['videos']} videos + {r['sounds']} sounds, indexed in {r['index_s']} s; "
                     + "; ".join(f"{k}: {r[k]['seconds']} s ({r[k]['wall_s']} s with the CLI start; {r[k]['groups']} groups, "
                                 f"{r[k]['stats'].get('stored_feature_checks')} stored-feature checks, {r[k]['stats'].get('verify_attempts')} decode checks, "
                                 f"{r[k]['stats'].get('verdicts_reused')} verdicts reused; stages {r[k]['stats'].get('timings')})"
                                 for k in ("first_run", "second_run", "after_adding"))
                     + f"; added {r['added']} indexed in {r['index_added_s']} s")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="/tmp/bench_dups")
    ap.add_argument("--per-family", type=int, default=None)
    ap.add_argument("--sections", default="quality,timing")
    ap.add_argument("--sizes", default="1000,10000", help="timing: images of the synthetic stores")
    ap.add_argument("--real-sizes", default="1000,2000", help="real: images of the real-file libraries (plus 1/50 videos, 1/10 sounds)")
    ap.add_argument("--peers-python", default="/tmp/peers-venv/bin/python")
    ap.add_argument("--reuse-index", action="store_true", help="keep --out's index.db from an earlier run (same media)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res: dict = {"command": "python scripts/bench_duplicates.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    sections = args.sections.split(",")
    if "quality" in sections:
        res["quality"] = quality(out, args.per_family, args.peers_python, args.reuse_index)
    if "real" in sections:
        res["real"] = []
        for n in [int(x) for x in args.real_sizes.split(",")]:
            res["real"].append(real(out, n))
            (out / "bench_duplicates.json").write_text(json.dumps(res, indent=1))
    if "timing" in sections:
        res["timing"] = []
        for n in [int(x) for x in args.sizes.split(",")]:
            res["timing"].append(timing(out, n))
            print(res["timing"][-1], file=sys.stderr)
    (out / "bench_duplicates.json").write_text(json.dumps(res, indent=1))
    md = markdown(res)
    (out / "bench_duplicates.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
