"""MoE SwiGLU experts, portable Triton kernels (math: :mod:`liger_kernel.ops.fused_moe`).

Layout. The T * K routed (token, expert) pairs, "slots" in (T, K) order, are
sorted by expert once (a stable sort, so every run sums in the same order);
expert e owns the sorted rows [ends[e-1], ends[e]). The row kernels cut each
expert's rows into tiles of BLOCK_M and a program finds its tile's expert
from the running tile count ``tile_ends`` (a vector compare over the padded
expert count), so no tile map and no host synchronization is needed: the grid
is the bound ceil(T*K / BLOCK_M) + E and the programs past the last tile do
nothing. The weight-gradient kernels run one program per (expert, output
tile) and walk that expert's rows.

What is stored. Forward keeps the [g; u] pre-activations of the sorted rows
(T*K x 2I), nothing per expert; h = silu(g) * u is recomputed wherever it is
read (the down projection and its weight gradient), so it is never written.
Tokens are gathered by index inside the kernels (x is never copied per slot),
and each slot's weighted product is written at its (token, k) place, so the
sum over k is one deterministic reduction over a (T, K, H) view.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from liger_kernel.dispatch import device_profile
from liger_kernel.triton.launch import accumulator_dtype, launch

#: rows x columns x reduction of one program's product tile: tl.dot's fp32
#: accumulator of 64 x 64 in 4 warps, operand tiles of 8 KiB at 16 bits
BLOCK_M, BLOCK_N, BLOCK_K = 64, 64, 64
NUM_WARPS = 4
#: the products' operand loads are what tl.dot pipelines (shared memory on sm_90)
NUM_STAGES = 3
#: Every tl.dot here asks for input_precision="ieee". For fp32 operands that is
#: the contract (fp32 products, not TF32); 16-bit operands are multiplied
#: exactly in every mode and still go to the matrix units under "ieee"
#: (wgmma on sm_90, tcgen05 on sm_100, MFMA on gfx942/gfx950), whereas "tf32"
#: is refused by gfx950's Triton backend and by triton-ascend (whose cube unit
#: names its reduced fp32 mode "hf32").
#: columns of the down projection's backward, whose epilogue (the gate's
#: backward) keeps eight tiles of fp32 live: at 64 they outgrow an Intel Xe
#: core's 128 KiB of shared local memory
EPILOGUE_BLOCK_N = 32


@triton.jit
def _expert_tile(pid_m, TILE_ENDS, ENDS, n_experts, BLOCK_M: tl.constexpr, E_PAD: tl.constexpr):
    """(expert, sorted rows, their mask, whether this tile exists) of row tile ``pid_m``."""
    experts = tl.arange(0, E_PAD)
    tile_ends = tl.load(TILE_ENDS + experts, mask=experts < n_experts, other=2147483647)
    expert = tl.sum((tile_ends <= pid_m).to(tl.int32), axis=0)
    exists = expert < n_experts
    expert = tl.minimum(expert, n_experts - 1)
    first_tile = tl.load(TILE_ENDS + expert - 1, mask=expert > 0, other=0)
    seg_start = tl.load(ENDS + expert - 1, mask=expert > 0, other=0)
    # a tile past the last one keeps no row
    seg_end = tl.where(exists, tl.load(ENDS + expert), 0)
    rows = seg_start + (pid_m - first_tile) * BLOCK_M + tl.arange(0, BLOCK_M)
    return expert.to(tl.int64), rows, rows < seg_end, exists


@triton.jit
def _load_weight_tile(base, ks, cols, k_mask, n_mask, stride_k, stride_n, K_CONTIGUOUS: tl.constexpr):
    """The (k, n) tile of one expert's weight, loaded along its contiguous
    dimension: a 2-D tile load must advance by whole rows of memory (the NPU's
    vector cores fault on a row pitch that is not a multiple of 32 bytes), so
    a k-contiguous weight is read as (n, k) rows and transposed on chip."""
    if K_CONTIGUOUS:
        mask = n_mask[:, None] & k_mask[None, :]
        return tl.trans(tl.load(base + cols[:, None] * stride_n + ks[None, :] * stride_k, mask=mask, other=0.0))
    else:
        mask = k_mask[:, None] & n_mask[None, :]
        return tl.load(base + ks[:, None] * stride_k + cols[None, :] * stride_n, mask=mask, other=0.0)


@triton.jit
def _store_weight_grad(base, ms, ns, m_mask, n_mask, stride_m, stride_n, tile, M_CONTIGUOUS: tl.constexpr):
    """Store an (m, n) tile of a weight gradient along its contiguous dimension
    (see :func:`_load_weight_tile`)."""
    if M_CONTIGUOUS:
        mask = n_mask[:, None] & m_mask[None, :]
        tl.store(base + ns[:, None] * stride_n + ms[None, :] * stride_m, tl.trans(tile), mask=mask)
    else:
        tl.store(base + ms[:, None] * stride_m + ns[None, :] * stride_n, tile, mask=m_mask[:, None] & n_mask[None, :])


@triton.jit
def _silu_mul(g, u):
    return g * tl.sigmoid(g) * u


@triton.jit
def _gate_up_kernel(
    X,
    W,
    GU,
    ORDER,
    TILE_ENDS,
    ENDS,
    n_experts,
    n_col_tiles,
    hidden,
    inter,
    top_k,
    stride_we,
    stride_k,
    stride_n,
    W_K_CONTIGUOUS: tl.constexpr,
    ACC: tl.constexpr,
    E_PAD: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """GU[r] = [Wg[e] x[t]; Wu[e] x[t]] for the sorted rows r of each expert e."""
    pid = tl.program_id(0)
    pid_m, pid_n = pid // n_col_tiles, pid % n_col_tiles
    expert, rows, row_mask, exists = _expert_tile(pid_m, TILE_ENDS, ENDS, n_experts, BLOCK_M, E_PAD)
    if exists:
        tokens = (tl.load(ORDER + rows, mask=row_mask, other=0) // top_k).to(tl.int64)
        cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        col_mask = cols < inter
        w_gate = W + expert * stride_we
        w_up = w_gate + inter * stride_n
        acc_g = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC)
        acc_u = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC)
        for k0 in range(0, hidden, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            k_mask = ks < hidden
            x = tl.load(X + tokens[:, None] * hidden + ks[None, :], mask=row_mask[:, None] & k_mask[None, :], other=0.0)
            wg = _load_weight_tile(w_gate, ks, cols, k_mask, col_mask, stride_k, stride_n, W_K_CONTIGUOUS)
            wu = _load_weight_tile(w_up, ks, cols, k_mask, col_mask, stride_k, stride_n, W_K_CONTIGUOUS)
            acc_g = tl.dot(x, wg, acc_g, input_precision="ieee")
            acc_u = tl.dot(x, wu, acc_u, input_precision="ieee")
        out = GU + rows[:, None].to(tl.int64) * (2 * inter) + cols[None, :]
        out_mask = row_mask[:, None] & col_mask[None, :]
        tl.store(out, acc_g.to(GU.dtype.element_ty), mask=out_mask)
        tl.store(out + inter, acc_u.to(GU.dtype.element_ty), mask=out_mask)


@triton.jit
def _down_kernel(
    GU,
    W,
    Y,
    ORDER,
    WEIGHTS,
    TILE_ENDS,
    ENDS,
    n_experts,
    n_col_tiles,
    hidden,
    inter,
    stride_we,
    stride_k,
    stride_n,
    W_K_CONTIGUOUS: tl.constexpr,
    ACC: tl.constexpr,
    E_PAD: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """Y[slot(r)] = w[slot(r)] * Wd[e] h[r], h recomputed from GU."""
    pid = tl.program_id(0)
    pid_m, pid_n = pid // n_col_tiles, pid % n_col_tiles
    expert, rows, row_mask, exists = _expert_tile(pid_m, TILE_ENDS, ENDS, n_experts, BLOCK_M, E_PAD)
    if exists:
        cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        col_mask = cols < hidden
        gu = GU + rows[:, None].to(tl.int64) * (2 * inter)
        w = W + expert * stride_we
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC)
        for k0 in range(0, inter, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            k_mask = ks < inter
            h_mask = row_mask[:, None] & k_mask[None, :]
            g = tl.load(gu + ks[None, :], mask=h_mask, other=0.0).to(ACC)
            u = tl.load(gu + inter + ks[None, :], mask=h_mask, other=0.0).to(ACC)
            h = _silu_mul(g, u).to(GU.dtype.element_ty)
            wd = _load_weight_tile(w, ks, cols, k_mask, col_mask, stride_k, stride_n, W_K_CONTIGUOUS)
            acc = tl.dot(h, wd, acc, input_precision="ieee")
        slots = tl.load(ORDER + rows, mask=row_mask, other=0).to(tl.int64)
        weights = tl.load(WEIGHTS + slots, mask=row_mask, other=0.0).to(ACC)
        y = acc.to(Y.dtype.element_ty).to(ACC) * weights[:, None]
        tl.store(
            Y + slots[:, None] * hidden + cols[None, :],
            y.to(Y.dtype.element_ty),
            mask=row_mask[:, None] & col_mask[None, :],
        )


@triton.jit
def _down_backward_kernel(
    DY,
    W,
    GU,
    DGU,
    DW_PARTS,
    ORDER,
    WEIGHTS,
    TILE_ENDS,
    ENDS,
    n_experts,
    n_col_tiles,
    n_slots,
    hidden,
    inter,
    top_k,
    stride_we,
    stride_k,
    stride_n,
    W_K_CONTIGUOUS: tl.constexpr,
    ACC: tl.constexpr,
    E_PAD: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """dh = Wd[e]^T dy[t] per sorted row, then the gate's backward into DGU,
    w * dh scaled, and this column tile's share of dL/dw = dh . h."""
    pid = tl.program_id(0)
    pid_m, pid_n = pid // n_col_tiles, pid % n_col_tiles
    expert, rows, row_mask, exists = _expert_tile(pid_m, TILE_ENDS, ENDS, n_experts, BLOCK_M, E_PAD)
    if exists:
        slots = tl.load(ORDER + rows, mask=row_mask, other=0).to(tl.int64)
        tokens = slots // top_k
        cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        col_mask = cols < inter
        w = W + expert * stride_we
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC)
        for k0 in range(0, hidden, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            k_mask = ks < hidden
            dy = tl.load(
                DY + tokens[:, None] * hidden + ks[None, :], mask=row_mask[:, None] & k_mask[None, :], other=0.0
            )
            wd = _load_weight_tile(w, ks, cols, k_mask, col_mask, stride_k, stride_n, W_K_CONTIGUOUS)
            acc = tl.dot(dy, wd, acc, input_precision="ieee")
        tile_mask = row_mask[:, None] & col_mask[None, :]
        gu = rows[:, None].to(tl.int64) * (2 * inter) + cols[None, :]
        g = tl.load(GU + gu, mask=tile_mask, other=0.0).to(ACC)
        u = tl.load(GU + gu + inter, mask=tile_mask, other=0.0).to(ACC)
        s = tl.sigmoid(g)
        silu = g * s
        h = (silu * u).to(GU.dtype.element_ty).to(ACC)
        tl.store(DW_PARTS + pid_n * n_slots + slots, tl.sum(acc * h, axis=1), mask=row_mask)
        dh = acc * tl.load(WEIGHTS + slots, mask=row_mask, other=0.0).to(ACC)[:, None]
        tl.store(DGU + gu, (dh * u * s * (1.0 + g * (1.0 - s))).to(DGU.dtype.element_ty), mask=tile_mask)
        tl.store(DGU + gu + inter, (dh * silu).to(DGU.dtype.element_ty), mask=tile_mask)


@triton.jit
def _input_grad_kernel(
    DGU,
    W,
    DXS,
    ORDER,
    TILE_ENDS,
    ENDS,
    n_experts,
    n_col_tiles,
    hidden,
    inter,
    stride_we,
    stride_k,
    stride_n,
    W_K_CONTIGUOUS: tl.constexpr,
    ACC: tl.constexpr,
    E_PAD: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """DXS[slot(r)] = [Wg[e]; Wu[e]]^T dGU[r]: each slot's share of dL/dx."""
    pid = tl.program_id(0)
    pid_m, pid_n = pid // n_col_tiles, pid % n_col_tiles
    expert, rows, row_mask, exists = _expert_tile(pid_m, TILE_ENDS, ENDS, n_experts, BLOCK_M, E_PAD)
    if exists:
        cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        col_mask = cols < hidden
        dgu = DGU + rows[:, None].to(tl.int64) * (2 * inter)
        w = W + expert * stride_we
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC)
        for k0 in range(0, 2 * inter, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            k_mask = ks < 2 * inter
            a = tl.load(dgu + ks[None, :], mask=row_mask[:, None] & k_mask[None, :], other=0.0)
            wk = _load_weight_tile(w, ks, cols, k_mask, col_mask, stride_k, stride_n, W_K_CONTIGUOUS)
            acc = tl.dot(a, wk, acc, input_precision="ieee")
        slots = tl.load(ORDER + rows, mask=row_mask, other=0).to(tl.int64)
        out = DXS + slots[:, None] * hidden + cols[None, :]
        tl.store(out, acc.to(DXS.dtype.element_ty), mask=row_mask[:, None] & col_mask[None, :])


@triton.jit
def _down_weight_grad_kernel(
    DY,
    GU,
    DWD,
    ORDER,
    SORTED_WEIGHTS,
    ENDS,
    n_row_tiles,
    n_col_tiles,
    hidden,
    inter,
    top_k,
    stride_de,
    stride_dn,
    stride_dk,
    OUT_M_CONTIGUOUS: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """dWd[e] = sum over e's rows of (w * dy[t]) h^T, h recomputed from GU; the
    routing weights come in sorted-row order (one gather fewer in the loop: with
    it, gfx942 spilled scalar registers)."""
    pid = tl.program_id(0)
    per_expert = n_row_tiles * n_col_tiles
    expert = pid // per_expert
    pid_m, pid_n = (pid % per_expert) // n_col_tiles, pid % n_col_tiles
    seg_start = tl.load(ENDS + expert - 1, mask=expert > 0, other=0)
    seg_end = tl.load(ENDS + expert)
    ms = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    ns = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_mask, n_mask = ms < hidden, ns < inter
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC)
    for r0 in range(seg_start, seg_end, BLOCK_K):
        rows = r0 + tl.arange(0, BLOCK_K)
        r_mask = rows < seg_end
        slots = tl.load(ORDER + rows, mask=r_mask, other=0).to(tl.int64)
        weights = tl.load(SORTED_WEIGHTS + rows, mask=r_mask, other=0.0).to(ACC)
        # read as (rows, hidden) and transposed on chip: a tile load advances by whole rows
        dy_rows = DY + (slots // top_k)[:, None] * hidden + ms[None, :]
        dy = tl.load(dy_rows, mask=r_mask[:, None] & m_mask[None, :], other=0.0)
        dy = tl.trans((dy.to(ACC) * weights[:, None]).to(DY.dtype.element_ty))
        gu = GU + rows[:, None].to(tl.int64) * (2 * inter) + ns[None, :]
        h_mask = r_mask[:, None] & n_mask[None, :]
        g = tl.load(gu, mask=h_mask, other=0.0).to(ACC)
        u = tl.load(gu + inter, mask=h_mask, other=0.0).to(ACC)
        acc = tl.dot(dy, _silu_mul(g, u).to(GU.dtype.element_ty), acc, input_precision="ieee")
    base = DWD + expert.to(tl.int64) * stride_de
    tile = acc.to(DWD.dtype.element_ty)
    _store_weight_grad(base, ms, ns, m_mask, n_mask, stride_dn, stride_dk, tile, OUT_M_CONTIGUOUS)


@triton.jit
def _gate_up_weight_grad_kernel(
    DGU,
    X,
    DWGU,
    ORDER,
    ENDS,
    n_row_tiles,
    n_col_tiles,
    hidden,
    inter,
    top_k,
    stride_de,
    stride_dn,
    stride_dk,
    OUT_M_CONTIGUOUS: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """dWgu[e] = sum over e's rows of dGU[r] x[t]^T."""
    pid = tl.program_id(0)
    per_expert = n_row_tiles * n_col_tiles
    expert = pid // per_expert
    pid_m, pid_n = (pid % per_expert) // n_col_tiles, pid % n_col_tiles
    seg_start = tl.load(ENDS + expert - 1, mask=expert > 0, other=0)
    seg_end = tl.load(ENDS + expert)
    ms = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    ns = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_mask, n_mask = ms < 2 * inter, ns < hidden
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC)
    for r0 in range(seg_start, seg_end, BLOCK_K):
        rows = r0 + tl.arange(0, BLOCK_K)
        r_mask = rows < seg_end
        tokens = (tl.load(ORDER + rows, mask=r_mask, other=0) // top_k).to(tl.int64)
        dgu_rows = DGU + rows[:, None].to(tl.int64) * (2 * inter) + ms[None, :]
        dgu = tl.trans(tl.load(dgu_rows, mask=r_mask[:, None] & m_mask[None, :], other=0.0))
        x = tl.load(X + tokens[:, None] * hidden + ns[None, :], mask=r_mask[:, None] & n_mask[None, :], other=0.0)
        acc = tl.dot(dgu, x, acc, input_precision="ieee")
    base = DWGU + expert.to(tl.int64) * stride_de
    tile = acc.to(DWGU.dtype.element_ty)
    _store_weight_grad(base, ms, ns, m_mask, n_mask, stride_dn, stride_dk, tile, OUT_M_CONTIGUOUS)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def route(top_k_index: torch.Tensor, n_experts: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(order, ends, tile_ends): the slots sorted by expert (stable), each
    expert's end row in that order, and its end tile of BLOCK_M rows; all on
    the device, with no host synchronization."""
    flat = top_k_index.reshape(-1)
    order = torch.sort(flat, stable=True).indices
    counts = torch.zeros(n_experts, dtype=torch.int32, device=flat.device)
    counts.scatter_add_(0, flat.long(), torch.ones_like(flat, dtype=torch.int32))
    ends = torch.cumsum(counts, 0, dtype=torch.int32)
    tile_ends = torch.cumsum(torch.div(counts + (BLOCK_M - 1), BLOCK_M, rounding_mode="floor"), 0, dtype=torch.int32)
    return order, ends, tile_ends


def _weight_strides(weight: torch.Tensor, k_dim: int, n_dim: int) -> tuple[int, int, int, bool]:
    """(expert stride, stride along the product's k, along its n, whether k is
    the contiguous one) of a stacked (E, ., .) weight."""
    strides = weight.stride()
    return strides[0], strides[k_dim], strides[n_dim], strides[k_dim] == 1


def _kernel_options(dtype: torch.dtype) -> dict[str, Any]:
    return {
        "ACC": accumulator_dtype(dtype),
        "BLOCK_M": BLOCK_M,
        "BLOCK_N": BLOCK_N,
        "BLOCK_K": BLOCK_K,
        "num_warps": NUM_WARPS,
        "num_stages": NUM_STAGES,
    }


class FusedMoEFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        gate_up_proj: torch.Tensor,
        down_proj: torch.Tensor,
        top_k_index: torch.Tensor,
        top_k_weights: torch.Tensor,
    ) -> torch.Tensor:
        tokens, top_k = top_k_index.shape
        n_experts, hidden, inter = down_proj.shape
        n_slots = tokens * top_k
        x = x.contiguous()
        weights = top_k_weights.contiguous()
        order, ends, tile_ends = route(top_k_index, n_experts)
        profile = device_profile(x.device)
        options = _kernel_options(x.dtype)
        e_pad = triton.next_power_of_2(n_experts)
        row_tiles = _cdiv(n_slots, BLOCK_M) + n_experts

        gu = torch.empty((n_slots, 2 * inter), dtype=x.dtype, device=x.device)
        col_tiles = _cdiv(inter, BLOCK_N)
        # (E, 2I, H) read as the product's (H, 2I) operand: reduction k over H, columns n over 2I
        *strides, k_contiguous = _weight_strides(gate_up_proj, 2, 1)
        launch(profile, _gate_up_kernel, row_tiles * col_tiles, x, gate_up_proj, gu, order, tile_ends, ends,
               n_experts, col_tiles, hidden, inter, top_k, *strides, W_K_CONTIGUOUS=k_contiguous, E_PAD=e_pad,
               **options)  # fmt: skip
        y = torch.empty((tokens, top_k, hidden), dtype=x.dtype, device=x.device)
        col_tiles = _cdiv(hidden, BLOCK_N)
        *strides, k_contiguous = _weight_strides(down_proj, 2, 1)
        launch(profile, _down_kernel, row_tiles * col_tiles, gu, down_proj, y, order, weights, tile_ends, ends,
               n_experts, col_tiles, hidden, inter, *strides, W_K_CONTIGUOUS=k_contiguous, E_PAD=e_pad,
               **options)  # fmt: skip
        ctx.save_for_backward(x, gate_up_proj, down_proj, weights, gu, order, ends, tile_ends)
        ctx.weights_dtype = top_k_weights.dtype
        return y[:, 0] if top_k == 1 else y.sum(dim=1)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[Any, ...]:
        x, gate_up_proj, down_proj, weights, gu, order, ends, tile_ends = ctx.saved_tensors
        need_x, need_gate_up, need_down, _, need_weights = ctx.needs_input_grad
        tokens, hidden = x.shape
        n_experts, _, inter = down_proj.shape
        n_slots = order.numel()
        top_k = n_slots // tokens if tokens else 1
        dy = dy.contiguous()
        profile = device_profile(dy.device)
        options = _kernel_options(x.dtype)
        e_pad = triton.next_power_of_2(n_experts)
        row_tiles = _cdiv(n_slots, BLOCK_M) + n_experts

        col_tiles = _cdiv(inter, EPILOGUE_BLOCK_N)
        dgu = torch.empty_like(gu)
        dw_parts = torch.empty(
            (col_tiles, n_slots), dtype=torch.float32 if x.dtype != torch.float64 else x.dtype, device=x.device
        )
        *strides, k_contiguous = _weight_strides(down_proj, 1, 2)
        launch(profile, _down_backward_kernel, row_tiles * col_tiles, dy, down_proj, gu, dgu, dw_parts, order, weights,
               tile_ends, ends, n_experts, col_tiles, n_slots, hidden, inter, top_k, *strides,
               W_K_CONTIGUOUS=k_contiguous, E_PAD=e_pad, **{**options, "BLOCK_N": EPILOGUE_BLOCK_N})  # fmt: skip
        dx = dgate_up = ddown = dweights = None
        if need_weights:
            dweights = dw_parts.sum(dim=0).view(tokens, top_k).to(ctx.weights_dtype)
        if need_down:
            ddown = torch.empty_like(down_proj)
            m_tiles, n_tiles = _cdiv(hidden, BLOCK_M), _cdiv(inter, BLOCK_N)
            launch(profile, _down_weight_grad_kernel, n_experts * m_tiles * n_tiles, dy, gu, ddown, order, weights.reshape(-1)[order], ends,
                   m_tiles, n_tiles, hidden, inter, top_k, *ddown.stride(),
                   OUT_M_CONTIGUOUS=ddown.stride(1) == 1, **options)  # fmt: skip
        if need_gate_up:
            dgate_up = torch.empty_like(gate_up_proj)
            m_tiles, n_tiles = _cdiv(2 * inter, BLOCK_M), _cdiv(hidden, BLOCK_N)
            launch(profile, _gate_up_weight_grad_kernel, n_experts * m_tiles * n_tiles, dgu, x, dgate_up, order, ends,
                   m_tiles, n_tiles, hidden, inter, top_k, *dgate_up.stride(),
                   OUT_M_CONTIGUOUS=dgate_up.stride(1) == 1, **options)  # fmt: skip
        if need_x:
            dxs = torch.empty((tokens, top_k, hidden), dtype=x.dtype, device=x.device)
            col_tiles = _cdiv(hidden, BLOCK_N)
            *strides, k_contiguous = _weight_strides(gate_up_proj, 1, 2)
            launch(profile, _input_grad_kernel, row_tiles * col_tiles, dgu, gate_up_proj, dxs, order, tile_ends, ends,
                   n_experts, col_tiles, hidden, inter, *strides, W_K_CONTIGUOUS=k_contiguous, E_PAD=e_pad,
                   **options)  # fmt: skip
            dx = dxs[:, 0] if top_k == 1 else dxs.sum(dim=1)
        return dx, dgate_up, ddown, None, dweights
