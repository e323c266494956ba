"""Loading checkpoints into DML-CSR (and EAGRNet, the benchmark's baseline): the functions
everything else uses.

Accepts what users actually have: the official release files (raw state_dicts saved from
the deploy or the training build, with or without inplace_abn 1.1's num_batches_tracked),
dicts wrapping one under 'state_dict' or 'model', and DataParallel/DDP 'module.' prefixes.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dmlcsr.core.labels import MAX_CLASSES, MIN_CLASSES
from dmlcsr.errors import DmlcsrError
from dmlcsr.networks.dml_csr import DML_CSR
from dmlcsr.networks.eagrnet import EAGRNet

CLASSIFIER_KEY = "layer6.conv4.weight"
EDGE_PREFIX = "edge_layer."
EAGRNET_GRAPH_PREFIX = "block1."
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")


@dataclass
class LoadReport:
    """What loading did, for the user to read: class count, dropped edge keys, source hash."""

    path: str
    num_classes: int
    sha256: str
    dropped_keys: list[str] = field(default_factory=list)

    def summary(self) -> str:
        dropped = f", dropped {len(self.dropped_keys)} edge-branch keys" if self.dropped_keys else ""
        return f"{self.path}: {self.num_classes} classes{dropped}"


def file_sha256(path: str | os.PathLike) -> str:
    """Hash of the source file, recorded in exported artefacts for provenance."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_state_dict(path: str | os.PathLike, weights_only: bool = True) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat state_dict with 'module.' prefixes removed."""
    path = Path(path)
    if not path.is_file():
        raise DmlcsrError(f"checkpoint not found: {path} (check the path, or omit --ckpt to use "
                          "the built-in demo model)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:  # torch raises many types for foreign or broken files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DmlcsrError(f"{path} is not a readable PyTorch checkpoint ({reason[:160]}); pass the "
                          ".pth file saved by DML-CSR training or the official release") from None
    for key in WRAPPER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DmlcsrError(f"{path} holds no state_dict (found {type(obj).__name__}); save the model "
                          "with torch.save(model.state_dict(), path)")
    if not all(isinstance(k, str) for k in obj):
        raise DmlcsrError(f"{path} holds a dict whose keys are not parameter names; save the model "
                          "with torch.save(model.state_dict(), path)")
    broken = next((k for k, v in obj.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if broken is not None:
        raise DmlcsrError(f"{path} has NaN or infinite values in {broken}: training diverged or the file is "
                          "damaged; pass an earlier checkpoint")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def describe(state_dict: dict[str, torch.Tensor]) -> str:
    """A guess at what a foreign state_dict is, for error messages."""
    keys = state_dict.keys()
    if any(k.startswith("layer5.") for k in keys) and any(k.startswith("edge_layer.") for k in keys):
        return "it looks like an EAGRNet/CE2P checkpoint (has layer5 and edge_layer)"
    if any(k.startswith("context.dualgcn.") for k in keys):
        return "it looks like a DML-CSR checkpoint (has context.dualgcn)"
    if "fc.weight" in keys:
        return "it looks like an ImageNet classifier (has fc.weight), not a face parser"
    return f"{len(state_dict)} tensors, first keys: {', '.join(list(keys)[:3])}"


def infer_num_classes(state_dict: dict[str, torch.Tensor], network: str = "DML-CSR") -> int:
    """The class count, read off the final classifier's weights (same key in both networks).

    Refused outside MIN_CLASSES..MAX_CLASSES here, at load, because label maps are uint8
    PNGs: class 260 would be saved as 4 and a 1-class parser has nothing to tell apart.
    """
    weight = state_dict.get(CLASSIFIER_KEY)
    if weight is None or weight.dim() != 4:
        raise DmlcsrError(f"checkpoint has no {network} classifier ({CLASSIFIER_KEY}); "
                          f"{describe(state_dict)}")
    found = int(weight.shape[0])
    if not MIN_CLASSES <= found <= MAX_CLASSES:
        fix = (f"retrain with at most {MAX_CLASSES} classes" if found > MAX_CLASSES
               else "pass a face-parsing checkpoint with background plus at least one part")
        raise DmlcsrError(f"checkpoint's {network} classifier ({CLASSIFIER_KEY}) has {found} classes, outside the "
                          f"{MIN_CLASSES}..{MAX_CLASSES} dmlcsr supports (label maps are uint8 PNGs, values "
                          f"0..{MAX_CLASSES - 1}); {fix}")
    return found


def check_num_classes(path: str | os.PathLike, found: int, requested: int | None) -> None:
    """Refuse a checkpoint trained for another class count than the one asked for."""
    if requested is not None and requested != found:
        raise DmlcsrError(f"{path} was trained for {found} classes, not {requested}: pass "
                          f"--num-classes {found} (or leave it out to infer it)")


def key_mismatches(expected: dict[str, torch.Tensor], state_dict: dict[str, torch.Tensor]
                   ) -> list[tuple[str, list[str]]]:
    """(label, keys) for each way ``state_dict`` would fail a strict load into ``expected``;
    num_batches_tracked may be absent (inplace_abn 1.0.x checkpoints)."""
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    misshaped = [k for k, v in state_dict.items() if k in expected and v.shape != expected[k].shape]
    return [(label, keys) for label, keys in (("missing", missing), ("unexpected", unexpected),
                                              ("wrongly shaped", misshaped)) if keys]


def load_dml_csr(path: str | os.PathLike, num_classes: int | None = None, trained: bool = False,
                 weights_only: bool = True) -> tuple[DML_CSR, LoadReport]:
    """Build DML-CSR for ``path`` (deploy build unless ``trained``) and load it strictly.

    Edge-branch keys of a training checkpoint are dropped for the deploy build and listed
    in the report; anything else that does not fit is an error.
    """
    state_dict = read_state_dict(path, weights_only)
    found = infer_num_classes(state_dict)
    check_num_classes(path, found, num_classes)
    dropped: list[str] = []
    if not trained:
        dropped = [k for k in state_dict if k.startswith(EDGE_PREFIX)]
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(EDGE_PREFIX)}
    model = DML_CSR(found, trained=trained)
    for label, keys in key_mismatches(model.state_dict(), state_dict):
        hint = "; a deploy checkpoint has no edge_layer: load it without trained=True" \
            if trained and all(k.startswith(EDGE_PREFIX) for k in keys) else f"; {describe(state_dict)}"
        raise DmlcsrError(f"{path} does not fit DML-CSR: {len(keys)} {label} keys "
                          f"({', '.join(keys[:4])}){hint}")
    model.load_state_dict(state_dict, strict=True)
    model.eval()
    return model, LoadReport(str(path), found, file_sha256(path), dropped)


def load_eagrnet(path: str | os.PathLike, num_classes: int | None = None,
                 weights_only: bool = True) -> tuple[EAGRNet, LoadReport]:
    """Build EAGRNet for an official EAGRNet checkpoint (the benchmark's baseline) and load
    it strictly; its edge module is part of inference, so nothing is dropped."""
    state_dict = read_state_dict(path, weights_only)
    if not any(k.startswith(EAGRNET_GRAPH_PREFIX) for k in state_dict):
        raise DmlcsrError(f"{path} is not an EAGRNet checkpoint (no {EAGRNET_GRAPH_PREFIX[:-1]} graph module): "
                          f"{describe(state_dict)}; load DML-CSR checkpoints with load_dml_csr")
    found = infer_num_classes(state_dict, "EAGRNet")
    check_num_classes(path, found, num_classes)
    model = EAGRNet(found)
    for label, keys in key_mismatches(model.state_dict(), state_dict):
        raise DmlcsrError(f"{path} does not fit EAGRNet: {len(keys)} {label} keys ({', '.join(keys[:4])}); "
                          f"{describe(state_dict)}")
    model.load_state_dict(state_dict, strict=True)
    model.eval()
    return model, LoadReport(str(path), found, file_sha256(path))
