"""Sounds: copies among sounds and video soundtracks, from the stored landmark fingerprints.

Every stored landmark hash (``copydetect.audio.pack`` values of every audio
window row, sounds and soundtracks alike) goes into one sorted table; two
files that share a hash vote for the time offset between them, and a copy is
a peak in a pair's offset histogram, counted as in ``copydetect.audio.match``:
distinct 96 ms slots of time agreeing on one 32 ms offset bin (or its
neighbour), ``copydetect.audio.decide`` turning votes into a verdict. One pass
over the table finds every pair: no file is decoded and no pair is guessed
first. Hashes shared by more than ``BUCKET_CAP`` entries (silence, hum) carry
no identity and are skipped.

Not covered: a copy with its tempo changed (stored hashes are at scale 1; the
query path hashes the query under several tempos, which needs the samples).
"""

from __future__ import annotations

import numpy as np

from ..copydetect import audio as fa
from .gather import Stored
from .links import Links, Pair

__all__ = ["BUCKET_CAP", "sound_votes", "sound_pairs"]

BUCKET_CAP = 24
_BIN_BIAS = 1 << 25
_SLOT_BITS = 24


def sound_votes(prints: list[np.ndarray]) -> list[tuple[int, int, int, float]]:
    """(file a, file b, votes, offset s) for every pair of files (a < b) that share landmarks;
    ``offset``: where a's time 0 falls in b (b time = a time + offset)."""
    sizes = [len(p) for p in prints]
    if sum(sizes) == 0:
        return []
    h, t = fa.unpack(np.concatenate([np.asarray(p, dtype=np.int64) for p in prints]))
    f = np.repeat(np.arange(len(prints), dtype=np.int64), sizes)
    order = np.lexsort((f, h))
    h, t, f = h[order], t[order], f[order]
    # keep buckets of at most BUCKET_CAP entries
    _, start, counts = np.unique(h, return_index=True, return_counts=True)
    keep = np.repeat(counts <= BUCKET_CAP, counts)
    h, t, f = h[keep], t[keep], f[keep]
    ia, ib = [], []
    for d in range(1, BUCKET_CAP):
        if d >= len(h):
            break
        same = (h[:-d] == h[d:]) & (f[:-d] != f[d:])
        if not same.any() and not (h[:-d] == h[d:]).any():
            break
        idx = np.nonzero(same)[0]
        ia.append(idx)
        ib.append(idx + d)
    if not ia:
        return []
    ia, ib = np.concatenate(ia), np.concatenate(ib)
    fa_, fb_, ta, tb = f[ia], f[ib], t[ia], t[ib]
    swap = fa_ > fb_
    fa_, fb_ = np.where(swap, fb_, fa_), np.where(swap, fa_, fb_)
    ta, tb = np.where(swap, tb, ta), np.where(swap, ta, tb)
    n = np.int64(len(prints))
    pair = fa_ * n + fb_
    bins = np.floor_divide(tb - ta, 2) + _BIN_BIAS
    slot = ta // fa.TILE
    # distinct (pair, bin, slot): one vote per query-time slot and offset bin
    key = (bins << _SLOT_BITS) | np.minimum(slot, (1 << _SLOT_BITS) - 1)
    o = np.lexsort((key, pair))
    pair, key = pair[o], key[o]
    first = np.ones(len(pair), bool)
    first[1:] = (pair[1:] != pair[:-1]) | (key[1:] != key[:-1])
    pair, bins = pair[first], key[first] >> _SLOT_BITS
    # votes per (pair, bin)
    pb = np.stack([pair, bins], 1)
    change = np.ones(len(pb), bool)
    change[1:] = (pb[1:] != pb[:-1]).any(axis=1)
    starts = np.nonzero(change)[0]
    counts = np.diff(np.append(starts, len(pb)))
    upair, ubin = pair[starts], bins[starts]
    # add the better neighbouring bin (a copy's offset can straddle two bins)
    combo = upair * (2 * _BIN_BIAS) + ubin
    total = counts.copy()
    for step in (-1, 1):
        pos = np.searchsorted(combo, combo + step)
        pos_c = np.minimum(pos, len(combo) - 1)
        hit = combo[pos_c] == combo + step
        total = np.maximum(total, counts + np.where(hit, counts[pos_c], 0))
    out: list[tuple[int, int, int, float]] = []
    o = np.lexsort((-total, upair))
    firsts = np.ones(len(o), bool)
    firsts[1:] = upair[o][1:] != upair[o][:-1]
    for k in o[firsts].tolist():
        a, b = divmod(int(upair[k]), int(n))
        off = ((int(ubin[k]) - _BIN_BIAS) * 2 + 1) * fa.FRAME_S
        out.append((a, b, int(total[k]), round(off, 3)))
    return out


def sound_pairs(stored: Stored, links: Links) -> int:
    """Copies among sounds and soundtracks into ``links``; returns the pairs that shared landmarks."""
    rows = stored.rows.get("audio")
    if rows is None or not len(rows):
        return 0
    per_file: dict[str, list[np.ndarray]] = {}
    for fid, p in zip(rows.file_ids, rows.prints):
        if len(p):
            per_file.setdefault(fid, []).append(p)
    fids = [f for f in per_file if f in stored.files]
    found = sound_votes([np.concatenate(per_file[f]) for f in fids])
    for a, b, votes, off in found:
        ev = fa.decide(votes)
        if not ev.copy:
            continue
        ra, rb = stored.files[fids[a]], stored.files[fids[b]]
        if ra.content_hash == rb.content_hash:
            continue
        # a: the part found inside b (the sound in the video, the snippet in the longer file)
        if (ra.kind == "video" and rb.kind == "audio") or (ra.kind == rb.kind and off < 0):
            ra, rb, off = rb, ra, -off
        links.add(Pair(ra.path, rb.path, "copy", "audio_fingerprint", votes=votes, confidence=ev.confidence,
                       a_time=round(max(0.0, -off), 3), b_time=round(max(0.0, off), 3), offset=off))  # fmt: skip
    return len(found)
