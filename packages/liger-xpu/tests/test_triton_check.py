"""The check that the Triton in use is Intel's: what is active, not a distribution name."""

from __future__ import annotations

import pytest

from liger_kernel_xpu import triton_check
from liger_kernel_xpu.triton_check import IntelTritonError, intel_triton_problem, require_intel_triton

xpu_mock = pytest.importorskip("liger_conformance.mocks.xpu", reason="liger-conformance provides the XPU mock")


def test_nvidia_triton_is_refused_with_the_repair_command():
    # the test environment has NVIDIA's triton wheel: nvidia and amd backends, no intel
    problem = intel_triton_problem()
    assert problem and "has no Intel backend" in problem and "nvidia" in problem
    assert "pip uninstall -y triton pytorch-triton-xpu" in problem
    assert "--index-url https://download.pytorch.org/whl/xpu" in problem
    with pytest.raises(IntelTritonError, match="liger-xpu cannot load its kernels"):
        require_intel_triton()


def test_the_mock_passes_by_providing_an_intel_backend_and_an_xpu_target():
    with xpu_mock.active():
        assert intel_triton_problem() is None
        require_intel_triton()


def test_an_intel_backend_that_is_not_the_active_target_is_refused(monkeypatch):
    from triton.backends.compiler import GPUTarget

    with xpu_mock.active():
        from triton.runtime.driver import driver

        monkeypatch.setattr(driver.active, "get_current_target", lambda: GPUTarget("cuda", 90, 32))
        problem = intel_triton_problem()
    assert problem and "active for target 'cuda', not 'xpu'" in problem


def test_an_intel_backend_without_an_active_driver_is_reported(monkeypatch):
    with xpu_mock.active():
        from triton.runtime.driver import driver

        def no_driver():
            raise RuntimeError("0 active drivers ([]). There should only be one.")

        monkeypatch.setattr(driver.active, "get_current_target", no_driver)
        problem = intel_triton_problem()
    assert problem and "no active driver" in problem and "0 active drivers" in problem


@pytest.mark.parametrize(
    ("requires", "pin"),
    [
        (['pytorch-triton-xpu==3.5.0; platform_system == "Linux"', "filelock"], "pytorch-triton-xpu==3.5.0"),
        (["filelock"], "pytorch-triton-xpu==<the version `pip show torch` lists>"),
    ],
)
def test_the_repair_pins_the_triton_torch_requires(monkeypatch, requires, pin):
    monkeypatch.setattr(triton_check.metadata, "requires", lambda dist: requires)
    assert triton_check.torch_triton_pin() == pin
    assert f"--no-deps {pin} --index-url" in triton_check.repair_command()
