"""dmlcsr-bench's latency section in a tiny configuration, run through the CLI: it runs,
skips what is absent with a reason, writes valid JSON and a PNG into --out and prints the
table. No timing is asserted (speed belongs to the bench itself). The runtime sections are
in test_bench_runtime.py, the shared report in test_bench_report.py."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from dmlcsr.benchmarks.cli import main
from dmlcsr.benchmarks.harness import Schedule
from dmlcsr.benchmarks.run import BenchSettings, run_bench
from dmlcsr.benchmarks.tables import format_report

REQUESTED = ["torch-cpu-fp32", "torch-cuda-fp16-graph", "tensorrt-int8"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The latency section as a user runs it, on both networks at 64x64, 11 classes."""
    work = tmp_path_factory.mktemp("bench")
    result = CliRunner().invoke(main, [
        "--backends", ",".join(REQUESTED), "--batch-sizes", "1", "--input-size", "64", "--num-classes", "11",
        "--warmup", "0", "--iterations", "2", "--min-seconds", "0", "--no-end-to-end", "--tag", "tiny",
        "--work-dir", str(work / "artefacts"), "--out", str(work / "results")])
    assert result.exit_code == 0, result.output
    return result, work / "results"


def test_tiny_run_writes_valid_json_and_png(tiny_run):
    result, out = tiny_run
    (path,) = out.glob("*.json")
    assert path.name.endswith("-cores_tiny.json") and path.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.iterdir()) == [path.name, path.with_suffix(".png").name]
    assert f"wrote {path} and {path.with_suffix('.png')}" in result.output
    data = json.loads(path.read_text())
    assert data["settings"]["input_size"] == [64, 64]
    assert data["tool"] == "dmlcsr-bench" and data["section"] == "latency"
    assert data["environment"]["cpu"]["model"] and data["environment"]["libraries"]["torch"]
    assert len(data["environment"]["load_average_end"]) == 3
    assert set(data["models"]) == {"DML-CSR", "EAGRNet"}
    assert data["models"]["EAGRNet"]["params"] == 66_722_523  # 11 classes
    rows = {(r["backend"], r["model"]): r for r in data["results"]}
    for model in ("DML-CSR", "EAGRNet"):
        latency = rows[("torch-cpu-fp32", model)]["latency"]
        assert latency["iterations"] == 2 and 0 < latency["min_ms"] <= latency["median_ms"] <= latency["p90_ms"]
    (ratio,) = [r for r in data["ratios"] if r["backend"] == "torch-cpu-fp32"]
    dml, eagr = (rows[("torch-cpu-fp32", m)]["latency"]["median_ms"] for m in ("DML-CSR", "EAGRNet"))
    assert math.isclose(ratio["ratio"], eagr / dml) and ratio["paper_ratio"] == 2.87
    parts = data["modules"]["torch-cpu-fp32"]["parts"]
    assert {p["part"] for p in parts} >= {"backbone", "context", "layer5", "edge_layer", "block1", "block2"}
    assert all(p["median_ms"] > 0 and p["gflops"] >= 0 for p in parts)
    table = format_report(data)
    assert table in result.output
    line = next(line for line in table.splitlines() if line.startswith("torch-cpu-fp32 "))  # latency, then throughput
    assert line.split()[1:6:2] == [f"{dml:.1f}", f"{eagr:.1f}", f"{eagr / dml:.2f}"]


def test_every_requested_backend_is_timed_or_skipped_with_a_reason(tiny_run):
    result, out = tiny_run
    data = json.loads(next(out.glob("*.json")).read_text())
    timed = {r["backend"] for r in data["results"]}
    skipped = {s["backend"]: s["reason"] for s in data["skipped"]}
    assert set(REQUESTED) == timed | set(skipped) and not timed & set(skipped)
    for backend, reason in skipped.items():
        assert reason and f"skipping {backend}: {reason}" in result.output


def test_cli_lists_backends_and_rejects_unknown_ones(tmp_path):
    runner = CliRunner()
    listing = runner.invoke(main, ["--list-backends"])
    assert listing.exit_code == 0 and "ort-cpu-int8" in listing.output and "tensorrt-fp16" in listing.output
    assert runner.invoke(main, ["latency", "--list-backends"]).output == listing.output
    bad = runner.invoke(main, ["--backends", "torch-tpu", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "error: unknown backend(s) torch-tpu" in bad.output
    small = runner.invoke(main, ["latency", "--input-size", "32", "--out", str(tmp_path)])
    assert small.exit_code == 2 and "error: --input-size 32,32 is too small" in small.output
    assert not list(tmp_path.iterdir())


def test_help_teaches_every_section():
    runner = CliRunner()
    top = runner.invoke(main, ["--help"])
    assert top.exit_code == 0
    for line in ("dmlcsr-bench --quick", "dmlcsr-bench --list-backends", "dmlcsr-bench overhead --model",
                 "dmlcsr-bench photo --model", "latency ", "overhead ", "photo ", "current folder"):
        assert line in top.output, line
    for section in ("latency", "overhead", "photo"):
        page = runner.invoke(main, [section, "--help"])
        assert page.exit_code == 0 and "Examples:" in page.output and "--out DIRECTORY" in page.output
        assert f"dmlcsr-bench {section if section != 'latency' else '--'}" in page.output
    assert "--backends" in runner.invoke(main, ["--quick", "--help"]).output  # bare options: the latency section


def test_a_section_refuses_the_latency_options():
    result = CliRunner().invoke(main, ["photo", "--quick"])
    assert result.exit_code == 2 and "No such option" in result.output and "--quick" in result.output


CPU_ENGINES = ["ort-cpu-fp32", "ort-cpu-int8", "ov-cpu-fp32", "ov-cpu-int8"]


@pytest.mark.slow  # two networks exported, quantized twice (ONNX Runtime, NNCF) and timed: minutes
def test_cpu_engines_twice_in_one_work_folder_give_the_summary_both_times(tmp_path, demo_model):
    """A second run reuses every artefact (demo checkpoint, FP32/INT8 ONNX, IRs) and
    quantizes nothing anew, and the same files give the same labels. The demo checkpoint
    is the session's demo model (its fit is the slowest thing here, and other
    tests share it), saved where the bench looks for its own."""
    import torch

    pytest.importorskip("openvino")
    settings = BenchSettings(input_size=(97, 97), num_classes=19, targets=CPU_ENGINES, batch_sizes=(1,),
                             schedule=Schedule(warmup=0, iterations=1), modules=False, end_to_end=False,
                             work_dir=tmp_path / "work")
    settings.work_dir.mkdir()
    torch.save(demo_model.state_dict(), settings.work_dir / "demo-dmlcsr-19-97.pth")
    reports = []
    for _ in range(2):
        messages: list[str] = []
        reports.append(run_bench(settings, log=messages.append))
        if len(reports) == 1:
            made = {p.name: p.stat().st_mtime_ns for p in settings.work_dir.iterdir()}
    assert {p.name: p.stat().st_mtime_ns for p in settings.work_dir.iterdir()} == made  # reused, not remade
    kinds = sorted(name.split("-97px-")[1] for name in made if "-97px-" in name)
    per_network = ["fp32.onnx", "int8.onnx", "ov-fp32.xml", "ov-fp32.bin", "ov-int8.xml", "ov-int8.bin"]
    assert kinds == sorted(2 * per_network), made
    for report in reports:
        assert report["skipped"] == []
        assert {r["backend"] for r in report["results"]} == set(CPU_ENGINES)
        summary = report["cpu_summary"]
        assert summary["model_weights"].startswith("demo-dmlcsr-19-97.pth") and len(summary["photos"]) == 7
        rows = {row["backend"]: row for row in summary["rows"]}
        assert set(rows) == set(CPU_ENGINES) and rows["ort-cpu-fp32"]["speedup"] == 1.0
        assert rows["ov-cpu-fp32"]["agreement_labels"] >= 0.9999 and rows["ov-cpu-fp32"]["passes_verify"]
        assert "int8-nncf" in rows["ov-cpu-int8"]["engine"] and 0.5 < rows["ov-cpu-int8"]["agreement_labels"]
        folder = {(row["backend"], row["batch"]): row for row in summary["folder"]["rows"]}
        assert set(folder) == {("ort-cpu-fp32", 1)} | {(name, 4) for name in CPU_ENGINES}
        assert folder[("ort-cpu-fp32", 1)]["speedup"] == 1.0 and all(r["images"] == 28 for r in folder.values())
        table = format_report(report)
        assert "CPU summary" in table and "ov-cpu-int8" in table and "folder of 28 photos" in table
    first, second = ({row["backend"]: row["agreement_labels"] for row in r["cpu_summary"]["rows"]} for r in reports)
    assert first == second  # the same files give the same labels
