"""Cnn14 window embeddings (random weights): windows, padding, silence, the import guard, retrieval."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from media_search.decode.audio import SAMPLE_RATE, Audio, decode_audio, has_ffmpeg
from media_search.embed.audio import (
    AUDIO_HOP,
    AUDIO_WINDOW,
    AudioEmbedder,
    _loop_to,
    window_starts,
)

SR = SAMPLE_RATE
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def embedder() -> AudioEmbedder:
    return AudioEmbedder("random", device="cpu", seed=0)


def _audio(x: np.ndarray) -> Audio:
    x = np.asarray(x, dtype=np.float32)
    return Audio(samples=x, duration=x.size / SR, source="audio")


def _noise(seconds: float, seed: int = 0, level: float = 0.1) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def test_spec(embedder: AudioEmbedder) -> None:
    spec = embedder.spec
    assert (spec.name, spec.dim, spec.metric, spec.weights_id) == ("panns-cnn14", 2048, "COSINE", "random:0")
    assert f"win{AUDIO_WINDOW}" in spec.preprocess and f"hop{AUDIO_HOP}" in spec.preprocess
    dense = AudioEmbedder("random", device="cpu", seed=0, hop=2.5)  # same engine, other identity
    assert "hop2.5" in dense.spec.preprocess and dense.spec != spec and dense.engine is embedder.engine
    assert (window_starts(12 * SR, dense.hop) / SR).tolist() == [0.0, 2.5, 5.0, 7.5]


def test_window_starts() -> None:
    assert window_starts(0, 2.5).tolist() == [0]
    assert window_starts(int(4.9 * SR), 2.5).tolist() == [0]
    assert (window_starts(12 * SR, 2.5) / SR).tolist() == [0.0, 2.5, 5.0, 7.5]  # last one reaches 12.5 s
    assert (window_starts(10 * SR, 2.5) / SR).tolist() == [0.0, 2.5, 5.0]


def test_tiny_clip_is_padded(embedder: AudioEmbedder) -> None:
    w = embedder.embed_windows(_audio(_noise(0.1)))
    assert w.timestamps.tolist() == [0.0] and w.vectors.shape == (1, 2048) and not w.silent
    assert np.linalg.norm(w.vectors, axis=1) == pytest.approx(1.0, abs=1e-5)
    empty = embedder.embed_windows(_audio(np.zeros(0)))
    assert empty.silent and empty.vectors.shape == (1, 2048)


def test_silence(embedder: AudioEmbedder) -> None:
    silent = embedder.embed_windows(_audio(np.zeros(7 * SR)))
    assert silent.silent and silent.timestamps.tolist() == [0.0] and silent.vectors.shape == (1, 2048)
    # silent windows inside a clip are skipped: noise only in the first 4 s of 15
    x = np.zeros(15 * SR, np.float32)
    x[: 4 * SR] = _noise(4)
    part = AudioEmbedder("random", device="cpu", seed=0, hop=2.5).embed_windows(_audio(x))
    assert not part.silent and part.timestamps.tolist() == [0.0, 2.5]  # 5.0 to 10.0 and 7.5 to 12.5 are silent


def test_twelve_second_clip_windows(embedder: AudioEmbedder) -> None:
    a = _audio(_noise(12, seed=3))
    w = embedder.embed_windows(a)
    assert AUDIO_HOP == 5.0 and w.timestamps.tolist() == [0.0, 5.0, 10.0]  # the last one looped
    assert w.vectors.dtype == np.float32 and w.vectors.shape == (3, 2048)
    assert np.linalg.norm(w.vectors, axis=1) == pytest.approx(1.0, abs=1e-5)
    # deterministic for the same seed, across instances (and the model cache)
    again = AudioEmbedder("random", device="cpu", seed=0).embed_windows(a)
    np.testing.assert_allclose(again.vectors, w.vectors, atol=1e-5)
    dense = embedder.query_windows(a, hop=1.0)
    assert dense.timestamps == pytest.approx(np.arange(8) * 1.0)
    np.testing.assert_allclose(dense.vectors[[0, 5]], w.vectors[[0, 1]], atol=1e-4)
    capped = embedder.query_windows(a, hop=0.5, max_windows=3)  # hop widens to (12 - 5) / 2
    assert capped.timestamps == pytest.approx([0.0, 3.5, 7.0])


def test_other_seed_other_model() -> None:
    a = _audio(_noise(5, seed=4))
    v0 = AudioEmbedder("random", device="cpu", seed=0).embed_windows(a).vectors
    v1 = AudioEmbedder("random", device="cpu", seed=1)
    assert v1.spec.weights_id == "random:1"
    assert float(v0[0] @ v1.embed_windows(a).vectors[0]) < 0.999


def test_checkpoint_file_loads_like_panns(embedder: AudioEmbedder, tmp_path: Path) -> None:
    import torch

    from media_search.errors import WeightsUnavailableError

    ckpt = tmp_path / "cnn14.pth"
    from media_search.embed.audio import _load_model

    model = _load_model("random", "", 0, "cpu")  # the model behind `embedder`
    torch.save({"model": model.state_dict(), "iteration": 1}, ckpt)  # PANNs layout
    from_file = AudioEmbedder(str(ckpt), device="cpu")
    assert from_file.spec.weights_id.startswith("file:")
    a = _audio(_noise(6, seed=6))
    np.testing.assert_allclose(from_file.embed_windows(a).vectors, embedder.embed_windows(a).vectors, atol=1e-5)
    wrong = tmp_path / "wrong.pth"
    torch.save({"model": torch.nn.Linear(3, 2).state_dict()}, wrong)
    with pytest.raises(WeightsUnavailableError, match="not a PANNs Cnn14 checkpoint"):
        AudioEmbedder(str(wrong), device="cpu")


def test_embed_batch_matches_windows(embedder: AudioEmbedder) -> None:
    x = _noise(3, seed=5)
    batch = embedder.embed_batch(_loop_to(x, int(AUDIO_WINDOW * SR))[None])
    np.testing.assert_allclose(batch, embedder.query_windows(_audio(x)).vectors, atol=1e-5)
    assert embedder.embed_batch(np.zeros((0, int(AUDIO_WINDOW * SR)), np.float32)).shape == (0, 2048)


_IMPORT_PROBE = """
import json, sys, time
t = time.perf_counter()
import numpy as np
from media_search.decode.audio import Audio
from media_search.embed.audio import AudioEmbedder
e = AudioEmbedder("random", device="cpu")
v = e.embed_windows(Audio(np.zeros(3200, np.float32) + 0.01, 0.1, "audio")).vectors
seen = ["panns_inference" in sys.modules, "matplotlib" in sys.modules, v.shape[1]]
json.dump(seen + [time.perf_counter() - t], open(sys.argv[1], "w"))
"""


def test_panns_import_needs_no_network_and_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    empty_bin = tmp_path / "bin"  # PATH without wget or curl
    empty_bin.mkdir()
    result = tmp_path / "result.json"
    env = {
        "HOME": str(home), "PATH": str(empty_bin), "PYTHONPATH": str(REPO),
        "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
        "OMP_NUM_THREADS": "1",
        # torch: an ONNX engine would rightly cache its export under HOME, and onnxruntime's
        # import writes ~/.cache/Microsoft/DeveloperTools/.onnxruntime; this test is about panns
        "MEDIA_SEARCH_ENGINE": "torch",
    }  # fmt: skip
    t = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _IMPORT_PROBE, str(result)], cwd=tmp_path, env=env,
                          capture_output=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == b"" and proc.stderr == b""
    assert json.loads(result.read_text())[:3] == [False, False, 2048]
    assert list(home.rglob("*")) == []  # no ~/panns_data, no matplotlib cache
    assert time.monotonic() - t < 60


# --- retrieval: a 3 s excerpt finds its source clip and offset ----------------------

_TEXTS = [
    "The quick brown fox jumps over the lazy dog while seven wizards box quickly near the old river bank. "
    "Later that evening the farmer counted forty sheep, two goats and a very noisy rooster in the yard. "
    "Nobody expected the storm to arrive so early, yet the harbour was already full of small boats.",
    "Media search finds the source of a short snippet even after noise, compression, resampling and tempo "
    "changes. Windows of five seconds overlap, and every window remembers where it starts in the recording. "
    "A query agrees with its source over many windows at one consistent offset, not by one lucky match.",
]


def _notes(rng: np.random.Generator, dur: float, timbre: str) -> np.ndarray:
    out, t = [], 0.0
    while t < dur:
        d, f = rng.uniform(0.15, 0.6), 110 * 2 ** (rng.integers(0, 36) / 12)
        tt = np.arange(int(d * SR)) / SR
        env = np.minimum(1, tt / 0.01) * np.exp(-tt * rng.uniform(1, 6))
        if timbre == "square":
            w = np.sign(np.sin(2 * np.pi * f * tt))
        elif timbre == "harm":
            w = sum(np.sin(2 * np.pi * f * k * tt) / k for k in range(1, 6))
        else:
            w = np.sin(2 * np.pi * f * tt)
        out.append(w * env)
        t += d
    return np.concatenate(out)[: int(dur * SR)]


def _chirps(rng: np.random.Generator, dur: float) -> np.ndarray:
    out, t = [], 0.0
    while t < dur:
        d, (f0, f1) = rng.uniform(0.3, 1.2), rng.uniform(200, 6000, 2)
        tt = np.arange(int(d * SR)) / SR
        out.append(np.sin(2 * np.pi * (f0 * tt + (f1 - f0) * tt**2 / (2 * d))) * np.hanning(tt.size))
        t += d
    return np.concatenate(out)[: int(dur * SR)]


def _bursts(rng: np.random.Generator, dur: float) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    x, t = np.zeros(int(dur * SR)), 0.0
    while t < dur:
        d, lo = rng.uniform(0.05, 0.5), rng.uniform(100, 4000)
        sos = butter(4, [lo, min(lo * rng.uniform(1.5, 4), 15000)], btype="band", fs=SR, output="sos")
        n = sosfilt(sos, rng.standard_normal(int(d * SR))) * np.hanning(int(d * SR))
        i = int(t * SR)
        x[i : i + n.size] += n[: x.size - i]
        t += d + rng.uniform(0, 0.4)
    return x


def _speech(folder: Path, i: int, dur: float) -> np.ndarray:
    wav = folder / f"speech{i}.raw.wav"
    subprocess.run(["espeak-ng", "-v", ["en", "en-us"][i], "-s", "150", "-w", str(wav), _TEXTS[i]], check=True)
    x = decode_audio(wav).samples
    return np.resize(x, int(dur * SR))


def make_clips(folder: Path, seed: int = 0) -> list[Path]:
    """Eight distinct, non-periodic 12-18 s clips: note sequences, chirps, noise bursts, speech."""
    rng = np.random.default_rng(seed)
    paths = []
    for i, kind in enumerate(["sine", "square", "harm", "chirp", "burst", "speech0", "speech1", "mix"]):
        dur = float(rng.uniform(12, 18))
        if kind in ("sine", "square", "harm"):
            x = _notes(rng, dur, kind)
        elif kind == "chirp":
            x = _chirps(rng, dur)
        elif kind == "burst":
            x = _bursts(rng, dur)
        elif kind.startswith("speech"):
            x = _speech(folder, int(kind[-1]), dur) if _has("espeak-ng") else _notes(rng, dur, "harm") * _bursts(rng, dur)
        else:
            x = _notes(rng, dur, "sine") + 0.5 * _bursts(rng, dur)
        paths.append(folder / f"clip{i}_{kind}.wav")
        sf.write(paths[-1], (0.5 * x / (np.abs(x).max() + 1e-9)).astype(np.float32), SR)
    return paths


def _has(tool: str) -> bool:
    import shutil

    return shutil.which(tool) is not None


def _variant(name: str, q: np.ndarray, folder: Path, rng: np.random.Generator) -> np.ndarray:
    """The 3 s excerpt ``q`` after one of the issue's degradations."""
    import soxr

    if name == "clean":
        return q
    if name == "noise_10db":
        n = rng.standard_normal(q.size).astype(np.float32)
        return q + n * np.sqrt(np.mean(q**2) / np.mean(n**2) / 10)
    if name == "gain_-12db":
        return q * 0.25
    if name.startswith("resample_"):
        low = int(name.split("_")[1])
        return soxr.resample(soxr.resample(q, SR, low), low, SR)
    src, dst = folder / "q.wav", folder / ("q.mp3" if name == "mp3_32k" else "q_tempo.wav")
    sf.write(src, q, SR)
    if name == "mp3_32k":
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), "-b:a", "32k", str(dst)], check=True)
    else:  # tempo_1.05 / tempo_0.95
        subprocess.run(["sox", str(src), str(dst), "tempo", name.split("_")[1]], check=True)
    return decode_audio(dst).samples


VARIANTS = ["clean", "noise_10db", "gain_-12db", "mp3_32k", "resample_8000", "resample_16000", "tempo_1.05", "tempo_0.95"]
OFFSETS = [1.0, 4.3, 7.7]


def retrieval_recall(embedder: AudioEmbedder, folder: Path, shortlist: int = 4) -> dict[str, dict[str, float]]:
    """Per variant, the share of excerpts placed right.

    ``clip`` / ``clip_and_offset``: the single best Cnn14 window is from the source
    clip / and starts within one hop of the excerpt. ``shortlist``: the source is
    among the best ``shortlist`` clips by Cnn14 window. ``two_stage``: those are
    re-ranked by ``match_excerpt``; the winner is the source, offset within 0.5 s.
    """
    from media_search.query.place import match_excerpt

    clips = [decode_audio(p).samples for p in make_clips(folder)]
    lib = [embedder.embed_windows(_audio(c)) for c in clips]
    vecs = np.concatenate([w.vectors for w in lib])
    ts = np.concatenate([w.timestamps for w in lib])
    ids = np.concatenate([np.full(len(w), i) for i, w in enumerate(lib)])
    rng, win = np.random.default_rng(1), int(AUDIO_WINDOW * SR)
    out = {}
    for name in VARIANTS:
        truth, batch, queries = [], [], []
        for i, c in enumerate(clips):
            for o in OFFSETS:
                q = _variant(name, c[int(o * SR) : int((o + 3) * SR)], folder, rng).astype(np.float32)
                truth.append((i, o))
                queries.append(q)
                batch.append(_loop_to(q, win))  # what query_windows does for <= 5 s
        sims = embedder.embed_batch(np.stack(batch)) @ vecs.T
        best = np.argmax(sims, axis=1)
        clip_ok = [ids[b] == i for b, (i, o) in zip(best, truth)]
        offset_ok = [ok and abs(ts[b] - o) <= AUDIO_HOP for ok, b, (i, o) in zip(clip_ok, best, truth)]
        two_stage, listed = [], []
        for q, row, (i, o) in zip(queries, sims, truth):
            per_clip = [row[ids == j].max() for j in range(len(clips))]
            short = np.argsort(per_clip)[::-1][:shortlist]
            listed.append(i in short)
            found = [(match_excerpt(q, clips[j]), j) for j in short]
            (corr, at, q_at), j = max(found, key=lambda f: f[0][0])
            two_stage.append(j == i and abs(at - q_at - o) <= 0.5)
        out[name] = {"clip": float(np.mean(clip_ok)), "clip_and_offset": float(np.mean(offset_ok)),
                     "shortlist": float(np.mean(listed)), "two_stage": float(np.mean(two_stage))}  # fmt: skip
    return out


@pytest.mark.slow
@pytest.mark.skipif(not (has_ffmpeg() and _has("sox")), reason="needs ffmpeg and sox")
def test_excerpt_finds_source_and_offset(embedder: AudioEmbedder, tmp_path: Path) -> None:
    recall = retrieval_recall(embedder, tmp_path)
    print(json.dumps(recall, indent=1))
    # Measured with random weights (seed 0): an untrained Cnn14's best window finds the
    # source clip well above chance (1/8) but often not the offset; 10 dB white noise and
    # 8 kHz band limiting defeat it. Spectral alignment (align_audio.match_excerpt) places
    # every excerpt whose source reached the short list.
    assert recall["clean"]["clip"] >= 0.75 and recall["clean"]["clip_and_offset"] >= 0.5, recall
    for name in ["gain_-12db", "mp3_32k", "resample_16000", "tempo_1.05", "tempo_0.95"]:
        assert recall[name]["clip"] >= 0.6, (name, recall)
    for name in VARIANTS:
        assert recall[name]["shortlist"] >= 0.6, (name, recall)
        assert recall[name]["two_stage"] >= recall[name]["shortlist"] - 0.05, (name, recall)
    for name in ["clean", "gain_-12db", "tempo_1.05", "tempo_0.95"]:
        assert recall[name]["two_stage"] >= 0.95, (name, recall)
