"""Library-wide duplicates (``Library.duplicates`` and ``media-search duplicates``) on small generated media.

The library: photos with edited copies (downscaled: found by pHash; cropped and
rotated, mirrored: found by local features), a byte-identical copy, unrelated
photos; a video that shows one photo from 2 s on; a generated tune, a noisy
snippet of it, and a video whose soundtrack carries the tune from 1.5 s on.
Random weights: only copy evidence can make these groups.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from media_search import Library
from test_copydetect import SR, _tune

PHOTOS = Path(__file__).resolve().parents[1] / "sample_media" / "photos"
FPS = 10


def _video(path: Path, frames: list[np.ndarray], sound: Path | None = None) -> None:
    """An H.264 MP4 of RGB frames at ``FPS`` (and a soundtrack), as a browser can play it: OpenCV
    writes MPEG-4 part 2, which Chromium does not decode, so ffmpeg re-encodes it."""
    import cv2

    h, w = frames[0].shape[:2]
    raw = path.with_suffix(".raw.mp4")
    out = cv2.VideoWriter(str(raw), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
    for f in frames:
        out.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    out.release()
    audio = ["-i", str(sound), "-c:a", "aac", "-b:a", "128k", "-shortest"] if sound else []
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(raw), *audio[:2], "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-crf", "18", *audio[2:], str(path)], check=True)  # fmt: skip
    raw.unlink()


def _photo(name: str, size: tuple[int, int] = (480, 360)) -> np.ndarray:
    return np.asarray(Image.open(PHOTOS / name).convert("RGB").resize(size))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    lib = tmp_path_factory.mktemp("dups") / "library"
    lib.mkdir()
    for name in ["astronaut.jpg", "coffee.jpg", "rocket.jpg", "chelsea.jpg", "brick.jpg", "clock.jpg"]:
        shutil.copy(PHOTOS / name, lib / name)
    shutil.copy(PHOTOS / "coffee.jpg", lib / "coffee_same_bytes.jpg")
    astro = Image.open(PHOTOS / "astronaut.jpg").convert("RGB")
    astro.resize((astro.width // 3, astro.height // 3)).save(lib / "astronaut_small.jpg", quality=80)
    w, h = astro.size
    astro.crop((int(w * 0.15), int(h * 0.1), int(w * 0.8), int(h * 0.85))).rotate(8, resample=Image.Resampling.BICUBIC).save(lib / "astronaut_crop_rot.jpg", quality=60)
    rocket = np.asarray(Image.open(PHOTOS / "rocket.jpg").convert("RGB"))
    Image.fromarray(np.ascontiguousarray(rocket[:, ::-1])).save(lib / "rocket_mirror.jpg", quality=90)
    # A video that shows the clock photo from 2.0 s to 4.0 s, after two other pictures.
    frames = [_photo("grass.jpg")] * 10 + [_photo("gravel.jpg")] * 10 + [_photo("clock.jpg")] * 20
    _video(lib / "clip_with_clock.mp4", frames)
    # A tune, a noisy snippet of it, and a video whose soundtrack holds the tune from 1.5 s on.
    tune = _tune(3, 6.0, noise=0.0)
    sf.write(lib / "tune.wav", tune, SR)
    snip = tune[int(2.0 * SR) : int(4.5 * SR)]
    noisy = snip + np.random.default_rng(1).normal(0, np.sqrt(np.mean(snip**2) / 10), len(snip)).astype(np.float32)
    sf.write(lib / "tune_snippet_noisy.wav", noisy, SR)
    other = _tune(8, 9.0, noise=0.0)
    track = np.concatenate([other[: int(1.5 * SR)], tune, other[int(1.5 * SR) : int(2.5 * SR)]])
    sound = lib.parent / "track.wav"
    sf.write(sound, track, SR)
    _video(lib / "band_video.mp4", [_photo("cell.jpg")] * (len(track) * FPS // SR), sound)
    sf.write(lib / "unrelated_tune.wav", _tune(11, 5.0, noise=0.0), SR)
    return lib


@pytest.fixture(scope="module", params=["lite", pytest.param("server", marks=pytest.mark.server)])
def indexed(request: pytest.FixtureRequest, media: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    env = {"MEDIA_SEARCH_IMAGE_WEIGHTS": "random", "MEDIA_SEARCH_AUDIO_WEIGHTS": "random", "MEDIA_SEARCH_DEVICE": "cpu",
           "MEDIA_SEARCH_HOME": str(tmp_path_factory.mktemp("home"))}  # fmt: skip
    if request.param == "lite":
        env["MEDIA_SEARCH_MILVUS_URI"] = str(tmp_path_factory.mktemp("dup_index") / "index.db")
    else:
        env["MEDIA_SEARCH_MILVUS_URI"] = request.getfixturevalue("milvus_server_uri")
        env["MEDIA_SEARCH_PREFIX"] = f"d{uuid.uuid4().hex[:12]}_"
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        lib = Library()
        report = lib.index([media], workers=0)
        assert not report.failed, report.to_dict()
        lib.close()  # the CLI tests open the .db in another process
        yield env


@pytest.fixture
def env(indexed: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The indexed library's settings, for this test (the autouse fixture resets them per test)."""
    for k, v in indexed.items():
        monkeypatch.setenv(k, v)
    return indexed


def _groups(report: dict) -> dict[frozenset[str], dict]:
    return {frozenset(Path(f["path"]).name for f in g["files"]): g for g in report["groups"]}


EXPECTED = {
    frozenset({"astronaut.jpg", "astronaut_small.jpg", "astronaut_crop_rot.jpg"}),
    frozenset({"coffee.jpg", "coffee_same_bytes.jpg"}),
    frozenset({"rocket.jpg", "rocket_mirror.jpg"}),
    frozenset({"clock.jpg", "clip_with_clock.mp4"}),
    frozenset({"tune.wav", "tune_snippet_noisy.wav", "band_video.mp4"}),
}


def _check(report: dict) -> None:
    groups = _groups(report)
    copies = {k for k, g in groups.items() if g["tier"] == "copies"}
    assert copies == EXPECTED, sorted(map(sorted, copies))
    for g in report["groups"]:
        assert g["files"] and sum(f["original"] for f in g["files"]) == 1
        for f in g["files"]:
            assert f["size"] > 0 and f["mtime"] > 0
            assert (f["width"] and f["height"]) if f["kind"] != "audio" else f["duration"] > 0
        assert all(p["relation"] in ("exact", "copy") for p in g["pairs"]) and g["pairs"]
    astro = groups[frozenset({"astronaut.jpg", "astronaut_small.jpg", "astronaut_crop_rot.jpg"})]
    assert Path(astro["original"]).name == "astronaut.jpg"  # the largest picture
    methods = {(Path(p["a"]).name, Path(p["b"]).name): p for p in astro["pairs"]}
    assert any(p["method"] == "local_features" and p["inliers"] > 10 for p in methods.values()), methods  # the crop
    assert any(p["method"] == "phash" and p["phash_distance"] <= 10 for p in methods.values()), methods  # the small one
    coffee = groups[frozenset({"coffee.jpg", "coffee_same_bytes.jpg"})]
    assert coffee["pairs"][0]["relation"] == "exact" and coffee["pairs"][0]["method"] == "content_hash"
    mirror = groups[frozenset({"rocket.jpg", "rocket_mirror.jpg"})]["pairs"][0]
    assert mirror["method"] == "local_features" and mirror["inliers"] > 10  # pHash is blind to mirroring
    clock = groups[frozenset({"clock.jpg", "clip_with_clock.mp4"})]
    assert clock["kind"] == "mixed" and clock["kinds"] == ["image", "video"]
    assert 2.0 <= clock["pairs"][0]["b_time"] <= 4.0  # the keyframe that shows the photo
    band = groups[frozenset({"tune.wav", "tune_snippet_noisy.wav", "band_video.mp4"})]
    pairs = {(Path(p["a"]).name, Path(p["b"]).name): p for p in band["pairs"]}
    assert abs(pairs[("tune.wav", "band_video.mp4")]["b_time"] - 1.5) < 0.1, pairs
    assert abs(pairs[("tune_snippet_noisy.wav", "tune.wav")]["b_time"] - 2.0) < 0.1, pairs
    assert all(p["votes"] >= 8 for p in pairs.values())
    assert Path(band["original"]).name == "band_video.mp4"  # the largest (a video has pixels)


def test_library_duplicates(env: dict[str, str]) -> None:
    lib = Library()
    events: list[dict] = []
    try:
        report = lib.duplicates(progress=events.append)
    finally:
        lib.close()
    _check(report.to_dict())
    assert any(e["event"] == "stage" for e in events)
    assert report.seconds > 0 and report.stats["files"] == 15


def test_kinds_filter_and_similar_tier(env: dict[str, str]) -> None:
    lib = Library()
    try:
        images = lib.duplicates(["image"]).to_dict()
        sounds = lib.duplicates(["audio"]).to_dict()
        similar = lib.duplicates(["image"], include_similar=True).to_dict()
    finally:
        lib.close()
    assert {k for k in _groups(images)} == {k for k in EXPECTED if all(n.endswith(".jpg") for n in k)}
    assert set(_groups(sounds)) == {frozenset({"tune.wav", "tune_snippet_noisy.wav"})}
    assert [g for g in similar["groups"] if g["tier"] == "copies"] == images["groups"]
    for g in similar["groups"]:
        if g["tier"] == "similar":
            assert all(p["relation"] == "similar" for p in g["pairs"])


def test_cli_json_and_csv(env: dict[str, str], cli_env: dict[str, str]) -> None:
    env = {**cli_env, **env}
    out = subprocess.run(["media-search", "duplicates", "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert set(report) >= {"groups", "seconds"}
    _check(report)
    out = subprocess.run(["media-search", "duplicates", "--csv", "--kind", "image"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    by_group: dict[str, set[str]] = {}
    for r in rows:
        by_group.setdefault(r["group"], set()).add(Path(r["path"]).name)
        assert r["tier"] == "copies" and r["kind"] == "image" and int(r["size"]) > 0
    assert {frozenset(v) for v in by_group.values()} == {k for k in EXPECTED if all(n.endswith(".jpg") for n in k)}
    assert sum(r["original"] == "True" for r in rows) == len(by_group)
    out = subprocess.run(["media-search", "duplicates"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and "5 groups of copies" in out.stdout and "likely original" in out.stdout, out.stdout
    # grouping reads what is stored and loads no model: weights that are not at hand do not stop it
    gone = {**env, "MEDIA_SEARCH_IMAGE_WEIGHTS": "/nonexistent/resnet50.pth", "MEDIA_SEARCH_AUDIO_WEIGHTS": "/nonexistent/cnn14.pth"}
    out = subprocess.run(["media-search", "duplicates"], capture_output=True, text=True, env=gone, timeout=300)
    assert out.returncode == 0 and "5 groups of copies" in out.stdout, out.stderr


def test_a_second_run_reuses_the_verdicts_and_a_new_file_costs_its_own_checks(env: dict[str, str], media: Path, tmp_path: Path) -> None:
    import os

    from media_search.duplicates import find_duplicates
    from media_search.duplicates.verdicts import verdicts_path

    lib = Library()
    try:
        store = lib.store
        for kind in ("image", "video", "audio"):
            if store.has(kind):
                lib.ensure(kind)  # type: ignore[arg-type]
        path = verdicts_path(store)
        if os.path.exists(path):
            os.remove(path)  # other tests of this module ran before: start from nothing kept
        plain = find_duplicates(store, cache=False)
        assert not os.path.exists(path)
        first = find_duplicates(store)
        assert os.path.exists(path) and first.stats["verdicts_reused"] == 0 and first.stats["verdicts_new"] > 0
        assert first.stats["sounds_matched"] == 4  # three sounds and a soundtrack
        second = find_duplicates(store)
        # every check was kept: nothing decoded or matched again, the same groups
        assert second.stats["verdicts_reused"] > 0 and second.stats["verdicts_new"] == 0
        assert second.stats["verify_attempts"] == 0 and second.stats["stored_feature_checks"] == 0 and second.stats["decoded"] == 0
        assert second.stats["sounds_matched"] == 0 and second.stats["sound_pairs_sharing_landmarks"] == first.stats["sound_pairs_sharing_landmarks"]
        assert plain.to_dict()["groups"] == first.to_dict()["groups"] == second.to_dict()["groups"]
        # a new picture and a new sound: only their own pairs are checked
        extra = tmp_path / "extra"
        extra.mkdir()
        rocket = np.asarray(Image.open(PHOTOS / "rocket.jpg").convert("RGB"))
        h, w = rocket.shape[:2]
        Image.fromarray(np.ascontiguousarray(rocket[int(h * 0.2) : int(h * 0.9), int(w * 0.1) : int(w * 0.75)])).save(extra / "rocket_crop.jpg", quality=85)
        tune, sr = sf.read(media / "tune.wav", dtype="float32")
        sf.write(extra / "tune_end.wav", tune[int(3.0 * sr) :], sr)
        assert not lib.index([extra], workers=0).failed
        third = find_duplicates(store)
        new_checks = third.stats["stored_feature_checks"]
        assert 0 < new_checks <= third.stats["files"] - 1 and third.stats["verdicts_new"] >= new_checks
        assert third.stats["sounds_matched"] == 1
        groups = third.to_dict()["groups"]
        rocket_group = next(g for g in groups if any(f["path"].endswith("rocket_mirror.jpg") for f in g["files"]))
        assert {Path(f["path"]).name for f in rocket_group["files"]} == {"rocket.jpg", "rocket_mirror.jpg", "rocket_crop.jpg"}
        tune_group = next(g for g in groups if any(f["path"].endswith("tune.wav") for f in g["files"]))
        assert {Path(f["path"]).name for f in tune_group["files"]} == {"tune.wav", "tune_snippet_noisy.wav", "band_video.mp4", "tune_end.wav"}
        # the kept pairs are what a run that keeps nothing finds
        assert find_duplicates(store, cache=False).to_dict()["groups"] == groups
        for f in extra.iterdir():
            f.unlink()
        lib.index([extra], workers=0)  # removes them from the index again (the module's other tests expect the library as built)
        assert find_duplicates(store).to_dict()["groups"] == first.to_dict()["groups"]
    finally:
        lib.close()


def test_sound_votes_count_each_slot_once_with_either_sort() -> None:
    """``sounds._distinct`` sorts the (pair, offset bin, time slot) triples by one packed key, and by
    two keys only where the three cannot be packed in 63 bits: both give the same triples, and a
    vote is one slot at one offset, however many landmarks agree there."""
    from media_search.duplicates.sounds import _distinct

    rng = np.random.default_rng(0)
    pair = rng.integers(0, 50, 5000)
    bins = rng.integers((1 << 25) - 40, (1 << 25) + 40, 5000)
    slot = rng.integers(0, 30, 5000)
    want = sorted(set(zip(pair.tolist(), bins.tolist(), slot.tolist())))
    p, b = _distinct(pair, bins, slot)
    assert list(zip(p.tolist(), b.tolist())) == [(x, y) for x, y, _ in want]
    huge = pair + (1 << 50)  # too wide to pack: the two-key sort
    p2, b2 = _distinct(huge, bins, slot)
    np.testing.assert_array_equal(p2 - (1 << 50), p)
    np.testing.assert_array_equal(b2, b)


def test_kept_sound_pairs_follow_the_files_that_come_and_go(tmp_path: Path) -> None:
    """The kept sound pairs stand for every pair among the sounds of the last run that had a new
    sound: a sound removed, a copy of it indexed meanwhile, then the sound indexed again must
    still meet its copy (it was not there when the copy was matched)."""
    from media_search.duplicates.gather import Rows, Stored
    from media_search.duplicates.links import Links
    from media_search.duplicates.sounds import sound_pairs
    from media_search.duplicates.verdicts import Verdicts
    from media_search.signals import audio as fa
    from media_search.store.records import FileRecord

    tune = _tune(5, 8.0)
    sounds = {"a": tune, "b": _tune(9, 8.0), "c": tune[int(2.0 * SR) : int(6.0 * SR)]}
    prints = {n: fa.pack(fa.landmarks(x.astype(np.float32), SR)) for n, x in sounds.items()}

    def run(names: list[str], verdicts: Verdicts | None) -> tuple[set[frozenset[str]], int]:
        files = {n: FileRecord(n, f"/lib/{n}.wav", "audio", content_hash=f"h{n}") for n in names}
        stored = Stored(files, {"audio": Rows(file_ids=list(names), prints=[prints[n] for n in names])}, {})
        links = Links()
        _, matched = sound_pairs(stored, links, verdicts)
        if verdicts is not None:
            verdicts.save()
        return {frozenset((Path(p.a).stem, Path(p.b).stem)) for p in links.pairs}, matched

    path = str(tmp_path / "verdicts.sqlite")
    steps = [(["a", "b"], 2), (["b", "c"], 1), (["a", "b", "c"], 1), (["a", "b", "c"], 0), (["c", "a"], 0)]
    for names, new in steps:
        kept, matched = run(names, Verdicts(path))
        fresh, _ = run(names, None)
        assert kept == fresh and matched == new, (names, kept, fresh, matched)
    assert fresh == {frozenset("ac")}


def test_mirrored_hash_and_features_come_from_the_stored_values() -> None:
    """A mirrored copy is found without decoding: its pHash is near the mirrored stored hash, and the
    stored SIFT features, mirrored by permuting their bins, match the mirror image's features."""
    from media_search.duplicates.verify import mirror_hash
    from media_search.signals.image import mirror_features
    from media_search.signals import image as fi

    for name in ["rocket.jpg", "chelsea.jpg", "coffee.jpg"]:
        a = np.asarray(Image.open(PHOTOS / name).convert("RGB"))
        m = np.ascontiguousarray(a[:, ::-1])
        h, hm = np.array([fi.phash(a)], np.uint64), np.array([fi.phash(m)], np.uint64)
        assert int(np.bitwise_count(mirror_hash(h) ^ hm)[0]) <= 8 < int(np.bitwise_count(h ^ hm)[0])
        stored = fi.unpack_features(fi.pack_features(fi.stored_features(fi.local_picture(a))))
        seen = fi.features(fi.local_picture(m))
        assert fi.verify(mirror_features(stored), seen).inliers > 10 * max(1, fi.verify(stored, seen).inliers)


def test_the_screen_counts_what_the_reference_matcher_counts_on_uint8_features() -> None:
    """``match.stored_check`` keeps thousands of rows' features (``Prepared``) as stored, in uint8,
    and widens them in its one matrix product for both orientations: the ratio-test matches it
    keeps are exactly those of ``signals.image._ratio_matches`` on the float32 descriptors, for the
    picture and for its mirror, and the screen's verdict is ``verify_model``'s, fitted on them
    without matching again. The decoded check's matches are the reference's too."""
    from media_search.duplicates.match import _ratio_pairs, _sq, prepare, stored_check
    from media_search.signals import image as fi

    rocket = np.asarray(Image.open(PHOTOS / "rocket.jpg").convert("RGB"))
    h, w = rocket.shape[:2]
    pictures = [rocket, rocket[: h * 3 // 4, w // 5 :][:, ::-1], _photo("coffee.jpg")]
    texts = [_stored(p) for p in pictures]
    for ta in texts:
        for tb in texts:
            a, b = prepare(ta), prepare(tb)
            assert a is not None and b is not None and a.both.dtype == np.uint8
            fa, fb = fi.unpack_features(ta), fi.unpack_features(tb)
            assert fa is not None and fb is not None
            sides = (fa, fi.mirror_features(fa))
            want = [fi._ratio_matches(f.descriptors.astype(np.float32), fb.descriptors.astype(np.float32)) for f in sides]
            got = _ratio_pairs(a.both, a.both_sq, b.both[: len(fb)], b.both_sq[: len(fb)], (len(fa),))
            for (qi, ci), (wq, wc) in zip(got, want):
                np.testing.assert_array_equal(qi, wq)
                np.testing.assert_array_equal(ci, wc)
            fitted = [fi.verify(f, fb).inliers for f, (n, _) in zip(sides, want) if len(n) > 4]  # what the screen fits
            assert stored_check(a, b)[0].inliers == max(fitted, default=0)
    decoded = [fi.features(p, max_side=320) for p in pictures]
    for fa in decoded:
        for fb in decoded:
            ua, ub = fa.descriptors.astype(np.uint8), fb.descriptors.astype(np.uint8)
            (qi, ci), = _ratio_pairs(ua, _sq(ua), ub, _sq(ub))
            wq, wc = fi._ratio_matches(fa.descriptors, fb.descriptors)
            np.testing.assert_array_equal(qi, wq)
            np.testing.assert_array_equal(ci, wc)


def _stored(picture: np.ndarray) -> str:
    from media_search.signals import image as fi

    return fi.pack_features(fi.stored_features(fi.local_picture(picture)))


def test_a_copy_from_the_stored_features_is_confirmed_by_its_pixels_and_a_shared_logo_is_not(tmp_path: Path) -> None:
    """``Verifier.confirm``: a pair whose stored features make a copy is checked by its pixels alone
    (read small, lined up by the stored transform), so a cropped, mirrored copy passes without a
    full decode, while two different photos carrying the same large logo (many stored-feature
    inliers, on the logo only) do not."""
    from media_search.duplicates.verify import Verifier
    from media_search.signals import image as fi

    rocket = np.asarray(Image.open(PHOTOS / "rocket.jpg").convert("RGB"))
    h, w = rocket.shape[:2]
    copy = np.ascontiguousarray(rocket[int(h * 0.1) : int(h * 0.9), int(w * 0.05) : int(w * 0.85)][:, ::-1])
    logo = _photo("brick.jpg", (200, 150))
    a, b = _photo("coffee.jpg").copy(), _photo("rocket.jpg").copy()
    a[20:170, 20:220] = logo
    b[20:170, 20:220] = logo
    files = {}
    for name, pic in {"rocket": rocket, "copy": copy, "a": a, "b": b}.items():
        files[name] = tmp_path / f"{name}.png"
        Image.fromarray(pic).save(files[name])
    v = Verifier()
    q = v.quick(("rocket", None), _stored(rocket), ("copy", None), _stored(copy))
    assert q is not None and q.mirrored and fi.decide(q, None).copy, q
    # whether they sit in a frame is asked first (``pictures._prescreen``): that one read of each
    # picture also gives confirm its small picture, so confirm reads nothing more
    v.framed_many([(str(files["rocket"]), None, "rocket"), (str(files["copy"]), None, "copy")])
    assert v.reads == 2 and not v.framed(str(files["rocket"])) and not v.framed(str(files["copy"]))
    got = v.confirm(str(files["rocket"]), ("rocket", None), str(files["copy"]), ("copy", None))
    assert got is not None and got.inliers == q.inliers and v.confirmed == 1 and v.reads == 2
    q = v.quick(("a", None), _stored(a), ("b", None), _stored(b))
    assert q is not None and fi.decide(q, None).copy, q  # the logo alone makes many inliers
    got = v.confirm(str(files["a"]), ("a", None), str(files["b"]), ("b", None))
    assert got is not None and got.inliers == 0
    # a screen kept from an earlier run has no transform here: confirm says so (verify instead)
    assert Verifier(verdicts=v.verdicts).confirm(str(files["a"]), ("x", None), str(files["b"]), ("y", None)) is None


def test_a_picture_stored_without_keypoints_is_screened_out_not_decoded(tmp_path: Path) -> None:
    """A smooth gradient (a colour wheel and its brightened, shrunk copy) has no keypoints: its
    stored features are empty, and decoding it again finds none either. Its screen says "nothing
    in common" (a verdict, kept), so the pair is not sent to a decode and SIFT of both pictures;
    only a row stored with no features at all (an older index) is."""
    from media_search.duplicates.match import decoded_check
    from media_search.duplicates.pictures import _passes
    from media_search.duplicates.verify import Verifier

    y, x = np.mgrid[0:300, 0:400].astype(np.float32)
    wheel = np.stack([x / 400 * 255, y / 300 * 255, 255 - (x + y) / 700 * 255], -1).astype(np.uint8)
    copy = np.asarray(Image.fromarray(np.clip(wheel.astype(np.int16) + 30, 0, 255).astype(np.uint8)).resize((200, 150)))
    texts = [_stored(p) for p in (wheel, copy)]
    v = Verifier()
    q = v.quick(("w", None), texts[0], ("c", None), texts[1])
    assert q is not None and q.inliers == 0 and not _passes(q, False) and v.verdicts.get(("q", "w", None, "c", None)) is not None
    assert v.quick_many([(("w", None), texts[0], ("d", None), texts[1])]) == [True]
    paths = []
    for name, pic in (("wheel", wheel), ("copy", copy)):
        paths.append(str(tmp_path / f"{name}.png"))
        Image.fromarray(pic).save(paths[-1])
    seen = [v._load(p, None) for p in paths]
    assert all(s is not None and len(s.features) < 3 for s in seen)
    assert decoded_check(*seen).inliers == 0  # what the decode would have found
    assert v.quick(("old", None), None, ("c", None), texts[1]) is None  # no stored features: decoded


def test_a_pictures_frame_is_its_first_answer_whatever_is_read_after(tmp_path: Path) -> None:
    """Whether a picture sits in a frame decides between a pHash copy and a check of the inner
    pictures. It is asked of a look at 256 px (``Verifier._look``) and comes with every decode at
    full size (``Verifier._load``), on the verifier's threads and ahead of the checks; the two can
    disagree about a thin frame, so the first answer stands: which read comes first must not
    change a verdict later in the run, nor what is kept for the next one."""
    from media_search.duplicates.verify import Verifier

    path = tmp_path / "rocket.png"
    Image.fromarray(_photo("rocket.jpg")).save(path)
    v = Verifier()
    v.contents[(str(path), None)] = "c"
    v._looked((str(path), None), (True, None))  # a look that saw a frame
    seen = v._load(str(path), None)
    assert seen is not None and not seen.framed  # the full decode sees none
    v._keep_seen((str(path), None), seen)
    assert v.framed(str(path), None, "c") and v.verdicts.get(("f", "c", None, "", None))[0] == 1
    w = Verifier()  # the other order: the decode first, then a look is not even made
    w._keep_seen((str(path), None), w._load(str(path), None))
    assert not w.framed(str(path), None, "c") and w.reads == 1


# -- the page ----------------------------------------------------------------------------------------------
def _fake_report(n: int) -> dict:
    groups = []
    for i in range(1, n + 1):
        files = [{"path": f"/lib/<b>{i}</b>.jpg", "kind": "image", "size": 10, "mtime": 1.0, "width": 4, "height": 3, "duration": None, "original": True},
                 {"path": f"/lib/clip{i}.mp4", "kind": "video", "size": 99, "mtime": 2.0, "width": 4, "height": 3, "duration": 9.0, "original": False}]  # fmt: skip
        pairs = [{"a": files[0]["path"], "b": files[1]["path"], "relation": "copy", "method": "local_features", "inliers": 30, "b_time": 2.5}]
        groups.append({"id": i, "tier": "copies", "kind": "mixed", "files": files, "pairs": pairs})
    return {"groups": groups, "seconds": 1.0}


def test_render_pages_and_escapes() -> None:
    from media_search.web.render import render_duplicates

    html = render_duplicates(_fake_report(45), 3)
    assert html.count("class='ms-dup-group") == 5 and "data-group='41'" in html and "data-group='40'" not in html
    assert "page 3 of 3" in html and "<b>41</b>" not in html and "&lt;b&gt;41&lt;/b&gt;" in html
    assert "clip41.mp4#t=2.50" in html  # the player starts at the keyframe that matched
    assert "gradio_api/file=/lib/" in html and "class='ms-open'" in html
    assert render_duplicates(_fake_report(45), 99).count("class='ms-dup-group") == 5  # clamped to the last page
    assert "No copies found" in render_duplicates({"groups": [], "seconds": 0.1})


@pytest.mark.browser  # the page runs the whole duplicate search: 36 s for this test's call on the busy 2-core machine
@pytest.mark.timeout(900)
def test_duplicates_tab_in_a_browser(env: dict[str, str], media: Path) -> None:
    import os

    from playwright.sync_api import sync_playwright

    from test_web import free_port
    from test_web_browser import ARGS, CHROMIUM

    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt install chromium)")
    from media_search.web import serve

    lib = Library()
    port = free_port()
    app = serve(lib, host="127.0.0.1", port=port, block=False, quiet=True, warm_up=False)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            pg = browser.new_page(viewport={"width": 1400, "height": 1000})
            pg.set_default_timeout(120_000)
            pg.goto(f"http://127.0.0.1:{port}/")
            pg.get_by_role("tab", name="Duplicates").click()
            pg.click("#ms-dup-run")
            pg.wait_for_selector("#ms-dup-results section.ms-dup-group", timeout=600_000)  # the whole search, on a busy machine
            groups = pg.eval_on_selector_all("#ms-dup-results section.ms-dup-group", "els => els.map(e => [...e.querySelectorAll('figure')].map(f => f.dataset.path.split('/').pop()).sort())")
            assert {frozenset(g) for g in groups} == EXPECTED
            pg.wait_for_function("[...document.querySelectorAll('#ms-dup-results img')].every(i => i.complete && i.naturalWidth > 0)")
            clock = pg.locator("#ms-dup-results figure[data-kind='video'][data-path$='clip_with_clock.mp4'] video")
            t = float(clock.get_attribute("src").split("#t=")[1])
            assert 2.0 <= t <= 4.0
            # (an evaluate has no timeout: wait for the metadata with one)
            pg.wait_for_function("m => m.readyState >= 1", arg=clock.element_handle())
            assert abs(clock.evaluate("m => m.currentTime") - t) < 0.5
            href = pg.locator("#ms-dup-results a.ms-open").first.get_attribute("href")
            assert pg.request.get(f"http://127.0.0.1:{port}/{href}").ok  # "open" serves the library file
            assert pg.locator("#ms-dup-results .ms-evidence li[data-method='local_features']").count() >= 2
            browser.close()
    finally:
        app.close()
        lib.close()


def test_other_takes_of_the_same_words_are_not_grouped_but_a_noisy_copy_is(tmp_path: Path) -> None:
    """Votes alone group another take of the same words with the recording (the rhythm of the words
    gets a copy's votes); judged as a query judges a copy (``sounds.judge``: the fingerprint's rule,
    then the samples of a weak copy, decoded from the files on disk), only the copy stays."""

    from media_search.duplicates.gather import Rows, Stored
    from media_search.duplicates.links import Links
    from media_search.duplicates.sounds import sound_pairs, sound_votes
    from media_search.signals import audio as fa
    from media_search.store.records import FileRecord

    from test_copydetect import SR as PHRASE_SR
    from test_copydetect import takes_on_disk

    sounds = takes_on_disk(tmp_path, "words")
    names = list(sounds)
    prints = [fa.pack(fa.landmarks(sounds[n], PHRASE_SR)) for n in names]
    voted = {frozenset((names[a], names[b])) for a, b, votes, _ in sound_votes(prints) if fa.decide(votes).copy}
    assert frozenset(("words", "take2")) in voted and frozenset(("words", "take3")) in voted  # votes alone: copies
    files = {n: FileRecord(n, str(tmp_path / f"{n}.wav"), "audio", content_hash=f"h{n}") for n in names}
    links = Links()
    sound_pairs(Stored(files, {"audio": Rows(file_ids=names, prints=prints)}, {}), links)
    assert {frozenset((Path(p.a).stem, Path(p.b).stem)) for p in links.pairs} == {frozenset(("words", "copy"))}


def test_two_copies_of_a_loop_are_copies_by_their_samples_where_the_querys_rule_sees_many_offsets(tmp_path: Path) -> None:
    """A 0.3 s phrase played eight times, and the same recording 9 dB quieter: every 0.3 s offset
    agrees about as well, so the query's rule (one sharp offset) calls it no copy; the two files'
    samples agree at the offset the fingerprint found, so ``judge`` does. Another loop does not."""
    import soundfile as sf

    from media_search.duplicates.sounds import judge
    from media_search.signals import audio as fa
    from media_search.store.records import FileRecord

    loop = np.tile(_tune(22, 0.3, noise=0.0), 8).astype(np.float32)
    sounds = {"loop": loop, "quiet": loop * 10 ** (-9 / 20), "other": np.tile(_tune(24, 0.3, noise=0.0), 8).astype(np.float32)}
    recs, prints = {}, {}
    for n, x in sounds.items():
        sf.write(tmp_path / f"{n}.wav", x, SR)
        recs[n] = FileRecord(n, str(tmp_path / f"{n}.wav"), "audio", content_hash=f"h{n}")
        prints[n] = fa.pack(fa.landmarks(x, SR))
    m = fa.match(fa.stored_pairs(prints["loop"]), [prints["quiet"]])[0]
    assert m.runner_up > 0.9 * m.votes and not fa.decide_match(m, fa.slots(fa.stored_pairs(prints["loop"]))).copy
    assert judge(recs["loop"], recs["quiet"], prints["loop"], prints["quiet"]).copy
    assert not judge(recs["loop"], recs["other"], prints["loop"], prints["other"]).copy
    (tmp_path / "quiet.wav").unlink()  # cannot be decoded now: the query's rule decides alone
    assert not judge(recs["loop"], recs["quiet"], prints["loop"], prints["quiet"]).copy
