"""dmlcsr-parse --ray on a local Ray instance (2 CPUs, started once here): the toy model,
20 images of which 2 unreadable. The outputs must equal single-process dmlcsr-parse byte for
byte (the folder named by path or by file:// URI), the manifest must name the failures, a
rerun must skip everything, and a run killed half-way must, once rerun, end with the
outputs of a clean run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from dmlcsr.runtime.cli import main
from dmlcsr.runtime.manifest import MANIFEST, read_manifest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytest.importorskip("onnx")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")  # Ray pickling its own context

BAD = ("broken.jpg", "notes.png")  # a truncated JPEG, text with an image's name


@pytest.fixture(scope="module")
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def write_photos(folder: Path, face_paths: list[Path], count: int, side: int) -> Path:
    """``count`` real photos (the shipped ones, scaled to ``side`` px and flipped for variety)
    in two subfolders, plus the two unreadable files."""
    for index in range(count):
        image = cv2.imread(str(face_paths[index % len(face_paths)]))
        scale = side / max(image.shape[:2])
        image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
        image = cv2.flip(image, 1) if (index // len(face_paths)) % 2 else image
        path = folder / ("a" if index % 2 else "b") / f"photo{index:02d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), image)
    data = (folder / "a" / "photo01.jpg").read_bytes()
    (folder / BAD[0]).write_bytes(data[: len(data) // 2])
    (folder / BAD[1]).write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory, face_paths) -> Path:
    return write_photos(tmp_path_factory.mktemp("ray_photos") / "photos", face_paths, 18, 160)


def output_files(out: Path) -> dict[str, bytes]:
    """Every visible file under ``out`` but the manifest (and any hidden temporary) by relative path."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")}


def test_ray_outputs_equal_single_process_and_a_rerun_skips_everything(ray_instance, toy, photos, tmp_path):
    single, distributed = tmp_path / "single", tmp_path / "ray"
    common = [str(toy), str(photos), "--overlay", "--device", "cpu"]
    alone = CliRunner().invoke(main, [*common, "--out", str(single)])
    assert alone.exit_code == 1, alone.output  # the two unreadable files are skips
    result = CliRunner().invoke(main, [*common, "--out", str(distributed), "--ray", "auto", "--actors", "2"])
    assert result.exit_code == 1, result.output
    assert "parsed 18 of 20 images" in result.output and "2 failed" in result.output and "images/s" in result.output
    expected = output_files(single)
    assert len([name for name in expected if name.endswith(".png")]) == 18
    assert output_files(distributed) == expected  # PNGs, faces JSON, overlays and labels.json, byte for byte

    entries = read_manifest(distributed / MANIFEST)
    assert len(entries) == 20
    failed = {Path(e.source).name: e.error for e in entries.values() if e.status == "failed"}
    assert set(failed) == set(BAD)
    assert "truncated JPEG" in failed[BAD[0]] and "not a readable image" in failed[BAD[1]]
    ok = [e for e in entries.values() if e.status == "ok"]
    faces = {Path(path).name: len(json.loads(data)["faces"]) for path, data in expected.items()
             if path.endswith("_faces.json")}
    assert {Path(e.name).name + "_faces.json": e.faces for e in ok} == faces

    from_store = tmp_path / "uri"  # the folder named by URI, listed and read through pyarrow's filesystem
    by_uri = CliRunner().invoke(main, [str(toy), photos.as_uri(), "--overlay", "--device", "cpu", "--out",
                                       str(from_store), "--ray", "auto", "--actors", "2"])
    assert by_uri.exit_code == 1 and "parsed 18 of 20 images" in by_uri.output, by_uri.output
    assert output_files(from_store) == expected
    assert all(e.source.startswith("file:///") for e in read_manifest(from_store / MANIFEST).values())

    lines = (distributed / MANIFEST).read_text().splitlines()
    again = CliRunner().invoke(main, [*common, "--out", str(distributed), "--ray", "auto"])
    assert again.exit_code == 1, again.output  # the two failures stand until --retry-failed
    assert "nothing to parse: 18 of 20 images" in again.output and "2 images failed in an earlier run" in again.output
    assert (distributed / MANIFEST).read_text().splitlines() == lines
    assert output_files(distributed) == expected

    retried = CliRunner().invoke(main, [*common, "--out", str(distributed), "--ray", "auto", "--retry-failed"])
    assert retried.exit_code == 1 and "parsed 0 of 20 images" in retried.output and "(18 done before)" in retried.output
    assert len(read_manifest(distributed / MANIFEST)) == 20  # the two failures recorded again, the last line wins


def test_a_killed_run_resumes_to_the_outputs_of_a_clean_run(ray_instance, toy, face_paths, tmp_path):
    photos = write_photos(tmp_path / "big", face_paths, 18, 1600)  # big enough that a run takes a while
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    command = [sys.executable, "-c", "from dmlcsr.runtime.cli import main; main()", str(toy), str(photos),
               "--faces", "whole", "--overlay", "--device", "cpu", "--ray", ray_instance, "--actors", "1",
               "--cpus-per-actor", "1"]
    run = subprocess.Popen([*command, "--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest, deadline = killed / MANIFEST, time.monotonic() + 120
    while run.poll() is None and time.monotonic() < deadline:
        if manifest.is_file() and manifest.read_text().count("\n") >= 1:
            break
        time.sleep(0.005)
    assert run.poll() is None, "the run ended before it could be killed"
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    at_kill = read_manifest(manifest)
    assert 1 <= len(at_kill) < 20
    ok_at_kill = sum(entry.status == "ok" for entry in at_kill.values())
    partial = output_files(killed)
    assert all(cv2.imread(str(killed / name), cv2.IMREAD_UNCHANGED) is not None for name in partial
               if name.endswith(".png"))  # whatever is visible is whole

    resumed = subprocess.run([*command, "--out", str(killed)], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 1, resumed.stderr  # the two unreadable files
    assert (f"({ok_at_kill} done before)" in resumed.stdout) == (ok_at_kill > 0), resumed.stdout
    reference = subprocess.run([*command, "--out", str(clean)], capture_output=True, text=True, timeout=300)
    assert reference.returncode == 1, reference.stderr
    assert output_files(killed) == output_files(clean)
    assert not [p for p in killed.rglob(".dmlcsr-*")]  # the killed run's temporaries are gone
    final = read_manifest(manifest)
    assert sorted((e.name, e.status) for e in final.values()) == \
        sorted((e.name, e.status) for e in read_manifest(clean / MANIFEST).values())


def test_list_file_adds_inputs_without_ray(toy, photos, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two photos\n{photos / 'a' / 'photo01.jpg'}\n\n{photos / 'b' / 'photo00.jpg'}\n")
    out = tmp_path / "o"
    result = CliRunner().invoke(main, [str(toy), "--list", str(listing), "--faces", "whole", "--out", str(out)])
    assert result.exit_code == 0 and "parsed 2 of 2 inputs" in result.output, result.output
    assert sorted(p.name for p in out.glob("*.png")) == ["photo00.png", "photo01.png"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--actors", "2"], "--actors applies to a Ray run"),
    (["--gpus-per-actor", "1"], "--gpus-per-actor applies to a Ray run"),
    (["--retry-failed"], "--retry-failed applies to a Ray run"),
    (["file:///nowhere/photos"], "is a URI; inputs on a store are read with --ray"),
])
def test_ray_options_without_ray_are_refused(toy, photos, tmp_path, extra, message):
    result = CliRunner().invoke(main, [str(toy), str(photos), "--out", str(tmp_path / "out"), *extra])
    assert result.exit_code == 2 and message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["a.jpg", "--gpus-per-actor", "nan"], "--gpus-per-actor is nan; pass a finite number"),
    (["a.jpg", "--cpus-per-actor", "inf"], "--cpus-per-actor is inf; pass a finite number"),
    (["--list", "none.txt"], "cannot read the --list file none.txt"),
    (["--list", "."], "cannot read the --list file ."),
    (["foo://bucket/photo.jpg"], "cannot open foo://bucket/photo.jpg"),
    (["file:///nowhere/photo.jpg"], "input not found: file:///nowhere/photo.jpg"),
    (["out/manifest.jsonl"], "is the run's manifest, not an image"),
])
def test_bad_ray_inputs_are_one_line_before_ray_starts(toy, tmp_path, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / MANIFEST).write_text("{}\n")
    cv2.imwrite(str(tmp_path / "a.jpg"), np.full((64, 64, 3), 128, np.uint8))
    result = CliRunner().invoke(main, [str(toy), *extra, "--faces", "whole", "--out", "out", "--ray"])
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == [MANIFEST]  # nothing written


def test_videos_are_refused_with_ray(toy, tmp_path):
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (64, 48))
    writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    result = CliRunner().invoke(main, [str(toy), str(clip), "--out", str(tmp_path / "out"), "--ray"])
    assert result.exit_code == 2 and "is a video: parse videos without --ray" in result.output


def test_bench_splits_each_run_into_start_up_and_seconds_per_image():
    from dmlcsr.benchmarks.ray_throughput import per_config

    runs = []
    for config, start, per in (("dmlcsr-parse", 1.0, 0.05), ("ray, 1 actor", 6.0, 0.06)):
        for count in (40, 200):
            wall = start + count * per
            runs.append({"config": config, "images": count, "wall_s": wall, "images_per_s": count / wall,
                         "s_per_image": wall / count})
    single, ray_row = per_config(runs, (40, 200))
    assert single["marginal_s_per_image"] == pytest.approx(0.05) and single["startup_s"] == pytest.approx(1.0)
    assert ray_row["marginal_overhead_s_per_image"] == pytest.approx(0.01)
    assert ray_row["overhead_s_per_image"] == pytest.approx((6.0 - 1.0) / 40 + 0.01, abs=1e-4)
