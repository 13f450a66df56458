"""Training loop shared by the single-process and the 2-process DDP runs of
test_distributed.py (a module of its own so spawned processes can import it)."""

from __future__ import annotations

import json
import os

import torch
import torch.distributed as dist
from tiny_models import batch, build

STEPS = 3
ROWS = 4


def _batch(step: int) -> dict[str, torch.Tensor]:
    data = batch(seed=step, rows=ROWS, device="cpu")
    # every row keeps the same number of labels, so the mean of the shards'
    # mean losses is the mean loss of the whole batch
    data["labels"] = data["input_ids"].clone()
    return data


def train(rank: int = 0, world_size: int = 1) -> list[float]:
    from liger_kernel.transformers import apply_liger_kernel_to_llama

    torch.set_num_threads(1)
    model = build("llama", device="cpu")
    apply_liger_kernel_to_llama(model=model)
    if world_size > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for step in range(STEPS):
        data = {key: value[rank::world_size] for key, value in _batch(step).items()}
        optimizer.zero_grad()
        loss = model(**data).loss
        loss.backward()
        optimizer.step()
        mean = loss.detach().clone()
        if world_size > 1:
            dist.all_reduce(mean)
            mean /= world_size
        losses.append(mean.item())
    return losses


def ddp_main(rank: int, world_size: int, port: int, out_path: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        losses = train(rank, world_size)
        if rank == 0:
            with open(out_path, "w") as handle:
                json.dump(losses, handle)
    finally:
        dist.destroy_process_group()
