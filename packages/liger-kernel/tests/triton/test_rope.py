"""Rotary embedding kernels against the Hugging Face formula in float64."""

from __future__ import annotations

import pytest
import torch

from liger_kernel.triton.rope import RopeFunction

BATCH, SEQ, HEAD_DIM, Q_HEADS, K_HEADS = 2, 5, 8, 4, 2


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def reference(q, k, cos, sin, position_ids, unsqueeze_dim):
    if cos.dim() == 2:
        rows = position_ids if position_ids is not None else torch.arange(q.shape[1 + unsqueeze_dim % 2])[None]
        cos, sin = cos[rows], sin[rows]
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def leaf(t: torch.Tensor, grad: bool = True) -> torch.Tensor:
    return t.detach().clone().requires_grad_(grad)


def tables(kind: str, dtype: torch.dtype):
    """cos/sin (not the duplicated-halves HF ones, so each half is checked) and position_ids."""
    if kind == "3d_batch1":
        shape, position_ids = (1, SEQ, HEAD_DIM), None
    elif kind == "3d_batch":
        shape, position_ids = (BATCH, SEQ, HEAD_DIM), None
    elif kind == "2d_positions":
        shape, position_ids = (3 * SEQ, HEAD_DIM), torch.randint(0, 3 * SEQ, (BATCH, SEQ))
    else:
        shape, position_ids = (SEQ + 2, HEAD_DIM), None
    angles = torch.randn(shape, dtype=torch.float64) * 3
    return angles.cos().to(dtype), angles.sin().to(dtype), position_ids


@pytest.mark.parametrize(
    ("unsqueeze_dim", "kind", "dtype"),
    [
        (dim, kind, torch.float32)
        for dim in (1, 2)
        for kind in ("3d_batch1", "3d_batch", "2d_positions", "2d_no_positions")
    ]
    + [(1, "3d_batch1", torch.bfloat16), (2, "2d_positions", torch.bfloat16)],
)
def test_rope_matches_float64(profile, assert_close, unsqueeze_dim, kind, dtype):
    torch.manual_seed(0)
    cos, sin, position_ids = tables(kind, dtype)

    def heads_tensor(n_heads):
        shape = (BATCH, n_heads, SEQ, HEAD_DIM) if unsqueeze_dim == 1 else (BATCH, SEQ, n_heads, HEAD_DIM)
        return torch.randn(shape, dtype=dtype)

    q, k, dq, dk = heads_tensor(Q_HEADS), heads_tensor(K_HEADS), heads_tensor(Q_HEADS), heads_tensor(K_HEADS)
    qk, kk = leaf(q), leaf(k)
    q_out, k_out = RopeFunction.apply(qk, kk, cos, sin, position_ids, unsqueeze_dim)
    torch.autograd.backward((q_out, k_out), (dq, dk))
    q64, k64 = leaf(q.double()), leaf(k.double())
    q_ref, k_ref = reference(q64, k64, cos.double(), sin.double(), position_ids, unsqueeze_dim)
    torch.autograd.backward((q_ref, k_ref), (dq.double(), dk.double()))
    assert q_out.dtype == dtype and q_out.shape == q.shape and k_out.shape == k.shape
    assert_close(q_out, q_ref, dtype)
    assert_close(k_out, k_ref, dtype)
    assert_close(qk.grad, q64.grad, dtype)
    assert_close(kk.grad, k64.grad, dtype)


def test_rope_transposed_input_and_only_q_grad(profile, assert_close):
    """q given as a (batch, seq, heads, dim) buffer transposed to (batch, heads, seq, dim)."""
    torch.manual_seed(1)
    cos, sin, _ = tables("3d_batch1", torch.float32)
    q_buffer = leaf(torch.randn(BATCH, SEQ, Q_HEADS, HEAD_DIM))
    q = q_buffer.transpose(1, 2)
    k = torch.randn(BATCH, K_HEADS, SEQ, HEAD_DIM)
    q_out, k_out = RopeFunction.apply(q, k, cos, sin)
    q_out.sum().backward()
    q64 = leaf(q.detach().double())
    q_ref, k_ref = reference(q64, k.double(), cos.double(), sin.double(), None, 1)
    q_ref.sum().backward()
    assert_close(q_out, q_ref, torch.float32)
    assert_close(k_out, k_ref, torch.float32)
    assert_close(q_buffer.grad.transpose(1, 2), q64.grad, torch.float32)
