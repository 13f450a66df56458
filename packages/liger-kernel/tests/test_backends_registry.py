"""liger-kernel 0.8.5's implementation registry (``liger_kernel.backends``) on
this project's dispatcher: names, environment variables, registered
implementations and their capabilities, and what ``liger-kernel info`` shows.

Vendor hardware is emulated with the kernel mocks of liger-conformance, so the
installed vendor backends' probes pass; routes are checked with
``dispatcher.select``, which decides without importing a Triton kernel.
"""

from __future__ import annotations

import dataclasses
import sys
import textwrap
import warnings

import pytest
import torch

import liger_kernel.backends as backends
from liger_conformance.mocks import cuda as cuda_mock
from liger_conformance.mocks import npu as npu_mock
from liger_conformance.mocks import rocm as rocm_mock
from liger_conformance.mocks import xpu as xpu_mock
from liger_kernel.backends import Capability, register_impl
from liger_kernel.backends import registry as registry_module
from liger_kernel.cli.env_report import collect, failures, format_report
from liger_kernel.dispatch import current_request, dispatcher
from liger_kernel.ops import LigerRMSNormFunction, LigerSiLUMulFunction

MOCKS = {"cuda": cuda_mock, "rocm": rocm_mock, "npu": npu_mock, "xpu": xpu_mock}
REGISTERED_NAMES = ("acme-triton", "acme-cpu", "acme-late", "acme-mixed")
CALLS: list[str] = []


@pytest.fixture(autouse=True)
def forget_registrations():
    CALLS.clear()
    yield
    for name in REGISTERED_NAMES:
        registry_module.unregister(name)
    CALLS.clear()


def route(op: str, device_type: str) -> str:
    return dispatcher.select(op, device_type, current_request()).backend


def pair() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(2, 4), torch.randn(2, 4)


class AcmeSwiGLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b):
        CALLS.append("acme swiglu")
        return a * b * 3

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


def register_acme_swiglu(capability: Capability, rank: int = 10, name: str = "acme-triton") -> None:
    register_impl("swiglu", impl_name=name, capability=capability, preference_rank=rank)(AcmeSwiGLU)


@pytest.mark.parametrize(
    "name, backend, device_type",
    [
        ("nvidia-triton", "cuda", "cuda"),
        ("triton", "cuda", "cuda"),
        ("rocm-triton", "rocm", "cuda"),
        ("amd-triton", "rocm", "cuda"),
        ("ascend-triton", "ascend", "npu"),
        ("intel-triton", "xpu", "xpu"),
    ],
)
def test_set_impl_routes_ops_to_the_backend_a_0_8_5_name_stands_for(name, backend, device_type):
    mock = "rocm" if backend == "rocm" else device_type
    with MOCKS[mock].active():
        backends.set_impl(name)
        assert backends.get_impl() == name
        assert route("rms_norm", device_type) == backend
        assert route("swiglu", device_type) == backend
        backends.set_impl(None)
        assert backends.get_impl() is None


def test_pytorch_names_the_torch_backend_on_every_device():
    with cuda_mock.active():
        assert route("rms_norm", "cuda") == "cuda"
        backends.set_impl("pytorch")
        assert route("rms_norm", "cuda") == "torch"
        a, b = pair()
        torch.testing.assert_close(backends.dispatch("swiglu", a, b), torch.nn.functional.silu(a) * b)


def test_legacy_and_new_names_are_the_same_objects():
    # the package's dispatch() shadows its submodule's name, as in 0.8.5: reach the modules by import
    from liger_kernel.backends.capability import PYTORCH_FALLBACK
    from liger_kernel.backends.dispatch import emit_fallback_warning, set_backend
    from liger_kernel.backends.registry import (
        all_registered_ops,
        declare_op_locations,
        get_discovery_failures,
        get_registered,
        list_registered,
        register_op,
    )

    assert backends.register_op is backends.register_impl is register_op
    assert backends.set_backend is backends.set_impl is set_backend
    assert backends.get_backend is backends.get_impl
    assert backends.available_backends is backends.available_impls
    assert backends.all_backends is backends.all_impls
    assert backends.resolve_backend is backends.resolve_impl
    assert backends.BackendNotAvailableError is backends.ImplNotAvailableError
    assert backends.NoBackendAvailableError is backends.NoImplAvailableError
    assert backends.LigerBackendFallbackWarning is backends.LigerImplFallbackWarning
    assert PYTORCH_FALLBACK.is_satisfied() and PYTORCH_FALLBACK.served_device_types() == ("*",)
    for function in (emit_fallback_warning, all_registered_ops, declare_op_locations, get_registered, list_registered):
        assert callable(function)
    assert isinstance(get_discovery_failures(), dict)
    assert set(backends.__all__) <= set(dir(backends))


def test_environment_picks_the_backend_and_per_op_beats_global(monkeypatch, caplog):
    with cuda_mock.active():
        monkeypatch.setenv("LIGER_KERNEL_IMPL", "pytorch")
        monkeypatch.setenv("LIGER_KERNEL_IMPL_RMS_NORM", "nvidia-triton")
        assert route("rms_norm", "cuda") == "cuda"
        assert route("swiglu", "cuda") == "torch"
        # the environment beats impl= as it beats use_backend(): rms_norm stays on cuda
        backends.set_impl("pytorch")
        assert route("rms_norm", "cuda") == "cuda"
    assert not any("LIGER_KERNEL_IMPL_RMS_NORM" in problem for problem in dispatcher.setting_problems())
    monkeypatch.setenv("LIGER_KERNEL_IMPL_RMSNORM", "pytorch")
    assert any(
        "LIGER_KERNEL_IMPL_RMSNORM" in p and "did you mean LIGER_KERNEL_IMPL_RMS_NORM" in p
        for p in dispatcher.setting_problems()
    )


def test_unknown_name_lists_the_known_ones(monkeypatch):
    with pytest.raises(backends.ImplNotAvailableError, match=r"'nvidia-cutile'.*cuda \(alias nvidia-triton, triton\)"):
        backends.set_impl("nvidia-cutile")
    monkeypatch.setenv("LIGER_KERNEL_IMPL", "bogus-triton")
    with pytest.raises(backends.ImplNotAvailableError, match=r"'bogus-triton'.*torch \(alias pytorch\)"):
        backends.dispatch("swiglu", *pair())


def test_requested_backend_without_its_hardware_raises_with_the_probe_reason():
    with pytest.raises(backends.ImplNotAvailableError, match="unavailable: .*CUDA.*pip install liger-kernel\\[cuda\\]"):
        backends.dispatch("swiglu", *pair(), impl="nvidia-triton")


def test_registered_impl_takes_its_op_where_its_capability_holds():
    register_acme_swiglu(Capability(requires_cuda=True, min_cc=(9, 0)))
    with cuda_mock.active():  # an H100: sm_90
        a, b = pair()
        torch.testing.assert_close(LigerSiLUMulFunction.apply(a, b), a * b * 3)
        assert CALLS == ["acme swiglu"]
        assert backends.available_impls("swiglu") == ["acme-triton", "nvidia-triton", "pytorch"]
        assert route("rms_norm", "cuda") == "cuda"  # it supplements the device's backend, op by op
        assert backends.resolve_impl("swiglu").autograd_function is AcmeSwiGLU
        assert backends.resolve_impl("rms_norm").impl_name == "nvidia-triton"


def test_registered_impl_is_passed_over_where_its_capability_fails():
    register_acme_swiglu(Capability(requires_cuda=True, min_cc=(10, 0)))
    with cuda_mock.active():  # sm_90 < sm_100
        assert route("swiglu", "cuda") == "cuda"
        assert "acme-triton" not in backends.available_impls("swiglu")
        assert "acme-triton" in backends.all_impls("swiglu")
        with pytest.raises(backends.ImplNotAvailableError, match="sm_90, below the required sm_100"):
            backends.dispatch("swiglu", *pair(), impl="acme-triton")
    LigerSiLUMulFunction.apply(*pair())  # CPU, no CUDA: torch
    assert CALLS == []


def test_default_rank_takes_an_op_from_torch_but_not_from_a_vendor_backend():
    register_acme_swiglu(Capability(device_types=("cpu", "cuda")), rank=100)
    assert route("swiglu", "cpu") == "acme-triton"
    with cuda_mock.active():
        assert route("swiglu", "cuda") == "cuda"


def test_an_op_a_requested_registered_impl_lacks_is_routed_automatically_or_refused_when_strict(monkeypatch):
    register_acme_swiglu(Capability(device_types=("cpu",)))
    backends.set_impl("acme-triton")
    chosen = dispatcher.select("rms_norm", "cpu", current_request())
    assert chosen.backend == "torch"
    assert "'acme-triton' has no 'rms_norm'" in chosen.fallback_reason
    dispatcher.forget_routes()
    monkeypatch.setenv("LIGER_KERNEL_STRICT", "1")
    with pytest.raises(backends.NoImplAvailableError, match="LIGER_KERNEL_STRICT=1"):
        LigerRMSNormFunction.apply(torch.randn(2, 4), torch.ones(4), 1e-6)


def test_a_plain_callable_for_an_op_of_its_own_gets_its_keywords():
    @register_impl("acme_scale", impl_name="acme-cpu", capability=Capability(device_types=("cpu",)))
    def acme_scale(x, *, factor=1.0, mode=None):
        CALLS.append(f"mode={mode}")
        return x * factor

    x = torch.ones(3)
    torch.testing.assert_close(backends.dispatch("acme_scale", x, factor=2.0, mode="fast"), x * 2)
    assert CALLS == ["mode=fast"]
    assert backends.available_impls("acme_scale", "cpu") == ["acme-cpu"]
    with pytest.raises(
        backends.NoImplAvailableError, match="'acme_scale' on device type 'meta'.*acme-cpu \\(serves cpu\\)"
    ):
        backends.dispatch("acme_scale", torch.ones(3, device="meta"))
    with pytest.raises(ValueError, match="no kernel variants"):
        backends.dispatch("swiglu", *pair(), mode="static_persistent")


def test_clear_available_cache_evaluates_capabilities_again():
    gate = {"open": False}

    def acme_runtime_loaded() -> bool:
        return gate["open"]

    register_acme_swiglu(Capability(predicate=acme_runtime_loaded, device_types=("cpu",)))
    assert backends.available_impls("swiglu", "cpu") == ["pytorch"]
    gate["open"] = True
    assert backends.available_impls("swiglu", "cpu") == ["pytorch"]  # the probe result is kept
    backends.clear_available_cache()
    assert backends.available_impls("swiglu", "cpu") == ["acme-triton", "pytorch"]
    LigerSiLUMulFunction.apply(*pair())
    assert CALLS == ["acme swiglu"]


def test_one_probe_per_implementation_name_needs_every_capability():
    register_acme_swiglu(Capability(device_types=("cpu",)), name="acme-mixed")
    register_impl("geglu", impl_name="acme-mixed", capability=Capability(modules=["acme_missing_runtime"]))(AcmeSwiGLU)
    ok, reason = dispatcher.probe("acme-mixed")
    assert not ok and "geglu: module 'acme_missing_runtime' cannot be imported" in reason
    assert route("swiglu", "cpu") == "torch"


def test_info_lists_registered_impls_and_the_0_8_5_names(capsys):
    register_acme_swiglu(Capability(device_types=("cpu",)))
    report = collect()
    entry = next(b for b in report["backends"] if b["name"] == "acme-triton")
    assert entry["per_op"] and entry["ops"] == ["swiglu"] and entry["available"]
    assert entry["distribution"] == __name__
    assert next(b for b in report["backends"] if b["name"] == "cuda")["aliases"] == ["nvidia-triton", "triton"]
    cpu_swiglu = next(r for r in report["routes"] if r["op"] == "swiglu" and r["device_type"] == "cpu")
    assert cpu_swiglu["backend"] == "acme-triton"
    text = format_report(report)
    assert "acme-triton" in text and "per-op" in text and "(alias nvidia-triton, triton)" in text
    assert not failures(report)


def test_info_lists_ops_of_registered_impls_only_where_they_are_served():
    register_impl("acme_scale", impl_name="acme-cpu", capability=Capability(device_types=("cpu",)))(lambda x: x)
    report = collect()
    assert [r["device_type"] for r in report["routes"] if r["op"] == "acme_scale"] == ["cpu"]
    assert not failures(report)


def test_an_installed_backend_name_cannot_be_registered():
    with pytest.raises(ValueError, match="installed backend 'cuda'"):
        register_acme_swiglu(Capability(), name="cuda")
    with pytest.raises(TypeError, match="impl_name"):
        register_impl("swiglu")


def test_declared_locations_are_imported_once_when_the_op_is_first_looked_at(tmp_path, monkeypatch):
    (tmp_path / "acme_late_impls.py").write_text(
        textwrap.dedent(
            """
            from liger_kernel.backends import Capability, register_impl

            @register_impl("acme_late", impl_name="acme-late", capability=Capability(device_types=("cpu",)))
            def acme_late(x):
                return x + 1
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "acme_late_impls", raising=False)
    for state in ("_LOCATIONS", "_DISCOVERY_FAILURES"):
        monkeypatch.setattr(registry_module, state, {})
    monkeypatch.setattr(registry_module, "_DISCOVERED", set())
    registry_module.declare_op_locations("acme_late", ("acme_late_impls", "acme_not_a_module"))
    assert "acme_late_impls" not in sys.modules
    torch.testing.assert_close(backends.dispatch("acme_late", torch.zeros(2)), torch.ones(2))
    assert [impl.impl_name for impl in registry_module.list_registered("acme_late")] == ["acme-late"]
    assert registry_module.get_discovery_failures()["acme_not_a_module"][0] is ModuleNotFoundError
    assert "acme_late" in registry_module.all_registered_ops()


def test_emit_fallback_warning_warns_once_and_raises_when_strict(monkeypatch):
    from liger_kernel.backends.dispatch import emit_fallback_warning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            emit_fallback_warning("swiglu", "acme-triton", "nvidia-triton", "odd width")
    fallbacks = [w for w in caught if issubclass(w.category, backends.LigerImplFallbackWarning)]
    assert len(fallbacks) == 1 and "'acme-triton' cannot run this call (odd width)" in str(fallbacks[0].message)
    monkeypatch.setenv("LIGER_KERNEL_STRICT", "1")
    with pytest.raises(backends.ImplNotAvailableError, match="LIGER_KERNEL_STRICT=1"):
        emit_fallback_warning("swiglu", "acme-triton", "nvidia-triton", "odd width")


def test_op_impl_call_conventions():
    impl = registry_module.OpImpl("swiglu", "acme-triton", autograd_function=AcmeSwiGLU)
    assert impl.backend == "acme-triton"
    a, b = pair()
    torch.testing.assert_close(impl.call(a, b, mode="default"), a * b * 3)
    with pytest.raises(TypeError, match="positional arguments only"):
        impl.call(a, b=b)
    plain = dataclasses.replace(impl, autograd_function=None, forward=lambda x, *, k=1: x * k)
    torch.testing.assert_close(plain.call(a, k=2), a * 2)


def test_the_top_level_offers_0_8_5_registry_names():
    import liger_kernel

    assert liger_kernel.set_impl is backends.set_impl
    assert liger_kernel.get_impl is liger_kernel.get_backend is backends.get_impl
    assert liger_kernel.available_impls is liger_kernel.available_backends is backends.available_impls
    with cuda_mock.active():
        liger_kernel.set_impl("nvidia-triton")
        assert liger_kernel.get_backend() == "nvidia-triton"
        assert route("rms_norm", "cuda") == "cuda"
        assert liger_kernel.available_impls("rms_norm", "cuda")[0] == "nvidia-triton"
    liger_kernel.set_backend(None)
    assert liger_kernel.get_impl() is None


def test_importing_the_top_level_and_functional_imports_no_triton_kernel():
    import subprocess

    script = (
        "import sys; sys.modules['triton'] = None\n"  # an import of triton now raises
        "import liger_kernel, liger_kernel.functional, liger_kernel.ops.backends\n"
        "kernels = [m for m in sys.modules if m.startswith('liger_kernel.triton.')]\n"
        "assert not kernels, kernels"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
