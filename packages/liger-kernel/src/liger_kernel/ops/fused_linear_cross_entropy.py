"""Linear layer fused with cross-entropy: the LM head and its loss.

    logits = input @ weight.T + bias            (BT, V), never held whole
    loss   = cross_entropy(logits, target, ce_weight, ...)   (see cross_entropy)
with the gradients
    dinput = dlogits @ weight;  dweight = dlogits.T @ input;  dbias = sum over rows of dlogits
Backends walk the tokens in chunks and add each chunk's share to dweight and
dbias, so peak memory is one chunk's logits, not the whole batch's.

Accumulation (the rule every backend follows): dweight and dbias are
accumulated in ``accum_dtype`` and returned in weight's (bias's) dtype.
``accum_dtype=None`` means the weight's own dtype (:func:`accumulation_dtype`),
as in liger-kernel 0.8.x: no float32 copy of the weight gradient, which at an
LLM's vocabulary is twice the weight's size again (2 GB for 128256 x 4096).
A half-precision accumulator rounds the running sum once per chunk, so its
error grows with the number of chunks; ``accum_dtype=torch.float32`` bounds
it to one spacing of the dtype, at that memory. Each chunk's product may be
formed in the GEMM dtype before it is added; the conformance suite checks
both: no float32 weight-sized buffer under ``None``, the error bound under
float32.

use_token_scaling multiplies each row's loss (z-loss included) and its
gradient by the (detached) predicted probability of its target.

``ce_impl``, ``ce_mode`` and ``chunk_mem_const`` are 0.8.5's, consumed by the
contract and never passed to a backend: ``ce_impl`` names the backend this
call routes to (any name :func:`liger_kernel.use_backend` takes, the
registry's among them; None: the usual selection), ``ce_mode`` must be None or
"default" (each backend has one kernel), and ``chunk_mem_const`` (a positive
int, 0.8.5's bound of a chunk's logits to that many times the input) is
checked and not used: each backend sizes its chunks itself, the Triton ones
from their device profile's ``lm_head_chunk_ratio``, which is the same bound.
The first argument is ``_input`` as in 0.8.5; ``input=`` is accepted too.
"""

from __future__ import annotations

import torch

from liger_kernel.ops._contract import (
    FLOAT_DTYPES,
    DispatchedFunction,
    check_implementation_choice,
    implementation_context,
    require_dtype_choice,
    require_int,
    require_ndim,
    require_same_device,
    require_shape,
    require_tensor,
)
from liger_kernel.ops.cross_entropy import check_loss_options, loss_outputs, require_target_in_range

#: 0.8.5's default ``chunk_mem_const`` (accepted and checked, see the module docstring)
CHUNK_MEM_CONST = 1


def accumulation_dtype(weight_dtype: torch.dtype, accum_dtype: torch.dtype | None) -> torch.dtype:
    """The dtype dweight and dbias are accumulated in (see the module docstring)."""
    return weight_dtype if accum_dtype is None else accum_dtype


class LigerFusedLinearCrossEntropyFunction(DispatchedFunction):
    op = "fused_linear_cross_entropy"
    backward_reads = ("_input", "weight", "target", "bias", "ce_weight")  # reduction="none" replays
    keyword_aliases = (("input", "_input"),)
    contract_args = ("ce_impl", "ce_mode", "chunk_mem_const")

    @staticmethod
    def call_context(ce_impl=None, ce_mode=None, chunk_mem_const=CHUNK_MEM_CONST):  # type: ignore[override]
        return implementation_context(ce_impl, ce_mode)

    @staticmethod
    def outputs(_input, weight, target, bias, ce_weight, ignore_index, lse_square_scale, label_smoothing, reduction,
                softcap, return_z_loss, accum_dtype, use_token_scaling, return_token_accuracy,
                return_predicted_tokens):  # fmt: skip
        return loss_outputs(
            _input, _input.shape[0], reduction, return_z_loss, return_token_accuracy, return_predicted_tokens
        )

    @staticmethod
    def check(
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
        ce_impl: str | None = None,
        ce_mode: str | None = None,
        chunk_mem_const: int = CHUNK_MEM_CONST,
    ) -> None:
        require_tensor("_input", _input)
        require_tensor("weight", weight)
        require_ndim("_input", _input, (2,))
        require_ndim("weight", weight, (2,))
        if weight.shape[1] != _input.shape[1]:
            raise ValueError(
                f"weight has shape {tuple(weight.shape)}; expected (vocab, {_input.shape[1]}) to match _input's hidden size"
            )
        if bias is not None:
            require_tensor("bias", bias)
            require_shape("bias", bias, (weight.shape[0],), "one bias per vocabulary entry")
        if weight.shape[0] == 0:
            raise ValueError(f"weight has shape {tuple(weight.shape)}: a vocabulary of 0 classes has no loss")
        check_loss_options(
            target,
            _input.shape[0],
            weight.shape[0],
            ce_weight,
            "ce_weight",
            label_smoothing,
            reduction,
            softcap,
            lse_square_scale,
        )
        require_dtype_choice("accum_dtype", accum_dtype, FLOAT_DTYPES)
        check_implementation_choice("ce_impl", ce_impl, "ce_mode", ce_mode)
        require_int("chunk_mem_const", chunk_mem_const)
        if chunk_mem_const < 1:
            raise ValueError(f"chunk_mem_const must be a positive int, got {chunk_mem_const}")
        require_same_device(
            "_input", {"_input": _input, "weight": weight, "target": target, "bias": bias, "ce_weight": ce_weight}
        )
        require_target_in_range(target, weight.shape[0], ignore_index)
