"""LigerLlama4RopeFunction against a float64 oracle (see liger_kernel.ops.llama4_rope)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from liger_conformance import bad_inputs, by_size
from liger_conformance.contracts._support import compare_with_oracle, make, run_twice_bitwise
from liger_kernel.ops.llama4_rope import LigerLlama4RopeFunction, llama4_rope_forward

pytestmark = pytest.mark.liger_op("llama4_rope")


def as_complex(freqs_cis: Tensor) -> Tensor:
    """freqs_cis in either accepted form as a complex128 (batch or 1, seq, head_dim / 2) tensor (2-D: all rows)."""
    if not freqs_cis.is_complex():
        freqs_cis = torch.view_as_complex(freqs_cis.to(torch.float64).contiguous())
    freqs_cis = freqs_cis.to(torch.complex128)
    return freqs_cis.unsqueeze(0) if freqs_cis.dim() == 2 else freqs_cis


def llama4_oracle(q: Tensor, k: Tensor, freqs_cis: Tensor) -> tuple[Tensor, Tensor]:
    """Transformers' ``apply_rotary_emb`` of Llama 4: consecutive pairs of the
    head dimension as complex numbers, times freqs_cis broadcast over heads."""
    freqs = as_complex(freqs_cis)[:, : q.shape[1], None, :]

    def multiply(x: Tensor) -> Tensor:
        pairs = torch.view_as_complex(x.reshape(*x.shape[:-1], x.shape[-1] // 2, 2))
        return torch.view_as_real(pairs * freqs).flatten(3)

    return multiply(q), multiply(k)


#: (batch, q heads, kv heads, seq, head_dim)
SHAPES = by_size(
    small=[
        (1, 1, 1, 1, 2),
        (2, 4, 2, 5, 16),
        (2, 5, 1, 3, 22),
        (1, 3, 3, 4, 128),
    ],
    full=[
        (1, 1, 1, 1, 2),
        (2, 4, 2, 5, 16),
        (2, 5, 1, 3, 22),
        # Llama 4 Scout: 40 heads, 8 kv heads, head_dim 128
        (2, 40, 8, 1024, 128),
        (1, 40, 8, 4099, 128),
    ],
)


def shape_id(shape) -> str:
    return "x".join(map(str, shape))


def frequencies(batch: int, seq: int, half: int, device, rng, *, scale: float = 1.0) -> Tensor:
    """complex64 frequencies of Llama 4's kind: position * inv_freq as angles,
    times ``scale`` (a rope type's attention factor; 1 for the default)."""
    positions = torch.randint(0, 4 * seq + 16, (batch, seq), generator=rng).to(torch.float64)
    inv_freq = 1.0 / (5e5 ** (torch.arange(0, 2 * half, 2, dtype=torch.float64) / (2 * half)))
    angles = positions[..., None] * inv_freq
    return torch.polar(torch.full_like(angles, scale), angles).to(torch.complex64).to(device)


def build(shape, dtype, device, rng, *, freqs_batch=1, layout="contiguous", scale=1.0):
    """q, k and freqs_cis; layout "heads-first" makes q and k (batch, heads, seq,
    head_dim) buffers seen transposed, any other is :func:`make`'s."""
    batch, heads, kv_heads, seq, dim = shape
    if layout == "heads-first":
        q = make((batch, heads, seq, dim), dtype, device, rng).transpose(1, 2)
        k = make((batch, kv_heads, seq, dim), dtype, device, rng).transpose(1, 2)
    else:
        q = make((batch, seq, heads, dim), dtype, device, rng, layout=layout)
        k = make((batch, seq, kv_heads, dim), dtype, device, rng, layout=layout)
    return q, k, frequencies(freqs_batch, seq, dim // 2, device, rng, scale=scale)


def run(q, k, freqs_cis, *, dtype, rng):
    return compare_with_oracle(
        LigerLlama4RopeFunction.apply,
        lambda a: llama4_oracle(a["q"], a["k"], a["freqs_cis"]),
        {"q": q, "k": k, "freqs_cis": freqs_cis},
        dtype=dtype,
        rng=rng,
        grads=("q", "k"),
        outputs=("q_rotated", "k_rotated"),
    )


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape):
    run(*build(shape, liger_dtype, liger_device, liger_rng), dtype=liger_dtype, rng=liger_rng)


def test_per_batch_frequencies_of_any_modulus(liger_device, liger_dtype, liger_rng):
    """One table per batch entry, scaled (not unit modulus): a complex multiply, not only a rotation."""
    q, k, freqs = build((3, 4, 2, 5, 16), liger_dtype, liger_device, liger_rng, freqs_batch=3, scale=1.7)
    run(q, k, freqs, dtype=liger_dtype, rng=liger_rng)


def test_real_form(liger_device, liger_dtype, liger_rng):
    """freqs_cis as torch.view_as_real gives it, (..., head_dim / 2, 2)."""
    q, k, freqs = build((2, 4, 2, 5, 16), liger_dtype, liger_device, liger_rng, freqs_batch=2)
    run(q, k, torch.view_as_real(freqs), dtype=liger_dtype, rng=liger_rng)


def test_table_of_more_positions(liger_device, liger_dtype, liger_rng):
    """A 2-D (positions, head_dim / 2) table: its first seq rows, for every batch entry."""
    q, k, _ = build((2, 3, 1, 5, 16), liger_dtype, liger_device, liger_rng)
    table = frequencies(1, 9, 8, liger_device, liger_rng)[0]
    run(q, k, table, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("layout", ["padded", "strided", "heads-first"])
def test_non_contiguous_q_and_k(liger_device, liger_dtype, liger_rng, layout):
    q, k, freqs = build((2, 4, 2, 5, 16), liger_dtype, liger_device, liger_rng, layout=layout)
    assert not q.is_contiguous()
    run(q, k, freqs, dtype=liger_dtype, rng=liger_rng)


def test_q_and_k_sliced_from_one_projection(liger_device, liger_dtype, liger_rng):
    """q and k as head slices of one fused (batch, seq, heads, head_dim) projection."""
    fused = make((2, 5, 8, 16), liger_dtype, liger_device, liger_rng)
    q, k = fused[:, :, :6], fused[:, :, 6:]
    run(q, k, frequencies(1, 5, 8, liger_device, liger_rng), dtype=liger_dtype, rng=liger_rng)


def test_strided_and_conjugated_frequencies(liger_device, liger_rng):
    """freqs_cis sliced out of a wider table, and a conjugate view (its flag honoured)."""
    q, k, _ = build((2, 3, 1, 4, 8), torch.float32, liger_device, liger_rng)
    wide = frequencies(2, 4, 8, liger_device, liger_rng)[:, :, ::2]
    assert not wide.is_contiguous()
    run(q, k, wide, dtype=torch.float32, rng=liger_rng)
    conjugate = frequencies(1, 4, 4, liger_device, liger_rng).conj()
    assert conjugate.is_conj()
    run(q, k, conjugate, dtype=torch.float32, rng=liger_rng)


def test_imag_sign_is_the_conjugate_multiply(liger_device, liger_rng):
    """0.8.5's llama4_rope_forward: imag_sign=-1 multiplies by conj(freqs_cis),
    for both forms of freqs_cis; other signs are refused."""
    q, k, freqs = build((2, 3, 1, 4, 8), torch.float32, liger_device, liger_rng)
    expected = llama4_oracle(q.double().cpu(), k.double().cpu(), freqs.conj().resolve_conj().cpu())
    for given in (freqs, torch.view_as_real(freqs)):
        got = llama4_rope_forward(q, k, given, imag_sign=-1.0)
        for actual, wanted in zip(got, expected):
            torch.testing.assert_close(actual.cpu().double(), wanted, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="imag_sign"):
        llama4_rope_forward(q, k, freqs, imag_sign=0.5)


@pytest.mark.parametrize("shape", [(0, 2, 1, 5, 8), (2, 2, 1, 0, 8)], ids=["no-batch", "no-tokens"])
def test_empty(liger_device, liger_rng, shape):
    """An empty batch or sequence: empty outputs and gradients, no launch over nothing."""
    run(*build(shape, torch.float32, liger_device, liger_rng), dtype=torch.float32, rng=liger_rng)


def test_block_size_hint_changes_nothing(liger_device, liger_rng):
    q, k, freqs = build((2, 3, 1, 4, 8), torch.float32, liger_device, liger_rng)
    plain = LigerLlama4RopeFunction.apply(q, k, freqs)
    hinted = LigerLlama4RopeFunction.apply(q, k, freqs, 64)
    for a, b in zip(plain, hinted):
        assert torch.equal(a, b)


def test_freqs_get_no_gradient(liger_device, liger_rng):
    q, k, freqs = build((2, 2, 1, 3, 8), torch.float32, liger_device, liger_rng)
    q, k = q.requires_grad_(), k.requires_grad_()
    real = torch.view_as_real(freqs).clone().requires_grad_()
    q_out, k_out = LigerLlama4RopeFunction.apply(q, k, real)
    (q_out.sum() + k_out.sum()).backward()
    assert real.grad is None
    assert q.grad is not None and k.grad is not None


def test_deterministic(liger_device, liger_dtype, liger_rng):
    Q, K, freqs = build((2, 4, 2, 5, 16), liger_dtype, liger_device, liger_rng)
    dQ, dK = make(Q.shape, liger_dtype, liger_device, liger_rng), make(K.shape, liger_dtype, liger_device, liger_rng)

    def once():
        q, k = Q.clone().requires_grad_(), K.clone().requires_grad_()
        q_out, k_out = LigerLlama4RopeFunction.apply(q, k, freqs)
        torch.autograd.backward([q_out, k_out], [dQ.clone(), dK.clone()])
        return q_out, k_out, q.grad, k.grad

    run_twice_bitwise(once, "llama4_rope")


@pytest.mark.parametrize("case", bad_inputs.cases("llama4_rope"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
