"""One contract suite for the store (media_search.store.milvus), run on both backends.

Every test runs against Milvus Lite (a fresh ``.db``) and the real Milvus 2.3.5
server (``store_uri`` in conftest). Where the backends differ (DESIGN.md
section 6), the test says so next to an explicit ``if backend == ...``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest

from media_search.config import Settings
from media_search.embed.spec import ModelSpec
from media_search.errors import IndexMismatchError, StoreLockedError
from media_search.identity import file_id, row_id
from media_search.signals import SIGNALS, SignalSpec
from media_search.store import connection as connection_module
from media_search.store.features import Placement
from media_search.store.filters import quote
from media_search.store.milvus import FileRecord, MilvusStore

SPEC = ModelSpec("resnet50", "random:0", 2048, "COSINE", "v1:test")
OTHER = ModelSpec("resnet50", "IMAGENET1K_V2:0123abcd", 2048, "COSINE", "v1:test")
FIELDS = {
    "image": {"id", "vector", "path", "content_hash", "size", "mtime"},
    "video": {"id", "vector", "path", "content_hash", "timestamp", "duration"},
    "audio": {"id", "vector", "path", "content_hash", "timestamp", "duration", "source"},
}
NAMES = {"image": "images", "video": "video_frames", "audio": "audio_windows"}
ODD_PATH = '/lib/it\'s "q" \\ back\\\\slash\nnew\tline #1 😀 фото 写真.jpg'


@pytest.fixture
def backend(store_uri: str) -> str:
    return "server" if store_uri.startswith("http") else "lite"


_SHARED_PREFIX: dict[str, str] = {}


def _drop_all(s: MilvusStore) -> None:
    for name in s.client.list_collections():
        if name.startswith(s.prefix):
            s.client.drop_collection(name)


@pytest.fixture
def fresh_store(store_uri: str):
    """A store with no collection at all (a fresh Lite file, or a fresh prefix on the server)."""
    s = MilvusStore.from_settings(Settings.from_env())
    try:
        yield s
    finally:
        if not s.is_lite:  # the server outlives the test: leave it clean
            _drop_all(s)
        s.close()


@pytest.fixture
def store(store_uri: str, backend: str):
    """A store for row tests; its collections may exist already, but hold no row.

    Backend difference: creating a collection takes ~3 s on the 2.3.5 server (the
    client polls its load state) and ~0.3 s on Lite, so on the server the row tests
    share one prefix and are emptied after each test.
    """
    if backend == "lite":
        s = MilvusStore.from_settings(Settings.from_env())
        yield s
        s.close()
        return
    s = MilvusStore(store_uri, prefix=_SHARED_PREFIX.setdefault(store_uri, f"shared{uuid.uuid4().hex[:8]}_"))
    try:
        yield s
    finally:
        for kind in ("image", "video", "audio", "files"):
            if s.has(kind):
                s.client.delete(s.name(kind), filter='id != ""')
        s.close()


def unit(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, SPEC.dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def hexhash(i: int) -> str:
    return f"{i:064x}"


def image_rows(paths: list[str], vectors: np.ndarray, hashes: list[str]) -> dict:
    ids = [file_id(p) for p in paths]
    return {
        "id": ids,
        "file_id": ids,
        "vector": vectors,
        "path": paths,
        "content_hash": hashes,
        "size": [100 + i for i in range(len(paths))],
        "mtime": [1.5 * i for i in range(len(paths))],
    }


def frame_rows(path: str, vectors: np.ndarray, content: str, tag: str = "v", **extra: list) -> dict:
    fid = file_id(path)
    stamps = [float(i) for i in range(len(vectors))]
    return {
        "id": [row_id(fid, tag, t) for t in stamps],
        "file_id": [fid] * len(vectors),
        "vector": vectors,
        "path": [path] * len(vectors),
        "content_hash": [content] * len(vectors),
        "timestamp": stamps,
        "duration": [float(len(vectors))] * len(vectors),
        **extra,
    }


# --- collections and model identity ------------------------------------------------------


def test_ensure_creates_the_design_collections(fresh_store: MilvusStore) -> None:
    store = fresh_store
    for kind in ("image", "video", "audio"):
        store.ensure(kind, SPEC)
        name = store.prefix + NAMES[kind]
        assert store.name(kind) == name
        info = store.client.describe_collection(name)
        fields = {f["name"]: f for f in info["fields"]}
        assert FIELDS[kind] <= set(fields), f"{name} lacks {FIELDS[kind] - set(fields)}"
        assert fields["id"].get("is_primary")
        assert int(fields["vector"]["params"]["dim"]) == 2048
        index = store.client.describe_index(name, "vector")
        assert index["metric_type"] == "COSINE"
    assert store.has("files")


def test_model_identity_is_stamped_and_checked(fresh_store: MilvusStore, store_uri: str) -> None:
    store = fresh_store
    assert store.model_of("image") is None
    store.ensure("image", SPEC)
    assert store.model_of("image") == SPEC
    store.ensure("image", SPEC)  # same model: fine, again and again
    again = MilvusStore.from_settings(Settings.from_env())  # a fresh client reads the stamp back
    try:
        assert again.model_of("image") == SPEC
        again.ensure("image", SPEC)
        with pytest.raises(IndexMismatchError) as info:
            again.ensure("image", OTHER)
    finally:
        again.close()
    message = str(info.value)
    assert "random:0" in message and "IMAGENET1K_V2" in message
    assert "media-search reset --kind image" in message and "index again" in message


def test_copy_signal_versions_are_stamped_and_checked(fresh_store: MilvusStore) -> None:
    """A collection records its copy signals' versions; another version (or none) asks for a rebuild."""
    store = fresh_store
    assert store.signals_of("audio") is None
    store.ensure("audio", SPEC)
    assert store.signals_of("audio") == SIGNALS["audio"]
    old = (SignalSpec("landmarks", "landmark-old"),)
    store.ensure("image", SPEC, signals=(SignalSpec("phash", "phash-old"),))  # built by another version
    store.ensure("video", SPEC, signals=())  # built before signals were stamped
    again = MilvusStore.from_settings(Settings.from_env())  # a fresh client reads the stamps back
    try:
        again.ensure("audio", SPEC)  # same versions: fine
        with pytest.raises(IndexMismatchError) as changed:
            again.ensure("audio", SPEC, signals=old)
        with pytest.raises(IndexMismatchError) as older:
            again.ensure("image", SPEC)
        with pytest.raises(IndexMismatchError) as unstamped:
            again.ensure("video", SPEC)
    finally:
        again.close()
    assert "landmark-old" in str(changed.value) and SIGNALS["audio"][0].version in str(changed.value)
    assert "phash-old" in str(older.value) and "media-search reset --kind image" in str(older.value)
    assert "no copy-signal stamp" in str(unstamped.value)
    for info, kind in ((changed, "audio"), (older, "image"), (unstamped, "video")):
        assert f"media-search reset --kind {kind}" in str(info.value) and "index again" in str(info.value)


# --- rows ----------------------------------------------------------------------------------


def test_upsert_is_idempotent_and_count_is_immediate(store: MilvusStore, backend: str) -> None:
    store.ensure("image", SPEC)
    paths = [f"/lib/{i}.jpg" for i in range(5)]
    cols = image_rows(paths, unit(5, 1), [hexhash(i) for i in range(5)])
    assert store.upsert_rows("image", cols) == 5
    assert store.count("image") == 5  # Strong consistency: no flush, no sleep
    store.upsert_rows("image", cols)
    store.upsert_rows("image", image_rows(paths[:2], unit(2, 2), [hexhash(9)] * 2))
    assert store.count("image") == 5
    rows = store.fetch_rows("image", [file_id(p) for p in paths[:2]], vectors=False)
    assert {r.content_hash for r in rows} == {hexhash(9)}  # the last write wins


def test_insert_differs_between_backends(store: MilvusStore, backend: str) -> None:
    """Why the store only ever upserts: a plain ``insert`` of an existing id."""
    store.ensure("image", SPEC)
    cols = image_rows(["/lib/a.jpg"], unit(1, 3), [hexhash(1)])
    row = {k: (v[0] if k != "vector" else v[0].tolist()) for k, v in cols.items()}
    row.setdefault("phash", "")  # a raw insert must give every field (upsert_rows fills them in)
    name = store.name("image")
    if backend == "server":  # a Lite store keeps local features beside its .db (``store.features``)
        row.setdefault("local", "")
    store.client.insert(name, [row])
    store.client.insert(name, [row])
    if backend == "server":
        # Milvus 2.3.5 keeps both rows under one primary key.
        assert store.count("image") == 2
    else:
        # Milvus Lite keeps one row per primary key.
        assert store.count("image") == 1


def test_delete_rows_by_file_id(store: MilvusStore) -> None:
    store.ensure("video", SPEC)
    store.upsert_rows("video", frame_rows("/lib/a.mp4", unit(4, 4), hexhash(1)))
    store.upsert_rows("video", frame_rows("/lib/b.mp4", unit(3, 5), hexhash(2)))
    assert store.count("video") == 7
    store.delete_rows("video", [file_id("/lib/a.mp4")])
    assert store.count("video") == 3
    assert {r.path for r in store.fetch_rows("video", [file_id("/lib/a.mp4"), file_id("/lib/b.mp4")], vectors=False)} == {"/lib/b.mp4"}
    store.delete_rows("video", [])  # nothing to do
    store.delete_rows("audio", [file_id("/lib/b.mp4")])  # no such collection yet: nothing to do
    assert store.count("video") == 3


def test_search_excludes_a_hash_and_ranks_by_cosine(store: MilvusStore) -> None:
    store.ensure("image", SPEC)
    base = unit(1, 6)[0]
    noise = unit(6, 7)
    # Vectors at decreasing similarity to ``base``; file 0 has the query's content hash.
    mix = np.array([1.0, 0.95, 0.8, 0.6, 0.4, 0.2])[:, None]
    vecs = mix * base + (1 - mix) * noise
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    paths = [f"/lib/{i}.jpg" for i in range(6)]
    hashes = [hexhash(100)] + [hexhash(i) for i in range(1, 6)]
    hashes[5] = hexhash(100)  # another file with the query's bytes: excluded too
    store.upsert_rows("image", image_rows(paths, vecs, hashes))
    (hits,) = store.search("image", base[None, :], 10, exclude_hash=hexhash(100))
    assert [h.path for h in hits] == paths[1:5]
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    np.testing.assert_allclose(scores, vecs[1:5] @ base, atol=1e-4)
    (all_hits,) = store.search("image", base[None, :], 3)
    assert [h.path for h in all_hits] == paths[:3] and all_hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert store.search("video", base[None, :], 3) == [[]]  # a kind never indexed: no hits


def test_search_leaves_out_the_files_it_is_told(store: MilvusStore) -> None:
    """A widened search (``query.pool.candidates``) looks past the files it found: their rows are not
    returned, the others' are, nearest first."""
    store.ensure("video", SPEC)
    vecs = unit(6, 12)
    store.upsert_rows("video", frame_rows("/lib/a.mp4", vecs[:3], hexhash(1)))
    store.upsert_rows("video", frame_rows("/lib/b.mp4", vecs[3:5], hexhash(2)))
    store.upsert_rows("video", frame_rows("/lib/c.mp4", vecs[5:], hexhash(3)))
    (hits,) = store.search("video", vecs[:1], 10, exclude_files=[file_id("/lib/a.mp4")])
    assert sorted(h.path for h in hits) == ["/lib/b.mp4", "/lib/b.mp4", "/lib/c.mp4"]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    (hits,) = store.search("video", vecs[:1], 10, exclude_hash=hexhash(3),
                           exclude_files=[file_id("/lib/a.mp4"), file_id("/lib/b.mp4")])  # fmt: skip
    assert hits == []


def test_search_with_more_query_vectors_than_one_call_carries(store: MilvusStore) -> None:
    """A long query's keyframes are searched a batch of vectors per call: one list per vector, in order."""
    store.ensure("image", SPEC)
    vecs = unit(6, 11)
    paths = [f"/lib/{i}.jpg" for i in range(6)]
    store.upsert_rows("image", image_rows(paths, vecs, [hexhash(i) for i in range(6)]))
    queries = vecs[np.arange(600) % 6]  # more than a batch (256), each the copy of a row
    found = store.search("image", queries, 1)
    assert len(found) == 600 and [hits[0].path for hits in found] == [paths[i % 6] for i in range(600)]


def test_fetch_rows_returns_vectors_and_timestamps(store: MilvusStore) -> None:
    store.ensure("audio", SPEC)
    vecs = unit(3, 8)
    store.upsert_rows("audio", frame_rows("/lib/s.wav", vecs, hexhash(3), tag="a", source=["audio"] * 3))
    rows = sorted(store.fetch_rows("audio", [file_id("/lib/s.wav")]), key=lambda r: r.timestamp)
    assert [r.timestamp for r in rows] == [0.0, 1.0, 2.0]
    assert {r.source for r in rows} == {"audio"} and {r.duration for r in rows} == {3.0}
    np.testing.assert_allclose(np.array([r.vector for r in rows], dtype=np.float32), vecs, atol=1e-6)
    (hits,) = store.search("audio", vecs[:1], 5, source="video")
    assert hits == []  # the source filter
    assert store.fetch_rows("audio", []) == []


def test_fetch_rows_reads_long_files_in_parts(store: MilvusStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # Parts of 2 rows: a 5-row file and a 1-row file come back whole, each row once, with its own
    # vector and fingerprint (a long file's rows are read a part at a time, not all at once).
    from media_search.store import milvus as milvus_module

    monkeypatch.setattr(milvus_module, "FETCH_PART", 2)
    store.ensure("audio", SPEC)
    long_vecs, short_vecs = unit(5, 1), unit(1, 2)
    for path, vecs in (("/lib/long.wav", long_vecs), ("/lib/short.wav", short_vecs)):
        n = len(vecs)
        fp = [[int(t) * 10 + j for j in range(3)] for t in range(n)]
        store.upsert_rows("audio", frame_rows(path, vecs, hexhash(n), tag="a", source=["audio"] * n, fp=fp))
    reads: list[int] = []  # rows per read that carried vectors
    query_all = store.conn.query_all

    def counted(name, expr, fields, *args, **kwargs):  # type: ignore[no-untyped-def]
        got = query_all(name, expr, fields, *args, **kwargs)
        if "vector" in fields:
            reads.append(len(got))
        return got

    monkeypatch.setattr(store.conn, "query_all", counted)
    rows = store.fetch_rows("audio", [file_id("/lib/long.wav"), file_id("/lib/short.wav")], copy_fields=True)
    assert len(rows) == 6 and len({r.id for r in rows}) == 6
    assert max(reads) == 2 and sum(reads) == 6
    for path, vecs in (("/lib/long.wav", long_vecs), ("/lib/short.wav", short_vecs)):
        mine = sorted((r for r in rows if r.path == path), key=lambda r: r.timestamp)
        assert [r.timestamp for r in mine] == [float(i) for i in range(len(vecs))]
        np.testing.assert_allclose(np.array([r.vector for r in mine]), vecs, atol=1e-6)
        assert [r.fp.tolist() for r in mine] == [[int(t) * 10 + j for j in range(3)] for t in range(len(vecs))]
    without = store.fetch_rows("audio", [file_id("/lib/long.wav")], vectors=False)
    assert len(without) == 5 and all(r.vector is None and r.fp is None for r in without)


def test_manifest_put_get_iter_forget(store: MilvusStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # Page through the server's query iterator past 2 rows (it is used past 16384 rows).
    monkeypatch.setattr(connection_module, "QUERY_WINDOW", 2)
    recs = [
        FileRecord(file_id(f"/lib/{i}.jpg"), f"/lib/{i}.jpg", "image", hexhash(i % 2), 10 + i, 2.5 + i, "done", 1)
        for i in range(4)
    ]
    store.put_files(recs)
    got = store.get_files([r.file_id for r in recs[:2]] + ["ab" * 16])
    assert got == {r.file_id: r for r in recs[:2]}
    assert {r.path for r in store.iter_files(content_hash=hexhash(1))} == {"/lib/1.jpg", "/lib/3.jpg"}
    store.put_files([FileRecord(**{**recs[0].__dict__, "state": "pending", "rows": 0})])
    assert [r.file_id for r in store.iter_files(state="pending")] == [recs[0].file_id]
    assert len(list(store.iter_files())) == 4  # an upsert, not a second entry
    store.forget_files([recs[0].file_id, recs[1].file_id])
    assert sorted(r.path for r in store.iter_files()) == ["/lib/2.jpg", "/lib/3.jpg"]
    assert list(store.iter_files(state="pending")) == []
    store.flush()
    assert store.count("files") == 2


def test_flush_keeps_everything(store: MilvusStore) -> None:
    store.ensure("image", SPEC)
    store.upsert_rows("image", image_rows(["/lib/a.jpg", "/lib/b.jpg"], unit(2, 9), [hexhash(1), hexhash(2)]))
    store.flush()
    assert store.count("image") == 2
    (hits,) = store.search("image", unit(2, 9)[:1], 2)
    assert hits[0].path == "/lib/a.jpg"


def test_local_features_come_back_by_row_id_and_go_with_their_rows(store: MilvusStore, backend: str) -> None:
    """Local features (``signals.image.pack_features`` text) come back by row id and with
    ``all_rows``, are replaced by an upsert and go with their rows. Lite keeps them beside its .db
    (``store.features``), not in the collection: the first touch of a Lite file reads every
    collection whole, and they were most of an image collection's bytes."""
    store.ensure("video", SPEC)
    a = frame_rows("/lib/a.mp4", unit(3, 6), hexhash(1), local=["fa0", "", "fa2"])
    b = frame_rows("/lib/b.mp4", unit(2, 7), hexhash(2), local=["fb0", "fb1"])
    store.upsert_rows("video", a)
    store.upsert_rows("video", b)
    ids = a["id"] + b["id"]
    want = {a["id"][0]: "fa0", a["id"][2]: "fa2", b["id"][0]: "fb0", b["id"][1]: "fb1"}
    assert store.local_features("video", ids) == want
    assert {r.id: r.local or None for r in store.all_rows("video", signals=("local",))} == {**dict.fromkeys(ids), **want}
    assert all(r.local is None for r in store.all_rows("video"))
    fields = {f["name"] for f in store.client.describe_collection(store.name("video"))["fields"]}
    assert ("local" in fields) == (backend == "server")
    store.upsert_rows("video", frame_rows("/lib/b.mp4", unit(2, 7), hexhash(2), local=["fb0 again", "fb1"]))
    store.delete_rows("video", [file_id("/lib/a.mp4")])
    assert store.count("video") == 2  # a Strong read: the server's query-time reads see the delete after it
    assert store.local_features("video", ids) == {b["id"][0]: "fb0 again", b["id"][1]: "fb1"}
    assert store.local_features("image", ids) == {}  # no such collection


def test_a_collection_keeps_its_local_features_where_it_was_made_with_them(fresh_store: MilvusStore, backend: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Lite: an image collection an older media_search made (the features in the collection) is
    read and written as it was, with nothing beside the .db; dropped and made again, it keeps them
    beside. Server: a collection without the field (a Lite .db made now, served by ``milvus-lite
    server``) opens, takes rows, and has no stored features (its rows are verified from files)."""
    from media_search.store.prints import side_file

    made = "collection" if backend == "lite" else "none"
    with monkeypatch.context() as m:
        m.setattr(Placement, "mode", lambda self, kind: made)
        fresh_store.ensure("image", SPEC)
    store = MilvusStore(fresh_store.uri, token=fresh_store.token, prefix=fresh_store.prefix)  # later, another process
    a = file_id("/lib/a.jpg")
    try:
        store.ensure("image", SPEC)
        store.upsert_rows("image", {**image_rows(["/lib/a.jpg"], unit(1, 3), [hexhash(1)]), "local": ["fa"]})
        assert store.count("image") == 1
        fields = {f["name"] for f in store.client.describe_collection(store.name("image"))["fields"]}
        assert ("local" in fields) == (backend == "lite")
        assert store.local_features("image", [a]) == ({a: "fa"} if backend == "lite" else {})
        if backend == "lite":
            assert not os.path.exists(side_file(store, "local"))
            store.drop("image")
            store.ensure("image", SPEC)
            store.upsert_rows("image", {**image_rows(["/lib/a.jpg"], unit(1, 3), [hexhash(1)]), "local": ["fa"]})
            fields = {f["name"] for f in store.client.describe_collection(store.name("image"))["fields"]}
            assert "local" not in fields and os.path.exists(side_file(store, "local"))
            assert store.local_features("image", [a]) == {a: "fa"}
    finally:
        store.close()


def test_an_unreadable_local_feature_file_is_started_again(fresh_store: MilvusStore, backend: str) -> None:
    """Lite: a damaged ``<db>.local.sqlite`` loses its features (its rows are then verified from
    their files), never the index: reads and writes go on, and the pHash lookup is read again from
    the collection."""
    if backend != "lite":
        pytest.skip("Lite only")
    from media_search.store.prints import side_file

    store = fresh_store
    store.ensure("image", SPEC)
    store.upsert_rows("image", {**image_rows(["/lib/a.jpg"], unit(1, 3), [hexhash(1)]), "local": ["fa"], "phash": ["0" * 16]})
    store.close()
    with open(side_file(store, "local"), "r+b") as f:
        f.write(b"not a database at all" * 100)
    again = MilvusStore.from_settings(Settings.from_env())
    try:
        assert again.local_features("image", [file_id("/lib/a.jpg")]) == {}
        assert again.count("image") == 1
        assert [n.path for n in again.near_pictures("image", [0], 4, exclude_hash=None, limit=5)] == ["/lib/a.jpg"]  # read again
        again.upsert_rows("image", {**image_rows(["/lib/a.jpg"], unit(1, 3), [hexhash(1)]), "local": ["fa2"]})
        assert again.local_features("image", [file_id("/lib/a.jpg")]) == {file_id("/lib/a.jpg"): "fa2"}
    finally:
        again.close()


def test_pictures_are_looked_up_by_phash_over_the_whole_library(store: MilvusStore, backend: str) -> None:
    """Lite keeps every picture row's pHash beside its .db (``store.hashes``): the rows within the
    asked bits of any query pHash, nearest first, the query's own bytes left out, written and
    forgotten with their rows. A server store has no lookup (None: its queries search wider)."""
    store.ensure("image", SPEC)
    paths = ["/lib/a.jpg", "/lib/b.jpg", "/lib/c.jpg", "/lib/d.jpg"]
    phashes = ["0" * 16, "0" * 15 + "7", "f" * 16, ""]  # 0, 3 and 64 bits from 0; d has none
    store.upsert_rows("image", {**image_rows(paths, unit(4, 20), [hexhash(i) for i in range(4)]), "phash": phashes})
    found = store.near_pictures("image", [0], 16, exclude_hash=None, limit=10)
    if backend == "server":
        assert found is None
        return
    assert found is not None
    assert [(n.path, n.bits, n.file_id, n.phash) for n in found] == [("/lib/a.jpg", 0, file_id("/lib/a.jpg"), "0" * 16), ("/lib/b.jpg", 3, file_id("/lib/b.jpg"), "0" * 15 + "7")]
    assert [n.path for n in store.near_pictures("image", [0], 16, exclude_hash=hexhash(0), limit=10)] == ["/lib/b.jpg"]
    assert [n.path for n in store.near_pictures("image", [0, 2**64 - 1], 2, exclude_hash=None, limit=10)] == ["/lib/a.jpg", "/lib/c.jpg"]
    assert [n.path for n in store.near_pictures("image", [0], 16, exclude_hash=None, limit=1)] == ["/lib/a.jpg"]
    store.delete_rows("image", [file_id("/lib/a.jpg")])
    store.upsert_rows("image", {**image_rows(["/lib/c.jpg"], unit(1, 21), [hexhash(2)]), "phash": ["0" * 14 + "01"]})
    assert [(n.path, n.bits) for n in store.near_pictures("image", [0], 16, exclude_hash=None, limit=10)] == [("/lib/c.jpg", 1), ("/lib/b.jpg", 3)]
    reads: list[str] = []  # another collection's rows and features leave the pictures' lookup as it was read
    file = store.local.file
    hashes = file.hashes
    file.hashes = lambda coll: reads.append(coll) or hashes(coll)  # type: ignore[method-assign]
    store.ensure("video", SPEC)
    store.upsert_rows("video", frame_rows("/lib/v.mp4", unit(2, 24), hexhash(9), phash=["0" * 16] * 2, local=["fv0", "fv1"]))
    assert [n.path for n in store.near_pictures("image", [0], 16, exclude_hash=None, limit=10)] == ["/lib/c.jpg", "/lib/b.jpg"]
    assert reads == []


def test_a_lite_index_made_before_the_phash_lookup_fills_it_once(fresh_store: MilvusStore, backend: str) -> None:
    """An index an older media_search made has no pHash rows beside it: the first lookup reads them
    from the collection, once (a later process finds them there)."""
    if backend != "lite":
        pytest.skip("Lite only: a server store has no pHash lookup")
    import sqlite3

    from media_search.store.prints import side_file

    fresh_store.ensure("image", SPEC)
    fresh_store.upsert_rows("image", {**image_rows(["/lib/a.jpg", "/lib/b.jpg"], unit(2, 22), [hexhash(1), hexhash(2)]),
                                      "phash": ["0" * 16, "f" * 16]})  # fmt: skip
    fresh_store.close()
    with sqlite3.connect(side_file(fresh_store, "local")) as db:  # as an older media_search left it
        db.execute("DROP TABLE hashes")
        db.execute("DROP TABLE filled")
    reads: list[str] = []
    for _ in range(2):  # two processes, one after the other
        again = MilvusStore.from_settings(Settings.from_env())
        all_rows = again.all_rows
        again.all_rows = lambda kind, **kw: reads.append(kind) or all_rows(kind, **kw)  # type: ignore[method-assign]
        try:
            again.ensure("image", SPEC)
            assert [n.path for n in again.near_pictures("image", [2**64 - 1], 4, exclude_hash=None, limit=5)] == ["/lib/b.jpg"]
        finally:
            again.close()
    assert reads == ["image"]


def test_vectors_of_reads_rows_by_id(store: MilvusStore) -> None:
    store.ensure("video", SPEC)
    vecs = unit(3, 23)
    rows = frame_rows("/lib/v.mp4", vecs, hexhash(3))
    store.upsert_rows("video", rows)
    got = store.vectors_of("video", [rows["id"][2], "no such row", rows["id"][0]])
    assert set(got) == {rows["id"][0], rows["id"][2]}
    np.testing.assert_allclose(got[rows["id"][2]], vecs[2], atol=1e-6)
    assert store.vectors_of("video", []) == {}


def test_all_rows_reads_rows_with_vectors_in_parts(store: MilvusStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # Parts of 2 rows: every row comes once, with its own vector and signals; ids and paths alone in one read.
    from media_search.store import milvus as milvus_module

    monkeypatch.setattr(milvus_module, "ALL_PART", 2)
    store.ensure("video", SPEC)
    vecs = unit(5, 12)
    store.upsert_rows("video", frame_rows("/lib/v.mp4", vecs, hexhash(5), phash=[f"{i:016x}" for i in range(5)]))
    reads: list[int] = []
    query_all = store.conn.query_all

    def counted(name, expr, fields, *args, **kwargs):  # type: ignore[no-untyped-def]
        got = query_all(name, expr, fields, *args, **kwargs)
        reads.append(len(got))
        return got

    monkeypatch.setattr(store.conn, "query_all", counted)
    rows = sorted(store.all_rows("video", vectors=True, signals=("phash",)), key=lambda r: r.timestamp)
    assert reads == [5, 2, 2, 1]  # the ids, then three parts
    np.testing.assert_allclose(np.array([r.vector for r in rows]), vecs, atol=1e-6)
    assert [r.phash for r in rows] == [f"{i:016x}" for i in range(5)]
    reads.clear()
    assert len(store.all_rows("video")) == 5 and reads == [5]


def test_drop_forgets_the_kind(fresh_store: MilvusStore) -> None:
    store = fresh_store
    store.ensure("image", SPEC)
    store.upsert_rows("image", image_rows(["/lib/a.jpg"], unit(1, 10), [hexhash(1)]))
    store.put_files([FileRecord(file_id("/lib/a.jpg"), "/lib/a.jpg", "image", hexhash(1), 1, 1.0)])
    store.drop("image")
    assert not store.has("image") and store.count("image") == 0
    assert list(store.iter_files()) == []
    store.ensure("image", OTHER)  # a rebuild may use another model
    assert store.model_of("image") == OTHER


# --- the escape rule, proven on the real backends --------------------------------------------


def test_quote_round_trips_an_odd_path(store: MilvusStore) -> None:
    """A filter built by ``quote()`` on a path finds exactly that row (the product itself
    never filters on paths: see test_names.py, which records every filter it sends)."""
    store.ensure("image", SPEC)
    paths = [ODD_PATH, ODD_PATH.replace("\\", "/"), ODD_PATH.replace('"', "'"), "/lib/plain.jpg"]
    store.upsert_rows("image", image_rows(paths, unit(4, 11), [hexhash(i) for i in range(4)]))
    store.put_files([FileRecord(file_id(p), p, "image", hexhash(i), 1, 1.0) for i, p in enumerate(paths)])
    for i, path in enumerate(paths):
        for kind in ("image", "files"):
            rows = store.client.query(
                store.name(kind), filter=f"path == {quote(path)}", output_fields=["path", "content_hash"],
                consistency_level="Strong",
            )
            assert [r["path"] for r in rows] == [path], (kind, path)
            assert rows[0]["content_hash"] == hexhash(i)
    assert store.get_files([file_id(ODD_PATH)])[file_id(ODD_PATH)].path == ODD_PATH


# --- one process per Lite file ------------------------------------------------------------------

_HOLDER = textwrap.dedent(
    """
    import sys
    from media_search.store.milvus import MilvusStore
    from media_search.embed.spec import ModelSpec
    store = MilvusStore(sys.argv[1], prefix=sys.argv[2])
    store.ensure("image", ModelSpec("resnet50", "random:0", 2048, "COSINE", "v1:test"))
    print("ready", store.count("image"), flush=True)
    sys.stdin.readline()  # hold the store until the test is done
    """
)


def test_a_second_process(store: MilvusStore, store_uri: str, backend: str, cli_env: dict) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, store_uri, store.prefix],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().split() == ["ready", "0"], holder.stderr.read() if holder.stderr else ""
        if backend == "lite":
            # Milvus Lite: one process per .db; a second one gets a clear error.
            with pytest.raises(StoreLockedError, match="in use by another process"):
                store.count("image")
            env = {**cli_env, "MEDIA_SEARCH_MILVUS_URI": store_uri}
            out = subprocess.run(
                ["media-search", "stats"], env=env, capture_output=True, text=True, timeout=120
            )
            assert out.returncode == 1
            lines = out.stderr.strip().splitlines()
            assert len(lines) == 1 and "in use by another process" in lines[0], out.stderr
            assert "Traceback" not in out.stderr
        else:
            # A Milvus server serves many processes at once.
            assert store.has("image") and store.count("image") == 0
    finally:
        if holder.stdin:
            holder.stdin.close()
        holder.wait(timeout=60)
    assert holder.returncode == 0
    if backend == "lite":  # the lock goes with the process that held it
        assert store.count("image") == 0


def test_threads_that_open_the_store_at_once_share_one_connection(store_uri: str) -> None:
    """The first calls of a program's threads that share a store may open it at the
    same moment: one opens it, the others use it. On Lite, a second open in this process found the
    file locked (3 of 4 threads got ``StoreLockedError`` before ``Connection`` took a lock)."""
    import threading

    s = MilvusStore.from_settings(Settings.from_env())
    start, errors, clients = threading.Barrier(4), [], []

    def first_call() -> None:
        start.wait()
        try:
            clients.append(s.client)
            s.has("image")
        except Exception as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=first_call) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert errors == [] and len({id(c) for c in clients}) == 1
    finally:
        s.close()
