"""Device gate: fail a hardware job unless the vendor tool shows enough healthy devices.

    python ci/gates/devices.py VENDOR NEEDED [NAME_PREFIX]     (VENDOR: nvidia, amd, ascend, intel)

Called by ci/gates/{nvidia,amd,ascend,intel}.sh as the first step of every hardware job.
It asks the vendor's own tool (nvidia-smi, rocm-smi, npu-smi; for Intel xpu-smi, or
sycl-ls where XPU Manager is not installed), not torch, so that a
broken driver is reported as such before anything is installed. The job fails when
the tool is missing, exits non-zero, shows fewer devices than the lane needs, shows
an unhealthy device, or a device whose name does not start with NAME_PREFIX. When
the runner restricts the visible devices (CUDA_VISIBLE_DEVICES, HIP_VISIBLE_DEVICES,
ASCEND_RT_VISIBLE_DEVICES, ZE_AFFINITY_MASK), only those count. Standard library only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Device:
    index: str
    name: str
    problem: str | None = None  # None when healthy
    uuid: str = ""


def parse_nvidia(text: str) -> list[Device]:
    """Rows of `nvidia-smi --query-gpu=index,uuid,name,ecc.errors.uncorrected.volatile.total --format=csv,noheader`."""
    devices = []
    for line in text.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) < 4 or not fields[0].isdigit():
            continue
        index, uuid, name, ecc = fields[0], fields[1], ", ".join(fields[2:-1]), fields[-1]
        problem = None
        broken = [field for field in fields if re.search(r"requires reset|unknown error|err!", field, re.IGNORECASE)]
        if broken:
            problem = f"reports {broken[0]!r}"
        elif ecc.isdigit() and int(ecc) > 0:
            problem = f"{ecc} uncorrected ECC errors since the driver loaded"
        devices.append(Device(index=index, name=name, problem=problem, uuid=uuid))
    return devices


def parse_rocm(text: str) -> list[Device]:
    """`rocm-smi --showproductname --showuse --json`: {"card0": {"Card Series": ..., "GPU use (%)": "3"}, ...}."""
    start = text.find("{")  # some builds print warnings before the JSON document
    if start < 0:
        raise ValueError("rocm-smi printed no JSON")
    data = json.loads(text[start:])
    devices = []
    for key in sorted(data, key=lambda key: int(re.sub(r"\D", "", key) or 0)):
        match = re.fullmatch(r"card(\d+)", key)
        if not match or not isinstance(data[key], dict):
            continue
        fields = {field.lower(): str(value) for field, value in data[key].items()}
        name = next(
            (fields[field] for field in ("card series", "card model", "device name", "card sku") if field in fields),
            "",
        )
        use = fields.get("gpu use (%)")
        problem = None
        if use is None:
            problem = "no utilisation reading (device not responding?)"
        elif not use.strip().rstrip("%").isdigit():
            problem = f"GPU use reads {use!r}"
        devices.append(Device(index=match.group(1), name=name, problem=problem))
    return devices


def parse_npu(text: str) -> list[Device]:
    """The device table of `npu-smi info`: per NPU a row `| ID NAME | HEALTH | ...` then a chip row."""
    devices = []
    for line in text.splitlines():
        if "Process" in line:  # the process table follows the device table
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3:
            continue
        words, health = cells[0].split(), cells[1]
        # A chip row carries a bus id (with ':') in its second cell; headers start with words.
        if len(words) < 2 or not words[0].isdigit() or not health or ":" in health:
            continue
        problem = None if health.upper() == "OK" else f"health {health}"
        devices.append(Device(index=words[0], name=" ".join(words[1:]), problem=problem))
    return devices


def parse_xpu_smi(text: str) -> list[Device]:
    """`xpu-smi discovery -j`: {"device_list": [{"device_id": 0, "device_name": ..., "device_type": "GPU"}, ...]}.

    Discovery reports no health: a device the driver cannot bring up is not listed,
    or the command fails."""
    start = text.find("{")
    if start < 0:
        raise ValueError("xpu-smi printed no JSON")
    listed = json.loads(text[start:]).get("device_list", [])
    return [
        Device(
            index=str(entry.get("device_id", "")), name=str(entry.get("device_name", "")), uuid=entry.get("uuid", "")
        )
        for entry in listed
        if str(entry.get("device_type", "GPU")).upper() == "GPU"
    ]


def parse_sycl_ls(text: str) -> list[Device]:
    """`sycl-ls`: one line per device and backend; the Level Zero GPUs are what torch's XPU build uses.

    `[level_zero:gpu][level_zero:0] Intel(R) Level-Zero, Intel(R) Data Center GPU Max 1550 1.3 [1.3.29735]`
    (older releases: `[ext_oneapi_level_zero:gpu:0] Intel(R) Level-Zero, ...`)."""
    devices = []
    for line in text.splitlines():
        match = re.match(
            r"\s*\[(?:ext_oneapi_)?level_zero:gpu(?::(\d+))?\](?:\[level_zero:(\d+)\])?\s*([^,]*),\s*(.*)$", line
        )
        if not match:
            continue
        index = match.group(1) or match.group(2) or str(len(devices))
        name = re.sub(r"\s+\d+(\.\d+)*\s+\[[^\]]*\]\s*$", "", match.group(4)).strip()
        devices.append(Device(index=index, name=name))
    return devices


VENDORS: dict[str, tuple[list[str], Callable[[str], list[Device]], str]] = {
    "nvidia": (
        ["nvidia-smi", "--query-gpu=index,uuid,name,ecc.errors.uncorrected.volatile.total", "--format=csv,noheader"],
        parse_nvidia,
        "CUDA_VISIBLE_DEVICES",
    ),
    "amd": (["rocm-smi", "--showproductname", "--showuse", "--json"], parse_rocm, "HIP_VISIBLE_DEVICES"),
    "ascend": (["npu-smi", "info"], parse_npu, "ASCEND_RT_VISIBLE_DEVICES"),
    "intel": (["xpu-smi", "discovery", "-j"], parse_xpu_smi, "ZE_AFFINITY_MASK"),
}
#: the tool asked where the vendor's first is not installed (XPU Manager is optional on client
#: GPUs; sycl-ls comes with the oneAPI runtime). sycl-ls applies ZE_AFFINITY_MASK itself.
FALLBACK_TOOLS: dict[str, tuple[list[str], Callable[[str], list[Device]], str]] = {
    "intel": (["sycl-ls"], parse_sycl_ls, ""),
}


def check(vendor: str, needed: int, name_prefix: str = "") -> tuple[bool, str]:
    """Run the vendor tool and judge its report: (passed, message)."""
    command, parse, visible_variable = VENDORS[vendor]
    fallback = FALLBACK_TOOLS.get(vendor)
    if shutil.which(command[0]) is None and fallback and shutil.which(fallback[0][0]):
        command, parse, visible_variable = fallback
    tool = command[0]
    if shutil.which(tool) is None:
        tools = f"{tool} (or {fallback[0][0]})" if fallback else tool
        return False, f"{tools} is not on PATH: the {vendor} driver is not installed, or not visible to the runner"
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        return False, f"{' '.join(command)} did not answer in 120 s: the driver is hung"
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        return False, f"{' '.join(command)} failed (exit {result.returncode}):\n{output}"
    try:
        devices = parse(result.stdout)
    except ValueError as error:
        return False, f"cannot read the output of {' '.join(command)}: {error}\n{output}"

    visible = os.environ.get(visible_variable, "").strip() if visible_variable else ""
    if visible:
        # "card.tile" entries (ZE_AFFINITY_MASK=0.0,0.1) select tiles of one card: count the card
        wanted = {item.strip().split(".")[0] for item in visible.split(",") if item.strip()}
        devices = [device for device in devices if device.index in wanted or device.uuid in wanted]
    lines = [f"  {device.index}: {device.name or '?'}  {device.problem or 'healthy'}" for device in devices]
    report = "\n".join(
        [f"{tool} reports {len(devices)} device(s)" + (f" in {visible_variable}={visible}" if visible else ""), *lines]
    )

    unhealthy = [device for device in devices if device.problem]
    if unhealthy:
        return False, f"{report}\nunhealthy: {', '.join(device.index for device in unhealthy)}"
    misnamed = [device for device in devices if name_prefix and not device.name.startswith(name_prefix)]
    if misnamed:
        return False, f"{report}\nthis lane needs {name_prefix}* devices"
    if len(devices) < needed:
        return False, f"{report}\nthis lane needs {needed}, found {len(devices)}"
    return True, report


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or argv[0] not in VENDORS or not argv[1].isdigit() or int(argv[1]) < 1:
        print(f"usage: devices.py {{{','.join(VENDORS)}}} NEEDED [NAME_PREFIX]", file=sys.stderr)
        return 2
    passed, message = check(argv[0], int(argv[1]), argv[2] if len(argv) == 3 else "")
    print(f"device gate ({argv[0]}, {argv[1]} needed): {'passed' if passed else 'FAILED'}\n{message}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
