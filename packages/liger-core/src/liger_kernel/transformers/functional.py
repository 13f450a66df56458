"""Functional forms of the ops, in the shape Hugging Face code calls them.

Each function calls the public op Function of :mod:`liger_kernel.ops`, so the
call is routed by the dispatcher to the backend serving the tensors' device.
With no extra outputs requested, the cross-entropy functions return the loss
tensor alone; otherwise a tuple ``(loss, <requested extras in order>)``.
"""

from __future__ import annotations

import torch

from liger_kernel.ops import (
    LigerCrossEntropyFunction,
    LigerFusedAddRMSNormFunction,
    LigerFusedLinearCrossEntropyFunction,
    LigerGELUMulFunction,
    LigerLayerNormFunction,
    LigerRMSNormFunction,
    LigerRopeFunction,
    LigerSiLUMulFunction,
)


def _loss_and_extras(
    result: tuple, return_z_loss: bool, return_token_accuracy: bool, return_predicted_tokens: bool
) -> torch.Tensor | tuple:
    loss, z_loss, token_accuracy, predicted_tokens = result
    requested = [
        value
        for wanted, value in (
            (return_z_loss, z_loss),
            (return_token_accuracy, token_accuracy),
            (return_predicted_tokens, predicted_tokens),
        )
        if wanted
    ]
    return (loss, *requested) if requested else loss


def liger_rms_norm(
    X: torch.Tensor,
    W: torch.Tensor,
    eps: float,
    offset: float = 0.0,
    casting_mode: str = "llama",
    in_place: bool = True,
) -> torch.Tensor:
    return LigerRMSNormFunction.apply(X, W, eps, offset, casting_mode, in_place)


def liger_fused_add_rms_norm(
    X: torch.Tensor,
    R: torch.Tensor,
    W: torch.Tensor,
    eps: float,
    offset: float = 0.0,
    casting_mode: str = "llama",
    in_place: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    return LigerFusedAddRMSNormFunction.apply(X, R, W, eps, offset, casting_mode, in_place)


def liger_layer_norm(X: torch.Tensor, W: torch.Tensor, B: torch.Tensor | None, eps: float) -> torch.Tensor:
    return LigerLayerNormFunction.apply(X, W, B, eps)


def liger_rope(
    q: torch.Tensor,
    k: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    position_ids: torch.Tensor | None = None,
    unsqueeze_dim: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    return LigerRopeFunction.apply(q, k, cos, sin, position_ids, unsqueeze_dim)


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
) -> torch.Tensor | tuple:
    """``torch.nn.functional.cross_entropy`` with Liger's extra options.

    ``size_average`` and ``reduce`` are accepted for signature compatibility
    with torch and ignored, as torch itself deprecates them; use ``reduction``.
    """
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
    return _loss_and_extras(result, return_z_loss, return_token_accuracy, return_predicted_tokens)


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
) -> torch.Tensor | tuple:
    """Cross-entropy of ``input @ weight.T + bias`` without materializing the logits."""
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
    return _loss_and_extras(result, return_z_loss, return_token_accuracy, return_predicted_tokens)
