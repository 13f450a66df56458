"""Functional forms of the ops, in the shape Hugging Face code calls them.

Each function calls the public op Function of :mod:`liger_kernel.ops`, so the
call is routed by the dispatcher to the backend serving the tensors' device.
With no extra outputs requested, the cross-entropy functions return the loss
tensor alone; otherwise a :class:`CrossEntropyOutput`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import _reduction as _Reduction

from liger_kernel.ops import (
    LigerAttnResFunction,
    LigerCrossEntropyFunction,
    LigerDyTFunction,
    LigerFusedAddRMSNormFunction,
    LigerFusedLinearCrossEntropyFunction,
    LigerFusedLinearJSDFunction,
    LigerFusedLinearKLDivFunction,
    LigerFusedLinearScaledCrossEntropyTPFunction,
    LigerGELUMulFunction,
    LigerGroupNormFunction,
    LigerJSDFunction,
    LigerKLDivLossFunction,
    LigerLayerNormFunction,
    LigerMHCCoeffsFunction,
    LigerMHCPostResFunction,
    LigerMHCPreFunction,
    LigerModulatedRMSNormFunction,
    LigerMultiTokenAttentionFunction,
    LigerPolyNormFunction,
    LigerQwen2VLMRopeFunction,
    LigerReLUSquaredFunction,
    LigerRMSNormFunction,
    LigerRopeFunction,
    LigerSiLUMulFunction,
    LigerSoftmaxFunction,
    LigerSparsemaxFunction,
    LigerTVDLossFunction,
)
from liger_kernel.ops.attn_res import stacked


@dataclass
class CrossEntropyOutput:
    """What a cross-entropy function returns when an extra output is requested:
    the loss, and each extra output (None where not requested)."""

    loss: torch.Tensor
    z_loss: torch.Tensor | None = None
    token_accuracy: torch.Tensor | None = None
    predicted_tokens: torch.Tensor | None = None


def _loss_or_output(result: tuple, *requested: bool) -> torch.Tensor | CrossEntropyOutput:
    """The loss alone when no extra output is requested, else all four (the
    op gives None for each one not requested)."""
    return CrossEntropyOutput(*result) if any(requested) else result[0]


def liger_rms_norm(
    X: torch.Tensor,
    W: torch.Tensor,
    eps: float,
    offset: float = 0.0,
    casting_mode: str = "llama",
    in_place: bool = True,
) -> torch.Tensor:
    return LigerRMSNormFunction.apply(X, W, eps, offset, casting_mode, in_place)


def liger_modulated_rms_norm(
    X: torch.Tensor,
    W: torch.Tensor | None,
    scale: torch.Tensor,
    shift: torch.Tensor | None = None,
    eps: float = 1e-6,
    offset: float = 0.0,
    casting_mode: str = "llama",
    in_place: bool = True,
) -> torch.Tensor:
    return LigerModulatedRMSNormFunction.apply(X, W, scale, shift, eps, offset, casting_mode, in_place)


def liger_fused_add_rms_norm(
    X: torch.Tensor,
    R: torch.Tensor,
    W: torch.Tensor,
    eps: float,
    offset: float = 0.0,
    casting_mode: str = "llama",
    in_place: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    return LigerFusedAddRMSNormFunction.apply(X, R, W, eps, offset, casting_mode, in_place)


def liger_layer_norm(X: torch.Tensor, W: torch.Tensor, B: torch.Tensor | None, eps: float) -> torch.Tensor:
    return LigerLayerNormFunction.apply(X, W, B, eps)


def liger_group_norm(
    X: torch.Tensor,
    affine_scaling_weight: torch.Tensor,
    affine_shifting_bias: torch.Tensor | None,
    num_channels: int,
    num_groups: int,
    eps: float,
) -> torch.Tensor:
    return LigerGroupNormFunction.apply(X, affine_scaling_weight, affine_shifting_bias, num_channels, num_groups, eps)


def liger_poly_norm(
    X: torch.Tensor, W: torch.Tensor, B: torch.Tensor, eps: float = 1e-6, in_place: bool = True
) -> torch.Tensor:
    return LigerPolyNormFunction.apply(X, W, B, eps, in_place)


def liger_rope(
    q: torch.Tensor,
    k: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    position_ids: torch.Tensor | None = None,
    unsqueeze_dim: int = 1,
    rotary_dim: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    if rotary_dim is None:
        return LigerRopeFunction.apply(q, k, cos, sin, position_ids, unsqueeze_dim)
    return LigerRopeFunction.apply(q, k, cos, sin, position_ids, unsqueeze_dim, rotary_dim)


def liger_qwen2vl_mrope(
    q: torch.Tensor,
    k: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    mrope_section: list[int] | tuple[int, int, int],
    unsqueeze_dim: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    return LigerQwen2VLMRopeFunction.apply(q, k, cos, sin, mrope_section, unsqueeze_dim)


def liger_swiglu(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return LigerSiLUMulFunction.apply(a, b)


def liger_geglu(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return LigerGELUMulFunction.apply(a, b)


def liger_cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    lse_square_scale: float = 0.0,
    softcap: float | None = None,
    return_z_loss: bool = False,
    return_token_accuracy: bool = False,
    return_predicted_tokens: bool = False,
) -> torch.Tensor | CrossEntropyOutput:
    """``torch.nn.functional.cross_entropy`` with Liger's extra options.

    The deprecated ``size_average`` and ``reduce`` mean what they mean to
    torch: when either is given, they decide the reduction in place of
    ``reduction`` (``reduce=False`` gives the per-row losses), with torch's
    deprecation warning.
    """
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    result = LigerCrossEntropyFunction.apply(
        input,
        target,
        weight,
        ignore_index,
        lse_square_scale,
        label_smoothing,
        reduction,
        softcap,
        return_z_loss,
        return_token_accuracy,
        return_predicted_tokens,
    )
    return _loss_or_output(result, return_z_loss, return_token_accuracy, return_predicted_tokens)


def liger_fused_linear_cross_entropy(
    input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None = None,
    ce_weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    lse_square_scale: float = 0.0,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    softcap: float | None = None,
    return_z_loss: bool = False,
    accum_dtype: torch.dtype | None = None,
    use_token_scaling: bool = False,
    return_token_accuracy: bool = False,
    return_predicted_tokens: bool = False,
    chunk_mem_const: int = 1,
) -> torch.Tensor | CrossEntropyOutput:
    """Cross-entropy of ``input @ weight.T + bias`` without materializing the logits.

    ``chunk_mem_const`` (a positive int) is a chunk-size hint of liger-kernel
    0.8.x's NVIDIA kernel; accepted and checked, and the backend sizes its
    chunks from the device instead."""
    if isinstance(chunk_mem_const, bool) or not isinstance(chunk_mem_const, int) or chunk_mem_const < 1:
        raise ValueError(f"chunk_mem_const must be a positive int, got {chunk_mem_const!r}")
    result = LigerFusedLinearCrossEntropyFunction.apply(
        input,
        weight,
        target,
        bias,
        ce_weight,
        ignore_index,
        lse_square_scale,
        label_smoothing,
        reduction,
        softcap,
        return_z_loss,
        accum_dtype,
        use_token_scaling,
        return_token_accuracy,
        return_predicted_tokens,
    )
    return _loss_or_output(result, return_z_loss, return_token_accuracy, return_predicted_tokens)


def liger_kl_div(
    input: torch.Tensor,
    target: torch.Tensor,
    size_average: bool | None = True,
    reduce: bool | None = True,
    reduction: str = "mean",
    log_target: bool = False,
    eps: float = 1e-10,
) -> torch.Tensor:
    """``torch.nn.functional.kl_div`` (input log-probabilities, target
    probabilities or, with ``log_target``, log-probabilities); ``eps`` bounds
    log(target) from below. The target takes no gradient.

    ``size_average`` and ``reduce`` default to True, as in liger-kernel 0.8.x,
    where they were ignored. Here, when either is False they decide the
    reduction as they do for torch (``reduce=False`` gives the pointwise loss,
    ``size_average=False`` the sum), in place of ``reduction``.
    """
    if size_average is False or reduce is False:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    return LigerKLDivLossFunction.apply(input, target, reduction, log_target, eps)


def liger_tvd(
    input: torch.Tensor,
    target: torch.Tensor,
    shift_labels: torch.Tensor | None = None,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> torch.Tensor:
    """Total variation distance 0.5 * |input - target| between probabilities,
    rows whose ``shift_labels`` entry is ``ignore_index`` left out."""
    return LigerTVDLossFunction.apply(input, target, shift_labels, reduction, ignore_index)


def liger_jsd(
    input: torch.Tensor,
    target: torch.Tensor,
    shift_labels: torch.Tensor | None = None,
    beta: float = 0.5,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Generalized JSD of student log-probabilities ``input`` and teacher ``target`` (see LigerJSD)."""
    return LigerJSDFunction.apply(input, target, shift_labels, beta, ignore_index)


def liger_fused_linear_scaled_cross_entropy_tp(
    input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    tp_group,
    temperature: float = 1.0,
    ignore_index: int = -100,
    tiles_per_reduce: int = 1,
    return_entropy: bool = False,
):
    """Per-token NLL (and entropy with ``return_entropy``) of ``input @ weight.T / temperature``
    with ``weight`` this rank's vocabulary shard; see
    :mod:`liger_kernel.ops.fused_linear_scaled_cross_entropy`."""
    return LigerFusedLinearScaledCrossEntropyTPFunction.apply(
        input, weight, target, tp_group, temperature, ignore_index, tiles_per_reduce, return_entropy
    )


def liger_fused_linear_jsd(
    student_input: torch.Tensor,
    student_weight: torch.Tensor,
    teacher_input: torch.Tensor,
    teacher_weight: torch.Tensor,
    shift_labels: torch.Tensor | None = None,
    jsd_beta: float = 0.5,
    ignore_index: int = -100,
    temperature: float = 1.0,
    accum_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Generalized JSD between two LM heads' distributions without materializing their logits."""
    return LigerFusedLinearJSDFunction.apply(
        student_input, student_weight, teacher_input, teacher_weight, shift_labels, jsd_beta, ignore_index,
        temperature, accum_dtype,
    )  # fmt: skip


def liger_fused_linear_kl_div(
    student_input: torch.Tensor,
    student_weight: torch.Tensor,
    target: torch.Tensor,
    shift_labels: torch.Tensor | None = None,
    reduction: str = "batchmean",
    ignore_index: int = -100,
    temperature: float = 1.0,
    eps: float = 1e-10,
    accum_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """KL divergence of the LM head's distribution from ``target`` probabilities without
    materializing the logits (see LigerFusedLinearKLDivLoss)."""
    return LigerFusedLinearKLDivFunction.apply(
        student_input, student_weight, target, shift_labels, reduction, ignore_index, temperature, eps, accum_dtype
    )


def liger_softmax(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension."""
    return LigerSoftmaxFunction.apply(x)


def liger_sparsemax(input: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Sparsemax along ``dim``: max(input - tau, 0) summing to 1, exactly 0 below the threshold tau."""
    return LigerSparsemaxFunction.apply(input, dim)


def liger_dyt(x: torch.Tensor, alpha: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor | None) -> torch.Tensor:
    """Dynamic Tanh: gamma * tanh(alpha * x) + beta over the last dimension (beta may be None)."""
    return LigerDyTFunction.apply(x, alpha, gamma, beta)


def liger_relu_squared(x: torch.Tensor) -> torch.Tensor:
    """Squared ReLU, elementwise: relu(x) ** 2."""
    return LigerReLUSquaredFunction.apply(x)


def liger_mhc_coeffs(
    x: torch.Tensor,
    phi: torch.Tensor,
    b: torch.Tensor,
    alpha_pre: torch.Tensor,
    alpha_post: torch.Tensor,
    alpha_res: torch.Tensor,
    *,
    allow_fp32: bool = False,
    tmax: int = 20,
    rms_eps: float = 1e-6,
    pre_eps: float = 0.0,
    sinkhorn_eps: float = 1e-6,
    post_mult: float = 2.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(h_pre, h_post, h_res), float32, for streams x (..., HC, C): :class:`LigerMHCCoeffsFunction`."""
    return LigerMHCCoeffsFunction.apply(
        x, phi, b, alpha_pre, alpha_post, alpha_res, allow_fp32, tmax, rms_eps, pre_eps, sinkhorn_eps, post_mult
    )


def liger_mhc_pre(x: torch.Tensor, h_pre: torch.Tensor) -> torch.Tensor:
    """The layer input sum_i h_pre[i] * x[i], (..., C): :class:`LigerMHCPreFunction`."""
    return LigerMHCPreFunction.apply(x, h_pre)


def liger_mhc_post_res(x: torch.Tensor, f_out: torch.Tensor, h_post: torch.Tensor, h_res: torch.Tensor) -> torch.Tensor:
    """The next streams h_res @ x + h_post * f_out, (..., HC, C): :class:`LigerMHCPostResFunction`."""
    return LigerMHCPostResFunction.apply(x, f_out, h_post, h_res)


def liger_mhc_apply(
    x: torch.Tensor,
    f_out: torch.Tensor,
    h_pre: torch.Tensor,
    h_post: torch.Tensor,
    h_res: torch.Tensor,
    *,
    return_x_in: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The post/residual mix of x with the layer output ``f_out``; with ``return_x_in``
    also the pre-aggregated layer input, as ``(x_out, x_in)``."""
    x_out = liger_mhc_post_res(x, f_out, h_post, h_res)
    if return_x_in:
        return x_out, liger_mhc_pre(x, h_pre)
    return x_out


def _layer_dtype(layer: Any, default: torch.dtype) -> torch.dtype:
    """The dtype of ``layer``'s first parameter (``default`` for a function or a module without any)."""
    parameters = getattr(layer, "parameters", None)
    if parameters is None:
        return default
    first = next(iter(parameters()), None)
    return default if first is None else first.dtype


def liger_mhc_forward(
    x: torch.Tensor,
    layer: Any,
    phi: torch.Tensor,
    b: torch.Tensor,
    alpha_pre: torch.Tensor,
    alpha_post: torch.Tensor,
    alpha_res: torch.Tensor,
    *,
    allow_fp32: bool = False,
    tmax: int = 20,
    rms_eps: float = 1e-6,
    pre_eps: float = 0.0,
    sinkhorn_eps: float = 1e-6,
    post_mult: float = 2.0,
    return_coeffs: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """One mHC block around ``layer`` (a module or callable ``[..., C] -> [..., C]``):
    coefficients, pre-aggregation, the layer (its input cast to the dtype of its
    first parameter), post/residual mix. With ``return_coeffs`` also
    ``(h_pre, h_post, h_res)``."""
    h_pre, h_post, h_res = liger_mhc_coeffs(
        x,
        phi,
        b,
        alpha_pre,
        alpha_post,
        alpha_res,
        allow_fp32=allow_fp32,
        tmax=tmax,
        rms_eps=rms_eps,
        pre_eps=pre_eps,
        sinkhorn_eps=sinkhorn_eps,
        post_mult=post_mult,
    )
    x_in = liger_mhc_pre(x, h_pre)
    f_out = layer(x_in.to(_layer_dtype(layer, x_in.dtype)))
    x_out = liger_mhc_post_res(x, f_out, h_post, h_res)
    return (x_out, (h_pre, h_post, h_res)) if return_coeffs else x_out


def liger_attn_res(
    V: torch.Tensor | Sequence[torch.Tensor], w_query: torch.Tensor, w_norm: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """Attention residuals: the softmax-over-depth weighted sum of the block outputs V
    (N, ..., D), or a list of N tensors of one shape, stacked here:
    :class:`LigerAttnResFunction`."""
    return LigerAttnResFunction.apply(stacked(V), w_query, w_norm, eps)


def liger_multi_token_attention(
    scores: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
    sparse: bool = False,
) -> torch.Tensor:
    """Multi-token attention: conv2d over the causal softmax (sparsemax with ``sparse``) of
    ``scores`` (batch, channels, L, L), the output masked to its lower triangle."""
    return LigerMultiTokenAttentionFunction.apply(scores, weight, bias, stride, padding, dilation, groups, sparse)
