"""int8 x packed 2-bit matmul, portable Triton kernel (math and where it runs:
:mod:`liger_kernel.ops.experimental.mm_int8int2`).

One program per (BLOCK_M, BLOCK_N) tile of C, tiles ordered in groups of
GROUP_M rows of tiles so that neighbouring programs share columns of B in
cache. Each step loads one (BLOCK_K, BLOCK_N) block of packed bytes once and
takes all four of its weight rows from it (rows r + s * R, s = 0..3, R = K / 4),
each against its own (BLOCK_M, BLOCK_K) block of a: B is read once per row of
tiles, in its packed size, and a once per column of tiles. The products are
int8 dots accumulated in int32.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M = 64, 64, 64, 8


@triton.jit
def _int8_int2_matmul_kernel(
    A, B, C, M, N, R, stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    group = pid // (GROUP_M * tiles_n)
    first_m = group * GROUP_M
    group_rows = tl.minimum(tiles_m - first_m, GROUP_M)
    tile_m = first_m + (pid % (GROUP_M * tiles_n)) % group_rows
    tile_n = (pid % (GROUP_M * tiles_n)) // group_rows

    rows = (tile_m * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    cols = (tile_n * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    ks = tl.arange(0, BLOCK_K)
    row_mask = rows < M
    col_mask = cols < N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    for start in tl.range(0, R, BLOCK_K):
        k = start + ks
        k_mask = k < R
        packed = tl.load(
            B + k[:, None] * stride_bk + cols[None, :] * stride_bn, mask=k_mask[:, None] & col_mask[None, :], other=0
        )
        for slot in tl.static_range(4):
            # a stored 0 outside the matrix decodes to -1, so masked a columns are 0 to cancel it
            w = ((packed >> (2 * slot)) & 3).to(tl.int8) - 1
            a = tl.load(
                A + rows[:, None] * stride_am + (slot * R + k)[None, :] * stride_ak,
                mask=row_mask[:, None] & k_mask[None, :],
                other=0,
            )
            acc += tl.dot(a, w, out_dtype=tl.int32)
    tl.store(C + rows[:, None] * stride_cm + cols[None, :] * stride_cn, acc, mask=row_mask[:, None] & col_mask[None, :])


def int8_int2_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a`` int8 (M, 4R) times the packed ``b`` uint8 (R, N): int32 (M, N)."""
    M, _ = a.shape
    R, N = b.shape
    c = torch.empty((M, N), dtype=torch.int32, device=a.device)
    if M and N:
        if R == 0:
            return c.zero_()
        grid = (triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N),)
        _int8_int2_matmul_kernel[grid](
            a, b, c, M, N, R, a.stride(0), a.stride(1), b.stride(0), b.stride(1), c.stride(0), c.stride(1),
            BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, GROUP_M=GROUP_M, num_warps=4,
        )  # fmt: skip
    return c
