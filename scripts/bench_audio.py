#!/usr/bin/env python3
"""Audio indexing throughput, in multiples of real time, against the naive baseline.

    python scripts/bench_audio.py [--lengths 30 60 120 300] [--batch-sizes 16] [--hops 5 2.5]
                                  [--engines onnx torch int8] [--threads N] [--out bench_audio.json]

*pipeline*: ``decode_audio`` (soundfile + soxr) -> 5 s windows every ``hop`` s
-> batched Cnn14 through an inference engine (``MEDIA_SEARCH_ENGINE``: ``onnx``
is the CPU default, ``int8`` a model identity of its own), the code the
indexer runs. *naive*: ``librosa.load(sr=32000, mono=True)`` of the whole file
and one torch Cnn14 forward pass over all of it (one vector per file, no
offsets). Both run in the same process on the same generated 44.1 kHz stereo
wav files, with random weights (speed does not depend on the weights' values).
``x_realtime`` is audio seconds per wall second; ``x_realtime_if_idle`` divides
by process CPU time over the threads instead, an estimate of the figure on an
otherwise idle machine when others share the cores; ``vs_naive`` is the
pipeline's wall-clock speed over the naive one's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_file(folder: Path, seconds: int, seed: int) -> Path:
    """A stereo 44.1 kHz wav of tones over noise (resampling is part of the work)."""
    import soundfile as sf

    sr, rng = 44100, np.random.default_rng(seed)
    t = np.arange(seconds * sr) / sr
    x = 0.1 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * (220 + 30 * np.sin(t)) * t)
    path = folder / f"bench_{seconds}s.wav"
    sf.write(path, np.stack([x, np.roll(x, 7)], axis=1).astype(np.float32), sr)
    return path


def _clock() -> np.ndarray:
    """(wall, process CPU) seconds: the CPU time shows what a shared machine took away."""
    return np.array([time.perf_counter(), time.process_time()])


def run_pipeline(embedder, path: Path) -> tuple[np.ndarray, int]:
    from media_search.decode.audio import decode_audio

    t = _clock()
    windows = embedder.embed_windows(decode_audio(path))
    return _clock() - t, len(windows)


def run_naive(model, path: Path) -> np.ndarray:
    import librosa
    import torch

    t = _clock()
    y, _ = librosa.load(str(path), sr=32000, mono=True)
    with torch.inference_mode():
        model(torch.from_numpy(y[None].astype(np.float32)))["embedding"]
    return _clock() - t


def _report(name: str, total: float, spent: np.ndarray, threads: int, **extra) -> dict:
    """x_realtime from wall time; x_realtime_if_idle from CPU time spread over the torch threads."""
    return {"name": name, **extra, "audio_s": total, "seconds": round(float(spent[0]), 2),
            "cpu_seconds": round(float(spent[1]), 2), "x_realtime": round(total / spent[0], 1),
            "x_realtime_if_idle": round(total / (spent[1] / threads), 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", type=int, nargs="+", default=[30, 60, 120, 300], help="seconds per file")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[16], help="pipeline batch sizes to try")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--hops", type=float, nargs="+", default=[5.0, 2.5], help="library hops (s) to try")
    ap.add_argument("--engines", nargs="+", default=["onnx", "torch", "int8"], help="inference engines to try")
    ap.add_argument("--out", type=Path, default=Path("bench_audio.json"))
    args = ap.parse_args(argv)

    import torch

    from media_search.extractors.audio import AUDIO_HOP, AUDIO_WINDOW, AudioEmbedder, _load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "torch_threads": threads,
                    "torch": torch.__version__, "python": platform.python_version()},
        "window_s": AUDIO_WINDOW, "default_hop_s": AUDIO_HOP, "runs": [],
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        files = [make_file(Path(tmp), s, i) for i, s in enumerate(args.lengths)]
        total = float(sum(args.lengths))
        model = _load_model("random", "", 0, "cpu")
        run_naive(model, files[0])  # warm-up
        naive = _report("naive", total, sum(run_naive(model, f) for f in files), threads)
        print(json.dumps(naive), flush=True)
        for engine in args.engines:
            embedder = AudioEmbedder("random", device="cpu", engine=engine)  # builds (once) and caches the engine
            run_pipeline(embedder, files[0])  # warm-up
            for hop in args.hops:
                embedder.hop = hop
                for bs in args.batch_sizes:
                    embedder.batch_size = bs
                    spent, windows = np.zeros(2), 0
                    for f in files:
                        dt, n = run_pipeline(embedder, f)
                        spent, windows = spent + dt, windows + n
                    run = _report("pipeline", total, spent, threads, engine=engine, hop=hop, batch_size=bs,
                                  windows=windows, vs_naive=round(float(naive["seconds"] / spent[0]), 2))  # fmt: skip
                    results["runs"].append(run)
                    print(json.dumps(run), flush=True)
        results["runs"].append(naive)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
