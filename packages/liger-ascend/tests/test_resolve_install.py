"""tools/resolve_install.py without the index: the marker override and the stack
check (the resolution itself needs the index; its output is in the README)."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[3] / "tools"
if not (TOOLS / "resolve_install.py").exists():
    pytest.skip("tools/resolve_install.py is not in this tree", allow_module_level=True)
markers = pytest.importorskip("packaging.markers")
sys.path.insert(0, str(TOOLS))

import resolve_install  # noqa: E402

ON_NPU_HOSTS = "platform_machine == 'aarch64'"


def test_markers_are_evaluated_for_the_target_machine_and_restored_after():
    host = platform.machine()
    target = "aarch64" if host != "aarch64" else "x86_64"
    with resolve_install.machine_seen_as(target):
        assert markers.Marker(f"platform_machine == '{target}'").evaluate()
        assert not markers.Marker(f"platform_machine == '{host}'").evaluate()
    assert platform.machine() == host


def test_pip_is_asked_for_the_targets_tags_and_abi(tmp_path):
    args = resolve_install.pip_arguments(["liger-kernel[ascend]"], "aarch64", "3.11", ["w"], [], tmp_path / "r.json")
    platforms = [args[i + 1] for i, arg in enumerate(args) if arg == "--platform"]
    assert platforms == ["manylinux_2_28_aarch64", "manylinux2014_aarch64"]
    assert args[args.index("--abi") + 1] == "cp311"
    assert "--dry-run" in args and args[-1] == "liger-kernel[ascend]"


@pytest.mark.parametrize(
    ("resolved", "problem"),
    [
        ({"triton-ascend": "3.2.0", "torch-npu": "2.7.1.post11", "torch": "2.7.1"}, None),
        ({"triton-ascend": "3.2.0", "torch-npu": "2.6.0.post5", "torch": "2.6.0+cpu"}, None),
        ({"triton-ascend": "3.2.0", "torch-npu": "2.8.0", "torch": "2.8.0"}, "is not declared"),
        ({"triton-ascend": "3.2.0", "torch-npu": "2.7.1", "torch": "2.7.1", "triton": "3.3.0"}, "beside triton-ascend"),
        ({"torch-npu": "2.7.1", "torch": "2.7.1"}, "not a full stack"),
    ],
)
def test_resolved_sets_are_checked_against_the_declared_stacks(resolved, problem):
    problems = resolve_install.ascend_stack_problems(resolved)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0]


def test_distribution_names_compare_as_the_index_does():
    assert resolve_install.canonical("torch_npu") == resolve_install.canonical("Torch.NPU") == "torch-npu"
