"""LigerQwen2VLMRopeFunction against a float64 oracle (see liger_kernel.ops.qwen2vl_mrope)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from liger_conformance import bad_inputs, by_size
from liger_conformance.contracts._support import (
    compare_with_oracle,
    make,
    run_twice_bitwise,
)
from liger_kernel.ops.qwen2vl_mrope import LigerQwen2VLMRopeFunction

pytestmark = pytest.mark.liger_op("qwen2vl_mrope")


def _rotate_half(x: Tensor) -> Tensor:
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def mrope_oracle(
    q: Tensor, k: Tensor, cos: Tensor, sin: Tensor, mrope_section: list[int], unsqueeze_dim: int = 1
) -> tuple[Tensor, Tensor]:
    """Transformers' ``apply_multimodal_rotary_pos_emb`` of Qwen2-VL: the head
    dimension of cos and sin (3, batch, seq, head_dim) is cut into sections
    ``mrope_section * 2``; section i comes from stream i % 3; then
    q' = q * cos + rotate_half(q) * sin, likewise k'."""
    sections = list(mrope_section) * 2
    cos = torch.cat([part[i % 3] for i, part in enumerate(cos.split(sections, dim=-1))], dim=-1)
    sin = torch.cat([part[i % 3] for i, part in enumerate(sin.split(sections, dim=-1))], dim=-1)
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin


#: (batch, q heads, kv heads, seq, head_dim, mrope_section)
SHAPES = by_size(
    small=[
        (1, 1, 1, 1, 8, [2, 1, 1]),
        (2, 4, 2, 5, 16, [2, 3, 3]),
        (2, 3, 1, 6, 128, [16, 24, 24]),
    ],
    full=[
        (1, 1, 1, 1, 8, [2, 1, 1]),
        (2, 4, 2, 5, 16, [2, 3, 3]),
        # Qwen2-VL-7B: 28 heads, 4 kv heads, head_dim 128
        (2, 28, 4, 2048, 128, [16, 24, 24]),
        (1, 12, 2, 4099, 128, [16, 24, 24]),
    ],
)


def shape_id(shape) -> str:
    batch, heads, kv_heads, seq, dim, section = shape
    return f"{batch}x{heads}x{kv_heads}x{seq}x{dim}-" + "-".join(map(str, section))


def streams(kind: str, batch: int, seq: int, dim: int, dtype, device, rng) -> tuple[Tensor, Tensor]:
    """cos and sin (3, batch, seq, dim).

    "positions": as Qwen2-VL builds them, from three different position ids
    per token, frequencies repeated over the two halves. "random": arbitrary
    values, so the second half of a column differs from its first and every
    stream differs at every column: a kernel that takes a column from the
    wrong stream or the wrong half cannot pass.
    """
    if kind == "random":
        cos = torch.randn((3, batch, seq, dim), generator=rng, dtype=torch.float64)
        sin = torch.randn((3, batch, seq, dim), generator=rng, dtype=torch.float64)
    else:
        positions = torch.randint(0, 4 * seq + 16, (3, batch, seq), generator=rng).to(torch.float64)
        inv_freq = 1.0 / (1e6 ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
        angles = positions[..., None] * inv_freq
        emb = torch.cat((angles, angles), dim=-1)
        cos, sin = emb.cos(), emb.sin()
    return cos.to(dtype).to(device), sin.to(dtype).to(device)


def build(shape, dtype, device, rng, *, unsqueeze_dim=1, tables="positions", cos_batch=None, transposed=False):
    """(q, k, cos, sin, mrope_section, unsqueeze_dim) for one case."""
    batch, heads, kv_heads, seq, dim, section = shape
    if transposed:
        # how attention layers make q and k: a (batch, seq, heads, dim) projection, transposed
        assert unsqueeze_dim == 1
        q = make((batch, seq, heads, dim), dtype, device, rng).transpose(1, 2)
        k = make((batch, seq, kv_heads, dim), dtype, device, rng).transpose(1, 2)
    elif unsqueeze_dim == 2:
        q = make((batch, seq, heads, dim), dtype, device, rng)
        k = make((batch, seq, kv_heads, dim), dtype, device, rng)
    else:
        q = make((batch, heads, seq, dim), dtype, device, rng)
        k = make((batch, kv_heads, seq, dim), dtype, device, rng)
    cos, sin = streams(tables, batch if cos_batch is None else cos_batch, seq, dim, dtype, device, rng)
    return q, k, cos, sin, section, unsqueeze_dim


def run(q, k, cos, sin, mrope_section, unsqueeze_dim, *, dtype, rng):
    return compare_with_oracle(
        LigerQwen2VLMRopeFunction.apply,
        lambda a: mrope_oracle(a["q"], a["k"], a["cos"], a["sin"], a["mrope_section"], a["unsqueeze_dim"]),
        {"q": q, "k": k, "cos": cos, "sin": sin, "mrope_section": mrope_section, "unsqueeze_dim": unsqueeze_dim},
        dtype=dtype,
        rng=rng,
        grads=("q", "k"),
        outputs=("q_rotated", "k_rotated"),
    )


@pytest.mark.parametrize("unsqueeze_dim", [1, 2], ids=["heads-first", "seq-first"])
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape, unsqueeze_dim):
    inputs = build(shape, liger_dtype, liger_device, liger_rng, unsqueeze_dim=unsqueeze_dim)
    run(*inputs, dtype=liger_dtype, rng=liger_rng)


#: sections of one small head (head_dim 16 or 12): uneven, with an empty stream, all in one stream
SECTIONS = [
    (16, [1, 3, 4]),
    (16, [4, 4, 0]),
    (16, [0, 0, 8]),
    (12, [3, 0, 3]),
]


@pytest.mark.parametrize("unsqueeze_dim", [1, 2], ids=["heads-first", "seq-first"])
@pytest.mark.parametrize(
    ("dim", "section"), SECTIONS, ids=lambda v: "-".join(map(str, v)) if isinstance(v, list) else v
)
def test_sections_pick_their_stream(liger_device, liger_dtype, liger_rng, dim, section, unsqueeze_dim):
    shape = (2, 3, 1, 4, dim, section)
    inputs = build(shape, liger_dtype, liger_device, liger_rng, unsqueeze_dim=unsqueeze_dim, tables="random")
    run(*inputs, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("unsqueeze_dim", [1, 2], ids=["heads-first", "seq-first"])
def test_cos_shared_over_batch(liger_device, liger_dtype, liger_rng, unsqueeze_dim):
    """cos and sin of batch 1 broadcast over the batch of q and k."""
    inputs = build(
        (3, 2, 2, 5, 16, [2, 3, 3]),
        liger_dtype,
        liger_device,
        liger_rng,
        unsqueeze_dim=unsqueeze_dim,
        tables="random",
        cos_batch=1,
    )
    run(*inputs, dtype=liger_dtype, rng=liger_rng)


def test_transposed_q_and_k(liger_device, liger_dtype, liger_rng):
    q, k, cos, sin, section, dim = build(
        (2, 4, 2, 5, 16, [2, 3, 3]), liger_dtype, liger_device, liger_rng, tables="random", transposed=True
    )
    assert not q.is_contiguous() and not k.is_contiguous()
    run(q, k, cos, sin, section, dim, dtype=liger_dtype, rng=liger_rng)


def test_non_contiguous_cos_and_sin(liger_device, liger_dtype, liger_rng):
    """cos and sin sliced out of wider tables (a strided last dimension, a strided batch)."""
    q, k, cos, sin, section, dim = build((2, 2, 1, 3, 8, [2, 1, 1]), liger_dtype, liger_device, liger_rng)
    wide_cos, wide_sin = streams("random", 4, 3, 16, liger_dtype, liger_device, liger_rng)
    cos, sin = wide_cos[:, ::2, :, ::2], wide_sin[:, ::2, :, 1::2]
    assert not cos.is_contiguous() and cos.shape == (3, 2, 3, 8)
    run(q, k, cos, sin, section, dim, dtype=liger_dtype, rng=liger_rng)


def test_tuple_section(liger_device, liger_rng):
    inputs = build((1, 2, 1, 3, 8, (2, 1, 1)), torch.float32, liger_device, liger_rng, tables="random")
    run(*inputs, dtype=torch.float32, rng=liger_rng)


def test_cos_and_sin_get_no_gradient(liger_device, liger_rng):
    q, k, cos, sin, section, dim = build((2, 2, 1, 3, 8, [2, 1, 1]), torch.float32, liger_device, liger_rng)
    q, k = q.requires_grad_(), k.requires_grad_()
    cos, sin = cos.clone().requires_grad_(), sin.clone().requires_grad_()
    q_out, k_out = LigerQwen2VLMRopeFunction.apply(q, k, cos, sin, section, dim)
    (q_out.sum() + k_out.sum()).backward()
    assert cos.grad is None and sin.grad is None
    assert q.grad is not None and k.grad is not None


def test_deterministic(liger_device, liger_dtype, liger_rng):
    Q, K, cos, sin, section, dim = build(
        (2, 4, 2, 5, 16, [2, 3, 3]), liger_dtype, liger_device, liger_rng, tables="random"
    )
    dQ, dK = make(Q.shape, liger_dtype, liger_device, liger_rng), make(K.shape, liger_dtype, liger_device, liger_rng)

    def once():
        q, k = Q.clone().requires_grad_(), K.clone().requires_grad_()
        q_out, k_out = LigerQwen2VLMRopeFunction.apply(q, k, cos, sin, section, dim)
        torch.autograd.backward([q_out, k_out], [dQ.clone(), dK.clone()])
        return q_out, k_out, q.grad, k.grad

    run_twice_bitwise(once, "qwen2vl_mrope")


@pytest.mark.parametrize("case", bad_inputs.cases("qwen2vl_mrope"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
