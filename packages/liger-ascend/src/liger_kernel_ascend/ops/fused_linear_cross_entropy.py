"""Linear layer fused with cross-entropy (LM head + loss) on the NPU.

    logits = input @ weight.T + bias     formed one chunk of rows at a time
    loss   = cross_entropy(logits, target, ce_weight, ...)   (see .cross_entropy)
For each chunk the NPU cross-entropy kernel writes dlogits over the chunk's
fp32 logits, then
    dinput[chunk] = dlogits @ weight;  dweight += dlogits.T @ input[chunk];  dbias += sum(dlogits)
The "mean" divisors are the whole batch's, computed once up front, so every
chunk's dlogits are already final. dweight and dbias accumulate in
``accum_dtype`` (default fp32 for half weights, else the weight's dtype) and
are returned in the weight's and bias's dtypes. ``use_token_scaling`` scales
each row's loss (z-loss included) and gradient by the detached probability of
its target. "mean"/"sum" compute gradients in forward and backward scales them
by the scalar incoming gradient; "none" replays the chunks in backward with
each row's gradient scaled by its incoming gradient.

NPU constraints answered: the GEMMs run on the AI cores' cube units through
torch.matmul (torch_npu's kernels); only the loss runs as a Triton kernel, on
the vector cores with the unified-buffer tiling of :mod:`.cross_entropy`.
Chunks hold at most :data:`CHUNK_ELEMENTS` fp32 logits (64 MiB), so device
memory stays bounded as the vocabulary or batch grows.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from liger_kernel.ops.cross_entropy import loss_dtype
from liger_kernel.triton.cross_entropy import accuracy, loss_divisors
from liger_kernel_ascend.ops._common import check_npu_dtype
from liger_kernel_ascend.ops.cross_entropy import cross_entropy_rows, reduce_rows

#: Most logits one chunk materializes (fp32: 64 MiB).
CHUNK_ELEMENTS = 1 << 24
HALF_DTYPES = (torch.float16, torch.bfloat16)


class LossOptions(NamedTuple):
    ignore_index: int
    lse_square_scale: float
    label_smoothing: float
    softcap: float | None
    use_token_scaling: bool


class Walk(NamedTuple):
    loss: torch.Tensor
    z: torch.Tensor | None
    predicted: torch.Tensor | None
    dinput: torch.Tensor | None
    dweight: torch.Tensor | None
    dbias: torch.Tensor | None


def chunk_rows(n_rows: int, vocab: int) -> int:
    """Rows per chunk: as many as keep the chunk's logits within CHUNK_ELEMENTS."""
    return max(1, min(n_rows, CHUNK_ELEMENTS // max(1, vocab)))


def walk_chunks(
    input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None,
    ce_weight: torch.Tensor | None,
    options: LossOptions,
    divisors: torch.Tensor,
    accum_dtype: torch.dtype,
    needs: tuple[bool, bool, bool],
    want: tuple[bool, bool],
    row_scale: torch.Tensor | None = None,
) -> Walk:
    """Per-row losses (and z-losses, argmaxes) and the requested gradients, chunk by chunk."""
    need_dinput, need_dweight, need_dbias = needs
    need_dbias = need_dbias and bias is not None
    need_grad = need_dinput or need_dweight or need_dbias
    matmul_dtype = torch.promote_types(input.dtype, weight.dtype)
    # the cube units have no fp64 GEMM and the loss kernel cannot take fp64 logits: refuse before any work
    check_npu_dtype("fused_linear_cross_entropy", matmul_dtype)
    x, w = input.to(matmul_dtype), weight.to(matmul_dtype)
    n_rows, vocab = input.shape[0], weight.shape[0]
    device = input.device
    loss = torch.empty(n_rows, dtype=torch.float32, device=device)
    z = torch.empty(n_rows, dtype=torch.float32, device=device) if want[0] else None
    predicted = torch.empty(n_rows, dtype=torch.int64, device=device) if want[1] else None
    dinput = torch.empty(input.shape, dtype=input.dtype, device=device) if need_dinput else None
    dweight = torch.zeros(weight.shape, dtype=accum_dtype, device=device) if need_dweight else None
    dbias = torch.zeros(vocab, dtype=accum_dtype, device=device) if need_dbias else None
    step = chunk_rows(n_rows, vocab)
    for start in range(0, n_rows, step):
        rows = slice(start, min(start + step, n_rows))
        logits = (x[rows] @ w.T).float()
        if bias is not None:
            logits += bias.float()
        part_loss, part_z, part_pred = cross_entropy_rows(
            logits, target[rows], ce_weight, divisors,
            ignore_index=options.ignore_index, lse_square_scale=options.lse_square_scale,
            label_smoothing=options.label_smoothing, softcap=options.softcap,
            grad=logits if need_grad else None, want_z=want[0], want_predicted=want[1],
            token_scaling=options.use_token_scaling,
        )  # fmt: skip
        loss[rows] = part_loss
        if z is not None:
            z[rows] = part_z
        if predicted is not None:
            predicted[rows] = part_pred
        if not need_grad:
            continue
        dlogits = logits
        if row_scale is not None:
            dlogits *= row_scale[rows].to(dlogits.dtype).unsqueeze(1)
        if dbias is not None:
            dbias += dlogits.sum(dim=0).to(accum_dtype)
        dlogits = dlogits.to(matmul_dtype)
        if dinput is not None:
            dinput[rows] = (dlogits @ w).to(input.dtype)
        if dweight is not None:
            dweight += (dlogits.T @ x[rows]).to(accum_dtype)
    return Walk(loss, z, predicted, dinput, dweight, dbias)


class FusedLinearCrossEntropyFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
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
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        if accum_dtype is None:
            accum_dtype = torch.float32 if weight.dtype in HALF_DTYPES else weight.dtype
        options = LossOptions(ignore_index, lse_square_scale, label_smoothing, softcap, use_token_scaling)
        divisors = loss_divisors(target, ce_weight, ignore_index, reduction)
        # needs_input_grad covers only the arguments passed: bias may be left at its default
        flags = ctx.needs_input_grad
        needs = (flags[0], flags[1], len(flags) > 3 and flags[3])
        want = (return_z_loss, return_token_accuracy or return_predicted_tokens)
        grads_now = needs if reduction != "none" else (False, False, False)
        walk = walk_chunks(input, weight, target, bias, ce_weight, options, divisors, accum_dtype, grads_now, want)
        loss = reduce_rows(walk.loss, reduction).to(loss_dtype(input.dtype))
        z_loss = reduce_rows(walk.z, reduction).to(loss_dtype(input.dtype)) if walk.z is not None else None
        token_accuracy = accuracy(walk.predicted, target, ignore_index) if return_token_accuracy else None
        predicted = walk.predicted if return_predicted_tokens else None
        extras = (z_loss, token_accuracy, predicted)
        ctx.mark_non_differentiable(*[extra for extra in extras if extra is not None])
        ctx.reduction = reduction
        ctx.dtypes = (input.dtype, weight.dtype, bias.dtype if bias is not None else None)
        if reduction == "none":
            ctx.save_for_backward(input, weight, target, bias, ce_weight, divisors)
            ctx.replay = (options, accum_dtype, needs)
        else:
            ctx.save_for_backward(walk.dinput, walk.dweight, walk.dbias)
        return loss, *extras

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor, *unused: Any) -> tuple[Any, ...]:
        if ctx.reduction == "none":
            input, weight, target, bias, ce_weight, divisors = ctx.saved_tensors
            options, accum_dtype, needs = ctx.replay
            walk = walk_chunks(
                input, weight, target, bias, ce_weight, options, divisors, accum_dtype, needs, (False, False),
                row_scale=grad_loss,
            )  # fmt: skip
            grads = (walk.dinput, walk.dweight, walk.dbias)
        else:
            grads = tuple(g * grad_loss.to(g.dtype) if g is not None else None for g in ctx.saved_tensors)
        dinput, dweight, dbias = (g.to(dtype) if g is not None else None for g, dtype in zip(grads, ctx.dtypes))
        return dinput, dweight, None, dbias, *([None] * 11)
