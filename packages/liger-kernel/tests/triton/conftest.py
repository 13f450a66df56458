"""The portable Triton kernels under the Triton interpreter, on CPU tensors.

``TRITON_INTERPRET`` must be set before the kernel modules are imported (the
``@triton.jit`` decorator reads it), so it is set here, at collection. The
device profile is a small fake one: two programs, so each walks several rows,
and either a block wide enough for the test rows or one narrower than them, so
both the one-block and the walk-in-blocks paths run.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TRITON_INTERPRET", "1")

from collections.abc import Callable

import pytest
import torch

from liger_kernel.backend import DeviceProfile
from liger_kernel.dispatch import dispatcher

if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("triton was imported without TRITON_INTERPRET=1", allow_module_level=True)
pytest.importorskip("triton")

WIDE_BLOCK = 256
NARROW_BLOCK = 16


@pytest.fixture(params=["one_block", "blocks"])
def profile(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> DeviceProfile:
    """Route every device_profile() call to a small fake profile."""
    block = WIDE_BLOCK if request.param == "one_block" else NARROW_BLOCK
    fake = DeviceProfile(name="fake", compute_units=2, programs_per_unit=1, max_block=block)
    monkeypatch.setattr(dispatcher, "profile", lambda device: fake)
    return fake


TOLERANCE = {
    torch.float32: {"atol": 1e-5, "rtol": 1e-5},
    torch.float16: {"atol": 2e-3, "rtol": 2e-3},
    torch.bfloat16: {"atol": 2e-2, "rtol": 2e-2},
}


@pytest.fixture
def assert_close() -> Callable[..., None]:
    """Compare a kernel result with a float64 reference at the tolerance of ``dtype``."""

    def check(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, scale: float = 1.0) -> None:
        tol = TOLERANCE[dtype]
        torch.testing.assert_close(
            actual.double(), expected.double(), atol=tol["atol"] * scale, rtol=tol["rtol"] * scale
        )

    return check
