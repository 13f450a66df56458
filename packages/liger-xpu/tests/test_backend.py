"""liger-xpu without its hardware: the description the core discovers, the
probe, and where every op routes.

Needs liger-conformance for its XPU mock: ``pytest packages/liger-xpu/tests``.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
import torch

import liger_kernel
from liger_kernel.backend import API_VERSION, Conformance, load_attr
from liger_kernel.dispatch import TORCH, dispatcher
from liger_kernel.ops import OPS as PUBLIC_OPS
from liger_kernel_xpu import BACKEND
from liger_kernel_xpu.probe import RUNTIME_DISTRIBUTIONS, probe, runtime_versions

xpu_mock = pytest.importorskip("liger_conformance.mocks.xpu", reason="liger-conformance provides the XPU mock")


@pytest.fixture(autouse=True)
def fresh_routes(monkeypatch: pytest.MonkeyPatch):
    """No routing variables from the caller's shell, no cached probe results."""
    for variable in ("LIGER_KERNEL_BACKEND", "LIGER_KERNEL_IMPL", "LIGER_KERNEL_STRICT", "LIGER_KERNEL_LOG"):
        monkeypatch.delenv(variable, raising=False)
    for op in PUBLIC_OPS:
        monkeypatch.delenv(f"LIGER_KERNEL_BACKEND_{op.upper()}", raising=False)
    liger_kernel.reset()
    yield
    liger_kernel.reset()


def test_description():
    assert BACKEND.name == "xpu" and BACKEND.device_types == ("xpu",)
    assert BACKEND.api_version == API_VERSION
    assert BACKEND.priority > dispatcher.get(TORCH).backend.priority
    assert isinstance(load_attr(BACKEND.conformance), Conformance)
    assert "download.pytorch.org/whl/xpu" in BACKEND.install_hint and "liger-kernel[xpu]" in BACKEND.install_hint
    assert set(runtime_versions()) <= set(RUNTIME_DISTRIBUTIONS)


def test_the_core_discovers_the_installed_distribution():
    installed = dispatcher.get("xpu")
    assert installed.distribution == "liger-xpu"
    assert installed.backend.implementations == BACKEND.implementations


def test_every_core_op_has_an_xpu_route_with_the_public_signature():
    assert set(BACKEND.implementations) == set(PUBLIC_OPS)
    with xpu_mock.active():
        for op, spec in BACKEND.implementations.items():
            function = load_attr(spec)
            assert issubclass(function, torch.autograd.Function), spec
            implemented = list(inspect.signature(function.forward).parameters.values())[1:]  # after ctx
            contract = PUBLIC_OPS[op]
            public = [
                p for p in inspect.signature(contract.check).parameters.values() if p.name not in contract.contract_args
            ]
            # the contract's arguments with its defaults, in order; a backend may take trailing
            # defaulted ones of its own (the scaled cross-entropy's tp_group, which its tensor-parallel form passes)
            head, extra = implemented[: len(public)], implemented[len(public) :]
            assert [(p.name, p.default) for p in head] == [(p.name, p.default) for p in public], spec
            assert all(p.default is not inspect.Parameter.empty for p in extra), spec


def test_probe_on_a_build_without_xpu(monkeypatch):
    monkeypatch.setattr(torch.version, "xpu", None)
    ok, reason = probe()
    assert not ok and "not an XPU build" in reason and "download.pytorch.org/whl/xpu" in reason


def test_probe_on_an_xpu_build_without_a_device(monkeypatch):
    monkeypatch.setattr(torch.version, "xpu", "20250101")
    monkeypatch.setattr(torch, "xpu", SimpleNamespace(is_available=lambda: False))
    ok, reason = probe()
    assert not ok and "is_available() is False" in reason and "SYCL 20250101" in reason


def test_probe_under_the_mock():
    with xpu_mock.active(device_count=2):
        ok, reason = probe()
    assert ok and reason.startswith("2 XPU device(s): Intel(R) Data Center GPU Max 1100 (liger-conformance mock)")


def test_every_op_routes_here_on_xpu_and_nowhere_else():
    with xpu_mock.active():
        for op in PUBLIC_OPS:
            route = dispatcher.select(op, "xpu")
            assert (route.backend, route.implementation, route.fallback_reason) == (
                "xpu",
                BACKEND.implementations[op],
                None,
            )
    # outside the mock the probe fails, and xpu tensors would take the torch backend
    assert {dispatcher.select(op, "xpu").backend for op in PUBLIC_OPS} == {TORCH}
