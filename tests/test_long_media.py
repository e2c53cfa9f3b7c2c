"""Hours-long media in flat memory (streamed decode, fingerprint and rows), and a quiet terminal.

The default suite checks the streaming pieces against their whole-file
counterparts, a 12-minute sound streamed through the indexer's row stage
under a peak-memory bound that decoding it whole exceeds, and that no decoder
line reaches the terminal through the real CLI. The ``slow`` tests index and
query a 25-minute recording and a 12-minute video through the real CLI under
the same kind of bound.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from media_search.decode.audio import SAMPLE_RATE, decode_audio, has_ffmpeg

needs_ffmpeg = pytest.mark.skipif(not has_ffmpeg(), reason="ffmpeg is not installed")

#: Lines the decoders and gRPC write themselves; none may reach the user's terminal.
DECODER_LINE = re.compile(
    r"^\[[\w.,-]+ @ (0x)?[0-9a-f]+\]|mpg123|libmpg123|Xing stream|Illegal Audio-MPEG|GOAWAY|too_many_pings|chttp2", re.IGNORECASE | re.MULTILINE
)


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def _signal(seconds: float, sr: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * (300 + 200 * np.sin(0.7 * t)) * t)
    x += 0.1 * rng.standard_normal(t.size) * (np.sin(3 * t) > 0)
    return x.astype(np.float32)


# -- the streaming pieces equal the whole-file ones -------------------------------------------------
def test_fingerprint_in_blocks_equals_whole() -> None:
    from media_search.signals.audio import landmarks, pack
    from media_search.signals.stream import Landmarker

    for seconds in (0.01, 3.0, 80.0):  # shorter than a frame, one segment, several segments
        x = _signal(seconds)
        whole = pack(landmarks(x, SAMPLE_RATE))
        marks = Landmarker(SAMPLE_RATE, segment=1500)  # 24 s segments
        parts = []
        step = int(7.3 * SAMPLE_RATE)  # blocks that fall anywhere against the segments
        for i in range(0, x.size, step):
            marks.feed(x[i : i + step])
            parts.append(pack(marks.take()))
        parts.append(pack(marks.finish()))
        assert np.array_equal(np.concatenate(parts), whole), seconds


def test_windows_in_blocks_equal_whole() -> None:
    from media_search.embed.audio import (
        AUDIO_WINDOW,
        SILENCE_RMS,
        _loop_to,
        _rms,
        window_starts,
    )
    from media_search.embed.stream import WindowCutter

    x = _signal(23.7)
    x[int(6 * SAMPLE_RATE) : int(16 * SAMPLE_RATE)] = 0.0  # a silent stretch: its window is dropped
    for hop in (5.0, 1.0):
        w = int(AUDIO_WINDOW * SAMPLE_RATE)
        want = [(s, _loop_to(x[s : s + w], w)) for s in window_starts(x.size, hop) if _rms(x[s : s + w]) >= SILENCE_RMS]
        cutter = WindowCutter(hop)
        got = []
        for i in range(0, x.size, 100_003):
            got += cutter.feed(x[i : i + 100_003])
        got += cutter.finish()
        assert [s for s, _ in got] == [int(s) for s, _ in want]
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, want))


def test_query_windows_stay_few_and_spread() -> None:
    from media_search.embed.stream import QueryWindows

    q = QueryWindows(max_windows=48)
    x = np.tile(_signal(10.0), 40)
    for i in range(0, x.size, 320_000):
        q.feed(x[i : i + 320_000])
    starts, windows, silent = q.finish()
    assert not silent and 24 <= len(starts) <= 48 and windows.shape[1] == 5 * SAMPLE_RATE
    gaps = np.diff(starts)
    assert np.allclose(gaps, gaps[0]) and starts[-1] > 300


@needs_ffmpeg
def test_audio_stream_matches_whole_decode(tmp_path: Path) -> None:
    from media_search.decode.stream import AudioStream, probe_seconds

    src = tmp_path / "tone.wav"
    import soundfile as sf

    sf.write(src, np.stack([_signal(30.0, 44100, 1)] * 2, axis=1), 44100)
    _ffmpeg("-i", str(src), "-c:a", "aac", str(tmp_path / "tone.m4a"))
    for path in (src, tmp_path / "tone.m4a"):
        whole = decode_audio(path).samples
        stream = AudioStream(path, block_seconds=3.0)
        blocks = list(stream)
        x = np.concatenate(blocks)
        assert len(blocks) > 5 and abs(x.size - whole.size) < SAMPLE_RATE // 100
        n = min(x.size, whole.size)
        assert np.corrcoef(x[:n], whole[:n])[0, 1] > 0.999
        assert probe_seconds(path) == pytest.approx(30.0, abs=0.1)


# -- bounded memory ---------------------------------------------------------------------------------
_ROWS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np

    def peak_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024

    from media_search.config import Settings
    from media_search.indexing.stream import SoundRows, sound_parts
    import scipy.ndimage, scipy.signal, soundfile, soxr  # imported on first use: not the file's cost

    class FakeEmbedder:  # the model's memory does not grow with the file: leave it out
        hop, batch_size = 5.0, 16
        spec = type("S", (), {"dim": 8})()
        def embed_batch(self, windows):
            v = np.abs(windows[:, :8]) + 1e-3
            return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    before = peak_mb()
    summary, rows, prints, stamps = SoundRows(), 0, 0, []
    settings = Settings(uri="unused.db")
    for cols in sound_parts(sys.argv[1], FakeEmbedder(), settings, fid="f", fields={"source": "audio"},
                            from_video=False, summary=summary):
        rows += len(cols["id"])
        prints += sum(len(p) for p in cols["fp"])
        stamps += cols["timestamp"]
    print(json.dumps({"rows": rows, "prints": prints, "first": stamps[:2], "last": stamps[-1],
                      "grew_mb": peak_mb() - before, "seconds": summary.seconds}))
    """
)


@needs_ffmpeg
def test_twelve_minute_sound_streams_in_flat_memory(tmp_path: Path) -> None:
    """Decoded whole with its fingerprint, this sound grows the process by about 570 MB (measured);
    streamed, by under 100 MB, whatever its length."""
    mp3 = tmp_path / "long.mp3"
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000:duration=720",
            "-f", "lavfi", "-i", "anoisesrc=d=720:c=pink:a=0.05:r=8000",
            "-filter_complex", "amix=inputs=2", "-ac", "1", "-b:a", "16k", str(mp3))  # fmt: skip
    out = subprocess.run([sys.executable, "-c", _ROWS_SCRIPT, str(mp3)], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["seconds"] == pytest.approx(720, abs=1)
    assert got["rows"] == 144 and got["first"] == [0.0, 5.0] and got["last"] == 715.0
    assert got["prints"] > 50_000
    assert got["grew_mb"] < 200, got


# -- a quiet terminal -------------------------------------------------------------------------------
def _damaged(tmp_path: Path) -> Path:
    """A truncated MP4, a byte-flipped MP4, a truncated MKV, and an MP3 damaged and cut short."""
    bad = tmp_path / "bad"
    bad.mkdir()
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
            "-t", "6", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-c:a", "aac", str(tmp_path / "good.mp4"))  # fmt: skip
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-t", "6", "-pix_fmt", "yuv420p",
            "-c:v", "libx264", str(tmp_path / "good.mkv"))  # fmt: skip
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=330:duration=12", "-ac", "2", "-b:a", "128k", str(tmp_path / "good.mp3"))
    data = (tmp_path / "good.mp4").read_bytes()
    (bad / "truncated.mp4").write_bytes(data[: len(data) * 2 // 3])
    flipped = bytearray(data)
    rng = np.random.default_rng(1)
    for i in rng.integers(3000, len(flipped), 150):
        flipped[i] ^= 0xFF
    (bad / "flipped.mp4").write_bytes(bytes(flipped))
    mkv = (tmp_path / "good.mkv").read_bytes()
    (bad / "truncated.mkv").write_bytes(mkv[: len(mkv) // 2])
    mp3 = bytearray((tmp_path / "good.mp3").read_bytes())
    for i in rng.integers(2000, len(mp3), 200):
        mp3[i] ^= 0x55
    (bad / "corrupt.mp3").write_bytes(bytes(mp3[: len(mp3) * 3 // 4]))  # damaged, and shorter than its Xing header says
    return bad


@needs_ffmpeg
def test_no_decoder_line_reaches_the_terminal(tmp_path: Path, cli_env: dict[str, str]) -> None:
    bad = _damaged(tmp_path)
    cmd = [sys.executable, "-m", "media_search", "index", str(bad), "--uri", str(tmp_path / "i.db")]
    out = subprocess.run(cmd, capture_output=True, text=True, env=cli_env, timeout=300)
    assert out.returncode in (0, 2), out.stderr
    assert not DECODER_LINE.search(out.stderr), out.stderr
    assert "decoder:" in out.stdout  # what the decoders said is in the files' lines of the report


@pytest.mark.slow
def test_an_idle_lite_store_in_a_long_running_process_stays_quiet(tmp_path: Path) -> None:
    """Through the Python API (no CLI quieting): a Lite store left idle past three of pymilvus's
    10 s keepalive pings used to make gRPC print ``Received a GOAWAY ... too_many_pings``."""
    code = textwrap.dedent(
        f"""
        import time
        import numpy as np
        from PIL import Image
        from media_search import Library
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save({str(tmp_path / "p.png")!r})
        lib = Library(uri={str(tmp_path / "idle.db")!r}, image_weights="random", audio_weights="random")
        lib.index({str(tmp_path / "p.png")!r}, workers=0)
        print(lib.stats()["rows"], flush=True)
        time.sleep(40)
        print(lib.stats()["rows"], flush=True)
        lib.close()
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("'image': 1") == 2, out.stdout
    assert not DECODER_LINE.search(out.stderr), out.stderr


@pytest.mark.slow
@needs_ffmpeg
def test_query_of_a_damaged_file_is_quiet_and_verbose_is_not(tmp_path: Path, cli_env: dict[str, str]) -> None:
    bad = _damaged(tmp_path)
    cmd = [sys.executable, "-m", "media_search", "index", str(bad), "--uri", str(tmp_path / "i.db")]
    subprocess.run(cmd, capture_output=True, text=True, env=cli_env, timeout=300, check=False)
    query = [sys.executable, "-m", "media_search", "query", str(bad / "truncated.mkv"), "--uri", str(tmp_path / "i.db")]
    out = subprocess.run(query, capture_output=True, text=True, env=cli_env, timeout=300)
    assert out.returncode == 0 and not DECODER_LINE.search(out.stderr), out.stderr

    loud = subprocess.run([*cmd[:-2], "--uri", str(tmp_path / "j.db"), "--verbose"], capture_output=True, text=True,
                          env=cli_env, timeout=300)  # fmt: skip
    assert DECODER_LINE.search(loud.stderr), "--verbose shows the decoders' lines raw"


# -- long media through the real CLI (slow) ---------------------------------------------------------
_PEAK = textwrap.dedent(
    """
    import resource, subprocess, sys
    rc = subprocess.run(sys.argv[1:]).returncode
    print("PEAK_MB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, file=sys.stderr)
    sys.exit(rc)
    """
)


def _run_peak(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    out = subprocess.run([sys.executable, "-c", _PEAK, sys.executable, "-m", "media_search", *args],
                         capture_output=True, text=True, env=env, timeout=1500)  # fmt: skip
    peak = float(re.findall(r"PEAK_MB ([\d.]+)", out.stderr)[-1])
    return out, peak


@pytest.mark.slow
@needs_ffmpeg
def test_long_recording_and_video_index_and_query_in_bounded_memory(tmp_path: Path, cli_env: dict[str, str]) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    # 25 minutes of stereo 44.1 kHz: brown noise with a chirping tone; a marked excerpt is the query's middle.
    _ffmpeg("-f", "lavfi", "-i", "anoisesrc=d=1500:c=brown:a=0.3:seed=5", "-f", "lavfi",
            "-i", "sine=frequency=500:beep_factor=3:duration=1500", "-filter_complex",
            "[0][1]amix=inputs=2,aformat=sample_rates=44100:channel_layouts=stereo", "-b:a", "96k",
            str(lib / "recording.mp3"))  # fmt: skip
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-f", "lavfi", "-i", "anoisesrc=d=720:c=pink:a=0.2",
            "-t", "720", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
            str(lib / "film.mp4"))  # fmt: skip
    env = {**cli_env, "MEDIA_SEARCH_STREAM_SECONDS": "120"}
    # Not measured: a first run on a machine makes both ONNX engines, in child processes that
    # peak at up to 2.4 GB (once per model and machine); the bound is for every run after that.
    warm = tmp_path / "warm.mp4"
    _ffmpeg("-i", str(lib / "film.mp4"), "-t", "3", "-c", "copy", str(warm))
    assert subprocess.run([sys.executable, "-m", "media_search", "index", str(warm), "--uri", str(tmp_path / "w.db")],
                          capture_output=True, env=env, timeout=600).returncode == 0  # fmt: skip
    db = str(tmp_path / "i.db")
    out, peak = _run_peak(["index", str(lib), "--uri", db], env)
    assert out.returncode == 0, out.stderr
    assert "indexed 2" in out.stdout and "300 audio windows" not in out.stdout
    # Issue 19's bound, both models and their engines included (it held at 1,600 MB before the
    # keyframes were let go while the soundtrack streams, README "Long media"); decoded whole,
    # these 25 minutes would add about 1 GB more.
    assert peak < 1500, f"indexing peaked at {peak:.0f} MB"
    # A 20-minute query: other noise, then 3 minutes of the recording from 10:00 placed at 8:00.
    _ffmpeg("-f", "lavfi", "-i", "anoisesrc=d=480:c=white:a=0.05:seed=9", "-ss", "600", "-t", "180",
            "-i", str(lib / "recording.mp3"), "-f", "lavfi", "-i", "anoisesrc=d=540:c=white:a=0.05:seed=11",
            "-filter_complex", "[0]aformat=sample_rates=44100:channel_layouts=stereo[a];"
            "[1]aformat=sample_rates=44100:channel_layouts=stereo[b];"
            "[2]aformat=sample_rates=44100:channel_layouts=stereo[c];[a][b][c]concat=n=3:v=0:a=1",
            str(tmp_path / "query.wav"))  # fmt: skip
    out, peak = _run_peak(["query", str(tmp_path / "query.wav"), "--uri", db, "--json", "--kind", "audio"], env)
    assert out.returncode == 0, out.stderr
    assert peak < 1500, f"the query peaked at {peak:.0f} MB"
    top = json.loads(out.stdout)["results"][0]
    assert top["path"].endswith("recording.mp3") and top["copy"]
    # library time = query time + offset: 10:00 in the recording is 8:00 in the query
    assert top["timestamp"] - top["query_timestamp"] == pytest.approx(120, abs=1)


# -- limits and crash safety ------------------------------------------------------------------------
def test_query_longer_than_the_limit_is_refused(tmp_path: Path) -> None:
    import soundfile as sf

    from media_search.config import Settings
    from media_search.errors import DecodeError
    from media_search.query.search import search

    sf.write(tmp_path / "ten.wav", _signal(10.0, 8000), 8000)
    settings = Settings(uri=str(tmp_path / "unused.db"), max_query_seconds=5.0)
    with pytest.raises(DecodeError, match=r"longer than the 0:05.* a query may last .*MEDIA_SEARCH_MAX_QUERY_SECONDS"):
        search(tmp_path / "ten.wav", store=None, embedders=None, settings=settings)  # type: ignore[arg-type]


class _Crash(Exception):
    pass


@pytest.mark.slow
def test_a_kill_between_parts_of_a_streamed_file_is_repaired(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long sound's rows go in several parts under one pending mark: a crash after the first
    part leaves a pending file, and the next run leaves exactly the rows of one clean run."""
    import functools

    import soundfile as sf

    from media_search.indexing import stream as index_stream
    from media_search.library import Library
    from media_search.signals.stream import Landmarker
    from media_search.store.milvus import MilvusStore

    sf.write(tmp_path / "long.wav", _signal(100.0, 16000), 16000)
    monkeypatch.setattr(index_stream, "PART_ROWS", 2)  # 20 windows, written in three parts
    monkeypatch.setattr(index_stream, "Landmarker", functools.partial(Landmarker, segment=750))  # 12 s segments
    calls = {"n": 0}
    real = MilvusStore.upsert_rows

    def crashing(self: MilvusStore, kind: str, columns: dict) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise _Crash("killed between two parts")
        return real(self, kind, columns)

    with Library(uri=str(tmp_path / "i.db"), stream_seconds=20.0) as lib:
        monkeypatch.setattr(MilvusStore, "upsert_rows", crashing)
        with pytest.raises(_Crash):
            lib.index([tmp_path / "long.wav"], workers=0)
        assert lib.store.pending_files(), "the half-written file is marked pending"
        assert 2 <= lib.store.count("audio") < 20  # the first part is in; the next run must remove it
        monkeypatch.setattr(MilvusStore, "upsert_rows", real)
        report = lib.index([tmp_path / "long.wav"], workers=0)
        assert report.indexed == 1 and report.windows == 20 and any("repaired" in n for n in report.notes)
        rows = lib.store.all_rows("audio")
        assert len(rows) == 20 and len({r.id for r in rows}) == 20
        assert sorted(r.timestamp for r in rows) == [5.0 * i for i in range(20)]
        assert not lib.store.pending_files()


@pytest.mark.skipif(not has_ffmpeg(), reason="needs ffmpeg")
def test_a_video_whose_soundtrack_is_streamed_keeps_its_keyframe_rows(tmp_path: Path) -> None:
    """Past ``stream_seconds`` a video's soundtrack is streamed in parts; its keyframes are written
    with every field of the schema (copy signals included) and both kinds are searchable."""
    from media_search import Library

    video = tmp_path / "lib" / "long.mp4"
    video.parent.mkdir()
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=5:duration=40", "-f", "lavfi", "-i",
            "sine=frequency=440:duration=40", "-c:v", "libx264", "-c:a", "aac", "-shortest", str(video))  # fmt: skip
    with Library(uri=str(tmp_path / "lib.db"), stream_seconds=10) as lib:
        report = lib.index([video.parent])
        assert report.indexed == 1 and not report.failed, report.to_dict()
        assert report.keyframes > 0 and report.windows > 0
        assert lib.store.count("video") == report.keyframes and lib.store.count("audio") == report.windows
        rows = lib.store.fetch_rows("video", [r.file_id for r in lib.store.iter_files()], vectors=False)
        local = lib.store.local_features("video", [r.id for r in rows])
        # every keyframe keeps its local features (a streamed soundtrack once dropped them)
        assert len(rows) == report.keyframes and sorted(local) == sorted(r.id for r in rows)


def test_keyframes_get_their_local_features_as_they_are_decoded_and_a_query_gets_none(tmp_path: Path) -> None:
    """The indexer's decode computes each keyframe's local features on the way (no local pictures
    are held for the whole video); a query's decode, which does not use them, skips them."""
    from media_search.config import Settings
    from media_search.decode.file import decode_video

    video = tmp_path / "v.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=5:duration=12", "-c:v", "libx264", str(video))
    settings = Settings(uri=str(tmp_path / "x.db"))
    d = decode_video(video, settings, soundtrack=False)
    assert d.n_frames > 1 and d.pictures is None
    assert d.local is not None and len(d.local) == d.n_frames and all(d.local)
    q = decode_video(video, settings, soundtrack=False, local=False)
    assert q.local is None and q.pictures is None and q.n_frames == d.n_frames


def test_lite_writes_in_small_buffers_and_the_cli_frees_arrow_memory(tmp_path: Path) -> None:
    """Milvus Lite turns its write buffer into Python objects when it writes a segment (a spike of
    about 7x the buffer): a store opens it with ``store.lite.WRITE_BUFFER`` unless the user set one.
    The CLI's Arrow allocator is the system one, which gives freed segment buffers back."""
    from media_search.store.lite import WRITE_BUFFER

    probe = textwrap.dedent(f"""
        from media_search.store.milvus import MilvusStore
        MilvusStore({str(tmp_path / "x.db")!r}).has("image")
        import milvus_lite.constants as c
        print(c.MEMTABLE_MEMORY_LIMIT)
    """)
    env = {k: v for k, v in os.environ.items() if k != "MILVUS_LITE_MEMTABLE_MEMORY_LIMIT_BYTES"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout.split()[-1]) == WRITE_BUFFER
    env["MILVUS_LITE_MEMTABLE_MEMORY_LIMIT_BYTES"] = str(3 << 20)
    out = subprocess.run([sys.executable, "-c", probe.replace("x.db", "y.db")], env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout.split()[-1]) == 3 << 20, "the user's own setting wins"
    cli = "from media_search.cli import _lean_heap; _lean_heap(); import pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    env.pop("ARROW_DEFAULT_MEMORY_POOL", None)
    assert subprocess.run([sys.executable, "-c", cli], env=env, capture_output=True, text=True, check=True).stdout.split()[-1] == "system"


def test_a_long_query_is_not_widened_past_the_hit_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A query of many windows against a library of one long recording: each widening of the
    search multiplies its hits by the query's windows (120 windows x 16,384 rows was 2 million
    hits, 41 s and 700 MB, to learn that the library holds one file). Past ``HIT_BUDGET`` hits it
    stops, with the file found; a query of one window widens, and a widened search leaves out the
    file it found, so it learns at once that there is no other."""
    from media_search.embed.spec import ModelSpec
    from media_search.identity import file_id, row_id
    from media_search.query import pool
    from media_search.store.milvus import MilvusStore

    spec = ModelSpec("cnn14", "random:0", 64, "COSINE", "v1:test")
    store = MilvusStore(str(tmp_path / "index.db"))
    try:
        store.ensure("audio", spec)
        rng = np.random.default_rng(0)
        vecs = rng.standard_normal((600, 64)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        fid = file_id("/lib/long.wav")
        stamps = [2.5 * i for i in range(600)]
        store.upsert_rows("audio", {
            "id": [row_id(fid, "a", t) for t in stamps], "file_id": [fid] * 600, "vector": vecs,
            "path": ["/lib/long.wav"] * 600, "content_hash": ["0" * 64] * 600, "timestamp": stamps,
            "duration": [1500.0] * 600, "source": ["audio"] * 600,
        })  # fmt: skip
        limits: list[int] = []
        real = MilvusStore.search

        def counted(self, kind, vectors, limit, **kw):  # type: ignore[no-untyped-def]
            limits.append(limit)
            return real(self, kind, vectors, limit, **kw)

        monkeypatch.setattr(MilvusStore, "search", counted)
        monkeypatch.setattr(pool, "HIT_BUDGET", 4096)
        lib = pool.Ctx(store, None, None)  # type: ignore[arg-type]  # ``candidates`` uses the store only
        long_query = vecs[:40] + 0.01
        assert list(pool.candidates(lib, "audio", long_query, 16, "f" * 64)) == [fid]
        assert limits == [64]  # 40 x 256 hits would pass the budget
        limits.clear()
        assert list(pool.candidates(lib, "audio", vecs[:1], 16, "f" * 64)) == [fid]
        assert limits == [64, 256]  # one window: widened once, past the file it found: no other file
    finally:
        store.close()
