"""The NPU profile and the import-time environment checks."""

import sys
import types

import pytest
import torch

from liger_conformance.mocks import npu as npu_mock
from liger_kernel_ascend import safety
from liger_kernel_ascend.probe import probe
from liger_kernel_ascend.profile import FALLBACK_VECTOR_CORES, npu_profile
from liger_kernel_ascend.tiling import MAX_GRID, UB_BYTES_A2


def test_profile_reads_core_counts_from_the_triton_driver():
    props = npu_mock.FakeNPUProperties("Ascend910B2 (test)", 64 << 30, 24, 48, 192 << 20, 192 * 1024)
    with npu_mock.active(props):
        profile = npu_profile(torch.device("cpu"))
    assert profile.compute_units == 48
    assert profile.max_grid == MAX_GRID
    assert not profile.uses_num_warps
    assert profile.onchip_bytes < UB_BYTES_A2
    assert profile.name == "Ascend910B2 (test)"


def test_unified_buffer_size_from_the_environment(monkeypatch):
    monkeypatch.setenv("LIGER_ASCEND_UB_BYTES", str(96 * 1024))
    with npu_mock.active():
        profile = npu_profile(torch.device("cpu"))
    assert profile.onchip_bytes < 96 * 1024
    monkeypatch.setenv("LIGER_ASCEND_UB_BYTES", "-1")
    with npu_mock.active(), pytest.raises(ValueError, match="LIGER_ASCEND_UB_BYTES"):
        npu_profile(torch.device("cpu"))


def test_core_counts_fall_back_when_nothing_answers(monkeypatch):
    with npu_mock.active():
        from triton.runtime.driver import driver

        monkeypatch.setattr(driver.active.utils, "get_device_properties", lambda index: {})
        monkeypatch.setattr(torch.npu, "get_device_properties", lambda index=None: types.SimpleNamespace())
        assert npu_profile(torch.device("cpu")).compute_units == FALLBACK_VECTOR_CORES


def test_mock_bypass_needs_both_npu_routing_and_the_interpreter(monkeypatch):
    from liger_kernel.dispatch import dispatcher

    monkeypatch.setattr(dispatcher, "device_alias", {})
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert not safety.mock_active()
    dispatcher.device_alias["cpu"] = "cuda"  # another vendor's mock
    assert not safety.mock_active()
    dispatcher.device_alias["cpu"] = "npu"
    assert safety.mock_active()
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert not safety.mock_active()


def test_nvidia_triton_is_reported_with_the_repair_command(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch_npu", raising=False)
    monkeypatch.setattr(safety, "_triton_providers", lambda: ("triton",))
    problem = safety.triton_problem()
    assert "not triton-ascend" in problem
    assert "pip uninstall -y triton" in problem and "triton-ascend==" in problem
    with pytest.raises(safety.AscendEnvironmentError, match="not triton-ascend"):
        safety.check_environment()


def test_missing_triton_is_reported(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch_npu", raising=False)
    monkeypatch.setattr(safety, "_triton_providers", lambda: ())
    assert "not installed" in safety.triton_problem()


def test_overwritten_triton_ascend_is_reported(monkeypatch):
    # triton-ascend >= 3.2.1 installs community triton first and overlays it:
    # both own triton/, and only the ascend backend directory tells who won
    monkeypatch.delitem(sys.modules, "torch_npu", raising=False)
    monkeypatch.setattr(safety, "_triton_providers", lambda: ("triton", "triton-ascend"))
    assert "overwritten" in safety.triton_problem()  # this machine's triton has no backends/ascend


def test_probe_names_the_triton_conflict(monkeypatch):
    with npu_mock.active():
        monkeypatch.setenv("TRITON_INTERPRET", "0")
        monkeypatch.setattr(safety, "_triton_providers", lambda: ("triton",))
        ok, reason = probe()
    assert not ok and "not triton-ascend" in reason


def test_probe_passes_under_the_mock():
    with npu_mock.active():
        ok, reason = probe()
    assert ok, reason
    assert "Ascend910B3" in reason


@pytest.mark.parametrize(
    ("torch_version", "npu_version", "problem"),
    [
        ("2.7.1+cpu", "2.7.1.post2", None),
        ("2.6.0", "2.6.0", None),
        ("2.7.1", "2.6.0.post3", "built for torch 2.6.0"),
        ("2.13.0", "2.13.0", None),  # newer than the table: same release naming rule
        ("2.13.0", "2.12.0", "built for torch 2.12.0"),
        ("2.7.1", None, "torch_npu is not installed"),
    ],
)
def test_torch_and_torch_npu_versions(torch_version, npu_version, problem):
    problems = safety.version_problems(torch_version, npu_version)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0]


def test_probe_imports_nothing_and_the_prepare_step_refuses_nvidia_triton():
    """In a fresh process without the mock: discovering and probing the backend
    imports neither triton nor the kernels; its prepare step, which the
    dispatcher runs before importing a kernel, runs the triton-ascend check,
    which this machine's NVIDIA triton fails."""
    import subprocess

    code = (
        "import sys\n"
        "from liger_kernel.backend import load_attr\n"
        "from liger_kernel.dispatch import dispatcher\n"
        "dispatcher.installed(); dispatcher.probe('ascend')\n"
        "print(any(m == 'triton' or m.startswith('triton.') for m in sys.modules), 'liger_kernel_ascend.ops' in sys.modules)\n"
        "try:\n"
        "    load_attr(dispatcher.get('ascend').backend.prepare)()\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    first, second = out.splitlines()[:2]
    assert first.split() == ["False", "False"]
    assert second.startswith("AscendEnvironmentError") and "not triton-ascend" in second
    assert "pip uninstall -y triton" in second


def _fake_site(tmp_path, monkeypatch, dists: dict[str, bytes], on_disk: bytes):
    """A site-packages holding ``triton/__init__.py`` with ``on_disk`` bytes and,
    per distribution name, a RECORD that lists the file with the hash of the
    bytes that distribution installed."""
    import base64
    import hashlib
    from importlib import metadata

    package = tmp_path / "triton"
    (package / "backends" / "ascend").mkdir(parents=True)
    (package / "__init__.py").write_bytes(on_disk)
    for name, content in dists.items():
        info = tmp_path / f"{name}-3.2.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 3.2.0\n")
        digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
        (info / "RECORD").write_text(f"triton/__init__.py,sha256={digest},{len(content)}\n{info.name}/RECORD,,\n")
    real = metadata.distributions
    monkeypatch.setattr(metadata, "distributions", lambda **kw: real(path=[str(tmp_path)]))
    monkeypatch.setattr(safety, "_triton_init_file", lambda: package / "__init__.py")
    monkeypatch.delitem(sys.modules, "torch_npu", raising=False)
    safety._triton_providers.cache_clear()


def test_a_source_build_named_triton_ascend_with_an_underscore_is_accepted(tmp_path, monkeypatch):
    _fake_site(tmp_path, monkeypatch, {"triton_ascend": b"ascend"}, on_disk=b"ascend")
    try:
        assert safety._triton_providers() == ("triton-ascend",)
        assert safety.triton_problem() is None
    finally:
        safety._triton_providers.cache_clear()


def test_an_nvidia_triton_installed_over_triton_ascend_is_caught_by_the_file_owner(tmp_path, monkeypatch):
    # the NVIDIA wheel rewrote triton/__init__.py but left triton/backends/ascend behind
    _fake_site(tmp_path, monkeypatch, {"triton_ascend": b"ascend", "triton": b"nvidia"}, on_disk=b"nvidia")
    try:
        assert safety.triton_owner(tmp_path / "triton" / "__init__.py") == "triton"
        problem = safety.triton_problem()
        assert "overwritten by triton" in problem and "pip uninstall -y triton" in problem
    finally:
        safety._triton_providers.cache_clear()


def test_the_backend_triton_selects_must_be_ascend():
    assert safety.active_backend_problem(["ascend"], "/site/triton/backends/ascend/driver.py") is None
    assert "no ascend backend" in safety.active_backend_problem(["nvidia", "amd"], None)
    problem = safety.active_backend_problem(["ascend", "nvidia"], "/site/triton/backends/nvidia/driver.py")
    assert "not triton-ascend's NPU driver" in problem


def test_cann_version_is_read_from_the_toolkit_install_record(tmp_path):
    (tmp_path / "aarch64-linux").mkdir()
    (tmp_path / "aarch64-linux" / "ascend_toolkit_install.info").write_text(
        "package_name=Ascend-cann-toolkit\nversion=8.5.0\n"
    )
    assert safety.cann_version({"ASCEND_HOME_PATH": str(tmp_path)}) == "8.5.0"
    assert safety.cann_version({}) is None


@pytest.mark.parametrize(
    ("triton_ascend", "torch_npu", "cann", "problem"),
    [
        ("3.2.0", "2.7.1.post2", "8.5.0", None),
        ("3.2.0", "2.6.0", None, None),
        (None, None, None, None),
        ("3.2.1", "2.7.1", "9.0.0", "triton-ascend 3.2.1 is not a declared release"),
        ("3.2.0", "2.7.1", "8.3.RC1", "declared with CANN 8.5.0, not 8.3.RC1"),
        ("3.2.0", "2.9.0", "8.5.0", "torch_npu 2.9.0 is not declared with triton-ascend 3.2.0"),
    ],
)
def test_versions_are_checked_against_the_declared_stacks(triton_ascend, torch_npu, cann, problem):
    problems = safety.stack_problems(triton_ascend, torch_npu, cann)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0]


def test_a_stack_mismatch_is_logged_when_the_kernels_load(monkeypatch, caplog):
    monkeypatch.setattr(safety, "triton_problem", lambda: None)
    monkeypatch.setattr(safety, "_active_backend", lambda: None)
    monkeypatch.setattr(safety, "mock_active", lambda: False)
    monkeypatch.setattr(safety, "torch_npu_version", lambda: torch.__version__)
    monkeypatch.setattr(safety, "_version", lambda dist: "3.2.1" if dist == "triton-ascend" else None)
    with caplog.at_level("WARNING", logger="liger_kernel"):
        safety.check_environment()
    assert "triton-ascend 3.2.1 is not a declared release" in caplog.text


def test_the_profile_gives_each_portable_kernel_the_widest_tiles_its_calibrated_cost_fits():
    import dataclasses

    from liger_kernel_ascend import portable, ub_calibration

    with npu_mock.active():
        profile = npu_profile(torch.device("cpu"))
    sized = {**portable.MAX_BLOCK_TILES, **portable.REGISTER_TILES}
    for kernel, tiles in sized.items():
        assert ub_calibration.tiles(kernel) is not None, f"{kernel} is not calibrated"
        for outer, inner in tiles(profile):
            needed = ub_calibration.worst_cost(kernel).bytes(outer, inner)
            assert needed <= profile.onchip_bytes, (kernel, outer, inner, needed)
    # the widest: a block twice as wide overflows some kernel's tile
    assert not portable.fits(dataclasses.replace(profile, max_block=2 * profile.max_block), portable.MAX_BLOCK_TILES)
