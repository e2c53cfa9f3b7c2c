"""Video decoding: keyframe timestamps, cuts, dropped frames, the cap, bad files, memory, time limit.

Every video is generated here with ffmpeg (or OpenCV's writer for MPEG-4 part 2)
from seeded numpy frames or lavfi sources.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from media_search.decode.keyframes import MAX_SIDE
from media_search.decode.video import Keyframe, VideoInfo, iter_keyframes, probe_video
from media_search.errors import DecodeError, UnsupportedMediaError

cv2 = pytest.importorskip("cv2")
if shutil.which("ffmpeg") is None:
    pytest.skip("ffmpeg is not installed", allow_module_level=True)

W, H, FPS = 160, 120, 25

CODECS = {
    "h264.mp4": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
    "h264.mkv": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
    "h264.mov": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
    "vp8.webm": ["-c:v", "libvpx", "-b:v", "1M", "-deadline", "realtime", "-cpu-used", "8"],
    "vp9.webm": ["-c:v", "libvpx-vp9", "-b:v", "1M", "-deadline", "realtime", "-cpu-used", "8"],
    "mjpg.avi": ["-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p"],
}


def scene(seed: int, t: float, *, moving: bool = True, w: int = W, h: int = H) -> np.ndarray:
    """A textured RGB frame (smooth random colours) with a white square moving at 30 px/s."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    frame = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    if moving:
        x = int(10 + 30 * t) % (w - 30)
        frame[40:70, x : x + 30] = 255
    return frame


def write_video(path: Path, frames, *, codec: str = "h264.mp4", fps: float = FPS, extra: list[str] | None = None) -> Path:
    """Encode an iterable of HxWx3 RGB uint8 frames with ffmpeg."""
    frames = iter(frames)
    first = next(frames)
    h, w = first.shape[:2]
    cmd = ["ffmpeg", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}"]
    cmd += ["-r", str(fps), "-i", "-", *CODECS[codec], *(extra or []), str(path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(first.tobytes())
    for f in frames:
        proc.stdin.write(f.tobytes())
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    return path


def scenes(plan: list[tuple[float, int | None]], *, fps: float = FPS, moving: bool = True):
    """Frames for consecutive (seconds, seed) segments; seed None means black."""
    t0 = 0.0
    for seconds, seed in plan:
        for k in range(round(seconds * fps)):
            t = t0 + k / fps
            yield np.zeros((H, W, 3), np.uint8) if seed is None else scene(seed, t, moving=moving)
        t0 += seconds


def keyframes(path: Path, **kw) -> tuple[list[Keyframe], list[str]]:
    notes: list[str] = []
    return list(iter_keyframes(path, notes=notes, **kw)), notes


@pytest.mark.parametrize("codec", list(CODECS))
def test_formats_probe_and_interval_timestamps(tmp_path: Path, codec: str) -> None:
    path = write_video(tmp_path / f"v.{codec}", scenes([(4.0, 1)]), codec=codec)
    info = probe_video(path)
    assert isinstance(info, VideoInfo)
    assert (info.width, info.height) == (W, H)
    assert info.fps == pytest.approx(FPS, rel=0.01)
    assert abs(info.frame_count - 100) <= 2
    assert info.duration == pytest.approx(4.0, abs=0.1)

    kfs, notes = keyframes(path, interval=1.0)
    assert [k.reason for k in kfs] == ["interval"] * 4
    assert [k.timestamp for k in kfs] == pytest.approx([0.0, 1.0, 2.0, 3.0], abs=0.5 / FPS)
    assert notes == []
    for k in kfs:
        assert k.rgb.dtype == np.uint8 and k.rgb.shape == (H, W, 3)


def test_mpeg4_part2_written_by_opencv(tmp_path: Path) -> None:
    path = tmp_path / "mp4v.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MPEG-4 part 2 ('mp4v')")
    for f in scenes([(3.0, 2)]):
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    assert probe_video(path).frame_count == 75
    kfs, _ = keyframes(path)
    assert [k.timestamp for k in kfs] == pytest.approx([0.0, 1.0, 2.0], abs=0.5 / FPS)


def test_rgb_channel_order(tmp_path: Path) -> None:
    red = np.zeros((H, W, 3), np.uint8)
    red[..., 0] = 200
    red[::8, :, 1] = 120  # stripes: not a blank frame
    path = write_video(tmp_path / "red.mp4", [red] * 10)
    (kf,) = keyframes(path)[0]
    assert kf.rgb[..., 0].mean() > 150 and kf.rgb[..., 2].mean() < 50


def test_large_frames_are_downscaled(tmp_path: Path) -> None:
    frames = [scene(3, k / FPS, w=640, h=360) for k in range(10)]
    path = write_video(tmp_path / "big.mp4", frames)
    (kf,) = keyframes(path)[0]
    assert kf.rgb.shape == (MAX_SIDE, 455, 3)


@pytest.mark.parametrize("codec", ["h264.mp4", "vp9.webm", "mjpg.avi"])
@pytest.mark.parametrize("cut", [2.4, 2.52])  # on a probe frame (every 6th), and between probes
def test_cut_at_non_multiple_time_found_to_the_frame(tmp_path: Path, codec: str, cut: float) -> None:
    path = write_video(tmp_path / f"cut.{codec}", scenes([(cut, 1), (4.0 - cut, 2)]), codec=codec)
    kfs, _ = keyframes(path, interval=1.0)
    cuts = [k for k in kfs if k.reason == "cut"]
    assert len(cuts) == 1
    assert abs(cuts[0].timestamp - cut) <= 1.0 / FPS + 1e-6
    assert [k.timestamp for k in kfs if k.reason == "interval"] == pytest.approx([0, 1, 2, 3], abs=0.5 / FPS)
    assert [k.timestamp for k in kfs] == sorted(k.timestamp for k in kfs)


def test_motion_alone_makes_no_cut(tmp_path: Path) -> None:
    path = write_video(tmp_path / "pan.mp4", (scene(4, k / FPS, w=W, h=H) for k in range(100)))
    assert all(k.reason == "interval" for k in keyframes(path)[0])


def test_black_intro_dropped(tmp_path: Path) -> None:
    path = write_video(tmp_path / "intro.mp4", scenes([(1.5, None), (2.5, 5)]))
    kfs, _ = keyframes(path)
    assert kfs[0].timestamp == pytest.approx(1.5, abs=1.0 / FPS)
    assert all(k.rgb.mean() > 40 for k in kfs)
    assert [k.timestamp for k in kfs[1:]] == pytest.approx([2.0, 3.0], abs=0.5 / FPS)


def test_static_video_gives_one_keyframe(tmp_path: Path) -> None:
    path = write_video(tmp_path / "static.mp4", scenes([(5.0, 6)], moving=False))
    kfs, _ = keyframes(path)
    assert len(kfs) == 1 and kfs[0].timestamp == 0.0


def test_all_black_yields_nothing_with_a_note(tmp_path: Path) -> None:
    path = write_video(tmp_path / "black.mp4", scenes([(2.0, None)]))
    kfs, notes = keyframes(path)
    assert kfs == [] and any("black or blank" in n for n in notes)


def test_blank_colour_card_dropped(tmp_path: Path) -> None:
    card = np.full((H, W, 3), (30, 160, 220), np.uint8)
    frames = [card] * 25 + [scene(7, k / FPS) for k in range(25, 50)]
    kfs, _ = keyframes(write_video(tmp_path / "card.mp4", frames))
    assert kfs and kfs[0].timestamp >= 1.0 - 1e-6


def test_cap_widens_interval_and_notes_it(tmp_path: Path) -> None:
    path = write_video(tmp_path / "long.mp4", scenes([(8.0, 8)], fps=10), fps=10)
    kfs, notes = keyframes(path, interval=0.5, max_frames=5)
    assert notes == ["long video: sampled every 2.0 s instead of 0.5 s (cap 5 frames)"]
    assert [k.timestamp for k in kfs] == pytest.approx([0.0, 2.0, 4.0, 6.0])


def test_unknown_frame_count_streams_to_the_end(tmp_path: Path) -> None:
    piped = tmp_path / "piped.mkv"  # encoded straight into a pipe: no duration, no cues
    with piped.open("wb") as out:
        subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", f"testsrc2=s={W}x{H}:r={FPS}:d=3",
                        "-c:v", "libx264", "-preset", "ultrafast", "-f", "matroska", "pipe:"], stdout=out, check=True)
    assert cv2.VideoCapture(str(piped)).get(cv2.CAP_PROP_FRAME_COUNT) <= 0
    assert probe_video(piped).frame_count == 75
    kfs, notes = keyframes(piped)
    assert [k.timestamp for k in kfs] == pytest.approx([0.0, 1.0, 2.0], abs=0.5 / FPS)
    assert notes == []


# --- bad input ---------------------------------------------------------------------


def test_mp4_with_moov_cut_off(tmp_path: Path) -> None:
    good = write_video(tmp_path / "good.mp4", scenes([(3.0, 1)]))  # moov at the end
    data = good.read_bytes()
    bad = tmp_path / "nomoov.mp4"
    bad.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DecodeError, match="moov"):
        probe_video(bad)
    with pytest.raises(DecodeError, match="moov"):
        list(iter_keyframes(bad))


def test_mp4_with_data_cut_short_gives_partial_keyframes(tmp_path: Path) -> None:
    good = write_video(tmp_path / "fast.mp4", scenes([(4.0, 1)]), extra=["-movflags", "+faststart"])
    data = good.read_bytes()
    bad = tmp_path / "short.mp4"
    bad.write_bytes(data[: len(data) // 2])
    kfs, notes = keyframes(bad)
    assert 1 <= len(kfs) < 4
    assert len(notes) == 1 and "ends early at" in notes[0] and "truncated" in notes[0]


def test_audio_only_mp4_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "audio.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=f=440:d=1", "-c:a", "aac", str(path)],
                   check=True)
    with pytest.raises(UnsupportedMediaError, match="no video stream"):
        probe_video(path)
    with pytest.raises(UnsupportedMediaError):
        list(iter_keyframes(path))


def test_text_file_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("not a video\n" * 100)
    with pytest.raises(UnsupportedMediaError):
        list(iter_keyframes(path))


def test_single_frame_video(tmp_path: Path) -> None:
    path = write_video(tmp_path / "one.mp4", [scene(3, 0.0)])
    assert probe_video(path).frame_count == 1
    kfs, notes = keyframes(path)
    assert len(kfs) == 1 and kfs[0].timestamp == 0.0 and notes == []


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(DecodeError, match="empty file"):
        probe_video(path)
    with pytest.raises(DecodeError, match="empty file"):
        list(iter_keyframes(path))


def test_directory_named_like_a_video(tmp_path: Path) -> None:
    path = tmp_path / "x.mp4"
    path.mkdir()
    with pytest.raises(UnsupportedMediaError, match="is a directory"):
        probe_video(path)
    with pytest.raises(UnsupportedMediaError, match="is a directory"):
        list(iter_keyframes(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="does not exist"):
        probe_video(tmp_path / "gone.mp4")


# --- resources ---------------------------------------------------------------------


def test_timeout_fires(tmp_path: Path) -> None:
    path = write_video(tmp_path / "t.mp4", scenes([(2.0, 1)]))
    with pytest.raises(DecodeError, match="longer than"):
        list(iter_keyframes(path, timeout=1e-4))


def test_time_held_by_the_consumer_does_not_count(tmp_path: Path) -> None:
    path = write_video(tmp_path / "t.mp4", scenes([(4.0, 1)]))
    n = 0
    for _ in iter_keyframes(path, timeout=1.5):
        time.sleep(0.5)
        n += 1
    assert n == 4


def test_memory_stays_flat_on_a_long_video(tmp_path: Path) -> None:
    path = tmp_path / "long.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=60",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)], check=True)
    tracemalloc.start()
    try:
        n = sum(1 for _ in iter_keyframes(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n >= 55
    assert peak < 4 * 2**20  # a few 320x240 frames, not 1,500 of them (350 MB)
