"""tools/check_packaging.py's triton rules, on metadata made up for the test
(the real run, which builds every wheel, is CI's packaging lane)."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import pytest

TOOLS = Path(__file__).resolve().parents[3] / "tools"
if not (TOOLS / "check_packaging.py").exists():
    pytest.skip("tools/check_packaging.py is not in this tree", allow_module_level=True)
pytest.importorskip("packaging")
sys.path.insert(0, str(TOOLS))

import check_packaging  # noqa: E402
from packaging.requirements import Requirement  # noqa: E402

# what torch's own Linux wheels on PyPI declare (the version numbers are made up)
PYPI_TORCH = [
    "filelock",
    'triton==3.5.0; platform_system == "Linux" and platform_machine == "x86_64"',
    'optree>=0.13.0; extra == "optree"',
]


def test_triton_and_its_renamed_builds_are_recognised():
    found = check_packaging.triton_requirements(
        [*PYPI_TORCH, "pytorch-triton-rocm==3.4.0", "pytorch_triton==3.6.0", "triton-ascend>=3.2"]
    )
    assert [r.name for r in found] == ["triton", "pytorch-triton-rocm", "pytorch_triton"]


def test_torch_whose_linux_wheel_requires_triton_is_reported(monkeypatch):
    monkeypatch.setattr(metadata, "version", lambda name: "2.14.0")
    monkeypatch.setattr(metadata, "requires", lambda name: PYPI_TORCH)
    version, lines = check_packaging.torch_triton_report()
    assert version == "2.14.0"
    [line] = lines
    assert line.startswith('triton==3.5.0; platform_system == "Linux"')
    assert line.endswith("(applies here)") or line.endswith("(applies on Linux x86_64)")


def test_cpu_torch_requires_no_triton(monkeypatch):
    monkeypatch.setattr(metadata, "version", lambda name: "2.13.0+cpu")
    monkeypatch.setattr(metadata, "requires", lambda name: ["filelock", "sympy>=1.13.3"])
    assert check_packaging.torch_triton_report() == ("2.13.0+cpu", [])


def test_only_liger_cuda_may_require_triton():
    def wheel(*requires: str) -> SimpleNamespace:
        return SimpleNamespace(requires=[Requirement(r) for r in requires])

    wheels = {
        "liger-cuda": wheel("triton>=3.0"),
        "liger-rocm": wheel("torch>=2.4", 'pytorch-triton-rocm; extra == "dev"'),
        "liger-ascend": wheel("triton-ascend>=3.2.0"),
    }
    assert check_packaging.triton_requirers(wheels) == {
        "liger-rocm": ['pytorch-triton-rocm; extra == "dev"'],
        "liger-ascend": [],
    }


def test_the_declared_layout_ships_liger_kernel_in_the_liger_kernel_distribution():
    # liger-kernel 0.8.x owns liger_kernel/: any other owner loses its files on `pip install -U liger-kernel`
    shipped = dict(map(check_packaging.declared_files, check_packaging.PACKAGES))
    owners = [name for name, files in shipped.items() if "liger_kernel/__init__.py" in files]
    assert owners == ["liger-kernel"]
    assert check_packaging.layout_problems(shipped) == []


def test_a_core_package_owned_elsewhere_or_a_file_in_two_wheels_is_a_layout_problem():
    old_layout = {
        "liger-core": ["liger_kernel/__init__.py", "liger_kernel/ops/rms_norm.py"],
        "liger-kernel": ["liger_kernel-0.9.0.dist-info/METADATA"],
        "liger-cuda": ["liger_kernel_cuda/__init__.py", "liger_kernel/ops/rms_norm.py"],
    }
    [owner, shared] = check_packaging.layout_problems(old_layout)
    assert owner.startswith("liger_kernel/__init__.py is shipped by liger-core, not by liger-kernel alone")
    assert shared == "liger_kernel/ops/rms_norm.py is shipped by liger-core and liger-cuda"
    assert check_packaging.layout_problems({"liger-kernel": []}) == [
        "liger_kernel/__init__.py is shipped by no distribution, not by liger-kernel alone: "
        "liger-kernel 0.8.x owns it, so an upgrade would delete it"
    ]


def test_the_requirement_closure_follows_a_cycle_once():
    def wheel(*requires: str) -> SimpleNamespace:
        parsed = [Requirement(r) for r in requires]
        return SimpleNamespace(
            deps=lambda extras: [
                r for r in parsed if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in extras)
            ]
        )

    wheels = {
        "liger-kernel": wheel("torch>=2.4", 'liger-cuda==0.9.0; extra == "cuda"'),
        "liger-cuda": wheel("liger-kernel==0.9.0", "triton>=3.0"),
    }
    assert check_packaging.closure(wheels, "liger-kernel", {"cuda"}) == {
        "torch": ">=2.4",
        "liger-cuda": "==0.9.0",
        "liger-kernel": "==0.9.0",
        "triton": ">=3.0",
    }
