"""Llama 4's complex-form rotary embedding, portable Triton kernel
(math: :mod:`liger_kernel.ops.llama4_rope`; interleaved pairs, not rotate-half).

One program per (batch, seq) token, persistent over tokens: it loads that
token's row of frequencies once (real and imaginary parts, through the
strides of freqs_cis's real view, so a complex tensor is read in place) and
multiplies every q head, then every k head, as (heads, head_dim / 2) tiles of
pairs: the real parts are the even columns, the imaginary parts the odd ones.
A tile's heads are read and written as whole (heads, head_dim) rows, reshaped
to (heads, head_dim / 2, 2) and split into the two parts (``tl.split``, joined
back with ``tl.join`` before the store): two stride-2 accesses over the same
bytes instead would be masked stride-2 stores, which triton-ascend's TTIR
adapter refuses (an assertion in its interleave optimization). q and k are (batch, seq, heads,
head_dim) with any strides but a unit one on head_dim; k has its own head
count (and tile), so grouped-query attention needs no repeat. Backward is the
same launch multiplying by the conjugate.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.triton.launch import launch, pipeline_stages
from liger_kernel.triton.rope import _head_tiling, _unit_stride_last


@triton.jit
def _multiply_chunk(
    x_base, x_stride_h, y_base, y_stride_h, head_start, n_heads, half, fr, fi,
    ACC: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """Multiply the pairs of heads [head_start, head_start + BLOCK_H) of one token by (fr, fi)."""
    columns = tl.arange(0, 2 * BLOCK_D)[None, :]
    # int64: heads * x_stride_h may pass 2**31 on long sequences
    heads = (head_start + tl.arange(0, BLOCK_H)).to(tl.int64)[:, None]
    mask = (heads < n_heads) & (columns < 2 * half)
    x = tl.load(x_base + heads * x_stride_h + columns, mask=mask, other=0.0).to(ACC)
    xr, xi = tl.split(tl.reshape(x, (BLOCK_H, BLOCK_D, 2)))
    y = tl.join(xr * fr - xi * fi, xr * fi + xi * fr)
    y = tl.reshape(y, (BLOCK_H, 2 * BLOCK_D))
    tl.store(y_base + heads * y_stride_h + columns, y.to(y_base.dtype.element_ty), mask=mask)


@triton.jit
def _multiply_heads(
    X, x_stride_b, x_stride_s, x_stride_h, Y, y_stride_b, y_stride_s, y_stride_h,
    b, s, n_heads, half, fr, fi,
    ACC: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr, ONE_CHUNK: tl.constexpr,
):  # fmt: skip
    """Every head of one token of X into Y; with ONE_CHUNK (all heads in one
    tile, the usual case) there is no head loop, so the token loop around it
    is innermost and its loads can be pipelined."""
    x_base = X + b * x_stride_b + s * x_stride_s
    y_base = Y + b * y_stride_b + s * y_stride_s
    if ONE_CHUNK:
        _multiply_chunk(x_base, x_stride_h, y_base, y_stride_h, 0, n_heads, half, fr, fi, ACC, BLOCK_H, BLOCK_D)
    else:
        for head_start in tl.range(0, n_heads, BLOCK_H):
            _multiply_chunk(
                x_base, x_stride_h, y_base, y_stride_h, head_start, n_heads, half, fr, fi, ACC, BLOCK_H, BLOCK_D
            )


@triton.jit
def _llama4_rope_kernel(
    Q, q_stride_b, q_stride_s, q_stride_h,
    K, k_stride_b, k_stride_s, k_stride_h,
    QO, qo_stride_b, qo_stride_s, qo_stride_h,
    KO, ko_stride_b, ko_stride_s, ko_stride_h,
    F, f_stride_b, f_stride_s, f_stride_pair, f_stride_part,
    n_tokens, seq_len, n_q_heads, n_k_heads, half,
    CONJUGATE: tl.constexpr, ACC: tl.constexpr, BLOCK_HQ: tl.constexpr, BLOCK_HK: tl.constexpr,
    BLOCK_D: tl.constexpr, ONE_CHUNK: tl.constexpr, STAGES: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0).to(tl.int64)
    pairs = tl.arange(0, BLOCK_D)[None, :]
    pair_mask = pairs < half
    for token in tl.range(pid, n_tokens, tl.num_programs(0), num_stages=STAGES):
        b = token // seq_len
        s = token % seq_len
        row = F + b * f_stride_b + s * f_stride_s + pairs * f_stride_pair
        fr = tl.load(row, mask=pair_mask, other=0.0).to(ACC)
        fi = tl.load(row + f_stride_part, mask=pair_mask, other=0.0).to(ACC)
        if CONJUGATE:
            fi = -fi
        _multiply_heads(
            Q, q_stride_b, q_stride_s, q_stride_h, QO, qo_stride_b, qo_stride_s, qo_stride_h,
            b, s, n_q_heads, half, fr, fi, ACC, BLOCK_HQ, BLOCK_D, ONE_CHUNK,
        )  # fmt: skip
        _multiply_heads(
            K, k_stride_b, k_stride_s, k_stride_h, KO, ko_stride_b, ko_stride_s, ko_stride_h,
            b, s, n_k_heads, half, fr, fi, ACC, BLOCK_HK, BLOCK_D, ONE_CHUNK,
        )  # fmt: skip


def real_frequencies(freqs_cis: torch.Tensor) -> torch.Tensor:
    """freqs_cis as its real (..., head_dim / 2, 2) form, a view where one exists
    (a conjugate view is resolved first: view_as_real cannot see its flag)."""
    if freqs_cis.is_complex():
        return torch.view_as_real(freqs_cis.resolve_conj())
    return freqs_cis


def _math_in_fp64(q: torch.Tensor, k: torch.Tensor, freqs: torch.Tensor) -> bool:
    return torch.float64 in (q.dtype, k.dtype, freqs.dtype)


def llama4_rope_apply(
    q: torch.Tensor,
    k: torch.Tensor,
    freqs: torch.Tensor,
    conjugate: bool,
    max_block_heads: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """q and k (or their gradients, with ``conjugate``) multiplied by the real-form
    ``freqs`` into new tensors. ``max_block_heads`` caps the heads of a tile (a
    backend whose DMA needs it; None: as the profile allows)."""
    q, k = _unit_stride_last(q), _unit_stride_last(k)
    batch, seq_len, n_q_heads, head_dim = q.shape
    n_k_heads = k.shape[2]
    q_out, k_out = torch.empty_like(q), torch.empty_like(k)
    n_tokens = batch * seq_len
    if n_tokens == 0 or head_dim == 0:
        return q_out, k_out
    if freqs.dim() == 3:  # a (positions, head_dim / 2, 2) table shared by the batch
        f_stride_b, f_stride_s = 0, freqs.stride(0)
    else:
        f_stride_b = freqs.stride(0) if freqs.shape[0] > 1 else 0
        f_stride_s = freqs.stride(1)

    profile = device_profile(q.device)
    half = head_dim // 2
    tiling = _head_tiling(profile, q, k, half, n_q_heads, n_k_heads)
    # warps for the tile's whole rows (both parts of every pair, 2 * BLOCK_D
    # columns): at rope's count (one part) AMD's compiler spills
    tiling["num_warps"] = profile.num_warps(2 * max(tiling["BLOCK_HQ"], tiling["BLOCK_HK"]) * tiling["BLOCK_D"])
    if _math_in_fp64(q, k, freqs):
        tiling["ACC"] = tl.float64
    if max_block_heads is not None:
        tiling["BLOCK_HQ"] = min(tiling["BLOCK_HQ"], max_block_heads)
        tiling["BLOCK_HK"] = min(tiling["BLOCK_HK"], max_block_heads)
        tiling["ONE_CHUNK"] = tiling["BLOCK_HQ"] >= n_q_heads and tiling["BLOCK_HK"] >= n_k_heads
        if not tiling["ONE_CHUNK"]:
            tiling["STAGES"] = 1
        else:
            step = (
                2 * tiling["BLOCK_D"] * (tiling["BLOCK_HQ"] * q.element_size() + tiling["BLOCK_HK"] * k.element_size())
            )
            tiling["STAGES"] = pipeline_stages(profile, step)
    launch(profile, _llama4_rope_kernel, profile.grid(n_tokens),
        q, q.stride(0), q.stride(1), q.stride(2),
        k, k.stride(0), k.stride(1), k.stride(2),
        q_out, q_out.stride(0), q_out.stride(1), q_out.stride(2),
        k_out, k_out.stride(0), k_out.stride(1), k_out.stride(2),
        freqs, f_stride_b, f_stride_s, freqs.stride(-2), freqs.stride(-1),
        n_tokens, seq_len, n_q_heads, n_k_heads, half,
        CONJUGATE=conjugate,
        **tiling,
    )  # fmt: skip
    return q_out, k_out


def llama4_rope_forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, freqs_cis: torch.Tensor, **options: Any):
    """The autograd forward, shared with backends that pass ``options`` to
    :func:`llama4_rope_apply` (the NPU's head cap)."""
    # saved as given: under an operator the backward's tensors are rebuilt as
    # views of the arguments, which a real view of a complex tensor is not
    ctx.save_for_backward(freqs_cis)
    ctx.options = options
    return llama4_rope_apply(q, k, real_frequencies(freqs_cis), conjugate=False, **options)


def llama4_rope_backward(ctx: Any, dq: torch.Tensor, dk: torch.Tensor, **options: Any) -> tuple[Any, ...]:
    (freqs_cis,) = ctx.saved_tensors
    dq_in, dk_in = llama4_rope_apply(dq, dk, real_frequencies(freqs_cis), conjugate=True, **{**ctx.options, **options})
    return (dq_in if ctx.needs_input_grad[0] else None, dk_in if ctx.needs_input_grad[1] else None, None)


class Llama4RopeFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, q: torch.Tensor, k: torch.Tensor, freqs_cis: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return llama4_rope_forward(ctx, q, k, freqs_cis)

    @staticmethod
    def backward(ctx: Any, dq: torch.Tensor, dk: torch.Tensor) -> tuple[Any, ...]:
        return llama4_rope_backward(ctx, dq, dk)
