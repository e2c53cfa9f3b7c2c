"""The benchmark's Markdown tables and plots, from its results dict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join("" if c is None else str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _skipped(sec: dict[str, Any]) -> str | None:
    return sec.get("skipped") or (f"error: {sec['error']}" if "error" in sec else None)


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    parts = [f"# media_search benchmark ({r['mode']})\n",
             f"`{r['command']}` on {m['cpus']} CPUs, torch {m['torch']}, GPU: {m['cuda'] or 'none'}; "
             f"load average at start {', '.join(f'{x:.1f}' for x in m['load_average'])}. "
             "Random-init weights. Every ratio is against a baseline measured in the same run.\n"]
    if "images" in r:
        s = r["images"]
        parts.append("## Image indexing\n")
        if _skipped(s):
            parts.append(_skipped(s) + "\n")
        else:
            p = s["photos"]
            parts.append(f"{s['ours']['files']} JPEGs of {p['min']} to {p['max']} MP (mean {p['mean']} MP, {p['mean_file_mb']} MB).\n\n")
            rows = [["naive loop", s["naive"]["files_per_s"], "1.00", _shares(s["naive"].get("share"))],
                    [f"Library.index ({s['ours']['engine']})", s["ours"]["files_per_s"], s["ratio"], ""]]
            for key, label in (("ours_int8", "int8 engine, own model identity"), ("ours_torch_engine", "torch engine")):
                if key in s and "files_per_s" in s[key]:
                    t = s[key]
                    rows.append([f"Library.index ({label})", t["files_per_s"], round(t["files_per_s"] / s["naive"]["files_per_s"], 2), ""])
            for key in sorted(k for k in s if k.startswith("ours_workers") and "files_per_s" in s[k]):
                rows.append([f"Library.index, {key[len('ours_workers'):]} decode worker(s)", s[key]["files_per_s"], s[key]["ratio"], ""])
            parts.append(_table(["pipeline", "files/s", "× naive", "time share"], rows))
            c = s["stage_costs"]
            parts.append("\nOur stages, isolated, one core each (ms per file): "
                         f"decode+prepare {c['decode_s_per_file'] * 1000:.0f} (full-size decode would be "
                         f"{c['full_size_decode_s_per_file'] * 1000:.0f}), inference ({c['engine']}) "
                         f"{c['inference_s_per_file'] * 1000:.0f}, insert {c['insert_s_per_file'] * 1000:.1f}. "
                         f"Target: {s['target']}.\n")
    if "unchanged" in r:
        s = r["unchanged"]
        parts.append("\n## Unchanged re-run\n")
        parts.append((_skipped(s) or f"{s['files']} indexed, unchanged files: {s['seconds']} s "
                      f"({s['unchanged']} unchanged, {s['indexed']} indexed).") + "\n")
    if "video" in r:
        parts.append("\n## Video (multiples of real time)\n")
        s = r["video"]
        if _skipped(s):
            parts.append(_skipped(s) + "\n")
        else:
            rows = [[k, v["seconds_of_video"], v["naive_sampling_x_realtime"], v["ours_sampling_x_realtime"], v["sampling_ratio"],
                     v["naive_index_x_realtime"], v["ours_index_x_realtime"], v["index_ratio"]]
                    for k, v in s.items() if isinstance(v, dict) and "seconds_of_video" in v]
            parts.append(_table(["video", "s", "naive sampling ×rt", "keyframes ×rt", "ratio", "naive index ×rt (frames only)", "our index ×rt (frames + soundtrack + writes)", "ratio"], rows))
            floor = [f"{k}: grab every frame {v['grab_floor_x_realtime']}×rt, keyframes {v['ours_sampling_x_realtime_per_cpu_second']}×rt per CPU second"
                     for k, v in s.items() if isinstance(v, dict) and "grab_floor_x_realtime" in v]
            parts.append("\nDecoding floor and CPU time: " + "; ".join(floor) + ".\n")
    if "audio" in r:
        parts.append("\n## Audio indexing (multiples of real time)\n")
        s = r["audio"]
        if _skipped(s):
            parts.append(_skipped(s) + "\n")
        else:
            rows = [[k, v["naive_x_realtime"], v["ours_x_realtime"], v["ratio"], v.get("ours_int8_x_realtime"), v.get("ratio_int8")]
                    for k, v in s.items() if isinstance(v, dict) and "ratio" in v]
            parts.append(_table(["audio", "naive ×rt (whole file, one pass)", "ours ×rt (onnx)", "ratio", "ours ×rt (int8)", "ratio"], rows))
            parts.append("\nOurs: 5 s windows with offsets, fingerprints and store writes; target >= 30x real time on 2 cores.\n")
            sweep = s.get("sweep", {})
            if sweep.get("runs"):
                rows = [[x["engine"], x["hop"], x["batch_size"], x["windows"], x["x_realtime"], x["x_realtime_if_idle"], x["vs_naive"]] for x in sweep["runs"]]
                parts.append("\nWindow pipeline (decode + windows + Cnn14, no writes), all files together:\n\n")
                parts.append(_table(["engine", "hop s", "batch", "windows", "×rt", "×rt if idle", "× naive"], rows))
    if "insert" in r:
        parts.append("\n## Inserts (2048-d rows/s)\n")
        s = r["insert"]
        if _skipped(s):
            parts.append(_skipped(s) + "\n")
        else:
            rows = []
            for where in ("lite", "server"):
                v = s.get(where, {})
                if "skipped" in v or "error" in v:
                    rows.append([where, v.get("skipped") or v.get("error"), "", "", ""])
                else:
                    rows.append([where, v.get("insert_rows_batch64"), v.get("insert_rows_batch256"), v.get("insert_rows_batch1024"), v.get("store_upsert_rows")])
            parts.append(_table(["store", "insert b=64", "b=256", "b=1024", "MilvusStore.upsert_rows"], rows))
            for k, v in s.items():
                if k.startswith("at_"):
                    parts.append(f"\n{k}: {v}\n")
    if "query" in r:
        parts.append("\n## Query latency, real files on disk, copy verification on (ms)\n")
        s = r["query"]
        if _skipped(s):
            parts.append(_skipped(s) + "\n")
        else:
            lib = s.get("library", {})
            parts.append(f"\nLibrary: {lib.get('n_images')} image files, {lib.get('n_videos')} videos, {lib.get('n_sounds')} sounds; "
                         f"indexing: {s.get('index', {}).get('seconds')} s.\n\n")  # fmt: skip
            rows = []
            for kind, v in s.get("warm", {}).items():
                if "p50_ms" in v:
                    rows.append([kind, v["p50_ms"], v["p95_ms"], v["cpu"]["p50_ms"], v["runs"], json.dumps(v.get("mean_ms_in", {}))])
            cold = s.get("cold_image", {})
            if "p50_ms" in cold:
                rows.append(["image, cold CLI", cold["p50_ms"], cold["p95_ms"], cold["cpu"]["p50_ms"], cold["runs"], json.dumps(cold.get("top_level_import_seconds", {}))])
            parts.append(_table(["query", "p50", "p95", "CPU p50", "runs", "mean ms in (warm) / imports s (cold)"], rows))
            img = s.get("warm", {}).get("image", {})
            if img:
                parts.append(f"\nImage copies: {img.get('copy_flagged_first')}/{img.get('edited_copies')} flagged copy at rank 1 "
                             f"({img.get('original_first')} with the edited file's own original first: the library holds other "
                             f"variants of the same photos); unrelated with a copy flag: {img.get('unrelated_with_a_copy_flag')}/{img.get('unrelated')}. "
                             f"p50 by family: {img.get('by_family_p50_ms')}.\n")  # fmt: skip
            parts.append(f"\nTarget: {s['target']}.\n")
    if "gpu" in r:
        parts.append("\n## GPU\n")
        s = r["gpu"]
        if _skipped(s):
            parts.append(_skipped(s) + "\n")
        else:
            rows = [["ResNet50 bf16 channels_last, model only", s["model_only"]["images_per_s"], f"batch {s['model_only']['batch']}"],
                    ["JPEG decode on the GPU (720p)", s["jpeg_decode"]["images_per_s"], f"batch {s['jpeg_decode']['batch']}"],
                    ["end to end: read + GPU decode + model", s["end_to_end"]["files_per_s"], f"{s['end_to_end']['files']} files"],
                    ["Milvus Lite writes beside it", s["store_vs_gpu"]["lite_rows_per_s"], f"{s['store_vs_gpu']['writers_needed_to_keep_up']} writers to keep up"]]
            parts.append(f"{s['device']}. bf16 vs fp32 cosine min {s['model_only']['bf16_vs_fp32_cosine_min']}.\n\n")
            parts.append(_table(["what", "per second", "note"], rows))
    if "long" in r:
        s = r["long"]
        parts.append("\n## Long media (real CLI, one file per index)\n")
        if _skipped(s) or "error" in s:
            parts.append((_skipped(s) or s["error"]) + "\n")
        else:
            rows = [[k, v["file_mb"], v["index"].get("seconds"), v["index"].get("peak_mb"), v["query"].get("seconds"), v["query"].get("peak_mb")]
                    for k, v in s.items() if isinstance(v, dict) and "index" in v]
            parts.append(_table(["file", "MB", "index s", "index peak MB", "query s", "query peak MB"], rows))
    return "\n".join(parts)


def _shares(share: dict[str, float] | None) -> str:
    return ", ".join(f"{k} {v:.0%}" for k, v in share.items()) if share else ""


def plots(r: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = r.get("images", {})
    if "ours" in s and "naive" in s:
        fig, ax = plt.subplots(figsize=(6, 3))
        names = ["naive loop", f"ours ({s['ours']['engine']})"] + (["ours (torch)"] if "ours_torch_engine" in s else [])
        vals = [s["naive"]["files_per_s"], s["ours"]["files_per_s"]] + ([s["ours_torch_engine"]["files_per_s"]] if "ours_torch_engine" in s else [])
        ax.barh(names, vals, color=["#999", "#2a7"] + ["#7a2"] * (len(vals) - 2))
        ax.set_xlabel("image files / s (1-12 MP JPEG)")
        fig.tight_layout()
        fig.savefig(out / "images.png", dpi=120)
        plt.close(fig)

