"""Launches under the ROCm mock never ask for more than 16 wavefronts of 64 lanes."""

from __future__ import annotations

import pytest
import torch

import liger_kernel
from liger_kernel.ops import LigerRMSNormFunction, LigerSiLUMulFunction

interpreter = pytest.importorskip("triton.runtime.interpreter")
rocm = pytest.importorskip("liger_conformance.mocks.rocm")


@pytest.fixture
def launches(monkeypatch):
    """num_warps of every Triton launch the interpreter runs."""
    seen: list[int | None] = []
    run = interpreter.InterpretedFunction.run

    def recording_run(self, *args, **kwargs):
        seen.append(kwargs.get("num_warps"))
        return run(self, *args, **kwargs)

    monkeypatch.setattr(interpreter.InterpretedFunction, "run", recording_run)
    return seen


def test_launches_respect_the_wavefront_cap(launches):
    with rocm.active():
        liger_kernel.set_backend("rocm")
        try:
            x = torch.randn(2, 20000, requires_grad=True)  # wider than one 16384 block
            w = torch.randn(20000, requires_grad=True)
            LigerRMSNormFunction.apply(x, w, 1e-6).sum().backward()
            a = torch.randn(2, 9000, requires_grad=True)
            b = torch.randn(2, 9000, requires_grad=True)
            LigerSiLUMulFunction.apply(a, b).sum().backward()
        finally:
            liger_kernel.set_backend(None)
    assert launches, "no Triton launch was seen: the rocm backend did not run its kernels"
    warps = [w for w in launches if w is not None]
    assert warps and max(warps) <= 16, launches
    assert max(warps) == 16  # wide rows do use the whole 1024-thread budget
