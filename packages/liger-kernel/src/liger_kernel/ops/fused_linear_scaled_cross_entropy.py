"""The LM head fused with a temperature-scaled, per-token cross-entropy (an RL policy's log-likelihood).

For row i of ``_input`` (M, H), the vocabulary projection ``weight`` (V, H),
target t_i and temperature T:
    z        = (_input_i @ weight.T) / T                 (V,), never held for all rows
    lse      = log(sum_j exp(z_j));  logp = z - lse
    nll_i    = -logp[t_i]
    entropy_i = -sum_j p_j * logp_j = lse - sum_j p_j * z_j      (p = softmax(z))
    selected_i = logp[selected_token_ids]                      (K,), ids in order, repeats kept
Every output is per token and nothing is reduced (compose the reduction in
PyTorch: its per-token gradient is what backward takes). Rows whose target is
``ignore_index`` give 0 in every output and no gradient. A target (or a
selected id) outside [0, V) is an error (IndexError) where it can be checked
without a host synchronization, else a NaN row.

Outputs: ``nll`` (M,) and, with ``return_entropy``, ``entropy`` (M,), both
float32 (float64 for float64 inputs); with ``selected_token_ids`` (K,) int64,
``selected`` (M, K) float32. 0.8.5 returns them as ``nll``, ``(nll, entropy)``,
``(nll, selected)`` or ``(nll, entropy, selected)``, and so does ``apply``
here. (0.8.5's single-device path returns the entropy in the input dtype and
its tensor-parallel path in float32; here it is float32 on both, never rounded
to the input dtype.)

Backward, with g_nll, g_H and g_k the incoming gradients of row i:
    dz_j = g_nll * (p_j - [j == t]) + g_H * p_j * (lse - entropy - z_j)
           + sum_k g_k * ([j == s_k] - p_j)
    d_input = (dz / T) @ weight;  d_weight = (dz / T).T @ _input
d_weight is accumulated in the weight's dtype, as the fused linear
cross-entropy's default ``accum_dtype=None``. ``_input`` and ``weight`` must
share one floating dtype; the GEMMs run in it, the softmax in float32.

Tensor parallelism (:class:`LigerFusedLinearScaledCrossEntropyTPFunction`):
``weight`` is the calling rank's contiguous shard of V_local rows of the
projection (every rank's shard equally sized, rank r holding rows
[r * V_local, (r + 1) * V_local)), ``_input`` and ``target`` (global indices)
are the same on every rank, and the results are those of the unsharded
projection of W * V_local rows: the per-row max is all-reduced, then the
sum-exp, target logit and entropy sums (two all-reduces per call). Backward
returns the input gradient summed over the group and each rank's gradient of
its own shard. ``tp_group`` None means the default group; torch.distributed
must be initialized. Those calls never go through the ``liger::`` operator (a
process group cannot cross a PyTorch operator): under ``torch.compile`` they
run eagerly, as a graph break.

0.8.5's kernel-tiling knobs are accepted and checked, and change nothing:
each backend sizes its chunks from its device profile. They are
``m_tiles_per_cluster`` (an int >= 1) and ``tiles_per_reduce`` (1, 2 or 4).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from liger_kernel.ops._contract import (
    FLOAT_DTYPES,
    INDEX_DTYPES,
    DispatchedFunction,
    require_indices_in_range,
    require_int,
    require_ndim,
    require_real,
    require_same_device,
    require_shape,
    require_tensor,
)
from liger_kernel.ops.cross_entropy import loss_dtype
from liger_kernel.ops.vocab_parallel_cross_entropy import sharded_call

#: 0.8.5's accepted values of ``tiles_per_reduce``
TILES_PER_REDUCE = (1, 2, 4)


def _as_outputs(nll: torch.Tensor, entropy: torch.Tensor | None, selected: torch.Tensor | None) -> Any:
    """0.8.5's return: nll alone, or a tuple of the outputs the call asked for, in order."""
    outputs = tuple(t for t in (nll, entropy, selected) if t is not None)
    return outputs[0] if len(outputs) == 1 else outputs


def _check_common(
    _input: Any, weight: Any, target: Any, temperature: Any, ignore_index: Any, return_entropy: Any, classes: int
) -> None:
    require_tensor("_input", _input, FLOAT_DTYPES)
    require_tensor("weight", weight, FLOAT_DTYPES)
    require_ndim("_input", _input, (2,))
    require_ndim("weight", weight, (2,))
    if weight.shape[1] != _input.shape[1]:
        raise ValueError(
            f"weight has shape {tuple(weight.shape)}; expected (vocab, {_input.shape[1]}) to match _input's hidden size"
        )
    if weight.shape[0] == 0:
        raise ValueError(f"weight has shape {tuple(weight.shape)}: a vocabulary of 0 classes has no loss")
    if _input.dtype != weight.dtype:
        raise TypeError(f"_input ({_input.dtype}) and weight ({weight.dtype}) must have the same dtype")
    require_tensor("target", target, INDEX_DTYPES)
    require_shape("target", target, (_input.shape[0],), "one target per row of _input")
    require_real("temperature", temperature, minimum=0.0, above_minimum=True)
    require_int("ignore_index", ignore_index)
    if not isinstance(return_entropy, bool):
        raise TypeError(f"return_entropy must be a bool, got {type(return_entropy).__name__} {return_entropy!r}")
    require_same_device("_input", {"_input": _input, "weight": weight, "target": target})
    require_indices_in_range("target", target, classes, f"a target of {classes} classes", ignored=ignore_index)


class LigerFusedLinearScaledCrossEntropyFunction(DispatchedFunction):
    op = "fused_linear_scaled_cross_entropy"
    backward_reads = ("_input", "weight", "target", "selected_token_ids")
    keyword_aliases = (("input", "_input"),)

    @staticmethod
    def outputs(_input, weight, target, temperature, ignore_index, m_tiles_per_cluster, return_entropy,
                selected_token_ids):  # fmt: skip
        rows = (_input.shape[0],)
        per_row = (rows, loss_dtype(_input.dtype))
        selected = ((rows[0], selected_token_ids.numel()), torch.float32) if selected_token_ids is not None else None
        return per_row, per_row if return_entropy else None, selected

    @staticmethod
    def check(
        _input: torch.Tensor,
        weight: torch.Tensor,
        target: torch.Tensor,
        temperature: float = 1.0,
        ignore_index: int = -100,
        m_tiles_per_cluster: Any = 1,
        return_entropy: bool = False,
        selected_token_ids: torch.Tensor | None = None,
    ) -> None:
        require_int("m_tiles_per_cluster", m_tiles_per_cluster)
        if m_tiles_per_cluster < 1:
            raise ValueError(f"m_tiles_per_cluster must be >= 1, got {m_tiles_per_cluster}")
        vocab = weight.shape[0] if isinstance(weight, torch.Tensor) and weight.dim() == 2 else 0
        _check_common(_input, weight, target, temperature, ignore_index, return_entropy, vocab)
        if selected_token_ids is not None:
            require_tensor("selected_token_ids", selected_token_ids, (torch.int64,))
            require_ndim("selected_token_ids", selected_token_ids, (1,))
            require_same_device("_input", {"_input": _input, "selected_token_ids": selected_token_ids})
            require_indices_in_range("selected_token_ids", selected_token_ids, vocab, f"an id of {vocab} classes")

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        return _as_outputs(*super().apply(*args, **kwargs))


class LigerFusedLinearScaledCrossEntropyTPFunction:
    """The tensor-parallel form of :class:`LigerFusedLinearScaledCrossEntropyFunction`
    (see :mod:`liger_kernel.ops.fused_linear_scaled_cross_entropy`): ``weight``
    is this rank's vocabulary shard, ``target`` holds global indices."""

    @staticmethod
    def check(
        _input: torch.Tensor,
        weight: torch.Tensor,
        target: torch.Tensor,
        tp_group: Any,
        temperature: float = 1.0,
        ignore_index: int = -100,
        tiles_per_reduce: int = 1,
        return_entropy: bool = False,
    ) -> Any:
        """Check the call; returns the process group it runs over."""
        require_int("tiles_per_reduce", tiles_per_reduce)
        if tiles_per_reduce not in TILES_PER_REDUCE:
            raise ValueError(f"tiles_per_reduce must be one of {TILES_PER_REDUCE}, got {tiles_per_reduce}")
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError(
                "torch.distributed must be initialized (init_process_group) before the tensor-parallel "
                "fused linear scaled cross-entropy"
            )
        group = tp_group if tp_group is not None else dist.group.WORLD
        shard = weight.shape[0] if isinstance(weight, torch.Tensor) and weight.dim() == 2 else 0
        _check_common(_input, weight, target, temperature, ignore_index, return_entropy, shard * group.size())
        return group

    @staticmethod
    def apply(
        _input: torch.Tensor,
        weight: torch.Tensor,
        target: torch.Tensor,
        tp_group: Any,
        temperature: float = 1.0,
        ignore_index: int = -100,
        tiles_per_reduce: int = 1,
        return_entropy: bool = False,
    ) -> Any:
        group = LigerFusedLinearScaledCrossEntropyTPFunction.check(
            _input, weight, target, tp_group, temperature, ignore_index, tiles_per_reduce, return_entropy
        )
        args = (_input, weight, target, temperature, ignore_index, 1, return_entropy, None, group)
        return _as_outputs(*sharded_call(LigerFusedLinearScaledCrossEntropyFunction, args))
