"""dmlcsr-parse's work loop: image files in batches and videos frame by frame, to disk.

Each input's outputs (label PNG, faces JSON, overlay) are prepared in memory and written
together through temporary names, so a failure at any step skips that input with its
reason and leaves none of its files; the run goes on. Per video: one label PNG per frame
in a folder, the faces of every frame in VIDEO_faces.json and VIDEO_overlay.mp4, the
latter two renamed into place only once the whole video has been read.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from dmlcsr.core.labels import palette
from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.faces.box_file import dumps_boxes
from dmlcsr.runtime.image_outputs import Labeller, label_group, label_or_skip
from dmlcsr.runtime.images import open_video, open_video_writer
from dmlcsr.runtime.jobs import LABEL_LEGEND, Job
from dmlcsr.runtime.output_files import atomic_target, write_atomic, write_group
from dmlcsr.runtime.parser import FaceParser
from dmlcsr.runtime.skips import Skips
from dmlcsr.runtime.visualize import encode_image

#: a video that yields fewer frames than it declares, by more than this share, is reported
#: as damaged (containers estimate their frame count, so a frame or two may go missing)
MISSING_FRAMES_TOLERANCE = 0.01


@dataclass
class RunSummary:
    """What a run did: inputs parsed and the skips, each with its reason."""

    parsed: int = 0
    skips: Skips = field(default_factory=Skips)


def parse_jobs(labeller: Labeller, jobs: list[Job], out: Path, with_overlay: bool) -> RunSummary:
    """Images in batches, then each video; labels.json once anything was written."""
    summary = RunSummary()
    images = [job for job in jobs if not job.is_video]
    with tqdm(total=len(images), unit="img", desc="images", disable=not images) as bar:
        for start in range(0, len(images), labeller.images_per_call):
            group = images[start:start + labeller.images_per_call]
            summary.parsed += _run_image_group(labeller, group, out, with_overlay, summary.skips)
            bar.update(len(group))
    for job in (job for job in jobs if job.is_video):
        with summary.skips.guard(job.source):
            _run_video(labeller, job, out, with_overlay, summary.skips)
            summary.parsed += 1
    if summary.parsed:
        write_label_legend(labeller.parser, out)
    return summary


def _run_image_group(labeller: Labeller, group: list[Job], out: Path, with_overlay: bool, skips: Skips) -> int:
    """Decode, label and write one group of image jobs; returns how many were written."""
    written = 0
    for outputs in label_group(labeller, group, with_overlay, skips):
        if outputs.note:
            tqdm.write(f"{outputs.job.source}: {outputs.note}")
        with skips.guard(outputs.job.source):
            write_group(outputs.files(out))
            written += 1
    return written


def _frames(capture: cv2.VideoCapture, count: int) -> Iterator[list[np.ndarray]]:
    """The video's frames, ``count`` at a time, until it ends or stops decoding."""
    while True:
        frames = []
        while len(frames) < count:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
        if not frames:
            return
        yield frames


def _run_video(labeller: Labeller, job: Job, out: Path, with_overlay: bool, skips: Skips) -> None:
    """Label every frame of one video: a PNG per frame, the faces JSON and the overlay video.
    Frames that fail are counted and reported as one line for the video."""
    capture, total, fps = open_video(job.source)
    legend = list(range(labeller.parser.num_classes))  # a fixed legend keeps every frame one size
    records: list[dict] = []
    frame_skips = Skips(echo=False)
    index = written = 0
    with ExitStack() as stack:
        stack.callback(capture.release)
        writer = None
        bar = stack.enter_context(tqdm(total=total, unit="frame", desc=job.source.name))
        for frames in _frames(capture, labeller.images_per_call):
            numbers = range(index, index + len(frames))
            labels = label_or_skip(labeller, frames, [job.source.name] * len(frames),
                                   [f"frame {n}" for n in numbers], frame_skips)
            for number, frame, labelled in zip(numbers, frames, labels, strict=True):
                if labelled is None:
                    continue
                png = out / job.name / f"{number:06d}.png"
                write_atomic(png, encode_image(png, labelled.labels))
                written += 1
                if labeller.writes_faces:
                    records.append({"frame": number, **labelled.faces_record()})
                if with_overlay:
                    picture = labeller.overlay(frame, labelled, legend=legend)
                    if writer is None:  # released before atomic_target renames the finished file
                        writer = open_video_writer(stack.enter_context(atomic_target(out / job.overlay_video)), fps,
                                                   picture.shape[1::-1])
                        stack.callback(writer.release)
                    writer.write(picture)
            index += len(frames)
            bar.update(len(frames))
        if index == 0:
            raise DmlcsrError(f"no frame could be read from {job.source}; check the file plays, or convert it to MP4")
        if written == 0:
            raise DmlcsrError(f"none of its {index} frames could be parsed ({frame_skips.messages[0]})")
    if labeller.writes_faces:
        write_atomic(out / job.faces_json, dumps_boxes({"video": job.source.name, "frames": records}, "frames"))
    stale = _stale_frames(out / job.name, index)
    if stale:
        tqdm.write(f"note: {out / job.name} also holds {stale} frame PNG(s) numbered past this video's {index} "
                   "frames (an earlier run's?); they were left in place", file=sys.stderr)
    if frame_skips:
        skips.add(job.source, f"{len(frame_skips)} of its {index} frames skipped (first: {frame_skips.messages[0]}); "
                              f"the other {written} are written")
    if total and total - index > max(1, MISSING_FRAMES_TOLERANCE * total):
        skips.add(job.source, f"only {index} of the {total} frames it declares could be read (truncated or "
                              f"damaged); those {index} are parsed, re-encode the video to parse the rest")


def _stale_frames(folder: Path, count: int) -> int:
    """How many frame PNGs in ``folder`` are numbered beyond this video's last frame: an
    earlier, longer video's (or the user's own files). Reported, never deleted."""
    return sum(int(path.stem) >= count for path in folder.glob("[0-9][0-9][0-9][0-9][0-9][0-9].png"))


def write_label_legend(parser: FaceParser, out: Path) -> Path:
    """labels.json: what the PNG values mean, so the outputs can be read without the model."""
    return write_atomic(out / LABEL_LEGEND, label_legend(parser))


def label_legend(parser: FaceParser) -> str:
    """labels.json's text (the Ray driver writes what an actor's parser returns)."""
    record = {"model": parser.path.name, "label_names": parser.label_names,
              "palette_bgr": palette(parser.num_classes).tolist(),
              "label_png": "pixel value = class index, at the input image's size"}
    return json.dumps(record, indent=2)
