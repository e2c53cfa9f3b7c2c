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
    "DUPLICATES_PER_PAGE",
    "render_duplicates",
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
.ms-dup-group {border: 1px solid #ddd; border-radius: 8px; padding: 8px 12px; margin: 10px 0;}
.ms-dup-group.ms-similar {border-style: dashed;}
.ms-orig {border-radius: 4px; padding: 0 5px; background: #1d3a6e; color: #fff; font-size: 0.85em;}
.ms-evidence {font-size: 0.85em; margin: 6px 0 0 0;}
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


# -- duplicates -------------------------------------------------------------------------------------------
#: Groups per page of the Duplicates view.
DUPLICATES_PER_PAGE = 20


def _when(mtime: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(mtime).strftime("%Y-%m-%d %H:%M") if mtime else ""


def _member_time(path: str, pairs: list[dict[str, Any]]) -> float | None:
    """Where the shared content is in ``path`` (a keyframe, a soundtrack offset), from the group's pairs."""
    for p in pairs:
        for side, key in (("a", "a_time"), ("b", "b_time")):
            if p.get(side) == path and p.get(key) is not None:
                return float(p[key])
    return None


def _dup_card(f: dict[str, Any], pairs: list[dict[str, Any]]) -> str:
    path, kind = f["path"], f["kind"]
    url = _e(media_url(path))
    name = _e(os.path.basename(path))
    t = _member_time(path, pairs)
    if kind == "image":
        body = f"<img src='{url}' loading='lazy' alt='{name}'>"
    else:
        tag = "video" if kind == "video" else "audio"
        frag = f"#t={t:.2f}" if t is not None else ""
        body = f"<{tag} controls preload='metadata' src='{url}{frag}'></{tag}>"
    details = [f"{f['size']:,} B"]
    if f.get("width"):
        details.append(f"{f['width']}×{f['height']}")
    if f.get("duration"):
        details.append(fmt_time(f["duration"]))
    details.append(_when(f.get("mtime") or 0))
    at = f"<br>match at <b class='ms-time'>{fmt_time(t)}</b>" if t is not None and kind != "image" else ""
    orig = " <span class='ms-orig' title='Likely original: largest, then longest, then oldest'>original</span>" if f.get("original") else ""
    return (
        f"<figure class='ms-card' data-path='{_e(path)}' data-kind='{_e(kind)}' data-original='{str(bool(f.get('original'))).lower()}'>"
        f"{body}<figcaption><span class='ms-kind'>{_e(kind)}</span>{orig}<br><b class='ms-name'>{name}</b>{at}"
        f"<br><span class='ms-muted'>{_e(' · '.join(x for x in details if x))}</span>"
        f"<br><a class='ms-open' href='{url}' target='_blank' rel='noopener'>open</a> "
        f"<span class='ms-muted' title='{_e(path)}'>{_e(os.path.dirname(path))}</span></figcaption></figure>"
    )


def _evidence(p: dict[str, Any]) -> str:
    keys = [("phash_distance", "pHash distance"), ("inliers", "verified matches"), ("mirrored", "mirrored"),
            ("matched_frames", "matching keyframes"), ("votes", "audio votes"), ("cosine", "cosine"),
            ("confidence", "confidence")]  # fmt: skip
    facts = [f"{label} {p[k]}" for k, label in keys if p.get(k) is not None and p.get(k) is not False]
    if p.get("b_time") is not None:
        facts.append(f"at {fmt_time(p['b_time'])} in {os.path.basename(p['b'])}")
    return (
        f"<li data-relation='{_e(p['relation'])}' data-method='{_e(p['method'])}'>{_e(os.path.basename(p['a']))} ~ "
        f"{_e(os.path.basename(p['b']))}: <b>{_e(p['relation'])}</b> by {_e(p['method'].replace('_', ' '))}"
        f"{' (' + _e(', '.join(facts)) + ')' if facts else ''}</li>"
    )


def render_duplicates(report: dict[str, Any] | None, page: int = 1, *, per_page: int = DUPLICATES_PER_PAGE) -> str:
    """One page of a duplicates report (``DuplicateReport.to_dict()``): groups with their files and evidence."""
    if report is None:
        return "<div class='ms-dups' id='ms-dups-body'></div>"
    groups = report.get("groups", [])
    pages = max(1, -(-len(groups) // per_page))
    page = min(max(1, int(page)), pages)
    copies = sum(g["tier"] == "copies" for g in groups)
    similar = len(groups) - copies
    head = (
        f"<p class='ms-head' data-groups='{len(groups)}' data-page='{page}' data-pages='{pages}'>{copies} group"
        f"{'s' if copies != 1 else ''} of copies" + (f", {similar} of similar files (not verified as copies)" if similar else "")
        + f" in {report.get('seconds', 0):.1f} s · page {page} of {pages}. Nothing was moved or deleted.</p>"
    )
    parts = [f"<div class='ms-dups' id='ms-dups-body'>{head}"]
    if not groups:
        parts.append(render_message("No copies found among the indexed files.", "info"))
    for g in groups[(page - 1) * per_page : page * per_page]:
        tier = "copies" if g["tier"] == "copies" else "similar files (not verified as copies)"
        wide = " ms-wide" if any(f["kind"] != "image" for f in g["files"]) else ""
        cards = "".join(_dup_card(f, g["pairs"]) for f in g["files"])
        ev = "".join(_evidence(p) for p in g["pairs"])
        parts.append(
            f"<section class='ms-dup-group{' ms-similar' if g['tier'] != 'copies' else ''}' data-group='{g['id']}' "
            f"data-tier='{_e(g['tier'])}'><h3>Group {g['id']} · {_e(g['kind'])} · {len(g['files'])} files · {_e(tier)}</h3>"
            f"<div class='ms-grid{wide}'>{cards}</div><ul class='ms-evidence'>{ev}</ul></section>"
        )
    parts.append("</div>")
    return "".join(parts)
