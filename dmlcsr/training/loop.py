"""The DML-CSR training loop: one process, or one per device under torchrun (DDP with
synchronized batch norm), with self-regulation cycles, evaluation and checkpoints.

Any model that maps an N x 3 x H x W batch to (parsing, binary edge, category edge)
logits at 1/4 resolution (DML_CSR's training build) can be trained: pass
``model_factory``; DML_CSR(num_classes, trained=True) is the default.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from dmlcsr.core import geometry
from dmlcsr.errors import DmlcsrError
from dmlcsr.networks.dml_csr import DML_CSR
from dmlcsr.training.augment import AugmentConfig
from dmlcsr.training.csr import CsrSchedule, ensemble_into, reestimate_batch_norm
from dmlcsr.training.datasets import open_index
from dmlcsr.training.evaluate import evaluate, torch_network
from dmlcsr.training.losses import DistillWeights, DmlCsrCriterion, LossWeights
from dmlcsr.training.metrics import ParsingScores
from dmlcsr.training.samples import TrainingSet
from dmlcsr.training.state import (
    load_initial_weights,
    load_training_state,
    save_deploy_checkpoint,
    save_training_state,
    unwrap,
)
from dmlcsr.training.sync_norm import convert_sync_norms

ModelFactory = Callable[[int], nn.Module]


@dataclass
class TrainConfig:
    """Everything a run depends on; the defaults are the paper's (batch = global batch)."""

    data: str
    out: str = "runs/dmlcsr"
    layout: str = "auto"
    train_split: str = "train"
    val_split: str = "test"
    num_classes: int | None = None
    input_size: tuple[int, int] = geometry.INPUT_SIZE
    batch_size: int = 28
    epochs: int = 200
    csr_start: int = 150
    cycle_epochs: int = 10
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    power: float = 0.9
    loss_weights: LossWeights = field(default_factory=LossWeights)
    distill_weights: DistillWeights = field(default_factory=DistillWeights)
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)
    workers: int = 2
    eval_every: int = 1
    eval_batch_size: int = 4
    seed: int = 1234
    init: str | None = None
    resume: str | None = None
    device: str = "auto"
    official_center_truncation: bool = False
    progress: bool = True


@dataclass
class TrainResult:
    """Where the run ended: per-epoch history (also in log.jsonl), the best checkpoint, and
    this process's final model and aggregate (unwrapped, on the training device)."""

    out: Path
    history: list[dict]
    best_score: float | None
    best_epoch: int | None
    best_source: str | None
    model: nn.Module
    aggregate: nn.Module


@dataclass
class Context:
    """This process's place in the run."""

    rank: int
    world: int
    local_rank: int
    device: torch.device
    owns_group: bool

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def default_model(num_classes: int) -> nn.Module:
    return DML_CSR(num_classes, trained=True)


def setup_context(device: str) -> Context:
    """Read torchrun's environment; start the process group if it is not running."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise DmlcsrError("--device cuda but torch sees no CUDA GPU; use --device cpu")
    torch_device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(torch_device)
        torch.backends.cudnn.benchmark = True
    owns = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    rank = dist.get_rank() if world > 1 else 0
    return Context(rank, world, local_rank, torch_device, owns)


def selection_score(scores: ParsingScores, label_set_name: str) -> float:
    """What picks best.pth, as officially: Helen's overall F1, else mean F1."""
    if label_set_name == "helen" and scores.overall_f1 is not None:
        return scores.overall_f1
    return scores.mean_f1


def train(config: TrainConfig, model_factory: ModelFactory | None = None) -> TrainResult:
    """Run (or resume) training as ``config`` says; rank 0 writes everything under config.out."""
    context = setup_context(config.device)
    try:
        return _Run(config, model_factory or default_model, context).run()
    finally:
        if context.owns_group:
            dist.destroy_process_group()


class _Run:
    """One training run's state, split into the steps the epoch loop takes."""

    def __init__(self, config: TrainConfig, factory: ModelFactory, context: Context) -> None:
        self.config = config
        self.context = context
        self.out = Path(config.out)
        self.train_index = open_index(config.data, config.train_split, config.layout, config.num_classes)
        self.val_index = open_index(config.data, config.val_split, config.layout, config.num_classes) \
            if config.eval_every else None
        self.label_set = self.train_index.label_set
        if config.batch_size % context.world:
            raise DmlcsrError(f"--batch-size {config.batch_size} (the global batch) does not split over "
                              f"{context.world} processes; use a multiple of {context.world}")
        self.schedule = CsrSchedule(config.epochs, config.csr_start, config.cycle_epochs, config.lr, config.power)
        torch.manual_seed(config.seed)
        num_classes = self.label_set.num_classes
        self.model = factory(num_classes)
        self.aggregate = factory(num_classes)
        self.start_epoch, self.cycle, self.best_score, self.best_epoch, self.best_source = 0, 0, None, None, None
        state = load_training_state(config.resume) if config.resume else None
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.aggregate.load_state_dict(state["aggregate"])
            self.start_epoch, self.cycle = int(state["epoch"]), int(state["cycle"])
            self.best_score, self.best_epoch = state.get("best_score"), state.get("best_epoch")
            self.best_source = state.get("best_source")
        elif config.init:
            count = load_initial_weights(self.model, config.init)
            self._say(f"initialised {count} tensors from {config.init}")
        if context.world > 1:
            convert_sync_norms(self.model)
            convert_sync_norms(self.aggregate)
        self.model.to(context.device)
        self.aggregate.to(context.device).eval()
        self.network = DistributedDataParallel(
            self.model, device_ids=[context.device.index] if context.device.type == "cuda" else None) \
            if context.world > 1 else self.model
        self.optimizer = torch.optim.SGD(self.network.parameters(), lr=config.lr, momentum=config.momentum,
                                         weight_decay=config.weight_decay)
        if state is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.criterion = DmlCsrCriterion(num_classes, config.loss_weights, config.distill_weights)
        self.dataset = TrainingSet(self.train_index, tuple(config.input_size), config.augmentation, config.seed)
        self.sampler = DistributedSampler(self.dataset, num_replicas=context.world, rank=context.rank,
                                          shuffle=True, seed=config.seed, drop_last=True)
        self.loader = DataLoader(self.dataset, batch_size=config.batch_size // context.world, sampler=self.sampler,
                                 num_workers=config.workers, drop_last=True,
                                 pin_memory=context.device.type == "cuda")
        if len(self.loader) == 0:
            raise DmlcsrError(f"{len(self.dataset)} training images make no batch of {config.batch_size}; "
                              "lower --batch-size")
        self.history: list[dict] = []

    def _say(self, message: str) -> None:
        if self.context.main and self.config.progress:
            tqdm.write(message)

    def run(self) -> TrainResult:
        if self.context.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(asdict(self.config), indent=2, default=str))
        for epoch in range(self.start_epoch, self.config.epochs):
            started = time.perf_counter()
            record = {"epoch": epoch + 1, "cycle": self.cycle, "loss": self._train_epoch(epoch)}
            record["train_seconds"] = time.perf_counter() - started
            if self._evaluates(epoch):
                record["scores"] = self._score(self.network, epoch, "model")
            if self.schedule.aggregates_after(epoch):
                record["aggregate_scores"] = self._self_regulate(epoch)
                record["aggregate"] = self.cycle
            if self.val_index is None and self.context.main:
                self._save_best(self.aggregate if self.cycle else self.network, None, epoch, "final")
            self._save_state(epoch)
            self.context.barrier()
            self.history.append(record)
            if self.context.main:
                with open(self.out / "log.jsonl", "a") as log:
                    log.write(json.dumps(record) + "\n")
                self._say(_epoch_line(record))
        return TrainResult(self.out, self.history, self.best_score, self.best_epoch, self.best_source,
                           unwrap(self.network), self.aggregate)

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)
        self.network.train()
        device = self.context.device
        steps = len(self.loader)
        teacher = self.aggregate if self.cycle else None
        sums: dict[str, torch.Tensor] = {}
        bar = tqdm(self.loader, desc=f"epoch {epoch + 1}/{self.config.epochs}", unit="step", leave=False,
                   disable=not (self.context.main and self.config.progress))
        for step, (images, labels, binary, category) in enumerate(bar):
            lr = self.schedule.learning_rate(epoch, step, steps)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            images = images.to(device, non_blocking=True)
            labels, binary, category = (t.to(device, non_blocking=True) for t in (labels, binary, category))
            preds = self.network(images)
            soft = None
            if teacher is not None:
                with torch.no_grad():
                    soft = teacher(images)
            loss, terms = self.criterion(preds, labels, binary, category, soft, self.cycle)
            if not torch.isfinite(loss):
                raise DmlcsrError(f"the loss became {float(loss)} at epoch {epoch + 1} step {step + 1}; "
                                  "lower --lr or check the labels")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            for name, value in {"total": loss.detach(), **terms}.items():
                sums[name] = sums.get(name, 0.0) + value
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}", lr=f"{lr:.2e}")
        names = sorted(sums)
        means = torch.stack([sums[n] for n in names]).float() / steps
        if self.context.world > 1:
            dist.all_reduce(means)
            means /= self.context.world
        return {n: float(v) for n, v in zip(names, means.tolist(), strict=True)}

    def _evaluates(self, epoch: int) -> bool:
        every = self.config.eval_every
        return bool(every) and ((epoch + 1) % every == 0 or epoch + 1 == self.config.epochs)

    def _score(self, model: nn.Module, epoch: int, source: str) -> dict | None:
        """Rank 0 scores ``model`` on the validation split and keeps best.pth up to date."""
        if not self.context.main or self.val_index is None:
            return None
        scores = evaluate(torch_network(unwrap(model), self.context.device), self.val_index,
                          tuple(self.config.input_size), self.config.eval_batch_size, self.config.workers,
                          self.config.official_center_truncation, self.config.progress)
        self._save_best(model, selection_score(scores, self.label_set.name), epoch, source)
        return scores.as_dict()

    def _save_best(self, model: nn.Module, score: float | None, epoch: int, source: str) -> None:
        """Keep the best-scoring weights; without a score (no validation) the latest ones."""
        if score is not None and math.isnan(score):
            score = -math.inf
        if score is None or self.best_score is None or score > self.best_score:
            save_deploy_checkpoint(model, self.out / "best.pth")
            self.best_score, self.best_epoch, self.best_source = score, epoch + 1, source

    def _self_regulate(self, epoch: int) -> dict | None:
        """End of a cycle: Eq. 6 ensemble, batch-norm re-estimation, score the aggregate."""
        ensemble_into(self.aggregate, unwrap(self.network), self.cycle)
        self.cycle += 1
        device = self.context.device
        bar = tqdm(self.loader, desc=f"re-estimating batch norm (cycle {self.cycle})", unit="step", leave=False,
                   disable=not (self.context.main and self.config.progress))
        reestimate_batch_norm(self.aggregate, (batch[0].to(device, non_blocking=True) for batch in bar))
        return self._score(self.aggregate, epoch, f"aggregate {self.cycle}")

    def _save_state(self, epoch: int) -> None:
        if not self.context.main:
            return
        save_training_state(
            self.out / "last.pth", epoch=epoch + 1, cycle=self.cycle, model=unwrap(self.network).state_dict(),
            aggregate=self.aggregate.state_dict(), optimizer=self.optimizer.state_dict(),
            best_score=self.best_score, best_epoch=self.best_epoch, best_source=self.best_source)


def _epoch_line(record: dict) -> str:
    loss = record["loss"]
    parts = [f"epoch {record['epoch']}", f"loss {loss['total']:.4f}", f"{record['train_seconds']:.1f}s"]
    for key in ("scores", "aggregate_scores"):
        scores = record.get(key)
        if scores:
            label = "model" if key == "scores" else f"aggregate {record['aggregate']}"
            parts.append(f"{label}: mIoU {100 * scores['mean_iou']:.2f} mean F1 {100 * scores['mean_f1']:.2f}")
    return " | ".join(parts)

