"""The device gates against fake nvidia-smi / rocm-smi / npu-smi commands put on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

GATES = Path(__file__).resolve().parent.parent / "gates"


def _nvidia_rows(count: int, ecc: str = "0", name: str = "NVIDIA H100 80GB HBM3") -> str:
    return "".join(f"{i}, GPU-{i:08d}-aaaa-bbbb-cccc-000000000000, {name}, {ecc}\n" for i in range(count))


def _npu_table(healths: list[str], name: str = "910B3", processes: bool = True) -> str:
    rule = "+===========================+===============+====================================================+\n"
    out = [
        "+------------------------------------------------------------------------------------------------+\n",
        "| npu-smi 24.1.0                   Version: 24.1.0                                               |\n",
        "+---------------------------+---------------+----------------------------------------------------+\n",
        "| NPU   Name                | Health        | Power(W)    Temp(C)           Hugepages-Usage(page)|\n",
        "| Chip                      | Bus-Id        | AICore(%)   Memory-Usage(MB)  HBM-Usage(MB)        |\n",
        rule,
    ]
    for npu, health in enumerate(healths):
        out.append(f"| {npu:<5} {name:<19} | {health:<13} | 93.5        41                0    / 0             |\n")
        out.append(
            f"| 0                         | 0000:C{npu}:00.0  | 0           0    / 0          3162 / 65536         |\n"
        )
        out.append(rule)
    if processes:
        out.append(
            "| NPU     Chip              | Process id    | Process name             | Process memory(MB)      |\n"
        )
        out.append(rule)
        out.append(
            "| 0       0                 | 123456        | python                   | 2000                    |\n"
        )
    return "".join(out)


def _rocm_json(uses: list[str], series: str = "AMD Instinct MI300X") -> str:
    cards = ", ".join(
        f'"card{i}": {{"Card Series": "{series}", "Card Vendor": "Advanced Micro Devices, Inc.", "GPU use (%)": "{use}"}}'
        for i, use in enumerate(uses)
    )
    return "WARNING: some rocm-smi builds print this first\n{" + cards + "}\n"


def _fake_tool(directory: Path, name: str, stdout: str, code: int = 0) -> None:
    (directory / f"{name}.out").write_text(stdout)
    script = directory / name
    script.write_text(f'#!/bin/sh\ncat "{directory / (name + ".out")}"\nexit {code}\n')
    script.chmod(0o755)


def _gate(tmp_path: Path, vendor: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    # PATH: the fake tools, then only what runs the gate itself, so no real vendor tool is found.
    path = os.pathsep.join([str(tmp_path), str(Path(sys.executable).parent), "/usr/bin", "/bin"])
    environment = {"PATH": path, "LIGER_CI_PYTHON": sys.executable, **(env or {})}
    return subprocess.run(
        ["bash", str(GATES / f"{vendor}.sh"), *args], capture_output=True, text=True, env=environment, check=False
    )


# (vendor, tool, healthy report of 8 devices, report with device 3 unhealthy, zero-device report, name prefix)
CASES = {
    "nvidia": ("nvidia-smi", _nvidia_rows(8), _nvidia_rows(3) + "3, GPU-x, NVIDIA H100 80GB HBM3, 2\n", "", "NVIDIA"),
    "amd": ("rocm-smi", _rocm_json(["0"] * 8), _rocm_json(["0", "0", "0", "N/A"]), "{}", "AMD Instinct"),
    "ascend": ("npu-smi", _npu_table(["OK"] * 8), _npu_table(["OK", "OK", "OK", "Alarm"]), _npu_table([]), "910B"),
}


@pytest.mark.parametrize("vendor", CASES)
def test_gate_passes_with_enough_healthy_devices(tmp_path: Path, vendor: str) -> None:
    tool, healthy, _, _, prefix = CASES[vendor]
    _fake_tool(tmp_path, tool, healthy)
    for needed in ("1", "8"):
        result = _gate(tmp_path, vendor, needed, prefix)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "passed" in result.stdout and "8 device(s)" in result.stdout


@pytest.mark.parametrize("vendor", CASES)
def test_gate_fails_with_fewer_devices_than_the_lane_needs(tmp_path: Path, vendor: str) -> None:
    tool, healthy, _, _, _ = CASES[vendor]
    _fake_tool(tmp_path, tool, healthy)
    result = _gate(tmp_path, vendor, "9")
    assert result.returncode == 1
    assert "needs 9, found 8" in result.stdout


@pytest.mark.parametrize("vendor", CASES)
def test_gate_fails_with_zero_devices(tmp_path: Path, vendor: str) -> None:
    tool, _, _, empty, _ = CASES[vendor]
    _fake_tool(tmp_path, tool, empty)
    result = _gate(tmp_path, vendor, "1")
    assert result.returncode == 1
    assert "needs 1, found 0" in result.stdout


@pytest.mark.parametrize("vendor", CASES)
def test_gate_fails_on_an_unhealthy_device(tmp_path: Path, vendor: str) -> None:
    tool, _, sick, _, _ = CASES[vendor]
    _fake_tool(tmp_path, tool, sick)
    result = _gate(tmp_path, vendor, "1")
    assert result.returncode == 1
    assert "unhealthy: 3" in result.stdout


@pytest.mark.parametrize("vendor", CASES)
def test_gate_fails_when_the_tool_errors(tmp_path: Path, vendor: str) -> None:
    tool = CASES[vendor][0]
    _fake_tool(tmp_path, tool, "Failed to initialize: couldn't communicate with the driver\n", code=9)
    result = _gate(tmp_path, vendor, "1")
    assert result.returncode == 1
    assert "failed (exit 9)" in result.stdout and "couldn't communicate" in result.stdout


@pytest.mark.parametrize("vendor", CASES)
def test_gate_fails_when_the_tool_is_missing(tmp_path: Path, vendor: str) -> None:
    result = _gate(tmp_path, vendor, "1")
    assert result.returncode == 1
    assert f"{CASES[vendor][0]} is not on PATH" in result.stdout


@pytest.mark.parametrize("vendor", CASES)
def test_gate_checks_the_device_name(tmp_path: Path, vendor: str) -> None:
    tool, healthy, _, _, _ = CASES[vendor]
    _fake_tool(tmp_path, tool, healthy)
    result = _gate(tmp_path, vendor, "1", "Z9000")
    assert result.returncode == 1
    assert "needs Z9000* devices" in result.stdout


def test_gate_counts_only_the_visible_devices(tmp_path: Path) -> None:
    _fake_tool(tmp_path, "npu-smi", _npu_table(["OK", "OK", "OK", "Alarm"]))
    visible = _gate(tmp_path, "ascend", "2", env={"ASCEND_RT_VISIBLE_DEVICES": "0,2"})
    assert visible.returncode == 0, visible.stdout
    too_few = _gate(tmp_path, "ascend", "3", env={"ASCEND_RT_VISIBLE_DEVICES": "0,2"})
    assert too_few.returncode == 1 and "needs 3, found 2" in too_few.stdout
    _fake_tool(tmp_path, "nvidia-smi", _nvidia_rows(4))
    by_uuid = _gate(tmp_path, "nvidia", "1", env={"CUDA_VISIBLE_DEVICES": "GPU-00000002-aaaa-bbbb-cccc-000000000000"})
    assert by_uuid.returncode == 0 and "1 device(s)" in by_uuid.stdout


def test_nvidia_reset_marker_is_unhealthy(tmp_path: Path) -> None:
    _fake_tool(tmp_path, "nvidia-smi", _nvidia_rows(1) + "1, GPU-y, NVIDIA H100, [GPU requires reset]\n")
    result = _gate(tmp_path, "nvidia", "1")
    assert result.returncode == 1 and "requires reset" in result.stdout


def test_gate_rejects_a_bad_device_count(tmp_path: Path) -> None:
    assert _gate(tmp_path, "nvidia", "0").returncode == 2
    assert _gate(tmp_path, "nvidia").returncode == 2


# ------------------------------------------------ the Ascend environment check

CHECK_ENV = GATES.parent / "runners" / "ascend" / "check_env.py"


def _dist(site: Path, name: str, version: str, files: list[str] = ()) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "RECORD").write_text("".join(f"{file},,\n" for file in files))
    for file in files:
        (site / file).parent.mkdir(parents=True, exist_ok=True)
        (site / file).write_text("")


def _check_env(site: Path) -> subprocess.CompletedProcess:
    # -S: no site-packages, so only the fake distributions under `site` are seen.
    return subprocess.run(
        [sys.executable, "-S", str(CHECK_ENV)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(site)},
        check=False,
    )


@pytest.fixture
def ascend_site(tmp_path: Path) -> Path:
    for name, version in [("torch", "2.6.0"), ("torch-npu", "2.6.0"), ("pytest", "8.3.0")]:
        _dist(tmp_path, name, version)
    return tmp_path


ASCEND_TRITON = ["triton/__init__.py", "triton/backends/ascend/__init__.py"]


def test_check_env_accepts_triton_ascend(ascend_site: Path) -> None:
    _dist(ascend_site, "triton-ascend", "3.2.0", ASCEND_TRITON)
    result = _check_env(ascend_site)
    assert result.returncode == 0, result.stdout
    assert "environment ok" in result.stdout


def test_check_env_accepts_community_triton_under_triton_ascend(ascend_site: Path) -> None:
    # newer triton-ascend releases depend on `triton`; its backend must survive
    _dist(ascend_site, "triton-ascend", "3.2.1", ASCEND_TRITON)
    _dist(ascend_site, "triton", "3.5.0")
    result = _check_env(ascend_site)
    assert result.returncode == 0, result.stdout


def test_check_env_rejects_triton_that_overwrote_the_ascend_backend(ascend_site: Path) -> None:
    _dist(ascend_site, "triton-ascend", "3.2.0", ["triton/__init__.py"])
    _dist(ascend_site, "triton", "3.5.0")
    result = _check_env(ascend_site)
    assert result.returncode == 1
    assert "the `triton` distribution 3.5.0 overwrote triton-ascend's files" in result.stdout


def test_check_env_rejects_a_missing_triton_ascend(ascend_site: Path) -> None:
    _dist(ascend_site, "triton", "3.5.0", ["triton/__init__.py"])
    result = _check_env(ascend_site)
    assert result.returncode == 1
    assert "triton-ascend is not installed" in result.stdout
