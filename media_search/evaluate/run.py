"""``media-search evaluate``: which image model suits *this* library?

1. A seeded sample of the library's indexed files (spread over images, videos
   and sounds) is read from its ``files`` manifest; only files still on disk.
2. Edited copies of each (``evaluate.edits``) go into a temporary folder.
3. For each image model the sampled pictures and videos are indexed into a
   temporary Milvus Lite database in that folder (indexing speed: pictures per
   second), and every edited copy is searched for (``query.search`` with the
   embeddings alone, ``copy_signals=False``: pHash and fingerprints would find
   most copies whatever the model, and hide the difference). Recall@1 and
   recall@5 per edit family: the original ranked first, or in the first five.
   Sounds are embedded by Cnn14 whichever image model is chosen, so they are
   evaluated once, as the ``panns-cnn14`` row.
4. The temporary folder (copies and databases) is removed; the library itself
   is only read.

The recommendation is the image model with the best mean recall@1 over the
picture and video families (then recall@5, then indexing speed).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..embed import registry
from ..errors import ConfigError, MediaSearchError
from . import edits

if TYPE_CHECKING:
    from ..library import Library

__all__ = ["evaluate", "format_report", "sample_files"]

AUDIO_MODEL = "panns-cnn14"


def sample_files(lib: Library, n: int, seed: int = 0) -> dict[str, list[str]]:
    """Up to ``n`` indexed files still on disk, spread evenly over the kinds (seeded), by kind."""
    if n < 1:
        raise ConfigError(f"--sample must be at least 1, got {n}.")
    store = lib.store
    by_kind: dict[str, list[str]] = {}
    if store.has("files"):
        for rec in store.iter_files(state="done"):
            if os.path.isfile(rec.path):
                by_kind.setdefault(rec.kind, []).append(rec.path)
    if not by_kind:
        raise ConfigError(
            f"The library {lib.settings.uri} (image model {lib.settings.image_model}) has no indexed files to "
            "sample: run `media-search index FOLDER` first."
        )
    rng = np.random.default_rng(seed)
    pools = {k: [v[i] for i in rng.permutation(len(v))] for k, v in sorted(by_kind.items())}
    out: dict[str, list[str]] = {k: [] for k in pools}
    while sum(map(len, out.values())) < n and any(pools.values()):
        for kind in ("image", "video", "audio"):
            if pools.get(kind) and sum(map(len, out.values())) < n:
                out[kind].append(pools[kind].pop())
    return {k: sorted(v) for k, v in out.items() if v}


def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Progress:
    def __init__(self, enabled: bool, total: int) -> None:
        self.bar: Any = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="step", desc="evaluating", file=sys.stderr, dynamic_ncols=True)

    def step(self, what: str, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(what, refresh=False)
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def evaluate(
    lib: Library,
    *,
    models: Sequence[str] | None = None,
    sample: int = 24,
    seed: int = 0,
    progress: bool = False,
    k: int = 5,
) -> dict[str, Any]:
    """Compare image models on edited copies of a sample of ``lib``; see the module docstring.

    Returns ``{"models": [{"name", "families": {FAMILY: {"recall@1", "recall@5", "queries"}},
    "index_per_s", "query_ms", "memory_mb", "dim", "vector_bytes", ...}], "recommended", "sample", ...}``.
    """
    names = _models(models)
    picked = sample_files(lib, sample, seed)
    if lib.settings.is_lite:
        lib.close()  # nothing more to read; frees the .db for other processes while this runs
    n_edits = sum(len(edits.FAMILIES[k]) * len(v) for k, v in picked.items())
    steps = sum(len(v) + len(edits.FAMILIES[k]) * len(v) for k, v in picked.items() if k != "audio") * len(names)
    steps += n_edits + sum(2 * len(v) for k, v in picked.items() if k == "audio")
    bar = _Progress(progress, steps)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    with _temporary() as tmp:
        queries, skipped = _make_edits(picked, tmp / "copies", seed, bar)
        notes += skipped
        visual = {k: v for k, v in picked.items() if k in ("image", "video")}
        sounds = None
        if picked.get("audio"):  # first: Cnn14's memory is measured when it loads (video soundtracks load it too)
            sounds = _evaluate_model(lib, None, {"audio": picked["audio"]}, queries, tmp / "audio.db", bar, k)
        for name in names:
            if visual:
                rows.append(_evaluate_model(lib, name, visual, queries, tmp / f"{registry.slug(name)}.db", bar, k))
        if sounds is not None:
            rows.append(sounds)
    bar.close()
    image_rows = [r for r in rows if r["name"] != AUDIO_MODEL]
    best = max(image_rows, key=_merit)["name"] if image_rows else None
    weights = lib.settings.image_weights.strip().lower()
    return {
        "library": lib.settings.uri,
        "sample": {k: len(v) for k, v in picked.items()},
        "queries": sum(len(v) for v in queries.values()),
        "weights": "random" if weights == "random" else "pretrained" if weights == "pretrained" else "file",
        "models": rows,
        "recommended": best,
        "reason": _reason(image_rows, best),
        "notes": notes,
    }


def _models(models: Sequence[str] | None) -> list[str]:
    if not models:
        return [n for n in registry.image_models() if registry.installed(registry.get(n))]
    out = []
    for name in models:
        model = registry.image_model(name)
        registry.require(model)
        if model.name not in out:
            out.append(model.name)
    return out


@contextlib.contextmanager
def _temporary() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="media-search-evaluate-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _make_edits(
    picked: dict[str, list[str]], root: Path, seed: int, bar: _Progress
) -> tuple[dict[str, list[tuple[str, str, str]]], list[str]]:
    """``{kind: [(family, original, copy), ...]}`` and notes on what could not be made."""
    rng = np.random.default_rng(seed + 1)
    out: dict[str, list[tuple[str, str, str]]] = {}
    notes: list[str] = []
    for kind, paths in picked.items():
        if kind == "video" and not edits.has_ffmpeg():
            notes.append("videos not evaluated: the video edits need ffmpeg (apt install ffmpeg)")
            bar.step("edits", len(paths) * len(edits.FAMILIES[kind]))
            continue
        for i, src in enumerate(paths):
            for family in edits.FAMILIES[kind]:
                try:
                    copy = edits.edit(kind, family, src, root / kind / f"{i:04d}", rng)
                    out.setdefault(kind, []).append((family, os.path.realpath(src), str(copy)))
                except Exception as e:  # noqa: BLE001 - one file that cannot be edited is a note, not a stop
                    notes.append(f"no {family} copy of {src}: {type(e).__name__}: {str(e)[:120]}")
                bar.step(f"copies {kind}")
    return out, notes


def _evaluate_model(
    lib: Library, name: str | None, picked: dict[str, list[str]], queries: dict[str, list[tuple[str, str, str]]],
    db: Path, bar: _Progress, k: int,
) -> dict[str, Any]:  # fmt: skip
    """Index ``picked`` with image model ``name`` (None: the sounds, Cnn14) into ``db`` and search every copy."""
    from ..library import Library
    from ..query.search import search

    settings = lib.settings.replace(uri=str(db), token=None, prefix="media_search_",
                                    image_model=name or lib.settings.image_model)  # fmt: skip
    if name is not None and name != lib.settings.image_model and settings.image_weights.strip().lower() not in ("random", "pretrained"):
        settings = settings.replace(image_weights="pretrained")  # a weights file belongs to the library's own model
    kind_of_model = "image" if name is not None else "audio"
    with Library(settings) as tmp_lib:
        before = _rss_mb()
        embedder = tmp_lib.model(kind_of_model)
        if kind_of_model == "image":  # warm: the first batch pays one-time costs that are not indexing speed
            embedder.embed(np.zeros((1, 224, 224, 3), dtype=np.uint8))
        memory = max(0.0, _rss_mb() - before)
        spec = embedder.spec
        for kind in (*picked, *(("audio",) if "video" in picked else ())):
            tmp_lib.ensure(kind)  # type: ignore[arg-type]
        index_rate: dict[str, float] = {}
        for kind, paths in picked.items():
            start = time.perf_counter()
            report = tmp_lib.index(paths, delete_missing=False, workers=0)
            seconds = time.perf_counter() - start
            index_rate[kind] = report.indexed / seconds if seconds > 0 else 0.0
            bar.step(f"{spec.name}: index {kind}", len(paths))
        families: dict[str, dict[str, Any]] = {}
        latencies: list[float] = []
        for kind in picked:
            hits: dict[str, list[int]] = {}
            for family, original, copy in queries.get(kind, []):
                start = time.perf_counter()
                try:
                    found = search(copy, store=tmp_lib.store, embedders=tmp_lib.embedders, settings=settings,
                                   k=k, kinds=[kind], copy_signals=False)  # fmt: skip
                    paths = [os.path.realpath(m.path) for m in found.results]
                except MediaSearchError:
                    paths = []
                latencies.append(time.perf_counter() - start)
                rank = paths.index(original) + 1 if original in paths else 0
                hits.setdefault(family, []).append(rank)
                bar.step(f"{spec.name}: {family}")
            for family in edits.FAMILIES[kind]:
                ranks = hits.get(family)
                if ranks:
                    families[family] = {
                        "recall@1": round(sum(r == 1 for r in ranks) / len(ranks), 3),
                        "recall@5": round(sum(1 <= r <= 5 for r in ranks) / len(ranks), 3),
                        "queries": len(ranks),
                    }
    first = "image" if "image" in index_rate else next(iter(index_rate))
    return {
        "name": spec.name,
        "embeds": list(registry.get(spec.name).embeds) if spec.name in registry.MODELS else [kind_of_model],
        "weights_id": spec.weights_id,
        "families": families,
        "index_per_s": round(index_rate[first], 3),
        "index_kind": first,
        "index_per_s_by_kind": {kk: round(v, 3) for kk, v in index_rate.items()},
        "query_ms": round(1000 * float(np.mean(latencies)), 1) if latencies else None,
        "memory_mb": round(memory, 1),
        "dim": spec.dim,
        "vector_bytes": 4 * spec.dim,
    }


def _merit(row: dict[str, Any]) -> tuple[float, float, float]:
    fams = row["families"].values()
    r1 = float(np.mean([f["recall@1"] for f in fams])) if fams else 0.0
    r5 = float(np.mean([f["recall@5"] for f in fams])) if fams else 0.0
    return (round(r1, 3), round(r5, 3), row["index_per_s"])


def _reason(rows: list[dict[str, Any]], best: str | None) -> str:
    if best is None:
        return "no image model evaluated (the sample holds no pictures or videos)"
    r1, r5, speed = _merit(next(r for r in rows if r["name"] == best))
    text = f"best mean recall@1 over the picture and video edits ({r1:.2f}; recall@5 {r5:.2f}; {speed:.1f} {next(r for r in rows if r['name'] == best)['index_kind']}s/s indexed)"
    if any(r["name"] != best and "text" in r["embeds"] for r in rows) and "text" not in registry.get(best).embeds:
        text += "; choose a model with a text tower instead if you want to search by words"
    return text


def format_report(report: dict[str, Any]) -> str:
    """The report as a table for the terminal."""
    lines = [f"library {report['library']}: sampled {', '.join(f'{n} {k}' for k, n in report['sample'].items())}, "
             f"{report['queries']} edited copies searched (embeddings only, k=5)"]  # fmt: skip
    if report["weights"] == "random":
        lines.append("WEIGHTS ARE RANDOM (untrained): these figures test the pipeline, not the models.")
    fams = [f for kind in ("image", "video", "audio") for f in edits.FAMILIES[kind]
            if any(f in r["families"] for r in report["models"])]  # fmt: skip
    width = max([len(r["name"]) for r in report["models"]] + [5])
    head = f"{'model':<{width}}  " + "  ".join(f"{f:>10}" for f in fams) + "   index/s   query ms   memory MB   vector"
    lines += ["", "recall@1/recall@5 per edit family", head, "-" * len(head)]
    for r in report["models"]:
        cells = []
        for f in fams:
            v = r["families"].get(f)
            cells.append(f"{v['recall@1']:.2f}/{v['recall@5']:.2f}".rjust(10) if v else f"{'-':>10}")
        qms = f"{r['query_ms']:.0f}" if r["query_ms"] is not None else "-"
        lines.append(f"{r['name']:<{width}}  " + "  ".join(cells)
                     + f"  {r['index_per_s']:>8.2f}  {qms:>9}  {r['memory_mb']:>10.0f}   {r['dim']}-d {r['vector_bytes']} B")  # fmt: skip
    lines.append("")
    lines.append("index/s: pictures indexed per second (sounds for panns-cnn14); query ms: mean time per search")
    if report["recommended"]:
        lines.append(f"recommended: {report['recommended']} ({report['reason']})")
    for note in report["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)
