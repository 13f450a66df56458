"""LigerEmbeddingFunction against the float64 oracle (see liger_kernel.ops.experimental.embedding)."""

from __future__ import annotations

import pytest
import torch

from liger_conformance import bad_inputs, by_size, oracles
from liger_conformance.contracts._support import compare_with_oracle, make
from liger_kernel.ops import LigerEmbeddingFunction

pytestmark = pytest.mark.liger_op("embedding")

# (rows of the table, width, shape of the indices)
CASES = by_size(
    small=[(1, 1, (1,)), (10, 7, (3, 5)), (33, 130, (2, 9)), (5, 16, (4, 4, 3))],
    full=[(1, 1, (1,)), (10, 7, (3, 5)), (32000, 4096, (2, 512)), (151936, 896, (1, 1024))],
)


def indices(rows: int, shape: tuple[int, ...], device: torch.device, rng: torch.Generator) -> torch.Tensor:
    """Random indices with repeats (so the backward sums), the last row included."""
    index = torch.randint(0, rows, shape, generator=rng).to(device)
    index.view(-1)[0] = rows - 1
    return index


def run(E, I, padding_idx=None, *, dtype, rng):
    return compare_with_oracle(
        LigerEmbeddingFunction.apply,
        lambda args: oracles.embedding(args["embeddings"], args["indices"], args["padding_idx"]),
        {"embeddings": E, "indices": I, "padding_idx": padding_idx},
        dtype=dtype,
        rng=rng,
        grads=("embeddings",),
        outputs=("y",),
        reduced=("embeddings",),
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"V{c[0]}-D{c[1]}-I{'x'.join(map(str, c[2]))}")
def test_forward_backward(liger_device, liger_dtype, liger_rng, case):
    rows, width, shape = case
    E = make((rows, width), liger_dtype, liger_device, liger_rng)
    run(E, indices(rows, shape, liger_device, liger_rng), dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("padding_idx", [0, 3, -1])
def test_padding_row_gets_no_gradient(liger_device, liger_dtype, liger_rng, padding_idx):
    E = make((6, 24), liger_dtype, liger_device, liger_rng)
    I = torch.tensor([[0, 3, 5, 3], [5, 1, 0, 2]], device=liger_device)
    run(E, I, padding_idx, dtype=liger_dtype, rng=liger_rng)


def test_int32_indices_and_non_contiguous_table(liger_device, liger_dtype, liger_rng):
    E = make((12, 40), liger_dtype, liger_device, liger_rng, layout="strided")
    I = indices(12, (3, 7), liger_device, liger_rng).to(torch.int32)
    run(E, I, dtype=liger_dtype, rng=liger_rng)


def test_many_lookups_of_one_row_sum_exactly(liger_device, liger_rng):
    """Every position reads row 2: its gradient is the sum of all output
    gradients (integers here, exact in fp32), the other rows' zero."""
    E = torch.randn(4, 8, generator=liger_rng).to(liger_device).requires_grad_()
    I = torch.full((50,), 2, device=liger_device)
    y = LigerEmbeddingFunction.apply(E, I)
    dy = torch.randint(-3, 4, (50, 8), generator=liger_rng).float().to(liger_device)
    y.backward(dy)
    expected = torch.zeros(4, 8)
    expected[2] = dy.cpu().sum(0)
    assert torch.equal(y.detach().cpu(), E.detach().cpu()[2].expand(50, 8))
    assert torch.equal(E.grad.cpu(), expected)


def test_empty_indices(liger_device):
    E = torch.randn(5, 8, device=liger_device).requires_grad_()
    y = LigerEmbeddingFunction.apply(E, torch.empty(0, 3, dtype=torch.long, device=liger_device))
    y.sum().backward()
    assert tuple(y.shape) == (0, 3, 8) and torch.count_nonzero(E.grad) == 0


@pytest.mark.parametrize("case", bad_inputs.cases("embedding"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
