"""A Triton kernel is sized by the profile of the backend its route chose.

Under the CUDA mock, with per-op routing that differs from the process-wide
choice: the kernel, forward and backward, must see the chosen backend's
profile, whatever ``LIGER_KERNEL_BACKEND`` or :func:`use_backend` say.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before any kernel module is imported

import sys
import types
from collections.abc import Iterator

import pytest
import torch

import liger_kernel
from liger_conformance.mocks import cuda as cuda_mock
from liger_kernel.backend import API_VERSION, Backend, DeviceProfile
from liger_kernel.dispatch import dispatcher, use_backend
from liger_kernel.ops.rms_norm import LigerRMSNormFunction
from liger_kernel.triton import portable_ops

pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1", reason="needs the Triton interpreter")


@pytest.fixture(autouse=True)
def clean_routing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("LIGER_KERNEL_"):
            monkeypatch.delenv(name)
    liger_kernel.reset()
    yield
    liger_kernel.reset()


def rms_norm_round_trip() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x, W and RMSNorm(x, W), run under the caller's routing."""
    x = torch.randn(6, 96, generator=torch.Generator().manual_seed(0), requires_grad=True)
    w = torch.rand(96, generator=torch.Generator().manual_seed(1), requires_grad=True)
    y = LigerRMSNormFunction.apply(x, w, 1e-6)
    return x, w, y


def check_against_torch(x: torch.Tensor, w: torch.Tensor, y: torch.Tensor) -> None:
    x.grad = w.grad = None
    y.square().sum().backward()
    xr, wr = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    yr = xr * torch.rsqrt(xr.square().mean(-1, keepdim=True) + 1e-6) * wr
    yr.square().sum().backward()
    torch.testing.assert_close(y.double(), yr, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x.grad.double(), xr.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(w.grad.double(), wr.grad, atol=1e-4, rtol=1e-4)


def test_per_op_backend_under_a_torch_wide_choice(monkeypatch):
    # the per-op setting the README documents: everything on torch but rms_norm
    monkeypatch.setenv("LIGER_KERNEL_BACKEND", "torch")
    monkeypatch.setenv("LIGER_KERNEL_BACKEND_RMS_NORM", "cuda")
    with cuda_mock.active():
        assert dispatcher.select("rms_norm", "cuda").backend == "cuda"
        assert dispatcher.select("swiglu", "cuda").backend == "torch"
        x, w, y = rms_norm_round_trip()
        check_against_torch(x, w, y)


def test_use_backend_with_a_per_op_setting_and_backward_outside_the_block(monkeypatch):
    monkeypatch.setenv("LIGER_KERNEL_BACKEND_RMS_NORM", "cuda")
    with cuda_mock.active():
        with use_backend("torch"):
            x, w, y = rms_norm_round_trip()
        # autograd runs the backward after the block has ended
        check_against_torch(x, w, y)


@pytest.fixture
def sized_by(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Register a second Triton backend for the mocked GPU ("spy", its own
    profile); yields the names of the profiles the kernels are given, in order."""
    module = types.ModuleType("liger_route_profile_spy")
    module.spy_profile = lambda device: DeviceProfile(name="spy", compute_units=3, programs_per_unit=1, max_block=32)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    backend = Backend(
        name="spy",
        device_types=("cuda",),
        priority=0,
        api_version=API_VERSION,
        probe=lambda: (True, "test backend"),
        ops=portable_ops(),
        profile=f"{module.__name__}:spy_profile",
    )
    given: list[str] = []
    lookup = dispatcher.profile

    def recording(device: torch.device) -> DeviceProfile:
        found = lookup(device)
        given.append(found.name)
        return found

    monkeypatch.setattr(dispatcher, "profile", recording)
    unregister = dispatcher.register(backend, "liger-route-profile-spy", "0")
    yield given
    unregister()


def test_the_kernel_sees_the_profile_of_the_backend_its_route_chose(monkeypatch, sized_by):
    monkeypatch.setenv("LIGER_KERNEL_BACKEND", "cuda")
    monkeypatch.setenv("LIGER_KERNEL_BACKEND_RMS_NORM", "spy")
    with cuda_mock.active():
        x, w, y = rms_norm_round_trip()
        assert sized_by and set(sized_by) == {"spy"}, f"forward sized by {sized_by}"
        sized_by.clear()
        check_against_torch(x, w, y)
        assert sized_by and set(sized_by) == {"spy"}, f"backward sized by {sized_by}"
        # a kernel called outside any route gets the process-wide backend's profile
        assert dispatcher.profile(torch.device("cpu")).name != "spy"
