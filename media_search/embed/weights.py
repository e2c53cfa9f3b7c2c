"""Model weights: ``pretrained`` (downloaded once, checked), a local ``.pth`` file, or ``random``.

The settings ``MEDIA_SEARCH_IMAGE_WEIGHTS`` and ``MEDIA_SEARCH_AUDIO_WEIGHTS`` hold one
of those three values; ``resolve()`` turns a value into a ``ResolvedWeights`` whose
``weights_id`` is stamped into the collections. Downloads go into torch's hub cache
(the same folder ``torch.hub`` uses), stream through a hash into a temp file, and are
renamed into place only once size and sha256 match: the cache never holds a half file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import WeightsUnavailableError
from ..identity import content_hash
from .models import CNN14_WEIGHTS as CNN14
from .models import RESNET50_IMAGENET, WeightsFile

__all__ = [
    "WeightsFile",
    "ResolvedWeights",
    "RESNET50_IMAGENET",
    "CNN14",
    "cache_dir",
    "download",
    "resolve",
    "load_state_dict",
]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ResolvedWeights:
    """What a weights setting resolved to; ``path`` is None for ``random``."""

    mode: Literal["pretrained", "file", "random"]
    path: Path | None
    weights_id: str


def cache_dir() -> Path:
    """torch.hub's checkpoint folder, computed without importing torch."""
    torch_home = os.environ.get("TORCH_HOME")
    if not torch_home:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
        torch_home = os.path.join(xdg, "torch")
    return Path(torch_home).expanduser() / "hub" / "checkpoints"


# --- hashing ---------------------------------------------------------------------

_digests: dict[tuple[str, int, int], str] = {}
_digests_lock = threading.Lock()


def _sha256_of(path: Path) -> str:
    """Hex sha256 of a file, cached per (path, size, mtime) for this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _digests_lock:
        if key in _digests:
            return _digests[key]
    digest = content_hash(path)
    with _digests_lock:
        _digests[key] = digest
    return digest


def _hash_matches(digest: str, expected: str | None) -> bool:
    return expected is None or digest.startswith(expected.lower())


# --- download --------------------------------------------------------------------


def _unavailable(wf: WeightsFile, dest: Path, reason: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"Could not download the model weights {wf.filename} from {wf.url} ({reason}). "
        f"Download that file by hand and save it as {dest}, or set {wf.setting} to the "
        f"path of a local .pth file ({wf.setting}=random gives untrained weights, for "
        f"tests only).",
        path=dest,
    )


def _cached_ok(wf: WeightsFile, final: Path) -> bool:
    """True when ``final`` holds the right file; a wrong one is reported and replaced."""
    if not final.is_file():
        return False
    size = final.stat().st_size
    if wf.size is not None and size != wf.size:
        logger.warning("%s has %d bytes, expected %d; downloading it again", final, size, wf.size)
        return False
    if not _hash_matches(_sha256_of(final), wf.sha256):
        logger.warning("%s does not match its sha256 %s; downloading it again", final, wf.sha256)
        return False
    return True


def _progress_bar(show: bool, total: int | None, desc: str) -> Any:
    if not show:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                file=sys.stderr, leave=False)


def _fetch(wf: WeightsFile, tmp_fd: int, final: Path, show: bool, timeout: float) -> None:
    """Stream ``wf.url`` into the open temp file and check it; raise on any mismatch."""
    import urllib.request

    request = urllib.request.Request(wf.url, headers={"User-Agent": "media_search"})
    with os.fdopen(tmp_fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
        header = resp.headers.get("Content-Length")
        announced = int(header) if header and header.isdigit() else None
        if announced is not None and wf.size is not None and announced != wf.size:
            reason = f"the server offers {announced} bytes, expected {wf.size}"
            raise _unavailable(wf, final, reason)
        bar = _progress_bar(show, announced or wf.size, wf.filename)
        h = hashlib.sha256()
        received = 0
        try:
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                h.update(chunk)
                received += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
        out.flush()
        os.fsync(out.fileno())
    # http.client returns a short body without error when the connection drops.
    if announced is not None and received != announced:
        raise _unavailable(wf, final, f"transfer cut short at {received} of {announced} bytes")
    if wf.size is not None and received != wf.size:
        raise _unavailable(wf, final, f"got {received} bytes, expected {wf.size}")
    digest = h.hexdigest()
    if not _hash_matches(digest, wf.sha256):
        raise _unavailable(wf, final, f"sha256 {digest} does not match the expected {wf.sha256}")


def download(
    wf: WeightsFile,
    dest_dir: Path | None = None,
    *,
    progress: bool | None = None,
    timeout: float = 30.0,
) -> Path:
    """Return ``dest_dir/wf.filename``, downloading and checking it first if needed.

    ``dest_dir`` defaults to ``cache_dir()``. ``progress=None`` shows a tqdm bar on
    stderr only when stderr is a terminal. Any failure raises ``WeightsUnavailableError``
    and leaves no file behind.
    """
    dest_dir = Path(dest_dir) if dest_dir is not None else cache_dir()
    final = dest_dir / wf.filename
    try:
        if _cached_ok(wf, final):
            return final
        dest_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{wf.filename}.", suffix=".part", dir=dest_dir)
    except OSError as e:
        raise _unavailable(wf, final, f"cannot use the folder {dest_dir}: {e}") from e
    show = bool(sys.stderr and sys.stderr.isatty()) if progress is None else progress
    logger.info("Downloading %s from %s to %s", wf.filename, wf.url, final)
    try:
        _fetch(wf, fd, final, show, timeout)
        os.replace(tmp_name, final)
    except BaseException as e:
        import http.client  # imported by the fetch already: only a download needs them
        import urllib.error

        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        if isinstance(e, WeightsUnavailableError):
            raise
        if isinstance(e, urllib.error.HTTPError):
            e.close()
            raise _unavailable(wf, final, f"HTTP {e.code} {e.reason}") from e
        if isinstance(e, urllib.error.URLError):
            raise _unavailable(wf, final, f"cannot reach the server: {e.reason}") from e
        if isinstance(e, TimeoutError):
            raise _unavailable(wf, final, f"no answer within {timeout:g} s") from e
        if isinstance(e, (OSError, http.client.HTTPException, ValueError)):
            raise _unavailable(wf, final, f"{type(e).__name__}: {e}") from e
        raise  # KeyboardInterrupt and the like: temp file removed, let it through
    logger.info("Saved %s", final)
    return final


# --- settings --------------------------------------------------------------------


def resolve(
    value: str, wf: WeightsFile, *, seed: int = 0, dest_dir: Path | None = None
) -> ResolvedWeights:
    """Turn a weights setting (``pretrained`` / ``random`` / a path) into weights."""
    keyword = value.strip().lower()
    if keyword == "pretrained":
        path = download(wf, dest_dir)
        ident = wf.weights_id or wf.filename
        if wf.sha256:
            ident = f"{ident}:{wf.sha256[:16].lower()}"
        return ResolvedWeights("pretrained", path, ident)
    if keyword == "random":
        return ResolvedWeights("random", None, f"random:{seed}")
    path = Path(value).expanduser()
    if not value.strip() or not path.is_file():
        raise WeightsUnavailableError(
            f"{wf.setting} is {value!r}, which is not an existing file; set it to the path "
            f"of a .pth checkpoint, to 'pretrained' to download {wf.filename}, or to "
            f"'random' (untrained weights, for tests only).",
            path=path,
        )
    try:
        digest = _sha256_of(path)
    except OSError as e:
        raise WeightsUnavailableError(
            f"Cannot read the weights file {path} named by {wf.setting} ({e.strerror}); "
            f"check its permissions or point {wf.setting} at another file.",
            path=path,
        ) from e
    return ResolvedWeights("file", path, f"file:{digest[:16]}")


# --- loading ---------------------------------------------------------------------


def _numpy_globals() -> list[Any]:
    """numpy array/scalar constructors: enough for training-state extras such as a
    sampler's index arrays, and safe, as every object inside still goes through the
    restricted unpickler. Listed under both the numpy 2 and numpy 1 module paths."""
    import numpy as np

    core = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    allowed: list[Any] = [np.ndarray, np.dtype]
    for fn in (core._reconstruct, core.scalar):
        allowed += [fn, (fn, f"numpy.core.multiarray.{fn.__name__}"),
                    (fn, f"numpy._core.multiarray.{fn.__name__}")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return allowed


def load_state_dict(path: Path) -> dict:
    """Load a checkpoint's state_dict on the CPU without running pickled code.

    Unwraps ``{"model": ...}`` (PANNs) and ``{"state_dict": ...}`` wrappers.
    """
    import pickle

    import torch

    path = Path(path)
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            with torch.serialization.safe_globals(_numpy_globals()):
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        first_line = (str(e).strip().splitlines() or [""])[0][:200]
        raise WeightsUnavailableError(
            f"{path} is not a PyTorch checkpoint that can be loaded safely "
            f"({type(e).__name__}: {first_line}); delete it so that it is downloaded "
            f"again, or give the path of a .pth file holding a state_dict.",
            path=path,
        ) from e
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsUnavailableError(
            f"{path} is a PyTorch file but holds no state_dict of tensors; give the path "
            f"of a .pth file saved with torch.save(model.state_dict(), path).",
            path=path,
        )
    return obj
