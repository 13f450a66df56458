"""LigerRopeFunction against the float64 oracle (see liger_kernel.ops.rope)."""

from __future__ import annotations

import pytest
import torch

from liger_conformance import bad_inputs, by_size, oracles
from liger_conformance.contracts._support import (
    compare_with_oracle,
    make,
    run_twice_bitwise,
    shape_id,
)
from liger_kernel.ops import LigerRopeFunction

pytestmark = pytest.mark.liger_op("rope")

#: (batch, q heads, seq, head_dim); k has one head where q has more (grouped-query attention)
SHAPES = by_size(
    small=[(1, 1, 1, 2), (2, 3, 5, 6), (2, 4, 7, 64)],
    full=[(1, 1, 1, 2), (2, 32, 512, 128), (1, 8, 4099, 256)],
)
#: how cos/sin and positions are given
CASES = [
    "cos-broadcast-batch",  # cos (1, seq, dim), q (batch, heads, seq, dim)
    "cos-per-batch",  # cos (batch, seq, dim)
    "seq-first",  # q (batch, seq, heads, dim) with unsqueeze_dim=2
    "table-position-ids",  # cos (positions, dim) indexed by position_ids (batch, seq)
    "table-no-position-ids",  # cos (positions, dim), the first seq rows
    "table-int32-shared-positions",  # position_ids (1, seq) int32
    "cos-3d-ignores-position-ids",
]


def rotary_tables(positions, head_dim, dtype, device):
    """cos and sin as Transformers builds them: (positions, head_dim), halves repeated."""
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = torch.outer(torch.arange(positions, dtype=torch.float64), inv_freq)
    emb = torch.cat((angles, angles), dim=-1)
    return emb.cos().to(dtype).to(device), emb.sin().to(dtype).to(device)


def build(case, shape, dtype, device, rng, transposed=False):
    """(q, k, cos, sin, position_ids, unsqueeze_dim) for one case."""
    batch, heads, seq, dim = shape
    unsqueeze_dim = 2 if case == "seq-first" else 1
    if unsqueeze_dim == 2:
        q_shape, k_shape = (batch, seq, heads, dim), (batch, seq, 1, dim)
    else:
        q_shape, k_shape = (batch, heads, seq, dim), (batch, 1, seq, dim)
    if transposed:
        # how attention layers make q: a (batch, seq, heads, dim) projection, transposed
        q = make((batch, seq, heads, dim), dtype, device, rng).transpose(1, 2)
        k = make((batch, seq, 1, dim), dtype, device, rng).transpose(1, 2)
    else:
        q, k = make(q_shape, dtype, device, rng), make(k_shape, dtype, device, rng)
    table_cos, table_sin = rotary_tables(seq + 11, dim, dtype, device)
    position_ids = None
    if case.startswith("table"):
        cos, sin = table_cos, table_sin
        if case == "table-position-ids":
            position_ids = torch.randint(0, seq + 11, (batch, seq), generator=rng).to(device)
        elif case == "table-int32-shared-positions":
            position_ids = (torch.arange(seq) + 5).to(torch.int32).unsqueeze(0).to(device)
    else:
        picks = torch.randint(0, seq + 11, (batch if case == "cos-per-batch" else 1, seq), generator=rng).to(device)
        cos, sin = table_cos[picks], table_sin[picks]
        if case == "cos-3d-ignores-position-ids":
            position_ids = torch.zeros((batch, seq), dtype=torch.int64, device=device)
    return q, k, cos, sin, position_ids, unsqueeze_dim


def run(q, k, cos, sin, position_ids, unsqueeze_dim, *, dtype, rng):
    return compare_with_oracle(
        LigerRopeFunction.apply,
        lambda a: oracles.rope(a["q"], a["k"], a["cos"], a["sin"], a["position_ids"], a["unsqueeze_dim"]),
        {"q": q, "k": k, "cos": cos, "sin": sin, "position_ids": position_ids, "unsqueeze_dim": unsqueeze_dim},
        dtype=dtype,
        rng=rng,
        grads=("q", "k"),
        outputs=("q_rotated", "k_rotated"),
    )


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape):
    run(*build("cos-broadcast-batch", shape, liger_dtype, liger_device, liger_rng), dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("case", CASES)
def test_cos_sin_and_positions(liger_device, liger_dtype, liger_rng, case):
    run(*build(case, (2, 3, 5, 6), liger_dtype, liger_device, liger_rng), dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("case", ["cos-broadcast-batch", "table-position-ids"])
def test_transposed_q_and_k(liger_device, liger_dtype, liger_rng, case):
    q, k, cos, sin, position_ids, dim = build(case, (2, 3, 5, 8), liger_dtype, liger_device, liger_rng, True)
    assert not q.is_contiguous()
    run(q, k, cos, sin, position_ids, dim, dtype=liger_dtype, rng=liger_rng)


#: (rotary_dim argument, width of cos/sin) for head_dim 8: None infers r from the tables
PARTIAL = [(None, 4), (4, 4), (4, 2), (8, 4), (6, 6), (2, 1)]


@pytest.mark.parametrize("rotary", PARTIAL, ids=lambda p: f"rotary_dim={p[0]}-cos{p[1]}")
@pytest.mark.parametrize("case", ["cos-broadcast-batch", "seq-first", "table-position-ids"])
def test_partial_rotary(liger_device, liger_dtype, liger_rng, case, rotary):
    """Only the first rotary_dim entries of each head rotate (cos/sin r wide,
    or r/2 wide with halves not repeated); the rest and their gradients pass."""
    rotary_dim, width = rotary
    q, k, _, _, position_ids, unsqueeze_dim = build(case, (2, 3, 5, 8), liger_dtype, liger_device, liger_rng)
    r = width if rotary_dim is None else rotary_dim
    cos, sin = rotary_tables(5 + 11, r, liger_dtype, liger_device)
    cos, sin = cos[:, :width], sin[:, :width]
    if not case.startswith("table"):
        picks = torch.randint(0, 16, (1, 5), generator=liger_rng).to(liger_device)
        cos, sin = cos[picks], sin[picks]
    args = {"q": q, "k": k, "cos": cos, "sin": sin, "position_ids": position_ids, "unsqueeze_dim": unsqueeze_dim}
    compare_with_oracle(
        LigerRopeFunction.apply,
        lambda a: oracles.rope(
            a["q"], a["k"], a["cos"], a["sin"], a["position_ids"], a["unsqueeze_dim"], a["rotary_dim"]
        ),
        {**args, "rotary_dim": rotary_dim},
        dtype=liger_dtype,
        rng=liger_rng,
        grads=("q", "k"),
        outputs=("q_rotated", "k_rotated"),
    )


def test_partial_rotary_passes_the_rest_through(liger_device, liger_rng):
    """Entries past rotary_dim come back bitwise, in the forward and the backward."""
    q, k, _, _, _, _ = build("cos-broadcast-batch", (2, 3, 5, 8), torch.float32, liger_device, liger_rng)
    cos, sin = rotary_tables(5, 4, torch.float32, liger_device)
    q, k = q.requires_grad_(), k.requires_grad_()
    q_out, k_out = LigerRopeFunction.apply(q, k, cos, sin, None, 1, 4)
    assert torch.equal(q_out[..., 4:], q[..., 4:]) and torch.equal(k_out[..., 4:], k[..., 4:])
    dq, dk = (
        make(q.shape, torch.float32, liger_device, liger_rng),
        make(k.shape, torch.float32, liger_device, liger_rng),
    )
    torch.autograd.backward([q_out, k_out], [dq, dk])
    assert torch.equal(q.grad[..., 4:], dq[..., 4:]) and torch.equal(k.grad[..., 4:], dk[..., 4:])


def test_cos_and_sin_get_no_gradient(liger_device, liger_rng):
    q, k, cos, sin, _, _ = build("cos-broadcast-batch", (2, 3, 5, 6), torch.float32, liger_device, liger_rng)
    q, k = q.requires_grad_(), k.requires_grad_()
    cos, sin = cos.clone().requires_grad_(), sin.clone().requires_grad_()
    q_out, k_out = LigerRopeFunction.apply(q, k, cos, sin)
    (q_out.sum() + k_out.sum()).backward()
    assert cos.grad is None and sin.grad is None
    assert q.grad is not None and k.grad is not None


def test_deterministic(liger_device, liger_dtype, liger_rng):
    Q, K, cos, sin, position_ids, dim = build("table-position-ids", (2, 3, 5, 8), liger_dtype, liger_device, liger_rng)
    dQ, dK = make(Q.shape, liger_dtype, liger_device, liger_rng), make(K.shape, liger_dtype, liger_device, liger_rng)

    def once():
        q, k = Q.clone().requires_grad_(), K.clone().requires_grad_()
        q_out, k_out = LigerRopeFunction.apply(q, k, cos, sin, position_ids, dim)
        torch.autograd.backward([q_out, k_out], [dQ.clone(), dK.clone()])
        return q_out, k_out, q.grad, k.grad

    run_twice_bitwise(once, "rope")


@pytest.mark.parametrize("case", bad_inputs.cases("rope"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
