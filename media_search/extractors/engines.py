"""Inference engines for the image model: the same ResNet50, run faster.

An engine maps a batch of prepared pictures, ``(n, 224, 224, 3)`` uint8, to
``(n, 2048)`` float32 unit vectors. Normalisation and L2 normalisation are part
of the engine, so a whole batch is one call.

``MEDIA_SEARCH_ENGINE``:

* ``auto`` (default): ONNX Runtime fp32 on the CPU when ``onnxruntime`` is
  installed (about 2x torch on CPU), torch otherwise and always on CUDA.
* ``torch``: torch eager, channels_last, inference mode; on CUDA with bf16
  autocast.
* ``onnx``: ONNX Runtime fp32, CPU only.

The ONNX engine is a copy of the loaded torch model exported once per model
identity into ``<data home>/engines`` (temp file + rename, under a file lock),
with a sidecar JSON that records the file's sha256 and how far its outputs
were from torch's on a probe batch. An export whose outputs differ by more
than ``PROBE_TOLERANCE`` is discarded and torch is used; a cached file whose
hash does not match (truncated, corrupt) is rebuilt. An fp32 engine that
passes this check gives the same rankings as torch (``tests/test_engines.py``),
so it keeps the torch model's ``ModelSpec``: vectors of both can share a
collection.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..errors import ConfigError
from .spec import ModelSpec

if TYPE_CHECKING:
    import torch

__all__ = [
    "ENGINES",
    "PROBE_TOLERANCE",
    "Engine",
    "TorchEngine",
    "OnnxEngine",
    "engine_setting",
    "choose_engine",
    "build_engine",
    "onnx_engine",
    "onnx_cache_path",
    "probe_batch",
]

log = logging.getLogger(__name__)

ENGINES = ("auto", "torch", "onnx")
#: Largest allowed |onnx - torch| on any coordinate of the unit vectors of the probe batch.
PROBE_TOLERANCE = 1e-4
#: Bump whenever the exported graph changes: old cache files are then ignored.
EXPORT_VERSION = "1"
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class Engine(Protocol):
    name: str

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """(n, 224, 224, 3) uint8 -> (n, dim) float32 unit vectors."""


def engine_setting() -> str:
    """``MEDIA_SEARCH_ENGINE`` (default ``auto``), checked."""
    value = os.environ.get("MEDIA_SEARCH_ENGINE", "auto").strip().lower() or "auto"
    if value not in ENGINES:
        raise ConfigError(f"MEDIA_SEARCH_ENGINE is {value!r}; use one of {', '.join(ENGINES)}.")
    return value


def choose_engine(setting: str, device: str) -> str:
    """The engine kind (``torch`` or ``onnx``) that ``setting`` means on ``device``."""
    if setting not in ENGINES:
        raise ConfigError(f"MEDIA_SEARCH_ENGINE is {setting!r}; use one of {', '.join(ENGINES)}.")
    on_cpu = str(device).startswith("cpu")
    has_ort = importlib.util.find_spec("onnxruntime") is not None
    if setting == "onnx":
        if not on_cpu:
            raise ConfigError(
                "MEDIA_SEARCH_ENGINE=onnx runs on the CPU only: set MEDIA_SEARCH_DEVICE=cpu, "
                "or MEDIA_SEARCH_ENGINE=auto to use torch on the GPU."
            )
        if not has_ort:
            raise ConfigError(
                "MEDIA_SEARCH_ENGINE=onnx needs onnxruntime and onnx: pip install onnxruntime onnx, "
                "or set MEDIA_SEARCH_ENGINE=auto."
            )
        return "onnx"
    if setting == "auto" and on_cpu and has_ort:
        return "onnx"
    return "torch"


def build_engine(
    setting: str, device: str, spec: ModelSpec, load_model: Callable[[], Any], cache_dir: Path
) -> Engine:
    """The engine for ``setting`` on ``device``; ``load_model`` gives the torch model (called only if needed)."""
    kind = choose_engine(setting, device)
    if kind == "onnx":
        try:
            return onnx_engine(spec, load_model, cache_dir)
        except _ExportFailed as e:
            if setting == "onnx":
                raise ConfigError(f"The ONNX engine is unavailable: {e} Set MEDIA_SEARCH_ENGINE=torch.") from e
            log.warning("ONNX engine unavailable, using torch: %s", e)
    return TorchEngine(load_model(), device)


# -- torch ---------------------------------------------------------------------------------------


def _pipeline(model: Any) -> torch.nn.Module:
    """uint8 NHWC -> normalised NCHW -> model -> unit vectors, as one module (also what ONNX exports)."""
    import torch

    class Pipeline(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner
            self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1) * 255.0)
            self.register_buffer("inv_std", 1.0 / (torch.tensor(_STD).view(1, 3, 1, 1) * 255.0))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x.permute(0, 3, 1, 2).float()
            x = ((x - self.mean) * self.inv_std).contiguous(memory_format=torch.channels_last)
            return torch.nn.functional.normalize(self.inner(x).float(), dim=1)

    return Pipeline(model).eval()


class TorchEngine:
    """torch eager, channels_last, inference mode; bf16 autocast on CUDA."""

    def __init__(self, model: Any, device: Any) -> None:
        import torch

        self.device = torch.device(device)
        self.module = _pipeline(model).to(self.device)
        self.cuda = self.device.type == "cuda"
        self.name = "torch-cuda-bf16" if self.cuda else "torch"
        if self.cuda:
            torch.backends.cudnn.benchmark = True

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.uint8))
        with torch.inference_mode():
            if self.cuda:
                x = x.pin_memory().to(self.device, non_blocking=True)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    out = self.module(x)
            else:
                out = self.module(x)
            return out.float().cpu().numpy()

    def run_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC tensor already on the device -> unit vectors on the device (GPU decode path)."""
        import torch

        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cuda):
            return self.module(x).float()


# -- ONNX Runtime --------------------------------------------------------------------------------


class _ExportFailed(Exception):
    """The ONNX copy could not be made or did not match torch."""


class OnnxEngine:
    """ONNX Runtime fp32 on the CPU over an exported copy of the model."""

    name = "onnx"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        # Do not busy-wait between batches: decoding workers need those cores.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        self.path = path
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.uint8)
        return np.asarray(self.session.run(None, {self._input: x})[0], dtype=np.float32)


def onnx_cache_path(spec: ModelSpec, cache_dir: Path) -> Path:
    """Where the ONNX copy of ``spec``'s model lives (one file per model identity)."""
    key = hashlib.sha256(f"{spec.to_json()}|export-v{EXPORT_VERSION}".encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{spec.name}-{key}.onnx"


def probe_batch(n: int = 4, size: int = 224, seed: int = 1234) -> np.ndarray:
    """Deterministic test pictures: smooth gradients plus noise, as prepared uint8 arrays."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        base = np.stack([xx * (i + 1) % 1.0, yy, (xx + yy) / 2], axis=-1) * 255
        out[i] = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
    return out


def onnx_engine(spec: ModelSpec, load_model: Callable[[], Any], cache_dir: Path) -> OnnxEngine:
    """The ONNX engine for ``spec``: the cached copy if it is intact, else a fresh, verified export."""
    path = onnx_cache_path(spec, cache_dir)
    engine = _open_cached(path, spec)
    if engine is not None:
        return engine
    path.parent.mkdir(parents=True, exist_ok=True)
    import fcntl

    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one exporter at a time; the others then find its file
        engine = _open_cached(path, spec)
        if engine is None:
            engine = _export(path, spec, load_model())
    return engine


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _open_cached(path: Path, spec: ModelSpec) -> OnnxEngine | None:
    if not path.is_file() or not _sidecar(path).is_file():
        return None
    try:
        meta = json.loads(_sidecar(path).read_text())
        if meta.get("spec") != spec.to_json() or meta.get("sha256") != _sha256(path):
            log.warning("the cached ONNX model %s is damaged or stale; exporting it again", path)
            return None
        return OnnxEngine(path)
    except Exception as e:  # noqa: BLE001 - any failure to read the cache means: rebuild it
        log.warning("cannot load the cached ONNX model %s (%s); exporting it again", path, e)
        return None


def _export(path: Path, spec: ModelSpec, model: Any) -> OnnxEngine:
    """Export ``model`` to ``path`` (temp file + rename), check it against torch on a probe batch."""
    import torch

    module = _pipeline(model).to("cpu")
    probe = probe_batch()
    with torch.inference_mode():
        expected = module(torch.from_numpy(probe)).numpy()
    fd, tmp_name = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module,
                    (torch.from_numpy(probe[:2]),),
                    str(tmp),
                    dynamo=False,
                    input_names=["pixels"],
                    output_names=["embedding"],
                    dynamic_axes={"pixels": {0: "n"}, "embedding": {0: "n"}},
                    opset_version=17,
                )
            engine = OnnxEngine(tmp)
            got = engine(probe)
        except Exception as e:  # noqa: BLE001 - exporter failures come in many types
            raise _ExportFailed(f"exporting {spec.describe()} to ONNX failed ({type(e).__name__}: {e}).") from e
        diff = float(np.abs(got - expected).max())
        if not diff < PROBE_TOLERANCE:
            raise _ExportFailed(
                f"the ONNX copy of {spec.describe()} differs from torch by {diff:.2e} (limit {PROBE_TOLERANCE:.0e})."
            )
        import onnxruntime

        meta = {
            "spec": spec.to_json(),
            "sha256": _sha256(tmp),
            "max_abs_diff": diff,
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "export_version": EXPORT_VERSION,
        }
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        side_tmp = _sidecar(path).with_suffix(".json.tmp")
        side_tmp.write_text(json.dumps(meta, indent=1))
        os.replace(side_tmp, _sidecar(path))
        log.info("exported %s to %s (max |onnx - torch| = %.1e)", spec.describe(), path, diff)
        engine.path = path
        return engine
    finally:
        tmp.unlink(missing_ok=True)
