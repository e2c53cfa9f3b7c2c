"""Present: a ``SearchResult``, the index summary and errors as the page's HTML.

Everything that comes from a file name or an error goes through ``html.escape``;
media are linked through Gradio's file route (``gradio_api/file=<path>``), which
serves only the library folders given to ``launch(allowed_paths=...)``. Media
fragments (``#t=12.5``) start video and audio players at the matching offset.
"""

from __future__ import annotations

import html
import os
import urllib.parse
from typing import Any

from ..errors import (
    ConfigError,
    DecodeError,
    IndexMismatchError,
    MediaSearchError,
    StoreError,
    StoreLockedError,
    UnsupportedMediaError,
    WeightsUnavailableError,
)
from ..types import Match, SearchResult, fmt_time

__all__ = [
    "CSS",
    "EMPTY_INDEX",
    "GENERIC_ERROR",
    "media_url",
    "fmt_time",
    "render_results",
    "render_summary",
    "render_notice",
    "render_message",
    "error_message",
]

#: Relative, so the page also works under a proxy's sub-path (``root_path``).
FILE_ROUTE = "gradio_api/file="
GENERIC_ERROR = "Something went wrong while searching; the details are in the server log. Try again, or try another file."
EMPTY_INDEX = "The index is empty: index a folder with `media-search index FOLDER`, then search again."

CSS = """
.ms-box {border-radius: 8px; padding: 10px 14px; margin: 4px 0;}
.ms-error {background: #fdecea; border: 1px solid #f5c2c0; color: #7a1c16;}
.ms-warn {background: #fff6db; border: 1px solid #f3d98b; color: #5c4700;}
.ms-info {background: #eef4ff; border: 1px solid #c9dafc; color: #1d3a6e;}
.ms-grid {display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 12px;}
.ms-grid.ms-wide {grid-template-columns: repeat(auto-fill, minmax(320px, 1fr));}
.ms-card {margin: 0; border: 1px solid #ddd; border-radius: 8px; overflow: hidden; background: #fafafa;}
.ms-card img {width: 100%; height: 170px; object-fit: cover; display: block; background: #eee;}
.ms-card video {width: 100%; max-height: 220px; display: block; background: #000;}
.ms-card audio {width: 100%; display: block;}
.ms-card figcaption {padding: 6px 8px; font-size: 0.85em; line-height: 1.35; word-break: break-all;}
.ms-score {font-weight: 600; font-family: monospace;}
.ms-kind {border-radius: 4px; padding: 0 5px; background: #e4e4e4; font-size: 0.85em;}
.ms-muted {color: #666;}
.ms-copy {border-radius: 4px; padding: 0 5px; background: #1f7a3a; color: #fff; font-size: 0.85em; font-weight: 600;}
.ms-summary table {border-collapse: collapse; width: 100%; font-size: 0.9em;}
.ms-summary ul {font-size: 0.85em; margin-top: 0;}
.ms-summary td, .ms-summary th {padding: 2px 6px; text-align: left; border-bottom: 1px solid #eee;}
"""


def media_url(path: str) -> str:
    """The page's URL for a library file (served only inside ``allowed_paths``)."""
    return FILE_ROUTE + urllib.parse.quote(path, safe="/")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _caption(rank: int, m: Match) -> str:
    name = os.path.basename(m.path)
    where = ""
    if m.timestamp is not None:
        where = f"<br>at <b class='ms-time'>{fmt_time(m.timestamp)}</b>"
        if m.query_timestamp is not None:
            where += f" <span class='ms-muted'>(query at {fmt_time(m.query_timestamp)})</span>"
    badge = ""
    if m.copy:
        conf = f"{m.copy_confidence:.2f}" if m.copy_confidence is not None else ""
        badge = (f" <span class='ms-copy' data-confidence='{conf}' title='An edited copy of your file "
                 f"(confidence {conf}), verified by local features or an audio fingerprint'>copy</span>")  # fmt: skip
    return (
        f"<figcaption><span class='ms-rank'>#{rank}</span> <span class='ms-score'>{m.score:.4f}</span> "
        f"<span class='ms-kind'>{_e(m.kind)}</span>{badge}<br><b class='ms-name'>{_e(name)}</b>{where}"
        f"<br><span class='ms-muted' title='{_e(m.path)}'>{_e(os.path.dirname(m.path))}</span></figcaption>"
    )


def _card(rank: int, m: Match) -> str:
    url = _e(media_url(m.path))
    attrs = f"class='ms-card' data-rank='{rank}' data-kind='{_e(m.kind)}' data-path='{_e(m.path)}' data-copy='{str(m.copy).lower()}'"
    if m.kind == "image":
        body = f"<a href='{url}' target='_blank' rel='noopener'><img src='{url}' loading='lazy' alt='{_e(os.path.basename(m.path))}'></a>"
    else:
        frag = f"#t={m.timestamp:.2f}" if m.timestamp is not None else ""
        tag = "video" if m.kind == "video" else "audio"
        body = f"<{tag} controls preload='metadata' src='{url}{frag}'></{tag}>"
    return f"<figure {attrs}>{body}{_caption(rank, m)}</figure>"


_SECTIONS = (("image", "Images", ""), ("video", "Videos", " ms-wide"), ("audio", "Sounds", " ms-wide"))


def render_results(result: SearchResult, *, name: str, seconds: float) -> str:
    """Ranked results grouped by kind (image gallery, video and audio players), exact copies apart."""
    n = len(result.results)
    head = (
        f"<p class='ms-head'>{n} similar file{'s' if n != 1 else ''} for <b>{_e(name)}</b> "
        f"({_e(result.kind)}) in {seconds:.2f} s</p>"
    )
    if n:
        copies = sum(m.copy for m in result.results)
        head += (
            f"<p class='ms-copies-found' data-copies='{copies}'><span class='ms-copy'>copy</span> "
            f"{copies} edited cop{'ies' if copies != 1 else 'y'} of your file found (ranked first).</p>"
            if copies
            else "<p class='ms-no-copy ms-muted' data-copies='0'>No copy of your file found: "
            "these results are only similar.</p>"
        )
    parts = [f"<div class='ms-results' id='ms-results-body'>{head}"]
    ranked = list(enumerate(result.results, 1))
    best = {m.kind: r for r, m in reversed(ranked)}  # the section holding #1 comes first
    for kind, title, wide in sorted(_SECTIONS, key=lambda sec: best.get(sec[0], len(ranked) + 1)):
        cards = [_card(r, m) for r, m in ranked if m.kind == kind]
        if cards:
            parts.append(f"<h3>{title}</h3><div class='ms-grid{wide}' data-section='{kind}'>{''.join(cards)}</div>")
    if result.exact_copies:
        items = "".join(
            f"<li data-path='{_e(p)}'><a href='{_e(media_url(p))}' target='_blank' rel='noopener'>{_e(p)}</a></li>"
            for p in result.exact_copies
        )
        parts.append(
            "<h3>Exact copies of the input</h3><p class='ms-muted'>Library files with the same bytes "
            f"as the file you dropped (left out of the ranking).</p><ul class='ms-copies'>{items}</ul>"
        )
    parts.append("</div>")
    return "".join(parts)


def render_message(text: str, level: str = "error", title: str | None = None) -> str:
    """A message box; ``level`` is ``error``, ``warn`` or ``info``."""
    role = " role='alert'" if level == "error" else ""
    head = f"<b>{_e(title)}</b><br>" if title else ""
    return f"<div class='ms-box ms-{level}' data-level='{level}'{role}>{head}{_e(text)}</div>"


def error_message(e: BaseException) -> tuple[str, str]:
    """(title, sentence) for an error; unexpected errors get a generic sentence."""
    if isinstance(e, UnsupportedMediaError):
        return "Unsupported file", f"{e} Drop an image, a video or a sound file."
    if isinstance(e, DecodeError):
        return "Cannot read this file", f"{e} Try another copy of the file."
    if isinstance(e, IndexMismatchError):
        return "Index built with another model", str(e)
    if isinstance(e, StoreLockedError):
        return "Index in use by another process", str(e)
    if isinstance(e, StoreError):
        return "Index unreachable", f"{e} Check that Milvus is running, then search again."
    if isinstance(e, WeightsUnavailableError):
        return "Model weights unavailable", str(e)
    if isinstance(e, ConfigError):
        return "Cannot search with these settings", str(e)
    if isinstance(e, MediaSearchError):
        return "Cannot search", str(e)
    if isinstance(e, FileNotFoundError):
        return "Upload gone", "The uploaded file is no longer on the server (uploads are cleaned up after a while): drop it again."
    return "Unexpected error", GENERIC_ERROR


def render_notice(notice: str | None) -> str:
    """The page-wide banner shown while any model runs on random weights."""
    return render_message(notice, "warn", "Random weights: results are not meaningful") if notice else ""


def render_summary(stats: dict[str, Any] | None, roots: list[str], error: str | None = None) -> str:
    """The index summary: files and rows per kind, the models that filled it, the folders served."""
    parts = ["<div class='ms-summary' id='ms-summary-body'>"]
    if error:
        parts.append(render_message(error, "error", "Index unavailable"))
    if stats is not None:
        rows = "".join(
            f"<tr data-kind='{_e(kind)}'><td>{_e(kind)}</td><td class='ms-files'>{stats['files'].get(kind, 0)}</td>"
            f"<td>{stats['rows'][kind]}</td></tr>"
            for kind in stats["rows"]
        )
        models = "".join(
            f"<li><b>{_e(kind)}</b>: {_e(model)}</li>" for kind, model in stats["models"].items() if model
        ) or "<li>none yet</li>"
        parts.append(
            f"<table><tr><th>kind</th><th>files</th><th>rows</th></tr>{rows}</table>"
            f"<p class='ms-muted'>Models in use:</p><ul class='ms-muted'>{models}</ul>"
            f"<p class='ms-muted'>Index: {_e(stats['uri'])}</p>"
        )
        if not any(stats["files"].values()):
            parts.append(render_message(EMPTY_INDEX, "info", "Empty index"))
    if roots:
        shown = "".join(f"<li>{_e(r)}</li>" for r in roots[:8])
        more = f"<li>… and {len(roots) - 8} more</li>" if len(roots) > 8 else ""
        parts.append(f"<p class='ms-muted'>Folders this page serves:</p><ul class='ms-muted'>{shown}{more}</ul>")
    parts.append("</div>")
    return "".join(parts)
