"""Copy detection building blocks: pHash, local-feature verification, audio landmarks, decisions."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from media_search.signals import audio as ca
from media_search.signals import image as ci

PHOTOS = Path(__file__).resolve().parents[1] / "sample_media" / "photos"


def _scene(seed: int, w: int = 520, h: int = 400) -> np.ndarray:
    """A picture with structure (shapes, gradients, texture) rather than plain noise."""
    from PIL import Image, ImageDraw, ImageFilter

    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    base = np.stack([127 + 100 * np.sin(r.uniform(2, 9) * xx + r.uniform(1, 5) * yy + r.uniform(0, 6)) for _ in range(3)], -1)
    im = Image.fromarray(base.astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(30):
        x0, y0 = int(r.integers(0, w)), int(r.integers(0, h))
        box = [x0, y0, x0 + int(r.integers(15, w // 3)), y0 + int(r.integers(15, h // 3))]
        col = tuple(int(c) for c in r.integers(0, 256, 3))
        (d.ellipse if r.random() < 0.5 else d.rectangle)(box, fill=col, outline=(0, 0, 0))
    arr = np.asarray(im.filter(ImageFilter.GaussianBlur(0.8))).astype(np.float32) + r.normal(0, 5, (h, w, 1))
    return arr.clip(0, 255).astype(np.uint8)


def _jpeg(a: np.ndarray, q: int) -> np.ndarray:
    import cv2

    ok, buf = cv2.imencode(".jpg", a, [cv2.IMWRITE_JPEG_QUALITY, q])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def _rotate(a: np.ndarray, deg: float) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(a).rotate(deg, resample=Image.Resampling.BICUBIC))


# -- pHash -------------------------------------------------------------------------------------------
def test_phash_is_stable_under_photometric_edits_and_separates_pictures() -> None:
    a, b = _scene(1), _scene(2)
    h = ci.phash(a)
    assert 0 <= h < 2**64 and ci.phash_hex(a) == f"{h:016x}"
    assert ci.hamming(h, ci.phash(_jpeg(a, 20))) <= 6
    assert ci.hamming(h, ci.phash(np.clip(a.astype(int) * 0.7 + 30, 0, 255).astype(np.uint8))) <= 6
    gray = np.asarray(__import__("PIL.Image", fromlist=["Image"]).fromarray(a).convert("L"))
    assert ci.hamming(h, ci.phash(gray)) <= 6
    assert ci.hamming(h, ci.phash(b)) >= 16
    assert ci.hamming(ci.phash_hex(a), ci.phash_hex(a)) == 0


def test_phash_pair_makes_a_mirror_a_zero_distance_copy() -> None:
    a = _scene(3)
    direct, mirrored = ci.phash_pair(a[:, ::-1])
    stored = ci.phash(a)
    assert ci.hamming(mirrored, stored) == 0
    assert ci.hamming(direct, stored) > 10


# -- local features ------------------------------------------------------------------------------------
def test_verification_finds_crop_rotation_and_mirror_and_rejects_another_picture() -> None:
    a = _scene(4)
    lib = ci.features(a)
    crop = _jpeg(_rotate(a[40:340, 60:480], 12), 30)
    q, qm = ci.features(crop), ci.features(crop[:, ::-1])
    v = ci.verify_mirrored(q, qm, lib)
    assert v.inliers >= 30 and not v.mirrored
    assert ci.decide(v, None).copy

    m = a[:, ::-1].copy()
    direct = ci.verify(ci.features(m), lib)  # SIFT alone is not mirror-invariant...
    mv = ci.verify_mirrored(ci.features(m), ci.features(a), lib)
    assert mv.mirrored and mv.inliers >= 30 and mv.inliers > 3 * direct.inliers  # ...the mirrored query is

    other = ci.verify_mirrored(ci.features(_scene(5)), ci.features(_scene(5)[:, ::-1]), lib)
    assert other.inliers < 8
    assert not ci.decide(other, 30).copy


def test_stored_features_are_made_at_half_size_in_the_query_frame_and_verify_as_before() -> None:
    """``stored_features``: SIFT's ``N_STORED`` strongest on the picture at ``STORED_SIDE`` px, their points
    in the ``MAX_SIDE`` frame a query's features are in; a copy verifies against them as against features
    made at ``MAX_SIDE``, another picture does not; a feature-poor picture is looked at in ``MAX_SIDE`` px."""
    from PIL import Image

    photo = np.asarray(Image.open(PHOTOS / "coffee.jpg").convert("RGB").resize((1200, 800)))
    a = ci.local_picture(photo)
    stored, full = ci.stored_features(a), ci.features(a)
    assert a.shape == stored.shape == full.shape == (427, 640)
    half = ci.features(a, max_side=ci.STORED_SIDE, n=ci.N_STORED)
    assert half.shape == (214, 320) and ci.STORED_FEW <= len(stored) == len(half) <= ci.N_STORED + 2  # SIFT keeps ties
    np.testing.assert_allclose(stored.points, (half.points + 0.5) * [640 / 320, 427 / 214] - 0.5, atol=1e-3)
    assert stored.points.min() >= -1 and (stored.points < [640, 492]).all()
    np.testing.assert_array_equal(stored.descriptors, half.descriptors)

    back = ci.unpack_features(ci.pack_features(stored))
    crop = ci.local_picture(_jpeg(_rotate(photo[80:680, 150:1000], 12), 30))
    q = ci.features(crop)
    v, before = ci.verify(q, back), ci.verify(q, ci.unpack_features(ci.pack_features(full)))
    assert ci.decide(v, None).copy and v.inliers >= 30 and v.inliers >= 0.6 * before.inliers
    other = ci.local_picture(np.asarray(Image.open(PHOTOS / "chelsea.jpg").convert("RGB")))
    assert ci.verify(ci.features(other), back).inliers < 8

    plain = np.full((480, 640), 120, np.uint8)
    plain[100:300, 200:420] = 200
    assert len(ci.features(plain, max_side=ci.STORED_SIDE, n=ci.N_STORED)) < ci.STORED_FEW
    few = ci.stored_features(plain)
    np.testing.assert_array_equal(few.points, ci.features(plain, n=ci.N_STORED).points)


def test_the_contrast_stretch_of_a_gray_picture_is_numpys_percentiles() -> None:
    """``features`` stretches a uint8 gray picture between its 1st and 99th percentiles, read off its
    histogram: the same numbers as ``np.percentile``, and the same features as the float path."""
    rng = np.random.default_rng(1)
    for i in range(200):
        h, w = (int(x) for x in rng.integers(1, 300, 2))
        g = rng.integers(int(rng.integers(0, 100)), int(rng.integers(101, 256)), (h, w)).astype(np.uint8)
        if i % 5 == 0:
            g[:] = g.flat[0]
        np.testing.assert_allclose(ci._spread(g), np.percentile(g.astype(np.float32), (1, 99)), atol=1e-4)
    g = ci.local_picture(_scene(2))
    a, b = ci.features(g), ci.features(np.dstack([g, g, g]))  # the table, and the float path
    assert len(a) > 100 and np.array_equal(a.points, b.points) and np.array_equal(a.descriptors, b.descriptors)


def test_a_query_picture_derives_its_mirror_features_and_computes_its_own_in_a_thread() -> None:
    """``PictureQuery``: the mirror's features are the direct ones with SIFT's bins permuted (no second
    SIFT pass), they verify a mirrored copy as a second pass would, and ``prefetch`` gives the same
    features as computing them in the caller's thread; an error there is raised in the caller's."""
    from media_search.decode.image import prepare
    from media_search.query.rank import PictureQuery

    a = _scene(4)
    lib_mirror = ci.features(np.ascontiguousarray(_jpeg(a, 60)[:, ::-1]))
    q = PictureQuery(None, prepare(a), a)
    q.prefetch()
    direct, mirrored = q.features()
    same = ci.features(q.local)
    assert np.array_equal(direct.points, same.points) and np.array_equal(direct.descriptors, same.descriptors)
    derived = ci.verify(mirrored, lib_mirror).inliers
    second_pass = ci.verify(ci.features(np.ascontiguousarray(q.local[:, ::-1])), lib_mirror).inliers
    assert derived >= 30 and derived >= 0.7 * second_pass and ci.verify(direct, lib_mirror).inliers < derived / 3

    broken = PictureQuery(None, prepare(a), a)
    broken._local = np.zeros((0, 0), np.uint8)  # no pixels: numpy's percentile raises IndexError
    broken.prefetch()
    with pytest.raises(IndexError):
        broken.direct()


def test_verification_of_a_picture_inside_a_screenshot() -> None:
    a = _scene(6)
    canvas = np.full((800, 1280, 3), 236, np.uint8)
    canvas[:34] = 200
    canvas[74:, :220] = 228
    small = np.asarray(__import__("PIL.Image", fromlist=["Image"]).fromarray(a).resize((780, 600)))
    canvas[120:720, 300:1080] = small
    v = ci.verify(ci.features(canvas), ci.features(a))
    assert ci.decide(v, ci.hamming(ci.phash(canvas), ci.phash(a))).copy


def test_content_box_finds_the_picture_inside_a_screenshot() -> None:
    a = _scene(9)
    canvas = np.full((800, 1280, 3), 236, np.uint8)
    canvas[:34] = 200
    canvas[74:, :220] = 228
    canvas[150:550, 400:920] = a
    top, bottom, left, right = ci.content_box(canvas)
    assert abs(top - 150) <= 8 and abs(bottom - 550) <= 8 and abs(left - 400) <= 8 and abs(right - 920) <= 8
    assert ci.hamming(ci.phash(canvas[top:bottom, left:right]), ci.phash(a)) <= 8
    assert ci.content_box(a) is None  # a plain picture has no frame


def test_file_features_reads_images_and_video_frames(tmp_path: Path) -> None:
    import cv2
    from PIL import Image

    a, b = _scene(7, 320, 240), _scene(8, 320, 240)
    Image.fromarray(a).save(tmp_path / "a.png")
    path = str(tmp_path / "v.mp4")
    w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for i in range(40):  # 2 s of a, then 2 s of b
        w.write(cv2.cvtColor(a if i < 20 else b, cv2.COLOR_RGB2BGR))
    w.release()
    q = ci.features(b)
    assert ci.verify(q, ci.file_features(path, 3.0)).inliers > 3 * max(1, ci.verify(q, ci.file_features(path, 0.5)).inliers)
    assert len(ci.file_features(tmp_path / "a.png")) > 50
    assert ci.file_features(tmp_path / "missing.png") is None


def test_decide_is_monotone_and_bounded() -> None:
    confs = [ci.decide(ci.Verification(n, max(n, 10)), None).confidence for n in range(0, 60, 5)]
    assert confs == sorted(confs) and confs[0] == 0.0 and confs[-1] == 1.0
    assert ci.decide(None, 0).copy and not ci.decide(None, 20).copy
    assert ci.decide(None, None) == ci.CopyEvidence(False, 0.0, 0, 0.0, None)


# -- audio landmarks -----------------------------------------------------------------------------------
SR = 16000


def _tune(seed: int, seconds: float = 8.0, noise: float = 0.01) -> np.ndarray:
    """Notes of random pitch and length with harmonics at ``SR``, plus a little noise (two tunes
    share no scale or rhythm grid, as two unrelated recordings would not)."""
    r = np.random.default_rng(seed)
    x = np.zeros(int(seconds * SR))
    t0 = 0.0
    while t0 < seconds:
        dur = float(r.uniform(0.12, 0.45))
        f = 110 * 2 ** r.uniform(0, 3)
        s, e = int(t0 * SR), min(len(x), int((t0 + dur) * SR))
        t = np.arange(e - s) / SR
        x[s:e] += np.exp(-4 * t) * sum(np.sin(2 * np.pi * f * k * t) / k for k in (1, 2, 3))
        t0 += dur
    if noise:
        x += r.normal(0, noise, len(x))
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def test_pack_unpack_and_split_by_time() -> None:
    p = ca.landmarks(_tune(1), SR)
    assert len(p) > 200
    packed = ca.pack(p)
    h, t = ca.unpack(packed)
    assert np.array_equal(h, p.hashes()) and np.array_equal(t, p.t1) and h.max() < 2**23
    parts = ca.split_by_time(packed, [0.0, 2.5, 5.0])
    assert sum(len(x) for x in parts) == len(packed)
    _, t1 = ca.unpack(parts[1])
    assert np.all((t1 * ca.FRAME_S >= 2.5 - 1e-9) & (t1 * ca.FRAME_S < 5.0))


@pytest.mark.parametrize("edit", ["clean", "noise_10db", "gain", "resample_8k"])
def test_snippet_is_found_at_its_offset(edit: str) -> None:
    from scipy.signal import resample_poly

    lib = [ca.pack(ca.landmarks(_tune(s), SR)) for s in (10, 11, 12)]
    r = np.random.default_rng(0)
    x = _tune(11)[int(3.2 * SR) : int(4.6 * SR)]  # 1.4 s from 3.2 s
    if edit == "noise_10db":
        x = x + r.normal(0, np.sqrt(np.mean(x**2) / 10), len(x)).astype(np.float32)
    elif edit == "gain":
        x = x * 0.1
    elif edit == "resample_8k":
        x = resample_poly(x, 1, 2)
    m = ca.match(ca.landmarks(x, 8000 if edit == "resample_8k" else SR), lib)
    assert m[1].votes > 2 * max(m[0].votes, m[2].votes)
    assert ca.decide(m[1].votes).copy and not ca.decide(max(m[0].votes, m[2].votes)).copy
    assert abs(m[1].offset - 3.2) < 0.1


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
@pytest.mark.parametrize("factor", [0.95, 1.05])
def test_tempo_change_is_matched_by_a_scale_hypothesis(tmp_path: Path, factor: float) -> None:
    import soundfile as sf

    x = _tune(20)
    sf.write(tmp_path / "in.wav", x[int(2 * SR) : int(5 * SR)], SR)
    subprocess.run(["sox", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "tempo", str(factor)], check=True)
    y, sr = sf.read(tmp_path / "out.wav", dtype="float32")
    m = ca.match(ca.landmarks(y, sr), [ca.pack(ca.landmarks(x, SR)), ca.pack(ca.landmarks(_tune(21), SR))])
    assert ca.decide(m[0].votes).copy and not ca.decide(m[1].votes).copy
    assert abs(m[0].offset - 2.0) < 0.15


def _sweeps(ranges: list[tuple[float, float]], seconds: float = 1.5) -> np.ndarray:
    """Logarithmic sine sweeps (a siren, a glide), one after another: no stable 2-D spectral peak."""
    out = []
    for f0, f1 in ranges:
        t = np.arange(int(seconds * SR)) / SR
        k = np.log(f1 / f0) / seconds
        out.append(np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k) * np.minimum(1, np.minimum(t, seconds - t) / 0.02))
    return (0.7 * np.concatenate(out)).astype(np.float32)


def _glides(seconds: float = 6.0) -> list[np.ndarray]:
    """Two other glides: a siren's wail (900 +- 500 Hz at 0.7 Hz) and linear sweeps."""
    t = np.arange(int(seconds * SR)) / SR
    wail = np.sin(2 * np.pi * np.cumsum(900 + 500 * np.sin(2 * np.pi * 0.7 * t)) / SR)
    u = np.arange(int(1.5 * SR)) / SR
    linear = np.concatenate([np.sin(2 * np.pi * (f0 * u + (f1 - f0) / 3.0 * u * u)) for f0, f1 in [(300, 3500), (3500, 300), (600, 2400), (2400, 600)]])
    return [(0.6 * wail).astype(np.float32), (0.6 * linear).astype(np.float32)]


@pytest.mark.parametrize("edit", ["clean", "noise_10db", "gain", "resample_8k"])
def test_an_excerpt_of_a_sine_sweep_is_found_by_its_crossings(edit: str) -> None:
    """A glide crosses each frequency at a moment of its own, wherever a copy's frames fall: the
    crossings (fingerprint v2) find 2.5 s excerpts cut anywhere (v1's peaks gave them 1 to 8
    votes, never a copy). At 10 dB SNR 3 of these 4 are flagged (the fourth: 12 votes on 25
    slots, under the half that ``decide`` asks), but each still ranks its source first."""
    from scipy.signal import resample_poly

    src = _sweeps([(200, 4000), (4000, 200), (300, 3000), (3000, 300)])
    lib = [ca.pack(ca.landmarks(x, SR)) for x in (*_glides(), src, _tune(12))]
    flagged = 0
    for at in (0.2, 1.3, 2.9, 3.4):
        start = int(at * SR) + 37  # off the 16 ms frame grid
        x = src[start : start + int(2.5 * SR)]
        if edit == "noise_10db":
            x = x + np.random.default_rng(1).normal(0, np.sqrt(np.mean(x**2) / 10), len(x)).astype(np.float32)
        elif edit == "gain":
            x = x * 0.1
        elif edit == "resample_8k":
            x = resample_poly(x, 1, 2)
        q = ca.landmarks(x, 8000 if edit == "resample_8k" else SR)
        m = ca.match(q, lib)
        found = [ca.decide_match(r, ca.slots(q)).copy for r in m]
        assert m[2].votes > 2 * max(r.votes for i, r in enumerate(m) if i != 2), (at, m)
        assert not any(found[:2] + found[3:]) and abs(m[2].offset - start / SR) < 0.05
        flagged += found[2]
    assert flagged >= (3 if edit == "noise_10db" else 4)


def test_hash_join_is_exact_within_its_budget_and_thins_only_common_hashes_past_it() -> None:
    r = np.random.default_rng(3)
    lib_h = np.sort(np.concatenate([np.repeat(7, 5000), np.repeat(9, 300), r.integers(100, 200, 400)]))
    qh = np.concatenate([np.repeat(7, 200), [9, 9], r.integers(100, 200, 50), [5]])  # 5: no posting
    qi, li = ca.hash_join(lib_h, qh, budget=10**9)
    n = np.searchsorted(lib_h, qh, "right") - np.searchsorted(lib_h, qh, "left")
    assert len(qi) == n.sum() and np.array_equal(lib_h[li], qh[qi])
    qi2, li2 = ca.hash_join(lib_h, qh, budget=20_000)
    assert len(qi2) <= 20_000 and np.array_equal(lib_h[li2], qh[qi2])  # every pair still a true match
    per = np.bincount(qi2, minlength=len(qh))
    rare = n < 50
    assert np.array_equal(per[rare], n[rare])  # rare hashes keep every posting
    cap = per[qh == 7].max()
    assert 1 <= cap < 5000 and np.all(per[qh == 9] == min(300, cap))
    assert len(np.unique(li2[qi2 == 0])) == cap and np.ptp(li2[qi2 == 0]) > 0.9 * 5000  # spread over all
    assert len(ca.hash_join(lib_h, qh, budget=1)[0]) == (n > 0).sum()  # never below one per query hash


def test_a_long_repetitive_query_costs_what_its_length_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loop that repeats itself for minutes, against a library that holds it: every hash matches
    dozens of postings, and the full join grows with the product of the two durations. The budgeted
    join keeps memory bounded, and the copy is still found, at one of the loop's offsets."""
    import tracemalloc

    loop = _tune(3)
    period = len(loop) / SR
    lib = [ca.pack(ca.landmarks(np.tile(loop, 40), SR)), ca.pack(ca.landmarks(_tune(4), SR))]
    query = ca.landmarks(np.tile(loop, 20), SR)

    def peak_of_match(budget: int) -> tuple[list[ca.AudioMatch], float]:
        monkeypatch.setattr(ca, "JOIN_BUDGET", budget)
        tracemalloc.start()
        try:
            return ca.match(query, lib), tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    full, full_peak = peak_of_match(10**12)
    m, peak = peak_of_match(200_000)
    assert peak < full_peak / 4, f"{peak / 1e6:.0f} MB with the budget, {full_peak / 1e6:.0f} MB without"
    for found in (full, m):
        assert found[0].votes > 50 * max(found[1].votes, 1) and found[0].scale == 1.0
        assert min(found[0].offset % period, -found[0].offset % period) < 0.1  # library = query time + whole loops


def test_short_and_silent_inputs_do_not_crash() -> None:
    assert len(ca.landmarks(np.zeros(SR), SR)) == 0
    assert len(ca.landmarks(np.zeros(10), SR)) == 0
    assert ca.match(ca.landmarks(np.zeros(SR), SR), [np.zeros(0, np.int64)])[0].votes == 0
    assert ca.split_by_time(np.zeros(0, np.int64), []) == []


def test_audio_decide_is_monotone_and_bounded() -> None:
    confs = [ca.decide(v).confidence for v in range(0, 40)]
    assert confs == sorted(confs) and confs[0] == 0.0 and confs[-1] == 1.0


# -- fusion and presentation ---------------------------------------------------------------------------
def test_order_puts_verified_copies_first_then_score() -> None:
    from media_search.query.rank import order
    from media_search.types import Match, SearchResult

    ms = [
        Match("/a.jpg", "image", 0.999),
        Match("/b.jpg", "image", 0.95, copy=True, copy_confidence=0.6),
        Match("/c.jpg", "image", 0.90, copy=True, copy_confidence=1.0),
        Match("/d.jpg", "image", 0.998, copy=False, copy_confidence=0.1),
    ]
    assert [m.path for m in order(ms)] == ["/c.jpg", "/b.jpg", "/a.jpg", "/d.jpg"]
    d = ms[2].to_dict()
    assert d["copy"] is True and d["copy_confidence"] == 1.0
    assert set(d) == {"path", "kind", "score", "timestamp", "query_timestamp", "copy", "copy_confidence"}
    assert SearchResult("q", "image", order(ms)).copy_found
    assert not SearchResult("q", "image", [ms[0], ms[3]]).copy_found


def test_page_shows_a_copy_badge_and_an_explicit_no_copy() -> None:
    from media_search.types import Match, SearchResult
    from media_search.web.render import render_results

    html = render_results(SearchResult("q", "image", [Match("/lib/a.jpg", "image", 0.9, copy=True, copy_confidence=0.87)]), name="q.jpg", seconds=0.1)
    assert "class='ms-copy' data-confidence='0.87'" in html and "data-copy='true'" in html and "1 edited copy" in html
    html = render_results(SearchResult("q", "image", [Match("/lib/a.jpg", "image", 0.9)]), name="q.jpg", seconds=0.1)
    assert "No copy of your file found" in html and "data-confidence" not in html


def test_a_stretch_of_a_long_recording_is_a_copy_however_long_the_recording() -> None:
    """A library sound inside a long query (a recording of 100 s with 30 s of it in the middle): the
    verdict counts the query slots around the copy's hits, not the whole query, so it is a copy at
    the right offset; an unrelated long query is not; a short query is judged on all its slots."""
    song = _tune(21, seconds=60)
    query = np.concatenate([_tune(22, seconds=35), song[10 * SR : 40 * SR], _tune(23, seconds=35)])
    lib = [ca.pack(ca.landmarks(song, SR)), ca.pack(ca.landmarks(_tune(24, seconds=60), SR))]
    pairs = ca.landmarks(query, SR)
    m = ca.match(pairs, lib)
    assert ca.decide(m[0].votes, ca.slots(pairs), m[0].runner_up).copy is False  # the whole query's slots: 3x too many
    assert ca.decide(m[0].votes, m[0].cover, m[0].runner_up).copy
    assert m[0].cover < ca.slots(pairs) / 2 and abs(m[0].offset - (10 - 35)) < 0.1  # song time = query time - 25 s
    assert not ca.decide(m[1].votes, m[1].cover, m[1].runner_up).copy
    short = ca.landmarks(song[20 * SR : 28 * SR], SR)  # 8 s: within the pad, all of it counts as before
    assert ca.match(short, lib)[0].cover == ca.slots(short)


def test_an_excerpt_of_a_loop_is_a_copy_though_the_loop_holds_it_several_times() -> None:
    """Music that repeats itself (a 6 s phrase played three times): an excerpt agrees throughout at
    each repeat, so the runner-up offset has as many votes as the winner. That is no plateau of
    partial agreements: the query, whole, is in the file more than once. A copy, at its first place."""
    phrase = _tune(31, seconds=6)
    loop = np.concatenate([_tune(32, seconds=3), phrase, phrase, phrase])
    query = loop[int(4.0 * SR) : int(8.0 * SR)]  # 4 s from 1 s into the first repeat
    pairs = ca.landmarks(query, SR)
    lib = [ca.pack(ca.landmarks(loop, SR)), ca.pack(ca.landmarks(_tune(33, seconds=21), SR))]
    m = ca.match(pairs, lib)
    assert m[0].runner_up >= ca.MAX_RUNNER_UP * m[0].votes  # no single sharp peak
    assert m[0].repeats and ca.decide(m[0].votes, m[0].cover, m[0].runner_up, m[0].repeats).copy
    assert min(abs(m[0].offset - off) for off in (4.0, 10.0, 16.0)) < 0.1
    assert not m[1].repeats and not ca.decide(m[1].votes, m[1].cover, m[1].runner_up, m[1].repeats).copy
    # a steady tone against another (a plateau of offsets, not a few places): not a copy
    t = np.arange(int(4 * SR)) / SR
    pad = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    other = np.concatenate([pad, pad, pad]) * 0.5
    m = ca.match(ca.landmarks(pad[: 3 * SR], SR), [ca.pack(ca.landmarks(other, SR))])[0]
    assert not m.repeats and not ca.decide(m.votes, m.cover, m.runner_up, m.repeats).copy


def test_another_take_of_the_same_stretch_is_outvoted_by_the_copy_but_a_second_copy_is_not() -> None:
    """A second take (the same sound with a third of it changed, as a speaker saying the same
    sentence with one word changed) passes the copy rule on its own, but matches the query's stretch
    far worse than the copy beside it: a likeness, not a copy. A noisy second copy stays a copy,
    and so does a sound that matches another stretch of the query (a second sound in a soundtrack)."""
    from media_search.query.rank import rerank_sounds
    from media_search.types import Match

    src, other = _tune(41, seconds=6), _tune(42, seconds=6)
    take = src.copy()
    take[2 * SR : int(4.1 * SR)] = other[2 * SR : int(4.1 * SR)]
    noisy = src + np.random.default_rng(1).normal(0, np.sqrt(np.mean(src**2) / 10), len(src))
    tail = _tune(43, seconds=3)
    query = np.concatenate([src[int(0.5 * SR) : int(5.5 * SR)], tail])  # 5 s of the source, then 3 s of another sound
    pairs = ca.landmarks(query, SR)
    lib = {"/src.wav": src, "/take.wav": take, "/noisy.wav": noisy, "/tail.wav": tail}
    prints = {p: [ca.pack(ca.landmarks(x, SR))] for p, x in lib.items()}
    m = ca.match(pairs, [prints["/take.wav"][0], prints["/src.wav"][0]])
    assert ca.decide(m[0].votes, m[0].cover, m[0].runner_up).copy  # on its own, the rule takes it for a copy
    assert ca.outvoted(m[0], m[1]) and not ca.outvoted(m[1], m[0])
    out = {r.path: r for r in rerank_sounds(pairs, [Match(p, "audio", 0.9) for p in lib], prints)}
    assert out["/src.wav"].copy and out["/noisy.wav"].copy and out["/tail.wav"].copy
    assert not out["/take.wav"].copy and 0 < out["/take.wav"].copy_confidence < 0.5
    assert abs(out["/tail.wav"].query_timestamp - 5.0) < 0.1  # found where it is in the query
    # Only copies in the pool that does not depend on k (``head``) outvote: a stronger copy that only
    # a larger k brings in leaves the head's verdicts as they were.
    head = {"/take.wav", "/tail.wav"}
    out = {r.path: r for r in rerank_sounds(pairs, [Match(p, "audio", 0.9) for p in lib], prints, head=head)}
    assert out["/take.wav"].copy and out["/src.wav"].copy


def _phrase(take: int, jitter: float = 0.0, syllables: int = 14, timing: float = 0.0) -> np.ndarray:
    """A spoken-like phrase: syllables of a harmonic voice shaped by two formants, each with a
    falling pitch, at set onsets. ``take`` > 0 with ``jitter``: another take of the same words, each
    syllable's pitch and formants moved by up to ``jitter`` (a speaker saying it again); with
    ``timing``, each syllable's length and the pause after it too, and its voice starts at another
    phase."""
    words, r = np.random.default_rng(0), np.random.default_rng(take)
    f0s, durs, gaps = words.uniform(110, 190, syllables), words.uniform(0.12, 0.25, syllables), words.uniform(0.03, 0.09, syllables)
    formants = words.uniform(400, 2600, (syllables, 2))
    out, start = np.zeros(int(SR * ((durs.sum() + gaps.sum()) * (1 + timing) + 0.6))), 0.2
    for f0, d, g, (f1, f2) in zip(f0s, durs, gaps, formants):
        f0, f1, f2 = (x * (1 + r.uniform(-jitter, jitter)) for x in (f0, f1, f2))
        if timing:
            d, g = (x * (1 + r.uniform(-timing, timing)) for x in (d, g))
        t = np.arange(int(d * SR)) / SR
        phase = 2 * np.pi * np.cumsum(f0 * (1 - 0.15 * t / d)) / SR + (r.uniform(0, 2 * np.pi) if timing else 0.0)
        voice = sum((np.exp(-(((k * f0 - f1) / 300) ** 2)) + np.exp(-(((k * f0 - f2) / 400) ** 2)) + 0.05 / k) * np.sin(k * phase)
                    for k in range(1, 25))  # fmt: skip
        i = int(start * SR)
        out[i : i + len(t)] += np.sin(np.pi * t / d) ** 0.5 * voice
        start += d + g
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def test_another_take_of_the_same_words_is_refused_by_its_pair_share_but_a_noisy_copy_is_not() -> None:
    """Another take agrees with the query on most 96 ms slots (the rhythm of the words), so votes,
    cover and runner-up call it a copy; but few of its landmark pairs are the query's, where a copy
    under 10 dB of noise still repeats a third of them. With no copy beside it to outvote it, the
    pair share is what refuses it (tuxpaint's spoken descriptions: ``MIN_PAIR_SHARE``)."""
    query = _phrase(1)
    pairs = ca.landmarks(query, SR)
    n = ca.slots(pairs)
    noisy = query + np.random.default_rng(5).normal(0, np.sqrt(np.mean(query**2) / 10), len(query)).astype(np.float32)
    copy, take = ca.match(pairs, [ca.pack(ca.landmarks(x, SR)) for x in (noisy, _phrase(2, jitter=0.1))])
    assert ca.decide_match(copy, n).copy and copy.pair_share > 3 * ca.MIN_PAIR_SHARE
    assert ca.decide(take.votes, take.cover, take.runner_up).copy  # votes, cover and runner-up alone: a copy
    assert take.pair_share < ca.MIN_PAIR_SHARE and not ca.decide_match(take, n).copy
    assert 0 < ca.decide_match(take, n).confidence < 0.5


def takes_on_disk(folder: Path, name: str) -> dict[str, np.ndarray]:
    """A phrase (``name``), its copy under 10 dB of white noise (``copy``) and two other takes of it
    recorded over the same noise (``take2``, ``take3``), written as wav files in ``folder``."""
    import soundfile as sf

    def noisy(x: np.ndarray, seed: int) -> np.ndarray:
        return x + np.random.default_rng(seed).normal(0, np.sqrt(np.mean(x**2) / 10), len(x)).astype(np.float32)

    words = _phrase(1)
    sounds = {name: words, "copy": noisy(words, 7), **{f"take{i}": noisy(_phrase(i, jitter=0.03, timing=0.1), i) for i in (2, 3)}}
    for n, x in sounds.items():
        sf.write(folder / f"{n}.wav", x, SR)
    return sounds


def test_a_noisy_take_that_the_fingerprint_flags_is_refused_on_its_samples_but_a_noisy_copy_is_not(tmp_path: Path) -> None:
    """Another take of the same words, recorded over 10 dB of noise, repeats enough of the query's
    landmark pairs to pass the fingerprint rule (its pair share is between ``MIN_PAIR_SHARE`` and
    ``waveform.CHECK_BELOW``). Laid against the query on its samples, as the query path does it
    (``query.sounds.sample_check``: the library file decoded from disk at the match's offset), it
    shares neither the waveform nor the spectra, and is no copy; a copy under the same noise shares
    the waveform and stays one. A file that is gone leaves the fingerprint's verdict as it was."""

    from media_search.config import Settings
    from media_search.decode.file import decode_sound
    from media_search.query.rank import rerank_sounds
    from media_search.query.sounds import sample_check
    from media_search.signals import waveform
    from media_search.types import Match

    files = takes_on_disk(tmp_path, "query")
    settings = Settings.from_env(uri=str(tmp_path / "index.db"))
    query = decode_sound(tmp_path / "query.wav", settings)  # 32 kHz, as a query keeps it
    pairs = ca.landmarks(query.samples, query.sr)
    n = ca.slots(pairs)
    lib = {str(tmp_path / f"{name}.wav"): [ca.pack(ca.landmarks(decode_sound(tmp_path / f"{name}.wav", settings).samples, query.sr))]
           for name in files if name != "query"}  # fmt: skip
    check = sample_check(settings, query.samples, "audio")
    for path, prints in lib.items():
        m = ca.match(pairs, prints)[0]
        assert ca.decide_match(m, n).copy  # the fingerprint alone calls each of them a copy
        assert check(path, m) is (Path(path).stem == "copy"), path
        if Path(path).stem != "copy":
            assert ca.MIN_PAIR_SHARE <= m.pair_share < waveform.CHECK_BELOW  # weak: checked on the samples
    out = {Path(r.path).stem: r for r in rerank_sounds(pairs, [Match(p, "audio", 0.9) for p in lib], lib, check=check)}
    assert out["copy"].copy and not out["take2"].copy and not out["take3"].copy
    assert 0 < out["take2"].copy_confidence < 0.5
    takes = [Match(p, "audio", 0.9) for p in lib if "take" in Path(p).stem]  # no copy in the library to outvote them
    assert any(r.copy for r in rerank_sounds(pairs, takes, lib))  # before the check: a false copy (one outvotes the other)
    assert not any(r.copy for r in rerank_sounds(pairs, takes, lib, check=check))
    (tmp_path / "take2.wav").unlink()  # moved since it was indexed: cannot tell, the fingerprint decides
    assert check(str(tmp_path / "take2.wav"), ca.match(pairs, lib[str(tmp_path / "take2.wav")])[0]) is None
    assert sample_check(settings, None, "audio") is None  # a long query keeps no samples: nothing to check
