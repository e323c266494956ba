"""What training writes and reads: the deploy checkpoint, the resumable state, initial weights.

``best.pth`` is a raw state_dict of the deploy build (edge branch dropped), the form the
official test script loads with strict=True and that dmlcsr.checkpoint / dmlcsr-export
take as it is. ``last.pth`` holds everything needed to resume: both models (with edge
branch), the optimizer, the epoch, the cycle count and the best score so far.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from dmlcsr.checkpoint import EDGE_PREFIX, read_state_dict
from dmlcsr.errors import DmlcsrError


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper, or the model itself."""
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def deploy_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The deploy build's state_dict: every tensor but the training-only edge branch."""
    return {k: v.detach().cpu().clone() for k, v in unwrap(model).state_dict().items()
            if not k.startswith(EDGE_PREFIX)}


def _atomic_save(obj: object, path: Path) -> None:
    """Write to a temporary file, then rename: an interrupted save never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_deploy_checkpoint(model: nn.Module, path: Path) -> None:
    _atomic_save(deploy_state_dict(model), path)


def save_training_state(path: Path, **state: object) -> None:
    """Save the resumable state (plain tensors, numbers, strings and dicts only)."""
    _atomic_save(state, path)


def load_training_state(path: str | Path) -> dict:
    """The dict ``save_training_state`` wrote; one-line error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise DmlcsrError(f"training state not found: {path} (pass the last.pth that dmlcsr-train wrote)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or broken files
        raise DmlcsrError(f"{path} is not a readable training state ({str(exc).splitlines()[0][:120]}); "
                          "pass the last.pth that dmlcsr-train wrote") from None
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise DmlcsrError(f"{path} is not a dmlcsr training state (no model/epoch); to start from weights "
                          "use --init instead of --resume")
    return state


def load_initial_weights(model: nn.Module, path: str | Path) -> int:
    """Copy every tensor of ``path`` whose name and shape fit ``model`` (an ImageNet
    ResNet-101 with the deep stem, as the official training starts from, or a DML-CSR
    checkpoint to fine-tune); returns how many were copied."""
    source = read_state_dict(path)
    target = model.state_dict()
    fitting = {k: v for k, v in source.items() if k in target and v.shape == target[k].shape}
    if not fitting:
        raise DmlcsrError(f"no tensor of {path} fits DML-CSR by name and shape; pass an ImageNet ResNet-101 "
                          "(deep stem, conv1..conv3 + layer1..4) or a DML-CSR checkpoint")
    model.load_state_dict(fitting, strict=False)
    return len(fitting)
