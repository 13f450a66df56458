"""Expert-parallel MoE experts: the ``fused_moe`` op with the experts sharded over a process group.

:class:`LigerExpertParallelFusedMoe` holds no weights: the caller passes the
activations, the router's choice and this rank's shard of the experts to
``forward``, in the layout of separate gate, up and down projections
(``all_B`` the gates (E_local, I, H), ``all_C`` the ups (E_local, I, H),
``all_A`` the downs (E_local, H, I)). ``num_experts`` counts the experts of
the whole group, and rank ``r`` of the group holds experts ``r * E_local`` to
``(r + 1) * E_local - 1``. The math is :mod:`liger_kernel.ops.fused_moe`'s with
``gate_up_proj = cat(all_B, all_C)`` over the group's experts.

With ``process_group=None`` (or a group of one) every expert is local and the
forward is the op itself. Otherwise each routed (token, expert) pair is sent
to the rank that holds its expert, computed there by the op (one expert per
row, its combine weight applied), sent back, and summed per token; the two
exchanges are ``all_to_all_single`` with autograd, so the backward exchanges
the gradients the same way and each rank's expert gradients hold every rank's
tokens. Sizing the exchanges needs the per-rank pair counts on the host: one
host synchronisation per forward (and an exchange of the counts), which
expert parallelism without a fixed capacity cannot avoid. Every rank must
call forward (and backward) together, as with any collective.

Its interface is liger-kernel 0.8.5's; there the op ran on NVSHMEM through a
separate native package, here on any backend of the ``fused_moe`` op and any
``torch.distributed`` backend with all-to-all (NCCL, gloo on the CPU).
Weights may be any float dtype the op takes (0.8.5 required bf16); the gate
and up shards are concatenated once per forward, a copy of the local
(E_local, 2I, H) weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from liger_kernel.ops._contract import require_indices_in_range
from liger_kernel.ops.fused_moe import LigerFusedMoEFunction

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup

__all__ = ["LigerExpertParallelFusedMoe"]


class LigerExpertParallelFusedMoe(nn.Module):
    """The experts of an MoE layer, sharded over ``process_group`` (see the module docstring)."""

    def __init__(self, process_group: ProcessGroup | None = None) -> None:
        super().__init__()
        self.process_group = process_group

    def forward(
        self,
        hidden_states: torch.Tensor,
        expert_indices: torch.Tensor,
        expert_weights: torch.Tensor,
        all_B: torch.Tensor,
        all_C: torch.Tensor,
        all_A: torch.Tensor,
        num_experts: int,
    ) -> torch.Tensor:
        """``(..., H)`` activations, ``(..., K)`` expert ids and combine weights,
        this rank's gate, up and down shards; returns ``(..., H)``."""
        ranks = _group_size(self.process_group)
        local = _check(hidden_states, expert_indices, expert_weights, all_B, all_C, all_A, num_experts, ranks)
        hidden = hidden_states.shape[-1]
        top_k = expert_indices.shape[-1]
        x = hidden_states.reshape(-1, hidden)
        index = expert_indices.reshape(-1, top_k)
        weights = expert_weights.reshape(-1, top_k)
        gate_up = torch.cat((all_B, all_C), dim=1)
        if ranks == 1:
            out = LigerFusedMoEFunction.apply(x, gate_up, all_A, index, weights)
        else:
            out = _expert_parallel(x, index, weights, gate_up, all_A, local, ranks, self.process_group)
        return out.reshape(hidden_states.shape)


def _group_size(group: ProcessGroup | None) -> int:
    if group is None:
        return 1
    import torch.distributed as dist

    return dist.get_world_size(group)


def _check(
    hidden_states: torch.Tensor,
    expert_indices: torch.Tensor,
    expert_weights: torch.Tensor,
    all_B: torch.Tensor,
    all_C: torch.Tensor,
    all_A: torch.Tensor,
    num_experts: int,
    ranks: int,
) -> int:
    """This rank's expert count, after the checks the op cannot make (it sees one shard)."""
    if all_B.dim() != 3 or all_C.shape != all_B.shape:
        raise ValueError(
            f"all_B and all_C must both be (local experts, intermediate, hidden), got {tuple(all_B.shape)} and "
            f"{tuple(all_C.shape)}"
        )
    local, intermediate, hidden = all_B.shape
    if tuple(all_A.shape) != (local, hidden, intermediate):
        raise ValueError(f"all_A has shape {tuple(all_A.shape)}; with all_B {tuple(all_B.shape)} it must be "
                         f"{(local, hidden, intermediate)}")  # fmt: skip
    if hidden_states.shape[-1] != hidden:
        raise ValueError(f"hidden_states has hidden size {hidden_states.shape[-1]} but the experts take {hidden}")
    if expert_indices.shape[:-1] != hidden_states.shape[:-1] or expert_weights.shape != expert_indices.shape:
        raise ValueError(
            f"expert_indices {tuple(expert_indices.shape)} and expert_weights {tuple(expert_weights.shape)} must "
            f"both be hidden_states' leading dimensions {tuple(hidden_states.shape[:-1])} plus top_k"
        )
    if num_experts != local * ranks:
        raise ValueError(
            f"num_experts={num_experts} but the group's {ranks} rank(s) hold {local} experts each ({local * ranks})"
        )
    require_indices_in_range("expert_indices", expert_indices, num_experts, "an expert id")
    return local


def _expert_parallel(
    x: torch.Tensor,
    index: torch.Tensor,
    weights: torch.Tensor,
    gate_up: torch.Tensor,
    down: torch.Tensor,
    local: int,
    ranks: int,
    group: ProcessGroup,
) -> torch.Tensor:
    import torch.distributed as dist

    top_k = index.shape[1]
    expert = index.reshape(-1).long()
    owner = torch.div(expert, local, rounding_mode="floor")
    # the pairs grouped by the rank that holds their expert, in token order within each rank
    order = torch.sort(owner, stable=True).indices
    send_counts = torch.bincount(owner, minlength=ranks)
    recv_counts = torch.empty_like(send_counts)
    dist.all_to_all_single(recv_counts, send_counts, group=group)
    send, recv = send_counts.tolist(), recv_counts.tolist()  # the one host synchronisation
    token = torch.div(order, top_k, rounding_mode="floor")

    def exchange(values: torch.Tensor, out_splits: list[int], in_splits: list[int]) -> torch.Tensor:
        if values.requires_grad:
            return _AllToAll.apply(values, out_splits, in_splits, group)
        return _all_to_all(values, out_splits, in_splits, group)

    x_recv = exchange(x[token], recv, send)
    expert_recv = exchange(expert[order] - owner[order] * local, recv, send)
    weights_recv = exchange(weights.reshape(-1)[order], recv, send)
    # one expert per received row (this rank's id of it), its combine weight applied here
    y_recv = LigerFusedMoEFunction.apply(x_recv, gate_up, down, expert_recv.unsqueeze(1), weights_recv.unsqueeze(1))
    y_back = exchange(y_recv, send, recv)
    return torch.zeros_like(x).index_add(0, token, y_back)


def _all_to_all(values: torch.Tensor, out_splits: list[int], in_splits: list[int], group: ProcessGroup) -> torch.Tensor:
    import torch.distributed as dist

    out = values.new_empty((sum(out_splits), *values.shape[1:]))
    dist.all_to_all_single(out, values.contiguous(), out_splits, in_splits, group=group)
    return out


class _AllToAll(torch.autograd.Function):
    """``all_to_all_single`` whose backward sends the gradients back along the same routes."""

    @staticmethod
    def forward(
        ctx: Any, values: torch.Tensor, out_splits: list[int], in_splits: list[int], group: ProcessGroup
    ) -> torch.Tensor:
        ctx.routes = (out_splits, in_splits, group)
        return _all_to_all(values, out_splits, in_splits, group)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        out_splits, in_splits, group = ctx.routes
        return _all_to_all(grad, in_splits, out_splits, group), None, None, None
