"""The ``media-search`` command: index, query, duplicates, serve, stats, reset, models, evaluate.

The library raises typed errors; this module turns them into one sentence on
stderr and an exit code (0 ok, 2 finished with failed files, 1 fatal). Only
``--debug`` shows a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__
from .errors import ConfigError, MediaSearchError
from .types import KINDS, fmt_time

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FATAL, EXIT_PARTIAL = 0, 1, 2


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--uri", help="Milvus URI: a .db path (Milvus Lite) or http://host:19530 (default: MEDIA_SEARCH_MILVUS_URI or a file in the user's data folder)")
    p.add_argument("--token", help="Milvus token (default: MEDIA_SEARCH_MILVUS_TOKEN)")
    p.add_argument("--image-model", metavar="NAME", help="image model (default: MEDIA_SEARCH_IMAGE_MODEL or resnet50; `media-search models` lists them); each model has its own collections")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    p.add_argument("--verbose", action="store_true", help="show the decoders' and gRPC's own messages raw (default: summarised in the report; also MEDIA_SEARCH_VERBOSE=1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="media-search",
        description="Reverse media similarity search: index a media library, then find the files most like a given image, video or sound.",
    )
    parser.add_argument("--version", action="version", version=f"media-search {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("index", help="index files and folders (recursively); unchanged files are skipped, removed files are dropped", description="Index files and folders recursively. Unchanged files (same path, size, mtime) are skipped; files gone from an indexed folder are removed from the index. Exit 0: all indexed or unchanged; 2: finished, some files failed; 1: fatal error.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to index")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--no-delete", action="store_true", help="keep index rows of files that are gone from the folders")
    p.add_argument("--follow-symlinks", action="store_true", help="follow symbolic links while walking folders (loops are detected)")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="decode processes (default: one per CPU core, at most 8; 0 decodes in the main process); with --ray and no ADDRESS, the local runtime's CPUs")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS", help="run the stages on Ray Data (pip install 'media_search[ray]'): a local runtime without ADDRESS, else a cluster (auto, ray://head:10001); put it after the PATHs")
    p.add_argument("--ray-actors", type=int, default=None, metavar="N", help="with --ray: embed actors (default: one per GPU, else a quarter of the CPUs)")
    p.add_argument("--nice", type=_niceness, default=10, metavar="N", help="lower this run's CPU priority by N (default 10: it still takes every idle core, but a page's searches and your other programs come first; 0: normal priority)")
    _common(p)

    p = sub.add_parser("query", help="find the indexed files most similar to FILE, or matching --text", description="Find the indexed files most similar to FILE (image, video or audio). The file itself is never a result; library files with the same bytes are listed as exact copies. --text \"words\" instead finds pictures and video moments by words (needs an image model with a text tower, e.g. siglip-base-patch16-224).")
    p.add_argument("file", metavar="FILE", nargs="?")
    p.add_argument("--text", metavar="WORDS", help="search by words instead of a file (images and video moments)")
    p.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--kind", action="append", choices=KINDS, help="kind of results to search (repeatable; default depends on the query's kind)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    _common(p)

    p = sub.add_parser("serve", help="start the web page (drag and drop a file to search)", description="Start the Gradio web page over the index.")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--library", action="append", default=[], metavar="FOLDER", help="folder whose files the page may serve (repeatable; default: the folders of the indexed files)")
    p.add_argument("--max-file-size", default="500mb", metavar="SIZE", help="largest upload accepted, e.g. 500mb or 2gb (default 500mb)")
    _common(p)

    p = sub.add_parser("stats", help="show what the index holds (files and rows per kind, models)", description="Show files and rows per kind and the model that filled each collection.")
    p.add_argument("--json", action="store_true", help="print as one JSON object")
    _common(p)

    p = sub.add_parser("models", help="list the embedding models (name, what they embed, dimension, weights)", description="List the registered embedding models: what each embeds (image, text, audio), its dimension, weights and whether its extra is installed.")
    p.add_argument("--json", action="store_true", help="print as one JSON object")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")

    p = sub.add_parser("evaluate", help="compare image models on edited copies of a sample of your library", description="Make edited copies of a sample of the indexed library (images: crop, jpeg, resize, brightness, mirror, overlay; videos: trim, reencode; sounds: snippet, gain, noise, mp3), index the sample with each model into a temporary database, search with every copy, and report recall@1 and recall@5 per edit family, indexing speed, query latency, memory and vector size, then recommend a model. Writes nothing into the library.")
    p.add_argument("--models", metavar="A,B", help="image models to compare, comma-separated (default: every installed image model)")
    p.add_argument("--sample", type=int, default=24, metavar="N", help="indexed files to sample (default 24)")
    p.add_argument("--seed", type=int, default=0, help="sampling and editing seed (default 0)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    _common(p)

    p = sub.add_parser("duplicates", help="list groups of copies across the library (exact and edited; photos in videos, sounds in soundtracks)", description="Group the indexed files that are copies of each other: same bytes, or edited copies verified by pHash, local features or audio fingerprints (never by an embedding score alone), across images, videos and sounds. Each group names a likely original (largest, then longest, then oldest). Nothing is moved or deleted.")
    p.add_argument("--kind", action="append", choices=KINDS, help="kind of files to compare (repeatable; default: all)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the report as one JSON object")
    out.add_argument("--csv", action="store_true", help="print one CSV row per file with its group id")
    p.add_argument("--include-similar", action="store_true", help="also list near-duplicates (e.g. bursts of one scene), as a separate 'similar' tier")
    _common(p)

    p = sub.add_parser("reset", help="delete the index of one kind (or all) so it can be rebuilt", description="Drop the collections of the given kinds (all by default), e.g. after changing weights.")
    p.add_argument("--kind", action="append", choices=KINDS, help="kind to drop (repeatable; default: all)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _common(p)
    return parser


class _Stderr:
    """Whatever ``sys.stderr`` is when a record is written (``decode.quiet`` swaps it for the terminal)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=_Stderr(),
    )
    if not debug:
        for noisy in ("milvus_lite", "pymilvus", "grpc", "httpx", "urllib3", "numba", "ray"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)


def main(argv: Sequence[str] | None = None) -> int:
    """The command; run as the process itself (``argv`` None), it ends the process sooner: Python's
    last garbage collections at exit walk every object pymilvus, pandas, gRPC and the models made
    (0.3 s of a cold query on 2 cores), so they are frozen and left to the exit (handlers still run)."""
    if argv is None:
        _lean_heap()
    code = _main(argv)
    if argv is None:
        import gc

        gc.freeze()
    return code


def _lean_heap() -> None:
    """Set glibc's heap for a run of large, short-lived arrays (audio blocks, frames, ONNX Runtime's
    buffers, Milvus Lite's writes), in this process and (through the environment) its decode
    workers: blocks of 1 MB and more are mapped and given back when freed (glibc otherwise raises
    that threshold up to 32 MB as such blocks are freed, and then keeps them in the heap), and there
    are at most two malloc arenas (glibc makes one per thread: ONNX Runtime's, gRPC's, the
    decoders'). Indexing a 10-minute 720p video peaked at 1,698 MB without this and about 1,550 MB
    with it. 256 KB saved a little more but made a 1-hour audio query spend 13 s in the kernel
    instead of 7 (30.2 s wall instead of 26.3; 24.8 s with glibc's defaults). A program that
    embeds ``Library`` keeps its own heap settings; nothing happens off glibc."""
    import ctypes

    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(1 << 20))
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    # Arrow's own allocator (mimalloc) keeps what Milvus Lite frees after reading or writing a
    # segment: opening the 4-hour recording's index took 193 MB with it, 56 MB through glibc's
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows)
        return
    try:
        mallopt(-3, int(os.environ["MALLOC_MMAP_THRESHOLD_"]))  # M_MMAP_THRESHOLD
        mallopt(-8, int(os.environ["MALLOC_ARENA_MAX"]))  # M_ARENA_MAX
    except ValueError:  # the user's own setting, not a number: glibc ignores it too
        pass


def _main(argv: Sequence[str] | None) -> int:
    from .decode import quiet

    args = build_parser().parse_args(argv)
    verbose = getattr(args, "verbose", False) or quiet.verbose_from_env()
    if verbose:
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "24")  # FFmpeg's warnings, as they come
    _setup_logging(args.debug)
    try:
        with quiet.quiet_stderr(not verbose):  # decoders' and gRPC's lines: into the report, not here
            return _run(args)
    except MediaSearchError as e:
        if args.debug:
            raise
        print(f"media-search: {e}", file=sys.stderr)
        return EXIT_FATAL
    except KeyboardInterrupt:
        print("media-search: interrupted.", file=sys.stderr)
        return 130


def _library(args: argparse.Namespace) -> Any:
    from .library import Library

    return Library(uri=os.path.expanduser(args.uri) if args.uri else None, token=args.token, image_model=args.image_model)


def _announce(lib: Any) -> None:
    notice = lib.weights_notice()
    if notice:
        print(f"media-search: note: {notice}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    if args.command == "models":
        return _models(args)
    lib = _library(args)
    try:
        if args.command == "index":
            return _index(lib, args)
        if args.command == "query":
            return _query(lib, args)
        if args.command == "stats":
            return _stats(lib, args)
        if args.command == "reset":
            return _reset(lib, args)
        if args.command == "evaluate":
            return _evaluate(lib, args)
        if args.command == "duplicates":
            return _duplicates(lib, args)
        if args.command == "serve":
            from .web import serve

            _announce(lib)
            serve(lib, host=args.host, port=args.port, library_roots=args.library, max_file_size=args.max_file_size)
            return EXIT_OK
    finally:
        lib.close()
    raise AssertionError(args.command)


def _niceness(text: str) -> int:
    n = int(text)
    if not 0 <= n <= 19:
        raise argparse.ArgumentTypeError(f"--nice takes 0 to 19, not {text}")
    return n


def _index(lib: Any, args: argparse.Namespace) -> int:
    _announce(lib)
    if args.nice > 0:
        os.nice(args.nice)  # the decode workers inherit it
    if args.ray is not None and not args.debug:
        from .indexing.distributed import quiet_ray

        quiet_ray()
    bar = _ProgressBar(enabled=not args.json and sys.stderr.isatty())
    try:
        report = lib.index(
            args.paths,
            delete_missing=not args.no_delete,
            follow_symlinks=args.follow_symlinks,
            progress=bar,
            workers=args.workers,
            ray=args.ray,
            ray_actors=args.ray_actors,
        )
    except KeyboardInterrupt:
        bar.close()
        print(
            "media-search: interrupted; the files written so far are kept. Run the same command again to finish.",
            file=sys.stderr,
        )
        return 130
    bar.close()
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(report.by_kind.items())) or "nothing new"
        print(
            f"indexed {report.indexed} ({kinds}; {report.keyframes} keyframes, {report.windows} audio windows), "
            f"unchanged {report.unchanged}, removed {report.removed}, failed {len(report.failed)} "
            f"in {report.seconds:.1f} s"
        )
        for note in report.notes:
            print(f"  note: {note}")
        for f in report.failed:
            print(f"  failed: {f.error}", file=sys.stderr)
    return report.exit_code


class _Bar:
    """A tqdm bar on stderr fed by a stage's progress events (``__call__``); silent when disabled."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _ProgressBar(_Bar):
    """A tqdm bar on stderr (files/s, ETA) fed by the indexer's progress events; silent when disabled."""

    def __call__(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if event["event"] == "start":
            from tqdm import tqdm

            self._bar = tqdm(total=event["total"], unit="file", desc="indexing", file=sys.stderr, dynamic_ncols=True)
            if event.get("unchanged"):
                self._bar.set_postfix_str(f"{event['unchanged']} unchanged", refresh=False)
        elif event["event"] == "file" and self._bar is not None:
            self._bar.update(event["done"] - self._bar.n)


class _QueryBar(_Bar):
    """A tqdm bar (seconds of the query decoded) for a long query; shown only after a second."""

    def __call__(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if self._bar is None and event["event"] == "decode":
            from tqdm import tqdm

            total = event.get("total")
            self._bar = tqdm(total=round(total) if total else None, unit="s", desc="decoding the query",
                             file=sys.stderr, dynamic_ncols=True, delay=1.0)  # fmt: skip
        if self._bar is not None:
            self._bar.update(max(0, round(event["done"]) - self._bar.n))
            if event["event"] == "embed":
                self._bar.set_description_str("embedding the query", refresh=True)


def _query(lib: Any, args: argparse.Namespace) -> int:
    if (args.file is None) == (args.text is None):
        raise ConfigError("Give either a FILE to search with or --text \"words\", not both and not neither.")
    _announce(lib)
    bar = _QueryBar(enabled=not args.json and sys.stderr.isatty())
    try:
        result = lib.search(args.file, k=args.k, kinds=args.kind, text=args.text, progress=bar)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
        return EXIT_OK
    if not result.results and not result.exact_copies:
        what = f"the text {args.text!r}" if args.text is not None else args.file
        print(f"no similar files found for {what} (is the index empty? run `media-search index FOLDER`)")
    for i, m in enumerate(result.results, 1):
        where = f"  at {fmt_time(m.timestamp)}" if m.timestamp is not None else ""
        if m.query_timestamp is not None:
            where += f" (query at {fmt_time(m.query_timestamp)})"
        copy = f"  [edited copy, confidence {m.copy_confidence:.2f}]" if m.copy and m.copy_confidence is not None else "  [edited copy]" if m.copy else ""
        print(f"{i:>3}. {m.score:.4f}  {m.kind:<5}  {m.path}{where}{copy}")
    for path in result.exact_copies:
        print(f"  exact copy: {path}")
    if result.results and not result.copy_found:
        print("  no edited copy of the query found: these results are only similar")
    return EXIT_OK


def _stats(lib: Any, args: argparse.Namespace) -> int:
    stats = lib.stats()
    if args.json:
        print(json.dumps(stats, ensure_ascii=False))
        return EXIT_OK
    print(f"index: {stats['uri']}")
    for name, part in stats["image_models"].items():
        current = "  (in use)" if name == stats["image_model"] else ""
        print(f"image model {name}: collections {part['prefix']}*{current}")
        for kind in part["rows"]:
            model = part["models"][kind] or "-"
            print(f"  {kind:<5} {part['files'].get(kind, 0):>7} files {part['rows'][kind]:>9} rows  model: {model}")
    return EXIT_OK


def _models(args: argparse.Namespace) -> int:
    from .embed.registry import MODELS, describe

    rows = [describe(m) for m in MODELS.values()]
    if args.json:
        print(json.dumps({"models": rows}, ensure_ascii=False))
        return EXIT_OK
    for r in rows:
        notes = []
        if r["default"]:
            notes.append("default")
        if r["extra"]:
            notes.append(f"extra [{r['extra']}]" + ("" if r["installed"] else f", not installed: pip install -e '.[{r['extra']}]'"))
        print(f"{r['name']:<26} {'+'.join(r['embeds']):<11} {r['dim']:>5}-d  {r['weights']}" + (f"  ({'; '.join(notes)})" if notes else ""))
    return EXIT_OK


def _evaluate(lib: Any, args: argparse.Namespace) -> int:
    from .evaluate import evaluate, format_report

    _announce(lib)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    report = evaluate(lib, models=models, sample=args.sample, seed=args.seed,
                      progress=not args.json and sys.stderr.isatty())  # fmt: skip
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(format_report(report))
    return EXIT_OK


def _duplicates(lib: Any, args: argparse.Namespace) -> int:
    bar = _StageBar(enabled=not (args.json or args.csv) and sys.stderr.isatty())
    try:
        report = lib.duplicates(args.kind, include_similar=args.include_similar, progress=bar)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
        return EXIT_OK
    if args.csv:
        sys.stdout.write(report.to_csv())
        return EXIT_OK
    copies, similar = report.copies, report.similar
    print(f"{len(copies)} group{'s' if len(copies) != 1 else ''} of copies ({sum(len(g.files) for g in copies)} files)"
          + (f", {len(similar)} of similar files" if args.include_similar else "") + f" in {report.seconds:.1f} s")
    for g in report.groups:
        label = "copies" if g.tier == "copies" else "similar (not verified as copies)"
        print(f"\ngroup {g.id}: {g.kind}, {len(g.files)} files, {label}")
        for m in g.files:
            dims = f"{m.width}x{m.height}" if m.width else ""
            dur = f"{fmt_time(m.duration)}" if m.duration else ""
            mark = "*" if m.original else " "
            print(f"  {mark} {m.path}  [{m.kind}, {m.size} B{', ' + dims if dims else ''}{', ' + dur if dur else ''}]")
        for p in g.pairs:
            ev = ", ".join(f"{k}={v}" for k, v in p.to_dict().items() if k not in ("a", "b", "relation", "method"))
            print(f"    {os.path.basename(p.a)} ~ {os.path.basename(p.b)}: {p.relation} by {p.method} ({ev})")
    if report.groups:
        print("\n* likely original (largest, then longest, then oldest); nothing was moved or deleted")
    return EXIT_OK


class _StageBar(_Bar):
    """A tqdm bar per stage of the duplicate search, on stderr; silent when disabled."""

    def __call__(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if event["event"] == "stage":
            from tqdm import tqdm

            self.close()
            self._bar = tqdm(total=event["total"] or None, desc=event["stage"], file=sys.stderr, dynamic_ncols=True, leave=False)
        elif event["event"] == "advance" and self._bar is not None:
            self._bar.update(event["n"])


def _reset(lib: Any, args: argparse.Namespace) -> int:
    kinds = args.kind or list(KINDS)
    if not args.yes:
        if not sys.stdin.isatty():
            print("media-search: reset deletes index data: pass --yes to confirm.", file=sys.stderr)
            return EXIT_FATAL
        answer = input(f"Delete the {', '.join(kinds)} index at {lib.settings.uri}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return EXIT_FATAL
    for kind in kinds:
        lib.store.drop(kind)
    print(f"dropped {', '.join(kinds)}")
    return EXIT_OK
