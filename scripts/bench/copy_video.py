"""Videos for ``scripts/bench_copy.py --only videos``: slow pans over real photos, edited copies, and
unrelated videos, all made with ffmpeg from fixed inputs (no soundtrack: the pictures alone decide).

Library: 10 videos of two of the 20 real photos each (``sample_media/photos`` and the scikit-image
and matplotlib pictures of ``copy_media``), 4 s a photo, 640x360, plus 4 distractors made of the
procedural paintings. Queries: each library video edited by every family. Unrelated queries: 4
videos of pictures kept out of the library (scikit-image's and more paintings).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from .copy_media import ROOT, _extra_pictures, _save, _unrelated_pictures, painting

VIDEO_FAMILIES = ["reencode_small", "trim", "mirror", "speed_125", "crop", "grayscale", "overlay", "fps_15"]

_EDITS = {
    "reencode_small": ["-vf", "scale=320:180", "-crf", "32"],
    "trim": ["-ss", "2.5", "-t", "4"],  # 2.5 s .. 6.5 s: across the cut between the two photos
    "mirror": ["-vf", "hflip", "-crf", "28"],
    "speed_125": ["-vf", "setpts=0.8*PTS"],
    "crop": ["-vf", "crop=iw*0.8:ih*0.8,scale=640:360"],
    "grayscale": ["-vf", "hue=s=0"],
    "overlay": ["-vf", "drawbox=x=20:y=20:w=200:h=60:color=yellow@0.8:t=fill,drawbox=x=420:y=280:w=200:h=60:color=black@0.6:t=fill"],
    "fps_15": ["-r", "15"],
}


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", *args], check=True)


def pan_video(out: Path, pictures: list[Path], seconds_each: float = 4.0) -> Path:
    """A 640x360 H.264 video panning slowly across each picture in turn (a cut between them)."""
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    args: list[str] = []
    for p in pictures:
        args += ["-loop", "1", "-framerate", "25", "-t", str(seconds_each), "-i", str(p)]
    pan = (f"scale=800:450:force_original_aspect_ratio=increase,crop=800:450,"
           f"crop=640:360:x='160*t/{seconds_each}':y='90*t/{seconds_each}',setsar=1,format=yuv420p")  # fmt: skip
    chains = ";".join(f"[{i}:v]{pan}[v{i}]" for i in range(len(pictures)))
    joined = "".join(f"[v{i}]" for i in range(len(pictures)))
    tmp = out.with_suffix(".tmp.mp4")
    _ffmpeg(*args, "-filter_complex", f"{chains};{joined}concat=n={len(pictures)}:v=1:a=0[v]", "-map", "[v]",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", str(tmp))  # fmt: skip
    tmp.rename(out)
    return out


def make_videos(out: Path, *, per_family: int | None = None) -> dict:
    root = out / "videos"
    pics = root / "pictures"
    pics.mkdir(parents=True, exist_ok=True)
    real = sorted((ROOT / "sample_media" / "photos").glob("*.jpg"))
    for name, a in _extra_pictures().items():
        p = pics / f"{name}.png"
        if not p.exists():
            _save(a, p)
        real.append(p)
    rng = np.random.default_rng(7)
    others = []
    for name, a in _unrelated_pictures(rng).items():
        p = pics / f"{name}.png"
        if not p.exists():
            _save(a, p)
        others.append(p)
    fillers = []
    for i in range(8):
        p = pics / f"painting_v{i}.png"
        if not p.exists():
            _save(painting(rng, 200 + i), p)
        fillers.append(p)
    lib = root / "library"
    library = [pan_video(lib / f"photos_{i:02d}.mp4", real[2 * i : 2 * i + 2]) for i in range(len(real) // 2)]
    library += [pan_video(lib / f"paintings_{i}.mp4", fillers[2 * i : 2 * i + 2]) for i in range(4)]
    originals = [v for v in library if v.name.startswith("photos_")][:per_family]
    queries = []
    for family in VIDEO_FAMILIES:
        for v in originals:
            q = root / "queries" / family / v.name
            if not q.exists():
                q.parent.mkdir(parents=True, exist_ok=True)
                edit = _EDITS[family]
                pre, post = (edit[:4], edit[4:]) if family == "trim" else ([], edit)
                _ffmpeg(*pre, "-i", str(v), *post, "-c:v", "libx264", "-preset", "veryfast", "-an", str(q))
            queries.append({"query": str(q), "original": str(v), "family": family})
    unrelated = [str(pan_video(root / "unrelated" / f"unrelated_{i}.mp4", others[2 * i : 2 * i + 2])) for i in range(len(others) // 2)]
    return {"library": [str(v) for v in library], "queries": queries, "unrelated": unrelated}
