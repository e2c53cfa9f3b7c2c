"""The web page: ``media-search serve`` (Gradio).

    >>> from media_search import Library
    >>> from media_search.web import serve
    >>> serve(Library(uri="photos.db"), port=7860)        # doctest: +SKIP

``build_app`` gives the ``gr.Blocks`` without starting a server; ``serve``
starts it with the security settings (served folders, upload size limit,
upload cleanup). Gradio is imported only when one of them is called.
"""

from __future__ import annotations

from .app import DEFAULT_MAX_FILE_SIZE, DEFAULT_UPLOAD_TTL, build_app, serve

__all__ = ["build_app", "serve", "DEFAULT_MAX_FILE_SIZE", "DEFAULT_UPLOAD_TTL"]
