"""Benchmark media of realistic sizes, generated once and cached in the output folder.

* photos: the real photos of ``sample_media/photos`` resized to 1 to 12
  megapixels (4:3, 3:2, 16:9, portrait too) with film-grain noise so that
  JPEG cannot compress them trivially; quality 90, like a camera.
* videos: H.264 (libx264 veryfast, crf 23, default GOP) at 720p / 1080p, 30 fps,
  made of lavfi scenes with motion joined by hard cuts, with an AAC soundtrack.
* audio: tones, chirps and noise bursts at 44.1 kHz, as mp3 (and wav).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ROOT / "sample_media" / "photos"
_ASPECTS = [(4, 3), (3, 2), (16, 9), (3, 4), (1, 1)]


def make_photos(folder: Path, n: int, *, seed: int = 0, min_mp: float = 1.0, max_mp: float = 12.0) -> list[Path]:
    """``n`` JPEG photos of ``min_mp`` to ``max_mp`` megapixels in ``folder`` (reused when present)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(PHOTOS.glob("*.jpg"))
    rng = np.random.default_rng(seed)
    grain = rng.normal(0, 7, (1024, 1024, 3)).astype(np.int16)
    out = []
    for i in range(n):
        mp = float(rng.uniform(min_mp, max_mp))
        aw, ah = _ASPECTS[int(rng.integers(len(_ASPECTS)))]
        h = int(round((mp * 1e6 * ah / aw) ** 0.5))
        w = int(round(h * aw / ah))
        src = sources[int(rng.integers(len(sources)))]
        dx, dy = int(rng.integers(1024)), int(rng.integers(1024))
        path = folder / f"photo_{i:04d}_{w}x{h}.jpg"
        out.append(path)
        if path.exists():
            continue
        with Image.open(src) as im:
            big = np.asarray(im.convert("RGB").resize((w, h), Image.Resampling.BICUBIC), dtype=np.int16)
        noise = np.roll(grain, (dy, dx), axis=(0, 1))
        reps = (-(-h // 1024), -(-w // 1024), 1)
        big += np.tile(noise, reps)[:h, :w]
        tmp = path.with_suffix(".tmp")
        Image.fromarray(np.clip(big, 0, 255).astype(np.uint8)).save(tmp, "JPEG", quality=90)
        tmp.rename(path)
    return out


_SCENES = [  # lavfi sources with motion, each a few seconds, joined by hard cuts
    ("testsrc2=s={s}:r=30", 7.3),
    ("mandelbrot=s={s}:r=30", 9.1),
    ("cellauto=s={s}:r=30:rule=110", 6.6),
    ("life=s={s}:r=30:mold=10:ratio=0.1:death_color=#C83232:life_color=#00ff00", 8.4),
    ("gradients=s={s}:r=30:speed=0.02", 10.2),
    ("testsrc2=s={s}:r=30,hue=H=t*2,rotate=a=t/3", 8.7),
]


def make_video(path: Path, *, size: str = "1280x720", seconds: float = 60.0) -> Path:
    """An H.264 video with scene cuts and a soundtrack, ``seconds`` long (reused when present)."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["ffmpeg", "-y", "-loglevel", "error"]
    parts = []
    total, i = 0.0, 0
    while total < seconds:
        src, dur = _SCENES[i % len(_SCENES)]
        dur = min(dur, seconds - total)
        parts.append(f"{src.format(s=size)},trim=duration={dur:.3f},setpts=PTS-STARTPTS")
        total += dur
        i += 1
    for p in parts:
        cmd += ["-f", "lavfi", "-i", p]
    cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:beep_factor=4:duration={seconds}"]
    inputs = "".join(f"[{j}:v]" for j in range(len(parts)))
    cmd += ["-filter_complex", f"{inputs}concat=n={len(parts)}:v=1:a=0,format=yuv420p[v]"]
    cmd += ["-map", "[v]", "-map", f"{len(parts)}:a", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23"]
    cmd += ["-c:a", "aac", "-b:a", "128k", "-shortest", str(path.with_suffix(".tmp.mp4"))]
    subprocess.run(cmd, check=True)
    path.with_suffix(".tmp.mp4").rename(path)
    return path


def make_audio(path: Path, *, seconds: float, seed: int = 0) -> Path:
    """A sound of ``seconds``: chords, chirps and noise bursts at 44.1 kHz; mp3 or wav by suffix."""
    if path.exists():
        return path
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sr = 44100
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = np.zeros_like(t, dtype=np.float32)
    seg = 2.0
    for k in range(int(np.ceil(seconds / seg))):
        m = (t >= k * seg) & (t < (k + 1) * seg)
        tt = t[m] - k * seg
        kind = int(rng.integers(3))
        if kind == 0:
            f = rng.uniform(110, 880, 3)
            y[m] = sum(np.sin(2 * np.pi * fi * tt) for fi in f) / 3
        elif kind == 1:
            f0, f1 = rng.uniform(200, 4000, 2)
            y[m] = np.sin(2 * np.pi * (f0 * tt + (f1 - f0) * tt**2 / (2 * seg)))
        else:
            y[m] = rng.normal(0, 0.3, m.sum()) * (np.sin(2 * np.pi * 3 * tt) > 0)
    y = (0.5 * y).astype(np.float32)
    wav = path.with_suffix(".wav")
    sf.write(wav, y, sr)
    if path.suffix == ".wav":
        return path
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(wav), "-b:a", "128k", str(path)], check=True)
    wav.unlink()
    return path
