"""Offset-consistent window scoring and spectral alignment of audio excerpts."""

from __future__ import annotations

import numpy as np
import pytest

from media_search.query.place import match_excerpt

SR = 32000


def _notes(seed: int, seconds: float) -> np.ndarray:
    rng, out = np.random.default_rng(seed), []
    while sum(map(len, out)) < seconds * SR:
        d, f = rng.uniform(0.15, 0.5), 110 * 2 ** (rng.integers(0, 36) / 12)
        t = np.arange(int(d * SR)) / SR
        out.append(np.sin(2 * np.pi * f * t) * np.exp(-t * 3) * np.minimum(1, t / 0.01))
    return (0.4 * np.concatenate(out)[: int(seconds * SR)]).astype(np.float32)


def test_match_excerpt_finds_offset_under_noise_and_tempo() -> None:
    import subprocess
    import shutil

    clip, other = _notes(1, 15), _notes(2, 15)
    q = clip[int(6.3 * SR) : int(9.3 * SR)]
    noisy = q + np.random.default_rng(3).standard_normal(q.size).astype(np.float32) * np.sqrt(np.mean(q**2) / 10)
    corr, at, q_at = match_excerpt(noisy * 0.3, clip)
    assert at - q_at == pytest.approx(6.3, abs=0.1) and corr > 0.5
    assert match_excerpt(noisy, other)[0] < corr - 0.2
    if shutil.which("sox"):  # +5% tempo
        fast = subprocess.run(["sox", "-t", "f32", "-r", str(SR), "-c", "1", "-", "-t", "f32", "-",
                               "tempo", "1.05"], input=q.tobytes(), capture_output=True, check=True).stdout  # fmt: skip
        corr_t, at_t, q_at_t = match_excerpt(np.frombuffer(fast, np.float32), clip)
        assert at_t - q_at_t == pytest.approx(6.3, abs=0.25) and corr_t > 0.4


def test_placing_at_8_khz_agrees_with_32_khz() -> None:
    """``place_matches`` decodes its candidates at ``PLACE_SR`` (8 kHz: the bands stop at 3.8 kHz):
    the same offsets as at 32 kHz, and correlations on the same side of ``PLACE_MIN_CORR``."""
    from scipy.signal import resample_poly

    from media_search.query.place import PLACE_MIN_CORR, PLACE_SR

    down = lambda x: resample_poly(x, PLACE_SR, SR).astype(np.float32)  # noqa: E731
    clip, other = _notes(1, 30), _notes(2, 30)
    rng = np.random.default_rng(4)
    for start in (2.0, 11.3, 24.9):
        q = clip[int(start * SR) : int((start + 4) * SR)]
        noisy = q + rng.standard_normal(q.size).astype(np.float32) * np.sqrt(np.mean(q**2) / 10)
        for query in (q, noisy):
            c32, at32, q32 = match_excerpt(query, clip)
            c8, at8, q8 = match_excerpt(down(query), down(clip), sr=PLACE_SR)
            assert at8 - q8 == pytest.approx(at32 - q32, abs=0.04) == start
            assert abs(c8 - c32) < 0.1 and (c8 >= PLACE_MIN_CORR) == (c32 >= PLACE_MIN_CORR)
        assert match_excerpt(down(noisy), down(other), sr=PLACE_SR)[0] < PLACE_MIN_CORR


def test_match_excerpt_long_query_and_short_candidate() -> None:
    clip = _notes(4, 40)
    # long query: the most varied 6 s stretch is used; offsets stay consistent
    corr, at, q_at = match_excerpt(clip[5 * SR :], clip)
    assert corr > 0.9 and at - q_at == pytest.approx(5.0, abs=0.05)
    # the candidate is a 4 s piece of the query: roles swap, offsets still name each clip
    corr, at, q_at = match_excerpt(clip, clip[20 * SR : 24 * SR])
    assert corr > 0.9 and q_at - at == pytest.approx(20.0, abs=0.05)


def test_query_places_unconfirmed_matches_by_spectrum(tmp_path) -> None:
    """A result the fingerprints did not confirm gets its offset from spectral alignment, to 0.1 s;
    an unrelated sound, a copy already placed and a vanished file keep theirs."""
    import soundfile as sf

    from media_search import Library
    from media_search.query.place import place_matches
    from media_search.types import Match

    clip, other = _notes(1, 20), _notes(2, 20)
    sf.write(tmp_path / "clip.wav", clip, SR)
    sf.write(tmp_path / "other.wav", other, SR)
    snippet = clip[int(7.3 * SR) : int(10.3 * SR)] + 0.02 * np.random.default_rng(3).standard_normal(3 * SR)
    grid = [
        Match(str(tmp_path / "clip.wav"), "audio", 0.9, 5.0, 0.0),
        Match(str(tmp_path / "other.wav"), "audio", 0.8, 10.0, 0.0),
        Match(str(tmp_path / "gone.wav"), "audio", 0.7, 0.0, 0.0),
    ]
    placed = place_matches(Library(uri=str(tmp_path / "unused.db")).settings, snippet.astype(np.float32), grid)
    assert placed[0].timestamp == pytest.approx(7.3, abs=0.1) and placed[0].query_timestamp == 0.0
    assert placed[1:] == grid[1:]
    copy = [Match(str(tmp_path / "clip.wav"), "audio", 0.9, 7.31, 0.0, copy=True, copy_confidence=0.9)]
    assert place_matches(Library(uri=str(tmp_path / "unused.db")).settings, snippet.astype(np.float32), copy) == copy


def test_a_long_result_is_searched_near_its_window_offset(tmp_path, monkeypatch) -> None:
    """A result longer than the query and ``PLACE_REACH`` on each side: only the stretch within
    ``PLACE_REACH`` of where its windows put the query is decoded and searched."""
    import soundfile as sf

    from media_search import Library
    from media_search.decode import audio as audio_mod
    from media_search.query.place import PLACE_REACH, place_matches
    from media_search.types import Match

    clip = _notes(4, 70)
    sf.write(tmp_path / "long.wav", clip, SR)
    snippet = (clip[int(51.3 * SR) : int(54.3 * SR)] + 0.02 * np.random.default_rng(5).standard_normal(3 * SR)).astype(np.float32)
    spans = []
    real = audio_mod.decode_audio
    monkeypatch.setattr(audio_mod, "decode_audio", lambda *a, **kw: spans.append(kw.get("span")) or real(*a, **kw))
    settings = Library(uri=str(tmp_path / "unused.db")).settings
    near = [Match(str(tmp_path / "long.wav"), "audio", 0.9, 50.0, 0.0)]
    placed = place_matches(settings, snippet, near, {near[0].path: 70.0})
    assert placed[0].timestamp == pytest.approx(51.3, abs=0.1)
    assert spans == [(50.0 - PLACE_REACH, 3.0 + 2 * PLACE_REACH)]
    far = [Match(str(tmp_path / "long.wav"), "audio", 0.9, 20.0, 0.0)]  # the windows put it 31 s off
    assert place_matches(settings, snippet, far, {far[0].path: 70.0}) == far


def test_spectral_features_equal_librosa() -> None:
    """The numpy mel spectrogram is librosa's (which costs about 2 s on first use in a process)."""
    librosa = pytest.importorskip("librosa")
    from media_search.query.place import FRAME_S, _melspectrogram, spectral_features

    for seconds in (0.01, 3.0, 61.7):
        x = _notes(4, seconds) + 0.05 * np.random.default_rng(5).standard_normal(int(seconds * SR)).astype(np.float32)
        hop = int(round(FRAME_S * SR))
        padded = np.pad(x, (0, max(0, 2048 - x.size)))
        want = librosa.feature.melspectrogram(
            y=padded, sr=SR, n_fft=2048, hop_length=hop, n_mels=32, fmin=100, fmax=3800, power=1.0
        )
        got = _melspectrogram(padded, SR, hop)
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1e-5 * (np.abs(want).max() + 1e-9)
        assert spectral_features(x).shape == (32, want.shape[1])
