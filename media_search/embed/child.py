"""One picklable call run in a fresh Python process, its result or its exception brought back.

For work whose memory should not stay with the caller: making an engine's cache
files (``embed.onnx``) holds the torch model, its traced graph, the serialised
file and an optimising ONNX Runtime session at once. Done inside a first
``media-search index`` it raised that process to 2.66 GB for good (glibc keeps
what was freed); in a child process it is returned to the system when the child
exits, and the caller then loads only the finished engine.

The child is ``python -c`` with the caller's ``sys.path``, not a
``multiprocessing`` spawn: spawn re-imports the caller's ``__main__``, which a
user's script without a ``__name__`` guard would run again. Its output is
captured (a quiet terminal) and logged at debug level.
"""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["call_in_child", "call_maybe_in_child"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_CHILD = """
import pickle, sys
sys.path[:] = pickle.load(sys.stdin.buffer)
try:
    fn, args, kwargs = pickle.load(sys.stdin.buffer)
    outcome = (True, fn(*args, **kwargs))
except BaseException as e:
    outcome = (False, e)
try:
    data = pickle.dumps(outcome)
except Exception as e:
    data = pickle.dumps((False, RuntimeError(f"{type(outcome[1]).__name__}: {outcome[1]} (not picklable: {e})")))
with open(sys.argv[1], "wb") as f:
    f.write(data)
"""


def call_in_child(fn: Callable[..., T], *args: Any, what: str, error: type[Exception], **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` computed in a new Python process.

    ``fn`` and its arguments must pickle (module-level functions, plain values).
    An exception raised by ``fn`` is raised here as it was; a child that dies
    (killed for memory, a crash in native code) raises ``error`` naming ``what``.
    """
    payload = pickle.dumps(list(sys.path)) + pickle.dumps((fn, args, kwargs))
    with tempfile.TemporaryDirectory(prefix="media_search-child-") as tmp:
        result = Path(tmp) / "result.pickle"
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(result)], input=payload, capture_output=True, check=False
        )
        said = (proc.stdout + proc.stderr).decode(errors="replace").strip()
        if said:
            log.debug("%s (child process) said:\n%s", what, said)
        try:
            ok, value = pickle.loads(result.read_bytes())
        except Exception as e:  # noqa: BLE001 - no file, a cut one, or a result this process cannot import
            how = f"was killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exited with {proc.returncode}"
            last = said.splitlines()[-1] if said else "no output"
            raise error(f"{what} stopped: its process {how} ({last}).") from e
    if not ok:
        raise value
    return value


def call_maybe_in_child(
    fn: Callable[..., T], *args: Any, isolate: bool, what: str, error: type[Exception], **kwargs: Any
) -> T:
    """``call_in_child`` when ``isolate`` (and there is an interpreter to start: an embedded one
    may have no ``sys.executable``), else ``fn(*args, **kwargs)`` in this process."""
    if isolate and sys.executable:
        return call_in_child(fn, *args, what=what, error=error, **kwargs)
    return fn(*args, **kwargs)
