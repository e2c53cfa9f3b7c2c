"""Videos: a photo and the videos that show it (at the keyframe's time), and videos that share their pictures.

Proposals as for image pairs (``pictures``): keyframes close to a photo by pHash and the photo's
nearest keyframes by embedding; each is screened by the stored local features and checked as
``pictures._check`` does. Two videos are copies when enough of the shorter one's keyframes are
pHash copies of the other's at one consistent time offset.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..signals import image as fi
from ..signals.frames import agreement
from ..signals.image import hamming_pairs
from .gather import Rows, Stored
from .links import Links, Pair
from .pictures import (HASH_CHECK, HASH_COPY, NEIGHBOURS, SCREEN_CHUNK, Item, Progress, _check, _close, _dist, _neighbours,
                       _passes, _prescreen, _screen)  # fmt: skip
from .verify import Verifier

__all__ = ["image_video_pairs", "video_pairs"]


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
                    best[key] = (r, _dist(img, a, r, vid), float(h.score))
    if progress is not None:
        progress("stage:checking pictures in videos", len(best))
    order = sorted(best.items(), key=lambda kv: (kv[1][1] if kv[1][1] is not None else 64))
    for n, ((a, vf), (r, dist, cos)) in enumerate(order):
        if n % SCREEN_CHUNK == 0 and img.local and vid.local:
            _prescreen(verifier, _frame_items(img, vid, files, links, order[n : n + SCREEN_CHUNK]))
        if progress is not None:
            progress("pair", 1)
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
        # A keyframe close by pHash is checked whatever the stored features say (a photo shown in a
        # video can lose its strongest keypoints to the frame around it); the screen still decides
        # whether its pixels are enough (``_check``).
        q = _screen(verifier, fa.content_hash, img, a, fv.content_hash, vid, r, ts)
        if not _passes(q, _close(dist)):
            continue
        v = _check(verifier, fa, fv, ts, q, dist)
        ev = fi.decide(v, dist)
        if ev.copy:
            links.add(Pair(fa.path, fv.path, "copy", "local_features", phash_distance=dist, inliers=ev.inliers,
                           mirrored=bool(v and v.mirrored), confidence=ev.confidence, b_time=ts))  # fmt: skip


def _frame_items(img: Rows, vid: Rows, files: dict[str, Any], links: Links, pairs: list[Any]) -> list[Item]:
    """The image-keyframe ``pairs`` that will be screened: not linked yet, not copies by their pHash alone."""
    out = []
    for (a, vf), (r, dist, _) in pairs:
        fa, fv = files.get(img.file_ids[a]), files.get(vf)
        if fa is None or fv is None or (dist is not None and dist <= HASH_COPY) or links.linked(fa.path, fv.path):
            continue
        out.append((fa, fv, round(float(vid.timestamps[r]), 3), dist, img.local[a], vid.local[r], _close(dist)))
    return out


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
        found = agreement([(a, float(vid.timestamps[a]), float(vid.timestamps[b])) for a, b in matches], nframes[fa], nframes[fb])
        if found is not None and found.copy:
            links.add(Pair(ra.path, rb.path, "copy", "keyframes", matched_frames=found.frames, a_time=found.a_time,
                           b_time=found.b_time, offset=found.offset, confidence=found.confidence))  # fmt: skip
