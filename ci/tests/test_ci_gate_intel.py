"""The intel device gate against fake xpu-smi / sycl-ls commands put on PATH."""

from __future__ import annotations

import json
from pathlib import Path

from test_ci_gates import _fake_tool, _gate

NAME = "Intel(R) Data Center GPU Max 1550"


def _xpu_smi(count: int, extra: list[dict] = ()) -> str:
    listed = [
        {
            "device_id": i,
            "device_name": NAME,
            "device_type": "GPU",
            "uuid": f"0100-{i}",
            "pci_bdf_address": f"0000:{i}:00.0",
        }
        for i in range(count)
    ]
    return json.dumps({"device_list": [*listed, *extra]}, indent=4)


def _sycl_ls(count: int, old_format: bool = False) -> str:
    lines = ["[opencl:cpu][opencl:0] Intel(R) OpenCL, Intel(R) Xeon(R) Platinum 8480+ OpenCL 3.0 [2024.18.12]"]
    for i in range(count):
        lines.append(f"[opencl:gpu][opencl:{i + 1}] Intel(R) OpenCL Graphics, {NAME} OpenCL 3.0 NEO  [24.35.30872]")
    for i in range(count):
        tag = f"[ext_oneapi_level_zero:gpu:{i}]" if old_format else f"[level_zero:gpu][level_zero:{i}]"
        lines.append(f"{tag} Intel(R) Level-Zero, {NAME} 1.3 [1.3.30872]")
    return "\n".join(lines) + "\n"


def test_xpu_smi_with_enough_gpus_passes(tmp_path: Path) -> None:
    _fake_tool(tmp_path, "xpu-smi", _xpu_smi(4))
    result = _gate(tmp_path, "intel", "4", "Intel(R) Data Center GPU Max")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "xpu-smi reports 4 device(s)" in result.stdout and NAME in result.stdout


def test_xpu_smi_with_no_gpu_fails(tmp_path: Path) -> None:
    _fake_tool(tmp_path, "xpu-smi", _xpu_smi(0))
    result = _gate(tmp_path, "intel", "1")
    assert result.returncode == 1 and "needs 1, found 0" in result.stdout


def test_xpu_smi_counts_gpus_only(tmp_path: Path) -> None:
    _fake_tool(tmp_path, "xpu-smi", _xpu_smi(1, [{"device_id": 1, "device_name": "NPU", "device_type": "NPU"}]))
    result = _gate(tmp_path, "intel", "2")
    assert result.returncode == 1 and "needs 2, found 1" in result.stdout


def test_xpu_smi_that_fails_fails_the_gate(tmp_path: Path) -> None:
    _fake_tool(tmp_path, "xpu-smi", "Error: Level Zero initialization failed\n", code=1)
    result = _gate(tmp_path, "intel", "1")
    assert result.returncode == 1 and "failed (exit 1)" in result.stdout


def test_without_xpu_smi_sycl_ls_is_asked(tmp_path: Path) -> None:
    for old_format in (False, True):
        _fake_tool(tmp_path, "sycl-ls", _sycl_ls(2, old_format))
        result = _gate(tmp_path, "intel", "2", "Intel(R) Data Center GPU Max 1550")
        assert result.returncode == 0, result.stdout + result.stderr
        # the OpenCL view of the same GPUs and the CPU are not counted
        assert "sycl-ls reports 2 device(s)" in result.stdout
    assert _gate(tmp_path, "intel", "3").returncode == 1


def test_sycl_ls_without_a_level_zero_gpu_fails(tmp_path: Path) -> None:
    _fake_tool(tmp_path, "sycl-ls", _sycl_ls(0))
    result = _gate(tmp_path, "intel", "1")
    assert result.returncode == 1 and "needs 1, found 0" in result.stdout


def test_neither_tool_fails_naming_both(tmp_path: Path) -> None:
    result = _gate(tmp_path, "intel", "1")
    assert result.returncode == 1 and "xpu-smi (or sycl-ls) is not on PATH" in result.stdout


def test_affinity_mask_counts_cards(tmp_path: Path) -> None:
    _fake_tool(tmp_path, "xpu-smi", _xpu_smi(4))
    tiles = _gate(tmp_path, "intel", "1", env={"ZE_AFFINITY_MASK": "2.0,2.1"})
    assert tiles.returncode == 0 and "1 device(s) in ZE_AFFINITY_MASK=2.0,2.1" in tiles.stdout
    assert _gate(tmp_path, "intel", "2", env={"ZE_AFFINITY_MASK": "2.0,2.1"}).returncode == 1
