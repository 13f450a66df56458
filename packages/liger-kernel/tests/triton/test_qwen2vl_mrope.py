"""M-RoPE kernel against Transformers' Qwen2-VL formula in float64.

The ``profile`` fixture's narrow block leaves room for one head per tile, so
the kernel walks the heads in a loop; the wide one takes all heads in one tile.
"""

from __future__ import annotations

import pytest
import torch

from liger_kernel.triton.qwen2vl_mrope import Qwen2VLMRopeFunction

BATCH, SEQ, HEAD_DIM, Q_HEADS, K_HEADS = 2, 5, 16, 4, 2


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def reference(q, k, cos, sin, mrope_section, unsqueeze_dim):
    sections = list(mrope_section) * 2
    cos = torch.cat([part[i % 3] for i, part in enumerate(cos.split(sections, dim=-1))], dim=-1)
    sin = torch.cat([part[i % 3] for i, part in enumerate(sin.split(sections, dim=-1))], dim=-1)
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def leaf(t: torch.Tensor, grad: bool = True) -> torch.Tensor:
    return t.detach().clone().requires_grad_(grad)


def tables(table_batch: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Independent angles per stream and column, so a wrong stream or half shows."""
    angles = torch.randn((3, table_batch, SEQ, HEAD_DIM), dtype=torch.float64) * 3
    return angles.cos().to(dtype), angles.sin().to(dtype)


@pytest.mark.parametrize(
    ("unsqueeze_dim", "mrope_section", "table_batch", "dtype"),
    [
        (1, [2, 3, 3], BATCH, torch.float32),
        (2, [2, 3, 3], BATCH, torch.float32),
        (1, [0, 5, 3], 1, torch.float32),
        (2, [8, 0, 0], 1, torch.float32),
        (1, [1, 1, 6], BATCH, torch.bfloat16),
    ],
)
def test_mrope_matches_float64(profile, assert_close, unsqueeze_dim, mrope_section, table_batch, dtype):
    torch.manual_seed(0)
    cos, sin = tables(table_batch, dtype)

    def heads_tensor(n_heads):
        shape = (BATCH, n_heads, SEQ, HEAD_DIM) if unsqueeze_dim == 1 else (BATCH, SEQ, n_heads, HEAD_DIM)
        return torch.randn(shape, dtype=dtype)

    q, k, dq, dk = heads_tensor(Q_HEADS), heads_tensor(K_HEADS), heads_tensor(Q_HEADS), heads_tensor(K_HEADS)
    qk, kk = leaf(q), leaf(k)
    q_out, k_out = Qwen2VLMRopeFunction.apply(qk, kk, cos, sin, mrope_section, unsqueeze_dim)
    torch.autograd.backward((q_out, k_out), (dq, dk))
    q64, k64 = leaf(q.double()), leaf(k.double())
    q_ref, k_ref = reference(q64, k64, cos.double(), sin.double(), mrope_section, unsqueeze_dim)
    torch.autograd.backward((q_ref, k_ref), (dq.double(), dk.double()))
    assert q_out.dtype == dtype and q_out.shape == q.shape and k_out.shape == k.shape
    assert_close(q_out, q_ref, dtype)
    assert_close(k_out, k_ref, dtype)
    assert_close(qk.grad, q64.grad, dtype)
    assert_close(kk.grad, k64.grad, dtype)


def test_mrope_transposed_input_and_only_q_grad(profile, assert_close):
    """q given as a (batch, seq, heads, dim) buffer transposed to (batch, heads, seq, dim)."""
    torch.manual_seed(1)
    cos, sin = tables(BATCH, torch.float32)
    q_buffer = leaf(torch.randn(BATCH, SEQ, Q_HEADS, HEAD_DIM))
    q = q_buffer.transpose(1, 2)
    k = torch.randn(BATCH, K_HEADS, SEQ, HEAD_DIM)
    q_out, k_out = Qwen2VLMRopeFunction.apply(q, k, cos, sin, [2, 3, 3])
    q_out.sum().backward()
    q64 = leaf(q.detach().double())
    q_ref, k_ref = reference(q64, k.double(), cos.double(), sin.double(), [2, 3, 3], 1)
    q_ref.sum().backward()
    assert_close(q_out, q_ref, torch.float32)
    assert_close(k_out, k_ref, torch.float32)
    assert_close(q_buffer.grad.transpose(1, 2), q64.grad, torch.float32)
