"""Each section's result as the text table dmlcsr-bench prints, after the shared header:
latency (backends, throughput, CPU summary, parts, end to end), runtime overhead (import
time, pre+post share per photo) and the photo's stages."""

from __future__ import annotations

from dmlcsr.benchmarks.paper import DMLCSR, EAGRNET, PAPER_MS, PAPER_RATIO
from dmlcsr.benchmarks.report import CPP, LATENCY, OVERHEAD, PHOTO, RAY, header, section_of


def latency_header(report: dict) -> list[str]:
    env, settings = report["environment"], report["settings"]
    height, width = settings["input_size"]
    lines = [f"input 1x3x{height}x{width}, {settings['num_classes']} classes, torch threads {env['torch_threads']}"]
    for name, model in report["models"].items():
        lines.append(f"{name:8} {model['params'] / 1e6:6.2f} M params, {model['gflops']:6.1f} GFLOP "
                     f"(paper {model['paper_params_m']:.2f} M / {model['paper_gflops']:.2f} G), weights "
                     f"{model['weights']}")
    return lines


def latency_table(report: dict) -> list[str]:
    """Batch-1 medians (p90) per backend, the EAGRNet/DML-CSR ratio beside the paper's."""
    lines = [f"{'backend':24}{'DML-CSR ms':>12}{'(p90)':>9}{'EAGRNet ms':>12}{'(p90)':>9}{'ratio':>8}"
             f"{'paper':>7}  note"]
    rows = {(r["backend"], r["model"]): r for r in report["results"] if r["batch"] == 1}
    for ratio in (r for r in report["ratios"] if r["batch"] == 1):
        dml, eagr = rows[(ratio["backend"], DMLCSR)], rows[(ratio["backend"], EAGRNET)]
        lines.append(f"{ratio['backend']:24}{dml['latency']['median_ms']:12.1f}{dml['latency']['p90_ms']:9.1f}"
                     f"{eagr['latency']['median_ms']:12.1f}{eagr['latency']['p90_ms']:9.1f}"
                     f"{ratio['ratio']:8.2f}{PAPER_RATIO:7.2f}  {dml['note']}")
    lines.append(f"{'paper (one GPU)':24}{PAPER_MS[DMLCSR]:12.1f}{'':9}{PAPER_MS[EAGRNET]:12.1f}{'':9}"
                 f"{PAPER_RATIO:8.2f}")
    return lines


def throughput_table(report: dict) -> list[str]:
    batches = sorted({r["batch"] for r in report["results"]})
    lines = [f"{'backend':24}{'model':9}" + "".join(f"{f'b={b} img/s':>12}" for b in batches)]
    cells = {(r["backend"], r["model"], r["batch"]): r["throughput_ips"] for r in report["results"]}
    for backend, model in dict.fromkeys((r["backend"], r["model"]) for r in report["results"]):
        values = [cells.get((backend, model, b)) for b in batches]
        lines.append(f"{backend:24}{model:9}" + "".join(f"{v:12.2f}" if v else f"{'-':>12}" for v in values))
    return lines


def module_table(report: dict) -> list[str]:
    lines = []
    for backend, summary in report.get("modules", {}).items():
        lines.append(f"parts on {backend} (each timed alone, batch 1):")
        lines.append(f"  {'model':9}{'part':17}{'GFLOP':>8}{'median ms':>11}{'ms/GFLOP':>10}  what")
        for part in summary["parts"]:
            indent = "  " if part["part_of"] else ""
            per = part["median_ms"] / part["gflops"] if part["gflops"] else float("nan")
            lines.append(f"  {part['model']:9}{indent + part['part']:17}{part['gflops']:8.1f}{part['median_ms']:11.1f}"
                         f"{per:10.2f}  {part['description']}")
        for model, totals in summary["models"].items():
            whole = totals["whole_ms"]
            lines.append(f"  {model}: backbone + heads = {totals['backbone_ms']:.1f} + {totals['heads_ms']:.1f} = "
                         f"{totals['sum_of_parts_ms']:.1f} ms" + (f" (whole forward {whole:.1f} ms)" if whole else ""))
        if "heads_ratio" in summary:
            lines.append(f"  heads only EAGRNet/DML-CSR = {summary['heads_ratio']:.2f}; "
                         f"backbone + heads = {summary['sum_of_parts_ratio']:.2f}")
    return lines


def end_to_end_table(report: dict) -> list[str]:
    e2e = report.get("end_to_end")
    if not e2e:
        return []
    if "skipped" in e2e:
        return [f"end to end: skipped ({e2e['skipped']})"]
    width, height = e2e["photo_size"]
    stages = ", ".join(f"{name} {s['median_ms']:.1f}" for name, s in e2e["stages"].items())
    return [f"end to end, FaceParser on {e2e['photo']} ({width}x{height}) via {e2e['backend']}: {stages} ms (medians)"]


def cpu_summary_table(report: dict) -> list[str]:
    """Every CPU engine's DML-CSR latency, speed-up over ONNX Runtime FP32 and agreement."""
    summary = report.get("cpu_summary")
    if not summary or not summary["rows"]:
        return []
    lines = [f"CPU summary (DML-CSR, batch 1; agreement with PyTorch FP32 on {len(summary['photos'])} photos, "
             f"weights {summary['model_weights']}):",
             f"  {'backend':14}{'ms':>9}{'speed-up':>10}{'agree out':>11}{'agree 473':>11}  {'worst class':20}verify"]
    for row in summary["rows"]:
        speedup = f"{row['speedup']:.2f}x" if row["speedup"] else "-"
        worst = f"{row['worst_class']} {row['worst_class_agreement']:.1%}"
        lines.append(f"  {row['backend']:14}{row['median_ms']:9.1f}{speedup:>10}{row['agreement_output']:11.3%}"
                     f"{row['agreement_labels']:11.3%}  {worst:20}{'pass' if row['passes_verify'] else 'FAIL'} "
                     f"(>= {row['threshold']:.2%})")
    folder = summary.get("folder")
    if folder and folder["rows"]:
        lines.append(f"  folder of {folder['images']} photos (--faces whole), images/s:")
        for row in folder["rows"]:
            mode = f"throughput mode, batch {row['batch']}" if row["throughput_mode"] else "one at a time"
            speedup = f"{row['speedup']:.2f}x" if row["speedup"] else "-"
            lines.append(f"    {row['backend']:14}{row['images_per_s']:7.2f}{speedup:>8}  {mode}  ({row['engine']})")
    return lines


def latency_tables(report: dict) -> list[str]:
    parts = [latency_header(report), ["", "latency, batch 1:"], latency_table(report), ["", "throughput:"],
             throughput_table(report)]
    if report.get("cpu_summary"):
        parts += [[""], cpu_summary_table(report)]
    if report.get("modules"):
        parts += [[""], module_table(report)]
    parts += [end_to_end_table(report)]
    if report["skipped"]:
        parts += [["", "skipped:"], [f"  {s['backend']}: {s['reason']}" for s in report["skipped"]]]
    return [line for part in parts for line in part]


def overhead_table(report: dict) -> list[str]:
    """Import time against its budget, then each photo's stages and pre+post share."""
    imp, over = report["import_s"], report["overhead_pct"]
    columns = f"{'image':<22}{'size':>11}{'pre ms':>9}{'infer ms':>10}{'post ms':>9}{'frame ms':>10}" \
              f"{'parse ms':>10}{'pre+post %':>12}"
    lines = [f"backend {report['backend']}; model {report['model']}; input {report['input_size']}",
             f"import dmlcsr.runtime: median {imp['median']:.3f} s, min {imp['min']:.3f} s "
             f"over {imp['runs']} fresh interpreters (budget {imp['budget']} s)", columns, "-" * len(columns)]
    lines += [f"{r['image']:<22}{r['size']:>11}{r['pre_ms']:>9.1f}{r['inference_ms']:>10.1f}{r['post_ms']:>9.1f}"
              f"{r['frame_ms']:>10.1f}{r['parse_ms']:>10.1f}{r['overhead_pct']:>12.2f}" for r in report["images"]]
    lines.append(f"median frame {report['frame_ms_median']:.0f} ms; pre+post median {over['median']:.2f} % "
                 f"(max {over['max']:.2f} %, budget {over['budget']} %)")
    return lines


def photo_table(report: dict) -> list[str]:
    """Detect / parse / composite medians on one photo, each stage's share of the total."""
    columns = f"{'stage':<12}{'median ms':>12}{'share %':>10}"
    lines = [f"parser {report['backend']} at {report['input_size']}; detector {report['detector_backend']}",
             f"{report['photo']} ({report['photo_size']}): {report['faces']} faces, median of "
             f"{report['settings']['repeats']} runs", columns, "-" * len(columns)]
    lines += [f"{stage:<12}{ms:>12.1f}{report['share_pct'].get(stage, 100.0):>10.1f}"
              for stage, ms in report["median_ms"].items()]
    lines.append(f"parse per face: {report['parse_ms_per_face']:.1f} ms (all faces in one batch)")
    return lines


def ray_table(report: dict) -> list[str]:
    """Per model: images/s of dmlcsr-parse alone and on Ray, seconds per image against it."""
    columns = f"{'model':<24}{'run':<16}{'images/s':>10}{'s/image':>10}{'vs alone':>10}{'marginal':>10}{'start-up':>10}"
    lines = [f"dmlcsr-parse --faces whole on the example photos repeated; {report['cpus']} CPUs; "
             "a fresh process per run (marginal s/image and start-up s from two image counts)",
             columns, "-" * len(columns)]
    for model in report["models"]:
        for row in model["per_config"]:
            extra = "".join(f"{row[key]:>10.3f}" if key in row else f"{'':>10}"
                            for key in ("overhead_s_per_image", "marginal_s_per_image", "startup_s"))
            lines.append(f"{model['model'][:23]:<24}{row['config']:<16}{row['images_per_s']:>10.3f}"
                         f"{row['s_per_image']:>10.3f}{extra}")
    return lines


def cpp_table(report: dict) -> list[str]:
    """Per model, C++ dmlcsr_parse and Python FaceParser on the same engine: the median over
    the photos of each photo's median ms per stage."""
    lines = ["| model | runtime | pre ms | infer ms | post ms | end-to-end ms |", "|---|---|---|---|---|---|"]
    for entry in report["models"]:
        for side, name in (("cpp", "C++ dmlcsr_parse"), ("python", "Python FaceParser")):
            m = entry["median"][side]
            lines.append(f"| {entry['model']} | {name} | {m['pre_ms']} | {m['infer_ms']} | {m['post_ms']} | "
                         f"{m['total_ms']} |")
    return lines


SECTION_TABLES = {LATENCY: latency_tables, OVERHEAD: overhead_table, PHOTO: photo_table, RAY: ray_table,
                  CPP: cpp_table}


def format_report(report: dict) -> str:
    """The header every section shares, then the section's own tables."""
    return "\n".join(header(report) + SECTION_TABLES[section_of(report)](report))
