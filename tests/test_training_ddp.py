"""Two-process training on CPU (gloo): synchronized norms equal one process's full-batch
norms, and DDP training with self-regulation leaves identical weights on both ranks."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from support.training import TinyParser, write_synthetic_faces
from torch import nn

from dmlcsr.networks.abn import InPlaceABN
from dmlcsr.training.loop import TrainConfig, train
from dmlcsr.training.sync_norm import SyncBatchNorm1d, SyncInPlaceABN, convert_sync_norms

WORLD = 2


class _Norms(nn.Module):
    """An InPlaceABN with a negative weight (so |weight| + eps matters) and a BatchNorm1d."""

    def __init__(self) -> None:
        super().__init__()
        self.abn = InPlaceABN(3)
        self.bn1d = nn.BatchNorm1d(3)
        with torch.no_grad():
            self.abn.weight.copy_(torch.tensor([-0.5, 1.0, 2.0]))
            self.abn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))

    def forward(self, x):
        return self.bn1d(self.abn(x).flatten(2))


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(4, 3, 5, 6, generator=generator) * 2 + 1, torch.randn(4, 3, 30, generator=generator)


def _sync_norm_half(rank: int) -> dict:
    """A synchronized _Norms on this rank's half of the batch: outputs, gradients, statistics."""
    x, weights = _inputs()
    synced = convert_sync_norms(_Norms()).train()
    assert isinstance(synced.abn, SyncInPlaceABN) and isinstance(synced.bn1d, SyncBatchNorm1d)
    rows = slice(rank * 2, rank * 2 + 2)
    mine = x[rows].clone().requires_grad_(True)
    out = synced(mine)
    (out * weights[rows]).sum().backward()
    grads = {n: p.grad.clone() for n, p in synced.named_parameters()}
    for grad in grads.values():
        dist.all_reduce(grad)  # the whole batch's parameter gradient is the sum over ranks
    return {"out": out.detach(), "input_grad": mine.grad, "param_grads": grads,
            "buffers": dict(synced.named_buffers())}


def _worker(rank: int, port: int, data: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        sync = _sync_norm_half(rank)
        # global batch 4 = 2 per rank, 2 steps an epoch; epoch 1 ends in a cycle (ensemble +
        # synchronized batch-norm re-estimation), epoch 2 self-distils from the aggregate
        config = TrainConfig(data=data, out=out, input_size=(49, 49), batch_size=4, epochs=2, csr_start=1,
                             cycle_epochs=1, lr=0.02, workers=0, eval_every=0, progress=False)
        result = train(config, TinyParser)
        torch.save({"sync": sync, "model": result.model.state_dict(), "aggregate": result.aggregate.state_dict(),
                    "history": result.history}, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    data = write_synthetic_faces(tmp_path_factory.mktemp("faces"), {"train": 8}, size=48)
    out = tmp_path_factory.mktemp("ddp")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(port, str(data), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)], out


def test_sync_norms_equal_one_process_full_batch(ranks):
    results, _ = ranks
    x, weights = _inputs()
    reference = _Norms().train()
    full = x.clone().requires_grad_(True)
    out = reference(full)
    (out * weights).sum().backward()
    for rank, result in enumerate(results):
        rows = slice(rank * 2, rank * 2 + 2)
        sync = result["sync"]
        torch.testing.assert_close(sync["out"], out.detach()[rows], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(sync["input_grad"], full.grad[rows], rtol=1e-4, atol=1e-5)
        for name, param in reference.named_parameters():
            torch.testing.assert_close(sync["param_grads"][name], param.grad, rtol=1e-4, atol=1e-5)
        for name, buffer in reference.named_buffers():
            torch.testing.assert_close(sync["buffers"][name], buffer, rtol=1e-5, atol=1e-6)


def test_ranks_end_with_identical_weights_and_statistics(ranks):
    results, out = ranks
    first, second = results
    for part in ("model", "aggregate"):
        assert first[part].keys() == second[part].keys()
        for key, value in first[part].items():
            assert torch.equal(value, second[part][key]), f"{part}.{key} differs between ranks"
    assert first["history"][1]["cycle"] == 1 and first["history"][1]["aggregate"] == 2
    assert [r["loss"] for r in first["history"]] == [r["loss"] for r in second["history"]]  # all-reduced
    saved = torch.load(out / "last.pth")["model"]
    assert all(torch.equal(v, first["model"][k]) for k, v in saved.items())
    torch.manual_seed(1234)  # the loop's seed: the weights every rank started from
    fresh = TinyParser(6).state_dict()
    assert any(not torch.equal(v, fresh[k]) for k, v in first["model"].items() if v.is_floating_point())
