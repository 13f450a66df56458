"""Llama 4's complex-form rotary embedding in pure PyTorch
(math: :mod:`liger_kernel.ops.llama4_rope`).

freqs_cis is brought to a (batch or 1, seq, 1, head_dim / 2) complex table
(:func:`complex_table`) that broadcasts over heads; q and k are seen as
complex pairs in the math dtype and multiplied by it (by its conjugate in
backward).
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backends.torch._common import compute_dtype


def complex_table(freqs_cis: torch.Tensor, seq_len: int, math_dtype: torch.dtype) -> torch.Tensor:
    """freqs_cis in either accepted form as a (batch or 1, seq, 1, head_dim / 2)
    complex tensor of ``math_dtype``'s precision; a 2-D table gives its first
    ``seq_len`` rows."""
    complex_dtype = torch.complex128 if math_dtype == torch.float64 else torch.complex64
    if freqs_cis.is_complex():
        # a conjugate view (freqs_cis.conj()) keeps its flag here, which torch's arithmetic honours
        table = freqs_cis.to(complex_dtype)
    else:
        table = torch.complex(freqs_cis[..., 0].to(math_dtype), freqs_cis[..., 1].to(math_dtype))
    if table.dim() == 2:
        table = table[:seq_len].unsqueeze(0)
    return table.unsqueeze(2)


def _multiply(x: torch.Tensor, table: torch.Tensor, math_dtype: torch.dtype) -> torch.Tensor:
    # the pair count spelt out: reshape cannot infer it (-1) from an empty tensor
    pairs = torch.view_as_complex(x.to(math_dtype).reshape(*x.shape[:-1], x.shape[-1] // 2, 2).contiguous())
    return torch.view_as_real(pairs * table).flatten(-2).to(x.dtype)


class Llama4RopeFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, q: torch.Tensor, k: torch.Tensor, freqs_cis: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        math_dtype = compute_dtype(q, k, freqs_cis if not freqs_cis.is_complex() else None)
        if freqs_cis.dtype == torch.complex128:
            math_dtype = torch.float64
        table = complex_table(freqs_cis, q.shape[1], math_dtype)
        ctx.save_for_backward(table)
        ctx.math_dtype = math_dtype
        return _multiply(q, table, math_dtype), _multiply(k, table, math_dtype)

    @staticmethod
    def backward(ctx: Any, dq: torch.Tensor, dk: torch.Tensor) -> tuple[Any, ...]:
        (table,) = ctx.saved_tensors
        conjugate = table.conj()
        grads = [
            _multiply(grad, conjugate, ctx.math_dtype) if needed else None
            for needed, grad in zip(ctx.needs_input_grad[:2], (dq, dk))
        ]
        return grads[0], grads[1], None
