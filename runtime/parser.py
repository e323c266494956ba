"""FaceParser: image in, label map out, torch-free.

Pre-processing, backend, post-processing: the official DML-CSR test pipeline
(dmlcsr.core.geometry) around whatever backend the model file asks for (ONNX Runtime for
.onnx, OpenVINO for .xml IR, TensorRT for .engine/.plan; see runtime/backends/registry.py).
How to preprocess and what the classes are named come from the model's own metadata, never
from guesses; a model without it is refused.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dmlcsr.core import geometry
from dmlcsr.core.cpu import this_cpu
from dmlcsr.core.geometry import Crop
from dmlcsr.core.metadata import ModelMetadata
from dmlcsr.core.pipeline import crop_for, labels_at_image, preprocess, probabilities_at_image
from dmlcsr.core.validation import whole_number
from dmlcsr.errors import DmlcsrError, DmlcsrWarning
from dmlcsr.runtime.backends import Backend, open_backend
from dmlcsr.runtime.images import MAX_PIXELS, MIN_SIDE, ImageInput, load_image

OUTPUTS = ("labels", "probabilities", "logits")
#: images per backend call in parse_batch unless the caller or the model says otherwise
DEFAULT_BATCH = 8
#: refuse probability maps above this size (C x H x W float32 at the original size)
MAX_PROBABILITY_BYTES = 2 * 2**30


class FaceParser:
    """A DML-CSR model ready to parse faces.

    ``FaceParser("dmlcsr.onnx")``, ``FaceParser("dmlcsr-int8.xml")`` (OpenVINO, CPU) or
    ``FaceParser("dmlcsr.engine", device="cuda")``.
    ``device``: "auto" (best present: TensorRT / CUDA / CPU providers for ONNX), "cpu" or
    "cuda"; ``threads`` caps the engine's CPU threads; ``engine`` overrides the engine the
    suffix picks (e.g. "openvino" for an .onnx); ``inference_precision="bf16"`` computes an
    FP32 model in bf16 on OpenVINO (CPUs with AMX or AVX512-BF16); ``throughput=True`` keeps
    several requests in flight (OpenVINO's THROUGHPUT streams) for folders and videos, at
    some cost to a single image's latency. ``parser.backend.name`` says which engine runs,
    at which precision. Images are numpy arrays in OpenCV's BGR order (as cv2.imread
    returns them; grayscale, BGRA and 16-bit are converted as cv2.imread would) or paths to
    image files.

    One FaceParser may be shared by several threads: it holds no per-call state, ONNX
    Runtime sessions are thread-safe, OpenVINO gives each call its own infer request and
    the TensorRT backend serialises its context.
    """

    def __init__(self, path: str | Path, device: str = "auto", threads: int | None = None,
                 max_pixels: int = MAX_PIXELS, engine: str = "auto", inference_precision: str = "f32",
                 throughput: bool = False) -> None:
        self.path = Path(path)
        self.backend: Backend = open_backend(self.path, device=device, threads=threads, engine=engine,
                                             inference_precision=inference_precision, throughput=throughput)
        if self.backend.metadata is None:
            raise DmlcsrError(f"{self.path.name} carries no dmlcsr metadata, so its labels and preprocessing are "
                              "unknown; export the checkpoint with dmlcsr-export")
        self.metadata: ModelMetadata = self.backend.metadata
        self.input_size: tuple[int, int] = tuple(int(v) for v in self.metadata.preprocessing.input_size)
        self.max_pixels = whole_number(max_pixels, "max_pixels", MIN_SIDE * MIN_SIDE)
        self._check_model()
        for advice in cpu_int8_advice(self.backend, this_cpu()):
            warnings.warn(advice, DmlcsrWarning, stacklevel=2)

    @property
    def label_names(self) -> list[str]:
        """Class names, index = label value in the maps ``parse`` returns."""
        return list(self.metadata.label_names)

    @property
    def num_classes(self) -> int:
        return self.metadata.num_classes

    def _check_model(self) -> None:
        """Refuse a model whose metadata, I/O or preprocessing this runtime cannot honour."""
        meta, name = self.metadata, self.path.name
        pre = meta.preprocessing
        expected = (geometry.CHANNEL_ORDER, "NCHW", geometry.MEAN, geometry.STD)
        found = (pre.channel_order, pre.layout, tuple(pre.mean), tuple(pre.std))
        if found != expected or not np.isclose(pre.scale, 1 / 255):
            raise DmlcsrError(f"{name} asks for preprocessing {found} (scale {pre.scale}) but this runtime does "
                              f"the official {expected} (scale 1/255); re-export the model with dmlcsr-export")
        inputs = {spec.name: spec for spec in self.backend.inputs}
        outputs = {spec.name: spec for spec in self.backend.outputs}
        if meta.input_name not in inputs or meta.output_name not in outputs:
            raise DmlcsrError(f"{name} has inputs {list(inputs)} and outputs {list(outputs)} but its metadata names "
                              f"{meta.input_name!r} -> {meta.output_name!r}; re-export the model")
        shape = inputs[meta.input_name].shape
        if len(shape) != 4 or any(isinstance(d, int) and d != want
                                  for d, want in zip(shape[1:], (3, *self.input_size), strict=True)):
            raise DmlcsrError(f"{name} takes input {shape} but its metadata says N x 3 x {self.input_size[0]} x "
                              f"{self.input_size[1]}; re-export the model")
        out_shape = outputs[meta.output_name].shape
        if len(out_shape) != 4 or (isinstance(out_shape[1], int) and out_shape[1] != meta.num_classes):
            raise DmlcsrError(f"{name} returns {out_shape}, not N x {meta.num_classes} x h x w logits as its "
                              "metadata says; re-export the model")

    def parse(self, image: ImageInput, face_box: Sequence[float] | None = None, output: str = "labels"
              ) -> np.ndarray:
        """Parse one face.

        ``image``: BGR uint8 array (OpenCV convention) or a path. ``face_box``: (x, y, w, h)
        in image pixels from any detector; None parses the whole image as one face, as the
        official test does. ``output``:
        - "labels": H x W uint8 class indices at the ORIGINAL image size (0 outside the crop);
        - "probabilities": C x H x W float32 softmax at the original size (background = 1
          outside the crop; argmax over C gives the labels);
        - "logits": the raw C x h x w network logits of the crop (h = w = 119 at 473),
          in the crop's frame: map them back with dmlcsr.core.geometry and ``crop_for``.
        """
        boxes = None if face_box is None else [face_box]
        return self.parse_batch([image], boxes, output=output)[0]

    def parse_batch(self, images: Sequence[ImageInput], face_boxes: Sequence[Sequence[float] | None] | None = None,
                    output: str = "labels", batch_size: int | None = None) -> list[np.ndarray]:
        """Parse several images (one face each), ``batch_size`` per backend call (default
        DEFAULT_BATCH, or the model's largest batch if smaller). Every image is read and
        checked before any inference, so a bad file fails fast. Returns one array per image,
        as ``parse`` would."""
        if isinstance(images, (str, bytes, Path, np.ndarray)):
            raise DmlcsrError(f"parse_batch takes a list of images, not one {type(images).__name__}; pass [image] "
                              "or call parse")
        if output not in OUTPUTS:
            raise DmlcsrError(f"unknown output {output!r}; use one of {', '.join(OUTPUTS)}")
        if face_boxes is not None and len(face_boxes) != len(images):
            raise DmlcsrError(f"{len(face_boxes)} face boxes for {len(images)} images; pass one box (or None) "
                              "per image")
        step = self._batch_size(batch_size)
        loaded = [load_image(image, self.max_pixels) for image in images]
        boxes = face_boxes if face_boxes is not None else [None] * len(loaded)
        crops = [crop_for(image.shape[:2], box, self.input_size) for image, box in zip(loaded, boxes, strict=True)]
        if output == "probabilities":
            for image in loaded:
                self._check_probability_size(image.shape[:2])
        results: list[np.ndarray] = []
        for start in range(0, len(loaded), step):
            chunk = range(start, min(start + step, len(loaded)))
            batch = np.concatenate([preprocess(loaded[i], [crops[i]], self.input_size) for i in chunk])
            logits = self._infer(batch)
            results.extend(self._finish(logits[k], crops[i], loaded[i].shape[:2], output)
                           for k, i in enumerate(chunk))
        return results

    def infer_crops(self, image: ImageInput, crops: Sequence[Crop], batch_size: int | None = None) -> np.ndarray:
        """Raw logits N x C x h x w for ``crops`` (dmlcsr.core.geometry.Crop) of one BGR image.

        Crops are warped and sent to the backend ``batch_size`` at a time (default
        DEFAULT_BATCH, split further where the model's largest batch is smaller), so the
        network inputs stay bounded however many crops there are; the logits of all crops
        come back together (about 1 MB a crop at 473: callers with thousands of faces pass
        them in groups, as parse_photo does). For callers that place several faces themselves.
        """
        image = load_image(image, self.max_pixels)
        step = self._batch_size(batch_size)
        for crop in crops:
            if not isinstance(crop, Crop) or not (np.isfinite(crop.center).all() and np.isfinite(crop.scale).all()
                                                  and np.all(np.asarray(crop.scale) > 0)):
                raise DmlcsrError(f"crop {crop!r} is not a finite dmlcsr.core.geometry.Crop with a positive scale; "
                                  "make crops with parser.crop_for(image, box) or geometry.box_to_crop")
        if not crops:
            return np.zeros((0, self.num_classes, *self._logit_size()), np.float32)
        return np.concatenate([self._infer(preprocess(image, list(crops[start:start + step]), self.input_size))
                               for start in range(0, len(crops), step)])

    def _batch_size(self, batch_size: object) -> int:
        """The images or crops per backend call: the caller's, checked, or DEFAULT_BATCH."""
        return DEFAULT_BATCH if batch_size is None else whole_number(batch_size, "batch size")

    def crop_for(self, image: np.ndarray, face_box: Sequence[float] | None = None) -> Crop:
        """The crop ``parse`` uses for ``image`` and ``face_box`` (for mapping logits back)."""
        return crop_for(image.shape[:2], face_box, self.input_size)

    def _logit_size(self) -> tuple[int, int]:
        shape = next(s.shape for s in self.backend.outputs if s.name == self.metadata.output_name)
        if all(isinstance(d, int) for d in shape[2:]):
            return int(shape[2]), int(shape[3])
        stride = self.metadata.output_stride
        return -(-self.input_size[0] // stride), -(-self.input_size[1] // stride)

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        """Run a preprocessed batch in pieces the model accepts, all handed to the backend at
        once (an engine with several requests in flight runs them side by side, one image per
        request); checks what comes back."""
        smallest, largest = self.backend.batch_limits
        step = 1 if self.backend.requests_in_flight > 1 else (largest or len(batch))
        counts, feeds = [], []
        for start in range(0, len(batch), step):
            chunk = batch[start:start + step]
            counts.append(len(chunk))
            if len(chunk) < smallest:  # a fixed-batch model: pad, then drop the padding's outputs
                chunk = np.concatenate([chunk, np.zeros((smallest - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            feeds.append({self.metadata.input_name: chunk})
        outputs = self.backend.run_many(feeds)
        pieces = [output[self.metadata.output_name][:count] for output, count in zip(outputs, counts, strict=True)]
        return self._checked(np.concatenate(pieces).astype(np.float32, copy=False), len(batch))

    def _checked(self, logits: np.ndarray, count: int) -> np.ndarray:
        if logits.ndim != 4 or logits.shape[:2] != (count, self.num_classes):
            raise DmlcsrError(f"{self.path.name} returned logits of shape {logits.shape} for a batch of {count}; "
                              f"expected N x {self.num_classes} x h x w: re-export the model")
        if not np.isfinite(logits).all():
            raise DmlcsrError(f"{self.path.name} produced NaN or infinite logits (an FP16/INT8 overflow or broken "
                              "weights); re-export it, or use the FP32 model")
        return logits

    def _finish(self, logits: np.ndarray, crop: Crop, image_size: tuple[int, int], output: str) -> np.ndarray:
        if output == "labels":
            return labels_at_image(logits, crop, image_size, self.input_size)
        if output == "probabilities":
            return probabilities_at_image(logits, crop, image_size, self.input_size)
        return logits

    def _check_probability_size(self, image_size: tuple[int, int]) -> None:
        size = self.num_classes * image_size[0] * image_size[1] * 4
        if size > MAX_PROBABILITY_BYTES:
            raise DmlcsrError(f"probabilities for a {image_size[1]}x{image_size[0]} image would take "
                              f"{size / 2**30:.1f} GiB; ask for labels or logits, or downscale the image")


def cpu_int8_advice(backend: Backend, cpu: dict) -> list[str]:
    """Warnings for INT8 on a CPU where it does not pay: without VNNI/AMX int8 kernels gain
    little (and ONNX Runtime's saturate, failing verify), and ONNX Runtime runs the QDQ
    ONNX (the TensorRT source) slower than its own FP32 even with VNNI."""
    if backend.device != "cpu" or not backend.precision.startswith("int8"):
        return []
    advice = []
    if not cpu["native_int8_dot"]:
        advice.append(f"{backend.path.name} is INT8 but this CPU has no VNNI or AMX int8 instructions: INT8 runs "
                      "barely faster than FP32 here and ONNX Runtime's int8 kernels saturate; use the FP32 model")
    if backend.engine == "onnxruntime" and backend.precision == "int8-qdq":
        advice.append(f"{backend.path.name} is the INT8 QDQ ONNX, made for TensorRT: ONNX Runtime runs it on CPUs "
                      "slower than FP32 or below verify's agreement; for CPUs export the OpenVINO INT8 IR "
                      "(dmlcsr-export --openvino --int8 --calib DIR) and parse with MODEL-int8.xml")
    return advice
