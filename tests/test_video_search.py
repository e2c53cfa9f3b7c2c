"""Video search end to end (issue 3): keyframes in, whole videos ranked, timestamps out.

Generated videos: a video of four distinct scenes (pans over real photos with hard
cuts), its re-encode at another size, its trimmed middle part, a sped-up copy, a
still frame, and two videos that share a black intro but nothing else. Run on
Milvus Lite and on the real Milvus server, through ``Library``/``find_similar``
and the real ``media-search`` command.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import BACKENDS, backend_store
from media_search import Library

PHOTOS = sorted((Path(__file__).resolve().parents[1] / "sample_media" / "photos").glob("*.jpg"))
FPS = 10
SIZE = (320, 240)

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg makes the test videos")


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-y", "-v", "error", *args], check=True)


def pan_video(out: Path, photos: list[Path], *, seconds_each: float = 3.0, black_intro: float = 0.0) -> None:
    """A video panning and zooming over each photo in turn (a hard cut between photos)."""
    w_out, h_out = SIZE
    frames = [np.zeros((h_out, w_out, 3), np.uint8)] * int(black_intro * FPS)
    for photo in photos:
        im = Image.open(photo).convert("RGB")
        w, h = im.size
        n = int(seconds_each * FPS)
        for i in range(n):
            z = 1.0 - 0.25 * i / n
            cw, ch = int(w * z), int(h * z)
            x, y = int((w - cw) * i / n), int((h - ch) * 0.5)
            frames.append(np.asarray(im.crop((x, y, x + cw, y + ch)).resize(SIZE)))
    proc = subprocess.Popen(
        ["ffmpeg", "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w_out}x{h_out}",
         "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out)],
        stdin=subprocess.PIPE,
    )  # fmt: skip
    proc.communicate(np.stack(frames).tobytes())
    assert proc.returncode == 0


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    lib, queries = root / "library", root / "queries"
    lib.mkdir()
    queries.mkdir()
    v = {
        "scenes": lib / "scenes.mp4",  # 12 s: cuts at 3, 6, 9 s
        "other1": lib / "other1.mp4",
        "other2": lib / "other2.mp4",
        "intro_a": lib / "intro_a.mp4",  # 2 s of black, then two photos
        "intro_b": queries / "intro_b.mp4",  # the same black intro, unrelated photos
    }
    pan_video(v["scenes"], PHOTOS[0:4])
    pan_video(v["other1"], PHOTOS[4:7])
    pan_video(v["other2"], PHOTOS[7:10])
    pan_video(v["intro_a"], PHOTOS[10:12], black_intro=2)
    pan_video(v["intro_b"], [PHOTOS[5], PHOTOS[8]], black_intro=2)
    v["reencoded"] = queries / "reencoded.mkv"
    _ffmpeg("-i", str(v["scenes"]), "-vf", "scale=160:120", "-c:v", "libx264", "-crf", "32", str(v["reencoded"]))
    v["trimmed"] = queries / "trimmed.mp4"  # 4 s .. 9 s of scenes
    _ffmpeg("-ss", "4", "-i", str(v["scenes"]), "-t", "5", "-c:v", "libx264", str(v["trimmed"]))
    v["faster"] = queries / "faster.mp4"  # 1.25x speed
    _ffmpeg("-i", str(v["scenes"]), "-vf", "setpts=0.8*PTS", "-c:v", "libx264", str(v["faster"]))
    v["still"] = queries / "still.png"  # the frame at 7.5 s
    _ffmpeg("-ss", "7.5", "-i", str(v["scenes"]), "-frames:v", "1", str(v["still"]))
    v["mirrored"] = queries / "mirrored.mp4"  # the whole video flipped left to right
    _ffmpeg("-i", str(v["scenes"]), "-vf", "hflip", "-c:v", "libx264", "-crf", "28", str(v["mirrored"]))
    v["thumb"] = queries / "thumb.jpg"  # the frame at 10.4 s as a 160 px thumbnail
    _ffmpeg("-ss", "10.4", "-i", str(v["scenes"]), "-frames:v", "1", "-vf", "scale=160:-2", "-q:v", "5", str(v["thumb"]))
    v["copy"] = lib / "scenes copy.mp4"
    shutil.copy(v["scenes"], v["copy"])
    v["library"] = lib
    return v


@pytest.fixture(scope="module", params=BACKENDS)
def indexed(request: pytest.FixtureRequest, videos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """The video library indexed once per backend."""
    uri, prefix = backend_store(request, tmp_path_factory)
    lib = Library(uri=uri, prefix=prefix, image_weights="random", audio_weights="random", device="cpu")
    report = lib.index([videos["library"]])
    assert report.failed == [] and report.by_kind == {"video": 5}
    assert report.keyframes >= 5 * 4
    yield lib, uri, prefix
    lib.close()


def _names(matches) -> list[str]:
    return [Path(m.path).name for m in matches]


def test_reencoded_resized_copy_finds_its_source_first(indexed, videos):
    lib, _, _ = indexed
    res = lib.search(videos["reencoded"], k=3)
    assert _names(res.results)[0] in ("scenes.mp4", "scenes copy.mp4")
    top = res.results[0]
    assert top.kind == "video" and top.timestamp is not None and top.timestamp <= 1.0
    assert top.query_timestamp is not None and top.query_timestamp <= 1.0


def test_trimmed_middle_part_finds_source_and_start_time(indexed, videos):
    lib, _, _ = indexed
    top = lib.find_similar(videos["trimmed"], k=3)[0]
    assert Path(top.path).name in ("scenes.mp4", "scenes copy.mp4")
    assert abs(top.timestamp - 4.0) <= 1.0, top  # within the sampling interval
    assert top.query_timestamp <= 1.0


def test_a_search_that_returned_every_row_is_not_made_again(indexed, videos, monkeypatch):
    """A library of fewer videos than the head pool: each view is searched until every keyframe
    row came back, and a larger ``k``'s wider pool takes those rows instead of searching again,
    with the same results as searching again."""
    from media_search.query.pool import Ctx
    from media_search.store.milvus import MilvusStore

    lib, _, _ = indexed
    calls: list[int] = []
    real = MilvusStore.search

    def counted(self, kind, vectors, limit, **kw):
        calls.append(limit)
        return real(self, kind, vectors, limit, **kw)

    monkeypatch.setattr(MilvusStore, "search", counted)
    reused = lib.search(videos["trimmed"], k=10)
    n_reused = len(calls)

    class Forgetful(dict):
        def __setitem__(self, key, value):
            pass

    monkeypatch.setattr(Ctx, "__init__", _forgetful_init(Ctx.__init__, Forgetful))
    calls.clear()
    again = lib.search(videos["trimmed"], k=10)
    assert n_reused < len(calls), (n_reused, calls)  # the wider pool searched again
    assert [(m.path, m.score, m.timestamp) for m in reused.results] == [(m.path, m.score, m.timestamp) for m in again.results]
    assert len(reused.results) == 5  # every library video: the trimmed part is none of them


def _forgetful_init(init, table):
    def wrapped(self, *a, **kw):
        init(self, *a, **kw)
        self.complete = table()

    return wrapped


def test_sped_up_copy_finds_source_first(indexed, videos):
    lib, _, _ = indexed
    assert _names(lib.find_similar(videos["faster"], k=3))[0] in ("scenes.mp4", "scenes copy.mp4")


def test_shared_black_intro_does_not_make_a_duplicate(indexed, videos):
    lib, _, _ = indexed
    ranked = _names(lib.find_similar(videos["intro_b"], k=5))
    # intro_b shows photos 5 and 8 (from other1 and other2) after the black intro it shares with intro_a.
    assert ranked[0] in ("other1.mp4", "other2.mp4")
    assert ranked.index("intro_a.mp4") >= 2


def test_still_frame_finds_the_video_and_the_moment(indexed, videos):
    lib, _, _ = indexed
    res = lib.search(videos["still"], k=3)
    top = res.results[0]
    assert top.kind == "video" and Path(top.path).name in ("scenes.mp4", "scenes copy.mp4")
    assert abs(top.timestamp - 7.5) <= 1.0, top


def test_mirrored_copy_finds_its_source_first(indexed, videos):
    lib, _, _ = indexed
    res = lib.search(videos["mirrored"], k=3, kinds=["video"])
    assert set(_names(res.results[:2])) == {"scenes.mp4", "scenes copy.mp4"}, res.results
    assert abs(res.results[0].timestamp - res.results[0].query_timestamp) <= 1.0
    # As near as a re-encode at another size: its keyframes' mirrors meet the source's keyframes
    # (random weights put the unmirrored ones at about 0.999, an unrelated video's level).
    reencoded = lib.search(videos["reencoded"], k=1, kinds=["video"]).results[0]
    assert res.results[0].score >= reencoded.score - 1e-4, (res.results[0], reencoded)


def test_160px_thumbnail_is_placed_within_a_second(indexed, videos):
    lib, _, _ = indexed
    assert Image.open(videos["thumb"]).size[0] == 160
    top = lib.search(videos["thumb"], k=3).results[0]
    assert top.kind == "video" and Path(top.path).name in ("scenes.mp4", "scenes copy.mp4")
    assert abs(top.timestamp - 10.4) <= 1.0, top


def test_library_video_is_excluded_copy_listed_and_k_exact(indexed, videos):
    lib, _, _ = indexed
    res = lib.search(videos["scenes"], k=3)
    paths = [m.path for m in res.results]
    assert str(videos["scenes"].resolve()) not in paths
    assert str(videos["copy"].resolve()) not in paths  # same bytes: an exact copy, not a result
    assert res.exact_copies == [str(videos["copy"].resolve())]
    assert len(res.results) == 3  # 5 videos, the query and its copy left out: exactly the 3 others
    assert len({m.path for m in res.results}) == 3


def test_cli_video_query(indexed, videos, cli_env):
    lib, uri, prefix = indexed
    env = {**cli_env, "MEDIA_SEARCH_PREFIX": prefix}
    lib.close()  # Milvus Lite lets one process hold the .db: hand it to the CLI
    out = subprocess.run(
        ["media-search", "query", str(videos["trimmed"]), "-k", "2", "--json", "--uri", uri],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["kind"] == "video" and len(data["results"]) == 2
    top = data["results"][0]
    assert Path(top["path"]).name in ("scenes.mp4", "scenes copy.mp4")
    assert abs(top["timestamp"] - 4.0) <= 1.0
    assert set(top) == {"path", "kind", "score", "timestamp", "query_timestamp", "copy", "copy_confidence"}


def _bad_videos(folder: Path, good: Path) -> dict[str, str]:
    data = good.read_bytes()
    moov = data.find(b"moov")
    (folder / "no_moov.mp4").write_bytes(data[: max(moov - 4, 64)] if data.find(b"mdat") < moov else data[: len(data) // 3])
    (folder / "cut_short.mp4").write_bytes(data[: int(len(data) * 0.6)])
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "x.mp4").mkdir()
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac", str(folder / "audio_only.mp4"))
    _ffmpeg("-i", str(good), "-frames:v", "1", "-c:v", "libx264", str(folder / "one_frame.mp4"))
    return {"empty.mp4": "empty", "x.mp4": "directory"}


def test_bad_videos_are_reported_and_the_rest_indexed(tmp_path, videos, store_uri):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(videos["other1"], folder / "good.mp4")
    expected = _bad_videos(folder, videos["scenes"])
    with Library() as lib:
        report = lib.index([folder])
        failed = {Path(f.path).name: f.error for f in report.failed}
        for name, word in expected.items():
            assert word in failed[name].lower(), failed
        indexed = {Path(r.path).name: r for r in lib.store.iter_files(state="done")}
        assert "good.mp4" in indexed
        assert "one_frame.mp4" in indexed  # a single frame is a video of one keyframe
        assert indexed["audio_only.mp4"].kind == "audio"  # no video stream: indexed as a sound
        # The moov-less file cannot be opened at all; the cut-short one is partly indexed or reported.
        assert "no_moov.mp4" in failed and "moov" in failed["no_moov.mp4"].lower() or "no_moov.mp4" in failed
        assert ("cut_short.mp4" in indexed) != ("cut_short.mp4" in failed)
        assert report.exit_code == 2
        top = lib.find_similar(videos["reencoded"], k=1, kinds=["video"])
        assert top and Path(top[0].path).name in ("good.mp4", "one_frame.mp4", "cut_short.mp4")


def test_edited_copies_are_flagged_by_their_keyframes_and_unrelated_videos_are_not(indexed, videos):
    """A video query flags the videos whose keyframes are pHash copies of its own (or of their
    mirrors) at one time offset, the rule of ``media-search duplicates``, whatever the weights; the
    videos' soundtracks (none here) play no part."""
    lib, _, _ = indexed
    sources = {"scenes.mp4", "scenes copy.mp4"}
    for name in ("reencoded", "trimmed", "mirrored"):
        res = lib.search(videos[name], k=4, kinds=["video"])
        flagged = {Path(m.path).name: m.copy_confidence for m in res.results if m.copy}
        assert set(flagged) == sources, (name, res.results)
        assert all(c is not None and c >= 0.5 for c in flagged.values()), (name, flagged)
        assert set(_names(res.results[:2])) == sources, (name, res.results)
        assert res.copy_found
    # intro_b shares its black intro with intro_a (black frames are never keyframes), and 3 s of
    # photo 8 with other2: a shared stretch is a copy, as a sound inside a longer one is
    shared = {Path(m.path).name: m for m in lib.search(videos["intro_b"], k=5, kinds=["video"]).results}
    assert not shared["intro_a.mp4"].copy and not shared["scenes.mp4"].copy, shared
    assert shared["other2.mp4"].copy, shared
    from media_search.query.search import search

    unflagged = search(videos["reencoded"], store=lib.store, embedders=lib.embedders, settings=lib.settings, k=5,
                       kinds=["video"], copy_signals=False)  # fmt: skip
    assert not unflagged.copy_found  # the embeddings alone (``media-search evaluate``) flag nothing
