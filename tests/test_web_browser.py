"""The page in a real browser: Debian's Chromium driven by Playwright.

Files are dropped with a real ``drop`` event carrying a ``DataTransfer`` (what a
user's drag and drop produces), and also chosen through the browse input
(``set_input_files``). Screenshots land in ``test-artifacts/`` (git-ignored).
Needs ``apt install chromium`` and ``pip install playwright`` (no
``playwright install``: the system Chromium is used).
"""

from __future__ import annotations

import base64
import mimetypes
import os
import re
import time
from pathlib import Path

import pytest

from test_web import PHOTOS, start_served

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

DROP_JS = """([b64, name, type]) => {
    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], name, {type}));
    return dt;
}"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt install chromium)")
    with pytest.MonkeyPatch.context() as mp:
        s = start_served(tmp_path_factory, mp)
        try:
            yield s
        finally:
            s.app.close()
            s.lib.close()


@pytest.fixture
def page(served):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            pg = browser.new_page(viewport={"width": 1400, "height": 1000})
            pg.set_default_timeout(60_000)
            pg.goto(served.url)
            pg.wait_for_selector("#ms-drop button.upload-container")
            yield pg
        finally:
            browser.close()


def drop(pg, path: Path) -> None:
    """Drag and drop ``path`` onto the drop zone: dragenter, dragover, drop with a DataTransfer."""
    data = base64.b64encode(path.read_bytes()).decode()
    dt = pg.evaluate_handle(DROP_JS, [data, path.name, mimetypes.guess_type(path.name)[0] or ""])
    zone = "#ms-drop button.upload-container"
    for event in ("dragenter", "dragover", "drop"):
        pg.dispatch_event(zone, event, {"dataTransfer": dt})


def clear(pg) -> None:
    pg.locator("#ms-drop button[aria-label='Clear']").click()
    pg.wait_for_selector("#ms-drop button.upload-container")


def cards(pg) -> list[dict]:
    return pg.eval_on_selector_all(
        "#ms-results figure.ms-card",
        "els => els.map(e => ({rank: +e.dataset.rank, path: e.dataset.path, kind: e.dataset.kind,"
        " loaded: e.querySelector('img') ? e.querySelector('img').naturalWidth > 0 : null}))",
    )


def test_drop_an_image_then_a_corrupt_file(served, page):
    photos = served.photos
    ARTIFACTS.mkdir(exist_ok=True)
    assert "Random weights" in page.inner_text("#ms-notice")
    assert page.locator("#ms-summary tr[data-kind='image'] .ms-files").inner_text() == str(len(PHOTOS) + 1)

    # The library's own astronaut, dropped from elsewhere: its half-size twin comes first, the input is absent.
    query = photos.queries / "astronaut.jpg"
    start = time.perf_counter()
    drop(page, query)
    page.wait_for_selector("#ms-results figure.ms-card[data-rank='1']")
    seconds = time.perf_counter() - start
    print(f"\ndrop to results: {seconds:.2f} s ({page.inner_text('#ms-results .ms-head')})")
    page.wait_for_function("[...document.querySelectorAll('#ms-results img')].every(i => i.complete)")
    got = cards(page)
    assert got[0]["path"] == str(photos.library / "astronaut_small.png")
    assert str(photos.library / "astronaut.jpg") not in [c["path"] for c in got]
    assert len(got) == len(PHOTOS)  # every other library file, the input's copy left out
    assert all(c["kind"] == "image" and c["loaded"] for c in got), got  # thumbnails came through the file route
    assert page.locator(".ms-copies li").get_attribute("data-path") == str(photos.library / "astronaut.jpg")
    assert re.fullmatch(r"[01]\.\d{4}", page.locator("#ms-results figure[data-rank='1'] .ms-score").inner_text())
    assert page.locator("#ms-results figure[data-rank='1'] .ms-name").inner_text() == "astronaut_small.png"
    page.screenshot(path=str(ARTIFACTS / "web_results.png"), full_page=True)

    # A corrupt JPEG: a friendly message, no results, no traceback.
    clear(page)
    drop(page, photos.queries / "broken.jpg")
    alert = page.wait_for_selector("#ms-status [role='alert']")
    text = alert.inner_text()
    assert "Cannot read this file" in text and "broken.jpg" in text and "damaged or truncated" in text
    assert page.locator("#ms-results figure").count() == 0
    assert "Traceback" not in page.content()
    page.screenshot(path=str(ARTIFACTS / "web_error.png"), full_page=True)


def test_browse_for_files_and_choose_k(served, page):
    photos = served.photos
    page.locator("#ms-k input[type='number']").fill("3")
    page.locator("#ms-k input[type='number']").blur()
    page.set_input_files("#ms-drop input[type='file']", str(photos.queries / "notes.txt"))
    alert = page.wait_for_selector("#ms-status [role='alert']")
    assert "Unsupported file" in alert.inner_text()

    clear(page)
    page.set_input_files("#ms-drop input[type='file']", str(photos.queries / "coffee_q.jpg"))
    page.wait_for_selector("#ms-results .ms-head:has-text('coffee_q.jpg')")
    got = cards(page)
    assert [c["rank"] for c in got] == [1, 2, 3]
    assert got[0]["path"] == str(photos.library / "coffee.jpg")
    assert page.locator("#ms-status [role='alert']").count() == 0


def _slow_message(monkeypatch: pytest.MonkeyPatch, prefix: str, seconds: float = 3.0) -> None:
    """The search that answers with the page message starting with ``prefix`` takes ``seconds``
    longer (the served page runs in this process), so what the user does next arrives while it is
    pending."""
    from media_search.web import render

    real = render.render_message

    def slow(text, *a, **kw):  # type: ignore[no-untyped-def]
        if text.startswith(prefix):
            time.sleep(seconds)
        return real(text, *a, **kw)

    monkeypatch.setattr(render, "render_message", slow)


def test_a_file_chosen_while_a_change_of_k_is_searched_is_searched_after_it(served, page, monkeypatch):
    """A user sets k and drops a file at once: the file is searched when the search the change of
    k started ends (with Gradio's default trigger mode the drop was ignored: no result, no message;
    on a loaded machine, ``test_browse_for_files_and_choose_k`` met it). That search is made slow
    here, so the drop always arrives while it is pending."""
    _slow_message(monkeypatch, "Drop an image")  # what the search of a change of k says with no file
    page.locator("#ms-k input[type='number']").fill("2")
    page.locator("#ms-k input[type='number']").blur()
    page.set_input_files("#ms-drop input[type='file']", str(served.photos.queries / "coffee_q.jpg"))
    page.wait_for_selector("#ms-results .ms-head:has-text('coffee_q.jpg')", timeout=30_000)
    assert [c["rank"] for c in cards(page)] == [1, 2]


def test_words_submitted_while_a_text_search_is_pending_are_searched_after_it(served, page, monkeypatch):
    """The text box as the drop zone above: words submitted while the previous text search is
    pending are searched when it ends, not ignored (Gradio's default trigger mode). The first
    search (nothing typed: a hint) is made slow, so the words always arrive while it is pending."""
    _slow_message(monkeypatch, "Type a few words")  # what a text search with nothing typed says
    page.click("#ms-text-search")
    box = page.locator("#ms-text input, #ms-text textarea").first
    box.fill("a cat asleep on a sofa")
    box.press("Enter")
    # The served library's model (resnet50) has no text tower: the words get that answer.
    page.wait_for_selector("#ms-status:has-text('no text tower')", timeout=30_000)


@pytest.mark.slow
def test_video_and_audio_results_play_from_the_match(tmp_path_factory):
    """Videos and sounds in the library: players appear and start at the matching time."""
    import shutil

    from playwright.sync_api import sync_playwright

    from media_search import Library
    from media_search.web import serve
    from test_web import free_port

    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt install chromium)")
    samples = Path(__file__).resolve().parent.parent / "sample_media"
    base = tmp_path_factory.mktemp("webav")
    lib_dir = base / "library"
    lib_dir.mkdir()
    for rel in ["videos/space_tour.mp4", "videos/cat_and_coffee.mp4", "audio/chords.flac", "audio/chirps.mp3", "photos/rocket.jpg"]:
        shutil.copy(samples / rel, lib_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDIA_SEARCH_HOME", str(base / "home"))
        mp.setenv("GRADIO_TEMP_DIR", str(base / "uploads"))
        lib = Library(uri=str(base / "index.db"))
        assert not lib.index([lib_dir]).failed
        port = free_port()
        app = serve(lib, host="127.0.0.1", port=port, block=False, quiet=True)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
                pg = browser.new_page(viewport={"width": 1400, "height": 1000})
                pg.set_default_timeout(120_000)
                pg.goto(f"http://127.0.0.1:{port}/")
                pg.wait_for_selector("#ms-drop button.upload-container")
                for query, kind, tag in [
                    (samples / "variants" / "still_from_space_tour.jpg", "video", "video"),
                    (samples / "variants" / "chords_snippet.wav", "audio", "audio"),
                ]:
                    drop(pg, query)
                    pg.wait_for_selector(f"#ms-results .ms-head:has-text('{query.name}')")
                    first = pg.locator(f"#ms-results figure.ms-card[data-kind='{kind}']").first
                    want = float(first.locator(tag).get_attribute("src").split("#t=")[1])
                    player = first.locator(tag)
                    player.evaluate("m => m.readyState >= 1 || new Promise(r => m.addEventListener('loadedmetadata', r))")
                    assert abs(player.evaluate("m => m.currentTime") - want) < 0.5
                    assert player.evaluate("m => m.duration") > want
                    pg.screenshot(path=str(ARTIFACTS / f"web_{kind}.png"), full_page=True)
                    clear(pg)
                browser.close()
        finally:
            app.close()
            lib.close()
