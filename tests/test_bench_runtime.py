"""dmlcsr-bench's runtime sections (overhead, photo) on a toy parsing model: real runs of
FaceParser and CenterFace, results in --out (the current folder by default, never the
installed package), stage timings that add up, and no torch loaded beside the runtime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import dmlcsr.benchmarks
from dmlcsr.benchmarks.cli import main

pytest.importorskip("onnx")
FACES = Path(__file__).resolve().parents[1] / "dmlcsr" / "data" / "faces"
PACKAGE = Path(dmlcsr.benchmarks.__file__).resolve().parent


def run_section(args: list[str]) -> tuple[str, dict, Path]:
    """The section's printed output, its JSON and the JSON's path (the one file written)."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    path = Path(result.output.rsplit("wrote ", 1)[1].strip())
    return result.output, json.loads(path.read_text()), path


def test_overhead_times_each_photo_stage_by_stage(toy, tmp_path):
    output, report, path = run_section(["overhead", "--model", str(toy), "--images", str(FACES / "astronaut.png"),
                                        "--images", str(FACES / "t1.jpg"), "--repeats", "2", "--import-runs", "1",
                                        "--out", str(tmp_path)])
    assert list(tmp_path.iterdir()) == [path] and path.name.endswith("-cores_overhead.json")
    assert report["section"] == "overhead" and report["settings"]["repeats"] == 2 and report["model"] == "toy.onnx"
    assert report["settings"]["images"] == [str(FACES / "astronaut.png"), str(FACES / "t1.jpg")]
    assert report["input_size"] == [97, 97] and report["backend"].startswith("onnxruntime")
    environment = report["environment"]
    assert environment["cpu"]["logical_cores"] and "gpu" not in environment and "torch_threads" not in environment
    assert len(environment["load_average_start"]) == len(environment["load_average_end"]) == 3
    assert report["import_s"]["runs"] == 1 and 0 < report["import_s"]["min"] == report["import_s"]["median"]
    assert [row["image"] for row in report["images"]] == ["astronaut.png", "t1.jpg"]
    assert [row["size"] for row in report["images"]] == ["512x512", "1280x886"]
    for row in report["images"]:  # two repeats: each median is a mean, and a frame is its three stages
        assert row["frame_ms"] == pytest.approx(row["pre_ms"] + row["inference_ms"] + row["post_ms"], abs=0.03)
        rounding = 100 * 0.02 / row["frame_ms"]  # the ms figures are rounded to 0.01; toy frames last ~1 ms
        assert row["overhead_pct"] == pytest.approx(100 * (row["pre_ms"] + row["post_ms"]) / row["frame_ms"],
                                                    abs=rounding)
    assert report["overhead_pct"]["max"] == max(row["overhead_pct"] for row in report["images"])
    assert "import dmlcsr.runtime: median" in output and "budget 0.3 s" in output and "t1.jpg" in output


def test_photo_times_detect_parse_composite(toy, tmp_path):
    output, report, path = run_section(["photo", "--model", str(toy), "--repeats", "1", "--threads", "1",
                                        "--tag", "one thread", "--out", str(tmp_path)])
    assert list(tmp_path.iterdir()) == [path] and path.name.endswith("-cores_photo_one-thread.json")
    assert report["section"] == "photo" and report["settings"]["threads"] == 1
    assert report["faces"] == 6 and report["photo"] == "t1.jpg" and report["photo_size"] == "1280x886"
    stages = report["median_ms"]
    assert list(stages) == ["detect", "parse", "composite", "total"]
    assert stages["total"] == pytest.approx(stages["detect"] + stages["parse"] + stages["composite"], abs=0.2)
    assert sum(report["share_pct"].values()) == pytest.approx(100, abs=0.2)
    assert report["parse_ms_per_face"] == pytest.approx(stages["parse"] / 6, abs=0.1)
    assert "6 faces, median of 1 runs" in output and "parse per face" in output and "load average" in output


def test_results_go_to_the_current_folder_not_the_package(toy, tmp_path, monkeypatch):
    package_files = sorted(PACKAGE.rglob("*"))
    monkeypatch.chdir(tmp_path)
    _, _, path = run_section(["overhead", "--model", str(toy), "--images", str(FACES / "mask_green.jpg"),
                              "--repeats", "1", "--import-runs", "1"])
    assert path.parent == Path(".") and [p.name for p in tmp_path.iterdir()] == [path.name]
    assert sorted(PACKAGE.rglob("*")) == package_files


def test_runtime_sections_run_without_loading_torch(toy, tmp_path):
    """They time the torch-free runtime, so torch must not sit in the same process."""
    script = ("import sys; from click.testing import CliRunner; from dmlcsr.benchmarks.cli import main; "
              f"r = CliRunner().invoke(main, ['photo', '--model', {str(toy)!r}, '--repeats', '1', "
              f"'--out', {str(tmp_path)!r}]); assert r.exit_code == 0, r.output; "
              "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip().endswith("[]"), done.stdout


def test_a_model_that_is_not_there_is_refused_before_anything_runs(tmp_path):
    result = CliRunner().invoke(main, ["overhead", "--model", str(tmp_path / "missing.onnx"), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "does not exist" in result.output and not list(tmp_path.iterdir())
