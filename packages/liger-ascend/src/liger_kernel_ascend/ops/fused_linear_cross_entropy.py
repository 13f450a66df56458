"""Fused linear cross-entropy on the NPU (math and accumulation rule:
:mod:`liger_kernel.ops.fused_linear_cross_entropy`).

Layout: the shared chunk walk (:func:`liger_kernel.losses.walk_linear_chunks`)
with the NPU cross-entropy kernel (:mod:`.cross_entropy`) as its row kernel.
The GEMMs run on the AI cores' cube units through torch (torch_npu's
kernels); only the loss runs as a Triton kernel, on the vector cores. Each
chunk's logits are formed in the GEMM dtype into one reused buffer, and the
kernel writes dlogits over them; dweight accumulates in place, so no (V, H)
temporary exists.

NPU constraint answered: the chunk size comes from the device profile's cube
cores (``lm_head_min_rows``, ``lm_head_row_multiple``, see
:mod:`liger_kernel_ascend.profile`): each chunk reads and writes the whole
fp32 weight gradient, so a chunk holds enough rows for the cube units, not
just a fixed count of logits. fp64 is refused: the cube units have no fp64
GEMM and the loss kernel cannot compile fp64.

"mean"/"sum" compute the gradients in forward and backward scales them by the
scalar incoming gradient; "none" replays the chunks in backward with each
row's gradient scaled by its incoming gradient.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from liger_kernel.dispatch import device_profile
from liger_kernel.losses import LinearGrads, chunk_rows, loss_divisors, reduce_rows, token_accuracy, walk_linear_chunks
from liger_kernel.ops.cross_entropy import loss_dtype
from liger_kernel.ops.fused_linear_cross_entropy import accumulation_dtype
from liger_kernel_ascend.ops._common import check_npu_dtype
from liger_kernel_ascend.ops.cross_entropy import cross_entropy_rows


class LossOptions(NamedTuple):
    ignore_index: int
    lse_square_scale: float
    label_smoothing: float
    softcap: float | None
    use_token_scaling: bool


def rows_per_chunk(n_rows: int, hidden: int, vocab: int, device: torch.device) -> int:
    """The chunk rows of this device's profile (see the module docstring)."""
    profile = device_profile(device)
    return chunk_rows(
        n_rows,
        hidden,
        vocab,
        profile.lm_head_chunk_ratio,
        profile.lm_head_row_multiple,
        profile.lm_head_min_rows,
    )


def walk(
    input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None,
    ce_weight: torch.Tensor | None,
    options: LossOptions,
    divisors: torch.Tensor,
    accum_dtype: torch.dtype,
    needs: tuple[bool, bool, bool],
    rows: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None],
    row_scale: torch.Tensor | None = None,
) -> LinearGrads:
    """Loss rows into ``rows`` (loss, z, predicted) and the requested (dinput, dweight, dbias)."""
    matmul_dtype = torch.promote_types(input.dtype, weight.dtype)
    check_npu_dtype("fused_linear_cross_entropy", matmul_dtype)

    def row_loss(logits, target, loss, z, predicted, write_grad):
        part_loss, part_z, part_predicted = cross_entropy_rows(
            logits, target, ce_weight, divisors,
            ignore_index=options.ignore_index, lse_square_scale=options.lse_square_scale,
            label_smoothing=options.label_smoothing, softcap=options.softcap,
            grad=logits if write_grad else None, want_z=z is not None, want_predicted=predicted is not None,
            token_scaling=options.use_token_scaling,
        )  # fmt: skip
        loss.copy_(part_loss)
        if z is not None:
            z.copy_(part_z)
        if predicted is not None:
            predicted.copy_(part_predicted)

    loss_rows, z_rows, predicted = rows
    return walk_linear_chunks(
        input.to(matmul_dtype), weight.to(matmul_dtype), bias.to(matmul_dtype) if bias is not None else None,
        target, row_loss,
        rows_per_chunk=rows_per_chunk(input.shape[0], input.shape[1], weight.shape[0], input.device),
        ignore_index=options.ignore_index, want_grads=(needs[0], needs[1], needs[2] and bias is not None),
        accum_dtype=accum_dtype, loss_rows=loss_rows, z_rows=z_rows, predicted=predicted, row_scale=row_scale,
    )  # fmt: skip


class FusedLinearCrossEntropyFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        _input: torch.Tensor,
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
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        input = _input  # 0.8.5's name in the signature, the usual one below
        accum_dtype = accumulation_dtype(weight.dtype, accum_dtype)
        options = LossOptions(ignore_index, lse_square_scale, label_smoothing, softcap, use_token_scaling)
        divisors = loss_divisors(target, ce_weight, ignore_index, reduction)
        # needs_input_grad covers only the arguments passed: bias may be left at its default
        flags = ctx.needs_input_grad
        needs = (flags[0], flags[1], len(flags) > 3 and flags[3])
        grads_now = needs if reduction != "none" else (False, False, False)
        n_rows, device = input.shape[0], input.device
        loss_rows = torch.empty(n_rows, dtype=torch.float32, device=device)
        z_rows = torch.empty_like(loss_rows) if return_z_loss else None
        want_predicted = return_token_accuracy or return_predicted_tokens
        predicted = torch.empty(n_rows, dtype=torch.int64, device=device) if want_predicted else None
        grads = walk(
            input, weight, target, bias, ce_weight, options, divisors, accum_dtype, grads_now,
            (loss_rows, z_rows, predicted),
        )  # fmt: skip
        loss = reduce_rows(loss_rows, reduction).to(loss_dtype(input.dtype))
        z_loss = reduce_rows(z_rows, reduction).to(loss_dtype(input.dtype)) if z_rows is not None else None
        accuracy = token_accuracy(predicted, target, ignore_index) if return_token_accuracy else None
        extras = (z_loss, accuracy, predicted if return_predicted_tokens else None)
        ctx.mark_non_differentiable(*[extra for extra in extras if extra is not None])
        ctx.reduction = reduction
        ctx.dtypes = (input.dtype, weight.dtype, bias.dtype if bias is not None else None)
        if reduction == "none":
            ctx.save_for_backward(input, weight, target, bias, ce_weight, divisors)
            ctx.replay = (options, accum_dtype, needs)
        else:
            ctx.save_for_backward(*grads)
        return loss, *extras

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor, *unused: Any) -> tuple[Any, ...]:
        if ctx.reduction == "none":
            input, weight, target, bias, ce_weight, divisors = ctx.saved_tensors
            options, accum_dtype, needs = ctx.replay
            scratch = torch.empty(input.shape[0], dtype=torch.float32, device=input.device)
            grads = walk(
                input, weight, target, bias, ce_weight, options, divisors, accum_dtype, needs,
                (scratch, None, None), row_scale=grad_loss,
            )  # fmt: skip
        else:
            grads = tuple(g * grad_loss.to(g.dtype) if g is not None else None for g in ctx.saved_tensors)
        dinput, dweight, dbias = (g.to(dtype) if g is not None else None for g, dtype in zip(grads, ctx.dtypes))
        return dinput, dweight, None, dbias, *([None] * 11)
