"""The CUDA and ROCm mocks and the shared patching machinery: patches take
effect inside ``active()`` and are undone after it, also after an error."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from liger_conformance.mocks import FakeDeviceProperties, Patches, cuda, rocm, routed_as
from liger_kernel.dispatch import dispatcher

PATCHED = (
    "is_available",
    "device_count",
    "current_device",
    "set_device",
    "get_device_name",
    "get_device_properties",
    "get_device_capability",
    "is_bf16_supported",
    "synchronize",
)


def snapshot():
    return (
        {name: torch.cuda.__dict__.get(name) for name in PATCHED},
        torch.version.cuda,
        torch.version.hip,
        dict(dispatcher.device_alias),
    )


VENDORS = [
    pytest.param(cuda, "12.8", None, 32, 132, id="cuda"),
    pytest.param(rocm, None, rocm.HIP_VERSION, 64, 304, id="rocm"),
]


@pytest.mark.parametrize(("mock", "cuda_version", "hip_version", "warp_size", "units"), VENDORS)
def test_patches_take_effect(mock, cuda_version, hip_version, warp_size, units):
    with mock.active():
        assert torch.cuda.is_available()
        assert torch.cuda.device_count() == 1
        assert torch.cuda.current_device() == 0
        assert torch.version.cuda == cuda_version
        assert torch.version.hip == hip_version
        props = torch.cuda.get_device_properties(torch.device("cpu"))
        assert props.warp_size == warp_size
        assert props.multi_processor_count == units
        assert props.total_memory > 0 and props.shared_memory_per_block_optin > 0
        assert torch.cuda.get_device_name() == props.name
        assert torch.cuda.get_device_capability(0) == (props.major, props.minor)
        assert (props.gcnArchName is not None) == (hip_version is not None)
        assert dispatcher.device_alias["cpu"] == "cuda"


@pytest.mark.parametrize(("mock", "cuda_version", "hip_version", "warp_size", "units"), VENDORS)
def test_patches_are_undone(mock, cuda_version, hip_version, warp_size, units):
    before = snapshot()
    with mock.active():
        assert snapshot() != before
    assert snapshot() == before
    with pytest.raises(RuntimeError, match="inside"), mock.active():
        raise RuntimeError("an error inside the mock")
    assert snapshot() == before
    assert not torch.cuda.is_available()


@pytest.mark.parametrize(("mock", "vendor_backend", "other_backend"), [(cuda, "cuda", "rocm"), (rocm, "rocm", "cuda")])
def test_vendor_probe_sees_its_hardware(mock, vendor_backend, other_backend):
    with mock.active():
        assert dispatcher.probe(vendor_backend)[0]
        assert not dispatcher.probe(other_backend)[0]
        assert dispatcher.select("rms_norm", "cuda").backend in (vendor_backend, "torch")
    # probes made under the mock are forgotten on exit
    assert not dispatcher.probe(vendor_backend)[0]


def test_device_count_and_ordinals():
    props = FakeDeviceProperties("test GPU", 8, 0, 4, 1 << 30, 32, 100 * 1024)
    with cuda.active(props, device_count=2):
        assert torch.cuda.device_count() == 2
        torch.cuda.set_device(1)
        assert torch.cuda.current_device() == 1
        assert torch.cuda.get_device_properties("cuda:1") is props
        with pytest.raises(RuntimeError, match="ordinal 2"):
            torch.cuda.get_device_properties(2)
    with pytest.raises(ValueError, match="device_count"), cuda.active(device_count=0):
        pass


def test_patches_restore_missing_attributes_and_modules():
    target = types.SimpleNamespace(kept=1)
    environment_name = "LIGER_CONFORMANCE_SELFTEST_VARIABLE"
    patches = Patches()
    patches.setattr(target, "kept", 2)
    patches.setattr(target, "added", 3)
    patches.module("liger_conformance_selftest_module", types.ModuleType("stand_in"))
    patches.environ(environment_name, "1")
    assert (target.kept, target.added) == (2, 3)
    assert "liger_conformance_selftest_module" in sys.modules
    patches.undo()
    assert target.kept == 1 and not hasattr(target, "added")
    assert "liger_conformance_selftest_module" not in sys.modules
    import os

    assert environment_name not in os.environ


def test_routed_as_resets_routes():
    with routed_as("cuda"):
        dispatcher.function("rms_norm", "cpu", "LigerRMSNormFunction")
        assert ("rms_norm", "cuda", None) in dispatcher._functions
    assert dispatcher._functions == {}
    assert "cpu" not in dispatcher.device_alias


INTERPRETED_KERNEL = """
import os
os.environ["TRITON_INTERPRET"] = "1"
import torch, triton, triton.language as tl
from triton.runtime import interpreter
from liger_conformance.mocks import patch_language_once_per_launch

original_patch = interpreter._patch_lang
full_patches = []
interpreter._patch_lang = lambda fn: full_patches.append(fn.__name__) or original_patch(fn)
patch_language_once_per_launch()
original_load = tl.load

@triton.jit
def twice(x):
    return x * 2

@triton.jit
def kernel(x_ptr, out_ptr, N: tl.constexpr, BLOCK: tl.constexpr):
    offsets = tl.arange(0, BLOCK)
    total = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, N, BLOCK):
        total += twice(tl.load(x_ptr + start + offsets))
    tl.store(out_ptr + offsets, total)

x = torch.arange(32, dtype=torch.float32)
out = torch.empty(8)
for _ in range(2):
    kernel[(1,)](x, out, N=32, BLOCK=8)
    torch.testing.assert_close(out, 2 * x.view(4, 8).sum(0))
    assert tl.load is original_load, "the launch left triton.language patched"
print(full_patches)
"""


def test_language_is_patched_once_per_launch_and_restored_after(tmp_path):
    """The interpreter speed-up for kernels that call ``@triton.jit`` helpers:
    the helper's four calls per launch reuse the launch's patch (Triton's own
    helpers that see ``triton.language.core`` patch that module once), the
    kernel still computes the same, and the language is restored after each launch."""
    pytest.importorskip("triton")
    import subprocess

    script = tmp_path / "interpreted_kernel.py"
    script.write_text(INTERPRETED_KERNEL)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    patched_for = eval(done.stdout)  # the functions whose call patched the whole language
    assert patched_for.count("kernel") == 2, patched_for
    assert "twice" not in patched_for, patched_for
