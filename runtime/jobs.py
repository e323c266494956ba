"""What dmlcsr-parse will read and write: inputs expanded to jobs, each with unique outputs.

Every job's outputs are named before anything runs, so that two inputs never write the
same file (a video's frame folder ``clip/`` and an input folder ``clip/`` included: the
later claimant is renamed and the rename reported), and no output lands on an input
file (``--out .`` beside the photos would replace them with label maps: refused).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.images import IMAGE_SUFFIXES

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
#: photo formats OpenCV does not decode: collected from folders so that each becomes a
#: counted skip that says to convert it, rather than vanishing without a word
UNDECODED_SUFFIXES = (".heic", ".heif", ".jxl", ".dng", ".cr2", ".nef", ".arw", ".raw", ".psd")
LABEL_LEGEND = "labels.json"
#: NAME-1 ... NAME-MAX_RENAMES are tried before an input is refused for want of a free name
MAX_RENAMES = 1000


@dataclass(frozen=True)
class Job:
    """One input file and the name (relative to --out, no suffix) its outputs get; ``uri``
    when the file is read from a store by URI (dmlcsr-parse --ray, remote_files.py)."""

    source: Path
    name: Path
    is_video: bool
    uri: str = ""

    @property
    def location(self) -> str:
        """Where the input is read from, as the user named it: its URI or its path."""
        return self.uri or str(self.source)

    def outputs(self) -> tuple[list[Path], Path | None]:
        """(files, folder): the files this job may write and, for a video, its frame folder."""
        if self.is_video:
            return [self.overlay_video, self.faces_json], self.name
        return [self.label_png, self.overlay, self.faces_json], None

    @property
    def label_png(self) -> Path:
        return self.name.with_name(self.name.name + ".png")  # not with_suffix: img.001 keeps its .001

    @property
    def overlay(self) -> Path:
        return self.name.with_name(self.name.name + "_overlay.jpg")

    @property
    def overlay_video(self) -> Path:
        return self.name.with_name(self.name.name + "_overlay.mp4")

    @property
    def faces_json(self) -> Path:
        return self.name.with_name(self.name.name + "_faces.json")


@dataclass
class JobList:
    """The jobs, in input order, and notes for the user (renames, files ignored)."""

    jobs: list[Job]
    notes: list[str]


def collect_jobs(inputs: Sequence[str | Path], remote: Sequence[tuple[str, Path]] = ()) -> JobList:
    """Files and folders (searched recursively for images and videos) -> jobs with unique
    outputs; ``remote``: (URI, wanted name) of files listed on a store, named alongside."""
    found: list[tuple[Path, Path]] = []  # (source, wanted name)
    notes: list[str] = []
    wanted = IMAGE_SUFFIXES + VIDEO_SUFFIXES + UNDECODED_SUFFIXES
    for item in map(Path, inputs):
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if (p.is_file() or p.is_symlink()) and not p.name.startswith("."))
            chosen = [p for p in files if p.suffix.lower() in wanted]
            if not chosen:
                raise DmlcsrError(f"no images or videos in {item}; image types: {' '.join(IMAGE_SUFFIXES)}")
            others = Counter(p.suffix.lower() or "(none)" for p in files if p.suffix.lower() not in wanted)
            if others:
                notes.append(f"ignored {sum(others.values())} file(s) in {item} that are not images or videos ("
                             + ", ".join(f"{suffix} x{count}" for suffix, count in sorted(others.items())) + ")")
            found += [(p, Path(item.resolve().name) / p.relative_to(item).with_suffix("")) for p in chosen]
        elif item.is_file():
            found.append((item, Path(item.stem)))
        else:
            raise DmlcsrError(f"input not found: {item}")
    uris = [""] * len(found) + [uri for uri, _ in remote]
    found += [(Path(uri), name) for uri, name in remote]
    names = _unique_names(found, notes)
    return JobList([Job(source, names[index], _is_video(source), uris[index])
                    for index, (source, _) in enumerate(found)], notes)


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def _unique_names(found: list[tuple[Path, Path]], notes: list[str]) -> dict[int, Path]:
    """Names whose outputs never meet: images first (their files), then videos (a folder of
    frames each, which must hold no other output); a clash renames the later one NAME-1, ..."""
    files: dict[Path, Path] = {Path(LABEL_LEGEND): Path(LABEL_LEGEND)}  # output file -> the source that owns it
    folders: dict[Path, Path] = {}
    names: dict[int, Path] = {}
    order = sorted(range(len(found)), key=lambda i: _is_video(found[i][0]))  # stable: images keep input order
    for index in order:
        source, name = found[index]
        candidate, count = name, 1
        while (owner := _clash(Job(source, candidate, _is_video(source)), files, folders)) is not None:
            if count > MAX_RENAMES:
                raise DmlcsrError(f"cannot give {source} an output name that no other input's outputs use ({owner} "
                                  "has it); rename the file or its folder")
            candidate, count = name.with_name(f"{name.name}-{count}"), count + 1
        if candidate != name:
            notes.append(f"{source} is written as {candidate} ({name} is taken by {owner})")
        files.update(dict.fromkeys(Job(source, candidate, _is_video(source)).outputs()[0], source))
        if _is_video(source):
            folders[candidate] = source
        names[index] = candidate
    return names


def _clash(job: Job, files: dict[Path, Path], folders: dict[Path, Path]) -> Path | None:
    """The source whose outputs ``job``'s outputs would meet, or None."""
    outputs, folder = job.outputs()
    for path in outputs:
        if path in files:
            return files[path]
        for parent in path.parents:
            if parent in folders:
                return folders[parent]
            if parent in files:  # an output file where this one needs a folder (e.g. labels.json/)
                return files[parent]
    if folder is not None:
        if folder in folders:
            return folders[folder]
        for path, owner in files.items():
            if folder in path.parents or path == folder:
                return owner
    return None


def refuse_overwriting_inputs(jobs: list[Job], out: Path, others: Sequence[Path] = ()) -> None:
    """Refuse an --out where an output would replace an input file (or fill a frame folder
    that holds inputs): label maps written over the photos they came from lose the photos.
    ``others`` are further files the run reads (the model, a faces JSON, the detector)."""
    inputs = {path.resolve(): path for path in [*(job.source for job in jobs), *others]}
    root = out.resolve()
    for job in jobs:
        outputs, folder = job.outputs()
        for path in [*outputs, Path(LABEL_LEGEND)]:
            if (root / path).resolve() in inputs:
                raise DmlcsrError(f"--out {out} would overwrite the input {inputs[(root / path).resolve()]} with an "
                                  "output; pass another --out, e.g. --out parsed")
        if folder is not None:
            frames = (root / folder).resolve()
            for resolved, source in inputs.items():
                if frames in resolved.parents:
                    raise DmlcsrError(f"--out {out} would write {job.source}'s frames over the input {source}; pass "
                                      "another --out, e.g. --out parsed")
