"""Llama 4 complex-form RoPE kernel against Transformers' formula in float64.

The ``profile`` fixture's narrow block holds one head per tile, so the kernel
walks q's and k's heads in loops; the wide one takes all heads in one tile.
q and k have different head counts (grouped-query attention) throughout.
"""

from __future__ import annotations

import pytest
import torch

from liger_kernel.triton.llama4_rope import Llama4RopeFunction, llama4_rope_apply, real_frequencies

BATCH, SEQ, HEAD_DIM, Q_HEADS, K_HEADS = 2, 5, 16, 4, 2


def reference(q: torch.Tensor, k: torch.Tensor, freqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Transformers' ``apply_rotary_emb`` of Llama 4, in the dtype given."""

    def multiply(x):
        pairs = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2))
        return torch.view_as_real(pairs * freqs[:, :, None, :]).flatten(3)

    return multiply(q), multiply(k)


def leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


def frequencies(table_batch: int) -> torch.Tensor:
    """complex128 frequencies of random angle and modulus (not only unit ones)."""
    angles = torch.randn((table_batch, SEQ, HEAD_DIM // 2), dtype=torch.float64) * 3
    modulus = 0.5 + torch.rand((table_batch, SEQ, HEAD_DIM // 2), dtype=torch.float64)
    return torch.polar(modulus, angles)


@pytest.mark.parametrize(
    ("table_batch", "dtype", "form"),
    [
        (BATCH, torch.float32, "complex"),
        (1, torch.float32, "complex"),
        (BATCH, torch.float32, "real"),
        (BATCH, torch.bfloat16, "complex"),
        (1, torch.float16, "real"),
    ],
)
def test_matches_float64(profile, assert_close, table_batch, dtype, form):
    torch.manual_seed(0)
    freqs = frequencies(table_batch)
    given = freqs.to(torch.complex64)
    if form == "real":
        given = torch.view_as_real(given)
    q, k = (
        torch.randn(BATCH, SEQ, Q_HEADS, HEAD_DIM, dtype=dtype),
        torch.randn(BATCH, SEQ, K_HEADS, HEAD_DIM, dtype=dtype),
    )
    dq, dk = torch.randn_like(q), torch.randn_like(k)
    qk, kk = leaf(q), leaf(k)
    q_out, k_out = Llama4RopeFunction.apply(qk, kk, given)
    torch.autograd.backward((q_out, k_out), (dq, dk))
    q64, k64 = leaf(q.double()), leaf(k.double())
    # the reference multiplies by the very complex64 values the kernel got
    q_ref, k_ref = reference(q64, k64, freqs.to(torch.complex64).to(torch.complex128))
    torch.autograd.backward((q_ref, k_ref), (dq.double(), dk.double()))
    assert q_out.dtype == dtype and k_out.dtype == dtype and q_out.shape == q.shape and k_out.shape == k.shape
    assert_close(q_out, q_ref, dtype)
    assert_close(k_out, k_ref, dtype)
    assert_close(qk.grad, q64.grad, dtype)
    assert_close(kk.grad, k64.grad, dtype)


def test_strided_inputs_table_and_conjugate(profile, assert_close):
    """q and k as slices of a fused projection (strided heads and tokens), a 2-D
    table longer than the sequence, and a conjugate view resolved, not ignored."""
    torch.manual_seed(1)
    fused = torch.randn(BATCH, SEQ, Q_HEADS + 2 * K_HEADS, HEAD_DIM)
    q, k = fused[:, :, :Q_HEADS], fused[:, :, Q_HEADS : Q_HEADS + K_HEADS]
    assert not q.is_contiguous() and not k.is_contiguous()
    table = frequencies(1)[0].repeat(2, 1).to(torch.complex64)  # 2 * SEQ rows
    q_out, k_out = Llama4RopeFunction.apply(q, k, table.conj())
    expected = table[:SEQ].conj().resolve_conj()[None].to(torch.complex128)
    q_ref, k_ref = reference(q.double(), k.double(), expected)
    assert_close(q_out, q_ref, torch.float32)
    assert_close(k_out, k_ref, torch.float32)


def test_backward_is_the_conjugate_launch(profile):
    """The gradient of q' = q * f is dq' * conj(f): one launch with the conjugate."""
    torch.manual_seed(2)
    freqs = frequencies(BATCH).to(torch.complex64)
    q, k = leaf(torch.randn(BATCH, SEQ, Q_HEADS, HEAD_DIM)), leaf(torch.randn(BATCH, SEQ, K_HEADS, HEAD_DIM))
    g_q, g_k = torch.randn_like(q), torch.randn_like(k)
    q_out, k_out = Llama4RopeFunction.apply(q, k, freqs)
    torch.autograd.backward((q_out, k_out), (g_q, g_k))
    conj_q, conj_k = llama4_rope_apply(g_q, g_k, real_frequencies(freqs.conj()), conjugate=False)
    torch.testing.assert_close(q.grad, conj_q)
    torch.testing.assert_close(k.grad, conj_k)


def test_head_cap_walks_heads(profile, assert_close):
    """max_block_heads=1 (the NPU's cap for an unaligned head pitch) walks one head per tile."""
    torch.manual_seed(3)
    freqs = frequencies(BATCH).to(torch.complex64)
    q, k = torch.randn(BATCH, SEQ, Q_HEADS, HEAD_DIM), torch.randn(BATCH, SEQ, K_HEADS, HEAD_DIM)
    q_out, k_out = llama4_rope_apply(q, k, real_frequencies(freqs), conjugate=False, max_block_heads=1)
    q_ref, k_ref = reference(q.double(), k.double(), freqs.to(torch.complex128))
    assert_close(q_out, q_ref, torch.float32)
    assert_close(k_out, k_ref, torch.float32)
