"""Indexing on Ray Data: the local indexer's stages as one streaming pipeline, on one machine or a cluster.

``index_paths_ray`` is ``run.index_paths`` with the decode, embed and write
stages on Ray (``media-search index PATH... --ray [ADDRESS]``; the ``ray``
extra). The driver (this process) lists the files and triages them against the
files manifest exactly as the local indexer does (unchanged files are skipped
unread), repairs what a killed run left ``pending``, and at the end removes
the files gone from the folders and reports. In between (``indexing.remote``):

    files ─► decode (CPU tasks, one block per file) ─► embed (actor pool: each
    model once per actor; one GPU per actor when the cluster has GPUs, bf16
    ResNet50) ─► write (tasks, to a Milvus server) ─► summaries ─► report

With a Milvus Lite ``.db`` only the driver may open the file, so the driver
writes what the actors return. The write is the local indexer's (pending
mark, old rows out, new rows in, done mark), and rows, ids and vectors are the
same functions' output, so a run killed at any moment is completed by the next
with no duplicate and no orphan row.

**Workers that die.** Ray retries a task whose worker died (and restarts an
actor); a file whose task dies every time (a decoder crash) is reported as
failed, and whatever of it a writer left half-written is removed before the
run ends.

**Model identity travels with the work.** Each embedded file carries the
``ModelSpec`` of the model that embedded it; a writer checks it against the
collection's stamp before writing, and with a Milvus server each actor checks
its own models before embedding: a worker with other weights stops the run
with ``IndexMismatchError``, having written nothing.

**Where it runs.** ``address=None`` or ``"local"``: a Ray runtime started on
this machine (``workers`` CPUs, default all) and stopped at the end; another
address (``auto``, ``ray://head:10001``): an existing cluster, on which
media_search and its models must be installed on every node. If Ray is
already initialised in this process (a notebook, a Ray job), that runtime is
used as it is.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..identity import file_id
from ..types import Failure, IndexReport

if TYPE_CHECKING:
    from ..config import Settings
    from ..store.milvus import MilvusStore

__all__ = ["Plan", "plan", "index_paths_ray", "quiet_ray"]

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]
_LOCAL_OBJECT_STORE = 512 * 2**20  # bytes: decoded blocks stream through; more spills to disk
_MAX_BLOCKS = 20_000  # decode blocks: one file each up to this many files
_RETRIES = 2  # a task whose worker died runs again this many times


@dataclass(frozen=True)
class Plan:
    """How the cluster's resources are shared between the stages."""

    actors: int  # embed actors
    actor_cpus: float
    actor_gpus: float
    decode_cpus: float  # per decode task
    files_per_batch: int  # files per embed call
    model_batch: int  # pictures per model call
    writers: int  # concurrent write tasks (Milvus server)

    def describe(self) -> str:
        where = f"{self.actor_gpus:g} GPU" if self.actor_gpus else f"{self.actor_cpus:g} CPU"
        return f"{self.actors} embed actor(s) with {where} each, {self.files_per_batch} files a batch"


def plan(resources: dict[str, float], settings: Settings, actors: int | None = None) -> Plan:
    """Share ``resources`` (``ray.cluster_resources()``): one embed actor per GPU (bf16, large
    batches); without GPUs (or with ``MEDIA_SEARCH_DEVICE=cpu``) about half the CPUs embed, a
    quarter of them per actor, and the rest decode."""
    cpus, gpus = float(resources.get("CPU", 1)), int(resources.get("GPU", 0))
    if gpus and settings.device != "cpu":
        n = actors or gpus
        return Plan(n, 1.0, 1.0, 1.0, 128, 256, max(2, n))
    n = actors or max(1, int(cpus) // 4)
    actor_cpus = max(0.5, min(4.0, cpus / (2 * n)))
    return Plan(n, actor_cpus, 0.0, 1.0 if cpus >= 2 else 0.5, 16, settings.batch_size, max(1, n))


def index_paths_ray(
    paths: list[Any],
    *,
    store: MilvusStore,
    settings: Settings,
    address: str | None = None,
    delete_missing: bool = True,
    follow_symlinks: bool = False,
    progress: Progress | None = None,
    workers: int | None = None,
    actors: int | None = None,
) -> IndexReport:
    """Index files and folders on Ray; see the module docstring. ``workers``: CPUs of a local
    runtime (default all); ``actors``: embed actors (default ``plan``)."""
    from .triage import manifest_run

    ray = _import_ray()
    paths = [os.path.expanduser(os.fspath(p)) for p in paths]
    with manifest_run(store, settings, paths, follow_symlinks=follow_symlinks, delete_missing=delete_missing,
                      progress=progress) as plan:  # fmt: skip
        if plan.todo:
            own = _connect(ray, address, workers)
            try:
                _pipeline(ray, store, settings, plan.todo, plan.known, plan.report, progress, actors)
            finally:
                if own:
                    ray.shutdown()
    return plan.report


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise ConfigError("--ray needs Ray Data, which is not installed: pip install 'media_search[ray]' "
                          "(on every machine of the cluster), or index without --ray.") from e  # fmt: skip
    return ray


def quiet_ray() -> None:
    """For the CLI (the library configures no logging): keep Ray Data's console lines (execution
    summaries, hints) off the terminal; errors still show. Its log file keeps everything."""
    _import_ray()  # ray.data sets up its loggers when imported
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def _connect(ray: Any, address: str | None, cpus: int | None) -> bool:
    """Start or join a Ray runtime unless one is running here; True when this call did (so it stops it)."""
    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        if address in (None, "", "local"):
            ray.init(num_cpus=cpus or os.cpu_count(), object_store_memory=_LOCAL_OBJECT_STORE, **quiet)
        else:
            ray.init(address=address, **quiet)
    except Exception as e:  # noqa: BLE001 - Ray's own errors: a wrong address, a version mismatch
        raise ConfigError(f"Cannot start or join the Ray cluster {address or '(local)'}: {e}. Check the address "
                          "(`ray status` on the head node shows it) and that Ray's version is the same everywhere.") from e  # fmt: skip
    return True


def _pipeline(
    ray: Any, store: MilvusStore, settings: Settings, todo: list[Any], known: dict[str, Any],
    report: IndexReport, progress: Progress | None, actors: int | None,
) -> None:  # fmt: skip
    from . import remote
    from .pool import Job
    from .triage import known_hash

    p = plan(ray.cluster_resources(), settings, actors)
    log.info("ray: %s on %s", p.describe(), ray.cluster_resources())
    work_settings = settings.replace(batch_size=p.model_batch)
    ctx = ray.data.DataContext.get_current()
    ctx.max_errored_blocks = -1  # a block whose worker died every time: its files are reported, the rest go on
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    rows = []
    for i, e in enumerate(todo):
        old = known.get(file_id(e.real))
        job = Job(e.path, e.real, work_settings, known_hash(old, e))
        rows.append({"i": i, "work": remote.dumps(remote.Work(job, e, old))})
    server = not settings.is_lite
    if server:
        store.manifest.ensure()  # created once here, not by concurrent writers
    ds = _dataset(ray, rows, p, settings, work_settings)
    got: set[int] = set()
    done = 0
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        if server:
            summaries = [remote.loads(b) for b in batch["summary"]]
        else:
            results = [remote.loads(b) for b in batch["item"]]
            fatal = next((r for r in results if isinstance(r, remote.Fatal)), None)
            summaries = [fatal] * len(results) if fatal else remote.apply(store, results)
        for i, s in zip(batch["i"], summaries):
            if isinstance(s, remote.Fatal):
                raise s.error
            got.add(int(i))
            done += 1
            _count(s, report)
            if progress:
                progress({"event": "file", "done": done, "total": len(todo), "path": s["path"], "status": s["status"]})
    log.info("ray data stages:\n%s", ds.stats())
    lost = [e for i, e in enumerate(todo) if i not in got]
    if lost:
        store.remove_files([file_id(e.real) for e in lost])  # whatever a dying writer left of them
        for e in lost:
            report.failed.append(Failure(e.path, f"{e.path}: its worker died {_RETRIES + 1} times while processing it "
                                                 "(a decoder crash or out of memory); nothing of it is indexed."))  # fmt: skip
            done += 1
            if progress:
                progress({"event": "file", "done": done, "total": len(todo), "path": e.path, "status": "failed"})


def _dataset(ray: Any, rows: list[dict[str, Any]], p: Plan, settings: Settings, work_settings: Settings) -> Any:
    """files -> decode (tasks) -> embed (actors) [-> write (tasks), with a Milvus server]."""
    from . import remote

    server = not settings.is_lite
    retries = {"max_retries": _RETRIES}  # Ray Data's default retries a dying task forever
    with warnings.catch_warnings():  # Ray 2.60 deprecates per-task remote arguments (in 2.64: gone)
        warnings.filterwarnings("ignore", message=".*ray_remote_args. is deprecated")
        ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), _MAX_BLOCKS))
        ds = ds.map(remote.decode_row, num_cpus=p.decode_cpus, **retries)
        ds = ds.map_batches(remote.Embed, fn_constructor_kwargs={"settings": work_settings, "check_store": server},
                            batch_size=p.files_per_batch, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=p.actors),
                            num_cpus=p.actor_cpus, num_gpus=p.actor_gpus or None)  # fmt: skip
        if server:
            ds = ds.map_batches(remote.write_batch, fn_kwargs={"settings": settings}, batch_size=None, batch_format="numpy",
                                num_cpus=0.25, compute=ray.data.TaskPoolStrategy(size=p.writers), **retries)  # fmt: skip
    return ds


def _count(s: dict[str, Any], report: IndexReport) -> None:
    if s["status"] == "failed":
        report.failed.append(Failure(s["path"], s["error"]))
    elif s["status"] == "unchanged":
        report.unchanged += 1
    else:
        report.indexed += 1
        report.by_kind[s["kind"]] = report.by_kind.get(s["kind"], 0) + 1
        report.keyframes += s["keyframes"]
        report.windows += s["windows"]
        report.notes.extend(s["notes"])
