"""vision_rope, the Qwen2-VL vision towers' rotary embedding (a layout adapter
over LigerRopeFunction), against a float64 oracle (see liger_kernel.ops.rope.vision_rope)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from liger_conformance import bad_inputs, by_size, oracles
from liger_conformance.contracts._support import compare_with_oracle, make, run_twice_bitwise, shape_id
from liger_kernel.ops.rope import vision_rope

pytestmark = pytest.mark.liger_op("rope")

#: (seq, q heads, k heads, head_dim); the towers' q and k have the same heads
SHAPES = by_size(
    small=[(1, 1, 1, 2), (5, 3, 3, 8), (6, 2, 1, 22), (7, 4, 4, 80)],
    full=[
        (1, 1, 1, 2),
        (6, 2, 1, 22),
        # Qwen2-VL / Qwen2.5-VL towers: 16 heads of 80; Qwen3-VL's: 16 of 72
        (4096, 16, 16, 80),
        (4099, 16, 16, 72),
    ],
)


def vision_oracle(q: Tensor, k: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
    """Transformers' ``apply_rotary_pos_emb_vision``: rotate-half over the whole
    head, (seq, head_dim) cos and sin broadcast over heads."""
    cos, sin = cos[:, None, :], sin[:, None, :]
    return q * cos + oracles.rotate_half(q) * sin, k * cos + oracles.rotate_half(k) * sin


def tower_tables(seq: int, head_dim: int, device, *, dtype=torch.float32) -> tuple[Tensor, Tensor]:
    """cos and sin as the towers build them: angles of the (row, column)
    coordinates of the patches, rows over the first half of the frequencies and
    columns over the second, the halves repeated; fp32, as the towers return them."""
    half = head_dim // 2
    rows_width = (half + 1) // 2
    inv_freq = 1.0 / (10000.0 ** (torch.arange(rows_width, dtype=torch.float64) / max(1, rows_width)))
    side = max(1, int(seq**0.5))
    rows, columns = torch.arange(seq) // side, torch.arange(seq) % side
    angles = torch.cat([rows[:, None] * inv_freq, columns[:, None] * inv_freq[: half - rows_width]], dim=-1)
    emb = torch.cat((angles, angles), dim=-1)
    return emb.cos().to(dtype).to(device), emb.sin().to(dtype).to(device)


def packed_qk(seq: int, heads: int, kv_heads: int, dim: int, dtype, device, rng) -> tuple[Tensor, Tensor]:
    """q and k sliced from one (seq, 3, heads, head_dim) qkv projection, as the towers unbind it."""
    if heads == kv_heads:
        qkv = make((seq, 3, heads, dim), dtype, device, rng)
        return qkv[:, 0], qkv[:, 1]
    return make((seq, heads, dim), dtype, device, rng), make((seq, kv_heads, dim), dtype, device, rng)


def run(q, k, cos, sin, *, dtype, rng):
    return compare_with_oracle(
        vision_rope,
        lambda a: vision_oracle(a["q"], a["k"], a["cos"], a["sin"]),
        {"q": q, "k": k, "cos": cos, "sin": sin},
        dtype=dtype,
        rng=rng,
        grads=("q", "k"),
        outputs=("q_rotated", "k_rotated"),
    )


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape):
    seq, heads, kv_heads, dim = shape
    q, k = packed_qk(seq, heads, kv_heads, dim, liger_dtype, liger_device, liger_rng)
    run(q, k, *tower_tables(seq, dim, liger_device), dtype=liger_dtype, rng=liger_rng)


def test_tables_in_the_input_dtype(liger_device, liger_dtype, liger_rng):
    """cos and sin of q's dtype (a tower that returns them so): read as they are, math in fp32."""
    q, k = packed_qk(5, 3, 3, 16, liger_dtype, liger_device, liger_rng)
    run(q, k, *tower_tables(5, 16, liger_device, dtype=liger_dtype), dtype=liger_dtype, rng=liger_rng)


def test_random_angles(liger_device, liger_dtype, liger_rng):
    """cos and sin of unrelated halves (not repeated), so either half of the table is read where it belongs."""
    q, k = packed_qk(6, 2, 2, 24, liger_dtype, liger_device, liger_rng)
    cos, sin = (
        make((6, 24), torch.float32, liger_device, liger_rng),
        make((6, 24), torch.float32, liger_device, liger_rng),
    )
    run(q, k, cos, sin, dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_non_contiguous_q_and_k(liger_device, liger_dtype, liger_rng, layout):
    q = make((5, 3, 16), liger_dtype, liger_device, liger_rng, layout=layout)
    k = make((5, 2, 16), liger_dtype, liger_device, liger_rng, layout=layout)
    run(q, k, *tower_tables(5, 16, liger_device), dtype=liger_dtype, rng=liger_rng)


def test_float64_is_rounded_to_fp32_first(liger_device, liger_rng):
    """As Transformers' ``.float()`` does: float64 q, k, cos and sin give exactly
    the fp32 result of their fp32 roundings, in float64, gradients too."""
    q64, k64 = packed_qk(5, 2, 2, 8, torch.float64, liger_device, liger_rng)
    cos64, sin64 = (t.double() for t in tower_tables(5, 8, liger_device))
    cos64, sin64 = cos64 + 1e-9, sin64 - 1e-9  # not fp32 values

    def rotated(q, k, cos, sin):
        q, k = q.detach().requires_grad_(), k.detach().requires_grad_()
        q_out, k_out = vision_rope(q, k, cos, sin)
        # the same cotangent, fp32 values, for both calls
        g = torch.linspace(-1, 1, q_out.numel(), device=q_out.device).reshape(q_out.shape).to(q_out.dtype)
        torch.autograd.backward([q_out, k_out], [g, g])
        return q_out, k_out, q.grad, k.grad

    got = rotated(q64, k64, cos64, sin64)
    want = rotated(q64.float(), k64.float(), cos64.float(), sin64.float())
    for index, (actual, wanted) in enumerate(zip(got, want)):
        assert actual.dtype == torch.float64, f"result {index} has dtype {actual.dtype}"
        assert torch.equal(actual, wanted.double()), f"result {index} is not the fp32 computation"


def test_empty(liger_device, liger_rng):
    """No patches: empty outputs and gradients."""
    q, k = packed_qk(0, 2, 2, 8, torch.float32, liger_device, liger_rng)
    run(q, k, *tower_tables(0, 8, liger_device), dtype=torch.float32, rng=liger_rng)


def test_deterministic(liger_device, liger_dtype, liger_rng):
    Q, K = packed_qk(7, 4, 4, 16, liger_dtype, liger_device, liger_rng)
    cos, sin = tower_tables(7, 16, liger_device)
    dQ, dK = make(Q.shape, liger_dtype, liger_device, liger_rng), make(K.shape, liger_dtype, liger_device, liger_rng)

    def once():
        q, k = Q.detach().clone().requires_grad_(), K.detach().clone().requires_grad_()
        q_out, k_out = vision_rope(q, k, cos, sin)
        torch.autograd.backward([q_out, k_out], [dQ.clone(), dK.clone()])
        return q_out, k_out, q.grad, k.grad

    run_twice_bitwise(once, "vision_rope")


@pytest.mark.parametrize("case", bad_inputs.cases("vision_rope"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
