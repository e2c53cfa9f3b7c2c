"""The indexer's stages as they run on Ray workers (``indexing.distributed`` builds the pipeline).

Every value crossing between stages is one pickled object per file in a
``bytes`` column (Ray Data keeps it opaque): the stages reuse the local
indexer's own types and functions, so a file gives the same rows either way.

* ``decode_row`` (CPU tasks): ``pool.decode_job`` on one ``Work`` -> its ``Outcome``.
* ``Embed`` (an actor pool; each actor holds each model once, on a GPU when
  it has one): batches pictures across files like the local indexer
  (``run._Run``'s embed stage), embeds sounds, and streams long ones; each
  result carries the ``ModelSpec`` of the model that embedded it. With a
  Milvus server, an actor checks each model against the collection's stamp
  before it embeds anything: a worker with other weights stops the run with
  ``IndexMismatchError``.
* ``write_batch`` (tasks, Milvus server only) and the driver (Milvus Lite):
  ``apply`` writes results with the local indexer's ``_write`` (pending mark,
  old rows out, new rows in, done mark), so a run killed at any moment is
  completed by the next one.

Errors that must stop the run (``MediaSearchError`` of the store or the
models, or a bug) come back as a ``Fatal`` result for the driver to raise:
Ray Data drops blocks whose tasks fail, and the driver reports the files of
dropped blocks (workers that died) as failed.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..config import Settings
    from ..embed.spec import ModelSpec
    from ..store.milvus import MilvusStore
    from ..store.records import FileRecord
    from .pool import Job, Outcome
    from .run import Prepared
    from .walk import Entry

__all__ = ["Work", "Result", "Fatal", "decode_row", "Embed", "write_batch", "apply", "dumps", "loads"]

log = logging.getLogger(__name__)


def dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def loads(blob: Any) -> Any:
    return pickle.loads(bytes(blob))


@dataclass
class Work:
    """One file to index: the decode job, its walked entry and its manifest entry (None if new)."""

    job: Job
    entry: Entry
    old: FileRecord | None


@dataclass
class Result:
    """One file after the embed stage: ``prepared`` rows, or ``error``, or ``same`` bytes."""

    work: Work
    prepared: Prepared | None = None
    error: str | None = None
    same: bool = False
    specs: dict[str, ModelSpec] = field(default_factory=dict)  # kind -> the model that embedded its rows


@dataclass
class Fatal:
    """An error that stops the run, raised again by the driver."""

    error: BaseException


def decode_row(row: dict[str, Any]) -> dict[str, Any]:
    """Decode stage (a Ray task per block of files): ``Work`` -> ``(Work, Outcome)``."""
    from . import pool

    work: Work = loads(row["work"])
    return {"i": row["i"], "out": dumps((work, pool.decode_job(work.job)))}


class Embed:
    """Embed stage: one per actor, holding the models of ``settings`` (built on first use)."""

    def __init__(self, settings: Settings, check_store: bool) -> None:
        from ..embed.embedders import Embedders

        self.settings = settings
        self.embedders = Embedders(settings)
        self.check_store = check_store
        self._checked: set[str] = set()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            items = [dumps(r) for r in self._embed([loads(b) for b in batch["out"]])]
        except Exception as e:  # noqa: BLE001 - the driver raises it: a model or store error stops the run
            items = [dumps(Fatal(_portable(e)))] * len(batch["i"])
        return {"i": np.asarray(batch["i"]), "item": np.asarray(items, dtype=object)}

    def _spec(self, kind: str) -> ModelSpec:
        spec = self.embedders.spec(kind)
        if self.check_store and kind not in self._checked:  # this worker's weights against the stamp
            from ..store.milvus import MilvusStore

            store = MilvusStore.from_settings(self.settings)
            try:
                ensure(store, kind, spec)
            finally:
                store.close()
            self._checked.add(kind)
        return spec

    def _embed(self, pairs: list[tuple[Work, Outcome]]) -> list[Result]:
        from ..identity import file_id
        from ..types import IndexReport
        from .run import _Run

        run = _Run(None, self.embedders, self.settings, IndexReport(), {}, None, {})  # type: ignore[arg-type]  # its embed stage only
        results, waiting = [], []
        for work, out in pairs:
            res = Result(work, error=out.error, same=out.same)
            results.append(res)
            if out.error or out.same:
                continue
            d = out.decoded
            assert d is not None
            if d.audio is not None or d.stream_audio:
                self._spec("audio")
            if d.n_frames:
                self._spec(d.kind)
            item = run._prepare(out, work.entry, file_id(work.entry.real))
            if d.stream_audio:
                res.error = _stream(item, out, self.embedders, self.settings)
                res.prepared = None if res.error else item
            elif d.n_frames:
                run.waiting.append((item, out))
                waiting.append((res, item))
            else:
                res.prepared = item
        run._embed_waiting()
        for res, item in waiting:
            res.prepared = item
        for res in results:
            if res.prepared is not None:
                res.specs = {kind: self.embedders.spec(kind) for kind in res.prepared.rows}
        return results


def _stream(item: Prepared, out: Outcome, embedders: Any, settings: Settings) -> str | None:
    """A long sound, embedded as it is decoded (``indexing.stream``); its rows are held, not written
    in parts: a worker cannot write to a Milvus Lite file. Returns a failure message, or None."""
    from ..embed.embedders import Embedded, embed_frames
    from ..errors import DecodeError, UnsupportedMediaError
    from . import columns
    from .run import _parts_or_none
    from .stream import SoundRows, sound_parts

    d, e = out.decoded, item.entry
    assert d is not None
    common = {"file_id": item.fid, "path": e.real, "content_hash": item.content_hash}
    if d.n_frames:
        assert d.frames is not None and d.timestamps is not None
        vecs = embed_frames(embedders.image, d.frames, settings.batch_size)
        fields = {**common, "phash": columns.phashes(d), "local": columns.local(d)}
        item.rows["video"] = columns.sequence_columns(item.fid, "v", Embedded(vecs, d.timestamps, d.duration), fields)
    summary = SoundRows()
    parts = sound_parts(e.real, embedders.audio, settings, fid=item.fid, fields={**common, "source": "video" if d.kind == "video" else "audio"},
                        from_video=d.kind == "video", summary=summary)  # fmt: skip
    try:
        got = list(_parts_or_none(parts, d.kind == "video"))
    except (DecodeError, UnsupportedMediaError) as err:
        return f"{e.path}: {err}" if e.path not in str(err) else str(err)
    if got:
        item.rows["audio"] = columns.concat(got)
    item.notes += [f"{e.path}: {n}" for n in summary.notes if d.kind == "audio" or not n.startswith("silent")]
    return None


def ensure(store: MilvusStore, kind: str, spec: ModelSpec) -> None:
    """``store.ensure`` (create the collection, or check its stamp), safe when several workers
    create the same collection at once: the losers check the winner's stamp."""
    from ..errors import StoreError

    try:
        store.ensure(kind, spec)  # type: ignore[arg-type]
    except StoreError:
        if not store.has(kind):
            raise
        store.ensure(kind, spec)  # type: ignore[arg-type]


def apply(store: MilvusStore, results: list[Result]) -> list[dict[str, Any]]:
    """Write stage: write a batch of results like the local indexer; one summary per file."""
    from ..identity import file_id
    from ..types import IndexReport
    from .run import _write

    summaries: list[dict[str, Any]] = []
    ready, known, touched = [], {}, []
    for res in results:
        w = res.work
        fid = file_id(w.entry.real)
        if w.old is not None:
            known[fid] = w.old
        if res.error:
            if w.old is not None:  # its indexed rows describe content that is gone
                store.remove_files([fid])
            summaries.append({"path": w.entry.path, "status": "failed", "error": res.error})
        elif res.same:
            assert w.old is not None
            touched.append(type(w.old)(**{**w.old.__dict__, "size": w.entry.size, "mtime": w.entry.mtime}))
            summaries.append({"path": w.entry.path, "status": "unchanged"})
        else:
            item = res.prepared
            assert item is not None
            for kind, spec in res.specs.items():  # the model that embedded the rows against the stamp, before any write
                ensure(store, kind, spec)
            ready.append(item)
            summaries.append({"path": item.entry.path, "status": "indexed", "kind": item.kind, "notes": item.notes,
                              "keyframes": len(item.rows.get("video", {}).get("id", [])),
                              "windows": len(item.rows.get("audio", {}).get("id", []))})  # fmt: skip
    if touched:
        store.put_files(touched)
    _write(store, _Stamps(results), ready, known, IndexReport())
    return summaries


class _Stamps:
    """What ``run._write`` asks an ``Embedders`` for: the model of each kind, as the results carry it."""

    def __init__(self, results: list[Result]) -> None:
        self.specs = {k: s for r in results for k, s in r.specs.items()}

    def spec(self, kind: str) -> ModelSpec:
        return self.specs[kind]


def write_batch(batch: dict[str, np.ndarray], settings: Settings) -> dict[str, np.ndarray]:
    """Write stage on a worker (Milvus server): apply a block of results; summaries back to the driver."""
    from ..store.milvus import MilvusStore

    results = [loads(b) for b in batch["item"]]
    fatal = next((r for r in results if isinstance(r, Fatal)), None)
    if fatal is not None:
        summaries: list[Any] = [fatal] * len(results)
    else:
        store = MilvusStore.from_settings(settings)
        try:
            summaries = apply(store, results)
        except Exception as e:  # noqa: BLE001 - the driver raises it
            summaries = [Fatal(_portable(e))] * len(results)
        finally:
            store.close()
    return {"i": np.asarray(batch["i"]), "summary": np.asarray([dumps(s) for s in summaries], dtype=object)}


def _portable(e: BaseException) -> BaseException:
    """``e`` if it survives pickling (our typed errors do), else a RuntimeError that says what it was."""
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(e).__name__}: {e}")
