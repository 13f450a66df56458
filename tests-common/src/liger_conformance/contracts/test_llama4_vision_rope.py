"""llama4_vision_rope, Llama 4's vision rotary embedding (a layout adapter over
LigerLlama4RopeFunction), against a float64 oracle (see liger_kernel.ops.llama4_rope.llama4_vision_rope)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from liger_conformance import bad_inputs, by_size
from liger_conformance.contracts._support import compare_with_oracle, make, run_twice_bitwise, shape_id
from liger_kernel.ops.llama4_rope import llama4_vision_rope

pytestmark = pytest.mark.liger_op("llama4_rope")

#: (tiles, seq, heads, head_dim); query and key have the same heads in the tower
SHAPES = by_size(
    small=[(1, 1, 1, 2), (2, 5, 3, 8), (1, 10, 2, 22), (2, 17, 4, 88)],
    full=[
        (1, 1, 1, 2),
        (1, 10, 2, 22),
        # Llama 4's tower: 336 / 14 = 24 patches a side and the class token, 16 heads of 88
        (4, 577, 16, 88),
        (1, 4099, 8, 128),
    ],
)


def vision_oracle(query: Tensor, key: Tensor, freqs_ci: Tensor) -> tuple[Tensor, Tensor]:
    """Transformers' ``vision_apply_rotary_emb``: consecutive pairs of the head
    dimension as complex numbers, times the (seq, head_dim / 2) frequencies
    (complex, or real: no imaginary part) broadcast over tiles and heads."""
    freqs = freqs_ci.reshape(1, query.shape[1], 1, freqs_ci.shape[-1])
    if not freqs.is_complex():
        freqs = torch.complex(freqs.double(), torch.zeros_like(freqs.double()))
    freqs = freqs.to(torch.complex128)

    def multiply(x: Tensor) -> Tensor:
        pairs = torch.view_as_complex(x.reshape(*x.shape[:-1], x.shape[-1] // 2, 2))
        return torch.view_as_real(pairs * freqs).flatten(3)

    return multiply(query), multiply(key)


def tower_frequencies(seq: int, half: int, device, rng) -> Tensor:
    """complex64 (seq, 1, head_dim / 2) unit frequencies as ``Llama4VisionRotaryEmbedding``
    keeps them: angles of the patches, and none (f = 1) for the class token, the last row."""
    angles = torch.rand(seq, 1, half, generator=rng, dtype=torch.float64) * 30
    if seq:
        angles[-1] = 0
    return torch.polar(torch.ones_like(angles), angles).to(torch.complex64).to(device)


def build(shape, dtype, device, rng, *, layout="contiguous"):
    tiles, seq, heads, dim = shape
    query = make((tiles, seq, heads, dim), dtype, device, rng, layout=layout)
    key = make((tiles, seq, heads, dim), dtype, device, rng, layout=layout)
    return query, key, tower_frequencies(seq, dim // 2, device, rng)


def run(query, key, freqs_ci, *, dtype, rng):
    return compare_with_oracle(
        llama4_vision_rope,
        lambda a: vision_oracle(a["query"], a["key"], a["freqs_ci"]),
        {"query": query, "key": key, "freqs_ci": freqs_ci},
        dtype=dtype,
        rng=rng,
        grads=("query", "key"),
        outputs=("query_rotated", "key_rotated"),
    )


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape):
    run(*build(shape, liger_dtype, liger_device, liger_rng), dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize(
    "form",
    [(-1, 4), (1, -1, 1, 4), (1, -1, 4)],
    ids=["seq-half", "1-seq-1-half", "1-seq-half"],
)
def test_frequency_shapes(liger_device, liger_rng, form):
    """The frequencies (seq, head_dim / 2) with other dimensions of size 1 around them."""
    query, key, freqs = build((2, 5, 3, 8), torch.float32, liger_device, liger_rng)
    run(query, key, freqs.reshape(form), dtype=torch.float32, rng=liger_rng)


@pytest.mark.parametrize("freqs_dtype", [torch.float32, torch.bfloat16], ids=str)
def test_real_frequencies(liger_device, liger_dtype, liger_rng, freqs_dtype):
    """A real buffer (the complex one of a model cast to a real dtype, its imaginary
    parts dropped): each pair is multiplied by that real f, as Transformers does."""
    query, key, freqs = build((2, 5, 3, 8), liger_dtype, liger_device, liger_rng)
    run(query, key, (freqs.real * 1.5).to(freqs_dtype), dtype=liger_dtype, rng=liger_rng)


def test_frequencies_of_any_modulus(liger_device, liger_dtype, liger_rng):
    """Not unit frequencies: a complex multiply, not only a rotation."""
    query, key, freqs = build((2, 5, 3, 8), liger_dtype, liger_device, liger_rng)
    run(query, key, freqs * 0.7, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("layout", ["padded", "strided", "heads-first"])
def test_non_contiguous_query_and_key(liger_device, liger_dtype, liger_rng, layout):
    if layout == "heads-first":
        query = make((2, 3, 5, 8), liger_dtype, liger_device, liger_rng).transpose(1, 2)
        key = make((2, 3, 5, 8), liger_dtype, liger_device, liger_rng).transpose(1, 2)
        freqs = tower_frequencies(5, 4, liger_device, liger_rng)
    else:
        query, key, freqs = build((2, 5, 3, 8), liger_dtype, liger_device, liger_rng, layout=layout)
    assert not query.is_contiguous()
    run(query, key, freqs, dtype=liger_dtype, rng=liger_rng)


def test_float64_is_rounded_to_fp32_first(liger_device, liger_rng):
    """As Transformers' ``.float()`` does: float64 query and key with complex64
    frequencies give exactly the fp32 result of their fp32 roundings, in float64,
    gradients too."""
    query64, key64, freqs = build((2, 5, 3, 8), torch.float64, liger_device, liger_rng)

    def rotated(query, key):
        query, key = query.detach().requires_grad_(), key.detach().requires_grad_()
        q_out, k_out = llama4_vision_rope(query, key, freqs)
        # the same cotangent, fp32 values, for both calls
        g = torch.linspace(-1, 1, q_out.numel(), device=q_out.device).reshape(q_out.shape).to(q_out.dtype)
        torch.autograd.backward([q_out, k_out], [g, g])
        return q_out, k_out, query.grad, key.grad

    got = rotated(query64, key64)
    want = rotated(query64.float(), key64.float())
    for index, (actual, wanted) in enumerate(zip(got, want)):
        assert actual.dtype == torch.float64, f"result {index} has dtype {actual.dtype}"
        assert torch.equal(actual, wanted.double()), f"result {index} is not the fp32 computation"


@pytest.mark.parametrize("shape", [(0, 5, 2, 8), (2, 0, 2, 8)], ids=["no-tiles", "no-patches"])
def test_empty(liger_device, liger_rng, shape):
    run(*build(shape, torch.float32, liger_device, liger_rng), dtype=torch.float32, rng=liger_rng)


def test_deterministic(liger_device, liger_dtype, liger_rng):
    Q, K, freqs = build((2, 17, 4, 16), liger_dtype, liger_device, liger_rng)
    dQ, dK = make(Q.shape, liger_dtype, liger_device, liger_rng), make(K.shape, liger_dtype, liger_device, liger_rng)

    def once():
        query, key = Q.clone().requires_grad_(), K.clone().requires_grad_()
        q_out, k_out = llama4_vision_rope(query, key, freqs)
        torch.autograd.backward([q_out, k_out], [dQ.clone(), dK.clone()])
        return q_out, k_out, query.grad, key.grad

    run_twice_bitwise(once, "llama4_vision_rope")


@pytest.mark.parametrize("case", bad_inputs.cases("llama4_vision_rope"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
