"""The landmark hash index (``store.prints``, ``signals.print_index``): an edited copy is first
whatever the embeddings say and whatever ``k``; unrelated sounds are never copies; the index
survives restarts, a lost side file and a killed indexing run; Lite and the server alike."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from media_search import Library
from media_search.query import sounds as query_mod
from test_copydetect import SR, _tune  # generated tunes


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("print_media")
    lib, q = root / "library", root / "queries"
    lib.mkdir()
    q.mkdir()
    for i in range(6):
        sf.write(lib / f"tune_{i}.wav", _tune(i, 6.0, noise=0.0), SR)
    x = _tune(3, 6.0, noise=0.0)[int(1.5 * SR) : int(4.0 * SR)]
    sf.write(q / "quiet_copy.wav", (x * 10 ** (-9 / 20)).astype(np.float32), SR)  # -9 dB
    sf.write(q / "unrelated.wav", _tune(40, 3.0, noise=0.0), SR)
    if shutil.which("espeak-ng"):  # speech: one voice in the library, another sentence by it as a query
        for name, text in SPEECH.items():
            subprocess.run(["espeak-ng", "-v", "en", "-s", "150", "-w", str((q if name == "query" else lib) / f"speech_{name}.wav"), text], check=True)
    return {"lib": lib, "q": q}


#: Sentences spoken by one espeak-ng voice: the same voice, pitch and phonemes, no shared word (espeak
#: says a word alike wherever it stands: a shared word would be a shared recording).
SPEECH = {
    "0": "The quick brown fox jumps over the lazy dog near the river bank.",
    "1": "Seven silver spoons were sold at the market on a rainy Sunday morning.",
    "query": "Children build castles of yellow sand while their grandparents read newspapers.",
}


@pytest.fixture(scope="module", params=["lite", pytest.param("server", marks=pytest.mark.server)])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = {"MEDIA_SEARCH_HOME": str(tmp_path_factory.mktemp("home")),
           "MEDIA_SEARCH_PRINTS_DIR": str(tmp_path_factory.mktemp("prints"))}  # fmt: skip
    if request.param == "lite":
        return {**env, "MEDIA_SEARCH_MILVUS_URI": str(tmp_path_factory.mktemp("print_index") / "index.db")}
    return {**env, "MEDIA_SEARCH_MILVUS_URI": request.getfixturevalue("milvus_server_uri"), "MEDIA_SEARCH_PREFIX": f"p{uuid.uuid4().hex[:12]}_"}


@pytest.fixture(scope="module")
def indexed(backend: dict[str, str], media: dict[str, Path]):  # noqa: ANN201
    with pytest.MonkeyPatch.context() as mp:
        for name, value in backend.items():
            mp.setenv(name, value)
        lib = Library(image_weights="random", audio_weights="random", device="cpu")
        try:
            assert not lib.index([media["lib"]]).failed
            yield lib
        finally:
            lib.close()


@pytest.fixture
def embeddings_rank_source_last(monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedding shortlist never holds tune_3 (as random Cnn14 weights may well do)."""
    real = query_mod.shortlist

    def shortlist(groups, pool):  # noqa: ANN001, ANN202
        return [f for f in real(groups, pool) if not any(h.path.endswith("tune_3.wav") for h in groups[f])]

    monkeypatch.setattr(query_mod, "shortlist", shortlist)


@pytest.mark.usefixtures("embeddings_rank_source_last")
@pytest.mark.parametrize("k", [1, 3, 10, 50])
def test_copy_is_first_for_any_k_wherever_the_embeddings_rank_it(indexed: Library, media: dict[str, Path], k: int) -> None:
    res = indexed.search(media["q"] / "quiet_copy.wav", k=k, kinds=["audio"])
    top = res.results[0]
    assert Path(top.path).name == "tune_3.wav" and top.copy
    assert abs(top.timestamp - 1.5) < 0.15
    assert not any(m.copy for m in res.results[1:])
    assert len(res.results) == min(k, len(list(media["lib"].iterdir())))


@pytest.mark.parametrize("k", [1, 3, 10])
def test_unrelated_sound_is_never_a_copy(indexed: Library, media: dict[str, Path], k: int) -> None:
    res = indexed.search(media["q"] / "unrelated.wav", k=k, kinds=["audio"])
    assert res.results and not res.copy_found and not any(m.copy for m in res.results)


@pytest.mark.parametrize("query", ["unrelated.wav", "quiet_copy.wav"])
def test_first_result_does_not_depend_on_k(indexed: Library, media: dict[str, Path], monkeypatch: pytest.MonkeyPatch, query: str) -> None:
    """Not only copies: whatever comes first at k = 1 comes first at k = 50, even with an embedding
    pool (``SOUND_POOL``) smaller than the library, where a wider pool could bring a better-scored file."""
    monkeypatch.setattr(query_mod, "SOUND_POOL", 2)
    firsts = {k: indexed.search(media["q"] / query, k=k, kinds=["audio"]).results for k in (1, 2, 3, 10, 50)}
    assert len({r[0].path for r in firsts.values()}) == 1, {k: r[0].path for k, r in firsts.items()}
    assert [m.path for m in firsts[3]] == [m.path for m in firsts[50][:3]]
    assert len(firsts[50]) == len(list(media["lib"].iterdir()))


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng speaks the test sentences")
@pytest.mark.parametrize("k", [3, 50])
def test_same_voice_other_sentence_is_not_a_copy(indexed: Library, media: dict[str, Path], k: int) -> None:
    """A hard false copy: the library's own voice, pitch and speed, saying other words."""
    res = indexed.search(media["q"] / "speech_query.wav", k=k, kinds=["audio"])
    assert res.results and not res.copy_found and not any(m.copy for m in res.results), res.results


def test_a_kept_lookup_is_not_reused_after_another_process_writes(indexed: Library, media: dict[str, Path]) -> None:
    """The last lookup's postings are kept for the query's other source; a commit by another
    connection (an indexer sharing a server's index) in between makes the next lookup read again."""
    import sqlite3

    from media_search.decode.audio import decode_audio
    from media_search.signals.audio import SCALES, landmarks
    from media_search.signals.print_index import print_index

    idx = print_index(indexed.store)
    q = landmarks(decode_audio(media["q"] / "quiet_copy.wav").samples, 32000)
    hashes = np.concatenate([q.hashes(s) for s in SCALES])
    before = idx.lookup(hashes, source="audio")
    assert len(before[0]) and idx._last is not None  # small: kept
    assert [len(x) for x in idx.lookup(hashes, source="video")] == [0, 0, 0]  # no video here
    other = sqlite3.connect(idx.path, isolation_level=None)
    try:
        fid = other.execute("SELECT fid FROM files WHERE source = 'audio' LIMIT 1").fetchone()[0]
        other.execute("INSERT OR IGNORE INTO postings VALUES (?, ?, ?)", (int(hashes[0]), fid, 123456))
        after = idx.lookup(hashes, source="audio")
        assert len(after[0]) == len(before[0]) + 1
    finally:
        other.execute("DELETE FROM postings WHERE hash = ? AND fid = ? AND t = 123456", (int(hashes[0]), fid))
        other.close()


def test_index_survives_restart_loss_and_a_killed_run(indexed: Library, media: dict[str, Path]) -> None:
    from media_search.signals.print_index import print_index

    idx = print_index(indexed.store)
    path = idx.path
    assert os.path.exists(path) and idx.n_postings() > 0
    indexed.close()  # a restart: the side file is reused as it is
    assert Path(indexed.search(media["q"] / "quiet_copy.wav", k=3, kinds=["audio"]).results[0].path).name == "tune_3.wav"
    n = print_index(indexed.store).n_postings()
    indexed.close()
    os.remove(path)  # lost: rebuilt from the stored fingerprints
    assert Path(indexed.search(media["q"] / "quiet_copy.wav", k=3, kinds=["audio"]).results[0].path).name == "tune_3.wav"
    assert print_index(indexed.store).n_postings() == n
    # A run killed while rewriting tune_3: its manifest entry stays pending, so the index drops it.
    store = indexed.store
    rec = next(r for r in store.iter_files() if r.path.endswith("tune_3.wav"))
    store.put_files([rec.__class__(**{**rec.__dict__, "state": "pending"})])
    try:
        idx = print_index(store)
        assert not idx.db.execute("SELECT count(*) FROM files WHERE file_id=?", (rec.file_id,)).fetchone()[0]
        assert idx.n_postings() < n  # its postings went with it (found by the hashes of its landmarks)
    finally:
        store.put_files([rec])
    assert print_index(store).n_postings() == n


def test_a_long_query_is_voted_on_in_blocks_with_the_counts_of_the_whole(indexed: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    """``vote`` takes a long query a block of query time at a time (flat memory); the votes per file
    are those of the whole query in one pass, and a copy inside the long query still comes first."""
    from media_search.signals import audio as fa
    from media_search.signals import print_index as pi

    # 40 s: unrelated tunes around a copy of tune_3, so the copy spans two 12 s blocks
    x = np.concatenate([_tune(41, 14.0, noise=0.0), _tune(3, 6.0, noise=0.0), _tune(42, 20.0, noise=0.0)])
    query = fa.landmarks(x, SR)
    idx = pi.print_index(indexed.store)
    monkeypatch.setattr(pi, "VOTE_BLOCK", 10**9)
    whole = pi.scores(idx, query)
    monkeypatch.setattr(pi, "VOTE_BLOCK", 750)  # 12 s
    assert int(query.t1[-1]) > 3 * 750
    assert pi.scores(idx, query) == whole
    shuffled = np.random.default_rng(0).permutation(len(query))  # any order of pairs
    assert pi.scores(idx, fa.Pairs(*(getattr(query, k)[shuffled] for k in ("f1", "f2", "dt", "t1")))) == whole
    first = idx.file_ids(pi.vote(idx, query)[:1])
    assert [p for p in idx.db.execute("SELECT path FROM files WHERE file_id=?", (next(iter(first.values())),)).fetchone()][0].endswith("tune_3.wav")
    assert whole[pi.vote(idx, query)[0]] >= 3 * pi.MIN_HITS


def test_vote_keeps_the_most_voted_bins_past_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from media_search.signals import print_index as pi

    monkeypatch.setattr(pi, "KEEP_BINS", 3)
    a = (np.array([1, 2, 3, 4], np.int64), np.array([5, 1, 1, 2], np.int64))
    b = (np.array([2, 4, 9], np.int64), np.array([1, 1, 7], np.int64))
    keys, total = pi._merge([a, b], prune=True)
    assert keys.tolist() == [1, 4, 9] and total.tolist() == [5, 3, 7]
    keys, total = pi._merge([a, b], prune=False)
    assert keys.tolist() == [1, 2, 3, 4, 9] and total.tolist() == [5, 2, 1, 3, 7]


def test_the_query_own_file_is_not_a_fingerprint_candidate(indexed: Library, media: dict[str, Path]) -> None:
    """A query that is itself in the library finds itself first by fingerprint; its rows are not
    fetched only to be left out (for an 8-hour recording that fetch cost 500 MB)."""
    from media_search.signals import audio as fa
    from media_search.signals import print_index as pi

    store = indexed.store
    own = next(r for r in store.iter_files() if r.path.endswith("tune_3.wav"))
    x = _tune(3, 6.0, noise=0.0)
    found = pi.candidates(store, fa.landmarks(x, SR))
    assert found and found[0] == own.file_id
    assert own.file_id not in pi.candidates(store, fa.landmarks(x, SR), exclude=own.content_hash)


def _fetches(monkeypatch: pytest.MonkeyPatch, store) -> list[tuple[tuple[str, ...], object]]:  # noqa: ANN001
    """Each audio ``fetch_rows`` call from here on: (its file ids, its ``copy_fields``)."""
    calls: list[tuple[tuple[str, ...], object]] = []
    real = type(store).fetch_rows

    def fetch_rows(self, kind, file_ids, **kw):  # noqa: ANN001, ANN202
        if kind == "audio":
            calls.append((tuple(file_ids), kw.get("copy_fields", False)))
        return real(self, kind, file_ids, **kw)

    monkeypatch.setattr(type(store), "fetch_rows", fetch_rows)
    return calls


def test_a_query_reads_its_candidates_landmarks_from_the_index(indexed: Library, media: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The index holds each file's landmarks as its rows do; a warm query takes them from there and
    reads no ``fp`` field from Milvus (85 ms of a 570 ms query at 10k windows on Lite)."""
    from media_search.signals.print_index import print_index

    indexed.search(media["q"] / "quiet_copy.wav", k=3, kinds=["audio"])  # synced
    store = indexed.store
    rows = store.fetch_rows("audio", [r.file_id for r in store.iter_files() if r.kind == "audio"], vectors=False, copy_fields=True)
    kept = print_index(store).prints({r.file_id for r in rows})
    assert len(kept) == len(list(media["lib"].iterdir()))
    for f, (content_hash, packed) in kept.items():
        mine = sorted((r for r in rows if r.file_id == f), key=lambda r: r.timestamp)
        assert content_hash == mine[0].content_hash
        assert np.array_equal(packed, np.concatenate([r.fp for r in mine]))  # in time order
    calls = _fetches(monkeypatch, store)
    res = indexed.search(media["q"] / "quiet_copy.wav", k=3, kinds=["audio"])
    assert Path(res.results[0].path).name == "tune_3.wav" and res.results[0].copy
    assert not any(copy_fields for _, copy_fields in calls), calls
    # beside a Lite .db the rows themselves come from the index too (``test_the_index_keeps_..._rows``)
    assert (not calls) == store.is_lite, calls


def test_the_index_keeps_each_files_window_rows_beside_a_lite_db(indexed: Library, media: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Beside a Lite .db the index keeps every file's window rows as the store holds them, vectors
    included, and a query ranks on them without reading a row from Milvus (Lite copies every vector
    of the collection for each read: 80-300 ms of a 450 ms audio query at 9,800 windows). A
    server's index keeps none (other processes write to the server). Another audio model makes
    every entry read again: the vectors are the model's."""
    from media_search.query.sounds import sound_rows
    from media_search.signals.print_index import print_index

    store = indexed.store
    idx = print_index(store)
    files = [r.file_id for r in store.iter_files() if r.kind == "audio"]
    kept = idx.windows(files)
    if not store.is_lite:
        assert kept == {} and not idx.keeps_windows
        return
    stored = store.fetch_rows("audio", files)
    assert sorted(kept) == sorted(files) and sum(map(len, kept.values())) == len(stored) > len(files)
    for r in stored:
        k = next(x for x in kept[r.file_id] if x.id == r.id)
        assert (k.path, k.content_hash, k.timestamp, k.duration, k.source) == (r.path, r.content_hash, r.timestamp, r.duration, r.source or "audio")
        assert k.vector.dtype == np.float32 and np.array_equal(k.vector, r.vector)
    for rows in kept.values():
        assert [x.timestamp for x in rows] == sorted(x.timestamp for x in rows)
    calls = _fetches(monkeypatch, store)
    assert {r.id for r in sound_rows(store, files)} == {r.id for r in stored} and not calls
    # a file the index does not hold is read from the store
    one = files[0]
    idx.db.execute("UPDATE files SET windows = NULL WHERE file_id = ?", (one,))
    try:
        assert {r.id for r in sound_rows(store, files)} == {r.id for r in stored}
        assert calls == [((one,), False)]
    finally:
        idx.sync(force=True)
    # another model: the stamps differ, every file is read again
    from media_search.embed.spec import ModelSpec

    monkeypatch.setattr(type(store), "model_of", lambda self, kind: ModelSpec("other", "random:7", 2048))
    calls.clear()
    idx.sync(force=True)
    assert sorted(f for c, _ in calls for f in c) == sorted({r.file_id for r in store.iter_files() if r.kind in ("audio", "video")})
    assert all(stamp.endswith(":" + idx._model()) for (stamp,) in idx.db.execute("SELECT stamp FROM files"))
    assert {r.id for rows in idx.windows(files).values() for r in rows} == {r.id for r in stored}
    monkeypatch.undo()
    idx.sync(force=True)  # back to the store's own model


def test_a_file_the_index_holds_at_another_content_hash_is_read_from_the_store(indexed: Library, media: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """What the index holds for a file counts only at the content hash its rows have now (another
    process may have indexed it again since this one synced): otherwise its ``fp`` is read from Milvus."""
    from media_search.signals.print_index import print_index
    from media_search.store import prints as prints_mod

    # A server's index re-reads the manifest every SERVER_RECHECK_S: held off here, so that the
    # stale entry is met by the query (as between two rechecks), not repaired before it.
    monkeypatch.setattr(prints_mod, "SERVER_RECHECK_S", 3600.0)
    indexed.search(media["q"] / "quiet_copy.wav", k=3, kinds=["audio"])  # synced
    store = indexed.store
    idx = print_index(store)
    own = next(r for r in store.iter_files() if r.path.endswith("tune_3.wav"))
    # (beside a Lite .db the entry holds the file's rows too, read with its landmarks: a stale
    # entry is stale in both, and the rows then come from the store with its true content hash)
    idx.db.execute("UPDATE files SET stamp = 'other' || substr(stamp, instr(stamp, ':')), prints = x'', windows = NULL WHERE file_id = ?", (own.file_id,))
    try:
        calls = _fetches(monkeypatch, store)
        res = indexed.search(media["q"] / "quiet_copy.wav", k=3, kinds=["audio"])
        assert Path(res.results[0].path).name == "tune_3.wav" and res.results[0].copy
        assert [c for c in calls if c[1]] == [((own.file_id,), ("fp",))]
    finally:
        idx.sync(force=True)  # the stamp differs from the manifest's: the file is read again
    assert idx.prints([own.file_id])[own.file_id][0] == own.content_hash


def test_an_index_of_the_previous_layout_is_made_again(indexed: Library, media: dict[str, Path]) -> None:
    """An index written by the release before (no ``files.prints``) is dropped and rebuilt from
    the stored fingerprints, not read with a column missing."""
    import sqlite3

    from media_search.signals import audio as fa
    from media_search.signals.print_index import print_index

    idx = print_index(indexed.store)
    path, n = idx.path, idx.n_postings()
    indexed.close()
    os.remove(path)
    old = sqlite3.connect(path, isolation_level=None)
    old.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
        "CREATE TABLE files (fid INTEGER PRIMARY KEY, file_id TEXT UNIQUE, path TEXT, source TEXT, stamp TEXT, hashes BLOB);"
        "CREATE TABLE postings (hash INTEGER, fid INTEGER, t INTEGER, PRIMARY KEY (hash, fid, t)) WITHOUT ROWID;"
    )
    old.execute("INSERT INTO meta VALUES ('version', ?)", (fa.FP_VERSION,))
    old.close()
    res = indexed.search(media["q"] / "quiet_copy.wav", k=3, kinds=["audio"])
    assert Path(res.results[0].path).name == "tune_3.wav" and res.results[0].copy
    idx = print_index(indexed.store)
    assert idx.n_postings() == n
    assert "prints" in [c[1] for c in idx.db.execute("PRAGMA table_info(files)")]


def test_threads_that_look_up_at_once_get_the_answers_of_one_at_a_time(indexed: Library, media: dict[str, Path]) -> None:
    """The page runs two searches at once on one store, so one index: each lookup's transaction and
    temp table are the connection's, and two at once failed ("cannot start a transaction within a
    transaction") or could read each other's hashes."""
    import threading

    from media_search.signals import audio as fa
    from media_search.signals.print_index import print_index

    idx = print_index(indexed.store)
    queries = [fa.landmarks(_tune(i, 3.0, noise=0.0), SR) for i in range(4)]
    hashes = [np.concatenate([q.hashes(s) for s in fa.SCALES]) for q in queries]
    alone = [[x.tolist() for x in idx.lookup(h)] for h in hashes]
    assert all(len(a[0]) for a in alone)
    wrong: list[object] = []

    def work(start: int) -> None:
        for n in range(60):
            i = (start + n) % len(hashes)
            try:
                got = [x.tolist() for x in idx.lookup(hashes[i], source="audio" if n % 2 else None)]
                if got != alone[i]:
                    wrong.append((i, [len(x) for x in got]))
            except Exception as e:  # noqa: BLE001 - what went wrong is the assertion's message
                wrong.append(repr(e))

    threads = [threading.Thread(target=work, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong, wrong[:3]
