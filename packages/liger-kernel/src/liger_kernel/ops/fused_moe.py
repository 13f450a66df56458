"""Mixture-of-experts SwiGLU experts over the routed tokens.

For T tokens x (T, H), E experts with weights gate_up_proj (E, 2I, H) (the
gate's I rows first, then the up projection's) and down_proj (E, H, I), and
each token's K routed experts top_k_index (T, K) with weights top_k_weights
(T, K):

    [g; u] = gate_up_proj[e] @ x[t]                      (e = top_k_index[t, k])
    h      = silu(g) * u                                   (I values)
    y[t]   = sum_k top_k_weights[t, k] * down_proj[e] @ h

Gradients reach x, gate_up_proj, down_proj and top_k_weights (the router's
weights); the routing indices take none. With gl = dL/dh = w * down_proj[e]^T dy
and s = sigmoid(g), the gate's backward is the SwiGLU one (:mod:`.swiglu`):
dg = gl * u * s * (1 + g * (1 - s)), du = gl * silu(g), and
dL/dw[t, k] = dy[t] . (down_proj[e] @ h).

Products accumulate in fp32 (fp64 for fp64 inputs); h and the per-(token,
expert) products are rounded to the input dtype before the next product, as
the same computation in PyTorch ops rounds them. Only the routed pairs are
computed: work and saved memory grow with T * K, not with E. The weights may
be any strided views (a transposed layout passes ``gate_up_proj.transpose(1,
2)``); their gradients have the weights' shapes and strides.

This is the experts computation of Transformers' fused experts modules
(Mixtral, Qwen3-MoE, DeepSeek, ...): ``<Model>Experts.forward(hidden_states,
top_k_index, top_k_weights)`` for a SiLU gate in the concatenated layout.
"""

from __future__ import annotations

import torch

from liger_kernel.ops._contract import (
    FLOAT_DTYPES,
    INDEX_DTYPES,
    DispatchedFunction,
    require_indices_in_range,
    require_same_device,
    require_tensor,
)


def check_experts(
    x: torch.Tensor,
    gate_up_proj: torch.Tensor,
    down_proj: torch.Tensor,
    top_k_index: torch.Tensor,
    top_k_weights: torch.Tensor,
) -> None:
    tensors = {
        "x": x,
        "gate_up_proj": gate_up_proj,
        "down_proj": down_proj,
        "top_k_index": top_k_index,
        "top_k_weights": top_k_weights,
    }
    for name, value in tensors.items():
        require_tensor(name, value, INDEX_DTYPES if name == "top_k_index" else FLOAT_DTYPES)
    require_same_device("x", tensors)
    if x.dim() != 2:
        raise ValueError(f"x must be (tokens, hidden), got shape {tuple(x.shape)}")
    if gate_up_proj.dim() != 3 or down_proj.dim() != 3:
        raise ValueError(
            "gate_up_proj must be (experts, 2 * intermediate, hidden) and down_proj (experts, hidden, "
            f"intermediate), got {tuple(gate_up_proj.shape)} and {tuple(down_proj.shape)}"
        )
    experts, hidden = down_proj.shape[0], x.shape[1]
    intermediate = down_proj.shape[2]
    if tuple(gate_up_proj.shape) != (experts, 2 * intermediate, hidden):
        raise ValueError(
            f"gate_up_proj has shape {tuple(gate_up_proj.shape)}; with down_proj {tuple(down_proj.shape)} and "
            f"x {tuple(x.shape)} it must be {(experts, 2 * intermediate, hidden)}"
        )
    if down_proj.shape[1] != hidden:
        raise ValueError(f"down_proj has hidden size {down_proj.shape[1]} but x has {hidden}")
    if intermediate == 0 or hidden == 0 or experts == 0:
        raise ValueError("experts, hidden and intermediate sizes must be positive")
    for name in ("gate_up_proj", "down_proj"):
        if tensors[name].dtype != x.dtype:
            raise TypeError(f"{name} has dtype {tensors[name].dtype} but x has {x.dtype}; cast one of them")
    if top_k_index.dim() != 2 or top_k_index.shape[0] != x.shape[0]:
        raise ValueError(f"top_k_index must be (tokens, top_k) = ({x.shape[0]}, K), got {tuple(top_k_index.shape)}")
    if top_k_index.shape[1] == 0:
        raise ValueError("top_k_index routes each token to no expert (top_k is 0)")
    if tuple(top_k_weights.shape) != tuple(top_k_index.shape):
        raise ValueError(
            f"top_k_weights has shape {tuple(top_k_weights.shape)} but top_k_index has {tuple(top_k_index.shape)}"
        )
    require_indices_in_range("top_k_index", top_k_index, experts, "an expert id")


class LigerFusedMoEFunction(DispatchedFunction):
    op = "fused_moe"
    backward_reads = ("x", "gate_up_proj", "down_proj", "top_k_index", "top_k_weights")

    @staticmethod
    def outputs(x, gate_up_proj, down_proj, top_k_index, top_k_weights):
        return ((x.shape, x.dtype),)

    @staticmethod
    def check(
        x: torch.Tensor,
        gate_up_proj: torch.Tensor,
        down_proj: torch.Tensor,
        top_k_index: torch.Tensor,
        top_k_weights: torch.Tensor,
    ) -> None:
        check_experts(x, gate_up_proj, down_proj, top_k_index, top_k_weights)
