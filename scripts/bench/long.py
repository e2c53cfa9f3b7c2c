"""The ``long`` section: hours-long recordings and videos, time and peak memory.

Each file is indexed alone into a fresh Milvus Lite index by the real
``media-search index`` command, then used as the query of ``media-search
query``; both run in a fresh process under a small wrapper that reports the
peak resident memory of the largest process of the run (``RUSAGE_CHILDREN``:
the CLI, with Milvus Lite inside it, and the processes it starts). A 10 s clip runs first:
its figures are what any run costs (the models and their engines). Before it, a 10 s
video is indexed with an empty engine cache (the section's own data home): that run makes
both ONNX engines, each in a child process (``embed.child``), whose peak is its figure. The claim:
memory stays flat whatever the duration, and time grows linearly.

Media (cached in OUT/media): stereo 44.1 kHz 128 kbit/s MP3 made from the
sample_media sounds, looped and mixed with quiet pink noise; 720p H.264 video
from the sample_media videos, looped, with their soundtrack.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_media"

_PEAK = """
import resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print("RESULT", rc, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
"""


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def make_audio(path: Path, seconds: int) -> Path:
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    loop = path.parent / "long_loop.wav"
    if not loop.exists():
        sounds = sorted((SAMPLES / "audio").iterdir())
        inputs = [a for s in sounds for a in ("-i", str(s))]
        chain = "".join(f"[{i}]aformat=sample_rates=44100:channel_layouts=stereo[a{i}];" for i in range(len(sounds)))
        chain += "".join(f"[a{i}]" for i in range(len(sounds))) + f"concat=n={len(sounds)}:v=0:a=1"
        _ffmpeg(*inputs, "-filter_complex", chain, str(loop))
    tmp = path.with_suffix(".part.mp3")
    _ffmpeg("-stream_loop", "-1", "-i", str(loop), "-f", "lavfi", "-i", f"anoisesrc=d={seconds}:c=pink:a=0.02:r=44100",
            "-filter_complex", "[0][1]amix=inputs=2:duration=shortest,aformat=channel_layouts=stereo",
            "-t", str(seconds), "-ar", "44100", "-b:a", "128k", str(tmp))  # fmt: skip
    tmp.rename(path)
    return path


def make_video(path: Path, seconds: int) -> Path:
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    loop = path.parent / "long_loop.mp4"
    if not loop.exists():
        videos = sorted((SAMPLES / "videos").glob("*.mp4"))
        inputs = [a for v in videos for a in ("-i", str(v))]
        chain = "".join(f"[{i}:v]scale=1280:720,setsar=1,fps=25[v{i}];" for i in range(len(videos)))
        chain += "".join(f"[v{i}]" for i in range(len(videos))) + f"concat=n={len(videos)}:v=1:a=0"
        _ffmpeg(*inputs, "-filter_complex", chain, "-c:v", "libx264", "-preset", "veryfast", str(loop))
    make_audio(path.parent / "long_audio_10s.mp3", 10)  # makes long_loop.wav, the soundtrack
    tmp = path.with_suffix(".part.mp4")
    _ffmpeg("-stream_loop", "-1", "-i", str(loop), "-stream_loop", "-1", "-i", str(path.parent / "long_loop.wav"),
            "-map", "0:v", "-map", "1:a", "-t", str(seconds), "-c:v", "copy", "-c:a", "aac", str(tmp))  # fmt: skip
    tmp.rename(path)
    return path


def _measure(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    cmd = [sys.executable, "-c", _PEAK, sys.executable, "-m", "media_search", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    m = re.search(r"RESULT (\d+) ([\d.]+) ([\d.]+)", out.stdout)
    if not m:
        return {"error": out.stderr[-500:]}
    return {"exit": int(m.group(1)), "seconds": round(float(m.group(2)), 1), "peak_mb": round(float(m.group(3)))}


def run(out: Path, work: Path, audio: list[int], video: list[int]) -> dict[str, Any]:
    import os
    import shutil

    res: dict[str, Any] = {}
    # Its own data home, emptied: the first run (a 10 s video, both models) makes the ONNX engines,
    # each in a child process, as on a new machine; then a 10 s clip: what any later run costs.
    home = work / "long_home"
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "MEDIA_SEARCH_HOME": str(home)}
    jobs = [("video", 10, make_video), ("audio", 10, make_audio)]
    jobs += [("audio", s, make_audio) for s in audio] + [("video", s, make_video) for s in video]
    for kind, seconds, make in jobs:
        ext = "mp3" if kind == "audio" else "mp4"
        started = time.perf_counter()
        try:
            path = make(out / "media" / f"long_{kind}_{seconds}s.{ext}", seconds)
        except subprocess.CalledProcessError as e:
            res[f"{kind}_{seconds}s"] = {"error": f"making the file failed: {e}"}
            continue
        made = time.perf_counter() - started
        db = work / f"long_{kind}_{seconds}.db"
        index = _measure(["index", str(path), "--uri", str(db)], env)
        query = _measure(["query", str(path), "--uri", str(db)], env)
        res[f"{kind}_{seconds}s"] = {"file_mb": round(path.stat().st_size / 1e6, 1), "made_s": round(made, 1),
                                     "index": index, "query": query}  # fmt: skip
        print(f"{kind} {seconds} s: index {index}, query {query}", file=sys.stderr, flush=True)
    return res
