"""Would a relative copy rule remove the false copy flags of ``bench_copy.py --only audio-real``
without losing real copies? An analysis of a finished run, no index needed:

    python scripts/bench/flag_rules.py [--out /tmp/bench_copy] [--sources 200] [--answers FILE]

Two sets of copy flags, each with its half (calibration or report):

* **false flags**: the files other than the source that a run flagged copy
  (``--answers``, by default ``<out>/audio-real-answers-N.jsonl``) and that share none of the
  source's samples (``real_audio.shares_audio``), matched again against their query. The rule
  chosen here (``signals.audio.outvoted``) removes most of them from the runs after it: to see
  them, give the answers of a run of the code before it (``git worktree add /tmp/before 08e97ef``,
  ``bench_copy.py --only audio-real --sources 200 --out /tmp/before-out`` there);
* **second copies**: a library holding several edited copies of one recording (each source's
  whole-clip edits: gain, noise, mp3, resample, tempo) queried with each of its edits; every copy
  that the calibrated rule (``signals.audio.decide``) flags is a true copy.

And, for ``signals.audio.MIN_PAIR_SHARE`` (``--pair-share``), every copy that the rule without it
flags for each query of a half among the 25 library files sharing the most hashes with it: the
sources' ``AudioMatch.pair_share`` per edit family against the other files' (none sharing the
source's samples: other takes of the same words).

And, for ``signals.waveform`` (``--samples``), the same flags laid against their query on the
samples, as ``query.sounds.sample_check`` does it: each family's range of ``wave`` and
``spectral`` against the other takes', and how many of each the check would refuse.

Features of a flag: ``ratio``, its votes over the best flagged match's votes for the same query,
and ``hits``, the share of the query's landmark slots in the matched stretch that hit at the
match's offset (``AudioMatch.hit_share``). A rule demotes a flag (copy -> similar) when
``ratio < R`` and ``hits < H``; the rules are ranked on the calibration half, and each is shown
on both halves.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.real_audio import make_real_audio, shares_audio  # noqa: E402
from media_search.decode.audio import decode_audio  # noqa: E402
from media_search.signals import audio as fa  # noqa: E402

WHOLE = ("gain", "noise_10db", "mp3_low", "resample", "tempo")


class Prints:
    """Landmarks of each file, and their packed form, computed once."""

    def __init__(self) -> None:
        self._pairs: dict[str, fa.Pairs] = {}
        self._packed: dict[str, np.ndarray] = {}

    def pairs(self, path: str) -> fa.Pairs:
        if path not in self._pairs:
            a = decode_audio(path)
            self._pairs[path] = fa.landmarks(a.samples, a.sr)
        return self._pairs[path]

    def packed(self, path: str) -> np.ndarray:
        if path not in self._packed:
            self._packed[path] = fa.pack(self.pairs(path))
        return self._packed[path]


def false_flags(data: dict, answers: Path, prints: Prints) -> list[dict]:
    queries = {q["query"]: q for q in data["queries"]}
    out = []
    for line in answers.read_text().splitlines():
        a = json.loads(line)
        q = queries.get(a["query"])
        flagged = [p for p, f in a.get("flagged", []) if f]
        if q is None or not flagged:
            continue
        qp = prints.pairs(q["query"])
        ms = fa.match(qp, [prints.packed(p) for p in flagged])
        best = max(m.votes for m in ms)
        for p, m in zip(flagged, ms):
            if Path(p).resolve() == Path(q["original"]).resolve() or shares_audio(q["original"], p):
                continue
            out.append({"half": q["half"], "ratio": m.votes / max(best, 1), "hits": m.hit_share})
    return out


def second_copies(data: dict, prints: Prints) -> list[dict]:
    edits: dict[str, dict[str, str]] = defaultdict(dict)
    half = {}
    for q in data["queries"]:
        edits[q["original"]][q["family"]] = q["query"]
        half[q["original"]] = q["half"]
    out = []
    for src, fams in edits.items():
        library = [fams[f] for f in WHOLE if f in fams] + [src]
        for qpath in fams.values():
            qp = prints.pairs(qpath)
            lib = [p for p in library if p != qpath]
            ms = fa.match(qp, [prints.packed(p) for p in lib])
            flags = [(p, m) for p, m in zip(lib, ms) if fa.decide_match(m, fa.slots(qp)).copy]
            best = max((m.votes for _, m in flags), default=0)
            out += [{"half": half[src], "ratio": m.votes / max(best, 1), "hits": m.hit_share}
                    for p, m in flags if p != src]  # fmt: skip
    return out


def flags(data: dict, prints: Prints, half: str):
    """Every copy that the rule without ``MIN_PAIR_SHARE`` (and without ``signals.waveform``) flags
    for each query of ``half`` among the 25 library files sharing the most hashes with it, but for
    files sharing the source's samples: ``(query, library file, AudioMatch, is the source)``."""
    library = list(data["library"])
    hashes = [fa.unpack(prints.packed(p))[0] for p in library]
    allh = np.concatenate(hashes)
    owner = np.concatenate([np.full(len(h), i) for i, h in enumerate(hashes)])
    o = np.argsort(allh, kind="stable")
    allh, owner = allh[o], owner[o]
    for q in data["queries"]:
        if q["half"] != half:
            continue
        qp = prints.pairs(q["query"])
        n_slots = fa.slots(qp)
        h = np.unique(qp.hashes())
        lo, hi = np.searchsorted(allh, h), np.searchsorted(allh, h, side="right")
        count = np.bincount(np.concatenate([owner[a:b] for a, b in zip(lo, hi)] or [np.zeros(0, int)]), minlength=len(library))
        cand = sorted(set(np.argsort(-count)[:25].tolist()) | {library.index(q["original"])})
        for i, m in zip(cand, fa.match(qp, [prints.packed(library[i]) for i in cand])):
            if not fa.decide(m.votes, m.cover or n_slots, m.runner_up, m.repeats).copy:
                continue
            if library[i] == q["original"]:
                yield q, library[i], m, True
            elif not shares_audio(q["original"], library[i]):
                yield q, library[i], m, False


def pair_shares(data: dict, prints: Prints, half: str) -> tuple[dict[str, list[float]], list[float]]:
    """The pair shares of the sources flagged by the rule without ``MIN_PAIR_SHARE`` (per family),
    and of the other files it flags that share none of the source's samples."""
    sources: dict[str, list[float]] = defaultdict(list)
    others: list[float] = []
    for q, _, m, is_source in flags(data, prints, half):
        (sources[q["family"]] if is_source else others).append(m.pair_share)
    return sources, others


def sample_agreements(data: dict, prints: Prints, half: str) -> None:
    """``signals.waveform.agreement`` of each flag (``flags``), as the query path computes it
    (``query.sounds.sample_check``'s decoding of the library stretch): its lowest per family for the
    sources, its highest for the other takes, and the flags the checks would decide."""
    from media_search.config import Settings
    from media_search.decode.file import decode_sound
    from media_search.signals import waveform as fw

    settings = Settings.from_env()
    rows = []
    for q, path, m, is_source in flags(data, prints, half):
        query = decode_sound(q["query"], settings)
        start, seconds = fw.library_span(m)
        heard = decode_sound(path, settings, span=(start, seconds))
        got = fw.agreement(query.samples, query.sr, heard.samples, heard.sr, m, start)
        rows.append((q["family"] if is_source else "other take", got, m.pair_share))
    print(f"{half} half, samples of each flag (MIN_WAVE {fw.MIN_WAVE}, MIN_SPECTRAL {fw.MIN_SPECTRAL}, "
          f"checked under a pair share of {fw.CHECK_BELOW}):")  # fmt: skip
    for fam in sorted({r[0] for r in rows}):
        got = [(g, ps) for f, g, ps in rows if f == fam]
        none = sum(g is None for g, _ in got)
        got = [(g, ps) for g, ps in got if g is not None]
        wave = sorted(g.wave for g, _ in got)
        spec = sorted(g.spectral for g, _ in got)
        fails = sum(not g.copy and ps < fw.CHECK_BELOW for g, ps in got)
        print(f"  {fam}: {len(got) + none} flags ({none} not comparable); wave {wave[0]:.3f} to {wave[-1]:.3f}, "
              f"spectral {spec[0]:.3f} to {spec[-1]:.3f}; spectral under the bar: wave from "
              f"{min((g.wave for g, _ in got if g.spectral < fw.MIN_SPECTRAL), default=float('nan')):.3f}; "
              f"wave under the bar: spectral from {min((g.spectral for g, _ in got if g.wave < fw.MIN_WAVE), default=float('nan')):.3f}; "
              f"refused {fails}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="/tmp/bench_copy")
    ap.add_argument("--sources", type=int, default=200)
    ap.add_argument("--answers", type=Path, default=None, help="a run's answers (default: the one in --out)")
    ap.add_argument("--pair-share", choices=("calibration", "report"), default=None,
                    help="show the pair shares of one half's flags instead (signals.audio.MIN_PAIR_SHARE)")
    ap.add_argument("--samples", choices=("calibration", "report"), default=None,
                    help="show the sample checks of one half's flags instead (signals.waveform)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    answers = args.answers or out / f"audio-real-answers-{args.sources}.jsonl"
    if not answers.exists() and not (args.pair_share or args.samples):
        raise SystemExit(f"{answers} is missing: run scripts/bench_copy.py --only audio-real --sources {args.sources} first")
    data = make_real_audio(out, n_sources=args.sources)
    prints = Prints()
    if args.samples:
        sample_agreements(data, prints, args.samples)
        return 0
    if args.pair_share:
        sources, others = pair_shares(data, prints, args.pair_share)
        print(f"{args.pair_share} half, pair share of each flag (MIN_PAIR_SHARE = {fa.MIN_PAIR_SHARE}):")
        for fam, v in sorted(sources.items()):
            print(f"  source, {fam}: {len(v)} flags, lowest {sorted(round(x, 3) for x in v)[:3]}, median {np.median(v):.3f}")
        below = sum(x < fa.MIN_PAIR_SHARE for x in others)
        print(f"  other takes: {len(others)} flags, {min(others, default=0):.3f} to {max(others, default=0):.3f}, {below} under the bar")
        return 0
    sets = {"false": false_flags(data, answers, prints), "copies": second_copies(data, prints)}
    n = {(k, h): sum(x["half"] == h for x in v) for k, v in sets.items() for h in ("calibration", "report")}
    rows = []
    for r in (0.6, 0.7, 0.75, 0.8, 1.0):
        for h in (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 1.01):
            cell = {}
            for half in ("calibration", "report"):
                cell[half] = (sum(1 for x in sets["false"] if x["half"] == half and not (x["ratio"] < r and x["hits"] < h)),
                              sum(1 for x in sets["copies"] if x["half"] == half and x["ratio"] < r and x["hits"] < h))  # fmt: skip
            rows.append((cell["calibration"], r, h, cell["report"]))
    print(f"false flags: {n['false', 'calibration']} calibration, {n['false', 'report']} report; second copies flagged: "
          f"{n['copies', 'calibration']} calibration, {n['copies', 'report']} report")  # fmt: skip
    print("| demote when ratio < | and hits < | calibration: false kept | copies demoted | report: false kept | copies demoted |")
    print("|---|---|---|---|---|---|")
    for (fk, cd), r, h, (fr, cr) in sorted(rows, key=lambda x: (x[0][0], x[0][1]))[:12]:
        print(f"| {r} | {h} | {fk} | {cd} | {fr} | {cr} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
