"""dmlcsr-parse on files, folders and a video (toy ONNX model: the CLI's plumbing, real inference)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from dmlcsr.runtime import FaceParser
from dmlcsr.runtime.cli import main

pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def clip(tmp_path_factory, face_paths) -> Path:
    """Four frames of a real photo panning sideways, as MP4."""
    image = cv2.imread(str(next(p for p in face_paths if p.name == "astronaut.png")))
    image = cv2.resize(image, (160, 120))
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (160, 120))
    for shift in range(4):
        writer.write(np.roll(image, 12 * shift, axis=1))
    writer.release()
    return path


def _read_png(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_folder_file_and_video_with_overlays(toy, clip, face_paths, tmp_path):
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    for path in face_paths[:3]:
        shutil.copy(path, folder / path.name)
    shutil.copy(face_paths[3], folder / "more" / face_paths[3].name)
    (folder / "notes.txt").write_text("ignored: not an image")
    single = face_paths[4]
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [str(toy), str(folder), str(single), str(clip), "--out", str(out),
                                       "--overlay", "--batch", "2", "--device", "cpu", "--faces", "whole"])
    assert result.exit_code == 0, result.output
    assert "parsed 6 of 6 inputs" in result.output
    parser = FaceParser(toy, device="cpu")
    expected = {out / "photos" / p.with_suffix(".png").name: p for p in face_paths[:3]}
    expected[out / "photos" / "more" / face_paths[3].with_suffix(".png").name] = face_paths[3]
    expected[out / single.with_suffix(".png").name] = single
    for png, source in expected.items():
        assert np.array_equal(_read_png(png), parser.parse(source)), png
        overlay = cv2.imread(str(png.with_name(png.stem + "_overlay.jpg")))
        assert overlay.shape[0] >= cv2.imread(str(source)).shape[0]
    frames = sorted((out / "clip").glob("*.png"))
    assert [f.name for f in frames] == ["000000.png", "000001.png", "000002.png", "000003.png"]
    capture = cv2.VideoCapture(str(clip))
    ok, first = capture.read()
    capture.release()
    assert ok and np.array_equal(_read_png(frames[0]), parser.parse(first))
    video = cv2.VideoCapture(str(out / "clip_overlay.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    video.release()
    legend = json.loads((out / "labels.json").read_text())
    assert legend["label_names"] == parser.label_names and len(legend["palette_bgr"]) == 19


def test_face_box_option(toy, face_paths, tmp_path):
    photo = next(p for p in face_paths if p.name == "t1.jpg")
    result = CliRunner().invoke(main, [str(toy), str(photo), "--out", str(tmp_path), "--face-box", "560,250,150,190"])
    assert result.exit_code == 0, result.output
    expected = FaceParser(toy, device="cpu").parse(photo, face_box=(560, 250, 150, 190))
    assert np.array_equal(_read_png(tmp_path / "t1.png"), expected)
    result = CliRunner().invoke(main, [str(toy), str(photo), "--out", str(tmp_path), "--face-box", "560,250"])
    assert result.exit_code == 2 and "error: --face-box '560,250' is not x,y,w,h" in result.output


def test_bad_inputs_are_skipped_and_counted(toy, face_paths, tmp_path):
    (tmp_path / "zero.jpg").write_bytes(b"")
    result = CliRunner().invoke(main, [str(toy), str(face_paths[0]), str(tmp_path / "zero.jpg"),
                                       "--out", str(tmp_path / "out"), "--faces", "whole"])
    assert result.exit_code == 1
    assert "skipped" in result.output and "empty (0 bytes)" in result.output
    assert "parsed 1 of 2 inputs" in result.output and "Traceback" not in result.output
    assert (tmp_path / "out" / face_paths[0].with_suffix(".png").name).exists()


def test_unusable_model_or_inputs_exit_2_with_one_line(toy, face_paths, tmp_path):
    runner = CliRunner()
    cases = [([str(tmp_path / "missing.onnx"), str(face_paths[0])], "error: model file not found"),
             ([str(toy), str(tmp_path / "nope.jpg")], "error: input not found"),
             ([str(toy), str(tmp_path)], "error: no images or videos in")]
    for args, message in cases:
        result = runner.invoke(main, [*args, "--out", str(tmp_path / "o")])
        assert result.exit_code == 2 and message in result.output, result.output
        assert "Traceback" not in result.output


def test_help_teaches_with_examples():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "--face-box" in result.output and "labels.json" in result.output
