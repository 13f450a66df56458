"""A patched Llama under FSDP2 (``torch.distributed.fsdp.fully_shard``) on N
devices against 1 device, with the same global batch: per-step losses,
tokens/s and peak memory per device, stock Transformers vs this project.

    python tools/fsdp2.py                      # 1 vs 2 GPUs (NCCL), bf16
    python tools/fsdp2.py --device cpu         # 1 vs 2 processes (gloo), fp32, tiny
    python tools/fsdp2.py --impls liger --world-sizes 1,2,4 --steps 20

Each (impl, world size) runs in fresh processes (patching changes
Transformers' classes for the whole process). Every rank takes its shard of
the global batch (rows rank, rank + N, ...), every row keeps all its labels,
so the mean of the ranks' mean losses is the loss of the global batch and the
N-device run must follow the 1-device run step by step; FSDP2 averages the
gradients. The check passes when every step's loss is within ``--rtol`` of
the 1-device run of the same impl (bf16: reductions in another order round
differently). NCCL's NVLink multicast (NVLS) is left off.

Results: a table on stdout, ``fsdp2.json`` in ``--out``; exit status 1 when a
loss check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from bench.train import build_model  # tools/ is this script's folder, so first on sys.path

SIZES = {
    # hidden, layers, heads, kv_heads, intermediate, vocab, seq
    "cuda": dict(hidden=1024, layers=8, heads=16, kv_heads=4, inter=4096, vocab=32000, seq=1024),
    "cpu": dict(hidden=64, layers=2, heads=4, kv_heads=2, inter=128, vocab=256, seq=32),
}


def global_batch(step: int, rows: int, dims: dict[str, int]) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1000 + step)
    return torch.randint(0, dims["vocab"], (rows, dims["seq"]), generator=generator)


def worker(rank: int, world_size: int, port: int, job: dict[str, Any], out: str) -> None:
    device_type = job["device"]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), NCCL_NVLS_ENABLE="0")
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, rank=rank, world_size=world_size)
    try:
        record = train(rank, world_size, job)
        if rank == 0:
            Path(out).write_text(json.dumps(record))
    finally:
        dist.destroy_process_group()


def train(rank: int, world_size: int, job: dict[str, Any]) -> dict[str, Any]:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    device_type = job["device"]
    device = torch.device(device_type, rank) if device_type == "cuda" else torch.device("cpu")
    torch.set_num_threads(1 if device_type == "cpu" else torch.get_num_threads())
    if job["impl"] == "liger":
        from liger_kernel.transformers import apply_liger_kernel_to_llama

        apply_liger_kernel_to_llama()
    dims = SIZES[device_type]
    torch.manual_seed(0)  # every rank and every world size starts from the same weights
    # the benchmark's Llama (tools/bench/train.py), in fp32: FSDP2's policy casts to bf16 on GPUs
    model = build_model(dims, device, torch.float32)
    # a patched run that patched nothing would pass the loss check vacuously
    patched = sum(type(m).__module__.startswith("liger_kernel") for m in model.modules())
    mesh = init_device_mesh(device_type, (world_size,))
    # bf16 compute with fp32 gradient reduction on GPUs; fp32 on the CPU
    precision = (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        if device_type == "cuda"
        else MixedPrecisionPolicy()
    )
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh, mp_policy=precision)
    fully_shard(model, mesh=mesh, mp_policy=precision)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rows = job["global_batch"]
    losses, times = [], []
    if device_type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step in range(job["steps"]):
        ids = global_batch(step, rows, dims)[rank::world_size].to(device)
        if device_type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        mean = loss.detach().float()
        dist.all_reduce(mean)
        losses.append(mean.item() / world_size)
        times.append(time.perf_counter() - start)
    timed = times[1:] or times  # the first step warms up (allocations, autotuning)
    return {
        "impl": job["impl"],
        "world_size": world_size,
        "liger_modules": patched,
        "losses": losses,
        "tokens_per_s": rows * dims["seq"] * len(timed) / sum(timed),
        "peak_mib_per_device": torch.cuda.max_memory_allocated(device) / 2**20 if device_type == "cuda" else None,
        "dims": dims,
        "global_batch": rows,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(job: dict[str, Any], world_size: int, out_dir: Path) -> dict[str, Any]:
    out = out_dir / f"{job['impl']}-{world_size}.json"
    mp.spawn(worker, args=(world_size, _free_port(), job, str(out)), nprocs=world_size, join=True)
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tools/fsdp2.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--impls", default="torch,liger", help="comma-separated: torch (stock), liger (patched)")
    p.add_argument("--world-sizes", default="1,2", help="comma-separated; the first is the reference")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--global-batch", type=int, default=8, help="rows per step over all ranks")
    p.add_argument("--rtol", type=float, help="loss tolerance (default 2e-2 on cuda/bf16, 1e-4 on cpu/fp32)")
    p.add_argument("--out", type=Path, default=Path("bench-results/fsdp2"))
    args = p.parse_args(argv)
    impls = [i for i in args.impls.split(",") if i]
    sizes = [int(n) for n in args.world_sizes.split(",") if n]
    bad = [i for i in impls if i not in ("torch", "liger")]
    if bad:
        p.error(f"unknown impls {bad}; choose from torch, liger")
    if args.device == "cuda" and max(sizes) > torch.cuda.device_count():
        p.error(f"--world-sizes {args.world_sizes} needs {max(sizes)} GPUs; {torch.cuda.device_count()} visible")
    if any(args.global_batch % n for n in sizes):
        p.error(f"--global-batch {args.global_batch} must divide among every world size {sizes}")
    rtol = args.rtol if args.rtol is not None else (2e-2 if args.device == "cuda" else 1e-4)
    args.out.mkdir(parents=True, exist_ok=True)
    job = {"device": args.device, "steps": args.steps, "global_batch": args.global_batch}
    records = [run({**job, "impl": impl}, n, args.out) for impl in impls for n in sizes]
    failures = []
    print(f"FSDP2, {args.device}, global batch {args.global_batch} x {records[0]['dims']['seq']}, {args.steps} steps")
    print(f"{'impl':6} {'devices':>7} {'tokens/s':>10} {'peak MiB/dev':>12} {'max rel diff':>12}  losses")
    for r in records:
        if (r["impl"] == "liger") != (r["liger_modules"] > 0):
            failures.append(
                f"{r['impl']} on {r['world_size']}: {r['liger_modules']} modules of this project in the model"
            )
        reference = next(x for x in records if x["impl"] == r["impl"] and x["world_size"] == sizes[0])
        diff = max(abs(a - b) / abs(b) for a, b in zip(r["losses"], reference["losses"], strict=True))
        r["max_rel_diff_vs_first_world_size"] = diff
        if diff > rtol:
            failures.append(f"{r['impl']} on {r['world_size']}: loss differs by {diff:.2e} > {rtol:.0e}")
        peak = "n/a" if r["peak_mib_per_device"] is None else f"{r['peak_mib_per_device']:.0f}"
        losses = " ".join(f"{x:.4f}" for x in r["losses"])
        print(f"{r['impl']:6} {r['world_size']:>7} {r['tokens_per_s']:>10.0f} {peak:>12} {diff:>12.2e}  {losses}")
    (args.out / "fsdp2.json").write_text(json.dumps({"records": records, "rtol": rtol, "failures": failures}, indent=1))
    for failure in failures:
        print("FAIL:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
