"""The Gradio page: drop a file, see the library's most similar files.

One ``Library`` (hence one store connection and one copy of each model) serves
every visitor, ``SEARCHES`` searches at a time (``Library.search`` may be called
from several threads). Every handler turns errors into a
message in the page (or a ``gr.Error`` for API callers): the page never shows a
traceback and never dies.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from ..types import KINDS, SearchResult
from . import render
from .roots import LibraryRoots

if TYPE_CHECKING:
    import gradio as gr

    from ..library import Library

__all__ = ["build_app", "serve", "Searcher", "DEFAULT_MAX_FILE_SIZE", "DEFAULT_UPLOAD_TTL"]

log = logging.getLogger(__name__)

DEFAULT_MAX_FILE_SIZE = "500mb"
#: Uploads older than this (s) are deleted, checked as often; all are deleted at shutdown.
DEFAULT_UPLOAD_TTL = 900
MAX_K = 100
#: Searches (and other verbs) the page runs at once. The load benchmark (6 clients of the ``search``
#: API while ``media-search index`` adds 200 images, 2 cores): one at a time p50 1.85 s, p95 2.14 s,
#: 3.17 queries a second, the indexer beside them 103 s; two: p50 1.57 s, p95 1.80 s, 3.79 a
#: second, the indexer (at ``--nice`` 10) 277 s: the people waiting come first.
SEARCHES = 2


class SearchCancelled(Exception):
    """The page's Stop button stopped a search."""


class Searcher:
    """The page's verbs over one ``Library``, ``SEARCHES`` at a time."""

    def __init__(self, lib: Library, roots: LibraryRoots) -> None:
        self.lib = lib
        self.roots = roots
        self.slots = threading.BoundedSemaphore(SEARCHES)
        # the running page searches' Stop, by page session (``gr.Request.session_hash``): the Stop
        # button stops its own visitor's search, not another's running beside it
        self.stops: dict[str, threading.Event] = {}

    def search(self, path: str, k: int, kinds: list[str] | None, progress: Any = None,
               stop: threading.Event | None = None) -> SearchResult:  # fmt: skip
        """``Library.search`` with ``k`` capped at ``MAX_K``; result folders become servable (default roots).

        ``progress``: a ``gr.Progress`` that shows how decoding a long query goes; ``stop``: once
        set, a long query gives up at its next block (``SearchCancelled``).
        """

        def report(event: dict[str, Any]) -> None:
            if stop is not None and stop.is_set():
                raise SearchCancelled("The search was stopped.")
            if progress is not None:
                done, total = float(event["done"]), event.get("total")
                what = "Decoding the query" if event["event"] == "decode" else "Embedding the query"
                if total:
                    progress((min(round(done), round(total)), round(total)), desc=what, unit="s")
                else:
                    progress(None, desc=f"{what}: {round(done)} s")

        with self.slots:
            result = self.lib.search(path, k=min(int(k), MAX_K), kinds=kinds or None, progress=report)
        self.roots.admit([m.path for m in result.results] + list(result.exact_copies))
        return result

    def search_text(self, text: str, k: int) -> SearchResult:
        """``Library.search(text=...)``: pictures and video moments described by ``text``."""
        with self.slots:
            result = self.lib.search(text=text, k=min(int(k), MAX_K))
        self.roots.admit([m.path for m in result.results])
        return result

    def stats(self) -> dict[str, Any]:
        with self.slots:
            return self.lib.stats()

    def warm_up(self) -> None:
        """Load the image model now (in the background) so that the first drop is not slow."""
        try:
            import numpy as np

            from ..embed.registry import image_model

            side = image_model(self.lib.settings.image_model).input_size
            with self.slots:
                self.lib.embedders.image.embed([np.zeros((side, side, 3), dtype=np.uint8)])
        except Exception as e:  # noqa: BLE001 - a query will report the same problem to the user
            log.warning("warming up the image model failed: %s", e)

    def is_empty(self) -> bool:
        return not any(self.stats()["files"].values())

    # -- handlers -------------------------------------------------------------------------------
    def cancel(self, session: str = "") -> str:
        """The Stop button of page session ``session``: its running long query stops at its next block."""
        stop = self.stops.get(session)
        if stop is not None:
            stop.set()
        return render.render_message("Search stopped.", "info")

    def page_search(self, path: str | None, k: float, kinds: list[str] | None, progress: Any = None,
                    session: str = "") -> tuple[str, str, Any]:  # fmt: skip
        """(status HTML, results HTML, JSON) for the page; ``session``: the page session (``cancel``'s)."""
        if not path:
            return render.render_message("Drop an image, a video or a sound above to search.", "info"), "", None
        name = os.path.basename(path)
        start = time.perf_counter()
        stop = self.stops[session] = threading.Event()
        try:
            result = self.search(path, int(k), kinds, progress, stop)
            if not result.results and not result.exact_copies and self.is_empty():
                return render.render_message(render.EMPTY_INDEX, "info", "Empty index"), "", None
        except SearchCancelled:
            return render.render_message("Search stopped.", "info"), "", None
        except Exception as e:  # noqa: BLE001 - the page must survive anything
            return self._failure(e, path), "", None
        finally:
            if self.stops.get(session) is stop:
                del self.stops[session]
        seconds = time.perf_counter() - start
        status = ""
        if not result.results:
            status = render.render_message(
                "No other file of the searched kinds in the index: tick other kinds or index more files.", "info"
            )
        return status, render.render_results(result, name=name, seconds=seconds), self._json(result, name)

    def page_text_search(self, text: str | None, k: float) -> tuple[str, str, Any]:
        """(status HTML, results HTML, JSON) for the text box."""
        if not text or not text.strip():
            return render.render_message("Type a few words, e.g. \"a cat asleep on a sofa\".", "info"), "", None
        start = time.perf_counter()
        try:
            result = self.search_text(text, int(k))
            if not result.results and self.is_empty():
                return render.render_message(render.EMPTY_INDEX, "info", "Empty index"), "", None
        except Exception as e:  # noqa: BLE001 - the page must survive anything
            return self._failure(e, ""), "", None
        seconds = time.perf_counter() - start
        status = "" if result.results else render.render_message("No picture or video in the index.", "info")
        return status, render.render_results(result, name=result.query, seconds=seconds), result.to_dict()

    def api_search(self, path: str | None, k: float, kinds: list[str] | None) -> str:
        """The ``/search`` endpoint: the JSON text ``media-search query --json`` prints, or a ``gr.Error``.

        Text, not a dict: gradio_client would take each result (a dict with a
        ``path``) for a file to download.
        """
        import gradio as gr

        if not path:
            raise gr.Error("Send a file to search with.", title="No file", print_exception=False)
        name = os.path.basename(path)
        try:
            result = self.search(path, int(k), kinds)
        except Exception as e:  # noqa: BLE001
            title, text = self._explain(e, path)
            raise gr.Error(text, title=title, print_exception=False) from None
        return json.dumps(self._json(result, name), ensure_ascii=False)

    # -- duplicates -----------------------------------------------------------------------------
    def page_duplicates(self, kinds: list[str] | None, similar: bool) -> tuple[str, str, Any, int]:
        """(status HTML, first page HTML, report dict for paging, page 1) of ``Library.duplicates``."""
        try:
            with self.slots:
                report = self.lib.duplicates(kinds or None, include_similar=bool(similar)).to_dict()
        except Exception as e:  # noqa: BLE001 - the page must survive anything
            return self._failure(e, ""), render.render_duplicates(None), None, 1
        self.roots.admit([f["path"] for g in report["groups"] for f in g["files"]])
        return "", render.render_duplicates(report, 1), report, 1

    @staticmethod
    def duplicates_page(report: dict[str, Any] | None, page: float, step: int) -> tuple[str, int]:
        """Another page of the report held by the page (no new search)."""
        pages = max(1, -(-len((report or {}).get("groups", [])) // render.DUPLICATES_PER_PAGE))
        n = min(max(1, int(page or 1) + step), pages)
        return render.render_duplicates(report, n), n

    def summary(self) -> str:
        try:
            stats = self.stats()
        except Exception as e:  # noqa: BLE001
            _, text = self._explain(e, "")
            return render.render_summary(None, self.roots.paths, error=text)
        return render.render_summary(stats, self.roots.paths)

    # -- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _json(result: SearchResult, name: str) -> dict[str, Any]:
        out = result.to_dict()
        out["query"] = name  # the upload's temp path means nothing to the caller
        return out

    def _explain(self, e: BaseException, path: str) -> tuple[str, str]:
        """(title, sentence) for the user, the upload's temp folder replaced by the file name."""
        from ..errors import MediaSearchError

        if isinstance(e, (MediaSearchError, FileNotFoundError)):
            log.info("search for %s failed: %s", path, e)
        else:
            log.exception("unexpected error while searching for %s", path)
        title, text = render.error_message(e)
        if path:
            text = text.replace(path, os.path.basename(path))
        return title, text

    def _failure(self, e: BaseException, path: str) -> str:
        title, text = self._explain(e, path)
        return render.render_message(text, "error", title)


def build_app(
    lib: Library,
    library_roots: list[str] | None = None,
    *,
    upload_ttl: int = DEFAULT_UPLOAD_TTL,
) -> gr.Blocks:
    """The page as a ``gr.Blocks``; ``app.media_search_roots`` holds the folders it may serve.

    Launch it through ``serve`` (which sets ``allowed_paths``) rather than
    ``Blocks.launch`` directly.
    """
    import gradio as gr

    roots = LibraryRoots(lib, library_roots)
    s = Searcher(lib, roots)
    with gr.Blocks(
        title="media-search",
        analytics_enabled=False,
        delete_cache=(max(1, upload_ttl // 2), upload_ttl) if upload_ttl else None,
    ) as app:
        gr.Markdown("## media-search\nDrop an image, a video or a sound to find the most similar files of your library.")
        gr.HTML(render.render_notice(lib.weights_notice()), elem_id="ms-notice", js_on_load=None)
        with gr.Tabs(elem_id="ms-tabs"):
            with gr.Tab("Search", elem_id="ms-tab-search"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=300):
                        file_in = gr.File(
                            label="Drop an image, a video or a sound here, or click to browse",
                            file_count="single",
                            type="filepath",
                            elem_id="ms-drop",
                            height=160,
                        )
                        k = gr.Slider(1, MAX_K, value=10, step=1, label="Number of results (k)", elem_id="ms-k")
                        kinds = gr.CheckboxGroup(
                            list(KINDS),
                            value=[],
                            label="Kinds to search",
                            info="None ticked: an image finds images and videos, a video finds videos, a sound finds sounds and video soundtracks.",
                            elem_id="ms-kinds",
                        )
                        go = gr.Button("Search", variant="primary", elem_id="ms-search")
                        stop = gr.Button("Stop", variant="secondary", elem_id="ms-stop", size="sm")
                        text_in = gr.Textbox(
                            label="...or describe what you look for",
                            placeholder="a cat asleep on a sofa",
                            info=f"Finds pictures and video moments by words; needs an image model with a text tower (in use: {lib.settings.image_model}).",
                            elem_id="ms-text",
                            max_lines=1,
                        )
                        text_go = gr.Button("Search by text", elem_id="ms-text-search")
                        with gr.Accordion("Index", open=True):
                            summary = gr.HTML(s.summary(), elem_id="ms-summary", js_on_load=None)
                    with gr.Column(scale=3):
                        status = gr.HTML("", elem_id="ms-status", js_on_load=None)
                        results = gr.HTML("", elem_id="ms-results", js_on_load=None)
                        with gr.Accordion("JSON (as printed by media-search query --json)", open=False):
                            as_json = gr.JSON(elem_id="ms-json")
            with gr.Tab("Duplicates", elem_id="ms-tab-duplicates"):
                gr.Markdown("Groups of copies across the library: same bytes, or edited copies verified by pHash, local features or audio fingerprints. Nothing is moved or deleted.")
                with gr.Row():
                    dup_kinds = gr.CheckboxGroup(list(KINDS), value=[], label="Kinds (none ticked: all)", elem_id="ms-dup-kinds")
                    dup_similar = gr.Checkbox(False, label="Include similar files (not verified as copies)", elem_id="ms-dup-similar")
                    dup_go = gr.Button("Find duplicates", variant="primary", elem_id="ms-dup-run")
                dup_status = gr.HTML("", elem_id="ms-dup-status", js_on_load=None)
                with gr.Row():
                    dup_prev = gr.Button("◀ Previous", elem_id="ms-dup-prev", size="sm")
                    dup_page = gr.Number(1, label="Page", precision=0, minimum=1, elem_id="ms-dup-page")
                    dup_next = gr.Button("Next ▶", elem_id="ms-dup-next", size="sm")
                dup_out = gr.HTML(render.render_duplicates(None), elem_id="ms-dup-results", js_on_load=None)
                dup_report = gr.State(None)
        api_btn = gr.Button(visible=False)
        api_out = gr.Textbox(visible=False)

        def page_search(path: str | None, k: float, kinds: list[str] | None, request: Any = None,
                        progress: Any = gr.Progress()) -> tuple[str, str, Any]:  # noqa: B008  # fmt: skip
            return s.page_search(path, k, kinds, progress, _session(request))

        def stop_search(request: Any = None) -> str:
            return s.cancel(_session(request))

        # Gradio hands a handler the request where a parameter's type is ``gr.Request``; the
        # module's annotations are strings that name ``gr``, which is imported here only
        page_search.__annotations__["request"] = stop_search.__annotations__["request"] = gr.Request

        # "always_last": a file dropped (or words submitted) while the search of a change of k or
        # of the kinds is still pending is searched after it (Gradio's default, "once", dropped it:
        # no result, no message, seen in a browser test on a loaded machine).
        searching = gr.on(
            [file_in.upload, go.click, k.release, kinds.input],
            page_search,
            inputs=[file_in, k, kinds],
            outputs=[status, results, as_json],
            api_visibility="private",
            concurrency_id="search",
            concurrency_limit=SEARCHES,
            trigger_mode="always_last",
        )
        gr.on(
            [text_in.submit, text_go.click],
            s.page_text_search,
            inputs=[text_in, k],
            outputs=[status, results, as_json],
            api_visibility="private",
            concurrency_id="search",
            concurrency_limit=SEARCHES,
            trigger_mode="always_last",
        )
        stop.click(stop_search, outputs=[status], cancels=[searching], api_visibility="private", queue=False)
        file_in.clear(lambda: ("", "", None), outputs=[status, results, as_json], api_visibility="private", queue=False)
        api_btn.click(
            s.api_search,
            inputs=[file_in, k, kinds],
            outputs=[api_out],
            api_name="search",
            api_description="Search the library with a file; returns the text `media-search query --json` prints.",
            concurrency_id="search",
            concurrency_limit=SEARCHES,
        )
        dup_go.click(s.page_duplicates, inputs=[dup_kinds, dup_similar], outputs=[dup_status, dup_out, dup_report, dup_page],
                     api_visibility="private", concurrency_id="search", concurrency_limit=SEARCHES)  # fmt: skip
        dup_prev.click(lambda r, p: s.duplicates_page(r, p, -1), inputs=[dup_report, dup_page], outputs=[dup_out, dup_page], api_visibility="private", queue=False)
        dup_next.click(lambda r, p: s.duplicates_page(r, p, 1), inputs=[dup_report, dup_page], outputs=[dup_out, dup_page], api_visibility="private", queue=False)
        dup_page.submit(lambda r, p: s.duplicates_page(r, p, 0), inputs=[dup_report, dup_page], outputs=[dup_out, dup_page], api_visibility="private", queue=False)
        app.load(s.summary, outputs=[summary], api_visibility="private")
    app.media_search_roots = roots  # type: ignore[attr-defined]
    app.media_search_searcher = s  # type: ignore[attr-defined]
    return app


def _session(request: Any) -> str:
    """A page session's key (``gr.Request.session_hash``; "" without one)."""
    return str(getattr(request, "session_hash", None) or "")


def serve(
    lib: Library,
    host: str = "127.0.0.1",
    port: int = 7860,
    library_roots: list[str] | None = None,
    *,
    max_file_size: str | int = DEFAULT_MAX_FILE_SIZE,
    upload_ttl: int = DEFAULT_UPLOAD_TTL,
    block: bool = True,
    quiet: bool = False,
    warm_up: bool = True,
) -> gr.Blocks:
    """Start the page on ``host:port``; with ``block=False`` return the running app (``app.close()`` stops it)."""
    app = build_app(lib, library_roots, upload_ttl=upload_ttl)
    roots: LibraryRoots = app.media_search_roots  # type: ignore[attr-defined]
    app.queue(default_concurrency_limit=SEARCHES)
    app.launch(
        server_name=host,
        server_port=port,
        allowed_paths=list(roots.paths),
        blocked_paths=list(roots.blocked),
        max_file_size=max_file_size,
        show_error=False,
        prevent_thread_lock=True,
        quiet=quiet,
        ssr_mode=False,
        css=render.CSS,
    )
    # Gradio reads these lists on every file request: hand it ours, so folders admitted
    # later count, and an empty list stays empty (never GRADIO_ALLOWED_PATHS from the env).
    app.allowed_paths = roots.paths
    app.blocked_paths = roots.blocked
    if warm_up:
        threading.Thread(target=app.media_search_searcher.warm_up, name="warm-up", daemon=True).start()  # type: ignore[attr-defined]
    if block:
        app.block_thread()
    return app
