"""Command one as a new user runs it: a throwaway non-root account, Debian's /usr/bin/python3,
a clean HOME, a fresh ``git clone`` of this repository, random weights, no weight download.

The account, its clone and its venv are made once for this module (installing torch into the
venv from the package index takes minutes) and removed at the end. Outside CI the tests skip
when they cannot run here (not root, no /usr/bin/python3 with venv); in CI they must run.
"""

from __future__ import annotations

import ast
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: The first quick start installs torch and the rest into a fresh venv: minutes, beyond pytest's default.
pytestmark = pytest.mark.timeout(3000)

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_PYTHON = "/usr/bin/python3"
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
#: What the first quick start needs in the temporary folder: its home held 7.9 GB at most (a venv with
#: PyPI's CUDA torch, the ONNX engines, the index), sampled every 5 s on 2026-12-04.
NEEDS_FREE_GB = 9
RANDOM_DEMO = "MEDIA_SEARCH_IMAGE_WEIGHTS=random MEDIA_SEARCH_AUDIO_WEIGHTS=random bash scripts/quickstart.sh"


def _cannot_run() -> str | None:
    if os.name != "posix" or os.geteuid() != 0:
        return "needs root, to create a throwaway non-root user with useradd"
    for tool in ("useradd", "userdel", "git"):
        if not shutil.which(tool):
            return f"needs {tool}"
    if not os.access(DEBIAN_PYTHON, os.X_OK):
        return f"needs the distribution's {DEBIAN_PYTHON}"
    if subprocess.run([DEBIAN_PYTHON, "-c", "import venv, ensurepip"], capture_output=True).returncode:
        return f"{DEBIAN_PYTHON} cannot make a venv (apt install python3-venv)"
    return None


def _pip_env() -> dict[str, str]:
    """The package sources this machine's pip uses (root's config included), as PIP_* variables.

    A new user reaches the same indexes as root would; on a real machine that is PyPI.
    """
    env: dict[str, str] = {}
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        key, _, value = line.partition("=")
        section, _, name = key.rpartition(".")
        if section in ("global", "install", ":env:") and name:
            try:
                env["PIP_" + name.upper().replace("-", "_")] = str(ast.literal_eval(value))
            except (ValueError, SyntaxError):
                continue
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_")})
    return env


@dataclass
class NewUser:
    name: str
    uid: int
    gid: int
    home: Path
    clone: Path

    def run(self, extra_env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
        env = {
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "PATH": "/usr/bin:/bin",  # python3 is Debian's
            "LANG": "C.UTF-8",
            **_pip_env(),
            **extra_env,
        }
        return subprocess.run(
            ["bash", "scripts/quickstart.sh"],
            cwd=self.clone, env=env, user=self.uid, group=self.gid, extra_groups=[],
            capture_output=True, text=True, timeout=timeout,
        )


@pytest.fixture(scope="module")
def new_user() -> Iterator[NewUser]:
    why = _cannot_run()
    if why:
        if IN_CI:
            pytest.fail(f"the quick-start test must run in CI: it {why}")
        pytest.skip(f"quick start as a new user: {why}")
    free = shutil.disk_usage(tempfile.gettempdir()).free
    if free < NEEDS_FREE_GB * 2**30:  # a machine's lack, not the project's: say so, in CI too
        pytest.skip(
            f"quick start as a new user: {tempfile.gettempdir()} has {free / 2**30:.1f} GB free and the new user's "
            f"clone and venv need about {NEEDS_FREE_GB} GB (7.9 GB at most, measured, with PyPI's torch)"
        )
    name = f"msqs{uuid.uuid4().hex[:8]}"
    home = Path(tempfile.mkdtemp(prefix=f"{name}-home-"))
    subprocess.run(["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/bash", "--user-group", name], check=True)
    try:
        pw = pwd.getpwnam(name)
        clone = home / "media_search"
        # file:// copies the objects (a local path would hardlink them, and chown would reach the original).
        subprocess.run(["git", "clone", "--quiet", f"file://{ROOT}", str(clone)], check=True, capture_output=True)
        subprocess.run(["chown", "-R", f"{pw.pw_uid}:{pw.pw_gid}", str(home)], check=True)
        home.chmod(0o755)
        yield NewUser(name, pw.pw_uid, pw.pw_gid, home, clone)
    finally:
        subprocess.run(["userdel", name], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(Path(tempfile.gettempdir()) / f"torchinductor_{name}", ignore_errors=True)  # torch's per-user cache


@pytest.fixture(scope="module")
def first_run(new_user: NewUser) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    out = new_user.run({"MEDIA_SEARCH_IMAGE_WEIGHTS": "random", "MEDIA_SEARCH_AUDIO_WEIGHTS": "random"}, timeout=2400)
    seconds = time.monotonic() - started
    print(f"\nquick start as a new user, from a fresh clone: {seconds:.0f} s", file=sys.stderr)
    return out


def test_quickstart_as_a_new_user_finds_the_three_sources(first_run: subprocess.CompletedProcess[str], new_user: NewUser) -> None:
    out = first_run
    assert out.returncode == 0, f"stdout:\n{out.stdout[-3000:]}\nstderr:\n{out.stderr[-5000:]}"
    assert "random" in out.stderr  # the weights are announced
    sections = out.stdout.split("--- ")
    assert len(sections) == 4, out.stdout
    summary, image, video, sound = sections
    assert re.search(r"indexed \d+ \(", summary) and "failed 0" in summary, summary
    first = lambda s: next(line for line in s.splitlines() if re.match(r"\s+1\. ", line))  # noqa: E731
    assert re.search(r"(photos/astronaut\.jpg|variants/astronaut_copy\.jpg)( |$)", image), image
    assert "videos/space_tour.mp4" in first(video), video
    assert "chords.flac" in first(sound) or "space_tour.mp4" in first(sound), sound
    venv = new_user.clone / ".venv"
    assert (venv / "pyvenv.cfg").read_text().count("/usr/bin") >= 1  # made by Debian's python3
    # Random weights: nothing was downloaded.
    assert not list(new_user.home.glob(".cache/torch/hub/checkpoints/*.pth"))


def test_quickstart_offline_stops_with_the_random_weights_command(first_run: subprocess.CompletedProcess[str], new_user: NewUser) -> None:
    if first_run.returncode != 0:
        pytest.skip("the first quick start failed (see the test above)")
    dead = "http://127.0.0.1:9"  # nothing listens there: every download is refused at once
    offline = {"https_proxy": dead, "http_proxy": dead, "HTTPS_PROXY": dead, "HTTP_PROXY": dead, "no_proxy": "localhost,127.0.0.1", "NO_PROXY": "localhost,127.0.0.1"}
    out = new_user.run(offline, timeout=600)
    assert out.returncode != 0, out.stdout
    assert "Could not download the model weights" in out.stderr, out.stderr[-3000:]
    assert RANDOM_DEMO in out.stderr, out.stderr[-3000:]
    assert "--- " not in out.stdout, out.stdout  # stopped before the queries
    assert "Traceback" not in out.stderr, out.stderr[-3000:]


# --- the venv and torch steps, with stand-ins (no root, no install) ----------------------------


def _stub_python(path: Path, log: Path, *, venv_ok: bool = True, has_torch: bool = False) -> Path:
    """A python3 stand-in: `-m venv` makes a venv of stubs (or fails like Debian without
    python3-venv), `-m pip` is logged, the torch check fails (no torch), the rest runs for real."""
    path.write_text(
        f"""#!/bin/bash
if [ "$1" = -m ] && [ "$2" = venv ]; then
  {'mkdir -p "$3/bin" && cp "$0" "$3/bin/python"' if venv_ok else 'echo "The virtual environment was not created successfully because ensurepip is not available." >&2; exit 1'}
  exit 0
fi
if [ "$1" = -m ] && [ "$2" = pip ]; then echo "pip ${{*:3}}" >> {log}; exit 0; fi
if [ "$1" = - ] && [[ "$2" == torch* ]]; then exit {0 if has_torch else 1}; fi
if [ "$1" = -c ] && [[ "$2" == *torch.__version__* ]]; then echo 2.99.0+mine; exit 0; fi
exec {sys.executable} "$@"
"""
    )
    path.chmod(0o755)
    return path


def _installs(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.startswith("pip install")]


def _venv_steps(tmp_path: Path, env: dict[str, str], steps: str = "venv_make; venv_torch") -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "VENV": str(tmp_path / "venv"), "PYTHON": str(tmp_path / "python3")}
    return subprocess.run(["bash", "-c", f"set -euo pipefail; . scripts/venv.sh; {steps}"], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120)


def test_missing_venv_module_is_one_line_with_the_package_to_install(tmp_path: Path) -> None:
    _stub_python(tmp_path / "python3", tmp_path / "pip.log", venv_ok=False)
    out = _venv_steps(tmp_path, {})
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if "sudo apt install python3-venv" in line]
    assert len(lines) == 1, out.stderr
    assert not (tmp_path / "venv").exists()  # no half-made venv left to trip the next run


def test_torch_comes_from_the_cpu_index_or_the_one_asked_for(tmp_path: Path) -> None:
    log = tmp_path / "pip.log"
    _stub_python(tmp_path / "python3", log)
    dead = "http://127.0.0.1:9"
    offline = {"https_proxy": dead, "HTTPS_PROXY": dead}
    if Path("/proc/driver/nvidia/version").exists():
        pytest.skip("an NVIDIA GPU is present: the default index is the right one here")
    out = _venv_steps(tmp_path, offline)  # PyTorch's CPU index unreachable: the default index
    assert out.returncode == 0, out.stderr
    assert "cannot reach https://download.pytorch.org/whl/cpu" in out.stderr
    assert _installs(log) == ['pip install -q torch>=2.14 torchvision>=0.29']
    log.unlink()
    out = _venv_steps(tmp_path, {**offline, "TORCH_INDEX_URL": "https://example.invalid/whl/cpu"})
    assert out.returncode == 0, out.stderr
    assert _installs(log) == ['pip install -q --index-url https://example.invalid/whl/cpu torch>=2.14 torchvision>=0.29']


def test_a_disk_without_room_for_torch_stops_before_pip(tmp_path: Path) -> None:
    log = tmp_path / "pip.log"
    _stub_python(tmp_path / "python3", log)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    df = bin_dir / "df"  # 3,000 MB free where the venv is
    df.write_text("#!/bin/sh\necho 'Filesystem 1024-blocks Used Available Capacity Mounted on'\necho '/dev/x 100000000 97000000 3072000 97% /'\n")
    df.chmod(0o755)
    path = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    out = _venv_steps(tmp_path, {**path, "TORCH_INDEX_URL": "https://example.invalid/whl/cu130"})
    assert out.returncode == 1
    assert "need about 6.0 GB" in out.stderr and "has 3000 MB free" in out.stderr, out.stderr
    assert not log.exists() or not _installs(log)  # pip never ran
    out = _venv_steps(tmp_path, {**path, "TORCH_INDEX_URL": "https://example.invalid/whl/cpu"})  # the CPU build fits
    assert out.returncode == 0, out.stderr
    assert _installs(log) == ["pip install -q --index-url https://example.invalid/whl/cpu torch>=2.14 torchvision>=0.29"]


def test_a_torch_already_in_the_venv_is_kept(tmp_path: Path) -> None:
    log = tmp_path / "pip.log"
    _stub_python(tmp_path / "python3", log, has_torch=True)
    out = _venv_steps(tmp_path, {"TORCH_INDEX_URL": "https://example.invalid/whl/cpu"})
    assert out.returncode == 0, out.stderr
    assert "keeping the torch 2.99.0+mine" in out.stderr
    assert not log.exists() or not _installs(log)
