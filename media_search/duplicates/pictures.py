"""Pictures: pairs of images, image-in-video moments and video-video copies, with their evidence.

Candidates come from what is stored, in bulk:

* **pHash** (every stored image and keyframe hash against every other, 64-bit
  XOR and popcount in numpy blocks): decisive when close
  (``decide(None, d).copy``, 10 bits or less), worth a check when ambiguous.
* **embeddings**: the ``neighbours`` nearest rows of each image, found by
  batched Milvus searches (many query vectors per call). They only *propose*
  pairs: a proposal becomes a copy only through local-feature verification
  (``signals.image.verify``: SIFT + RANSAC, mirrored too), never by its
  cosine. This catches what pHash is blind to (crops, rotations, screenshots).

Files are decoded only for those verifications (each file once per run,
features cached), and a pair whose two files are already linked by other
evidence is not verified again (grouping needs one path, not every edge).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..signals import image as fi
from .gather import Rows, Stored
from .links import Links, Pair

__all__ = ["framed_pairs", "HASH_COPY", "HASH_CHECK", "HASH_SIMILAR", "NEIGHBOURS", "hamming_pairs", "image_pairs", "image_video_pairs", "video_pairs"]

log = logging.getLogger(__name__)

#: pHash distances (bits): at most ``HASH_COPY`` is a copy on its own (``fi.decide``); up to
#: ``HASH_CHECK`` a pair is verified with local features; ``HASH_SIMILAR`` bounds the similar tier.
HASH_COPY = 10
HASH_CHECK = 16
HASH_SIMILAR = 18
#: Nearest rows per image proposed by the embeddings (verified, never trusted).
NEIGHBOURS = 4
#: Query vectors per Milvus search call.
SEARCH_BATCH = 256
#: Cosine from which an unverified, pHash-close embedding neighbour is "similar" (a burst, a re-shoot).
SIMILAR_COSINE = 0.5
_BLOCK = 1024
_FEATURE_CACHE = 1024

Progress = Callable[[str, int], None]


def hamming_pairs(a: np.ndarray, b: np.ndarray | None, max_bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, distance) of hashes within ``max_bits``: ``a`` against itself (i < j) or against ``b``."""
    same = b is None
    b = a if b is None else b
    out_i, out_j, out_d = [], [], []
    for start in range(0, len(a), _BLOCK):
        blk = a[start : start + _BLOCK]
        d = np.bitwise_count(blk[:, None] ^ b[None, :])
        i, j = np.nonzero(d <= max_bits)
        i = i + start
        if same:
            keep = j > i
            i, j = i[keep], j[keep]
        out_i.append(i)
        out_j.append(j)
        out_d.append(d[i - start, j].astype(np.int64))
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d)


#: Normalised correlation, after the RANSAC transform lines them up, from which two pictures
#: are one picture. Shared overlays (the same caption or logo on two photos) give many inliers
#: on a small part; the rest of the picture then disagrees.
NCC_MIN = 0.5
#: Longer side (px) of the pictures verified here: half the query path's ``MAX_SIDE``, about a
#: quarter of the features to match, enough inliers for the copies of scripts/bench_duplicates.py.
VERIFY_SIDE = 320


@dataclass
class _Seen:
    """One library picture as verification sees it: gray at features scale, its features, and
    whether it sits in a frame (a screenshot: ``signals.image.content_box``), in which case
    both are of the inner picture only -- window chrome is shared by every screenshot."""

    gray: np.ndarray
    features: fi.Features
    framed: bool


@dataclass
class Verifier:
    """Local features of library files (and of their mirror image), read once per run."""

    cache: OrderedDict = field(default_factory=OrderedDict)
    frames: dict = field(default_factory=dict)
    reads: int = 0
    checks: int = 0
    attempts: int = 0
    seconds: float = 0.0

    def _read(self, path: str, ts: float | None) -> np.ndarray | None:
        self.reads += 1
        try:
            return fi._read_picture(path) if ts is None else fi._read_frame(path, ts)
        except Exception as e:  # noqa: BLE001 - a moved or damaged file is just not verified
            log.debug("cannot read %s for verification: %s", path, e)
            return None

    def _get(self, path: str, ts: float | None, mirrored: bool) -> _Seen | None:
        key = (path, ts, mirrored)
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        pic = self._read(path, ts)
        seen = None
        if pic is not None:
            box = fi.content_box(pic)
            self.frames[(path, ts)] = box is not None
            if box is not None:
                top, bottom, left, right = box
                pic = pic[top:bottom, left:right]
            if mirrored:
                pic = pic[:, ::-1]
            pic = np.ascontiguousarray(pic)
            feats = fi.features(pic, max_side=VERIFY_SIDE)
            import cv2

            gray = cv2.resize(fi._gray(pic), (feats.shape[1], feats.shape[0]), interpolation=cv2.INTER_AREA)
            seen = _Seen(gray, feats, box is not None)
        self.cache[key] = seen
        while len(self.cache) > _FEATURE_CACHE:
            self.cache.popitem(last=False)
        return seen

    def framed(self, path: str, ts: float | None = None) -> bool:
        """Whether the picture sits in a frame (decodes it once; cached)."""
        if (path, ts) not in self.frames:
            pic = self._read(path, ts)
            self.frames[(path, ts)] = pic is not None and fi.content_box(pic) is not None
        return self.frames[(path, ts)]

    def verify(self, a: str, a_ts: float | None, b: str, b_ts: float | None) -> fi.Verification | None:
        """Inliers between picture ``a`` (or its mirror) and ``b`` that also agree in their pixels
        (``NCC_MIN``); None if either cannot be read."""
        start = time.perf_counter()
        try:
            return self._verify(a, a_ts, b, b_ts)
        finally:
            self.attempts += 1
            self.seconds += time.perf_counter() - start

    def _verify(self, a: str, a_ts: float | None, b: str, b_ts: float | None) -> fi.Verification | None:
        sa, sb = self._get(a, a_ts, False), self._get(b, b_ts, False)
        if sa is None or sb is None:
            return None
        self.checks += 1
        v = _check(sa, sb)
        if fi.decide(v, None).confidence >= 1.0:
            return v  # certain already: the mirror cannot add anything
        sm = self._get(a, a_ts, True)
        if sm is not None:
            w = _check(sm, sb)
            if w.inliers > v.inliers:
                return fi.Verification(w.inliers, w.matches, True)
        return v


def _check(a: _Seen, b: _Seen) -> fi.Verification:
    """``signals.image.verify`` plus a pixel check: b warped onto a must correlate."""
    import cv2

    q, c = a.features, b.features
    if len(q) < 3 or len(c) < 3:
        return fi.Verification(0, 0)
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(q.descriptors, c.descriptors, k=2)
    good = [m for m, *rest in (p for p in pairs if len(p) == 2) if m.distance < fi.RATIO * rest[0].distance]
    best: dict[int, Any] = {}
    for m in good:
        if m.trainIdx not in best or m.distance < best[m.trainIdx].distance:
            best[m.trainIdx] = m
    good = list(best.values())
    if len(good) < 3:
        return fi.Verification(0, len(good))
    src = q.points[[m.queryIdx for m in good]]
    dst = c.points[[m.trainIdx for m in good]]
    model, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=fi.RANSAC_PX, maxIters=2000, confidence=0.995)
    if model is None or mask is None or not 0.05 <= float(np.hypot(model[0, 0], model[1, 0])) <= 20:
        return fi.Verification(0, len(good))
    keep = mask.ravel().astype(bool)
    inliers = min(len({(int(x) // 4, int(y) // 4) for x, y in src[keep]}), len({(int(x) // 4, int(y) // 4) for x, y in dst[keep]}))
    if inliers > 4 and _ncc(a.gray, b.gray, model) < NCC_MIN:
        return fi.Verification(0, len(good))
    return fi.Verification(inliers, len(good))


def _ncc(a: np.ndarray, b: np.ndarray, model: np.ndarray) -> float:
    """Correlation of ``a`` with ``b`` brought into a's frame by ``model`` (a -> b), where both exist."""
    import cv2

    h, w = a.shape
    warped = cv2.warpAffine(b.astype(np.float32), model, (w, h), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR, borderValue=-1.0)
    valid = cv2.warpAffine(np.ones(b.shape, np.float32), model, (w, h), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_NEAREST, borderValue=0.0) > 0.5
    if valid.sum() < 0.05 * h * w:
        return 0.0
    s = 64 / max(h, w)
    size = (max(8, round(w * s)), max(8, round(h * s)))
    x = cv2.resize(cv2.GaussianBlur(a.astype(np.float32), (0, 0), 2), size, interpolation=cv2.INTER_AREA)
    y = cv2.resize(cv2.GaussianBlur(np.where(valid, warped, 0).astype(np.float32), (0, 0), 2), size, interpolation=cv2.INTER_AREA)
    m = cv2.resize(valid.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.99
    if m.sum() < 16:
        return 0.0
    x, y = x[m] - x[m].mean(), y[m] - y[m].mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else 0.0


def _neighbours(store: Any, kind: str, rows: Rows, limit: int, progress: Progress | None) -> list[list[Any]]:
    """The ``limit`` nearest rows of ``kind``'s collection for each row of ``rows`` (batched)."""
    out: list[list[Any]] = []
    assert rows.vectors is not None
    for start in range(0, len(rows), SEARCH_BATCH):
        out.extend(store.search(kind, rows.vectors[start : start + SEARCH_BATCH], limit))
        if progress is not None:
            progress(f"searching {kind} neighbours", min(SEARCH_BATCH, len(rows) - start))
    return out


def image_pairs(store: Any, stored: Stored, links: Links, verifier: Verifier, *, neighbours: int = NEIGHBOURS,
                include_similar: bool = False, progress: Progress | None = None) -> None:  # fmt: skip
    """Image-image copies (and similar pairs) into ``links``."""
    rows = stored.rows.get("image")
    if rows is None or len(rows) < 2:
        return
    files = stored.files
    index = {f: i for i, f in enumerate(rows.file_ids)}
    cand: dict[tuple[int, int], dict[str, Any]] = {}
    ok = np.nonzero(rows.has_phash)[0]
    i, j, d = hamming_pairs(rows.phashes[ok], None, max(HASH_CHECK, HASH_SIMILAR if include_similar else 0))
    for a, b, dist in zip(ok[i].tolist(), ok[j].tolist(), d.tolist()):
        cand[(a, b)] = {"d": dist}
    if neighbours and rows.vectors is not None:
        for a, hits in enumerate(_neighbours(store, "image", rows, neighbours + 1, progress)):
            for h in hits:
                b = index.get(h.file_id)
                if b is None or b == a:
                    continue
                key = (min(a, b), max(a, b))
                c = cand.setdefault(key, {})
                c["cos"] = max(c.get("cos", -1.0), float(h.score))
    if progress is not None:
        progress("image candidates", 0)
    # Most promising first, so that verified links spare later checks inside the same group.
    order = sorted(cand, key=lambda k: (cand[k].get("d", 64), -cand[k].get("cos", -1.0)))
    for a, b in order:
        c = cand[(a, b)]
        fa, fb = files.get(rows.file_ids[a]), files.get(rows.file_ids[b])
        if fa is None or fb is None or fa.content_hash == fb.content_hash:
            continue  # exact copies are linked by their hash
        dist = _dist(rows, a, b)
        # Two screenshots share their window chrome, hence their pHash: framed pictures are
        # compared by their inner pictures' local features only.
        both_framed = dist is not None and dist <= HASH_CHECK and verifier.framed(fa.path) and verifier.framed(fb.path)
        if dist is not None and dist <= HASH_COPY and not both_framed:
            ev = fi.decide(None, dist)
            links.add(Pair(fa.path, fb.path, "copy", "phash", phash_distance=dist, confidence=ev.confidence))
            continue
        if links.linked(fa.path, fb.path):
            continue
        if "cos" in c or (dist is not None and dist <= HASH_CHECK):
            v = verifier.verify(fa.path, None, fb.path, None)
            ev = fi.decide(v, None if both_framed else dist)
            if ev.copy:
                links.add(Pair(fa.path, fb.path, "copy", "local_features", phash_distance=dist, inliers=ev.inliers,
                               mirrored=bool(v and v.mirrored), confidence=ev.confidence))  # fmt: skip
                continue
        if include_similar and "cos" in c and dist is not None and dist <= HASH_SIMILAR and c["cos"] >= SIMILAR_COSINE:
            links.add(Pair(fa.path, fb.path, "similar", "phash+embedding", phash_distance=dist, cosine=round(c["cos"], 4)))
        if progress is not None:
            progress("verifying pictures", 0)


def framed_pairs(stored: Stored, links: Links, verifier: Verifier) -> None:
    """Pictures found framed (screenshots) on the way, searched again by their inner picture's pHash."""
    rows = stored.rows.get("image")
    if rows is None:
        return
    files = stored.files
    by_path = {files[f].path: i for i, f in enumerate(rows.file_ids) if f in files}
    ok = np.nonzero(rows.has_phash)[0]
    for (path, ts), framed in list(verifier.frames.items()):
        if not framed or ts is not None or path not in by_path:
            continue
        seen = verifier._get(path, None, False)
        if seen is None:
            continue
        hashes = np.array([fi.phash(seen.gray), fi.phash(np.ascontiguousarray(seen.gray[:, ::-1]))], dtype=np.uint64)
        _, j, d = hamming_pairs(hashes, rows.phashes[ok], HASH_CHECK)
        near: dict[int, int] = {}
        for b, dist in zip(ok[j].tolist(), d.tolist()):
            near[b] = min(dist, near.get(b, 64))
        for b, dist in sorted(near.items(), key=lambda kv: kv[1]):
            other = files.get(rows.file_ids[b])
            if other is None or other.path == path or links.linked(path, other.path):
                continue
            v = verifier.verify(path, None, other.path, None)
            ev = fi.decide(v, None)
            if ev.copy:
                links.add(Pair(path, other.path, "copy", "local_features", phash_distance=dist, inliers=ev.inliers,
                               mirrored=bool(v and v.mirrored), confidence=ev.confidence))  # fmt: skip


def _dist(rows: Rows, a: int, b: int) -> int | None:
    if not (rows.has_phash[a] and rows.has_phash[b]):
        return None
    return int(np.bitwise_count(rows.phashes[a] ^ rows.phashes[b]))


def image_video_pairs(store: Any, stored: Stored, links: Links, verifier: Verifier, *, neighbours: int = NEIGHBOURS,
                      progress: Progress | None = None) -> None:  # fmt: skip
    """A photo and the videos that show it, at the keyframe's time."""
    img, vid = stored.rows.get("image"), stored.rows.get("video")
    if img is None or vid is None or not len(img) or not len(vid):
        return
    files = stored.files
    best: dict[tuple[int, str], tuple[int, int | None, float]] = {}  # (image, video file) -> (frame, dist, cos)
    oi, ov = np.nonzero(img.has_phash)[0], np.nonzero(vid.has_phash)[0]
    i, j, d = hamming_pairs(img.phashes[oi], vid.phashes[ov], HASH_CHECK)
    for a, r, dist in zip(oi[i].tolist(), ov[j].tolist(), d.tolist()):
        key = (a, vid.file_ids[r])
        if key not in best or (best[key][1] or 64) > dist:
            best[key] = (r, dist, -1.0)
    if neighbours and img.vectors is not None:
        row_of = {}
        for r, (f, t) in enumerate(zip(vid.file_ids, vid.timestamps.tolist())):
            row_of[(f, round(t, 3))] = r
        for a, hits in enumerate(_neighbours(store, "video", img, neighbours, progress)):
            for h in hits:
                r = row_of.get((h.file_id, round(float(h.timestamp or 0.0), 3)))
                if r is None:
                    continue
                key = (a, h.file_id)
                if key not in best:
                    best[key] = (r, _cross(img, a, vid, r), float(h.score))
    for (a, vf), (r, dist, cos) in sorted(best.items(), key=lambda kv: (kv[1][1] if kv[1][1] is not None else 64)):
        fa, fv = files.get(img.file_ids[a]), files.get(vf)
        if fa is None or fv is None:
            continue
        ts = round(float(vid.timestamps[r]), 3)
        if dist is not None and dist <= HASH_COPY:
            ev = fi.decide(None, dist)
            links.add(Pair(fa.path, fv.path, "copy", "phash", phash_distance=dist, confidence=ev.confidence, b_time=ts))
            continue
        if links.linked(fa.path, fv.path):
            continue
        v = verifier.verify(fa.path, None, fv.path, ts)
        ev = fi.decide(v, dist)
        if ev.copy:
            links.add(Pair(fa.path, fv.path, "copy", "local_features", phash_distance=dist, inliers=ev.inliers,
                           mirrored=bool(v and v.mirrored), confidence=ev.confidence, b_time=ts))  # fmt: skip
        if progress is not None:
            progress("verifying pictures", 0)


def _cross(img: Rows, a: int, vid: Rows, r: int) -> int | None:
    if not (img.has_phash[a] and vid.has_phash[r]):
        return None
    return int(np.bitwise_count(img.phashes[a] ^ vid.phashes[r]))


#: Keyframes of the shorter video that must match (pHash within ``HASH_COPY``, one time offset).
MIN_FRAMES = 3
MIN_FRAME_SHARE = 0.5


def video_pairs(stored: Stored, links: Links) -> None:
    """Videos that share their pictures: keyframes close by pHash at one consistent time offset."""
    vid = stored.rows.get("video")
    if vid is None or len(vid) < 2:
        return
    files = stored.files
    ok = np.nonzero(vid.has_phash)[0]
    i, j, d = hamming_pairs(vid.phashes[ok], None, HASH_COPY)
    i, j = ok[i], ok[j]
    fids = np.array(vid.file_ids)
    cross = fids[i] != fids[j]
    i, j = i[cross], j[cross]
    nframes: dict[str, int] = {}
    for f in vid.file_ids:
        nframes[f] = nframes.get(f, 0) + 1
    per_pair: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for a, b in zip(i.tolist(), j.tolist()):
        fa, fb = vid.file_ids[a], vid.file_ids[b]
        if fa > fb:
            a, b, fa, fb = b, a, fb, fa
        per_pair.setdefault((fa, fb), []).append((a, b))
    for (fa, fb), matches in per_pair.items():
        ra, rb = files.get(fa), files.get(fb)
        if ra is None or rb is None or ra.content_hash == rb.content_hash:
            continue
        offsets = np.array([vid.timestamps[b] - vid.timestamps[a] for a, b in matches])
        centre = float(np.median(offsets))
        tol = max(1.5, 0.05 * abs(centre))
        agree = [(a, b) for (a, b), o in zip(matches, offsets.tolist()) if abs(o - centre) <= tol]
        frames = len({a for a, _ in agree})
        need = min(MIN_FRAMES, max(1, int(np.ceil(MIN_FRAME_SHARE * min(nframes[fa], nframes[fb])))))
        if frames >= need:
            a0 = min(agree, key=lambda ab: vid.timestamps[ab[0]])
            links.add(Pair(ra.path, rb.path, "copy", "keyframes", matched_frames=frames,
                           a_time=round(float(vid.timestamps[a0[0]]), 3), b_time=round(float(vid.timestamps[a0[1]]), 3),
                           offset=round(centre, 3), confidence=round(min(1.0, frames / max(need, 1)), 4)))  # fmt: skip
