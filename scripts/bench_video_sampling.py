#!/usr/bin/env python3
"""Keyframe sampling throughput against decoding every frame, on a 720p H.264 video.

Generates (ffmpeg, once, cached) a 62 s 1280x720 30 fps H.264 video made of
eight lavfi scenes with motion (test pattern, Mandelbrot zoom, cellular
automata, life, moving gradients, a rotating hue-cycling pattern, a scrolling
pattern), joined by hard cuts at non-round times. Encoded with libx264
``-preset veryfast -crf 23`` and its default GOP (keyint 250): no tuning that
favours the sampler. Then measures, in the same run, best of ``--repeat``:

  a) ``decode_all_rgb``: ``cap.read()`` every frame and convert it to RGB;
  b) ``iter_keyframes``: ``media_search.decode.video.iter_keyframes`` defaults;
  c) ``grab_only``: ``cap.grab()`` every frame (the decoding floor, for reference).

Prints a table and writes JSON: wall seconds, multiples of real time, ratio
b/a, and the same in CPU seconds of this process (all its threads): on a shared
machine the wall figures carry other jobs' load, the CPU figures much less.

    python scripts/bench_video_sampling.py --cores 2 --json bench_video_sampling.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZE, FPS = "1280x720", 30
SCENES = [  # (lavfi source, seconds): cuts fall at 7.3, 16.4, 23.0, 31.4, 41.6, 50.3, 56.5 s
    ("testsrc2=s={s}:r={r}", 7.3),
    ("mandelbrot=s={s}:r={r}", 9.1),
    ("cellauto=s={s}:r={r}:rule=110", 6.6),
    ("life=s={s}:r={r}:mold=10:ratio=0.1:death_color=#C83232:life_color=#00ff00", 8.4),
    ("gradients=s={s}:r={r}:speed=0.02", 10.2),
    ("testsrc2=s={s}:r={r},hue=H=t*2,rotate=a=t/3", 8.7),
    ("cellauto=s={s}:r={r}:rule=30:scroll=1", 6.2),
    ("testsrc=s={s}:r={r},scroll=h=0.002:v=0.001", 5.5),
]


def make_video(path: Path) -> None:
    cmd = ["ffmpeg", "-y", "-loglevel", "error"]
    for src, seconds in SCENES:
        cmd += ["-f", "lavfi", "-i", f"{src.format(s=SIZE, r=FPS)},trim=duration={seconds},setpts=PTS-STARTPTS"]
    inputs = "".join(f"[{i}:v]" for i in range(len(SCENES)))
    cmd += ["-filter_complex", f"{inputs}concat=n={len(SCENES)}:v=1:a=0,format=yuv420p[v]", "-map", "[v]"]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", str(path)]
    subprocess.run(cmd, check=True)


def decode_all_rgb(path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    n = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        n += 1
    cap.release()
    return n


def grab_only(path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


def sample(path: Path) -> int:
    from media_search.decode.video import iter_keyframes

    kfs = list(iter_keyframes(path))
    sample.cuts = [round(k.timestamp, 3) for k in kfs if k.reason == "cut"]  # type: ignore[attr-defined]
    return len(kfs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, help="use this video instead of the generated one")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "media_search_bench")
    ap.add_argument("--cores", type=int, help="pin this process (and FFmpeg's threads) to this many CPUs")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each measurement; the best is kept")
    ap.add_argument("--json", type=Path, default=Path("bench_video_sampling.json"))
    args = ap.parse_args()

    if args.cores:
        cpus = sorted(os.sched_getaffinity(0))[: args.cores]
        os.sched_setaffinity(0, cpus)
        os.environ["OPENCV_FFMPEG_THREADS"] = str(len(cpus))
    video = args.video
    if video is None:
        args.cache.mkdir(parents=True, exist_ok=True)
        video = args.cache / "bench_720p_h264.mp4"
        if not video.exists():
            print(f"generating {video} ...", flush=True)
            make_video(video)

    from media_search.decode.video import probe_video

    info = probe_video(video)
    runs: dict[str, list[float]] = {"decode_all_rgb": [], "iter_keyframes": [], "grab_only": []}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    counts: dict[str, int] = {}
    for _ in range(args.repeat):  # interleaved, so that background load hits all alike
        for name, fn in (("decode_all_rgb", decode_all_rgb), ("iter_keyframes", sample), ("grab_only", grab_only)):
            t, c = time.perf_counter(), time.process_time()
            counts[name] = fn(video)
            runs[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)

    best = {k: min(v) for k, v in runs.items()}
    best_cpu = {k: min(v) for k, v in cpu.items()}
    result = {
        "video": str(video),
        "duration_s": round(info.duration, 3),
        "size": f"{info.width}x{info.height}",
        "fps": info.fps,
        "frames": info.frame_count,
        "cpus": len(os.sched_getaffinity(0)),
        "load_avg_1min": os.getloadavg()[0],
        "python": platform.python_version(),
        "opencv": __import__("cv2").__version__,
        "seconds": {k: round(v, 3) for k, v in best.items()},
        "all_runs_s": {k: [round(x, 3) for x in v] for k, v in runs.items()},
        "x_realtime": {k: round(info.duration / v, 2) for k, v in best.items()},
        "cpu_seconds": {k: round(v, 3) for k, v in best_cpu.items()},
        "x_realtime_per_cpu_second": {k: round(info.duration / v, 2) for k, v in best_cpu.items()},
        "frames_out": counts,
        "cut_timestamps": getattr(sample, "cuts", []),
        "ratio_sampling_over_decode_all": round(best["iter_keyframes"] / best["decode_all_rgb"], 3),
        "cpu_ratio_sampling_over_decode_all": round(best_cpu["iter_keyframes"] / best_cpu["decode_all_rgb"], 3),
    }
    for k in runs:
        print(
            f"{k:16s} {best[k]:7.2f} s wall {result['x_realtime'][k]:6.2f}x real time | "
            f"{best_cpu[k]:7.2f} CPU-s {result['x_realtime_per_cpu_second'][k]:6.2f}x per core | {counts[k]} frames"
        )
    print(
        f"ratio iter_keyframes / decode_all_rgb = {result['ratio_sampling_over_decode_all']} (wall), "
        f"{result['cpu_ratio_sampling_over_decode_all']} (CPU); load average {result['load_avg_1min']:.1f}"
    )
    print(f"cuts found at {result['cut_timestamps']}")
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
