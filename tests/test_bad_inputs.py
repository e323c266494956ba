"""Bad input, table-driven: every case gets its exact outcome, a one-line error that names
the problem, or the output of the good path with nothing lost, never a traceback.

Seeded with the cases of a 340-case bad-input run (issue 14) plus the ones found while
fixing them; the toy model (real ONNX Runtime inference, 97 px) keeps it fast. Classes:
image, array, box, faces-json, model, sidecar, checkpoint, video, out, flag, api.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import tracemalloc
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from support.toy_onnx import toy_parsing_onnx

from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime import FaceParser
from dmlcsr.runtime.cli import main
from dmlcsr.runtime.faces import NO_MARGIN, Face, Margin, parse_photo
from dmlcsr.runtime.faces.box_file import read_boxes
from dmlcsr.runtime.images import read_image

pytest.importorskip("onnx")

SIZE = (97, 97)


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return toy_parsing_onnx(tmp_path_factory.mktemp("bad_inputs_model") / "toy.onnx", input_size=SIZE)


@pytest.fixture(scope="module")
def parser(toy) -> FaceParser:
    return FaceParser(toy, device="cpu")


@pytest.fixture(scope="module")
def photo(face_paths) -> Path:
    return next(p for p in face_paths if p.name == "t1.jpg")


def png_claiming(width: int, height: int) -> bytes:
    """A few hundred bytes of PNG whose header claims width x height (the data is garbage)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 600)) + chunk(
        b"IEND", b"")


def _png(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def run_cli(args: list[str]):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output and not isinstance(result.exception, (AssertionError, TypeError,
                                                                                  ValueError, KeyError)), result.output
    return result


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


# --------------------------------------------------------------------------------------
# dmlcsr-parse: inputs, boxes, faces JSON, flags -> exit code and the message it must print

@dataclass
class CliCase:
    """Arguments built in a fresh folder, the exit code and the text the run must print."""

    id: str
    kind: str
    build: Callable[[Path, Path, Path], list]  # (folder, toy model, real photo) -> arguments after MODEL
    exit_code: int
    text: str


def _copy(photo: Path, folder: Path, name: str | None = None) -> Path:
    return Path(shutil.copy(photo, folder / (name or photo.name)))


def _write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _faces(folder: Path, document: object) -> Path:
    return _write(folder, "boxes.json", json.dumps(document))


CLI_CASES = [
    # image files
    CliCase("empty-file", "image", lambda d, m, p: [_write(d, "zero.jpg", b""), "--faces", "whole"], 1,
            "empty (0 bytes)"),
    CliCase("text-as-jpg", "image", lambda d, m, p: [_write(d, "notes.jpg", "hello"), "--faces", "whole"], 1,
            "not a readable image"),
    CliCase("truncated-jpeg", "image", lambda d, m, p: [_write(d, "cut.jpg", p.read_bytes()[:4000]), "--faces",
                                                        "whole"], 1, "truncated JPEG"),
    CliCase("png-header-100000x100000", "image", lambda d, m, p: [_write(d, "bomb.png", png_claiming(100000, 100000)),
                                                                  "--faces", "whole"], 1,
            "100000x100000 = 10000 MP, above the 100 MP limit"),
    CliCase("png-header-11000x11000", "image", lambda d, m, p: [_write(d, "big.png", png_claiming(11000, 11000)),
                                                                "--faces", "whole"], 1, "121 MP, above the 100 MP"),
    CliCase("heic-in-folder", "image", lambda d, m, p: [_write(d, "in/photo.heic", b"\0\0\0\x18ftypheic").parent,
                                                        "--faces", "whole"], 1, "not a readable image"),
    CliCase("missing-input", "image", lambda d, m, p: [d / "nope.jpg"], 2, "error: input not found"),
    CliCase("folder-without-images", "image", lambda d, m, p: [_write(d, "docs/a.txt", "x").parent], 2,
            "error: no images or videos in"),
    # --face-box
    CliCase("face-box-nan", "box", lambda d, m, p: [p, "--face-box", "nan,0,10,10"], 2, "NaN or infinite"),
    CliCase("face-box-three-numbers", "box", lambda d, m, p: [p, "--face-box", "1,2,3"], 2, "is not x,y,w,h"),
    CliCase("face-box-negative-size", "box", lambda d, m, p: [p, "--face-box", "10,10,-5,20"], 2, "is empty"),
    CliCase("face-box-tiny", "box", lambda d, m, p: [p, "--face-box", "10,10,0.00001,0.00001"], 2,
            "below the 2-pixel minimum"),
    CliCase("face-box-1e308", "box", lambda d, m, p: [p, "--face-box", "0,0,1e308,1e308"], 2, "beyond 16777216"),
    CliCase("face-box-outside", "box", lambda d, m, p: [p, "--face-box", "5000,5000,10,10"], 1,
            "lies outside the 1280x886 image"),
    # --faces FILE.json
    CliCase("faces-json-nan", "faces-json", lambda d, m, p: [p, "--faces", _write(d, "b.json", "[[NaN, 0, 50, 50]]")],
            2, "NaN or infinite"),
    CliCase("faces-json-infinity", "faces-json",
            lambda d, m, p: [p, "--faces", _write(d, "b.json", "[[0, 0, Infinity, 50]]")], 2, "NaN or infinite"),
    CliCase("faces-json-1e308", "faces-json", lambda d, m, p: [p, "--faces", _faces(d, [[1e308, 0, 50, 50]])], 2,
            "beyond 16777216"),
    CliCase("faces-json-1e12", "faces-json", lambda d, m, p: [p, "--faces", _faces(d, [[1e12, -1e12, 50, 50]]),
                                                              "--overlay"], 2, "beyond 16777216"),
    CliCase("faces-json-outside", "faces-json", lambda d, m, p: [p, "--faces", _faces(d, [[5000, 0, 50, 50]])], 1,
            "face box 0 in boxes.json (5000, 0, 50, 50) lies outside the 1280x886 image"),
    CliCase("faces-json-negative", "faces-json", lambda d, m, p: [p, "--faces", _faces(d, [[10, 10, -50, 50]])], 2,
            "is empty"),
    CliCase("faces-json-nan-landmarks", "faces-json",
            lambda d, m, p: [p, "--overlay", "--faces", _write(d, "b.json", '{"faces": [{"box": [500, 200, 100, 120], '
                                                                 '"landmarks": [[NaN, 2], [1, 2], [1, 2], [1, 2], '
                                                                 '[1, 2]]}]}')], 2,
            "landmarks of face box 0 in b.json must be 5 finite"),
    CliCase("faces-json-other-image", "faces-json",
            lambda d, m, p: [p, "--faces", _faces(d, {"image": "other.jpg", "width": 1280, "height": 886,
                                                      "faces": [{"box": [500, 200, 100, 120]}]})], 1,
            "boxes.json was written for other.jpg, not t1.jpg"),
    CliCase("faces-json-other-size", "faces-json",
            lambda d, m, p: [p, "--faces", _faces(d, {"image": "t1.jpg", "width": 640, "height": 480,
                                                      "faces": [{"box": [500, 200, 100, 120]}]})], 1,
            "was written for a 640x480 image (t1.jpg), not this 1280x886 one"),
    CliCase("faces-json-a-list-of-strings", "faces-json", lambda d, m, p: [p, "--faces", _faces(d, ["a", "b"])], 2,
            "is not four numbers"),
    CliCase("faces-json-string", "faces-json", lambda d, m, p: [p, "--faces", _faces(d, "boxes")], 2,
            "does not hold face boxes"),
    CliCase("faces-json-deep", "faces-json",
            lambda d, m, p: [p, "--faces", _write(d, "b.json", "[" * 100_000 + "]" * 100_000)], 2,
            "not valid JSON (nested too deeply)"),
    CliCase("faces-json-is-a-folder", "faces-json", lambda d, m, p: [p, "--faces", _write(d, "dir.json/x", "").parent],
            2, "cannot read face box file"),
    CliCase("faces-json-missing", "faces-json", lambda d, m, p: [p, "--faces", d / "none.json"], 2,
            "face box file not found"),
    CliCase("faces-not-json", "faces-json", lambda d, m, p: [p, "--faces", "everyone"], 2,
            "is not auto, whole or a .json file"),
    # flags
    CliCase("margin-nan", "flag", lambda d, m, p: [p, "--margin", "nan"], 2, "a margin is nan; pass a finite number"),
    CliCase("margin-huge", "flag", lambda d, m, p: [p, "--margin", "1e308"], 2, "from 0 to 10"),
    CliCase("margin-three", "flag", lambda d, m, p: [p, "--margin", "0.1,0.2,0.3"], 2, "is not one or four"),
    CliCase("min-face-nan", "flag", lambda d, m, p: [p, "--min-face", "nan"], 2,
            "--min-face is nan; pass a finite number"),
    CliCase("min-face-negative", "flag", lambda d, m, p: [p, "--min-face", "-3"], 2, "must be at least 0"),
    CliCase("face-box-with-faces", "flag", lambda d, m, p: [p, "--face-box", "1,2,30,40", "--faces", "whole"], 2,
            "--face-box and --faces both say where the faces are"),
    CliCase("margin-with-whole", "flag", lambda d, m, p: [p, "--faces", "whole", "--margin", "0.3"], 2,
            "--margin does nothing with --faces whole"),
    CliCase("detector-with-face-box", "flag", lambda d, m, p: [p, "--face-box", "1,2,30,40", "--detector", m], 2,
            "--detector does nothing with --face-box"),
    CliCase("min-face-with-json", "flag", lambda d, m, p: [p, "--faces", _faces(d, [[1, 2, 30, 40]]), "--min-face",
                                                           "10"], 2, "--min-face does nothing with --faces"),
    CliCase("out-empty", "flag", lambda d, m, p: [p, "--faces", "whole", "--out", ""], 2, "--out is empty"),
    CliCase("threads-beyond-int32", "flag", lambda d, m, p: [p, "--faces", "whole", "--threads", "3000000000"], 2,
            "3000000000 is not in the range 1<=x<=1024"),
    CliCase("faces-json-5000-digit-int", "faces-json",
            lambda d, m, p: [p, "--faces", _write(d, "b.json", "[[" + "9" * 5000 + ", 0, 50, 50]]")], 2,
            "is not valid JSON"),
    CliCase("faces-json-landmark-strings", "faces-json",
            lambda d, m, p: [p, "--faces", _faces(d, {"faces": [{"box": [500, 200, 100, 120],
                                                                 "landmarks": ["12", "34", "56", "78", "90"]}]})], 2,
            "landmarks of face box 0 in boxes.json must be 5 finite"),
    CliCase("faces-json-score-string", "faces-json",
            lambda d, m, p: [p, "--faces", _faces(d, {"faces": [{"box": [500, 200, 100, 120], "score": "0.9"}]})], 2,
            "the score of face box 0 in boxes.json is '0.9', not a number"),
    CliCase("face-box-2000x-the-image", "box", lambda d, m, p: [p, "--face-box", "0,0,1000000,1000000"], 1,
            "is over 16 times the 1280x886 image"),
    CliCase("face-box-quarter-pixel-overlap", "box", lambda d, m, p: [p, "--face-box", "1279.5,885.5,300,300"], 1,
            "lies outside the 1280x886 image"),
    CliCase("batch-zero", "flag", lambda d, m, p: [p, "--batch", "0"], 2, "0 is not in the range x>=1"),
    CliCase("threads-zero", "flag", lambda d, m, p: [p, "--threads", "0"], 2, "0 is not in the range 1<=x<=1024"),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[f"{c.kind}:{c.id}" for c in CLI_CASES])
def test_cli_case(case, toy, photo, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    out = tmp_path / "out"
    args = case.build(inputs, toy, photo)
    result = run_cli([toy, *args, *(() if "--out" in args else ("--out", out)), "--device", "cpu"])
    assert result.exit_code == case.exit_code, result.output
    assert case.text in result.output, result.output
    if case.exit_code == 2:  # refused before any work: one error line, nothing written
        assert len(error_lines(result.output)) == 1 or "Error: Invalid value" in result.output, result.output
        assert not out.exists()
    else:  # the input is a counted skip with its reason; nothing half-written for it
        assert "1 skipped" in result.output and "skipped " in result.output
        assert not any(p.name.startswith(".") for p in out.rglob("*")) if out.exists() else True


def test_a_bad_file_in_a_folder_is_a_skip_and_the_rest_are_parsed(toy, parser, face_paths, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    good = [_copy(p, folder) for p in face_paths[:3]]
    _write(folder, "a_bomb.png", png_claiming(100000, 100000))  # sorts first: the later files must still run
    _write(folder, "b_broken.jpg", b"\xff\xd8\xff\xe0 not really")
    _write(folder, "c.gif", cv2.imencode(".gif", cv2.imread(str(face_paths[0])))[1].tobytes())
    _write(folder, "d.heic", b"\0\0\0\x18ftypheic")
    _write(folder, "notes.txt", "not an image")
    result = run_cli([toy, folder, "--faces", "whole", "--out", tmp_path / "out"])
    assert result.exit_code == 1
    assert "parsed 4 of 7 inputs" in result.output and "3 skipped" in result.output
    assert "ignored 1 file(s) in" in result.output and ".txt x1" in result.output
    for path in good:
        np.testing.assert_array_equal(_png(tmp_path / "out" / "photos" / path.with_suffix(".png").name),
                                      parser.parse(path))
    assert (tmp_path / "out" / "photos" / "c.png").exists()  # GIF decoded like any image


# --------------------------------------------------------------------------------------
# outputs never overwrite inputs or each other; failures leave nothing half-written

def test_out_beside_the_inputs_is_refused_and_nothing_is_touched(toy, photo, tmp_path, monkeypatch):
    source = _copy(photo, tmp_path, "photo.png")
    before = source.read_bytes()
    monkeypatch.chdir(tmp_path)
    result = run_cli([toy, "photo.png", "--faces", "whole", "--out", "."])
    assert result.exit_code == 2
    assert error_lines(result.output) == ["error: --out . would overwrite the input photo.png with an output; pass "
                                          "another --out, e.g. --out parsed"]
    assert source.read_bytes() == before
    folder = tmp_path / "shots"
    folder.mkdir()
    inside = _copy(photo, folder, "a.png")
    result = run_cli([toy, folder, "--faces", "whole", "--out", tmp_path])
    assert result.exit_code == 2 and "would overwrite the input" in result.output
    assert inside.read_bytes() == before


def test_an_output_never_replaces_the_faces_file_the_run_reads(toy, photo, tmp_path, monkeypatch):
    image = _copy(photo, tmp_path, "t1.jpg")
    boxes = _write(tmp_path, "t1_faces.json", json.dumps([[500, 200, 100, 120]]))
    monkeypatch.chdir(tmp_path)
    result = run_cli([toy, image.name, "--faces", boxes.name, "--out", "."])
    assert result.exit_code == 2 and "would overwrite the input t1_faces.json" in result.output
    assert json.loads(boxes.read_text()) == [[500, 200, 100, 120]]


def test_a_video_and_a_folder_of_the_same_name_keep_their_outputs_apart(toy, parser, photo, tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    still = _copy(photo, folder, "000000.png")
    video = _video(tmp_path / "clip.mp4", photo, frames=3)
    out = tmp_path / "out"
    result = run_cli([toy, folder, video, "--faces", "whole", "--out", out])
    assert result.exit_code == 0, result.output
    assert f"{video} is written as clip-1 (clip is taken by" in result.output
    np.testing.assert_array_equal(_png(out / "clip" / "000000.png"), parser.parse(still))
    assert sorted(p.name for p in (out / "clip-1").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    capture = cv2.VideoCapture(str(video))
    frame = capture.read()[1]
    capture.release()
    np.testing.assert_array_equal(_png(out / "clip-1" / "000000.png"), parser.parse(frame))


def test_a_failed_write_leaves_no_partial_file_and_the_batch_goes_on(toy, parser, face_paths, tmp_path, monkeypatch):
    """A full disk while writing one overlay: that input is skipped with the reason and none
    of its files stay (not even a half-written JPEG); the next inputs are written."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in face_paths[:3]:
        _copy(path, folder)
    real_write = Path.write_bytes
    overlays = []

    def write_bytes(self: Path, data: bytes) -> int:
        if self.suffix == ".jpg":
            overlays.append(self)
            if len(overlays) == 2:  # the second input's overlay: half a file, then the disk is full
                real_write(self, data[:100])
                raise OSError(28, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    out = tmp_path / "out"
    result = run_cli([toy, folder, "--faces", "whole", "--overlay", "--out", out])
    assert result.exit_code == 1
    assert "No space left on device" in result.output and "parsed 2 of 3 inputs" in result.output
    assert not overlays[1].exists()
    written = sorted(p.name for p in (out / "photos").iterdir())
    assert written == sorted(f"{p.stem}{suffix}" for p in (face_paths[0], face_paths[2])
                             for suffix in (".png", "_overlay.jpg"))


def test_a_run_that_parses_nothing_leaves_no_folder_behind(toy, tmp_path):
    bad = _write(tmp_path, "zero.png", b"")
    result = run_cli([toy, bad, "--faces", "whole", "--out", tmp_path / "out"])
    assert result.exit_code == 1 and "parsed 0 of 1 inputs" in result.output
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------
# videos

def _video(path: Path, photo: Path, frames: int, fourcc: str = "mp4v") -> Path:
    image = cv2.resize(cv2.imread(str(photo)), (160, 112))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 5.0, (160, 112))
    for shift in range(frames):
        writer.write(np.roll(image, 8 * shift, axis=1))
    writer.release()
    return path


def test_a_truncated_video_is_reported_with_the_frames_it_had(toy, photo, tmp_path):
    whole = _video(tmp_path / "full.avi", photo, frames=20, fourcc="MJPG")
    cut = _write(tmp_path, "cut.avi", whole.read_bytes()[:whole.stat().st_size // 2])
    out = tmp_path / "out"
    result = run_cli([toy, cut, "--faces", "whole", "--out", out, "--overlay"])
    assert result.exit_code == 1, result.output
    written = len(list((out / "cut").glob("*.png")))
    assert 0 < written < 20
    assert f"only {written} of the 20 frames it declares could be read" in result.output
    assert (out / "cut_overlay.mp4").exists()


def test_an_unreadable_video_is_a_skip_without_an_empty_folder(toy, photo, tmp_path):
    broken = _write(tmp_path, "broken.mp4", b"\0" * 2000)
    good = _copy(photo, tmp_path)
    out = tmp_path / "out"
    result = run_cli([toy, broken, good, "--faces", "whole", "--out", out])
    assert result.exit_code == 1 and "cannot open video" in result.output and "parsed 1 of 2" in result.output
    assert not (out / "broken").exists()


# --------------------------------------------------------------------------------------
# models and sidecars: metadata of every wrong shape is one DmlcsrError line

def _with_metadata(toy: Path, folder: Path, text: str) -> Path:
    import onnx

    model = onnx.load(str(toy))
    for prop in model.metadata_props:
        if prop.key == "dmlcsr":
            prop.value = text
    path = folder / "model.onnx"
    onnx.save(model, str(path))
    return path


GOOD_METADATA = {"num_classes": 19, "label_names": [f"c{i}" for i in range(19)],
                 "preprocessing": {"input_size": list(SIZE)}}
METADATA_CASES = [
    ("list", "[1, 2]", "must be a JSON object, found a list"),
    ("string", '"dmlcsr"', "must be a JSON object, found 'dmlcsr' (string)"),
    ("not-json", "{oops", "not valid JSON"),
    ("deep", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("input-size-0", json.dumps({**GOOD_METADATA, "preprocessing": {"input_size": [0, 0]}}),
     "preprocessing.input_size must be two integers in 2..8192"),
    ("300-classes", json.dumps({**GOOD_METADATA, "num_classes": 300}), "num_classes must be an integer in 2..256"),
    ("0-classes", json.dumps({**GOOD_METADATA, "num_classes": 0}), "num_classes must be an integer in 2..256"),
    ("names-short", json.dumps({**GOOD_METADATA, "label_names": ["a"]}), "label_names must be exactly 19 strings"),
    ("std-zero", json.dumps({**GOOD_METADATA, "preprocessing": {"input_size": list(SIZE), "std": [0, 0, 0]}}),
     "preprocessing.std"),
]


@pytest.mark.parametrize("name, text, message", METADATA_CASES, ids=[f"model:{c[0]}" for c in METADATA_CASES])
def test_model_metadata_of_any_shape_is_one_line(name, text, message, toy, photo, tmp_path):
    model = _with_metadata(toy, tmp_path, text)
    with pytest.raises(DmlcsrError, match=re.escape(message)) as exc:
        FaceParser(model, device="cpu")
    assert "\n" not in str(exc.value)
    result = run_cli([model, photo, "--faces", "whole", "--out", tmp_path / "out"])
    assert result.exit_code == 2 and len(error_lines(result.output)) == 1 and message.split(" ")[0] in result.output


SIDECAR_CASES = [
    ("list", "[]", "must be a JSON object"),
    ("string", '"engine"', "must be a JSON object"),
    ("deep", "{" + '"a":{' * 50_000 + "}" * 50_001, "nested too deeply"),
    ("no-build-record", json.dumps(GOOD_METADATA), "lacks the TensorRT build record"),
    ("bad-capability", json.dumps({**GOOD_METADATA, "extra": {"tensorrt": {"version": "10.0",
                                                                           "compute_capability": ["a", "b"]}}}),
     "unreadable compute capability"),
]


@pytest.mark.parametrize("name, text, message", SIDECAR_CASES, ids=[f"sidecar:{c[0]}" for c in SIDECAR_CASES])
def test_engine_sidecars_of_any_shape_are_one_line(name, text, message, tmp_path):
    from dmlcsr.runtime.backends.tensorrt_backend import check_engine_compatible

    engine = _write(tmp_path, "model.engine", b"\0" * 64)
    _write(tmp_path, "model.engine.json", text)
    with pytest.raises(DmlcsrError, match=re.escape(message)) as exc:
        check_engine_compatible(engine, "10.0.1", (8, 6))
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("classes", [1, 300])
def test_checkpoints_with_impossible_class_counts_are_refused_by_export(classes, tmp_path):
    torch = pytest.importorskip("torch")
    from dmlcsr.export.cli import export_main

    path = tmp_path / "best.pth"
    torch.save({"layer6.conv4.weight": torch.zeros(classes, 256, 1, 1)}, path)
    result = CliRunner().invoke(export_main, ["--ckpt", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert f"has {classes} classes, outside the 2..256" in result.output


# --------------------------------------------------------------------------------------
# the Python API: the same checks as the CLI, and the good path's output where it is good

@pytest.mark.parametrize("call, message", [
    (lambda p, img: p.parse(img, face_box=(np.nan, 0, 10, 10)), "NaN or infinite"),
    (lambda p, img: p.parse(img, face_box=(10, 10, 1e-5, 1e-5)), "below the 2-pixel minimum"),
    (lambda p, img: p.parse(img, face_box=(10, 10, -40, 40)), "is empty"),
    (lambda p, img: p.parse(img, output="masks"), "unknown output 'masks'"),
    (lambda p, img: p.parse_batch([img, img], batch_size=2.5), "batch size is 2.5; pass a whole number"),
    (lambda p, img: p.parse_batch([img], [None, None]), "2 face boxes for 1 images"),
    (lambda p, img: p.parse(img.astype(np.float32)), "dtype float32"),
    (lambda p, img: p.parse(img[:, :, :2]), "has shape"),
    (lambda p, img: p.parse(img[:1]), "at least 2 pixels a side"),
    (lambda p, img: p.parse(None), "cannot parse a NoneType"),
    (lambda p, img: parse_photo(p, img, faces=[(10, 10, -40, 40)]), "face box 0 (10, 10, -40, 40) is empty"),
    (lambda p, img: parse_photo(p, img, faces=[(5000, 10, 40, 40)]), "lies outside"),
    (lambda p, img: parse_photo(p, img, faces=[(1, 1, 1e-5, 1e-5)]), "below the 2-pixel minimum"),
    (lambda p, img: parse_photo(p, img, faces="whole", min_face=float("nan")), "minimum face size is nan"),
    (lambda p, img: parse_photo(p, img, faces="whole", batch_size=0), "faces per batch is 0"),
], ids=lambda value: "api" if callable(value) else value)
def test_api_refusals(call, message, parser, photo):
    image = cv2.imread(str(photo))
    with pytest.raises(DmlcsrError, match=re.escape(message)) as exc:
        call(parser, image)
    assert "\n" not in str(exc.value)


def test_infer_crops_takes_a_path_like_parse(parser, photo):
    image = cv2.imread(str(photo))
    crops = [parser.crop_for(image, (500, 200, 100, 120))]
    np.testing.assert_array_equal(parser.infer_crops(photo, crops), parser.infer_crops(image, crops))


def test_a_faces_file_for_another_image_is_refused_by_parse_photo(parser, photo, tmp_path):
    path = _faces(tmp_path, {"image": "other.jpg", "width": 1280, "height": 886, "faces": [{"box": [1, 2, 30, 40]}]})
    with pytest.raises(DmlcsrError, match="written for other.jpg, not t1.jpg"):
        parse_photo(parser, photo, faces=path)
    image = cv2.imread(str(photo))  # an array has no name: only the size is checked, and it matches
    assert parse_photo(parser, image, faces=path, margin=NO_MARGIN).faces[0].face.box == (1.0, 2.0, 30.0, 40.0)
    assert read_boxes(path).image == "other.jpg"


def test_thousands_of_boxes_go_through_in_bounded_batches(parser, photo):
    """All boxes used to be one batch (10,000 were 26.8 GB of input at 473): now chunks of 8,
    with the traced peak a few batches' worth, and the same map as a few boxes give. 2,000
    boxes in one batch would be 226 MB here, far over the bound the test sets."""
    count = 2_000
    image = cv2.resize(cv2.imread(str(photo)), (320, 222))
    boxes = [(100 + (i % 7), 40, 90, 110) for i in range(count)]
    sizes: list[int] = []
    real_infer = parser._infer

    def spy(batch: np.ndarray) -> np.ndarray:
        sizes.append(len(batch))
        return real_infer(batch)

    parser._infer = spy
    try:
        tracemalloc.start()
        result = parse_photo(parser, image, faces=boxes, margin=NO_MARGIN)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        del parser._infer
    assert max(sizes) <= 8 and sum(sizes) == count
    assert peak < 64 * 2**20, peak  # one batch of 8 x 3 x 97 x 97 floats is 0.9 MB; all at once 226 MB
    few = parse_photo(parser, image, faces=boxes[:7], margin=NO_MARGIN)
    np.testing.assert_array_equal(result.labels, few.labels)
    assert len(result.faces) == count and result.faces[0].labels is None


@pytest.mark.parametrize("convert", [
    lambda img: cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), lambda img: cv2.cvtColor(img, cv2.COLOR_BGR2BGRA),
    lambda img: img.astype(np.uint16) * 257, lambda img: np.asfortranarray(img),
], ids=["gray", "bgra", "uint16", "fortran"])
def test_odd_but_honest_arrays_give_the_good_paths_labels(convert, parser, photo, tmp_path):
    image = cv2.imread(str(photo))
    expected = parser.parse(cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)) \
        if convert(image).ndim == 2 else parser.parse(image)
    np.testing.assert_array_equal(parser.parse(convert(image)), expected)


def test_the_size_limit_is_read_from_the_header_before_decoding(tmp_path):
    """A file claiming 11000 x 11000 is refused by its header (decoding its garbage would
    fail with "not a readable image" after OpenCV allocated 363 MB for it)."""
    path = _write(tmp_path, "big.png", png_claiming(11000, 11000))
    with pytest.raises(DmlcsrError, match="big.png is 11000x11000 = 121 MP, above the 100 MP limit"):
        read_image(path)
    with pytest.raises(DmlcsrError, match="not a readable image"):
        read_image(path, max_pixels=200_000_000)


# --------------------------------------------------------------------------------------
# found by an independent 480-case audit after the first fixes

@pytest.mark.parametrize("names", [["img.001.png", "img.002.png"], ["photo.jpg", "photo.v2.jpg"]])
def test_dotted_names_keep_their_dots_and_never_clash(names, toy, parser, photo, tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    sources = [_copy(photo, folder, name) for name in names]
    result = run_cli([toy, folder, "--faces", "whole", "--out", tmp_path / "out"])
    assert result.exit_code == 0, result.output
    for source in sources:
        png = tmp_path / "out" / "shots" / (source.name.rsplit(".", 1)[0] + ".png")
        np.testing.assert_array_equal(_png(png), parser.parse(source))


def test_an_output_name_past_the_file_system_limit_is_a_skip(toy, photo, tmp_path):
    long_one = _copy(photo, tmp_path, "n" * 250 + ".jpg")  # its label PNG fits in 255 bytes, its overlay not
    good = _copy(photo, tmp_path, "short.jpg")
    result = run_cli([toy, long_one, good, "--faces", "whole", "--overlay", "--out", tmp_path / "out"])
    assert result.exit_code == 1 and "over the file system's 255-byte name limit" in result.output
    assert "parsed 1 of 2" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["labels.json", "short.png", "short_overlay.jpg"]


def test_a_box_outside_every_frame_is_one_skip_for_the_video(toy, photo, tmp_path):
    video = _video(tmp_path / "clip.mp4", photo, frames=4)
    result = run_cli([toy, video, "--face-box", "5000,5000,20,20", "--out", tmp_path / "out"])
    assert result.exit_code == 1 and "parsed 0 of 1 inputs" in result.output and "1 skipped" in result.output
    assert "none of its 4 frames could be parsed (frame 0: face box" in result.output
    assert not (tmp_path / "out").exists()


def test_frames_past_a_shorter_video_are_reported_not_deleted(toy, photo, tmp_path):
    """A folder may hold the user's own frames: frames past this video's end are named, never removed."""
    out = tmp_path / "out"
    assert run_cli([toy, _video(tmp_path / "clip.mp4", photo, frames=6), "--faces", "whole", "--out", out]
                   ).exit_code == 0
    result = run_cli([toy, _video(tmp_path / "clip.mp4", photo, frames=3), "--faces", "whole", "--out", out])
    assert result.exit_code == 0 and "also holds 3 frame PNG(s) numbered past this video's 3 frames" in result.output
    assert len(list((out / "clip").iterdir())) == 6


def test_a_failed_overlay_on_a_rerun_keeps_the_earlier_outputs(toy, photo, tmp_path):
    out = tmp_path / "out"
    source = _copy(photo, tmp_path, "a.jpg")
    assert run_cli([toy, source, "--face-box", "500,200,100,120", "--out", out]).exit_code == 0
    before = (out / "a.png").read_bytes()
    (out / "a_overlay.jpg").mkdir()  # the overlay cannot be written
    result = run_cli([toy, source, "--faces", "whole", "--overlay", "--out", out])  # another label map
    assert result.exit_code == 1 and "a folder has that name" in result.output
    assert (out / "a.png").read_bytes() == before


def test_a_thin_strip_gets_a_bounded_overlay(toy, tmp_path):
    strip = _write(tmp_path, "strip.png", cv2.imencode(".png", np.full((2, 3000, 3), 120, np.uint8))[1].tobytes())
    result = run_cli([toy, strip, "--faces", "whole", "--overlay", "--out", tmp_path / "out"])
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(tmp_path / "out" / "strip_overlay.jpg")).shape[1] < 4096 + 600  # picture + legend


def test_a_dangling_link_in_a_folder_is_a_counted_skip(toy, photo, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    _copy(photo, folder, "a.jpg")
    (folder / "b.jpg").symlink_to(folder / "gone.jpg")
    result = run_cli([toy, folder, "--faces", "whole", "--out", tmp_path / "out"])
    assert result.exit_code == 1 and "image not found" in result.output and "parsed 1 of 2" in result.output


@pytest.mark.parametrize("text, message", [
    (json.dumps({**GOOD_METADATA, "label_names": ["x" * 65] + [f"c{i}" for i in range(18)]}), "label_names must be"),
    (json.dumps({**GOOD_METADATA, "label_names": ["\ud800"] + [f"c{i}" for i in range(18)]}), "label_names must be"),
], ids=["long-name", "lone-surrogate"])
def test_label_names_a_legend_cannot_draw_are_refused(text, message, toy, tmp_path):
    with pytest.raises(DmlcsrError, match=message):
        FaceParser(_with_metadata(toy, tmp_path, text), device="cpu")


@pytest.mark.parametrize("call, message", [
    (lambda p, img: p.infer_crops(img, [(10, 10, 50, 50)]), "is not a finite dmlcsr.core.geometry.Crop"),
    (lambda p, img: p.parse_batch("photo.jpg"), "parse_batch takes a list of images, not one str"),
    (lambda p, img: parse_photo(p, img, faces=None), "faces=None is not 'auto', 'whole'"),
    (lambda p, img: parse_photo(p, img, faces=3), "faces=3 is not 'auto', 'whole'"),
    (lambda p, img: parse_photo(p, img, faces=[Face((500, 200, 100, 120), float("nan"))]),
     "the score of face box 0 is nan"),
    (lambda p, img: Margin("0.3"), "a margin is '0.3', not a number"),
    (lambda p, img: FaceParser(p.path, device="cpu", max_pixels=None), "max_pixels is None"),
    (lambda p, img: FaceParser(p.path, device="cpu", max_pixels=float("nan")), "max_pixels is nan"),
], ids=["crops-not-crops", "batch-of-a-path", "faces-none", "faces-int", "face-score-nan", "margin-text",
        "max-pixels-none", "max-pixels-nan"])
def test_more_api_refusals(call, message, parser, photo):
    with pytest.raises(DmlcsrError, match=re.escape(message)):
        call(parser, cv2.imread(str(photo)))


@pytest.mark.parametrize("state, message", [
    ("int-keys", "keys are not parameter names"), ("nan-weights", "NaN or infinite values in layer6.conv4.weight"),
])
def test_checkpoints_with_foreign_keys_or_nan_weights_are_refused(state, message, tmp_path):
    torch = pytest.importorskip("torch")
    from dmlcsr.checkpoint import read_state_dict

    weights = {0: torch.zeros(3)} if state == "int-keys" else {"layer6.conv4.weight": torch.full((19, 256, 1, 1),
                                                                                                  float("nan"))}
    torch.save(weights, tmp_path / "best.pth")
    with pytest.raises(DmlcsrError, match=re.escape(message)):
        read_state_dict(tmp_path / "best.pth")
