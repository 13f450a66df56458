"""SwiGLU and GEGLU kernels against float64 formulas."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from liger_kernel.triton.geglu import GELUMulFunction
from liger_kernel.triton.swiglu import SiLUMulFunction

GATES = {
    "swiglu": (SiLUMulFunction, F.silu),
    "geglu": (GELUMulFunction, lambda a: F.gelu(a, approximate="tanh")),
}


def leaf(t: torch.Tensor, grad: bool = True) -> torch.Tensor:
    return t.detach().clone().requires_grad_(grad)


@pytest.mark.parametrize("gate", sorted(GATES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_gate_matches_float64(profile, assert_close, gate, dtype):
    function, activation = GATES[gate]
    torch.manual_seed(0)
    # 2 * 3 * 11 elements: not a multiple of any tile, and wide-range inputs
    a, b = torch.randn(2, 3, 11, dtype=dtype) * 4, torch.randn(2, 3, 11, dtype=dtype)
    dc = torch.randn(2, 3, 11, dtype=dtype)
    ak, bk = leaf(a), leaf(b)
    c = function.apply(ak, bk)
    c.backward(dc)
    a64, b64 = leaf(a.double()), leaf(b.double())
    c64 = activation(a64) * b64
    c64.backward(dc.double())
    assert c.dtype == dtype and c.shape == a.shape
    assert_close(c, c64, dtype, scale=2)
    assert_close(ak.grad, a64.grad, dtype, scale=2)
    assert_close(bk.grad, b64.grad, dtype, scale=2)


@pytest.mark.parametrize("gate", sorted(GATES))
def test_gate_strided_halves_of_one_projection(profile, assert_close, gate):
    function, activation = GATES[gate]
    torch.manual_seed(1)
    projection = leaf(torch.randn(5, 2 * 9))
    dc = torch.randn(5, 9)
    function.apply(projection[:, :9], projection[:, 9:]).backward(dc)
    projection64 = leaf(projection.double())
    (activation(projection64[:, :9]) * projection64[:, 9:]).backward(dc.double())
    assert_close(projection.grad, projection64.grad, torch.float32)


@pytest.mark.parametrize("gate", sorted(GATES))
@pytest.mark.parametrize("needs", [(True, False), (False, True)])
def test_gate_grad_subsets(profile, assert_close, gate, needs):
    function, activation = GATES[gate]
    torch.manual_seed(2)
    a, b, dc = torch.randn(4, 7), torch.randn(4, 7), torch.randn(4, 7)
    ak, bk = leaf(a, needs[0]), leaf(b, needs[1])
    function.apply(ak, bk).backward(dc)
    a64, b64 = leaf(a.double(), needs[0]), leaf(b.double(), needs[1])
    (activation(a64) * b64).backward(dc.double())
    for got, want, needed in zip((ak, bk), (a64, b64), needs):
        if needed:
            assert_close(got.grad, want.grad, torch.float32)
        else:
            assert got.grad is None


def test_gate_tiles_and_norm_reduction_grids_follow_the_profile_tuning() -> None:
    """gate_tile and reduction_programs_per_unit are tuning data of the device
    profile: the launchers size by them, within the hardware caps."""
    from dataclasses import replace

    from liger_kernel.backend import DeviceProfile
    from liger_kernel.triton.launch import reduction_grid
    from liger_kernel.triton.swiglu import gate_launch

    base = DeviceProfile(name="fake", compute_units=4, max_block=8192)
    launch, _ = gate_launch(replace(base, gate_tile=1024), 10_000, 4)
    assert (launch.block, launch.grid) == (1024, 10)
    launch, _ = gate_launch(replace(base, gate_tile=16384), 10_000, 4)
    assert launch.block == 8192  # capped by max_block
    assert reduction_grid(base, 1000) == 4
    assert reduction_grid(replace(base, reduction_programs_per_unit=2), 1000) == 8
    assert reduction_grid(replace(base, reduction_programs_per_unit=2), 3) == 3
