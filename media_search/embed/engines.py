"""Inference engines: the same model, run faster, behind one call.

An engine maps a batch of model inputs to ``(n, dim)`` float32 unit vectors;
input preparation (ResNet50's normalisation) and L2 normalisation are part of
it, so a batch is one call. A ``Recipe`` says how a model of one kind becomes
an engine: ``IMAGE`` takes ``(n, 224, 224, 3)`` uint8 pictures, ``AUDIO``
takes ``(n, 160000)`` float32 windows (5 s at 32 kHz).

``MEDIA_SEARCH_ENGINE`` (``Settings.engine``; for both models):

* ``auto`` (default): ONNX Runtime fp32 on the CPU when ``onnxruntime`` is
  installed (about twice torch eager for both models here; README,
  "Benchmarks"), torch otherwise and always on CUDA.
* ``torch``: torch eager, inference mode; ResNet50 channels_last, and with bf16
  autocast on CUDA (Cnn14 stays fp32: its log-mel front end needs the range).
* ``onnx``: ONNX Runtime fp32, CPU only.
* ``int8``: ONNX Runtime static int8 (QDQ, per-channel weights), CPU only,
  several times ``onnx`` for ResNet50. Its vectors are close to fp32 ones (cosine
  >= ``embed.onnx.INT8_MIN_COSINE`` on a probe batch, or it is refused),
  not equal, so it is a model identity of its own (``weights_id`` ends in
  ``:int8r``): a library indexed with it is searched with it.

An fp32 engine that passes the export check gives the same rankings as torch
(``tests/test_engines.py``), so it keeps the torch model's ``ModelSpec``:
vectors of both can share a collection. ONNX files are made once per model
identity and cached, see ``embed.onnx``. (Importing ``onnxruntime``
writes a telemetry device id under ``~/.cache/Microsoft/DeveloperTools``: that
is onnxruntime's own doing; ``MEDIA_SEARCH_ENGINE=torch`` never imports it.)
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..config import check_engine, data_home, engine_from_env
from ..errors import ConfigError
from .recipe import Recipe, engine_spec
from .models import CNN14, RESNET50
from .spec import ModelSpec

if TYPE_CHECKING:
    import torch

__all__ = [
    "Engine",
    "Recipe",
    "IMAGE",
    "AUDIO",
    "TorchEngine",
    "choose_engine",
    "engine_spec",
    "build_engine",
    "load_engine",
    "probe_batch",
    "audio_probe",
]

log = logging.getLogger(__name__)

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class Engine(Protocol):
    name: str

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """A batch of model inputs -> (n, dim) float32 unit vectors."""


def choose_engine(setting: str, device: str) -> str:
    """The engine kind (``torch``, ``onnx`` or ``int8``) that ``setting`` means on ``device``."""
    check_engine(setting)
    on_cpu = str(device).startswith("cpu")
    has_ort = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None
    if setting in ("onnx", "int8"):
        if not on_cpu:
            raise ConfigError(
                f"MEDIA_SEARCH_ENGINE={setting} runs on the CPU only: set MEDIA_SEARCH_DEVICE=cpu, "
                "or MEDIA_SEARCH_ENGINE=auto to use torch on the GPU."
            )
        if not has_ort:
            raise ConfigError(
                f"MEDIA_SEARCH_ENGINE={setting} needs onnxruntime and onnx: pip install onnxruntime onnx, "
                "or set MEDIA_SEARCH_ENGINE=auto."
            )
        return setting
    if setting == "auto" and on_cpu and has_ort:
        return "onnx"
    return "torch"


def build_engine(
    setting: str,
    device: str,
    spec: ModelSpec,
    load_model: Callable[[], Any],
    cache_dir: Path,
    recipe: Recipe | None = None,
    *,
    isolate: bool = False,
) -> Engine:
    """The engine for ``setting`` on ``device``; ``load_model`` gives the torch model (called only if needed).

    ``spec`` is the torch model's identity; the engine runs under
    ``engine_spec(spec, choose_engine(setting, device))``. ``isolate``: a missing
    ONNX file is made in a child process (``embed.onnx.onnx_engine``).
    """
    from . import onnx

    recipe = recipe or IMAGE
    kind = choose_engine(setting, device)
    try:
        if kind == "onnx":
            return onnx.onnx_engine(spec, load_model, cache_dir, recipe, isolate=isolate)
        if kind == "int8":
            return onnx.int8_engine(spec, load_model, cache_dir, recipe, isolate=isolate)
    except onnx.ExportFailed as e:
        if setting != "auto":
            fallback = "auto" if kind == "int8" else "torch"
            raise ConfigError(f"The {kind} engine is unavailable: {e} Set MEDIA_SEARCH_ENGINE={fallback}.") from e
        log.warning("ONNX engine unavailable, using torch: %s", e)
    return TorchEngine(load_model(), device, recipe)


def load_engine(
    engine: str | None,
    device: Any,
    spec: ModelSpec,
    recipe: Recipe,
    load_model: Callable[..., Any],
    *model_args: Any,
    key: ModelSpec | None = None,
) -> tuple[ModelSpec, Engine]:
    """``(identity, engine)``: ``spec``'s model run by ``engine`` (default ``MEDIA_SEARCH_ENGINE``) on ``device``.

    One engine per (setting, device, model, recipe) in this process;
    ``load_model(*model_args)`` builds the torch model, only if the engine needs
    it. ``key`` is the identity the engine is built under when ``spec`` holds
    more than the model sees (the audio hop), so that those share one export.
    """
    setting = engine or engine_from_env()
    identity = engine_spec(spec, choose_engine(setting, str(device)))
    return identity, _cached_engine(setting, str(device), key or spec, recipe, load_model, model_args)


@functools.lru_cache(maxsize=8)
def _cached_engine(
    setting: str, device: str, spec: ModelSpec, recipe: Recipe, load_model: Callable[..., Any], model_args: tuple
) -> Engine:
    # A partial of a module-level loader pickles: the export runs in a child process, and this
    # one loads the finished engine only (a first run's peak: 2.66 GB -> README, "Long media").
    load = functools.partial(load_model, *model_args)
    return build_engine(setting, device, spec, load, data_home() / "engines", recipe, isolate=True)


# -- torch ---------------------------------------------------------------------------------------


def _image_pipeline(model: Any) -> torch.nn.Module:
    """uint8 NHWC -> normalised NCHW -> model -> unit vectors, as one module (also what ONNX exports)."""
    import torch

    class ImagePipeline(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner
            self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1) * 255.0)
            self.register_buffer("inv_std", 1.0 / (torch.tensor(_STD).view(1, 3, 1, 1) * 255.0))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x.permute(0, 3, 1, 2).float()
            x = ((x - self.mean) * self.inv_std).contiguous(memory_format=torch.channels_last)
            return torch.nn.functional.normalize(self.inner(x).float(), dim=1)

    return ImagePipeline(model).eval()


def _audio_pipeline(model: Any) -> torch.nn.Module:
    """float32 (n, samples) -> Cnn14's ``embedding`` output -> unit vectors."""
    import torch

    class AudioPipeline(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.normalize(self.inner(x)["embedding"].float(), dim=1)

    return AudioPipeline(model).eval()


def probe_batch(n: int = 4, size: int = RESNET50.input_size, seed: int = 1234) -> np.ndarray:
    """Deterministic test pictures: smooth gradients plus noise, as prepared uint8 arrays."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        base = np.stack([xx * (i + 1) % 1.0, yy, (xx + yy) / 2], axis=-1) * 255
        out[i] = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
    return out


def audio_probe(n: int = 4, seed: int = 1234, samples: int = 160_000, sr: int = CNN14.sample_rate) -> np.ndarray:
    """Deterministic test windows: gliding tones, clicks and noise at varied levels, float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / sr
    out = np.empty((n, samples), dtype=np.float32)
    for i in range(n):
        f0 = 80.0 * 2 ** rng.uniform(0, 5)
        x = np.sin(2 * np.pi * f0 * t * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.1, 2) * t)))
        x += rng.uniform(0.01, 0.3) * rng.standard_normal(samples)
        x[rng.integers(0, samples, 20)] += 0.8  # clicks
        out[i] = (10 ** rng.uniform(-2.5, 0) * x / np.abs(x).max()).astype(np.float32)
    return out


IMAGE = Recipe("image", "pixels", np.uint8, _image_pipeline, probe_batch, cuda_bf16=True)
AUDIO = Recipe(
    "audio",
    "audio",
    np.float32,
    _audio_pipeline,
    audio_probe,
    int8_keep_fp32=("/inner/spectrogram_extractor/", "/inner/logmel_extractor/", "/inner/bn0/"),
)


class TorchEngine:
    """torch eager in inference mode; bf16 autocast on CUDA where the recipe allows it."""

    def __init__(self, model: Any, device: Any, recipe: Recipe | None = None) -> None:
        import torch

        self.recipe = recipe or IMAGE
        self.device = torch.device(device)
        self.module = self.recipe.wrap(model).to(self.device)
        self.cuda = self.device.type == "cuda"
        self.bf16 = self.cuda and self.recipe.cuda_bf16
        self.name = "torch-cuda-bf16" if self.bf16 else "torch-cuda" if self.cuda else "torch"
        if self.cuda:
            torch.backends.cudnn.benchmark = True

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=self.recipe.dtype))
        with torch.inference_mode():
            if self.cuda:
                x = x.pin_memory().to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                out = self.module(x)
            return out.float().cpu().numpy()

    def run_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """An input tensor already on the device -> unit vectors on the device (GPU decode path)."""
        import torch

        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.module(x).float()
