"""The README cannot drift: its commands exist, every CLI command is documented and has help,
CI runs the README's test command, and the quick start runs and finds what it should."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path


from media_search.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _commands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sorted(sub.choices)


def test_every_cli_command_is_in_the_readme_and_has_help(cli_env):
    for command in _commands():
        assert re.search(rf"media-search {command}\b", README), f"README does not document `media-search {command}`"
        out = subprocess.run(["media-search", command, "--help"], capture_output=True, text=True, env=cli_env, timeout=60)
        assert out.returncode == 0 and "usage: media-search" in out.stdout, out.stderr


def test_ci_runs_the_readme_test_command():
    test_command = "bash scripts/test.sh"
    assert f"```bash\n{test_command}\n```" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.rstrip().splitlines()[-1] == test_command
    assert "torch==2.14.1 torchvision==0.29.1" in ci
    # CI installs into the same venv the README's commands use.
    assert ".venv/bin/python -m pip install" in ci and (ROOT / "scripts" / "test.sh").is_file()


def test_readme_quick_start_is_the_script():
    assert "```bash\nbash scripts/quickstart.sh\n```" in README
    assert (ROOT / "scripts" / "quickstart.sh").is_file()


def test_bulk_script_is_the_cli_index_path(cli_env):
    out = subprocess.run(["python3", str(ROOT / "scripts" / "index_media.py"), "--help"], capture_output=True, text=True, env=cli_env, timeout=60)
    assert out.returncode == 0 and "usage: media-search index" in out.stdout


def test_quick_start_runs_on_the_sample_media(tmp_path, cli_env):
    """The README's one command, as a newcomer runs it (random weights, no pip step)."""
    env = {**cli_env, "QUICKSTART_NO_INSTALL": "1", "MEDIA_SEARCH_MILVUS_URI": str(tmp_path / "quickstart.db")}
    out = subprocess.run(["bash", "scripts/quickstart.sh"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    summary = text.splitlines()[0]
    assert re.match(r"indexed \d+ \(", summary), summary
    assert "failed 0" in summary, text
    assert "random" in out.stderr  # the weights are announced
    sections = text.split("--- ")
    image, video, sound = sections[1], sections[2], sections[3]
    first = lambda s: next(line for line in s.splitlines() if re.match(r"\s+1\. ", line))  # noqa: E731
    first_image = next(line for line in image.splitlines() if "  image  " in line)
    assert re.search(r"(photos/astronaut\.jpg|variants/astronaut_copy\.jpg)( |$)", first_image), image
    assert "[edited copy" in first_image, image  # the crop is recognised as an edited copy
    # An image query searches videos too: space_tour.mp4 pans over the astronaut.
    assert any("space_tour" in line for line in image.splitlines()[1:4]), image
    assert "videos/space_tour.mp4" in first(video), video
    assert re.search(r"at 0:0[1-3]\.", first(video)), video  # the clip starts at 2 s of the source
    assert "chords.flac" in first(sound) or "space_tour.mp4" in first(sound), sound
    assert "exact copy" not in image or "astronaut_copy.jpg" in image
