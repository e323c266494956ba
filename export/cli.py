"""dmlcsr-export and dmlcsr-verify: thin click wrappers over dmlcsr.export's functions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from dmlcsr.cli_options import device_option, input_size_option
from dmlcsr.errors import DmlcsrError
from dmlcsr.export.quantize import CALIBRATION_METHODS, DEFAULT_PERCENTILE
from dmlcsr.export.tensorrt_build import ENGINE_PRECISIONS, BatchProfile
from dmlcsr.runtime.backends import ENGINES
from dmlcsr.runtime.output_files import write_atomic

TRITON_CHOICES = ("auto", "onnx-fp32", "onnx-fp16", "onnx-int8", *(f"engine-{p}" for p in ENGINE_PRECISIONS))


def _fail(exc: DmlcsrError) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


def _batch(_ctx, _param, value: str) -> BatchProfile:
    try:
        return BatchProfile.parse(value)
    except DmlcsrError as exc:
        raise click.BadParameter(str(exc)) from None


EXPORT_EPILOG = """\b
Examples:
  dmlcsr-export --ckpt best.pth                      FP32 ONNX in ./exported
  dmlcsr-export --ckpt best.pth --fp16 --int8 --calib faces/ --verify
  dmlcsr-export --ckpt best.pth --openvino --int8 --calib faces/ --verify     CPU: OpenVINO FP32 + INT8 IR
  dmlcsr-export --ckpt best.pth --fp16 --engine fp16 --batch 1:4:8 --triton models/
  dmlcsr-export                                      the built-in demo model (labels mean nothing)

\b
The ONNX graph takes "input" (float32, N x 3 x S x S, BGR, ImageNet mean/std, the official
crop) and returns "logits" (N x C x S/4 x S/4); upsampling and argmax are left to the
runtime. Label names, preprocessing and the checkpoint's sha256 are stored in the file.

\b
For CPUs, --openvino writes OpenVINO IR (.xml + .bin, metadata in its rt_info): FP32, and
with --int8 an INT8 IR quantized by NNCF, the fastest accurate CPU path (run it with
dmlcsr-parse MODEL-int8.xml). The INT8 QDQ ONNX is the TensorRT source; on CPUs ONNX
Runtime runs it slower than FP32 or below verify's bar, so use the INT8 IR there.
"""


@click.command(epilog=EXPORT_EPILOG, context_settings={"max_content_width": 110})
@click.option("--ckpt", type=click.Path(path_type=Path), default=None,
              help="DML-CSR checkpoint (.pth, deploy or training build; class count inferred). "
                   "Omitted: the built-in demo model.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("exported"), show_default=True,
              help="Folder for the artefacts.")
@click.option("--fp16", is_flag=True, help="Also write an FP16 ONNX model (float32 I/O) for GPU runtimes.")
@click.option("--int8", is_flag=True, help="Also write an INT8 QDQ ONNX model (needs --calib).")
@click.option("--calib", type=click.Path(path_type=Path), default=None,
              help="Folder of face photos to calibrate INT8 on (preprocessed exactly as the runtime does).")
@click.option("--calib-method", type=click.Choice(CALIBRATION_METHODS), default="percentile", show_default=True,
              help="How activation ranges are chosen from the calibration histograms.")
@click.option("--calib-percentile", type=click.FloatRange(50, 100, min_open=True), default=DEFAULT_PERCENTILE,
              show_default=True, help="With --calib-method percentile: the |activation| percentile each range "
                                      "clips at (higher keeps outliers, coarsens the rest).")
@click.option("--int8-stem", is_flag=True,
              help="Quantize the deep stem's three convs too (kept float by default: they see the raw image, "
                   "hold 2.5 % of the FLOPs and are the most rounding-sensitive).")
@click.option("--calib-limit", type=click.IntRange(min=1), default=None, help="Use at most this many photos.")
@click.option("--batch", default="1:4:8", show_default=True, callback=_batch,
              help="Batch sizes N or MIN:OPT:MAX: the TensorRT profile and Triton's max batch "
                   "(the ONNX batch dim is always dynamic).")
@input_size_option("Network input H,W, or one number for a square; 473 is what DML-CSR was trained at.")
@click.option("--opset", type=click.IntRange(min=17), default=18, show_default=True, help="ONNX opset.")
@click.option("--engine", "engines", type=click.Choice(ENGINE_PRECISIONS), multiple=True,
              help="Build a TensorRT engine of this precision (repeatable; needs 'dmlcsr[trt]' and a GPU).")
@click.option("--workspace-mib", type=int, default=4096, show_default=True, help="TensorRT workspace limit.")
@click.option("--timing-cache", type=click.Path(path_type=Path), default=None,
              help="TensorRT timing cache to reuse and update [default: OUT/tensorrt-timing.cache].")
@click.option("--triton", type=click.Path(path_type=Path), default=None,
              help="Also write a Triton model repository here (DIR/dmlcsr/config.pbtxt + model).")
@click.option("--triton-model", type=click.Choice(TRITON_CHOICES), default="auto", show_default=True,
              help="What Triton serves; auto = the last engine built, else FP16, else FP32 ONNX.")
@click.option("--openvino", is_flag=True,
              help="Also write OpenVINO IR for CPUs: FP32, and INT8 (NNCF) with --int8 (needs 'dmlcsr[openvino]').")
@click.option("--int8-max-drop", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="With --openvino --int8: NNCF accuracy control reverts the most sensitive layers to float until "
                   "the IR's labels agree with FP32 on the --calib photos within this drop (0.005 = 99.5 %). "
                   "Slow (18 min at 473 px on 2 cores) and the IR runs slower (demo model: 1.8x instead of 3.4-3.7x "
                   "ONNX Runtime FP32).")
@click.option("--verify", is_flag=True, help="Then run dmlcsr-verify on the ONNX models, IRs and engines written.")
def export_main(ckpt, out, fp16, int8, calib, calib_method, calib_percentile, int8_stem, calib_limit, batch, input_size,
                opset, engines, workspace_mib, timing_cache, triton, triton_model, openvino, int8_max_drop,
                verify) -> None:
    """Export a DML-CSR checkpoint to ONNX (FP32, FP16, INT8 QDQ), TensorRT engines and a
    Triton model repository. The edge branches of a training checkpoint are dropped."""
    from dmlcsr.export.artefacts import ExportOptions, export_checkpoint

    options = ExportOptions(ckpt, out, fp16, int8, calib, calib_method, calib_percentile, int8_stem, calib_limit,
                            batch, input_size, opset, tuple(engines), workspace_mib, timing_cache, triton,
                            triton_model, openvino, int8_max_drop)
    try:
        written = export_checkpoint(options, log=click.echo)
    except DmlcsrError as exc:
        _fail(exc)
    click.echo("\nwritten:")
    for artefact in written:
        click.echo(f"  {artefact.kind:<10} {artefact.precision:<13} {artefact.megabytes:8.1f} MB  "
                   f"{artefact.seconds:6.1f} s  {artefact.path}")
    if verify:
        checkpoint = ckpt or next(a.path for a in written if a.kind == "checkpoint")
        artefacts = [a.path for a in written if a.kind in ("onnx", "openvino", "engine")]
        sys.exit(_verify(checkpoint, artefacts, None, 2, "auto", None, None))


VERIFY_EPILOG = """\b
Examples:
  dmlcsr-verify --ckpt best.pth exported/best-fp32.onnx exported/best-int8.onnx
  dmlcsr-verify --ckpt best.pth exported/*.onnx --images my_faces/ --json parity.json

\b
Thresholds (exit status 1 past any of them): FP32 max |logit diff| <= 1e-4 x max(1, max
|logit|) and label agreement >= 99.99 %; FP16 agreement >= 99.9 %; bf16 compute >= 99.5 %;
INT8 (QDQ ONNX or NNCF IR) >= 99.0 %.
Agreement is checked on the labels after the official upsample (the network's output-size
agreement is reported beside it).
"""


@click.command(epilog=VERIFY_EPILOG, context_settings={"max_content_width": 110})
@click.option("--ckpt", type=click.Path(path_type=Path), required=True, help="The checkpoint the artefacts came from.")
@click.argument("artefacts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--images", type=click.Path(path_type=Path), default=None,
              help="Folder of face photos [default: the example faces shipped with dmlcsr].")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use at most this many photos.")
@click.option("--batch-size", type=click.IntRange(min=1), default=2, show_default=True)
@device_option("Where ONNX Runtime runs the ONNX models (engines always run on the GPU).")
@click.option("--engine", type=click.Choice(("auto", *ENGINES)), default="auto", show_default=True,
              help="Engine for .onnx files (auto: ONNX Runtime); .xml always runs on OpenVINO.")
@click.option("--bf16", is_flag=True,
              help="For FP32 OpenVINO IRs, also report them computed in bf16 (CPUs with AMX or AVX512-BF16).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Also write the reports as JSON.")
@click.option("--qdq-math/--no-qdq-math", default=True, show_default=True,
              help="For INT8 QDQ models, also report their unfused QDQ arithmetic (what TensorRT computes), "
                   "apart from ONNX Runtime's fused int8 CPU kernels.")
def verify_main(ckpt, artefacts, images, limit, batch_size, device, engine, bf16, json_path, qdq_math) -> None:
    """Run the checkpoint in PyTorch and each artefact on the same preprocessed face photos
    and print, per artefact, the logit differences and the label agreement (overall and per class)."""
    sys.exit(_verify(ckpt, list(artefacts), images, batch_size, device, json_path, limit, qdq_math, engine, bf16))


def _verify(ckpt: Path, artefacts: list[Path], images: Path | None, batch_size: int, device: str,
            json_path: Path | None, limit: int | None, qdq_math: bool = True, engine: str = "auto",
            bf16: bool = False) -> int:
    from dmlcsr.export.compare import format_report
    from dmlcsr.export.face_inputs import default_image_dir, list_images
    from dmlcsr.export.verify import verify_artefacts

    try:
        paths = list_images(images or default_image_dir())[:limit]
        click.echo(f"verifying {len(artefacts)} artefact(s) against {ckpt} (PyTorch fp32, CPU) on {len(paths)} "
                   "photos")
        reports = verify_artefacts(ckpt, artefacts, paths, batch_size, device, progress=True, qdq_math=qdq_math,
                                   engine=engine, bf16=bf16)
    except DmlcsrError as exc:
        _fail(exc)
    for report in reports:
        click.echo("\n" + format_report(report))
    if json_path:
        write_atomic(json_path, json.dumps([r.to_dict() for r in reports], indent=2))
    failed = [r.artefact for r in reports if not r.passed and r.gates]
    gating = [r for r in reports if r.gates]
    click.echo(f"\n{len(gating) - len(failed)} of {len(gating)} artefact(s) within thresholds"
               + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
