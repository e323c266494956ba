"""dmlcsr-parse's face mode: photos and video frames through parse_photo, written to disk.

Unlike the one-face-per-image path, images are not batched together: each photo's faces
form the batch. Per image: NAME.png (the composite label map), NAME_faces.json (boxes,
scores, landmarks, crops) and, with overlays on, NAME_overlay.jpg with the boxes drawn.
Per video: one label PNG per frame, VIDEO_faces.json (the faces of every frame) and
VIDEO_overlay.mp4.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.faces.detector import CenterFace, Face
from dmlcsr.runtime.faces.drawing import draw_faces
from dmlcsr.runtime.faces.framing import DEFAULT_MARGIN, Margin
from dmlcsr.runtime.faces.photo import (
    MIN_FACE,
    PhotoResult,
    boxes_document,
    dumps_boxes,
    parse_photo,
    write_boxes,
)
from dmlcsr.runtime.images import load_image, open_video, open_video_writer
from dmlcsr.runtime.parser import FaceParser
from dmlcsr.runtime.visualize import MIN_OVERLAY_HEIGHT, overlay, write_image


@dataclass
class PhotoOptions:
    """How dmlcsr-parse finds faces: "auto" (the detector) or boxes (read from --faces FILE.json)."""

    faces: str | Sequence[Face] = "auto"
    detector: CenterFace | None = None
    margin: Margin = DEFAULT_MARGIN
    min_face: float = MIN_FACE
    counts: dict[str, int] = field(default_factory=lambda: {"faces": 0, "without_faces": 0})

    def parse(self, parser: FaceParser, image: np.ndarray) -> PhotoResult:
        result = parse_photo(parser, image, self.faces, self.detector, self.min_face, self.margin)
        self.counts["faces"] += len(result.faces)
        self.counts["without_faces"] += not result.faces
        return result

    @property
    def summary(self) -> str:
        missing = self.counts["without_faces"]
        return f"{self.counts['faces']} faces found" + (f", none in {missing} images or frames" if missing else "")


def photo_overlay(image: np.ndarray, result: PhotoResult, label_names: list[str],
                  legend: bool | list[int] = True) -> np.ndarray:
    """The runtime's colour overlay with each face's box, crop, score and landmarks on it."""
    picture = overlay(image, result.labels, label_names, legend=legend)
    scale = max(1, int(np.ceil(MIN_OVERLAY_HEIGHT / image.shape[0])))  # overlay() enlarges small images
    height, width = image.shape[0] * scale, image.shape[1] * scale
    picture[:height, :width] = draw_faces(picture[:height, :width], result, scale=scale)
    return picture


def run_photo_images(parser: FaceParser, jobs: list, out: Path, options: PhotoOptions,
                     with_overlay: bool) -> list[str]:
    """Parse each image job's faces; returns the messages of the files skipped."""
    skipped: list[str] = []
    for job in tqdm(jobs, unit="img", desc="images", disable=not jobs):
        try:
            image = load_image(job.source, parser.max_pixels)
            result = options.parse(parser, image)
        except DmlcsrError as exc:
            skipped.append(f"{job.source}: {exc}")
            tqdm.write(f"skipped {job.source}: {exc}", file=sys.stderr)
            continue
        if not result.faces or result.skipped_small:
            tqdm.write(f"{job.source}: {result.message}", file=sys.stderr)
        write_image(out / job.name.with_suffix(".png"), result.labels)
        write_boxes(out / job.name.with_name(job.name.name + "_faces.json"), result, job.source.name)
        if with_overlay:
            write_image(out / job.name.with_name(job.name.name + "_overlay.jpg"),
                        photo_overlay(image, result, parser.label_names))
    return skipped


def run_photo_video(parser: FaceParser, job, out: Path, options: PhotoOptions, with_overlay: bool) -> int:
    """Parse the faces of every frame of one video; returns the number of frames."""
    capture, total, fps = open_video(job.source)
    frames_dir = out / job.name
    frames_dir.mkdir(parents=True, exist_ok=True)
    everything = list(range(parser.num_classes))  # a fixed legend keeps every frame one size
    writer, records, index = None, [], 0
    try:
        with tqdm(total=total, unit="frame", desc=job.source.name) as bar:
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                result = options.parse(parser, frame)
                write_image(frames_dir / f"{index:06d}.png", result.labels)
                records.append({"frame": index, **boxes_document(result)})
                if with_overlay:
                    picture = photo_overlay(frame, result, parser.label_names, legend=everything)
                    if writer is None:
                        writer = open_video_writer(out / job.name.with_name(job.name.name + "_overlay.mp4"), fps,
                                                   picture.shape[1::-1])
                    writer.write(picture)
                index += 1
                bar.update(1)
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if index == 0:
        raise DmlcsrError(f"no frame could be read from {job.source}; check the file plays, or convert it to MP4")
    document = {"video": job.source.name, "frames": records}
    (out / job.name.with_name(job.name.name + "_faces.json")).write_text(dumps_boxes(document, "frames"))
    return index
