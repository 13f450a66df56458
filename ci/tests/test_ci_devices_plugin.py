"""The xdist plugin that spreads the workers of a multi-device lane over the devices."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pytest_plugins"))
import liger_ci_devices


@pytest.mark.parametrize(
    ("worker", "count", "expected"),
    [("gw0", 8, 0), ("gw7", 8, 7), ("gw11", 8, 3), ("gw3", 1, 0), ("gw3", 0, None), ("master", 8, None)],
)
def test_worker_device(worker: str, count: int, expected: int | None) -> None:
    assert liger_ci_devices.worker_device(worker, count) == expected


def _fake_torch(monkeypatch, npu_count: int, cuda_count: int) -> list[tuple[str, int]]:
    chosen: list[tuple[str, int]] = []

    def device_module(name: str, count: int) -> types.SimpleNamespace:
        return types.SimpleNamespace(
            is_available=lambda: count > 0,
            device_count=lambda: count,
            set_device=lambda index: chosen.append((name, index)),
        )

    torch = types.SimpleNamespace(npu=device_module("npu", npu_count), cuda=device_module("cuda", cuda_count))
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setattr(liger_ci_devices.importlib.util, "find_spec", lambda name: None)
    return chosen


def test_a_worker_takes_its_own_npu(monkeypatch) -> None:
    chosen = _fake_torch(monkeypatch, npu_count=8, cuda_count=0)
    liger_ci_devices.pytest_configure(types.SimpleNamespace(workerinput={"workerid": "gw5"}))
    assert chosen == [("npu", 5)]


def test_a_worker_takes_its_own_gpu_when_there_is_no_npu(monkeypatch) -> None:
    chosen = _fake_torch(monkeypatch, npu_count=0, cuda_count=2)
    liger_ci_devices.pytest_configure(types.SimpleNamespace(workerinput={"workerid": "gw3"}))
    assert chosen == [("cuda", 1)]


def test_the_controller_and_plain_sessions_are_left_alone(monkeypatch) -> None:
    chosen = _fake_torch(monkeypatch, npu_count=8, cuda_count=0)
    liger_ci_devices.pytest_configure(types.SimpleNamespace())
    assert chosen == []
