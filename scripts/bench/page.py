"""The page, in a real browser: from the end of an upload to the results on screen.

``sample_media`` is indexed with ``media-search index`` (Milvus Lite), ``media-search serve``
is started on it, and Debian's Chromium (Playwright, no ``playwright install``) chooses
edited copies of the sample photos one after another through the page's file input. For each,
the time from the end of the upload request (``/upload`` finished, as the browser saw it) to the
first result card on screen, and from choosing the file to that card, both on the page's own clock
(``_WATCH``).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["run"]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]


#: Times are taken in the page, on its own clock: Playwright's ``wait_for_selector`` polls at
#: intervals of up to 500 ms, which it would add to a figure measured from outside. A mutation
#: observer notes the frame after the first result card enters the page; the Resource Timing
#: API gives the end of the upload request.
_WATCH = """() => {
  performance.clearResourceTimings();
  window.__msStart = performance.now(); window.__msShown = null;
  const seen = () => document.querySelector("#ms-results figure.ms-card[data-rank='1']");
  const obs = new MutationObserver(() => {
    if (seen()) { obs.disconnect(); requestAnimationFrame(() => { window.__msShown = performance.now(); }); }
  });
  obs.observe(document.body, {childList: true, subtree: true, attributes: true});
}"""
_READ = """() => {
  const up = performance.getEntriesByType("resource").filter(e => /\\/upload(\\?|$)/.test(e.name)).pop();
  return [window.__msStart, up ? up.responseEnd : null, window.__msShown];
}"""


def _queries(folder: Path) -> list[Path]:
    """Edited copies of the sample photos: a crop, a downscale and a recompression of each."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for p in sorted((ROOT / "sample_media" / "photos").glob("*.jpg")):
        im = Image.open(p).convert("RGB")
        w, h = im.size
        for name, edit in (("crop", im.crop((w // 8, h // 8, w - w // 8, h - h // 8))), ("small", im.resize((w // 2, h // 2)))):
            q = folder / f"{p.stem}_{name}.jpg"
            edit.save(q, quality=70)
            out.append(q)
    return out


def run(work: Path, *, rounds: int = 2) -> dict[str, Any]:
    if not os.path.exists(CHROMIUM):
        return {"skipped": "Debian's chromium is not installed (apt install chromium)"}
    from playwright.sync_api import sync_playwright

    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MEDIA_SEARCH_MILVUS_URI=str(work / "page.db"), MEDIA_SEARCH_IMAGE_WEIGHTS="random",
               MEDIA_SEARCH_AUDIO_WEIGHTS="random", MEDIA_SEARCH_DEVICE="cpu")  # fmt: skip
    r = subprocess.run([sys.executable, "-m", "media_search", "index", str(ROOT / "sample_media"), "--json"], env=env,
                       capture_output=True, text=True, timeout=1800)  # fmt: skip
    if r.returncode not in (0, 2):
        raise RuntimeError((r.stderr or r.stdout).strip().splitlines()[-1:])
    queries = _queries(work / "queries")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    page_proc = subprocess.Popen([sys.executable, "-m", "media_search", "serve", "--port", str(port), "--library", str(work)],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    after_upload, whole, slowest = [], [], []
    try:
        end = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                if time.monotonic() > end or page_proc.poll() is not None:
                    raise RuntimeError("the page did not start") from None
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            pg = browser.new_page(viewport={"width": 1400, "height": 1000})
            pg.set_default_timeout(60_000)
            pg.goto(url)
            pg.wait_for_selector("#ms-drop button.upload-container")
            for i in range(rounds):
                for q in queries:
                    pg.evaluate(_WATCH)
                    pg.set_input_files("#ms-drop input[type='file']", str(q))
                    pg.wait_for_selector(f"#ms-results .ms-head:has-text('{q.name}')")
                    pg.wait_for_selector("#ms-results figure.ms-card[data-rank='1']")
                    pg.wait_for_function("() => window.__msShown !== null")
                    t0, up_end, shown = pg.evaluate(_READ)
                    if (i > 0 or q != queries[0]) and up_end is not None:  # the first one warms the page up
                        whole.append((shown - t0) / 1000)
                        after_upload.append((shown - up_end) / 1000)
                        # the search's own time, as the results' heading says it ("... in 0.21 s")
                        head = pg.locator("#ms-results .ms-head").first.inner_text()
                        said = re.search(r"in ([0-9.]+) s", head)
                        slowest.append((round(shown - up_end, 1), q.name, float(said.group(1)) * 1000 if said else None))
                    pg.locator("#ms-drop button[aria-label='Clear']").click()
                    pg.wait_for_selector("#ms-drop button.upload-container")
            browser.close()
    finally:
        page_proc.terminate()
        page_proc.wait(timeout=30)

    def pct(xs: list[float]) -> dict[str, float]:
        a = np.asarray(xs) * 1000
        return {"p50_ms": round(float(np.percentile(a, 50)), 1), "p95_ms": round(float(np.percentile(a, 95)), 1), "runs": len(xs)}

    return {"library": "sample_media", "queries": len(queries), "upload_end_to_first_result": pct(after_upload),
            "file_chosen_to_first_result": pct(whole), "target": "under 0.5 s after the upload completes",
            "slowest": [{"ms": ms, "query": name, "search_ms": said} for ms, name, said in sorted(slowest, reverse=True)[:6]]}  # fmt: skip
