"""Sounds: copies among sounds and video soundtracks, from the stored landmark fingerprints.

Every stored landmark hash (``signals.audio.pack`` values of every audio
window row, sounds and soundtracks alike) goes into one sorted table; two
files that share a hash vote for the time offset between them, and a copy is
a peak in a pair's offset histogram, counted as in ``signals.audio.match``:
distinct 96 ms slots of time agreeing on one 32 ms offset bin (or its
neighbour). One pass over the table finds every pair: no pair is guessed
first. Hashes shared by more than ``BUCKET_CAP`` entries (silence, hum) carry
no identity and are skipped.

A pair with the votes of a copy is then judged (``judge``): the shorter
file's stored landmarks matched against the other's as a query's would be
(``signals.audio.match``, ``decide_match``), and what that leaves open checked
on both files' samples (``signals.waveform``; the only decoding, of at most 8 s
of each). Votes alone took other takes of the same words for copies: on 1,100
real clips from Debian packages that hold no edited copies, 26 of the 29 copy
pairs shared no samples (tuxpaint's spoken descriptions, a cymbal and a music
loop).

Tempo: a copy played up to 5 % faster or slower keeps its peaks' frequencies but
stretches their gaps; every file's landmarks are re-timed under the hypotheses
``signals.audio.SCALES`` (from the stored, 2-frame-quantised gaps: both
neighbouring values are tried) and matched against the stored ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..signals import audio as fa
from ..signals import waveform as fw
from ..signals.image import Verification
from .gather import Stored
from .links import Links, Pair
from .verdicts import Verdicts

if TYPE_CHECKING:
    from ..store.records import FileRecord

__all__ = ["BUCKET_CAP", "Counted", "count", "sound_votes", "sound_pairs", "judge"]

log = logging.getLogger(__name__)

BUCKET_CAP = 24
#: Votes a re-timed (tempo) hypothesis needs to count: trying 4 more hypotheses, each with two
#: gap roundings, lifts the best chance peak between unrelated generated tunes from 6 to 8 votes.
TEMPO_MIN_VOTES = 12
#: Pairs with fewer votes are not returned (far from a copy: ``signals.audio.decide`` needs 8).
REPORT_MIN_VOTES = 4
_BIN_BIAS = 1 << 25
_SLOT_BITS = 24


def sound_votes(prints: list[np.ndarray], *, tempo: bool = True, new: np.ndarray | None = None) -> list[tuple[int, int, int, float]]:
    """(file a, file b, votes, offset s) for every pair of files (a < b) that share landmarks;
    ``offset``: where a's time 0 falls in b (b time = a time + offset).

    ``tempo``: also match every file's landmarks re-timed under the tempo hypotheses
    ``signals.audio.SCALES`` against everyone's stored ones (a copy played 2.5 to 5 %
    faster or slower); the best hypothesis counts for each pair.

    ``new``: one flag per file; only pairs with a new file are counted (the others are known
    from an earlier run), and only the landmarks whose two peaks' frequencies a new file has
    take part (a re-timed hash keeps them), so their hashes' counts, hence the ``BUCKET_CAP``
    rule and every vote, are those of the whole library.
    """
    sizes = [len(p) for p in prints]
    if sum(sizes) == 0:
        return []
    h, t = fa.unpack(np.concatenate([np.asarray(p, dtype=np.int64) for p in prints]))
    f = np.repeat(np.arange(len(prints), dtype=np.int64), sizes)
    if new is not None:
        new = np.asarray(new, dtype=bool)
        sel = np.isin(h >> 5, np.unique((h >> 5)[new[f]]))
        h, t, f = h[sel], t[sel], f[sel]
    best: dict[int, tuple[int, float]] = {}
    n = len(prints)
    for scale in fa.SCALES if tempo else (1.0,):
        if scale == 1.0:
            found = _votes(h, t.astype(np.float64), f, None, n, REPORT_MIN_VOTES, new)
        else:
            # gaps of 2*dq or 2*dq+1 frames, stretched: both quantised values are tried
            f1f2, dq = h >> 5, h & 31
            alts = [np.clip(np.rint((2 * dq + e) * scale).astype(np.int64) // 2, 0, 31) for e in (0, 1)]
            two = alts[1] != alts[0]
            hs = np.concatenate([(f1f2 << 5) | alts[0], ((f1f2 << 5) | alts[1])[two]])
            ts = np.concatenate([t * scale, (t * scale)[two]])
            fs = np.concatenate([f, f[two]])
            hh = np.concatenate([h, hs])
            tt = np.concatenate([t.astype(np.float64), ts])
            ff = np.concatenate([f, fs])
            tag = np.concatenate([np.zeros(len(h), np.int8), np.ones(len(hs), np.int8)])
            found = _votes(hh, tt, ff, tag, n, TEMPO_MIN_VOTES, new)
        for key, (votes, off) in found.items():
            if scale != 1.0 and votes < TEMPO_MIN_VOTES:
                continue  # more hypotheses, a higher chance peak: a re-timed match must be clear
            if votes > best.get(key, (0, 0.0))[0]:
                best[key] = (votes, off)
    return [(k // n, k % n, v, off) for k, (v, off) in sorted(best.items())]


def _votes(h: np.ndarray, t: np.ndarray, f: np.ndarray, tag: np.ndarray | None, n: int, min_votes: int = 1,
           new: np.ndarray | None = None) -> dict[int, tuple[int, float]]:
    """Best (votes, offset s) per pair key ``a * n + b``; with ``tag``, only entries of different tags
    pair; with ``new`` (a flag per file), only pairs with a new file."""
    order = np.argsort((h << 24) | f, kind="stable") if n < (1 << 24) else np.lexsort((f, h))
    h, t, f = h[order], t[order], f[order]
    tag = tag[order] if tag is not None else None
    cap = BUCKET_CAP if tag is None else 2 * BUCKET_CAP
    change = np.ones(len(h), bool)
    change[1:] = h[1:] != h[:-1]
    counts = np.diff(np.append(np.nonzero(change)[0], len(h)))
    # a hash met once pairs nothing; one met too often (silence, hum) carries no identity
    keep = np.repeat((counts >= 2) & (counts <= cap), counts)
    h, t, f = h[keep], t[keep], f[keep]
    tag = tag[keep] if tag is not None else None
    ia, ib = [], []
    for d in range(1, cap):
        if d >= len(h):
            break
        eq = h[:-d] == h[d:]
        if not eq.any():
            break
        same = eq & (f[:-d] != f[d:])
        if new is not None:
            same &= new[f[:-d]] | new[f[d:]]
        if tag is not None:
            same &= tag[:-d] != tag[d:]
        idx = np.nonzero(same)[0]
        ia.append(idx)
        ib.append(idx + d)
    if not ia:
        return {}
    ia, ib = np.concatenate(ia), np.concatenate(ib)
    if tag is not None:  # a: the re-timed side
        flip = tag[ia] == 0
        ia, ib = np.where(flip, ib, ia), np.where(flip, ia, ib)
    fa_, fb_, ta, tb = f[ia], f[ib], t[ia], t[ib]
    swap = fa_ > fb_
    if tag is not None:
        keep = ~swap  # each ordered direction has its own re-timing: keep a < b, the other comes as b < a
        fa_, fb_, ta, tb = fa_[keep], fb_[keep], ta[keep], tb[keep]
        # b < a re-timed: the same pair seen from b; turn it round (times of b stretched instead)
        fa2, fb2, ta2, tb2 = f[ib][swap], f[ia][swap], t[ib][swap], t[ia][swap]
        fa_, fb_ = np.concatenate([fa_, fa2]), np.concatenate([fb_, fb2])
        ta, tb = np.concatenate([ta, ta2]), np.concatenate([tb, tb2])
    else:
        fa_, fb_ = np.where(swap, fb_, fa_), np.where(swap, fa_, fb_)
        ta, tb = np.where(swap, tb, ta), np.where(swap, ta, tb)
    pair = fa_ * np.int64(n) + fb_
    bins = np.floor((tb - ta) / 2.0).astype(np.int64) + _BIN_BIAS
    slot = np.clip((ta // fa.TILE).astype(np.int64), 0, (1 << _SLOT_BITS) - 1)
    pair, bins = _distinct(pair, bins, slot)  # one vote per time slot and offset bin
    change = np.ones(len(pair), bool)
    change[1:] = (pair[1:] != pair[:-1]) | (bins[1:] != bins[:-1])
    starts = np.nonzero(change)[0]
    counts = np.diff(np.append(starts, len(pair)))
    upair, ubin = pair[starts], bins[starts]
    # add the better neighbouring bin (a copy's offset can straddle two bins)
    # (pair, bin) sorted and distinct: a neighbouring bin of the same pair is the row next to it
    combo = upair * (2 * _BIN_BIAS) + ubin
    below = np.zeros(len(combo), bool)
    below[1:] = combo[1:] == combo[:-1] + 1  # row i - 1 is row i's bin - 1
    lower = np.zeros_like(counts)
    lower[1:] = np.where(below[1:], counts[:-1], 0)
    upper = np.zeros_like(counts)
    upper[:-1] = np.where(below[1:], counts[1:], 0)
    total = counts + np.maximum(lower, upper)
    strong = total >= min_votes  # only pairs that can still be copies go on
    upair, ubin, total = upair[strong], ubin[strong], total[strong]
    o = np.lexsort((-total, upair))
    firsts = np.ones(len(o), bool)
    firsts[1:] = upair[o][1:] != upair[o][:-1]
    out: dict[int, tuple[int, float]] = {}
    for k in o[firsts].tolist():
        off = ((int(ubin[k]) - _BIN_BIAS) * 2 + 1) * fa.FRAME_S
        out[int(upair[k])] = (int(total[k]), round(off, 3))
    return out


def _distinct(pair: np.ndarray, bins: np.ndarray, slot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (pair, bin, slot) triples, sorted, as their pairs and bins. One sort of one
    key where the three fit in 63 bits (files squared, times the offsets' and the slots' spans:
    10k sounds of a few minutes fit), which is several times faster than sorting by two keys."""
    if not len(pair):
        return pair, bins
    b0 = int(bins.min())
    bspan, sspan = int(bins.max()) - b0 + 1, int(slot.max()) + 1
    if (int(pair.max()) + 1) * bspan * sspan < (1 << 63):
        u = np.sort((pair * bspan + (bins - b0)) * sspan + slot)  # (np.unique is far slower here)
        keep = np.ones(len(u), bool)
        keep[1:] = u[1:] != u[:-1]
        u = u[keep] // sspan
        return u // bspan, u % bspan + b0
    key = (bins << _SLOT_BITS) | slot
    o = np.lexsort((key, pair))
    pair, key = pair[o], key[o]
    first = np.ones(len(pair), bool)
    first[1:] = (pair[1:] != pair[:-1]) | (key[1:] != key[:-1])
    return pair[first], key[first] >> _SLOT_BITS


def _judged(ra: FileRecord, rb: FileRecord, counted: Counted, verdicts: Verdicts | None) -> fa.AudioEvidence:
    """``judge``, kept in ``verdicts`` (``j``: copy, and the confidence in ten-thousandths: ``decide``
    rounds it to 4 places) by both contents."""
    ha, hb = sorted((ra.content_hash or ra.file_id, rb.content_hash or rb.file_id))
    key = ("j", ha, None, hb, None)
    got = verdicts.get(key) if verdicts is not None else None
    if got is not None:
        return fa.AudioEvidence(bool(got[0]), got[1] / 10000, 0)
    ev = judge(ra, rb, *(np.concatenate(counted.prints[r.file_id]) for r in (ra, rb)))
    if verdicts is not None:
        verdicts.put(key, Verification(int(ev.copy), round(ev.confidence * 10000)))
    return ev


def sound_version() -> str:
    """What the kept sound pairs depend on (``verdicts``)."""
    judged = f"judged|share{fa.MIN_PAIR_SHARE}|cover{fa.MIN_COVER}|check{fw.CHECK_BELOW}-{fw.MIN_WAVE}-{fw.MIN_SPECTRAL}"
    return f"{fa.FP_VERSION}|cap{BUCKET_CAP}|tempo{TEMPO_MIN_VOTES}|report{REPORT_MIN_VOTES}|{judged}"


def judge(a: FileRecord, b: FileRecord, prints_a: np.ndarray, prints_b: np.ndarray) -> fa.AudioEvidence:
    """Whether sounds ``a`` and ``b`` (their stored landmarks), which share a copy's votes, are
    copies. The shorter (fewer landmark slots) is matched against the other as a query would be
    (``signals.audio.match``); a strong copy by the query's rule (``decide_match``, its pair share
    at least ``waveform.CHECK_BELOW``) is one. Otherwise the samples decide (``signals.waveform``,
    both files decoded at the match's offset): a weak copy, and also a pair the query's rule
    leaves out for its cover or its runner-up, which two edited copies of one recording (noise
    against a tempo change) or a loop (many offsets agree) often are; the query's rule was
    calibrated on a query against its source, not on two copies side by side. Where a file cannot
    be decoded now, the query's rule decides alone."""
    qa, qb = fa.stored_pairs(prints_a), fa.stored_pairs(prints_b)
    if fa.slots(qb) < fa.slots(qa):
        a, b, qa, prints_b = b, a, qb, prints_a
    n = fa.slots(qa)
    m = fa.match(qa, [prints_b])[0]
    ev = fa.decide_match(m, n, heard=True)  # the rule but for the pair share
    if ev.copy and m.pair_share >= fw.CHECK_BELOW:
        return ev
    heard = _heard(a, b, m) if m.votes else None
    if heard is None:
        return fa.decide_match(m, n)
    if ev.copy or not heard:
        return fa.decide_match(m, n, heard=heard)
    return fa.AudioEvidence(True, 0.5, m.votes)  # a copy by its samples alone: the lowest copy confidence


def _heard(a: FileRecord, b: FileRecord, m: fa.AudioMatch) -> bool | None:
    """``signals.waveform.heard``: ``a``'s matched stretch, decoded now, against ``b``'s."""
    from ..decode.audio import decode_audio
    from ..errors import MediaSearchError

    qs = fw.query_span(m)
    try:
        x = decode_audio(a.path, from_video=a.kind == "video", span=qs)
    except MediaSearchError as e:
        log.debug("could not check %s on its samples: %s", a.path, e)
        return None
    return fw.heard(x.samples, x.sr, b.path, m, from_video=b.kind == "video", query_start=qs[0])


@dataclass
class Counted:
    """What ``count`` found: the sounds (file ids, content hashes, whether the last run had them)
    and the pairs that share landmarks among them, counted in this run."""

    fids: list[str]
    contents: list[str]
    old: np.ndarray
    found: list[tuple[int, int, int, float]]
    prints: dict[str, list[np.ndarray]]  # each sound's stored landmarks, by file id (``judge``)


def count(stored: Stored, last: tuple[int, set[str]] = (0, set())) -> Counted | None:
    """The pairs of sounds and soundtracks that share landmarks, voted (``sound_votes``); ``last``:
    ``Verdicts.last_run``, whose sounds' pairs among themselves are not counted again. Reads and
    writes nothing else, so ``duplicates.find_duplicates`` runs it on a thread while pictures are
    checked; None without audio rows."""
    rows = stored.rows.get("audio")
    if rows is None or not len(rows):
        return None
    per_file: dict[str, list[np.ndarray]] = {}
    for fid, p in zip(rows.file_ids, rows.prints):
        if len(p):
            per_file.setdefault(fid, []).append(p)
    fids = [f for f in per_file if f in stored.files]
    contents = [stored.files[f].content_hash or f for f in fids]
    old = np.array([c in last[1] for c in contents], dtype=bool)
    found = [] if old.all() else sound_votes([np.concatenate(per_file[f]) for f in fids], new=~old if old.any() else None)
    return Counted(fids, contents, old, found, per_file)


def sound_pairs(stored: Stored, links: Links, verdicts: Verdicts | None = None, counted: Counted | None = None) -> tuple[int, int]:
    """Copies among sounds and soundtracks into ``links``; returns the pairs that shared landmarks
    and the sounds whose pairs were counted in this run.
    ``verdicts``: the pairs among the sounds of the last run are taken from there, only pairs with
    a sound that run did not have are counted, and what this run found is kept. ``counted``:
    ``count``'s answer, when it ran already (with this ``verdicts``' ``last_run``).

    A kept pair's votes are those of the run that first counted it; hashes that later became too
    common (``BUCKET_CAP``) are not taken out of it."""
    run, known = verdicts.last_run() if verdicts is not None else (0, set())
    if counted is None:
        counted = count(stored, (run, known))
    if counted is None:
        return 0, 0
    fids, contents, old, found = counted.fids, counted.contents, counted.old, counted.found
    if verdicts is not None:
        first = {}
        for i, c in enumerate(contents):
            first.setdefault(c, i)
        for a, b, votes, off in found:
            verdicts.put(("a", contents[a], None, contents[b], None), Verification(votes, round(off * 1000)))
        kept = [(first[ha], first[hb], v[0], v[1] / 1000) for ha, hb, v in verdicts.stage("a") if ha in first and hb in first]
        found = found + [k for k in kept if old[k[0]] and old[k[1]]]
        if not old.all():  # every pair among this run's sounds is known now (a run with nothing new: among the last run's)
            for c in first:
                verdicts.put(("r", c, None, "", None), Verification(run + 1, 0))
    for a, b, votes, off in found:
        if not fa.decide(votes).copy:  # not even the votes of a copy
            continue
        ra, rb = stored.files[fids[a]], stored.files[fids[b]]
        if ra.content_hash == rb.content_hash:
            continue
        ev = _judged(ra, rb, counted, verdicts)
        if not ev.copy:
            continue
        # a: the part found inside b (the sound in the video, the snippet in the longer file)
        if (ra.kind == "video" and rb.kind == "audio") or (ra.kind == rb.kind and off < 0):
            ra, rb, off = rb, ra, -off
        links.add(Pair(ra.path, rb.path, "copy", "audio_fingerprint", votes=votes, confidence=ev.confidence,
                       a_time=round(max(0.0, -off), 3), b_time=round(max(0.0, off), 3), offset=off))  # fmt: skip
    return len(found), int((~old).sum())
