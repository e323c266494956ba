"""Where the annotated faces are: the official list-file layout and the three datasets as
they are distributed, each read into one label map of the official class order.

Layouts (``open_index(root, split)`` detects which):
- ``list`` (the official code's): ``{split}_list.txt`` lines ``images/x.jpg labels/x.png``,
  paths relative to ``root/{split}/`` (as datasets.py reads them) or to ``root``; an
  optional ``label_names.txt`` (one name a line, background first; Helen's short names
  ``bg face lb rb le re nose ulip imouth llip hair`` are understood). An ``edges/``
  folder may be present and is not needed: edges are made on the fly.
- ``celebamask-hq``: ``CelebA-HQ-img/{i}.jpg`` (1024 px), ``CelebAMask-HQ-mask-anno/{i // 2000}/
  {i:05d}_{part}.png`` (512 px, one mask per part, merged in the official order so later
  parts win: ... hair over skin, cloth last) and ``CelebA-HQ-to-CelebA-mapping.txt``; the
  split is CelebA's (original files 1-162770 train, -182637 val, the rest test). Images
  are resized to the masks' 512 x 512 (area interpolation).
- ``lapa``: ``{split}/images/*.jpg`` with ``{split}/labels/*.png`` (class ids 0-10).
- ``helen`` (SmithCVPR2013_dataset_resized): ``images/{name}.jpg``, ``labels/{name}/
  {name}_lbl00.png`` ... ``_lbl10.png`` (one soft mask per class, arg-maxed), split lists
  ``exemplars.txt`` (train), ``tuning.txt`` (val), ``testing.txt`` (test).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dmlcsr.core.labels import CELEBAMASK_HQ, HELEN, LAPA, LabelSet, default_label_set
from dmlcsr.errors import DmlcsrError
from dmlcsr.runtime.images import read_image

IGNORE_LABEL = 255
LAYOUTS = ("list", "celebamask-hq", "lapa", "helen")
CELEBAMASK_PARTS = CELEBAMASK_HQ.names[1:]  # merge order of the dataset's own g_mask.py
CELEBA_LAST_TRAIN, CELEBA_LAST_VAL = 162770, 182637  # CelebA's list_eval_partition.txt
HELEN_SPLITS = {"train": "exemplars.txt", "val": "tuning.txt", "valid": "tuning.txt", "test": "testing.txt"}
HELEN_SHORT_NAMES = {"bg": "background", "face": "skin", "lb": "l_brow", "rb": "r_brow", "le": "l_eye",
                     "re": "r_eye", "ulip": "u_lip", "imouth": "mouth", "llip": "l_lip"}


@dataclass(frozen=True)
class Record:
    """One annotated image: its file and where its labels come from.

    ``label_format``: "map" (one PNG of class ids), "parts" (CelebAMask-HQ part masks in
    class order 1..18, missing files meaning an absent part) or "channels" (Helen's one
    soft mask per class, arg-maxed).
    """

    name: str
    image: Path
    labels: tuple[Path, ...]
    label_format: str = "map"


@dataclass(frozen=True)
class DatasetIndex:
    """The records of one split, with the label set their ids refer to."""

    layout: str
    split: str
    records: tuple[Record, ...]
    label_set: LabelSet

    def __len__(self) -> int:
        return len(self.records)


def label_set_from_names(names: list[str]) -> LabelSet:
    """The label set for a label_names.txt: a known one when the names match, else a custom
    one whose l_*/r_* classes are paired for mirroring."""
    names = [HELEN_SHORT_NAMES.get(n, n) for n in names]
    for known in (CELEBAMASK_HQ, LAPA):
        if tuple(names) == known.names:
            return known
    pairs = tuple((i, names.index("r_" + n[2:])) for i, n in enumerate(names)
                  if n.startswith("l_") and "r_" + n[2:] in names)
    return LabelSet("custom", tuple(names), pairs)


def _read_gray(path: Path) -> np.ndarray:
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        reason = "is missing" if not path.exists() else "is not a readable PNG"
        raise DmlcsrError(f"label file {path} {reason}; fix or remove its line from the split list")
    if data.ndim == 3:
        if not (np.all(data[..., 0] == data[..., 1]) and np.all(data[..., 0] == data[..., -1])):
            raise DmlcsrError(f"label file {path} is a colour image; labels must be one channel of class ids")
        data = data[..., 0]
    if data.dtype != np.uint8:
        raise DmlcsrError(f"label file {path} has {data.dtype} pixels; labels must be 8-bit class ids")
    return data


def read_labels(record: Record, num_classes: int) -> np.ndarray:
    """H x W uint8 class ids (255 = ignore) of one record, checked against the class count."""
    if record.label_format == "map":
        labels = _read_gray(record.labels[0])
    elif record.label_format == "parts":
        labels = None
        for class_id, path in enumerate(record.labels, start=1):
            if path.exists():
                mask = _read_gray(path)
                labels = np.zeros(mask.shape, np.uint8) if labels is None else labels
                if mask.shape != labels.shape:
                    raise DmlcsrError(f"part mask {path} is {mask.shape}, other parts {labels.shape}")
                labels[mask != 0] = class_id
        if labels is None:
            raise DmlcsrError(f"no part masks for {record.name} (looked for {record.labels[0]} and its "
                              "siblings); check the CelebAMask-HQ-mask-anno folder")
    elif record.label_format == "channels":
        channels = [_read_gray(p) for p in record.labels]
        labels = np.argmax(np.stack(channels), axis=0).astype(np.uint8)
    else:
        raise ValueError(f"unknown label format {record.label_format!r}")
    bad = (labels >= num_classes) & (labels != IGNORE_LABEL)
    if bad.any():
        raise DmlcsrError(f"labels of {record.name} ({record.labels[0]}) hold class {int(labels[bad].max())} "
                          f"but the dataset has {num_classes} classes; pass the right --num-classes or "
                          "label_names.txt")
    return labels


def read_sample(record: Record, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(BGR image, labels) of one record, at the labels' resolution."""
    try:
        image = read_image(record.image)  # the runtime's reader: what training sees is what parsing sees
    except DmlcsrError as exc:
        raise DmlcsrError(f"{exc}; or remove its line from the split list") from None
    labels = read_labels(record, num_classes)
    if image.shape[:2] != labels.shape:
        if record.label_format != "parts":
            raise DmlcsrError(f"{record.image} is {image.shape[1]}x{image.shape[0]} but its labels "
                              f"{record.labels[0]} are {labels.shape[1]}x{labels.shape[0]}")
        image = cv2.resize(image, (labels.shape[1], labels.shape[0]), interpolation=cv2.INTER_AREA)
    return image, labels


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise DmlcsrError(f"{path} not found: {what}")
    return path


def list_file_index(root: Path, split: str, label_set: LabelSet | None = None) -> DatasetIndex:
    """The official layout: ``{split}_list.txt`` of ``images/x.jpg labels/x.png`` lines."""
    list_path = _need(root / f"{split}_list.txt", f"the {split} split list of the official layout "
                      "(lines 'images/x.jpg labels/x.png')")
    records = []
    for number, line in enumerate(list_path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        image_rel = fields[0]
        label_rel = fields[1] if len(fields) > 1 else f"labels/{Path(image_rel).stem}.png"
        base = root / split if (root / split / image_rel).exists() else root
        if not (base / image_rel).exists():
            raise DmlcsrError(f"{list_path}:{number}: image {image_rel} not found under {root / split} or {root}")
        records.append(Record(Path(image_rel).stem, base / image_rel, (base / label_rel,)))
    if not records:
        raise DmlcsrError(f"{list_path} lists no images")
    if label_set is None:
        names_path = root / "label_names.txt"
        if not names_path.exists():
            raise DmlcsrError(f"{root} has no label_names.txt; write one (class names one a line, background "
                              "first) or pass --num-classes")
        label_set = label_set_from_names([n.strip() for n in names_path.read_text().splitlines() if n.strip()])
    return DatasetIndex("list", split, tuple(records), label_set)


def celebamask_hq_index(root: Path, split: str) -> DatasetIndex:
    """CelebAMask-HQ as distributed, split as CelebA (by the original file number)."""
    mapping = _need(root / "CelebA-HQ-to-CelebA-mapping.txt", "it ships with CelebAMask-HQ and gives the split")
    wanted = {"train": 0, "val": 1, "valid": 1, "test": 2}.get(split)
    if wanted is None:
        raise DmlcsrError(f"CelebAMask-HQ has splits train, val and test, not {split!r}")
    records = []
    for line in mapping.read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) < 3:
            continue
        index, original = int(fields[0]), int(Path(fields[2]).stem)
        part = 0 if original <= CELEBA_LAST_TRAIN else 1 if original <= CELEBA_LAST_VAL else 2
        if part != wanted:
            continue
        folder = root / "CelebAMask-HQ-mask-anno" / str(index // 2000)
        parts = tuple(folder / f"{index:05d}_{name}.png" for name in CELEBAMASK_PARTS)
        records.append(Record(str(index), root / "CelebA-HQ-img" / f"{index}.jpg", parts, "parts"))
    if not records:
        raise DmlcsrError(f"{mapping} gives no {split} images; is it the CelebAMask-HQ mapping file?")
    return DatasetIndex("celebamask-hq", split, tuple(records), CELEBAMASK_HQ)


def lapa_index(root: Path, split: str) -> DatasetIndex:
    """LaPa as distributed: ``{split}/images/*.jpg`` and ``{split}/labels/*.png``."""
    images = _need(root / split / "images", f"LaPa keeps the {split} images there")
    labels = _need(root / split / "labels", f"LaPa keeps the {split} label maps there")
    records = tuple(Record(p.stem, p, (labels / f"{p.stem}.png",)) for p in sorted(images.glob("*.jpg")))
    if not records:
        raise DmlcsrError(f"{images} holds no .jpg images")
    return DatasetIndex("lapa", split, records, LAPA)


def helen_index(root: Path, split: str) -> DatasetIndex:
    """Helen (SmithCVPR2013_dataset_resized): per-class masks, split lists of 'n , name'."""
    if split not in HELEN_SPLITS:
        raise DmlcsrError(f"Helen has splits train, val and test, not {split!r}")
    list_path = _need(root / HELEN_SPLITS[split], "Helen's split list")
    records = []
    for line in list_path.read_text().splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 2 or not fields[1]:
            continue
        name = fields[1]
        channels = tuple(root / "labels" / name / f"{name}_lbl{c:02d}.png" for c in range(HELEN.num_classes))
        records.append(Record(name, root / "images" / f"{name}.jpg", channels, "channels"))
    if not records:
        raise DmlcsrError(f"{list_path} lists no images")
    return DatasetIndex("helen", split, tuple(records), HELEN)


def detect_layout(root: Path, split: str) -> str:
    """Which of LAYOUTS ``root`` is in, from the files present."""
    if (root / f"{split}_list.txt").exists():
        return "list"
    if (root / "CelebA-HQ-img").is_dir():
        return "celebamask-hq"
    if (root / "exemplars.txt").exists():
        return "helen"
    if (root / split / "images").is_dir() and (root / split / "labels").is_dir():
        return "lapa"
    raise DmlcsrError(f"{root} is in no known layout for split {split!r}: expected {split}_list.txt (official), "
                      "CelebA-HQ-img/ (CelebAMask-HQ), exemplars.txt (Helen) or "
                      f"{split}/images + {split}/labels (LaPa)")


def open_index(root: str | Path, split: str, layout: str = "auto", num_classes: int | None = None) -> DatasetIndex:
    """The records of ``split`` under ``root`` in ``layout`` ("auto" detects it)."""
    root = Path(root)
    if not root.is_dir():
        raise DmlcsrError(f"dataset folder not found: {root}")
    layout = detect_layout(root, split) if layout == "auto" else layout
    if layout == "list":
        explicit = default_label_set(num_classes) if num_classes and not (root / "label_names.txt").exists() \
            else None
        index = list_file_index(root, split, explicit)
    elif layout == "celebamask-hq":
        index = celebamask_hq_index(root, split)
    elif layout == "lapa":
        index = lapa_index(root, split)
    elif layout == "helen":
        index = helen_index(root, split)
    else:
        raise DmlcsrError(f"unknown dataset layout {layout!r}; use one of auto, {', '.join(LAYOUTS)}")
    if num_classes is not None and num_classes != index.label_set.num_classes:
        raise DmlcsrError(f"{root} ({index.layout}) has {index.label_set.num_classes} classes, not {num_classes}; "
                          "drop --num-classes or fix label_names.txt")
    return index
