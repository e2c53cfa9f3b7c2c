"""ONNX Runtime engines on the CPU: an fp32 copy of the torch model, and an int8 one.

**fp32** (``onnx_engine``): the torch model, wrapped by its ``Recipe``, is
exported once per model identity into ``<data home>/engines`` (temp file +
rename, under a file lock) with a sidecar JSON that records the file's sha256
and how far its outputs were from torch's on a probe batch. An export whose
outputs differ by more than ``PROBE_TOLERANCE`` is discarded; a cached file
whose hash does not match (truncated, corrupt) is rebuilt.

**int8** (``int8_engine``): the fp32 file, statically quantised by ONNX
Runtime (QDQ, per-channel int8 weights in 7 bits (``reduce_range``: on AVX2
CPUs without VNNI full-range u8*s8 products saturate, and Cnn14's int8 copy fell
to cosine 0.992 of fp32), uint8 activations, MinMax ranges from
``CALIBRATION`` deterministic probe inputs). Nodes the recipe names stay fp32:
for Cnn14 the STFT, log-mel and first batch norm, whose dynamic range int8
cannot hold (quantising them drops the cosine to fp32 from 0.9998 to 0.985).
The result is kept only if every probe vector is within ``INT8_MIN_COSINE``
of the fp32 engine's on held-out probe inputs; it is cached like the fp32 file.
Calibration uses synthetic inputs, never the user's files, so an int8 engine
is a pure function of the weights: the same file on every machine.

**Optimised graphs.** Beside each checked file, ONNX Runtime's own optimised
graph of it is kept for this runtime version and CPU (``_optimized_path``) and
loaded without optimising again: optimising makes transient copies of the
weights (loading Cnn14 and ResNet50 peaked at 1.20 GB, from their optimised
graphs at 0.55 GB), so every later process starts smaller and sooner. Its
sidecar records the checked file's size, times and inode as they were when it
was last hashed: while they are unchanged, a load does not hash the file again.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..identity import content_hash
from .child import call_maybe_in_child
from .recipe import Recipe, engine_spec
from .spec import ModelSpec

__all__ = [
    "PROBE_TOLERANCE",
    "INT8_MIN_COSINE",
    "ExportFailed",
    "OnnxEngine",
    "onnx_cache_path",
    "onnx_engine",
    "int8_engine",
]

log = logging.getLogger(__name__)

#: Largest allowed |onnx - torch| on any coordinate of the unit vectors of the probe batch.
PROBE_TOLERANCE = 1e-4
#: Smallest allowed cosine between an int8 vector and the fp32 one on the held-out probe batch.
INT8_MIN_COSINE = 0.995
#: Probe inputs the int8 ranges are calibrated on (seed 7); the check uses other ones (seed 99).
CALIBRATION = 32
#: Bump whenever the exported graph changes: old cache files are then ignored.
EXPORT_VERSION = "2"


class ExportFailed(Exception):
    """The ONNX copy could not be made or did not match its reference."""


class OnnxEngine:
    """ONNX Runtime on the CPU over one model file.

    ``optimized``: a file to load instead, ONNX Runtime's own optimised graph of
    ``path`` (``_optimized_path``): loading it skips the graph optimisation,
    whose transient copies of the weights cost more memory than the model
    itself (Cnn14: a 1.16 GB peak to load the 323 MB export, 0.51 GB from its
    optimised graph; same outputs, same speed). When it is missing it is
    written while ``path`` loads. Only cached, checked files get one.
    """

    def __init__(self, path: Path, dtype: Any = np.uint8, name: str = "onnx", threads: int | None = None,
                 optimized: Path | None = None) -> None:  # fmt: skip
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        # Do not busy-wait between batches: decoding workers need those cores.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        # No memory pattern: with it the CPU arena keeps a second, planned block per input
        # shape (ResNet50 at 16 pictures: 391 MB peak instead of 289; Cnn14 at 8 windows:
        # 732 MB instead of 576), for no measurable speed (README, "Long media").
        opts.enable_mem_pattern = False
        source = path
        if optimized is not None and optimized.is_file():
            source = optimized
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        elif optimized is not None:
            opts.optimized_model_filepath = str(optimized)
        self.path, self.dtype, self.name = path, dtype, name
        self.session = ort.InferenceSession(str(source), sess_options=opts, providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=self.dtype)
        return np.asarray(self.session.run(None, {self._input: x})[0], dtype=np.float32)

    def shrink(self) -> None:
        """Give back what the arena keeps for the next batch: one run of a single zero input with
        ONNX Runtime's arena shrinkage (Cnn14 after batches of 8 windows: 577 -> 398 MB, 0.09 s).
        For the end of a long run, not between batches (the arena would only grow again)."""
        import onnxruntime as ort

        opts = ort.RunOptions()
        opts.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        shape = [1 if not isinstance(d, int) else d for d in self.session.get_inputs()[0].shape]
        self.session.run(None, {self._input: np.zeros(shape, dtype=self.dtype)}, opts)


def onnx_cache_path(spec: ModelSpec, cache_dir: Path) -> Path:
    """Where the ONNX file of ``spec`` lives (one file per model identity)."""
    key = hashlib.sha256(f"{spec.to_json()}|export-v{EXPORT_VERSION}".encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{spec.name}-{key}.onnx"


def onnx_engine(
    spec: ModelSpec, load_model: Callable[[], Any], cache_dir: Path, recipe: Recipe, *, isolate: bool = False
) -> OnnxEngine:
    """The fp32 engine for ``spec``: the cached copy if it is intact, else a fresh, verified export.

    ``isolate``: make a missing copy in a child process (``embed.child``; ``load_model``
    must then pickle), so that this process never holds the torch model.
    """
    make = functools.partial(_export, spec=spec, load_model=load_model, recipe=recipe, isolate=isolate)
    return _cached(spec, cache_dir, recipe, "onnx", make, isolate)


def int8_engine(
    spec: ModelSpec, load_model: Callable[[], Any], cache_dir: Path, recipe: Recipe, *, isolate: bool = False
) -> OnnxEngine:
    """The int8 engine for ``spec`` (whose identity is ``engine_spec(spec, 'int8')``), made from the fp32 one."""
    int8 = engine_spec(spec, "int8")
    make = functools.partial(_quantize, spec=spec, load_model=load_model, cache_dir=cache_dir, recipe=recipe)
    return _cached(int8, cache_dir, recipe, "int8", make, isolate)


def _cached(
    spec: ModelSpec, cache_dir: Path, recipe: Recipe, name: str, make: Callable[[Path], dict[str, Any]], isolate: bool
) -> OnnxEngine:
    """The engine in ``spec``'s cache file, made by ``make(tmp) -> check figures`` when missing or damaged."""
    path = onnx_cache_path(spec, cache_dir)
    engine = _open_cached(path, spec, recipe, name)
    if engine is not None:
        return engine
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others then find its file
        engine = _open_cached(path, spec, recipe, name)
        if engine is not None:
            return engine
        what = f"making the {name} engine of {spec.describe()}"
        checks = call_maybe_in_child(_build, path, spec, recipe, name, make, isolate=isolate, what=what, error=ExportFailed)
        log.info("built the %s engine for %s in %s (%s)", name, spec.describe(), path, checks)
        engine = _open_cached(path, spec, recipe, name)
    if engine is None:
        raise ExportFailed(f"the {name} engine of {spec.describe()} was made in {path} but cannot be loaded.")
    return engine


def _build(path: Path, spec: ModelSpec, recipe: Recipe, name: str, make: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Make ``path``, its sidecar and its optimised graph; return the check figures."""
    with _temp_file(path) as tmp:
        checks = make(tmp)
        _publish(tmp, path, spec, checks)
    _with_optimized(path, json.loads(_sidecar(path).read_text())["sha256"], recipe, name)
    return checks


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def _open_cached(path: Path, spec: ModelSpec, recipe: Recipe, name: str) -> OnnxEngine | None:
    if not path.is_file() or not _sidecar(path).is_file():
        return None
    try:
        meta = json.loads(_sidecar(path).read_text())
        optimized = _optimized_path(path)
        kept = _kept_graph(optimized, meta.get("sha256"))
        # The file's hash is checked, unless it is as it was when its optimised graph was made from it
        # (hashing a 100 MB model is a tenth of a cold query).
        checked = kept is not None and kept.get("source_stat") == _stamp(path)
        if meta.get("spec") != spec.to_json() or not (checked or meta.get("sha256") == content_hash(path)):
            log.warning("the cached ONNX model %s is damaged or stale; exporting it again", path)
            return None
        if kept is not None:
            try:
                engine = OnnxEngine(path, recipe.dtype, name, optimized=optimized)
            except Exception as e:  # noqa: BLE001 - an unreadable optimised graph is made again below
                log.warning("cannot load the optimised graph %s (%s); making it again", optimized, e)
            else:
                if not checked:  # hashed just now: stamp it so that the next load need not
                    _write_kept(optimized, meta["sha256"], path)
                return engine
        return _with_optimized(path, meta["sha256"], recipe, name)
    except Exception as e:  # noqa: BLE001 - any failure to read the cache means: rebuild it
        log.warning("cannot load the cached ONNX model %s (%s); exporting it again", path, e)
        return None


def _optimized_path(path: Path) -> Path:
    """ONNX Runtime's optimised graph of ``path`` for this ONNX Runtime and this CPU.

    The optimised graph holds layout transforms chosen for the CPU's vector
    instructions (NCHWc blocks), so it is keyed by the runtime's version and
    the CPU's feature flags, never shared between different machines.
    """
    import platform

    import onnxruntime

    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    key = hashlib.sha256(f"{onnxruntime.__version__}|{platform.machine()}|{flags}".encode()).hexdigest()[:12]
    return path.with_name(f"{path.stem}.opt-{key}.onnx")


def _stamp(path: Path) -> list[int]:
    """Size, mtime, ctime and inode of ``path``: any write (or ``touch``) changes one of them."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _kept_graph(optimized: Path, source_sha256: str | None) -> dict[str, Any] | None:
    """The sidecar of the optimised graph if that graph was made from the file whose hash is
    ``source_sha256`` and is as it was written; else None.

    Its size and mtime are checked, not its hash: it is made on this machine from the
    checked file, and hashing both would double what a cold start reads. The
    sidecar also holds the stamp of the source file when it was last hashed
    (``source_stat``): while the source still has it, its hash need not be
    computed again.
    """
    try:
        meta = json.loads(_sidecar(optimized).read_text())
        stat = optimized.stat()
    except (OSError, ValueError):
        return None
    intact = meta.get("source_sha256") == source_sha256 and meta.get("stat") == [stat.st_size, stat.st_mtime_ns]
    return meta if intact else None


def _write_kept(optimized: Path, sha256: str, source: Path) -> None:
    """Record that ``optimized`` was made from (or checked against) ``source``, whose hash is ``sha256``."""
    try:
        stat = optimized.stat()
        side = {"source_sha256": sha256, "stat": [stat.st_size, stat.st_mtime_ns], "source_stat": _stamp(source)}
        with _temp_file(_sidecar(optimized)) as tmp:  # whole or not at all: other processes read it
            tmp.write_text(json.dumps(side))
            os.chmod(tmp, 0o644)
            os.replace(tmp, _sidecar(optimized))
    except OSError as e:  # a read-only cache still works, it only hashes the model at each load
        log.info("cannot record the optimised graph of %s (%s)", source, e)


def _with_optimized(path: Path, sha256: str, recipe: Recipe, name: str) -> OnnxEngine:
    """Load the checked ``path``, writing its optimised graph beside it for the next loads (best effort)."""
    optimized = _optimized_path(path)
    _sidecar(optimized).unlink(missing_ok=True)  # a graph without its sidecar is never loaded
    with _temp_file(optimized) as tmp:
        tmp.unlink()  # ONNX Runtime writes it
        engine = OnnxEngine(path, recipe.dtype, name, optimized=tmp)
        try:
            if tmp.is_file():
                os.chmod(tmp, 0o644)
                os.replace(tmp, optimized)
                _write_kept(optimized, sha256, path)
        except OSError as e:  # a read-only cache still works, it only loads the slower way
            log.info("cannot keep the optimised graph of %s (%s)", path, e)
    return engine


@contextmanager
def _temp_file(path: Path) -> Iterator[Path]:
    fd, tmp_name = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _publish(tmp: Path, path: Path, spec: ModelSpec, checks: dict[str, Any]) -> None:
    """Move a checked file into place, then its sidecar (a file without a sidecar is never used)."""
    import onnxruntime

    meta = {"spec": spec.to_json(), "sha256": content_hash(tmp), **checks,
            "onnxruntime": onnxruntime.__version__, "export_version": EXPORT_VERSION}  # fmt: skip
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    side_tmp = _sidecar(path).with_suffix(".json.tmp")
    side_tmp.write_text(json.dumps(meta, indent=1))
    os.replace(side_tmp, _sidecar(path))


def _export(
    tmp: Path, *, spec: ModelSpec, load_model: Callable[[], Any], recipe: Recipe, isolate: bool = False
) -> dict[str, Any]:
    """Export the model to ``tmp``; check it against torch on a probe batch.

    ``isolate``: torch runs in a child process of its own (``_export_file``) and this one only
    checks the file: ONNX Runtime's graph optimisation of a fresh export is the largest step
    (Cnn14: about 1 GB over what the process held), and with torch gone it starts from a bare
    interpreter (README, "Long media")."""
    expected, version = call_maybe_in_child(_export_file, tmp, spec=spec, load_model=load_model, recipe=recipe,
                                            isolate=isolate, what=f"exporting {spec.describe()} to ONNX",
                                            error=ExportFailed)  # fmt: skip
    try:
        got = OnnxEngine(tmp, recipe.dtype)(recipe.probe(4))
    except Exception as e:  # noqa: BLE001 - a file ONNX Runtime cannot run, whatever the reason
        raise ExportFailed(f"the ONNX copy of {spec.describe()} does not run ({type(e).__name__}: {e}).") from e
    diff = float(np.abs(got - expected).max())
    if not diff < PROBE_TOLERANCE:
        raise ExportFailed(
            f"the ONNX copy of {spec.describe()} differs from torch by {diff:.2e} (limit {PROBE_TOLERANCE:.0e})."
        )
    return {"max_abs_diff": diff, "torch": version}


def _export_file(tmp: Path, *, spec: ModelSpec, load_model: Callable[[], Any], recipe: Recipe) -> tuple[np.ndarray, str]:
    """Write the model's ONNX graph to ``tmp``; return torch's outputs on the probe batch and its version."""
    import torch

    module = recipe.wrap(load_model()).to("cpu")
    probe = recipe.probe(4)
    with torch.inference_mode():
        expected = module(torch.from_numpy(probe)).numpy()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (torch.from_numpy(probe[:2]),),
                str(tmp),
                dynamo=False,
                # ONNX Runtime folds the constants (batch norms into convolutions) when it optimises the
                # graph, which is kept (``_with_optimized``); folding here too held another copy of the
                # weights: Cnn14's export peaked at 2.12 GB instead of 1.81.
                do_constant_folding=False,
                input_names=[recipe.input_name],
                output_names=["embedding"],
                dynamic_axes={recipe.input_name: {0: "n"}, "embedding": {0: "n"}},
                opset_version=17,
            )
    except Exception as e:  # noqa: BLE001 - exporter failures come in many types
        raise ExportFailed(f"exporting {spec.describe()} to ONNX failed ({type(e).__name__}: {e}).") from e
    return expected, str(torch.__version__)  # a plain str: unpickling TorchVersion imports torch


def _quantize(
    tmp: Path, *, spec: ModelSpec, load_model: Callable[[], Any], cache_dir: Path, recipe: Recipe
) -> dict[str, Any]:
    """Statically quantise the fp32 engine's file into ``tmp``; check it against fp32 on held-out probes."""
    fp32 = onnx_engine(spec, load_model, cache_dir, recipe)  # in this process: ``_cached`` isolates the caller
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calibration = recipe.probe(CALIBRATION, seed=7)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration[i : i + 8] for i in range(0, len(calibration), 8))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {recipe.input_name: batch}

    try:
        with _temp_file(tmp.with_name(tmp.name + ".pre")) as pre, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant_pre_process(str(fp32.path), str(pre), skip_symbolic_shape=True)
            names = [n.name for n in onnx.load(str(pre)).graph.node]
            keep = [n for n in names if n.startswith(recipe.int8_keep_fp32)]
            quantize_static(
                str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=keep,
                reduce_range=True,
            )  # fmt: skip
        held_out = recipe.probe(16, seed=99)
        cosine = np.sum(OnnxEngine(tmp, recipe.dtype, "int8")(held_out) * fp32(held_out), axis=1)
    except Exception as e:  # noqa: BLE001 - quantiser failures come in many types
        raise ExportFailed(f"quantising the {recipe.kind} model to int8 failed ({type(e).__name__}: {e}).") from e
    worst = float(cosine.min())
    if not worst >= INT8_MIN_COSINE:
        raise ExportFailed(
            f"the int8 {recipe.kind} model is too far from fp32 (cosine {worst:.4f} < {INT8_MIN_COSINE})."
        )
    return {"min_cosine_to_fp32": worst, "mean_cosine_to_fp32": float(cosine.mean()), "kept_fp32_nodes": len(keep)}
