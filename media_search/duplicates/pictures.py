"""Pictures: pairs of images with their evidence (image-in-video moments and video-video copies: ``videos``).

Candidates come from what is stored, in bulk:

* **pHash** (every stored image and keyframe hash against every other, 64-bit
  XOR and popcount in numpy blocks): decisive when close
  (``decide(None, d).copy``, 10 bits or less), worth a check when ambiguous;
  and against the *mirrored* hashes (``verify.mirror_hash``): mirrored copies.
* **embeddings**: the ``neighbours`` nearest rows of each image, found by
  batched Milvus searches (many query vectors per call).
* **visual words** of the stored local features (``words``): rotations and
  crops, which pHash cannot see and random-weight embeddings do not propose.

Every proposal short of a pHash copy is screened by the stored local features
(``verify.Verifier.quick``: no decoding). Where they make a copy, the pixels
must agree (``verify.Verifier.confirm``: both pictures read small, lined up by
the stored transform); where they find something short of a copy, or a picture
sits in a frame, both are decoded and verified (``verify.Verifier.verify``:
SIFT + RANSAC, mirrored too, and the pixels must agree). No cosine or word
similarity ever makes a copy. A pair whose two files are already linked by other evidence
is not verified again (grouping needs one path, not every edge), and every
verdict is kept for the next run (``verdicts``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from ..signals import image as fi
from ..signals.image import hamming_pairs
from .gather import Rows, Stored
from .links import Links, Pair
from . import words
from .verify import Verifier, mirror_hash

__all__ = ["framed_pairs", "HASH_COPY", "HASH_CHECK", "HASH_SIMILAR", "NEIGHBOURS", "image_pairs"]

log = logging.getLogger(__name__)

#: pHash distances (bits): at most ``HASH_COPY`` is a copy on its own (``fi.decide``); up to
#: ``HASH_CHECK`` a pair is verified with local features; ``HASH_SIMILAR`` bounds the similar tier.
HASH_COPY = fi.HASH_COPY
HASH_CHECK = 16
HASH_SIMILAR = 18
#: Nearest rows per image proposed by the embeddings (verified, never trusted).
NEIGHBOURS = 4
#: Query vectors per Milvus search call.
SEARCH_BATCH = 256
#: Cosine from which an unverified, pHash-close embedding neighbour is "similar" (a burst, a re-shoot).
SIMILAR_COSINE = 0.5
#: Inliers of the stored local features above which a proposed pair is checked further, by its
#: pixels or decoded (``signals.image.decide`` counts nothing up to 4: what unrelated pictures reach).
QUICK_MIN = 4
#: Pairs screened at once, ahead of the checks (``_prescreen``).
SCREEN_CHUNK = 256

Progress = Callable[[str, int], None]


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
    # a mirrored copy: its hash is near the mirror of the original's (``verify.mirror_hash``)
    i, j, d = hamming_pairs(mirror_hash(rows.phashes[ok]), rows.phashes[ok], HASH_CHECK)
    for a, b, dist in zip(ok[i].tolist(), ok[j].tolist(), d.tolist()):
        if a != b:
            c = cand.setdefault((min(a, b), max(a, b)), {})
            c["m"] = min(dist, c.get("m", 64))
    if neighbours and rows.vectors is not None:
        for a, hits in enumerate(_neighbours(store, "image", rows, neighbours + 1, progress)):
            for h in hits:
                b = index.get(h.file_id)
                if b is None or b == a:
                    continue
                key = (min(a, b), max(a, b))
                c = cand.setdefault(key, {})
                c["cos"] = max(c.get("cos", -1.0), float(h.score))
    if rows.local and neighbours:
        # the stored local features' visual words: rotations and crops (``words``)
        vectors, has = words.word_vectors(rows.local)
        for a, b in words.word_neighbours(vectors, has):
            cand.setdefault((a, b), {})["w"] = True
    # Most promising first, so that verified links spare later checks inside the same group.
    order = sorted(cand, key=lambda k: (min(cand[k].get("d", 64), cand[k].get("m", 64)), -cand[k].get("cos", -1.0)))
    if progress is not None:
        progress("stage:checking picture pairs", len(order))
    for n, (a, b) in enumerate(order):
        if n % SCREEN_CHUNK == 0:
            _frames_ahead(verifier, rows, files, order[n : n + SCREEN_CHUNK])
            if rows.local:
                _prescreen(verifier, _image_items(rows, files, links, order[n : n + SCREEN_CHUNK], verifier.frames))
        if progress is not None:
            progress("pair", 1)
        c = cand[(a, b)]
        fa, fb = files.get(rows.file_ids[a]), files.get(rows.file_ids[b])
        if fa is None or fb is None or fa.content_hash == fb.content_hash:
            continue  # exact copies are linked by their hash
        dist = _dist(rows, a, b)
        close = _close(dist)
        # Two screenshots share their window chrome, hence their pHash: framed pictures are
        # compared by their inner pictures' local features only.
        framed_a = close and verifier.framed(fa.path, None, fa.content_hash)
        both_framed = framed_a and verifier.framed(fb.path, None, fb.content_hash)
        if close and dist <= HASH_COPY and not both_framed:
            ev = fi.decide(None, dist)
            links.add(Pair(fa.path, fb.path, "copy", "phash", phash_distance=dist, confidence=ev.confidence))
            continue
        if links.linked(fa.path, fb.path):
            continue
        # Every proposal is screened by the stored features first, pHash-close ones too: in a
        # library of many crops of a few photos, most close pairs are crops that do not overlap,
        # and a decoded check each was most of the time. What the screen passes is decoded and
        # verified, or, where the stored features already make a copy, checked by its pixels only
        # (``Verifier.confirm``). A framed picture (a screenshot) is always decoded: its stored
        # features are of the whole picture, frame included; a screen that finds nothing leaves
        # its inner picture to ``framed_pairs``.
        q = _screen(verifier, fa.content_hash, rows, a, fb.content_hash, rows, b)
        if _passes(q, False):
            v = _check(verifier, fa, fb, None, q, dist)
            ev = fi.decide(v, None if both_framed else dist)
            if ev.copy:
                links.add(Pair(fa.path, fb.path, "copy", "local_features", phash_distance=dist, inliers=ev.inliers,
                               mirrored=bool(v and v.mirrored), confidence=ev.confidence))  # fmt: skip
                continue
        if include_similar and "cos" in c and dist is not None and dist <= HASH_SIMILAR and c["cos"] >= SIMILAR_COSINE:
            links.add(Pair(fa.path, fb.path, "similar", "phash+embedding", phash_distance=dist, cosine=round(c["cos"], 4)))


#: A pair to work ahead (``_prescreen``): (image file, other file, the other's keyframe time or
#: None, pHash distance or None, the two rows' stored features, checked whatever its screen says).
Item = tuple[Any, Any, "float | None", "int | None", "str | None", "str | None", bool]


def _image_items(rows: Rows, files: dict[str, Any], links: Links, pairs: list[tuple[int, int]], frames: dict) -> list[Item]:
    """The image ``pairs`` that will be screened: not linked yet, not copies by their pHash alone
    (``frames``: the ``Verifier.frames`` known, read by ``_frames_ahead``; two pictures in frames,
    screenshots, are screened whatever their pHash, as ``image_pairs`` does)."""
    out = []
    for a, b in pairs:
        fa, fb = files.get(rows.file_ids[a]), files.get(rows.file_ids[b])
        if fa is None or fb is None or fa.content_hash == fb.content_hash or links.linked(fa.path, fb.path):
            continue
        dist = _dist(rows, a, b)
        if dist is None or dist > HASH_COPY or (frames.get((fa.path, None)) and frames.get((fb.path, None))):
            out.append((fa, fb, None, dist, rows.local[a], rows.local[b], False))
    return out


def _prescreen(verifier: Verifier, items: list[Item]) -> None:
    """Work the next pairs will ask for, done ahead on the verifier's threads: their stored-feature
    screens (``Verifier.quick_many``), then the pictures the screens send on (``Verifier.prefetch``:
    small for a pixel check, decoded for a full one, as ``_check`` will ask) of the pairs this
    run screens. A pair linked on the way wastes its share; chunks of ``SCREEN_CHUNK`` keep that
    small. The checks themselves run in order, as before."""
    fresh = verifier.quick_many([((fa.content_hash, None), ta, (fb.content_hash, ts), tb) for fa, fb, ts, _, ta, tb, _ in items])
    passed = []
    for (fa, fb, ts, dist, ta, tb, must), new in zip(items, fresh):
        if ("v", fa.content_hash, None, fb.content_hash, ts) in verifier.verdicts:
            continue  # checked by an earlier run, or the pair was linked on the way
        if new:
            q = verifier.quick((fa.content_hash, None), ta, (fb.content_hash, ts), tb)
        elif ("q", fa.content_hash, None, fb.content_hash, ts) in verifier.verdicts:
            continue  # screened by an earlier run: so was the rest
        else:
            q = None  # a row without stored features: decoded whatever (``_passes``)
        if _passes(q, must):
            passed.append((fa, fb, ts, dist, q))
    # whether they sit in a frame decides between the pixel check and the decoded one (``_by_pixels``)
    verifier.framed_many([p for fa, fb, ts, dist, q in passed if q is not None and fi.decide(q, dist).copy
                          for p in ((fa.path, None, fa.content_hash), (fb.path, ts, fb.content_hash))])  # fmt: skip
    seen, small = [], []
    for fa, fb, ts, dist, q in passed:
        (small if _by_pixels(verifier, fa, fb, ts, q, dist) else seen).extend([(fa.path, None), (fb.path, ts)])
    verifier.prefetch(seen, small)


def _frames_ahead(verifier: Verifier, rows: Rows, files: dict[str, Any], pairs: list[tuple[int, int]]) -> None:
    """Whether the pictures of the pHash-close ``pairs`` sit in a frame (their pHash alone makes
    a copy unless both do), read on the verifier's threads (``Verifier.framed_many``)."""
    want = []
    for a, b in pairs:
        dist = _dist(rows, a, b)
        if _close(dist):
            want += [(files[rows.file_ids[i]].path, None, files[rows.file_ids[i]].content_hash) for i in (a, b) if rows.file_ids[i] in files]
    verifier.framed_many(want)


def _close(dist: int | None) -> bool:
    """Whether a pHash distance is close (``HASH_CHECK`` bits or fewer; None: a row without one)."""
    return dist is not None and dist <= HASH_CHECK


def _passes(q: Any, must: bool) -> bool:
    """Whether a screened pair goes on to ``_check``: its stored features (``q``) show more than
    chance, it has none (an older index), or it is checked whatever they say (``must``)."""
    return q is None or q.inliers > QUICK_MIN or must


def _by_pixels(verifier: Verifier, fa: Any, fb: Any, b_ts: float | None, q: Any, dist: int | None) -> bool:
    """Whether a screened pair needs its pixels checked only: the stored features make a copy, and
    neither picture sits in a frame (a framed picture's stored features include its frame)."""
    return (q is not None and fi.decide(q, dist).copy and not verifier.framed(fa.path, None, fa.content_hash)
            and not verifier.framed(fb.path, b_ts, fb.content_hash))  # fmt: skip


def _check(verifier: Verifier, fa: Any, fb: Any, b_ts: float | None, q: Any, dist: int | None) -> Any:
    """A pair its screen passed (``q``; None without stored features): its pixels checked where the
    stored features make a copy (``Verifier.confirm``), else decoded and verified (``Verifier.verify``)."""
    v = None
    if _by_pixels(verifier, fa, fb, b_ts, q, dist):
        v = verifier.confirm(fa.path, (fa.content_hash, None), fb.path, (fb.content_hash, b_ts))
    if v is None:
        v = verifier.verify(fa.path, None, fb.path, b_ts, (fa.content_hash, fb.content_hash))
    return v


def _screen(verifier: Verifier, ha: str, ra: Rows, a: int, hb: str, rb: Rows, b: int, b_ts: float | None = None) -> Any:
    """The stored local features of image row ``a`` (content ``ha``) against row ``b``'s (content
    ``hb``, keyframe time ``b_ts``), mirrored too (``Verifier.quick``); None for a row stored
    without features (an older index)."""
    return verifier.quick((ha, None), ra.local[a] if ra.local else None, (hb, b_ts), rb.local[b] if rb.local else None)


def framed_pairs(stored: Stored, links: Links, verifier: Verifier) -> None:
    """Pictures found framed (screenshots) on the way, searched again by their inner picture's pHash.
    A chunk of them at a time, their pictures and those of their candidates read ahead on the
    verifier's threads (``Verifier.prefetch``); the checks run in order."""
    rows = stored.rows.get("image")
    if rows is None:
        return
    files = stored.files
    by_path = {files[f].path: i for i, f in enumerate(rows.file_ids) if f in files}
    ok = np.nonzero(rows.has_phash)[0]
    framed = [path for (path, ts), yes in list(verifier.frames.items()) if yes and ts is None and path in by_path]
    for start in range(0, len(framed), SCREEN_CHUNK):
        chunk = [(path, files[rows.file_ids[by_path[path]]].content_hash) for path in framed[start : start + SCREEN_CHUNK]]
        verifier.prefetch([(path, None) for path, content in chunk if ("i", content, None, "", None) not in verifier.verdicts], [])
        todo = []
        for path, content in chunk:
            hashes = verifier.inner_hashes(path, content)
            if hashes is None:
                continue
            _, j, d = hamming_pairs(hashes, rows.phashes[ok], HASH_CHECK)
            near: dict[int, int] = {}
            for b, dist in zip(ok[j].tolist(), d.tolist()):
                near[b] = min(dist, near.get(b, 64))
            todo += [(path, content, files.get(rows.file_ids[b]), dist) for b, dist in sorted(near.items(), key=lambda kv: kv[1])]
        todo = [(path, content, other, dist) for path, content, other, dist in todo if other is not None and other.path != path]
        for n, (path, content, other, dist) in enumerate(todo):
            if n % SCREEN_CHUNK == 0:
                verifier.prefetch([(o.path, None) for p, c, o, _ in todo[n : n + SCREEN_CHUNK]
                                   if not links.linked(p, o.path) and ("v", c, None, o.content_hash, None) not in verifier.verdicts], [])  # fmt: skip
            if links.linked(path, other.path):
                continue
            v = verifier.verify(path, None, other.path, None, (content, other.content_hash))
            ev = fi.decide(v, None)
            if ev.copy:
                links.add(Pair(path, other.path, "copy", "local_features", phash_distance=dist, inliers=ev.inliers,
                               mirrored=bool(v and v.mirrored), confidence=ev.confidence))  # fmt: skip


def _dist(rows: Rows, a: int, b: int, other: Rows | None = None) -> int | None:
    """pHash distance of row ``a`` to row ``b`` (of ``other``, default the same rows); None if either has none."""
    rb = rows if other is None else other
    if not (rows.has_phash[a] and rb.has_phash[b]):
        return None
    return int(np.bitwise_count(rows.phashes[a] ^ rb.phashes[b]))
