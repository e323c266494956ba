"""dmlcsr-parse --ray: the same per-image work, spread over Ray actors by Ray Data.

Ray Data does the scheduling: ``map_batches`` over a pool of actors, each holding one
FaceParser (and detector), fed by a streaming executor with back-pressure; a dead actor is
restarted and its batch retried by Ray. Each actor decodes, labels and encodes its batch
with the very function dmlcsr-parse uses (image_outputs.label_group) and returns the
encoded files; the driver writes them under --out through temporary names and appends one
manifest line per image (manifest.py). Writing on the driver keeps the outputs in one
place and the manifest in step with them, and needs no shared output folder.

A rerun reads the manifest and skips every image recorded ``ok`` whose outputs are all
present (and, unless --retry-failed, every image recorded ``failed``). Images named by
URI are read by the actors through pyarrow (remote_files.py). Ray is imported here only,
and only when a run starts: ``import dmlcsr.runtime`` never loads it.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dmlcsr.core.validation import finite_number
from dmlcsr.errors import DmlcsrError, DmlcsrWarning
from dmlcsr.runtime.image_outputs import ImageOutputs, label_group
from dmlcsr.runtime.jobs import LABEL_LEGEND, Job
from dmlcsr.runtime.labellers import FaceMode
from dmlcsr.runtime.manifest import FAILED, MANIFEST, OK, Entry, ManifestWriter, read_manifest
from dmlcsr.runtime.output_files import remove_stale_temporaries, write_atomic, write_group
from dmlcsr.runtime.remote_files import is_uri
from dmlcsr.runtime.skips import Skips

RAY_INSTALL = 'pip install "dmlcsr[ray]"'
#: images per actor call (at least; --batch more with --faces whole): enough to amortise a
#: Ray task (~ms), few enough that a small collection still spreads over every actor
IMAGES_PER_TASK = 4
#: the list of images is cut into at most this many blocks (units of scheduling and of retry):
#: small blocks spread a small collection over every actor, and a million images stay 10,000
MAX_BLOCKS = 10_000


@dataclass(frozen=True)
class ActorSpec:
    """What each actor opens: the model on its device, and the face mode. Paths absolute,
    so that actors started in another folder (or on another node) find the same files."""

    model: str
    mode: FaceMode
    overlay: bool = False
    device: str = "auto"
    threads: int | None = None
    engine: str = "auto"
    bf16: bool = False


@dataclass(frozen=True)
class RayOptions:
    """--ray ADDRESS (auto: a running cluster, else a local instance; local: always a new
    one), actors and their resources, and whether images that failed before are tried again."""

    address: str = "auto"
    actors: int | None = None
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    retry_failed: bool = False

    def __post_init__(self) -> None:  # NaN and infinity pass click's FloatRange
        if not finite_number(self.cpus_per_actor, "--cpus-per-actor", minimum=0.0) > 0:
            raise DmlcsrError(f"--cpus-per-actor is {self.cpus_per_actor!r}; it must be above 0")
        finite_number(self.gpus_per_actor, "--gpus-per-actor", minimum=0.0)


@dataclass
class RaySummary:
    """What a run did: images parsed, failed and skipped as done before, faces, time."""

    images: int = 0
    parsed: int = 0
    failed: int = 0
    faces: int = 0
    without_faces: int = 0
    done_before: int = 0
    failed_before: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return self.parsed / self.seconds if self.seconds > 0 else 0.0

    def lines(self, out: Path) -> list[str]:
        """The closing summary: images, faces, failures, images/s, where the manifest is."""
        if not self.parsed and not self.failed:
            return [f"nothing to parse: {self.done_before} of {self.images} images in {out} are done"] + \
                self._failures(out)
        head = f"parsed {self.parsed} of {self.images} images into {out}"
        if self.done_before:
            head += f" ({self.done_before} done before)"
        faces = f"{self.faces} faces" + (f", none in {self.without_faces} images" if self.without_faces else "")
        lines = [f"{head}; {faces}; {self.failed} failed; {self.images_per_s:.2f} images/s "
                 f"({self.parsed} in {self.seconds:.1f} s)"]
        return lines + self._failures(out)

    def _failures(self, out: Path) -> list[str]:
        lines = []
        if self.failed_before:
            lines.append(f"{self.failed_before} images failed in an earlier run and were not tried again "
                         "(--retry-failed tries them)")
        if self.failed or self.failed_before:
            lines.append(f"failures and their reasons: {out / MANIFEST}")
        return lines


class ParseActor:
    """One FaceParser (and detector) per actor; each call decodes, labels and encodes a
    batch of images exactly as dmlcsr-parse does, and returns the encoded files."""

    def __init__(self, spec: ActorSpec) -> None:
        from dmlcsr.runtime.parse_files import label_legend
        from dmlcsr.runtime.parser import FaceParser

        self.overlay, self.setup_error = spec.overlay, ""
        try:
            with warnings.catch_warnings():  # advice is for a single run; here it would repeat per actor
                warnings.simplefilter("ignore", DmlcsrWarning)
                parser = FaceParser(spec.model, device=spec.device, threads=spec.threads, engine=spec.engine,
                                    inference_precision="bf16" if spec.bf16 else "f32", throughput=True)
            self.labeller = spec.mode.labeller(parser, spec.device, spec.threads)
            self.legend = label_legend(parser)
        except Exception as exc:  # noqa: BLE001 - sent to the driver as one line, not as Ray's retried traceback
            self.setup_error = str(exc).strip().splitlines()[-1] if isinstance(exc, DmlcsrError) else \
                f"cannot open {spec.model} on a Ray actor ({type(exc).__name__}: {str(exc).strip()[:200]})"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.setup_error:  # every image of the run would fail alike: the driver stops at the first
            count = len(batch["index"])
            return {"index": np.asarray(batch["index"]), "status": np.array([SETUP_FAILED] * count, dtype=object),
                    "error": np.array([self.setup_error] * count, dtype=object)}
        jobs = [Job(Path(source), Path(name), False, source if is_uri(source) else "")
                for source, name in zip(batch["source"], batch["name"], strict=True)]
        skips = Skips(echo=False)
        done: dict[Path, ImageOutputs] = {}
        step = self.labeller.images_per_call
        for start in range(0, len(jobs), step):
            done.update((outputs.job.name, outputs) for outputs in self._label(jobs[start:start + step], skips))
        reasons = {}
        for source, reason in skips.reasons:
            reasons.setdefault(str(source), reason)
        rows = [_row(done.get(job.name), reasons.get(str(job.source), "not parsed (no reason given)"))
                for job in jobs]
        columns = {key: np.array([row[key] for row in rows], dtype=object) for key in ROW_KEYS}
        columns["index"] = np.asarray(batch["index"])
        columns["legend"] = np.array([self.legend] + [""] * (len(jobs) - 1), dtype=object)
        return columns

    def _label(self, group: list[Job], skips: Skips) -> list[ImageOutputs]:
        """label_group, with anything it does not catch itself (an engine's own error) turned
        into a skip of the one image at fault: a bad image never ends the run."""
        try:
            return label_group(self.labeller, group, self.overlay, skips)
        except Exception as exc:  # noqa: BLE001 - reported per image below, never fatal
            if len(group) == 1:
                skips.add_error(group[0].source, exc)  # "unexpected <type> (...)" unless a DmlcsrError
                return []
        return [outputs for job in group for outputs in self._label([job], skips)]


#: a row status that means the actor could not open the model (or detector): not the image's fault
SETUP_FAILED = "setup-failed"
ROW_KEYS = ("status", "faces", "error", "note", "label_png", "faces_json", "overlay")


def _row(outputs: ImageOutputs | None, reason: str) -> dict[str, Any]:
    if outputs is None:
        return {"status": FAILED, "faces": 0, "error": reason, "note": "", "label_png": b"", "faces_json": b"",
                "overlay": b""}
    return {"status": OK, "faces": outputs.faces, "error": "", "note": outputs.note, "label_png": outputs.label_png,
            "faces_json": (outputs.faces_json or "").encode(), "overlay": outputs.overlay or b""}


def expected_files(job: Job, out: Path, mode: FaceMode, overlay: bool) -> list[Path]:
    """The outputs a complete image has: its label PNG, faces JSON (face mode), overlay (--overlay)."""
    return [out / job.label_png] + ([out / job.faces_json] if mode.writes_faces else []) \
        + ([out / job.overlay] if overlay else [])


def plan(jobs: list[Job], out: Path, mode: FaceMode, overlay: bool, retry_failed: bool
         ) -> tuple[list[tuple[int, Job]], int, int]:
    """(index, job) still to parse, and how many are done before / failed before (skipped)."""
    recorded = read_manifest(out / MANIFEST)
    todo, done, failed = [], 0, 0
    for index, job in enumerate(jobs):
        entry = recorded.get(str(job.name))
        if entry is not None and entry.source == job.location:
            if entry.status == OK and all(path.is_file() for path in expected_files(job, out, mode, overlay)):
                done += 1
                continue
            if entry.status == FAILED and not retry_failed:
                failed += 1
                continue
        todo.append((index, job))
    return todo, done, failed


def refuse(jobs: list[Job], out: Path) -> None:
    """Videos (decoded frame by frame in one process) and the manifest as an input are refused."""
    videos = [job.location for job in jobs if job.is_video]
    if videos:
        raise DmlcsrError(f"--ray parses images; {videos[0]}{f' and {len(videos) - 1} more' if len(videos) > 1 else ''}"
                          " is a video: parse videos without --ray")
    manifest = (out / MANIFEST).resolve()
    for job in jobs:
        if not job.uri and job.source.resolve() == manifest:
            raise DmlcsrError(f"{job.source} is the run's manifest, not an image; leave it out of the inputs")


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - the extra's other half
    except ImportError:
        raise DmlcsrError(f"--ray needs Ray Data: {RAY_INSTALL}") from None
    return ray


def connect(ray: Any, address: str) -> bool:
    """Join the cluster at ``address`` (auto: a running one, else a new local instance;
    local: a new local instance); returns whether this call connected (and must shut down)."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=None if address == "auto" else address, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False)  # actors report through their results
    except (ConnectionError, ValueError, RuntimeError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DmlcsrError(f"cannot connect to Ray at {address!r} ({detail[:200]}); start one with "
                          "`ray start --head`, or pass --ray auto for a local instance") from None
    return True


def pool_size(ray: Any, options: RayOptions) -> int:
    """--actors, else as many as the cluster's CPUs (or GPUs, with --gpus-per-actor) hold."""
    if options.actors:
        return options.actors
    resources = ray.cluster_resources()
    if options.gpus_per_actor > 0:
        return max(1, math.floor(resources.get("GPU", 0) / options.gpus_per_actor))
    return max(1, math.floor(resources.get("CPU", 1) / options.cpus_per_actor))


def quiet_ray_data(ray: Any) -> None:
    """One progress bar (ours) and Ray's warnings, not its per-operator INFO logging nor
    its notice that its own bars are off."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    for name in ("ray.data", "ray"):
        logging.getLogger(name).setLevel(logging.WARNING)
    progress = logging.getLogger("ray.data._internal.progress")
    if not any(isinstance(f, _BarsOffNotice) for f in progress.filters):
        progress.addFilter(_BarsOffNotice())


class _BarsOffNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Progress bars disabled")


def run_on_ray(jobs: list[Job], out: Path, spec: ActorSpec, options: RayOptions) -> RaySummary:
    """Parse ``jobs`` (images) on Ray actors; outputs, manifest and labels.json under ``out``."""
    refuse(jobs, out)
    if out.is_dir():
        remove_stale_temporaries(out)
    todo, done_before, failed_before = plan(jobs, out, spec.mode, spec.overlay, options.retry_failed)
    summary = RaySummary(images=len(jobs), done_before=done_before, failed_before=failed_before)
    if not todo:
        return summary
    ray = import_ray()
    started = connect(ray, options.address)
    try:
        quiet_ray_data(ray)
        _execute(ray, todo, out, spec, options, summary)
    finally:
        if started:
            ray.shutdown()
    return summary


def _execute(ray: Any, todo: list[tuple[int, Job]], out: Path, spec: ActorSpec, options: RayOptions,
             summary: RaySummary) -> None:
    """Stream the batches through the actor pool; write each image's files and manifest line as it returns."""
    jobs = dict(todo)
    items = [{"index": index, "source": job.uri or str(job.source.absolute()), "name": str(job.name)}
             for index, job in todo]
    images_per_task = max(IMAGES_PER_TASK, spec.mode.batch or 1) if not spec.mode.writes_faces else IMAGES_PER_TASK
    blocks = min(MAX_BLOCKS, max(1, math.ceil(len(items) / images_per_task)))
    actors = min(pool_size(ray, options), blocks)  # a rerun of a few images starts no idle actors
    dataset = ray.data.from_items(items, override_num_blocks=blocks)
    dataset = dataset.map_batches(
        ParseActor, fn_constructor_kwargs={"spec": spec}, batch_size=images_per_task, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=options.cpus_per_actor,
        num_gpus=options.gpus_per_actor or None)
    start = time.perf_counter()
    legend, legend_written = "", False
    with ManifestWriter(out / MANIFEST) as manifest, \
            tqdm(total=len(todo), unit="img", desc=f"images on {actors} Ray actor{'s' * (actors > 1)}") as bar:
        try:
            for batch in _batches(dataset):
                for row in _rows(batch):
                    if row["status"] == SETUP_FAILED:
                        raise DmlcsrError(row["error"])
                    _record(jobs.pop(int(row["index"])), row, out, manifest, summary)
                    bar.update(1)
                    legend = legend or row["legend"]
                    if legend and summary.parsed and not legend_written:  # as soon as there is a PNG to explain
                        legend_written = bool(write_atomic(out / LABEL_LEGEND, legend))
        finally:
            summary.seconds = time.perf_counter() - start
        for job in jobs.values():  # Ray returned every batch or raised; kept for the manifest's sake
            _record(job, {"status": FAILED, "error": "no result came back from Ray"}, out, manifest, summary)


def _batches(dataset: Any) -> Iterable[dict[str, np.ndarray]]:
    """The dataset's result batches as they come; a failure of Ray's (not of an image) as one line."""
    iterator = iter(dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1))
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - Ray's errors, whatever their class, end as one line
            raise DmlcsrError(ray_failure(exc)) from None
        yield batch


def _rows(batch: dict[str, np.ndarray]) -> Iterable[dict[str, Any]]:
    keys = list(batch)
    return ({key: batch[key][i] for key in keys} for i in range(len(batch["index"])))


def _record(job: Job, row: dict[str, Any], out: Path, manifest: ManifestWriter, summary: RaySummary) -> None:
    """Write one image's files (all or none), then its manifest line; count it."""
    status, error, faces = row["status"], row.get("error", ""), int(row.get("faces", 0))
    if status == OK:
        outputs = ImageOutputs(job, bytes(row["label_png"]), bytes(row["faces_json"]).decode() or None,
                               bytes(row["overlay"]) or None, faces, row["note"])
        try:
            write_group(outputs.files(out))
        except DmlcsrError as exc:
            status, error = FAILED, str(exc)
    if status == OK:
        summary.parsed += 1
        summary.faces += faces
        summary.without_faces += faces == 0
        if row["note"]:
            tqdm.write(f"{job.location}: {row['note']}")
    else:
        summary.failed += 1
        summary.errors.append(f"{job.location}: {error}")
        tqdm.write(f"skipped {job.location}: {error}")
    manifest.add(Entry(job.location, str(job.name), status, faces if status == OK else 0, error,
                       row.get("note", "") if status == OK else ""))


def ray_failure(exc: BaseException) -> str:
    """A Ray error as one line: the DmlcsrError inside it (a model the actors cannot open),
    else its first line."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DmlcsrError):
            return str(current).strip().splitlines()[-1]
        for line in str(current).splitlines():
            if "DmlcsrError: " in line:
                return line.split("DmlcsrError: ", 1)[1].strip()
        current = current.__cause__ or current.__context__
    text = str(exc).strip().splitlines()
    return f"the Ray run failed: {type(exc).__name__}" + (f" ({text[0][:200]})" if text else "") + \
        "; rerun the same command to resume"


def actor_spec(model: Path, mode: FaceMode, overlay: bool, device: str, threads: int | None, engine: str,
               bf16: bool, options: RayOptions) -> ActorSpec:
    """What every actor opens, with absolute paths (actors may start elsewhere) and, unless
    --threads says, as many engine threads as the actor has CPUs (GPU actors: the engine's
    default), so that actors do not fight over cores."""
    if threads is None and options.gpus_per_actor <= 0:
        threads = max(1, math.floor(options.cpus_per_actor))
    if not model.is_file():
        raise DmlcsrError(f"model not found: {model}" if not model.exists() else f"{model} is not a file")
    if mode.detector is not None:
        mode = replace(mode, detector=Path(os.path.abspath(mode.detector)))
    return ActorSpec(os.path.abspath(model), mode, overlay, device, threads, engine, bf16)
