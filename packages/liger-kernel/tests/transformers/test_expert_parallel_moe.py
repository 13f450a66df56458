"""LigerExpertParallelFusedMoe against the experts computed in one place: local
(no process group) and sharded over 2 CPU processes with gloo, outputs and the
gradients of the activations, combine weights and every expert shard.

The reference is a loop over the routed pairs in float64 with the contract's
math (:mod:`liger_kernel.ops.fused_moe`); float32 results match it within
1e-5 (the sums run in another order: by rank, then per token)."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from liger_kernel.transformers.moe import LigerExpertParallelFusedMoe

EXPERTS, HIDDEN, INTER, TOP_K, TOKENS = 4, 16, 8, 2, 6
TOL = dict(rtol=1e-5, atol=1e-5)


def _experts(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    gate = torch.randn(EXPERTS, INTER, HIDDEN, generator=g) / HIDDEN**0.5
    up = torch.randn(EXPERTS, INTER, HIDDEN, generator=g) / HIDDEN**0.5
    down = torch.randn(EXPERTS, HIDDEN, INTER, generator=g) / INTER**0.5
    return gate, up, down


def _tokens(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + seed)
    x = torch.randn(2, TOKENS // 2, HIDDEN, generator=g)
    index = torch.stack([torch.randperm(EXPERTS, generator=g)[:TOP_K] for _ in range(TOKENS)]).view(2, -1, TOP_K)
    weights = torch.rand(2, TOKENS // 2, TOP_K, generator=g)
    return x, index, weights


def _reference(x, index, weights, gate, up, down) -> torch.Tensor:
    x, weights = x.reshape(-1, HIDDEN).double(), weights.reshape(-1, TOP_K).double()
    gate, up, down = gate.double(), up.double(), down.double()
    out = torch.zeros_like(x)
    for t, experts in enumerate(index.reshape(-1, TOP_K).tolist()):
        for k, e in enumerate(experts):
            h = F.silu(gate[e] @ x[t]) * (up[e] @ x[t])
            out[t] = out[t] + weights[t, k] * (down[e] @ h)
    return out


def _leaves(*tensors: torch.Tensor) -> list[torch.Tensor]:
    return [t.clone().requires_grad_() for t in tensors]


def test_local_experts_match_the_contract():
    x, index, weights = _tokens(0)
    x, weights, gate, up, down = _leaves(x, weights, *_experts())
    out = LigerExpertParallelFusedMoe()(x, index, weights, gate, up, down, EXPERTS)
    assert out.shape == x.shape
    grad = torch.randn_like(out)
    out.backward(grad)
    ref_leaves = _leaves(x.detach(), weights.detach(), gate.detach(), up.detach(), down.detach())
    ref = _reference(ref_leaves[0], index, *ref_leaves[1:])
    ref.backward(grad.reshape(-1, HIDDEN).double())
    torch.testing.assert_close(out.reshape(-1, HIDDEN), ref.float(), **TOL)
    for got, want in zip((x, weights, gate, up, down), ref_leaves, strict=True):
        torch.testing.assert_close(got.grad, want.grad.float(), **TOL)


def test_bad_shards_and_expert_ids_raise():
    x, index, weights = _tokens(0)
    gate, up, down = _experts()
    moe = LigerExpertParallelFusedMoe()
    with pytest.raises(ValueError, match="num_experts=8"):
        moe(x, index, weights, gate, up, down, 8)
    with pytest.raises(ValueError, match="all_A has shape"):
        moe(x, index, weights, gate, up, down.transpose(1, 2), EXPERTS)
    with pytest.raises(ValueError, match="expert_indices"):
        moe(x, index[..., :1], weights, gate, up, down, EXPERTS)
    with pytest.raises(IndexError, match="expert id"):
        moe(x, index + EXPERTS, weights, gate, up, down, EXPERTS)


def _sharded(rank: int, world: int, store: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        gate, up, down = _experts()
        local = EXPERTS // world
        shard = slice(rank * local, (rank + 1) * local)
        x, index, weights = _tokens(rank)
        if rank == 1:  # this rank routes none of its tokens to rank 0's experts: an empty exchange
            index = index % local + local
        x, weights = _leaves(x, weights)
        shards = _leaves(gate[shard], up[shard], down[shard])
        out = LigerExpertParallelFusedMoe(dist.group.WORLD)(x, index, weights, *shards, EXPERTS)
        grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(7 + rank))
        out.backward(grad)
        result = {
            "out": out.detach(),
            "index": index,
            "grads": [t.grad for t in (x, weights, *shards)],
            "grad_out": grad,
        }
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_ranks_over_gloo_match_the_unsharded_experts(tmp_path):
    world = 2
    mp.spawn(_sharded, args=(world, str(tmp_path / "store"), str(tmp_path)), nprocs=world, join=True)
    got = {rank: torch.load(tmp_path / f"rank{rank}.pt") for rank in range(world)}

    gate, up, down = _leaves(*_experts())
    for rank in range(world):
        x, _, weights = _tokens(rank)
        x, weights = _leaves(x, weights)
        ref = _reference(x, got[rank]["index"], weights, gate, up, down)
        torch.testing.assert_close(got[rank]["out"].reshape(-1, HIDDEN), ref.float(), **TOL)
        ref.backward(got[rank]["grad_out"].reshape(-1, HIDDEN).double())
        torch.testing.assert_close(got[rank]["grads"][0], x.grad, **TOL)
        torch.testing.assert_close(got[rank]["grads"][1], weights.grad, **TOL)
    # each rank's expert gradients hold both ranks' tokens
    local = EXPERTS // world
    for rank in range(world):
        shard = slice(rank * local, (rank + 1) * local)
        for got_grad, full in zip(got[rank]["grads"][2:], (gate, up, down), strict=True):
            torch.testing.assert_close(got_grad, full.grad[shard].float(), **TOL)
