"""media_search.embed.weights against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import argparse
import hashlib
import http.server
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from media_search.embed import weights as W
from media_search.errors import WeightsUnavailableError

ROOT = Path(__file__).resolve().parents[1]
SETTING = "MEDIA_SEARCH_TEST_WEIGHTS"


# --- a tiny file server ----------------------------------------------------------


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}  # path -> body
        self.truncate: set[str] = set()  # announce more than is sent, then hang up
        self.stall: set[str] = set()  # send headers, then nothing for 2 s
        self.hits: Counter[str] = Counter()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802
        srv = self.server
        srv.hits[self.path] += 1
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        extra = 100_000 if self.path in srv.truncate else 0
        self.send_header("Content-Length", str(len(body) + extra))
        self.end_headers()
        if self.path in srv.stall:
            time.sleep(2)
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def server():
    srv = _Server()
    thread = threading.Thread(
        target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def blob() -> bytes:
    return np.random.default_rng(7).bytes(300_000)


def _wf(url: str, body: bytes, *, full_hash: bool = True, **kw: object) -> W.WeightsFile:
    digest = hashlib.sha256(body).hexdigest()
    fields: dict = dict(
        filename="model-test.pth",
        url=url,
        setting=SETTING,
        sha256=digest if full_hash else digest[:8],
        size=len(body),
        weights_id="TESTNET",
    )
    fields.update(kw)
    return W.WeightsFile(**fields)


def _serve(server: _Server, body: bytes, name: str = "model.pth") -> str:
    server.files["/" + name] = body
    return server.url(name)


def _assert_clear_failure(err: WeightsUnavailableError, wf: W.WeightsFile, dest: Path) -> None:
    msg = str(err)
    for part in (wf.filename, wf.url, str(dest / wf.filename), wf.setting, "random", "tests only"):
        assert part in msg, f"{part!r} missing from: {msg}"
    assert err.__cause__ is not None or "sha256" in msg or "bytes" in msg


# --- download --------------------------------------------------------------------


def test_download_places_checked_file_once(server: _Server, blob: bytes, tmp_path: Path) -> None:
    wf = _wf(_serve(server, blob), blob)
    path = W.download(wf, tmp_path, progress=False)
    assert path == tmp_path / wf.filename
    assert path.read_bytes() == blob
    assert sorted(p.name for p in tmp_path.iterdir()) == [wf.filename]  # no temp file left
    assert W.download(wf, tmp_path, progress=False) == path
    assert server.hits["/model.pth"] == 1


def test_download_accepts_torchvision_style_hash_prefix(
    server: _Server, blob: bytes, tmp_path: Path
) -> None:
    wf = _wf(_serve(server, blob), blob, full_hash=False, size=None)
    assert W.download(wf, tmp_path / "new" / "dir", progress=True).read_bytes() == blob


def test_wrong_hash_leaves_nothing(server: _Server, blob: bytes, tmp_path: Path) -> None:
    wf = _wf(_serve(server, blob), blob, sha256="0" * 64)
    with pytest.raises(WeightsUnavailableError, match="sha256") as info:
        W.download(wf, tmp_path, progress=False)
    _assert_clear_failure(info.value, wf, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_truncated_transfer_leaves_nothing(server: _Server, blob: bytes, tmp_path: Path) -> None:
    url = _serve(server, blob)
    server.truncate.add("/model.pth")
    wf = _wf(url, blob, size=None)  # no size known: the Content-Length check must catch it
    with pytest.raises(WeightsUnavailableError, match="cut short") as info:
        W.download(wf, tmp_path, progress=False)
    _assert_clear_failure(info.value, wf, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_announced_size_mismatch_fails_before_reading(
    server: _Server, blob: bytes, tmp_path: Path
) -> None:
    wf = _wf(_serve(server, blob), blob, size=len(blob) + 1)
    with pytest.raises(WeightsUnavailableError, match="bytes"):
        W.download(wf, tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_server_down_fails_fast_with_instructions(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/ckpt-abc.pth"
    wf = W.WeightsFile("ckpt-abc.pth", url, SETTING, sha256="abc")
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match="cannot reach the server") as info:
        W.download(wf, tmp_path, progress=False)
    assert time.monotonic() - start < 5
    _assert_clear_failure(info.value, wf, tmp_path)
    assert info.value.path == str(tmp_path / wf.filename)
    assert list(tmp_path.iterdir()) == []


def test_http_404(server: _Server, blob: bytes, tmp_path: Path) -> None:
    wf = _wf(server.url("missing.pth"), blob)
    with pytest.raises(WeightsUnavailableError, match="HTTP 404") as info:
        W.download(wf, tmp_path, progress=False)
    _assert_clear_failure(info.value, wf, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_read_timeout(server: _Server, blob: bytes, tmp_path: Path) -> None:
    url = _serve(server, blob)
    server.stall.add("/model.pth")
    wf = _wf(url, blob)
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as info:
        W.download(wf, tmp_path, progress=False, timeout=0.3)
    assert time.monotonic() - start < 1.8
    _assert_clear_failure(info.value, wf, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cached", [b"partial", None], ids=["wrong-size", "right-size-wrong-bytes"])
def test_bad_cached_file_is_downloaded_again(
    server: _Server, blob: bytes, tmp_path: Path, cached: bytes | None
) -> None:
    wf = _wf(_serve(server, blob), blob)
    (tmp_path / wf.filename).write_bytes(cached if cached is not None else bytes(len(blob)))
    assert W.download(wf, tmp_path, progress=False).read_bytes() == blob
    assert server.hits["/model.pth"] == 1


# --- resolve ---------------------------------------------------------------------


def test_resolve_pretrained(server: _Server, blob: bytes, tmp_path: Path) -> None:
    wf = _wf(_serve(server, blob), blob)
    got = W.resolve("pretrained", wf, dest_dir=tmp_path)
    want = W.ResolvedWeights("pretrained", tmp_path / wf.filename, f"TESTNET:{wf.sha256[:16]}")
    assert got == want
    short = _wf(wf.url, blob, full_hash=False)
    got = W.resolve(" Pretrained ", short, dest_dir=tmp_path)
    assert got.weights_id == f"TESTNET:{wf.sha256[:8]}"


def test_resolve_random_touches_nothing(tmp_path: Path) -> None:
    wf = W.WeightsFile("x.pth", "http://127.0.0.1:9/x.pth", SETTING)
    got = W.resolve("random", wf, seed=3, dest_dir=tmp_path)
    assert got == W.ResolvedWeights("random", None, "random:3")
    assert list(tmp_path.iterdir()) == []


def test_resolve_local_file_and_digest_cache(tmp_path: Path, blob: bytes) -> None:
    wf = W.WeightsFile("x.pth", "http://127.0.0.1:9/x.pth", SETTING)
    f = tmp_path / "mine.pth"
    f.write_bytes(blob)
    got = W.resolve(str(f), wf)
    assert got == W.ResolvedWeights("file", f, "file:" + hashlib.sha256(blob).hexdigest()[:16])
    assert W.resolve(str(f), wf) == got
    f.write_bytes(blob + b"x")  # new size: the cached digest must not be reused
    new_id = "file:" + hashlib.sha256(blob + b"x").hexdigest()[:16]
    assert W.resolve(str(f), wf).weights_id == new_id


@pytest.mark.parametrize("value", ["missing.pth", "", "."])
def test_resolve_bad_path_names_the_setting(tmp_path: Path, value: str) -> None:
    wf = W.WeightsFile("x.pth", "http://127.0.0.1:9/x.pth", SETTING)
    arg = str(tmp_path / value) if value else value
    with pytest.raises(WeightsUnavailableError, match=SETTING) as info:
        W.resolve(arg, wf)
    assert "pretrained" in str(info.value) and "random" in str(info.value)


# --- load_state_dict -------------------------------------------------------------


@pytest.fixture(scope="module")
def state_dict():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3)).state_dict()


def _same(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_download_then_load_real_checkpoint(
    server: _Server, tmp_path: Path, state_dict: dict
) -> None:
    import torch

    src = tmp_path / "src.pth"
    torch.save(state_dict, src)
    body = src.read_bytes()
    wf = _wf(_serve(server, body, "sd.pth"), body)
    path = W.resolve("pretrained", wf, dest_dir=tmp_path / "cache").path
    assert path is not None and _same(W.load_state_dict(path), state_dict)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {"model": sd, "iteration": 100},
        lambda sd: {"state_dict": sd, "epoch": 3},
        # PANNs' training script also saved the sampler's numpy index arrays.
        lambda sd: {"model": sd, "sampler": {"indexes": [np.arange(5)], "p": np.int64(2)}},
    ],
    ids=["model", "state_dict", "model+numpy"],
)
def test_load_state_dict_unwraps(tmp_path: Path, state_dict: dict, wrap) -> None:
    import torch

    f = tmp_path / "wrapped.pth"
    torch.save(wrap(state_dict), f)
    assert _same(W.load_state_dict(f), state_dict)


def test_load_state_dict_rejects_garbage(tmp_path: Path, blob: bytes) -> None:
    f = tmp_path / "garbage.pth"
    f.write_bytes(blob)
    with pytest.raises(WeightsUnavailableError, match="not a PyTorch checkpoint") as info:
        W.load_state_dict(f)
    assert info.value.path == str(f) and info.value.__cause__ is not None


def test_load_state_dict_refuses_arbitrary_objects(tmp_path: Path, state_dict: dict) -> None:
    import torch

    f = tmp_path / "unsafe.pth"
    torch.save({"model": state_dict, "args": argparse.Namespace(lr=1)}, f)
    with pytest.raises(WeightsUnavailableError, match="loaded safely"):
        W.load_state_dict(f)


def test_load_state_dict_needs_tensors(tmp_path: Path) -> None:
    import torch

    f = tmp_path / "empty.pth"
    torch.save({"model": {}}, f)
    with pytest.raises(WeightsUnavailableError, match="no state_dict"):
        W.load_state_dict(f)


# --- the known files and the cache folder ----------------------------------------


def test_cache_dir_matches_torch_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch.hub

    cases = [
        {"TORCH_HOME": str(tmp_path / "th"), "XDG_CACHE_HOME": str(tmp_path / "xdg")},
        {"XDG_CACHE_HOME": str(tmp_path / "xdg")},
        {},
    ]
    for env in cases:
        for var in ("TORCH_HOME", "XDG_CACHE_HOME"):
            monkeypatch.delenv(var, raising=False)
        for var, val in env.items():
            monkeypatch.setenv(var, val)
        assert W.cache_dir() == Path(torch.hub.get_dir()) / "checkpoints"
    assert W.cache_dir() == Path.home() / ".cache" / "torch" / "hub" / "checkpoints"


def test_resnet50_matches_torchvision() -> None:
    from torchvision.models import ResNet50_Weights

    tv = ResNet50_Weights.IMAGENET1K_V2
    assert W.RESNET50_IMAGENET.url == tv.url
    assert W.RESNET50_IMAGENET.filename == tv.url.rsplit("/", 1)[1]
    assert W.RESNET50_IMAGENET.filename == f"resnet50-{W.RESNET50_IMAGENET.sha256}.pth"
    assert W.RESNET50_IMAGENET.weights_id == tv.name == "IMAGENET1K_V2"


def test_cnn14_matches_panns_inference() -> None:
    spec = importlib.util.find_spec("panns_inference")  # not imported: its config runs wget
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("panns_inference is not installed")
    source = (Path(list(spec.submodule_search_locations)[0]) / "inference.py").read_text()
    assert W.CNN14.url in source
    assert W.CNN14.size is not None and W.CNN14.size >= 3e8  # the size it insists on
    assert W.CNN14.sha256 is not None and len(W.CNN14.sha256) == 64


def test_import_is_light() -> None:
    code = (
        "import sys, media_search.embed.weights; "
        "bad = {'torch', 'numpy', 'tqdm'} & set(sys.modules); assert not bad, bad"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env, timeout=60)
