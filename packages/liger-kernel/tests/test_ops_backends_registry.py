"""liger_kernel.ops.backends: 0.8.5's older registry (ImplInfo, register_impl,
select_impl) as a front of the dispatcher."""

from __future__ import annotations

import sys
import types

import pytest
import torch

import liger_kernel.functional as F
from liger_kernel.backends import registry as impl_registry
from liger_kernel.dispatch import current_request, dispatcher
from liger_kernel.ops import LigerSiLUMulFunction
from liger_kernel.ops.backends import IMPL_REGISTRY, LIGER_KERNEL_IMPL_ENV, ImplInfo, register_impl, select_impl

MODULE = "acme_kernels_for_tests"
CALLS: list[str] = []


class TripledSiLUMul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b):
        CALLS.append("swiglu")
        return torch.nn.functional.silu(a) * b * 3

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


@pytest.fixture(autouse=True)
def acme_module(monkeypatch):
    module = types.ModuleType(MODULE)
    module.LigerSiLUMulFunction = TripledSiLUMul
    monkeypatch.setitem(sys.modules, MODULE, module)
    CALLS.clear()
    yield module
    for name in [name for name in IMPL_REGISTRY if name.startswith("acme")]:
        impl_registry.unregister(name)
        del IMPL_REGISTRY[name]


def route(op: str, device_type: str = "cpu") -> str:
    return dispatcher.select(op, device_type, current_request()).backend


def pair() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(2, 4), torch.randn(2, 4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"devices": ()}, "names no devices"),
        ({"devices": ("cpu",), "module_path": ""}, "needs module_path"),
        ({"devices": ("cpu",), "default_devices": ("npu",)}, r"default_devices \['npu'\] are not among its devices"),
    ],
)
def test_impl_info_refuses_an_incomplete_description(kwargs, message):
    kwargs = {"module_path": MODULE, **kwargs}
    with pytest.raises(ValueError, match=message):
        ImplInfo("acme", **kwargs)


def test_impl_info_fields_and_defaults():
    info = ImplInfo("acme", ("cpu",), module_path=MODULE)
    assert info.default_devices == ()
    with pytest.raises(AttributeError):
        info.name = "other"  # frozen, as in 0.8.5


def test_a_default_implementation_takes_its_ops_and_leaves_the_rest():
    register_impl(ImplInfo("acme", ("cpu",), default_devices=("cpu",), module_path=MODULE))
    assert IMPL_REGISTRY["acme"].module_path == MODULE
    a, b = pair()
    torch.testing.assert_close(LigerSiLUMulFunction.apply(a, b), torch.nn.functional.silu(a) * b * 3)
    assert CALLS == ["swiglu"]
    assert route("swiglu") == "acme"
    assert route("rms_norm") == "torch"


def test_an_opt_in_implementation_runs_only_when_requested(monkeypatch):
    register_impl(ImplInfo("acme", ("cpu",), module_path=MODULE))
    assert route("swiglu") == "torch"
    a, b = pair()
    torch.testing.assert_close(F.swiglu(a, b, impl="acme"), torch.nn.functional.silu(a) * b * 3)
    monkeypatch.setenv(LIGER_KERNEL_IMPL_ENV, "acme")
    assert route("swiglu") == "acme"
    assert CALLS == ["swiglu"]


def test_registering_a_name_again_replaces_it():
    register_impl(ImplInfo("acme", ("cpu",), default_devices=("cpu",), module_path=MODULE))
    register_impl(ImplInfo("acme", ("cpu",), module_path=MODULE))
    assert route("swiglu") == "torch"
    assert IMPL_REGISTRY["acme"].default_devices == ()


def test_default_on_part_of_its_devices_is_refused():
    with pytest.raises(ValueError, match="applies by default on all of them or on none"):
        register_impl(ImplInfo("acme", ("cpu", "cuda"), default_devices=("cpu",), module_path=MODULE))
    assert "acme" not in IMPL_REGISTRY


def test_a_module_that_cannot_be_imported_raises_with_its_cause():
    with pytest.raises(ImportError, match="'acme_missing_module' cannot be imported: ModuleNotFoundError"):
        register_impl(ImplInfo("acme", ("cpu",), module_path="acme_missing_module"))
    assert "acme" not in IMPL_REGISTRY


def test_a_module_without_op_functions_is_refused(acme_module):
    del acme_module.LigerSiLUMulFunction
    with pytest.raises(ValueError, match="defines no torch.autograd.Function named as an op Function"):
        register_impl(ImplInfo("acme", ("cpu",), module_path=MODULE))


def test_an_installed_backend_name_is_refused():
    with pytest.raises(ValueError, match="is the installed backend 'cuda'"):
        register_impl(ImplInfo("cuda", ("cuda",), module_path=MODULE))


def test_select_impl_follows_the_0_8_5_contract():
    register_impl(ImplInfo("acme", ("cpu",), module_path=MODULE))
    register_impl(ImplInfo("acme-auto", ("npu",), default_devices=("npu",), module_path=MODULE))
    assert select_impl("cpu") is None  # opt-in only
    assert select_impl("npu") is IMPL_REGISTRY["acme-auto"]
    assert select_impl("cpu", explicit="acme") is IMPL_REGISTRY["acme"]
    with pytest.raises(RuntimeError, match=r"supports devices \['cpu'\], not 'npu'"):
        select_impl("npu", explicit="acme")
    with pytest.raises(
        RuntimeError, match=r"unknown LIGER_KERNEL_IMPL='bogus'; registered implementations: acme, acme-auto"
    ):
        select_impl("cpu", explicit="bogus")
