"""The Triton check on installed layouts built in a temporary site directory:
real distribution metadata (METADATA, RECORD) and files, read by importlib.metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from liger_kernel.dispatch import dispatcher
from liger_kernel_rocm import triton_check

CORE = ["triton/__init__.py", "triton/backends/__init__.py", "triton/backends/nvidia/compiler.py"]
AMD = ["triton/backends/amd/__init__.py", "triton/backends/amd/compiler.py"]


def install(site: Path, name: str, version: str, files: list[str] = (), requires: list[str] = ()) -> None:
    """Write a distribution as pip leaves it: its files and a dist-info folder with METADATA and RECORD."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    for file in files:
        (site / file).parent.mkdir(parents=True, exist_ok=True)
        (site / file).write_text("")
    record = [*files, f"{info.name}/METADATA", f"{info.name}/RECORD"]
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in record))


def problem_of(site: Path) -> str | None:
    return triton_check.layout_problem(triton_check.installed_layout([str(site)]))


def test_rocm7_layout_is_accepted(tmp_path):
    """AMD's ROCm 7 wheels: torch pins `triton`, and that distribution carries the AMD backend."""
    install(tmp_path, "torch", "2.9.0+rocm7.0.0", requires=['triton==3.5.0+rocm7.0.0; platform_system == "Linux"'])
    install(tmp_path, "triton", "3.5.0+rocm7.0.0", CORE + AMD)
    layout = triton_check.installed_layout([str(tmp_path)])
    assert layout.owners == (("triton", "3.5.0+rocm7.0.0"),) and layout.amd_backend
    assert layout.torch_pin == ("triton", "3.5.0+rocm7.0.0")
    assert triton_check.layout_problem(layout) is None


def test_rocm6_layout_is_accepted(tmp_path):
    install(tmp_path, "torch", "2.7.1+rocm6.4", requires=["pytorch-triton-rocm==3.3.1; platform_system == 'Linux'"])
    install(tmp_path, "pytorch-triton-rocm", "3.3.1", CORE + AMD)
    assert problem_of(tmp_path) is None


def test_cuda_only_triton_is_rejected_with_the_repair_command(tmp_path):
    install(tmp_path, "torch", "2.7.1+rocm6.4", requires=["pytorch-triton-rocm==3.3.1"])
    install(tmp_path, "pytorch-triton-rocm", "3.3.1", CORE)  # no triton/backends/amd
    problem = problem_of(tmp_path)
    assert "no AMD backend" in problem and "CUDA-only" in problem
    assert "pip uninstall -y pytorch-triton-rocm triton && pip install --no-deps pytorch-triton-rocm==3.3.1" in problem


def test_amd_backend_files_must_be_on_disk(tmp_path):
    install(tmp_path, "triton", "3.5.0", CORE + AMD)
    for file in AMD:
        (tmp_path / file).unlink()  # RECORD still lists them
    assert "no AMD backend" in problem_of(tmp_path)


def test_index_triton_over_rocm_triton_is_named(tmp_path):
    """liger-cuda beside liger-rocm: pip installs the index's triton over pytorch-triton-rocm."""
    install(tmp_path, "torch", "2.7.1+rocm6.4", requires=["pytorch-triton-rocm==3.3.1"])
    install(tmp_path / "first", "pytorch-triton-rocm", "3.3.1", CORE + AMD)
    install(tmp_path / "first", "triton", "3.5.0", CORE + AMD)
    problem = triton_check.layout_problem(triton_check.installed_layout([str(tmp_path), str(tmp_path / "first")]))
    assert "two distributions own the triton module (pytorch-triton-rocm 3.3.1, triton 3.5.0)" in problem
    assert "liger-cuda" in problem and "pip install --no-deps pytorch-triton-rocm==3.3.1" in problem


def test_triton_of_another_version_than_torch_requires_is_named(tmp_path):
    """ROCm 7: torch pins triton==3.5.0+rocm7, the index's triton 3.6.0 replaced it (one owner left)."""
    install(tmp_path, "torch", "2.9.0+rocm7.0.0", requires=["triton==3.5.0+rocm7.0.0"])
    install(tmp_path, "triton", "3.6.0", CORE + AMD)
    problem = problem_of(tmp_path)
    assert "torch requires triton==3.5.0+rocm7.0.0 but triton 3.6.0 is installed" in problem
    assert "pip install --no-deps triton==3.5.0+rocm7.0.0" in problem


def test_missing_triton_is_detected(tmp_path):
    install(tmp_path, "torch", "2.7.1+rocm6.4")
    assert "no triton module is installed" in problem_of(tmp_path)


def test_require_raises_with_the_problem_outside_a_mock(tmp_path, monkeypatch):
    install(tmp_path, "pytorch-triton-rocm", "3.3.1", CORE)
    read = triton_check.installed_layout
    monkeypatch.setattr(dispatcher, "device_alias", {})
    monkeypatch.setattr(triton_check, "installed_layout", lambda: read([str(tmp_path)]))
    with pytest.raises(ImportError, match="liger-rocm: the installed Triton .* has no AMD backend"):
        triton_check.require_rocm_triton()


def test_active_target_must_be_hip():
    assert triton_check.target_problem("hip") is None
    assert "not 'hip'" in triton_check.target_problem("cuda")


def test_this_machines_pypi_triton_carries_the_amd_backend():
    """The dev environment's `triton` (PyPI) is the layout ROCm 7 has: one owner, AMD backend present."""
    layout = triton_check.installed_layout()
    if not any(name == "triton" for name, _ in layout.owners):
        pytest.skip("no PyPI triton here")
    assert layout.amd_backend
