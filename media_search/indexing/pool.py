"""The indexer's decode stage, run in worker processes: hash, detect and decode files.

``DecodePool.run(jobs)`` yields one ``Outcome`` per ``Job`` as files finish
decoding (completion order), keeping a bounded number in flight so memory
stays flat while the main process embeds and writes. Workers need no model:
they return ``decode.file.Decoded`` (prepared 224x224 uint8 pictures, 32 kHz audio)
with its copy signals.

* ``workers > 0``: a ``ProcessPoolExecutor`` with the ``spawn`` start method
  (torch is loaded in the parent; forking it is unsafe). Workers ignore
  SIGINT: Ctrl-C is the parent's to handle. A worker that dies (a decoder
  crash, the OOM killer) breaks the pool: the pool is restarted and the files
  that were in flight are retried one at a time, so only the file that kills
  a worker again is reported, as failed.
* ``workers == 0``: decode in the calling thread, no overlap (the simplest
  path, and the one used for small runs).

Per-file errors never escape a worker: they come back as ``Outcome.error``
(one sentence). A file whose bytes hash to ``Job.known_hash`` is not decoded
(``Outcome.same``): only its stat changed.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from ..config import Settings
from ..decode.file import Decoded, decode_file
from ..errors import DecodeError, UnsupportedMediaError

__all__ = ["Job", "Outcome", "DecodePool", "decode_job", "default_workers"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One file to decode: ``path`` as walked (for messages), ``real`` (resolved, what is read)."""

    path: str
    real: str
    settings: Settings
    known_hash: str | None = None


@dataclass
class Outcome:
    job: Job
    content_hash: str = ""
    kind: str = ""
    decoded: Decoded | None = None
    same: bool = False  # bytes equal to known_hash: nothing decoded
    error: str | None = None
    seconds: float = 0.0


def default_workers() -> int:
    """Decode processes to start: one per core, at most 8.

    A worker does more than decode: each picture's local features (``signals.image.stored_features``)
    and each sound's landmarks are made there. When that SIFT ran at 640 px (about 63 ms a photo,
    three times its draft decode and ResNet50's ONNX run), one worker on 2 cores held the run (150
    photos of 1-12 MP: 8.3-8.7 files/s with 1 worker, 13.4 with 2; 400 real recordings and 4
    videos: 67-77 s against 57-58 s); at 320 px it costs about 21 ms.
    At least one worker keeps a decoder crash out of the main process (figures: README,
    "Benchmarks", ``scripts/benchmark.py --sections images --workers 1 2``).
    """
    return max(1, min(8, os.cpu_count() or 1))


def decode_job(job: Job) -> Outcome:
    """Hash, detect and decode one file; per-file problems become ``Outcome.error``, and what the
    decoders wrote on stderr meanwhile (``decode.quiet``) a note or a clause of that error."""
    from ..decode import quiet

    started = time.monotonic()
    out = Outcome(job)
    with quiet.collect() as said:
        _decode_into(out, job)
    if said and out.error:
        out.error = f"{out.error.rstrip('.')} ({said[0]})."
    elif said and out.decoded is not None:
        out.decoded.notes.extend(said)
    out.seconds = time.monotonic() - started
    return out


def _decode_into(out: Outcome, job: Job) -> None:
    from ..detect import detect_kind
    from ..identity import content_hash
    from ..signals import add_copy_signals

    try:
        out.content_hash = content_hash(job.real)
        if job.known_hash and out.content_hash == job.known_hash:
            out.same = True
        else:
            out.kind = detect_kind(job.real)
            out.decoded = add_copy_signals(decode_file(job.real, out.kind, job.settings))
    except (DecodeError, UnsupportedMediaError) as e:
        out.error = _with_path(str(e), job)
    except FileNotFoundError:
        out.error = f"{job.path} disappeared before it could be read (deleted or moved during the run)."
    except OSError as e:
        out.error = f"{job.path} cannot be read: {e.strerror or e}."
    except MemoryError:
        out.error = f"{job.path} needs more memory to decode than is available."
    except Exception as e:  # noqa: BLE001 - a decoder bug on one file must not stop a bulk run
        log.debug("unexpected error decoding %s", job.real, exc_info=True)
        out.error = f"{job.path} could not be decoded ({type(e).__name__}: {e})."


def _with_path(message: str, job: Job) -> str:
    """Messages name the resolved path or only the file name; make them name the path as given."""
    if job.path in message:
        return message
    if job.real in message:
        return message.replace(job.real, job.path)
    return f"{job.path}: {message}"


def _ping() -> int:
    return os.getpid()


def _worker_init(parent: int | None = None, quiet_stderr: bool = False) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if quiet_stderr:  # the decoders' own lines go into the report, not onto the terminal
        from ..decode import quiet

        quiet.install()
    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(parent,), name="media_search-parent-watch", daemon=True).start()


def _exit_with_parent(parent: int, every: float = 0.5) -> None:
    """Exit this worker once the indexer that started it is gone (even ``kill -9``: no cleanup ran).

    A killed parent leaves its workers blocked on the task queue forever, and with them the
    multiprocessing resource tracker (it waits for every holder of its pipe). Reparenting shows
    the parent's death: ``getppid`` changes.
    """
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(0)


class DecodePool:
    """Decode files in ``workers`` processes (0: in this thread); see the module docstring."""

    def __init__(self, workers: int, *, in_flight: int | None = None) -> None:
        self.workers = max(0, int(workers))
        self.in_flight = in_flight or max(4, 2 * self.workers + 2)
        self._executor: ProcessPoolExecutor | None = None

    def _start(self) -> ProcessPoolExecutor | None:
        """The running pool; None when worker processes cannot start here (then decode inline)."""
        if self._executor is None and self.workers:
            ctx = multiprocessing.get_context("spawn")
            from ..decode import quiet

            ex = ProcessPoolExecutor(
                self.workers, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(), quiet.installed())
            )
            try:
                ex.submit(_ping).result()
            except Exception as e:  # noqa: BLE001 - e.g. a __main__ that spawn cannot re-import
                log.warning("decode worker processes cannot start (%s); decoding in the main process", e)
                ex.shutdown(wait=False, cancel_futures=True)
                self.workers = 0
                return None
            self._executor = ex
        return self._executor

    def _pool(self) -> ProcessPoolExecutor:
        ex = self._start()
        if ex is None:
            raise BrokenProcessPool("decode workers cannot be restarted")
        return ex

    def run(self, jobs: Iterable[Job]) -> Iterator[Outcome]:
        """Outcomes of ``jobs`` in completion order (input order when ``workers == 0``)."""
        todo = iter(jobs)
        if self._start() is None:
            for job in todo:
                yield decode_job(job)
            return
        running: dict[Future[Outcome], Job] = {}
        exhausted = False
        while True:
            while not exhausted and len(running) < self.in_flight:
                job = next(todo, None)
                if job is None:
                    exhausted = True
                    break
                running[self._pool().submit(decode_job, job)] = job
            if not running:
                return
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                job = running.pop(fut)
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    lost = [job, *running.values()]
                    running.clear()
                    yield from self._retry_alone(lost)
                    break

    def _retry_alone(self, jobs: list[Job]) -> Iterator[Outcome]:
        """After a worker died: restart the pool and decode the files that were in flight one by one."""
        log.warning("a decode worker died; retrying %d file(s) one at a time", len(jobs))
        self.close()
        for job in jobs:
            try:
                yield self._pool().submit(decode_job, job).result()
            except BrokenProcessPool:
                self.close()
                yield Outcome(job, error=f"{job.path} crashed the decoder (its worker process died); it is damaged or unsupported.")

    def close(self, *, cancel: bool = False) -> None:
        """Stop the workers; ``cancel``: do not wait for files being decoded (Ctrl-C)."""
        ex, self._executor = self._executor, None
        if ex is None:
            return
        if cancel:
            procs = list(getattr(ex, "_processes", {}).values())  # no public way to stop busy workers (3.11)
            ex.shutdown(wait=False, cancel_futures=True)
            for p in procs:
                if p.is_alive():
                    p.terminate()
        else:
            ex.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(cancel=exc_type is not None)
