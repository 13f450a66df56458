"""The int8 x int2 matmul: packing round trip and 0.8.5's byte layout, the exact
CPU result, the Triton kernel (under the interpreter) against it, and the
refusals."""

from __future__ import annotations

import pytest
import torch

from liger_kernel.ops.experimental.mm_int8int2 import matmul, pack_weights, unpack_weights
from liger_kernel.triton.mm_int8int2 import int8_int2_matmul


def ternary(k: int, n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(-1, 2, (k, n), generator=torch.Generator().manual_seed(seed), dtype=torch.int32)


def activations(m: int, k: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(-128, 128, (m, k), generator=torch.Generator().manual_seed(seed), dtype=torch.int8)


def test_pack_layout_and_round_trip():
    w = ternary(8, 3)
    original = w.clone()
    packed = pack_weights(w)
    assert torch.equal(w, original)  # the argument is left as it was
    assert packed.shape == (2, 3) and packed.dtype == torch.uint8
    # byte (r, n): rows r, r + 2, r + 4, r + 6 (R = 2) in bits 0-1, 2-3, 4-5, 6-7, each w + 1
    expected = torch.zeros(2, 3, dtype=torch.int32)
    for s in range(4):
        expected |= (w[s * 2 : s * 2 + 2] + 1) << (2 * s)
    assert torch.equal(packed.to(torch.int32), expected)
    assert torch.equal(unpack_weights(packed), w)


def test_rows_not_a_multiple_of_four_unpack_with_padding_rows():
    w = ternary(5, 2)
    unpacked = unpack_weights(pack_weights(w))
    assert unpacked.shape == (8, 2)
    assert torch.equal(unpacked[:5], w)
    assert torch.all(unpacked[5:] == -1)  # padding bytes hold 0, which decodes to -1


def test_cpu_matmul_is_exact():
    w, a = ternary(64, 24), activations(7, 64)
    c = matmul(a, pack_weights(w))
    assert c.dtype == torch.int32
    assert torch.equal(c, (a.to(torch.int64) @ w.to(torch.int64)).to(torch.int32))
    # all products at the extreme: -128 * -1 summed over K
    a = torch.full((2, 64), -128, dtype=torch.int8)
    w = torch.full((64, 3), -1, dtype=torch.int32)
    assert torch.all(matmul(a, pack_weights(w)) == 128 * 64)


@pytest.mark.parametrize("m, k, n", [(1, 4, 1), (7, 64, 24), (70, 520, 130), (16, 256, 64)])
def test_triton_kernel_matches_the_exact_result(m, k, n):
    w, a = ternary(k, n), activations(m, k)
    packed = pack_weights(w)
    assert torch.equal(int8_int2_matmul(a, packed), matmul(a, packed))


def test_triton_kernel_reads_strided_activations():
    w, a = ternary(128, 40), activations(80, 256)[::2, :128]
    packed = pack_weights(w)
    assert torch.equal(int8_int2_matmul(a, packed), matmul(a, packed))


def test_refusals():
    w = ternary(8, 3)
    with pytest.raises(ValueError, match="only -1, 0 or 1"):
        pack_weights(w * 2)
    with pytest.raises(TypeError, match="integers"):
        pack_weights(w.float())
    with pytest.raises(ValueError, match="bits must be 2"):
        pack_weights(w, bits=4)
    with pytest.raises(TypeError, match="packed has dtype"):
        unpack_weights(w)
    packed = pack_weights(w)
    with pytest.raises(ValueError, match="packs 8 weight rows"):
        matmul(activations(2, 12), packed)
    with pytest.raises(TypeError, match="a has dtype"):
        matmul(activations(2, 8).float(), packed)
    meta = torch.empty(2, 8, dtype=torch.int8, device="meta")
    with pytest.raises(ValueError, match="is on"):
        matmul(meta, packed)
    with pytest.raises(NotImplementedError, match="no kernel for meta devices"):
        matmul(meta, packed.to("meta"))
