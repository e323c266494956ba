"""dmlcsr-train and dmlcsr-eval: thin click wrappers over dmlcsr.training."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from dmlcsr.cli_options import device_option, input_size_option
from dmlcsr.core.geometry import INPUT_SIZE
from dmlcsr.errors import DmlcsrError

TRAIN_EXAMPLES = """
\b
Examples:
  # the paper's recipe on CelebAMask-HQ as distributed (200 epochs, CSR from 150)
  dmlcsr-train data/CelebAMask-HQ --val-split val --init resnet101-imagenet.pth --out runs/celeba
\b
  # four GPUs (global batch 28 = 4 x 7), synchronized batch norm
  torchrun --nproc_per_node 4 -m dmlcsr.training.cli data/LaPa --val-split val --out runs/lapa
\b
  # the official list-file layout (train_list.txt, test_list.txt, label_names.txt)
  dmlcsr-train data/Helen --out runs/helen --epochs 200 --csr-start 150 --cycle-epochs 10
\b
  # resume an interrupted run
  dmlcsr-train data/LaPa --out runs/lapa --resume runs/lapa/last.pth
\b
Writes OUT/best.pth (deploy state_dict: dmlcsr-export and the official test.py take it
as it is), OUT/last.pth (resumable: both models, optimizer, epoch) and OUT/log.jsonl.
"""

EVAL_EXAMPLES = """
\b
Examples:
  dmlcsr-eval runs/celeba/best.pth data/CelebAMask-HQ --split test
  dmlcsr-eval dmlcsr.onnx data/LaPa --split test --json lapa-onnx.json
  dmlcsr-eval official-helen.pth data/Helen --official-center-truncation
\b
Scores are computed at each image's original resolution as the official code does:
mIoU over all classes, F1 per class, mean F1 without background and, where the label
set has them, merged F1 for eyes, brows, nose, mouth and overall (Helen's headline).
"""


def _floats(value: str, count: int, name: str) -> tuple[float, ...]:
    try:
        numbers = tuple(float(v) for v in value.split(","))
    except ValueError:
        numbers = ()
    if len(numbers) != count:
        raise click.BadParameter(f"{name} takes {count} comma-separated numbers, got {value!r}")
    return numbers


def _fail(exc: DmlcsrError) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@click.command(epilog=TRAIN_EXAMPLES, context_settings={"max_content_width": 100})
@click.argument("data", type=click.Path(file_okay=False))
@click.option("--out", default="runs/dmlcsr", show_default=True, help="Folder for checkpoints and logs.")
@click.option("--layout", default="auto", show_default=True,
              type=click.Choice(["auto", "list", "celebamask-hq", "lapa", "helen"]), help="Dataset layout.")
@click.option("--train-split", default="train", show_default=True)
@click.option("--val-split", default="test", show_default=True,
              help="Split scored after every --eval-every epochs to pick best.pth (official: test).")
@click.option("--num-classes", type=int, help="Only for list layouts without label_names.txt.")
@input_size_option()
@click.option("--batch-size", default=28, show_default=True, help="Global batch, split over torchrun processes.")
@click.option("--epochs", default=200, show_default=True)
@click.option("--csr-start", default=150, show_default=True, help="Epoch ending the first cycle.")
@click.option("--cycle-epochs", default=10, show_default=True, help="Epochs per self-regulation cycle.")
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--momentum", default=0.9, show_default=True)
@click.option("--weight-decay", default=5e-4, show_default=True)
@click.option("--lambdas", default="1,1,1,4,1", show_default=True,
              help="Loss weights: parsing, binary edge, category edge, binary and category attention.")
@click.option("--alphas", default="1,1,0.1", show_default=True,
              help="Self-distillation KL weights: parsing, binary edge, category edge.")
@click.option("--augment/--no-augment", default=True, show_default=True,
              help="Random scale 0.25 and rotation 30 deg (p=0.6) inside the crop.")
@click.option("--flip/--no-flip", default=False, show_default=True, help="Random mirror swapping left/right.")
@click.option("--init", "init_path", type=click.Path(dir_okay=False),
              help="Initial weights: ImageNet ResNet-101 (deep stem) or a DML-CSR checkpoint.")
@click.option("--resume", type=click.Path(dir_okay=False), help="last.pth of an earlier run.")
@click.option("--eval-every", default=1, show_default=True, help="Epochs between validations (0: never).")
@click.option("--official-center-truncation", is_flag=True, help="Score as test.py (int32 crop centres).")
@click.option("--workers", default=2, show_default=True, help="Data-loading processes per device.")
@device_option("auto: CUDA when present, else CPU.")
@click.option("--seed", default=1234, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def train_main(data, out, layout, train_split, val_split, num_classes, input_size, batch_size, epochs, csr_start,
               cycle_epochs, lr, momentum, weight_decay, lambdas, alphas, augment, flip, init_path, resume, eval_every,
               official_center_truncation, workers, device, seed, quiet) -> None:
    """Train DML-CSR on DATA as the paper does: parsing + binary/category edges with edge
    attention, then cyclical self-regulation (weight ensembling, batch-norm re-estimation,
    self-distillation)."""
    from dmlcsr.training.augment import AugmentConfig
    from dmlcsr.training.loop import TrainConfig, train
    from dmlcsr.training.losses import DistillWeights, LossWeights

    config = TrainConfig(
        data=data, out=out, layout=layout, train_split=train_split, val_split=val_split, num_classes=num_classes,
        input_size=input_size, batch_size=batch_size, epochs=epochs, csr_start=csr_start,
        cycle_epochs=cycle_epochs, lr=lr, momentum=momentum, weight_decay=weight_decay,
        loss_weights=LossWeights(*_floats(lambdas, 5, "--lambdas")),
        distill_weights=DistillWeights(*_floats(alphas, 3, "--alphas")),
        augmentation=AugmentConfig(flip=flip, enabled=augment), workers=workers, eval_every=eval_every, seed=seed,
        init=init_path, resume=resume, device=device, official_center_truncation=official_center_truncation,
        progress=not quiet)
    try:
        result = train(config)
    except DmlcsrError as exc:
        _fail(exc)
    if int(os.environ.get("RANK", "0")):
        return  # under torchrun, rank 0 reports
    if result.best_score is not None:
        click.echo(f"best.pth: {result.best_source} after epoch {result.best_epoch}, score {result.best_score:.4f}")
    click.echo(f"wrote {Path(out) / 'best.pth'} and {Path(out) / 'last.pth'}")


def _open_network(model_path: Path, device: str, input_size: tuple[int, int] | None, num_classes: int):
    """(network, input size) for a .pth checkpoint, an .onnx file or a TensorRT engine."""
    from dmlcsr.training.evaluate import backend_network, torch_network

    if not model_path.is_file():
        raise DmlcsrError(f"model file not found: {model_path}")
    if model_path.suffix in (".pth", ".pt"):
        import torch

        from dmlcsr.checkpoint import load_dml_csr

        model, report = load_dml_csr(model_path, num_classes)
        torch_device = "cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
        click.echo(report.summary(), err=True)
        return torch_network(model.to(torch_device), torch_device), input_size or INPUT_SIZE
    from dmlcsr.runtime.backends import open_backend

    backend = open_backend(model_path, device=device)
    meta = backend.metadata
    if meta is not None and meta.num_classes != num_classes:
        raise DmlcsrError(f"{model_path} predicts {meta.num_classes} classes but the dataset has {num_classes}; "
                          "evaluate it on the dataset it was trained for")
    static = backend.inputs[0].shape[2:]
    size = input_size or (tuple(meta.preprocessing.input_size) if meta is not None else None)
    if size is None and all(isinstance(d, int) for d in static):
        size = tuple(static)
    return backend_network(backend), size or INPUT_SIZE


@click.command(epilog=EVAL_EXAMPLES, context_settings={"max_content_width": 100})
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("data", type=click.Path(file_okay=False))
@click.option("--split", default="test", show_default=True)
@click.option("--layout", default="auto", show_default=True,
              type=click.Choice(["auto", "list", "celebamask-hq", "lapa", "helen"]))
@click.option("--num-classes", type=int, help="Only for list layouts without label_names.txt.")
@input_size_option("Network input H,W (default: the artefact's own, else 473,473).", default=None)
@click.option("--batch-size", default=4, show_default=True)
@device_option("auto: CUDA when present, else CPU.")
@click.option("--official-center-truncation", is_flag=True,
              help="Reproduce test.py's int32 crop centres (odd-sized images shift half a pixel).")
@click.option("--workers", default=2, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the scores here.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def eval_main(model, data, split, layout, num_classes, input_size, batch_size, device, official_center_truncation,
              workers, json_path, quiet) -> None:
    """Score MODEL (.pth checkpoint, .onnx file or TensorRT engine) on DATA's split."""
    from dmlcsr.training.datasets import open_index
    from dmlcsr.training.evaluate import evaluate

    try:
        index = open_index(data, split, layout, num_classes)
        network, size = _open_network(Path(model), device, input_size,
                                      index.label_set.num_classes)
        scores = evaluate(network, index, size, batch_size, workers, official_center_truncation, not quiet)
    except DmlcsrError as exc:
        _fail(exc)
    click.echo(scores.table())
    centre = "int32-truncated (official test.py)" if official_center_truncation else "exact float"
    click.echo(f"{len(index)} images of {data} ({index.layout}, {split}) at {size[0]}x{size[1]}, {centre} centres")
    if json_path:
        payload = {"model": str(model), "data": str(data), "split": split, "images": len(index),
                   "input_size": list(size), "official_center_truncation": official_center_truncation,
                   **scores.as_dict()}
        Path(json_path).write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":  # torchrun -m dmlcsr.training.cli ... runs training
    train_main()
