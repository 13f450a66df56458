"""liger-xpu without its hardware: the description the core discovers,
the probe, the device profile, and where every op routes.

A stand-in for ``torch.xpu`` answers the probe, so these tests pass
on a CPU-only machine: ``pytest packages/liger-xpu/tests``.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
import torch
from liger_kernel_xpu import BACKEND, OPS
from liger_kernel_xpu.probe import probe
from liger_kernel_xpu.profile import device_profile

import liger_kernel
from liger_kernel.backend import API_VERSION, Conformance, DeviceProfile, load_attr
from liger_kernel.dispatch import TORCH, dispatcher
from liger_kernel.ops import OPS as PUBLIC_OPS

NAME = "xpu"
DEVICE_TYPE = "xpu"


def fake_runtime(available: bool = True, count: int = 2, **extra: object) -> SimpleNamespace:
    return SimpleNamespace(is_available=lambda: available, device_count=lambda: count, **extra)


@pytest.fixture(autouse=True)
def fresh_routes(monkeypatch: pytest.MonkeyPatch):
    """No routing variables from the caller's shell, no cached probe results."""
    for variable in ("LIGER_KERNEL_BACKEND", "LIGER_KERNEL_IMPL", "LIGER_KERNEL_STRICT"):
        monkeypatch.delenv(variable, raising=False)
    for op in PUBLIC_OPS:
        monkeypatch.delenv(f"LIGER_KERNEL_BACKEND_{op.upper()}", raising=False)
    liger_kernel.reset()
    yield
    liger_kernel.reset()


def test_description():
    assert BACKEND.name == NAME
    assert BACKEND.device_types == (DEVICE_TYPE,)
    assert BACKEND.api_version == API_VERSION
    assert BACKEND.priority > dispatcher.get(TORCH).backend.priority
    assert isinstance(load_attr(BACKEND.conformance), Conformance)
    assert set(load_attr(BACKEND.runtime_versions)()) <= set(load_attr("liger_kernel_xpu.probe:RUNTIME_DISTRIBUTIONS"))


def test_the_core_discovers_the_installed_distribution():
    installed = dispatcher.get(NAME)
    assert installed.distribution == "liger-xpu"
    assert installed.backend.ops == BACKEND.ops


def test_every_op_takes_the_public_signature():
    unknown = set(OPS) - set(PUBLIC_OPS)
    assert not unknown, f"OPS names ops the core does not have: {sorted(unknown)}"
    for op, spec in OPS.items():
        function = load_attr(spec)
        assert issubclass(function, torch.autograd.Function), spec
        implemented = list(inspect.signature(function.forward).parameters.values())[1:]  # after ctx
        public = list(inspect.signature(PUBLIC_OPS[op].check).parameters.values())
        assert [(p.name, p.default) for p in implemented] == [(p.name, p.default) for p in public], spec


def test_probe_without_the_runtime(monkeypatch):
    monkeypatch.setattr(torch, DEVICE_TYPE, None, raising=False)
    ok, reason = probe()
    assert not ok and f"no torch.{DEVICE_TYPE} runtime" in reason


def test_probe_without_a_device(monkeypatch):
    monkeypatch.setattr(torch, DEVICE_TYPE, fake_runtime(available=False), raising=False)
    ok, reason = probe()
    assert not ok and "is_available() is False" in reason


def test_probe_with_devices(monkeypatch):
    monkeypatch.setattr(torch, DEVICE_TYPE, fake_runtime(count=2), raising=False)
    ok, reason = probe()
    assert ok and reason.startswith(f"2 {DEVICE_TYPE} device(s)")


def test_profile_reads_the_device_properties(monkeypatch):
    props = SimpleNamespace(name="test-device", multi_processor_count=48)
    runtime = fake_runtime(get_device_properties=lambda index=0: props)
    monkeypatch.setattr(torch, DEVICE_TYPE, runtime, raising=False)
    profile = device_profile(SimpleNamespace(type=DEVICE_TYPE, index=0))
    assert isinstance(profile, DeviceProfile)
    assert profile.compute_units == 48 and profile.name == f"{DEVICE_TYPE}:test-device"
    for block in (1, 1024, profile.max_block):
        assert profile.num_warps(block) * profile.warp_size <= 1024


def test_each_op_routes_here_or_falls_back_to_torch(monkeypatch):
    monkeypatch.setattr(torch, DEVICE_TYPE, fake_runtime(), raising=False)
    for op in PUBLIC_OPS:
        route = dispatcher.select(op, DEVICE_TYPE, NAME)
        if op in OPS:
            assert (route.backend, route.implementation) == (NAME, OPS[op])
        else:
            assert route.backend == TORCH
            assert route.fallback_reason == f"backend {NAME!r} has no {op!r} implementation"
