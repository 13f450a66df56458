"""pytest plugin of the multi-device lanes: spread pytest-xdist workers over the devices.

With `pytest -n 8 -p liger_ci_devices`, worker gwN makes device N (modulo the visible
device count) its current device before any test runs, so the conformance suite's
tensors on "npu" or "cuda" land on every card instead of all on card 0. Outside
xdist, or without a device, it does nothing.
"""

from __future__ import annotations

import importlib
import importlib.util

import pytest


def worker_device(worker_id: str, device_count: int) -> int | None:
    """The device index for xdist worker `gwN`, or None when there is nothing to spread over."""
    if device_count < 1 or not worker_id.startswith("gw") or not worker_id[2:].isdigit():
        return None
    return int(worker_id[2:]) % device_count


def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if not workerinput:
        return
    import torch

    if importlib.util.find_spec("torch_npu") is not None:
        importlib.import_module("torch_npu")  # registers torch.npu
    for device_type in ("npu", "cuda"):
        module = getattr(torch, device_type, None)
        if module is None or not module.is_available():
            continue
        index = worker_device(workerinput["workerid"], module.device_count())
        if index is not None:
            module.set_device(index)
        return
