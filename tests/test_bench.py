"""dmlcsr-bench in a tiny configuration: it runs, skips what is absent with a reason, and
writes valid JSON and a PNG. No timing is asserted (speed belongs to the bench itself)."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from dmlcsr.benchmarks.cli import main
from dmlcsr.benchmarks.harness import Schedule
from dmlcsr.benchmarks.plot import plot_report
from dmlcsr.benchmarks.report import format_report, write_json
from dmlcsr.benchmarks.run import BenchSettings, run_bench

REQUESTED = ["torch-cpu-fp32", "torch-cuda-fp16-graph", "tensorrt-int8"]


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    work = tmp_path_factory.mktemp("bench")
    settings = BenchSettings(input_size=64, num_classes=11, targets=REQUESTED, batch_sizes=(1,),
                             schedule=Schedule(warmup=0, iterations=2), module_schedule=Schedule(0, 1),
                             end_to_end=False, work_dir=work / "artefacts")
    messages: list[str] = []
    report = run_bench(settings, log=messages.append)
    return report, messages, work


def test_tiny_run_writes_valid_json_and_png(tiny_report):
    report, _, work = tiny_report
    path = write_json(report, work / "results")
    data = json.loads(path.read_text())
    assert data["settings"]["input_size"] == 64 and data["tool"] == "dmlcsr-bench"
    assert data["environment"]["cpu"]["model"] and data["environment"]["libraries"]["torch"]
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
    png = plot_report(data, path.with_suffix(".png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "torch-cpu-fp32" in format_report(data)


def test_every_requested_backend_is_timed_or_skipped_with_a_reason(tiny_report):
    report, messages, _ = tiny_report
    timed = {r["backend"] for r in report["results"]}
    skipped = {s["backend"]: s["reason"] for s in report["skipped"]}
    assert set(REQUESTED) == timed | set(skipped) and not timed & set(skipped)
    for backend, reason in skipped.items():
        assert reason and any(backend in m and reason in m for m in messages)


def test_cli_lists_backends_and_rejects_unknown_ones(tmp_path):
    runner = CliRunner()
    listing = runner.invoke(main, ["--list-backends"])
    assert listing.exit_code == 0 and "ort-cpu-int8" in listing.output and "tensorrt-fp16" in listing.output
    bad = runner.invoke(main, ["--backends", "torch-tpu", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "error: unknown backend(s) torch-tpu" in bad.output
    assert not list(tmp_path.iterdir())


CPU_ENGINES = ["ort-cpu-fp32", "ort-cpu-int8", "ov-cpu-fp32", "ov-cpu-int8"]


def test_cpu_engines_twice_in_one_work_folder_give_the_summary_both_times(tmp_path):
    """A second run reuses every artefact (FP32/INT8 ONNX, IRs) and quantizes nothing anew,
    and its reused FP32 file quantizes as a fresh one (the stem is found by shape)."""
    pytest.importorskip("openvino")
    settings = BenchSettings(input_size=97, num_classes=19, targets=CPU_ENGINES, batch_sizes=(1,),
                             schedule=Schedule(warmup=0, iterations=1), modules=False, end_to_end=False,
                             work_dir=tmp_path / "work")
    reports = []
    for _ in range(2):
        messages: list[str] = []
        reports.append(run_bench(settings, log=messages.append))
        if len(reports) == 1:
            made = {p.name: p.stat().st_mtime_ns for p in settings.work_dir.iterdir()}
    assert {p.name: p.stat().st_mtime_ns for p in settings.work_dir.iterdir()} == made  # reused, not remade
    assert any(name.endswith(".xml") for name in made) and any(name.endswith(".pth") for name in made)
    for report in reports:
        assert report["skipped"] == []
        assert {r["backend"] for r in report["results"]} == set(CPU_ENGINES)
        summary = report["cpu_summary"]
        assert summary["model_weights"].startswith("demo-dmlcsr-19-97.pth") and len(summary["photos"]) == 7
        rows = {row["backend"]: row for row in summary["rows"]}
        assert set(rows) == set(CPU_ENGINES) and rows["ort-cpu-fp32"]["speedup"] == 1.0
        assert rows["ov-cpu-fp32"]["agreement_labels"] >= 0.9999 and rows["ov-cpu-fp32"]["passes_verify"]
        assert "int8-nncf" in rows["ov-cpu-int8"]["engine"] and 0.5 < rows["ov-cpu-int8"]["agreement_labels"]
        assert "CPU summary" in format_report(report) and "ov-cpu-int8" in format_report(report)
    first, second = ({row["backend"]: row["agreement_labels"] for row in r["cpu_summary"]["rows"]} for r in reports)
    assert first == second  # the same files give the same labels
