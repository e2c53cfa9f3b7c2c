"""Audio search end to end (issue 4): snippets find their source clip and where it starts.

Eight generated 12-18 s clips (note sequences, chirps, noise bursts, espeak-ng speech)
and one video whose soundtrack is another clip. 3 s excerpts, clean and degraded
(10 dB SNR noise, gain, 32 kbit/s mp3, resampling to 8 and 16 kHz, tempo ±5%), are
queried through ``Library``/``find_similar`` on Milvus Lite and the real Milvus server,
and through the real ``media-search`` command.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import BACKENDS, backend_store
from media_search import Library
from media_search.decode.audio import SAMPLE_RATE as SR
from media_search.decode.audio import decode_audio

from test_extract_audio import _variant, make_clips  # the generated clips and the degradations

pytestmark = pytest.mark.skipif(
    not (shutil.which("ffmpeg") and shutil.which("sox")), reason="ffmpeg and sox make the test media"
)

VARIANTS = ["clean", "noise_10db", "gain_-12db", "mp3_32k", "resample_8000", "resample_16000", "tempo_1.05", "tempo_0.95"]
#: (clip index, excerpt start s) queried for every variant
EXCERPTS = [(0, 4.3), (3, 1.0), (5, 7.7), (6, 4.3)]  # clip 6 is the soundtrack of talk.mp4


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("audio")
    lib, scratch = root / "library", root / "scratch"
    lib.mkdir()
    scratch.mkdir()
    clips = [Path(shutil.move(c, lib / c.name)) for c in make_clips(scratch)]  # leave espeak's raw takes behind
    # A video whose soundtrack is clip 6 (a voice): a sound must find it too.
    video = lib / "talk.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10",
         "-i", str(clips[6]), "-shortest", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(video)],
        check=True,
    )  # fmt: skip
    clips[6].unlink()  # the sound lives only in the video now
    queries = root / "queries"
    queries.mkdir()
    rng = np.random.default_rng(7)
    cases = []
    for i, start in EXCERPTS:
        src = video if i == 6 else clips[i]
        x = decode_audio(clips[i] if i != 6 else video, from_video=(i == 6)).samples
        excerpt = x[int(start * SR) : int((start + 3) * SR)]
        for name in VARIANTS:
            q = _variant(name, excerpt.copy(), queries, rng).astype(np.float32)
            path = queries / f"q{i}_{start}_{name}.wav"
            sf.write(path, q, SR)
            cases.append({"path": path, "source": src, "start": start, "variant": name})
    return {"library": lib, "clips": clips, "video": video, "cases": cases}


@pytest.fixture(scope="module", params=BACKENDS)
def indexed(request: pytest.FixtureRequest, media: dict, tmp_path_factory: pytest.TempPathFactory):
    uri, prefix = backend_store(request, tmp_path_factory)
    lib = Library(uri=uri, prefix=prefix, image_weights="random", audio_weights="random", device="cpu")
    report = lib.index([media["library"]])
    assert report.failed == [], report.failed
    assert report.by_kind == {"audio": 7, "video": 1}
    assert report.windows >= 8 * 3  # 12 to 20 s clips, a window every AUDIO_HOP = 5 s
    yield lib, uri, prefix
    lib.close()


def test_snippets_find_their_source_first(indexed, media):
    lib, _, _ = indexed
    per_variant: dict[str, list[bool]] = {}
    offsets: dict[str, list[float]] = {}
    for case in media["cases"]:
        results = lib.find_similar(case["path"], k=3)
        top = results[0]
        ok = top.path == str(case["source"].resolve())
        per_variant.setdefault(case["variant"], []).append(ok)
        if ok:
            offsets.setdefault(case["variant"], []).append(abs(top.timestamp - case["start"]))
        if case["source"] == media["video"] and ok:
            assert top.kind == "video"
    recall = {k: float(np.mean(v)) for k, v in per_variant.items()}
    print("\naudio recall@1 per variant:", json.dumps(recall))
    print("offset error (s) per variant:", json.dumps({k: round(max(v), 2) for k, v in offsets.items()}))
    for name in VARIANTS:
        assert recall[name] == 1.0, (name, recall)
    # The issue asks for the right offset within one hop (5 s). Fingerprints, or spectral
    # alignment where they do not confirm a copy (a chirp train), place every snippet far closer.
    assert all(e <= 0.5 for v in offsets.values() for e in v), offsets


def test_input_excluded_and_k_exact(indexed, media):
    lib, _, _ = indexed
    clip = media["clips"][0]
    res = lib.search(clip, k=5)
    assert str(clip.resolve()) not in [m.path for m in res.results]
    assert len(res.results) == 5 and len({m.path for m in res.results}) == 5


def test_cli_snippet_query(indexed, media, cli_env):
    lib, uri, prefix = indexed
    lib.close()  # hand the Lite file to the CLI process
    case = next(c for c in media["cases"] if c["variant"] == "clean" and c["source"] == media["video"])
    out = subprocess.run(
        ["media-search", "query", str(case["path"]), "-k", "3", "--json", "--uri", uri],
        capture_output=True, text=True, env={**cli_env, "MEDIA_SEARCH_PREFIX": prefix}, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["kind"] == "audio"
    top = data["results"][0]
    assert top["path"] == str(media["video"].resolve()) and top["kind"] == "video"
    assert abs(top["timestamp"] - case["start"]) <= 0.5


def test_bad_audio_is_reported_and_the_rest_indexed(tmp_path, media, store_uri):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(media["clips"][0], folder / "good.wav")
    good = sf.read(media["clips"][1])[0]
    sf.write(folder / "tiny.wav", good[: int(0.1 * SR)], SR)  # 0.1 s: padded, indexed
    sf.write(folder / "silent.flac", np.zeros(3 * SR, np.float32), SR)  # indexed as silent
    sf.write(folder / "really_wav.mp3", good[: 3 * SR], SR, format="WAV")  # decoded by content
    raw = (folder / "good.wav").read_bytes()
    (folder / "corrupt.wav").write_bytes(raw[:12] + b"\x00" * 32 + raw[44:2000])
    (folder / "text.ogg").write_text("not a sound")
    (folder / "empty.wav").write_bytes(b"")
    with Library() as lib:
        report = lib.index([folder])
        failed = {Path(f.path).name: f.error for f in report.failed}
        indexed_names = {Path(r.path).name for r in lib.store.iter_files(state="done")}
        assert {"good.wav", "tiny.wav", "silent.flac", "really_wav.mp3"} <= indexed_names, (indexed_names, failed)
        assert {"text.ogg", "empty.wav"} <= set(failed)
        assert "corrupt.wav" in failed or "corrupt.wav" in indexed_names
        assert "empty" in failed["empty.wav"].lower()
        assert report.exit_code == 2
