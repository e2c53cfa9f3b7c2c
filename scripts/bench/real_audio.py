"""Real recordings for ``scripts/bench_copy.py --only audio-real``: a library of at least 1,000
real clips from Debian packages, edited copies of some of them, unrelated recordings kept out.

Recordings are found on disk in ``SOURCES`` (no synthetic tones); install what is missing with

    apt-get install --no-install-recommends ktuberling-data tuxpaint-data hydrogen-drumkits \\
        lmms-common sound-icons frozen-bubble-data neverball-data pingus-data

Everything is deterministic: a recording's role (library only, query source in the calibration
or the report half, unrelated query) comes from a hash of its path, and edits from fixed seeds.
Long recordings give one 12 s excerpt (music loops repeat: two excerpts of one could be copies). Families (``REAL_FAMILIES``): snippets of 1
to 5 s, gain -6 to -12 dB, pink or white noise at 10 dB SNR, mp3 at 16 to 32 kbit/s, resampling
to 8 to 16 kHz, tempo +-5 % with the pitch kept (ffmpeg ``atempo``), clips of 0.7 to 2 s; every
edit but the snippet applies to a 2 to 5 s excerpt (or the whole clip when shorter).
"""

from __future__ import annotations

import glob
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

REAL_FAMILIES = ["snippet", "gain", "noise_10db", "mp3_low", "resample", "tempo", "short"]

#: (glob, cap per folder): where real recordings are looked for; the cap keeps one drum kit or one
#: language from filling the library with near-identical velocity layers or words.
SOURCES: list[tuple[str, int]] = [
    ("/usr/share/ktuberling/sounds/*/*.ogg", 60),
    ("/usr/share/tuxpaint/stamps/**/*.ogg", 400),
    ("/usr/share/tuxpaint/sounds/*.*", 40),
    ("/usr/share/hydrogen/data/drumkits/*/*.flac", 12),
    ("/usr/share/hydrogen/data/drumkits/*/*.wav", 12),
    ("/usr/share/lmms/samples/*/*.*", 40),
    ("/usr/share/sounds/sound-icons/*.wav", 40),
    ("/usr/share/games/frozen-bubble/**/*.*", 40),
    ("/usr/share/games/neverball/**/*.ogg", 60),
    ("/usr/share/games/pingus/**/*.*", 20),
]
INSTALL = ("apt-get install --no-install-recommends ktuberling-data tuxpaint-data hydrogen-drumkits "
           "lmms-common sound-icons frozen-bubble-data neverball-data pingus-data")  # fmt: skip
_EXT = (".ogg", ".wav", ".flac", ".mp3", ".opus")
EXCERPT_S = 12.0


def _h(s: str) -> float:
    return int(hashlib.sha1(s.encode()).hexdigest()[:8], 16) / 2**32


def find_recordings(*, capped: bool = True) -> list[tuple[str, float]]:
    """(path, duration) of every readable recording of at least 0.3 s, capped per folder (unless
    ``capped=False``), sorted; byte-identical files (packages ship some sounds twice) count once."""
    import soundfile as sf

    seen: set[str] = set()
    digests: set[str] = set()
    out: list[tuple[str, float]] = []
    for pattern, cap in SOURCES:
        per_folder: dict[str, list[str]] = {}
        for p in sorted(glob.glob(pattern, recursive=True)):
            if p.lower().endswith(_EXT) and p not in seen:
                per_folder.setdefault(str(Path(p).parent), []).append(p)
        for files in per_folder.values():
            files.sort(key=_h)  # a fixed, spread-out choice within the folder
            for p in files[: cap if capped else None]:
                try:
                    d = float(sf.info(p).duration)
                    digest = hashlib.sha1(Path(p).read_bytes()).hexdigest()
                except Exception:
                    continue
                if d >= 0.3 and digest not in digests:
                    seen.add(p)
                    digests.add(digest)
                    out.append((p, d))
    return sorted(out)


def make_real_audio(out: Path, *, seed: int = 0, per_family: int | None = None, n_sources: int = 300,
                    n_unrelated: int = 100, min_library: int = 1000, max_library: int = 1100) -> dict:  # fmt: skip
    """Library, queries (each with ``half``: ``calibration`` or ``report``) and unrelated queries.

    The edited queries are written once: a rerun with the same parameters (``queries.json``
    records them) reuses them."""
    library, cands, halves, unrelated, n_recs = plan_real_audio(out, n_sources=n_sources, n_unrelated=n_unrelated,
                                                                 min_library=min_library, max_library=max_library)  # fmt: skip
    root = out / "audio-real"
    params = {"seed": seed, "per_family": per_family, "n_sources": n_sources, "n_unrelated": n_unrelated}
    queries = query_list(root / "queries", cands[: per_family or len(cands)], halves)
    data = {"library": library, "queries": queries, "unrelated": unrelated, "n_recordings": n_recs}
    made = root / "queries.json"
    if made.exists() and json.loads(made.read_text()) == params and all(Path(q["query"]).exists() for q in queries):
        return data
    made.unlink(missing_ok=True)
    shutil.rmtree(root / "queries", ignore_errors=True)
    rng = np.random.default_rng(seed)
    for q in queries:
        Path(q["query"]).parent.mkdir(parents=True, exist_ok=True)
        edit_real(q["original"], q["family"], Path(q["query"]), rng)
    made.write_text(json.dumps(params))
    return data


def query_list(qdir: Path, sources: list[str], halves: dict[str, str]) -> list[dict]:
    """Every family's query of every source: its path, original, family and half."""
    return [{"family": fam, "query": str(qdir / fam / f"{i:04d}_{Path(orig).stem[:40]}{'.mp3' if fam == 'mp3_low' else '.wav'}"),
             "original": orig, "half": halves[orig]}
            for fam in REAL_FAMILIES for i, orig in enumerate(sources)]  # fmt: skip


def plan_real_audio(out: Path, *, n_sources: int = 300, n_unrelated: int = 100, min_library: int = 1000,
                    max_library: int = 1100) -> tuple[list[str], list[str], dict[str, str], list[str], int]:  # fmt: skip
    """(library, query sources, their halves, unrelated recordings, recordings found)."""
    recs = find_recordings()
    if len(recs) < min_library // 2:
        raise SystemExit(f"Only {len(recs)} real recordings found in {[s for s, _ in SOURCES]}; install them:\n  {INSTALL}")
    root = out / "audio-real"
    (root / "excerpts").mkdir(parents=True, exist_ok=True)  # kept between runs: a rerun reuses the index
    order = sorted(recs, key=lambda r: _h("role:" + r[0]))
    unrelated = [p for p, _ in order[:n_unrelated]]
    rest = order[n_unrelated:]
    library: list[str] = []
    for p, d in rest:
        if len(library) >= max_library:
            break
        if d > 1.5 * EXCERPT_S:  # long recordings: distinct excerpts
            library += _excerpts(p, d, root / "excerpts")
        else:
            library.append(p)
    library.sort()
    if len(library) < min_library:
        print(f"warning: {len(library)} library clips (< {min_library}); for more: {INSTALL}")
    # Query sources: library clips of at least 1 s, spread over folders, then split in halves.
    import soundfile as sf

    dur = {p: float(sf.info(p).duration) for p in library}
    cands = sorted((p for p in library if dur[p] >= 1.0), key=lambda p: _h("src:" + p))[:n_sources]
    halves = {p: ("calibration" if i % 2 == 0 else "report") for i, p in enumerate(sorted(cands, key=lambda p: _h("half:" + p)))}
    return library, cands, halves, unrelated, len(recs)


def _excerpts(path: str, duration: float, folder: Path) -> list[str]:
    import soundfile as sf

    from media_search.decode.audio import decode_audio

    a = decode_audio(path)
    n = int(duration // EXCERPT_S)
    stem = hashlib.sha1(path.encode()).hexdigest()[:8] + "_" + Path(path).stem[:30]
    out = []
    for i in range(min(n, 1)):
        p = folder / f"{stem}_{i}.flac"
        if not p.exists():
            sf.write(p, a.samples[int(i * EXCERPT_S * a.sr) : int((i + 1) * EXCERPT_S * a.sr)], a.sr)
        out.append(str(p))
    return out


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.normal(size=n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return (x / (x.std() + 1e-12)).astype(np.float32)


def edit_real(orig: str, family: str, out: Path, rng: np.random.Generator) -> None:
    import soundfile as sf

    from media_search.decode.audio import decode_audio

    a = decode_audio(orig)
    x, sr = a.samples, a.sr
    if family == "snippet":
        dur = rng.uniform(1.0, 5.0)
    elif family == "short":
        dur = rng.uniform(0.7, 2.0)
    else:
        dur = rng.uniform(2.0, 5.0)
    dur = min(dur, a.duration)
    start = rng.uniform(0, max(0.0, a.duration - dur))
    snip = x[int(start * sr) : int((start + dur) * sr)].copy()
    tmp = out.with_suffix(".tmp.wav")
    if family in ("snippet", "short"):
        sf.write(out, snip, sr)
    elif family == "gain":
        g = 10 ** (-rng.uniform(6, 12) / 20)
        sf.write(out, snip * g, sr)
    elif family == "noise_10db":
        p = float(np.mean(snip**2)) + 1e-12
        noise = _pink(len(snip), rng) if rng.random() < 0.5 else rng.normal(size=len(snip)).astype(np.float32)
        y = snip + noise * np.sqrt(p / 10)
        sf.write(out, y / max(1.0, float(np.abs(y).max())), sr)
    elif family == "mp3_low":
        sf.write(tmp, snip, sr)
        rate = int(rng.choice([16, 24, 32]))
        subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(tmp), "-ac", "1", "-ar", "16000" if rate < 32 else "22050",
                        "-b:a", f"{rate}k", str(out)], check=True)  # fmt: skip
    elif family == "resample":
        sf.write(tmp, snip, sr)
        rate = int(rng.choice([8000, 11025, 16000]))
        subprocess.run(["sox", str(tmp), "-r", str(rate), str(out)], check=True)
    elif family == "tempo":
        sf.write(tmp, snip, sr)
        f = float(rng.choice([0.95, 0.96, 0.97, 1.03, 1.04, 1.05]))
        subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(tmp), "-filter:a", f"atempo={f}", str(out)], check=True)
    else:
        raise ValueError(family)
    tmp.unlink(missing_ok=True)


def shares_audio(a: str, b: str, *, chunk_s: float = 1.0, sr: int = 8000, at_least: float = 0.9) -> bool:
    """Whether recordings ``a`` and ``b`` hold a common stretch of the same samples (up to gain):
    some 1 s chunk of ``a`` correlates with ``b`` at ``at_least`` (normalised cross-correlation at
    8 kHz). Ground truth for a file flagged a copy that is not the query's source: independent of
    the fingerprint (a package built from one spliced recording holds the same words twice)."""
    from scipy.signal import fftconvolve, resample_poly

    from media_search.decode.audio import decode_audio

    x, y = (resample_poly(decode_audio(p).samples.astype(np.float64), 1, 32000 // sr) for p in (a, b))
    n = int(chunk_s * sr)
    if len(x) < n or len(y) < n:
        n = min(len(x), len(y))
    if n < sr // 4:
        return False
    energy = np.sqrt(np.maximum(np.convolve(y**2, np.ones(n), "valid"), 1e-12))
    for s in range(0, len(x) - n + 1, n // 2):
        c = x[s : s + n]
        norm = np.linalg.norm(c)
        if norm < 1e-3 * np.sqrt(n):  # silence shares nothing
            continue
        corr = fftconvolve(y, c[::-1], "valid") / (norm * energy)
        if corr.max() >= at_least:
            return True
    return False
