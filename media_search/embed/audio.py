"""PANNs Cnn14 audio embeddings of 5 s windows, each with its start time.

**Windows.** 5 s windows (about what Cnn14 was trained on: 10 s AudioSet clips
are long, 1 s is too short for its 32x time pooling to see structure) with a
5 s hop at indexing time: windows tile the audio without overlap. Each window
costs a full 5 s forward pass, so overlap divides throughput by
``window / hop`` (the ``audio`` section of ``scripts/benchmark.py``). What an
overlapping hop buys in retrieval is small
(``tests/test_extract_audio.py::retrieval_recall``), and end to end, where the
copy fingerprints re-rank the short list and place the snippet, nothing
(``tests/test_audio_search.py``); the figures are in the README, "Benchmarks".
A match the fingerprints do not confirm is placed by spectral alignment
(``query.place.match_excerpt``, in ``query.search``) when it correlates, else
on the window grid, to within one hop. Queries use a denser hop
(``QUERY_HOP``): a query is short and embedded once. The hop is a constructor argument and part of the stamped
preprocessing id.

**Padding.** A window that runs past the end of the audio (a short clip, the
tail of a long one, a query snippet) is filled by *looping* its own content,
never with zeros: Cnn14 pools mean+max over time, and looping keeps those
statistics close to those of a library window full of the same sound (zero
padding ranked the right clip first far less often; README, "Benchmarks"). A
0.1 s clip is looped too; nothing is too short.

**Silence.** A window whose RMS is below ``SILENCE_RMS`` (-60 dBFS) is skipped.
A file that is silent throughout gives ``silent=True`` and exactly one vector
(the embedding of silence at timestamp 0), so it is still indexed, found by
other silent files, and recognised as unchanged on the next run.

**Importing panns_inference.** Its package ``__init__`` imports ``config.py``,
which runs ``wget`` for a label CSV into ``~/panns_data`` at import time, and
``models.py`` imports ``matplotlib.pyplot`` (which writes a font cache into
``~/.cache``). We never import the package: ``_panns_models`` locates it with
``importlib.util.find_spec`` (which executes nothing), registers a private
package named ``_media_search_panns`` whose ``__path__`` is panns_inference's
folder, and imports ``models`` (and its relative import ``pytorch_utils``)
through it, with stand-ins for ``matplotlib`` / ``matplotlib.pyplot`` (unused
by the model classes; a real one already imported is used as is) only while
that module executes. This works without the label file, without matplotlib
and without a network, and leaves a real ``import panns_inference`` elsewhere
untouched. A test pins it.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import logging
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..decode.audio import SAMPLE_RATE, Audio
from ..errors import WeightsUnavailableError
from .models import CNN14

__all__ = [
    "AUDIO_WINDOW",
    "AUDIO_HOP",
    "QUERY_HOP",
    "SOUNDTRACK_QUERY_HOP",
    "QUERY_MAX_WINDOWS",
    "SILENCE_RMS",
    "PREPROCESS",
    "preprocess_id",
    "AudioWindows",
    "AudioEmbedder",
    "window_starts",
]

log = logging.getLogger(__name__)

AUDIO_WINDOW = 5.0  # seconds per window
AUDIO_HOP = 5.0  # seconds between library window starts (no overlap: see above)
QUERY_HOP = 1.0  # seconds between query window starts (denser than the library's)
#: A video query's soundtrack: its keyframes lead and the fingerprints find copies, the windows only
#: add a quarter of the score, so half a window apart (a 10 s clip: 3 windows instead of 6, 0.2 s).
SOUNDTRACK_QUERY_HOP = 2.5
QUERY_MAX_WINDOWS = 48  # a long query widens its hop instead of costing minutes
SILENCE_RMS = 1e-3  # -60 dBFS: quieter windows are skipped
#: Windows per Cnn14 run on the CPU: 4 are about as fast as 8 (9.2-9.3 vs 9.4-9.6 win/s) and the engine
#: keeps 100 MB less working memory (a warm process: 477 vs 577 MB; 16 windows: 8.7 win/s, 1,110 MB peak).
BATCH_SIZE = 4
GPU_BATCH_SIZE = 16  # on a GPU the batch is what keeps it busy


def preprocess_id(hop: float = AUDIO_HOP) -> str:
    """The preprocessing version stamped into the collection (window, library hop, padding)."""
    return f"v1:32k-mono-win{AUDIO_WINDOW}-hop{hop}-looppad"


PREPROCESS = preprocess_id()
# Cnn14 as trained for AudioSet at 32 kHz (panns_inference.inference.AudioTagging).
_CNN14_ARGS = dict(
    sample_rate=CNN14.sample_rate, window_size=1024, hop_size=320, mel_bins=64, fmin=50, fmax=14000, classes_num=527
)
_PRIVATE_PKG = "_media_search_panns"


@dataclass(frozen=True)
class AudioWindows:
    """Window embeddings of one clip: ``vectors[i]`` starts at ``timestamps[i]`` s."""

    timestamps: np.ndarray  # (m,) float64, window starts in seconds
    vectors: np.ndarray  # (m, 2048) float32 unit vectors
    silent: bool  # the whole clip was silent (then m == 1: silence at t=0)

    def __len__(self) -> int:
        return len(self.timestamps)


def window_starts(
    n_samples: int, hop: float, *, sr: int = SAMPLE_RATE, window: float = AUDIO_WINDOW
) -> np.ndarray:
    """Start samples ``k * hop`` of the windows covering ``n_samples`` samples.

    Windows start every ``hop`` seconds until one reaches the end; a clip
    shorter than one window gets one window at 0.
    """
    win, step = int(round(window * sr)), max(1, int(round(hop * sr)))
    if n_samples <= win:
        return np.zeros(1, dtype=np.int64)
    count = int(np.ceil((n_samples - win) / step)) + 1
    return np.arange(count, dtype=np.int64) * step


def _loop_to(x: np.ndarray, length: int) -> np.ndarray:
    """``x`` repeated (or cut) to exactly ``length`` samples; silence where ``x`` is empty."""
    if x.size >= length:
        return x[:length]
    if x.size == 0:
        return np.zeros(length, dtype=np.float32)
    return np.resize(x, length)  # np.resize repeats the array


class AudioEmbedder:
    """Embeds 5 s windows of 32 kHz mono audio with PANNs Cnn14 (2048-d, unit vectors).

    ``weights``: ``pretrained`` (the PANNs ``Cnn14_mAP=0.431.pth`` checkpoint,
    downloaded once and checked), a path to a checkpoint, or ``random`` (seeded
    with ``seed``; for tests and offline demos only). ``device``: auto, cpu, cuda.
    ``batch_size``: windows per model run (default ``BATCH_SIZE`` on the CPU,
    ``GPU_BATCH_SIZE`` on a GPU).
    """

    def __init__(self, weights: str = "pretrained", device: str = "auto", seed: int = 0,
                 batch_size: int | None = None, hop: float = AUDIO_HOP, engine: str | None = None) -> None:  # fmt: skip
        from .engines import AUDIO, load_engine
        from .runtime import device_name
        from .weights import resolve

        self.resolved = resolve(weights, CNN14.weights, seed=seed)
        self.device = device_name(device)
        default = GPU_BATCH_SIZE if self.device == "cuda" else BATCH_SIZE
        self.batch_size = max(1, int(batch_size or default))
        self.hop = float(hop)  # library hop; part of the model identity
        self.window_samples = int(round(AUDIO_WINDOW * SAMPLE_RATE))
        model_spec = CNN14.spec(self.resolved.weights_id, preprocess_id(self.hop))
        self.spec, self.engine = load_engine(
            engine, self.device, model_spec, AUDIO,
            _load_model, self.resolved.mode, str(self.resolved.path or ""), seed, str(self.device),
            key=dataclasses.replace(model_spec, preprocess=preprocess_id(AUDIO_HOP)),  # the model never sees the hop
        )  # fmt: skip

    def embed_batch(self, windows: np.ndarray) -> np.ndarray:
        """``(n, window_samples)`` float32 at 32 kHz -> ``(n, 2048)`` float32 unit vectors."""
        arr = np.asarray(windows, dtype=np.float32)
        if arr.ndim != 2:
            raise ValueError(f"embed_batch takes an (n, samples) array, not shape {arr.shape}")
        if arr.shape[0] == 0:
            return np.zeros((0, self.spec.dim), dtype=np.float32)
        return self.engine(arr)

    def shrink(self) -> None:
        """After a long sound: the engine gives back its spare working memory (ONNX engines only)."""
        shrink = getattr(self.engine, "shrink", None)
        if shrink is not None:
            shrink()

    def embed_windows(self, audio: Audio, *, hop: float | None = None) -> AudioWindows:
        """Embed the non-silent windows of ``audio``, every ``hop`` s (default: the library hop)."""
        hop = self.hop if hop is None else hop
        if audio.sr != SAMPLE_RATE:
            raise ValueError(f"AudioEmbedder needs {SAMPLE_RATE} Hz audio, got {audio.sr} Hz")
        samples = np.asarray(audio.samples, dtype=np.float32)
        starts = window_starts(samples.size, hop, window=AUDIO_WINDOW)
        kept = [s for s in starts if _rms(samples[s : s + self.window_samples]) >= SILENCE_RMS]
        silent = not kept
        if silent:
            kept = [0]
        vectors = [self.embed_batch(batch) for batch in self._batches(samples, kept)]
        return AudioWindows(
            timestamps=np.asarray(kept, dtype=np.float64) / SAMPLE_RATE,
            vectors=np.concatenate(vectors) if vectors else np.zeros((0, self.spec.dim), np.float32),
            silent=silent,
        )

    def query_windows(
        self, audio: Audio, *, hop: float = QUERY_HOP, max_windows: int = QUERY_MAX_WINDOWS
    ) -> AudioWindows:
        """Embed a query with a denser hop (same windows and padding otherwise).

        A query up to 5 s long is one looped window. A long one gets at most
        ``max_windows`` windows, evenly spread (its hop grows), so a whole song
        used as a query costs about as much as ``max_windows`` windows.
        """
        span = audio.samples.size / SAMPLE_RATE - AUDIO_WINDOW
        if max_windows > 1 and span > hop * (max_windows - 1):
            hop = span / (max_windows - 1)
        return self.embed_windows(audio, hop=hop)

    def _batches(self, samples: np.ndarray, starts: list[int]) -> Iterator[np.ndarray]:
        """Windows built one batch at a time, so a long file never sits in memory twice."""
        w = self.window_samples
        for i in range(0, len(starts), self.batch_size):
            yield np.stack([_loop_to(samples[s : s + w], w) for s in starts[i : i + self.batch_size]])


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _panns_models() -> types.ModuleType:
    """``panns_inference.models`` imported without running the package's ``__init__``."""
    name = f"{_PRIVATE_PKG}.models"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec("panns_inference")  # locates only; executes nothing
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError(
            "The audio model needs the panns-inference package: pip install panns-inference."
        )
    pkg = types.ModuleType(_PRIVATE_PKG)
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__package__ = _PRIVATE_PKG
    sys.modules.setdefault(_PRIVATE_PKG, pkg)
    # models.py runs `import matplotlib.pyplot as plt` and never uses plt
    stubs = [m for m in ("matplotlib", "matplotlib.pyplot") if m not in sys.modules]
    for m in stubs:
        sys.modules[m] = types.ModuleType(m)
    try:
        return importlib.import_module(name)
    finally:
        for m in stubs:
            sys.modules.pop(m, None)


def _load_model(mode: str, path: str, seed: int, device: str) -> Any:
    """Build Cnn14 (not cached here: ``embed.engines`` keeps one engine per model, and an
    ONNX export must be able to let go of it)."""
    import torch

    from .weights import load_state_dict

    cnn14 = _panns_models().Cnn14
    if mode == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cnn14(**_CNN14_ARGS)
    else:
        model = cnn14(**_CNN14_ARGS)
        state = load_state_dict(Path(path))
        missing, unexpected = model.load_state_dict(state, strict=False)
        # the spectrogram/log-mel front end is recomputed, not learned: tolerate its absence
        missing = [k for k in missing if not k.startswith(("spectrogram_extractor.", "logmel_extractor."))]
        if missing or unexpected:
            raise WeightsUnavailableError(
                f"{path} is not a PANNs Cnn14 checkpoint (missing {len(missing)} and "
                f"{len(unexpected)} unexpected tensors, e.g. {(missing + unexpected)[:3]}); "
                "set MEDIA_SEARCH_AUDIO_WEIGHTS to pretrained, random or a Cnn14 .pth file.",
                path=path,
            )
    # channels_last: faster on CPU here (the audio section of scripts/benchmark.py), same numbers
    model = model.eval().to(device=torch.device(device), memory_format=torch.channels_last)
    log.info("loaded panns-cnn14 (%s) on %s", mode, device)
    return model
