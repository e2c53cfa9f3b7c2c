"""Copy detection end to end (issue 9): edited copies ranked first with ``copy=True``, on Milvus
Lite and on the real Milvus server, with random weights; unrelated queries get no copy."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image, ImageDraw, ImageEnhance

from media_search import Library
from test_copydetect import SR, _tune  # generated tunes (without their noise here)

PHOTOS = sorted((Path(__file__).resolve().parents[1] / "sample_media" / "photos").glob("*.jpg"))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("copy_media")
    lib, q = root / "library", root / "queries"
    lib.mkdir()
    q.mkdir()
    for p in PHOTOS[:8]:
        shutil.copy(p, lib / p.name)
    for i in range(3):
        sf.write(lib / f"tune_{i}.wav", _tune(i, noise=0.0), SR)
    photo = Image.open(PHOTOS[2]).convert("RGB")  # camera.jpg
    w, h = photo.size
    photo.crop((int(w * 0.15), int(h * 0.1), int(w * 0.85), int(h * 0.8))).rotate(10, resample=Image.Resampling.BICUBIC).save(q / "crop_rot.jpg", quality=40)
    Image.fromarray(np.asarray(Image.open(PHOTOS[5]).convert("RGB"))[:, ::-1]).save(q / "mirror.jpg")
    ImageEnhance.Brightness(Image.open(PHOTOS[0]).convert("RGB")).enhance(1.5).convert("L").save(q / "bright_gray.png")
    shot = Image.new("RGB", (1100, 700), (236, 236, 236))
    d = ImageDraw.Draw(shot)
    d.rectangle([0, 0, 1100, 32], fill=(205, 205, 210))
    d.rectangle([0, 32, 200, 700], fill=(225, 225, 230))
    shot.paste(Image.open(PHOTOS[6]).convert("RGB").resize((600, 400)), (320, 150))
    shot.save(q / "screenshot.png")
    Image.open(PHOTOS[9]).convert("RGB").save(q / "unrelated.jpg")  # not in the library
    x = _tune(1, noise=0.0)[int(2.0 * SR) : int(3.5 * SR)]
    noisy = x + np.random.default_rng(0).normal(0, np.sqrt(np.mean(x**2) / 10), len(x)).astype(np.float32)
    sf.write(q / "snippet_noisy.wav", noisy, SR)
    sf.write(q / "unrelated.wav", _tune(7, 3.0, noise=0.0), SR)
    return {"lib": lib, "q": q}


@pytest.fixture(scope="module", params=["lite", pytest.param("server", marks=pytest.mark.server)])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One index per backend for the whole module (indexing is the slow part)."""
    if request.param == "lite":
        return {"MEDIA_SEARCH_MILVUS_URI": str(tmp_path_factory.mktemp("copy_index") / "index.db")}
    return {"MEDIA_SEARCH_MILVUS_URI": request.getfixturevalue("milvus_server_uri"), "MEDIA_SEARCH_PREFIX": f"c{uuid.uuid4().hex[:12]}_"}


@pytest.fixture(scope="module")
def indexed(backend: dict[str, str], media: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDIA_SEARCH_HOME", str(tmp_path_factory.mktemp("home")))
        for name, value in backend.items():
            mp.setenv(name, value)
        lib = Library(image_weights="random", audio_weights="random", device="cpu")
        try:
            report = lib.index([media["lib"]])
            assert not report.failed
            yield lib
        finally:
            lib.close()


@pytest.mark.parametrize(
    "query, original",
    [("crop_rot.jpg", PHOTOS[2].name), ("mirror.jpg", PHOTOS[5].name), ("bright_gray.png", PHOTOS[0].name), ("screenshot.png", PHOTOS[6].name)],
)
def test_edited_picture_is_first_and_a_copy(indexed: Library, media: dict[str, Path], query: str, original: str) -> None:
    res = indexed.search(media["q"] / query, k=5, kinds=["image"])
    top = res.results[0]
    assert Path(top.path).name == original
    assert top.copy and 0.5 <= top.copy_confidence <= 1.0
    assert not any(m.copy for m in res.results[1:])
    assert res.copy_found and len(res.results) == 5


@pytest.mark.parametrize("query", ["crop_rot.jpg", "mirror.jpg", "bright_gray.png", "screenshot.png", "unrelated.jpg"])
def test_the_phash_lookup_gives_what_the_wide_search_gave(indexed: Library, media: dict[str, Path], query: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """An image query on Lite asks the vector search for a row a file and looks the pHashes up over
    the whole library (``store.hashes``); a store without the lookup searches 4 rows a file and
    compares their pHashes. Both give the same results, scores and verdicts."""
    from media_search.store.milvus import MilvusStore

    looked_up = indexed.search(media["q"] / query, k=8, kinds=["image"]).results
    monkeypatch.setattr(MilvusStore, "near_pictures", lambda self, *a, **kw: None)
    wide = indexed.search(media["q"] / query, k=8, kinds=["image"]).results
    assert [(m.path, m.copy, m.copy_confidence) for m in looked_up] == [(m.path, m.copy, m.copy_confidence) for m in wide]
    np.testing.assert_allclose([m.score for m in looked_up], [m.score for m in wide], atol=1e-5)


def test_a_copy_the_vector_search_misses_is_found_by_its_phash(indexed: Library, backend: dict[str, str], media: dict[str, Path],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """In a large library an edited copy can rank past the pictures the vector search returns (a
    brightness change, with random weights). Here the search is cut to its first picture a view:
    the copy still comes first, flagged, with the score the search gives it."""
    if "MEDIA_SEARCH_PREFIX" in backend:
        pytest.skip("a server store has no pHash lookup: its queries search 4 rows a file")
    from media_search.store.milvus import MilvusStore

    query = media["q"] / "bright_gray.png"
    full = {m.path: m.score for m in indexed.search(query, k=8, kinds=["image"]).results}
    search = MilvusStore.search
    monkeypatch.setattr(MilvusStore, "search", lambda self, kind, vecs, limit, **kw: [
        [h for h in hits if Path(h.path).name != PHOTOS[0].name][:1] for hits in search(self, kind, vecs, limit, **kw)])  # fmt: skip
    res = indexed.search(query, k=8, kinds=["image"]).results
    assert Path(res[0].path).name == PHOTOS[0].name and res[0].copy
    assert res[0].score == pytest.approx(full[res[0].path], abs=1e-5)


def test_unrelated_picture_gives_no_copy(indexed: Library, media: dict[str, Path]) -> None:
    res = indexed.search(media["q"] / "unrelated.jpg", k=5, kinds=["image"])
    assert len(res.results) == 5
    assert not res.copy_found and not any(m.copy for m in res.results)


def test_noisy_snippet_is_first_with_its_offset(indexed: Library, media: dict[str, Path]) -> None:
    res = indexed.search(media["q"] / "snippet_noisy.wav", k=3, kinds=["audio"])
    top = res.results[0]
    assert Path(top.path).name == "tune_1.wav" and top.copy
    assert abs(top.timestamp - 2.0) < 0.15
    assert not any(m.copy for m in res.results[1:])
    other = indexed.search(media["q"] / "unrelated.wav", k=3, kinds=["audio"])
    assert not other.copy_found


@pytest.mark.parametrize("query", ["mirror.jpg", "unrelated.jpg", "snippet_noisy.wav", "unrelated.wav"])
def test_k_changes_how_many_results_never_which_come_first(indexed: Library, media: dict[str, Path], query: str) -> None:
    """Every kind the query searches by default (images and videos, sounds and soundtracks), with
    copy detection on: a larger k only adds results after those of a smaller one."""
    runs = {k: indexed.search(media["q"] / query, k=k).results for k in (3, 10, 50)}
    assert len(runs[3]) == 3
    assert runs[10][:3] == runs[3] and runs[50][:10] == runs[10]


def test_merge_keeps_each_kind_in_its_own_order() -> None:
    from media_search.query.rank import merge
    from media_search.types import Match

    copy = Match("v.mp4", "video", 0.2, 1.0, 0.0, copy=True, copy_confidence=0.9)
    images = [Match("a.jpg", "image", 0.9), Match("c.jpg", "image", 0.95)]  # its own order, not by score
    videos = [copy, Match("w.mp4", "video", 0.92)]
    assert [m.path for m in merge([images, videos])] == ["v.mp4", "w.mp4", "a.jpg", "c.jpg"]


def test_candidates_of_equal_score_are_checked_in_the_same_order_whatever_order_they_come_in() -> None:
    """The store returns rows of equal score in no fixed order: two processes checked different
    candidates of one query (``VERIFY_TOP`` of them), and flagged different files. Ties go by path."""
    from media_search.query.rank import VERIFY_TOP, Candidate, PictureQuery, rerank_pictures
    from media_search.signals import image as fi
    from media_search.types import Match

    rng = np.random.default_rng(3)
    picture = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    query = PictureQuery(None, picture, picture)
    packed = fi.pack_features(fi.features(picture))
    cands = [Candidate(Match(f"lib/{i:02d}.jpg", "image", 0.5), None, f"r{i}") for i in range(VERIFY_TOP + 4)]
    checked: list[list[str]] = []

    def stored(chosen: list[Candidate]) -> list[str]:
        checked.append([c.match.path for c in chosen])
        return [packed] * len(chosen)

    first = rerank_pictures(query, cands, stored)
    again = rerank_pictures(query, [cands[i] for i in rng.permutation(len(cands))], stored)
    assert checked[0] == checked[1] == [f"lib/{i:02d}.jpg" for i in range(VERIFY_TOP)]
    assert first == again


def test_cli_json_carries_copy_fields(indexed: Library, backend: dict[str, str], media: dict[str, Path], cli_env: dict[str, str]) -> None:
    indexed.close()  # Lite: one process per .db (the library reopens its store when next used)
    out = subprocess.run(
        ["python", "-m", "media_search", "query", str(media["q"] / "mirror.jpg"), "-k", "3", "--kind", "image", "--json"],
        capture_output=True, text=True, env={**cli_env, **backend}, check=True,
    )  # fmt: skip
    data = json.loads(out.stdout)
    first = data["results"][0]
    assert set(first) >= {"path", "kind", "score", "timestamp", "query_timestamp", "copy", "copy_confidence"}
    assert first["copy"] is True and Path(first["path"]).name == PHOTOS[5].name


@pytest.mark.parametrize("with_picture", [False, True])
def test_a_still_scene_shows_its_earliest_moment_whatever_order_its_keyframes_come_in(monkeypatch: pytest.MonkeyPatch, with_picture: bool) -> None:
    """A video's keyframes of one still scene have equal scores (and pHashes); the store returns them
    in no fixed order, so the moment an image query found it at changed from run to run."""
    from types import SimpleNamespace

    from media_search.query import search as search_mod
    from media_search.query.rank import PictureQuery
    from media_search.store.records import Hit

    picture = np.random.default_rng(5).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    query = PictureQuery(None, picture, picture) if with_picture else None
    phash = f"{query.hashes[0]:016x}" if query is not None else None  # pHash-sure: no local features read
    hits = [Hit("f1", "still.mp4", "h1", 0.8, timestamp=t, phash=phash, id=f"r{t}") for t in (12.0, 3.0, 7.5)]
    hits.append(Hit("f1", "still.mp4", "h1", 0.5, timestamp=1.0, phash="0" * 16, id="r1"))  # another scene
    store = SimpleNamespace(local_features=lambda kind, ids: {})
    lib = SimpleNamespace(store=store)
    found = []
    for order in ([0, 1, 2, 3], [2, 3, 0, 1], [3, 1, 2, 0]):
        monkeypatch.setattr(search_mod, "candidates", lambda *a, order=order, **kw: {"f1": [hits[i] for i in order]})
        ranked = search_mod._best_per_file(lib, "video", np.zeros((1, 4), np.float32), 3, "q", result_kind="video", picture=query)()  # type: ignore[arg-type]
        found.append((ranked[0].timestamp, ranked[0].score, ranked[0].copy))
    assert found == [(3.0, 0.8, with_picture)] * 3
