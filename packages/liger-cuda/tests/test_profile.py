"""The NVIDIA profile, from fake device properties."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from liger_kernel_cuda import profile as nvidia


def fake_props(**overrides):
    props = {
        "name": "Fake GPU",
        "major": 9,
        "minor": 0,
        "multi_processor_count": 132,
        "warp_size": 32,
        "shared_memory_per_block_optin": 232448,
    }
    props.update(overrides)
    return SimpleNamespace(**{k: v for k, v in props.items() if v is not None})


@pytest.fixture
def devices(monkeypatch):
    """Serve fake properties per device index; record which index was asked for."""
    table = {0: fake_props(), 1: fake_props(name="Second", multi_processor_count=108, major=8, minor=0)}
    asked = []

    def get_device_properties(index):
        asked.append(index)
        return table[index]

    monkeypatch.setattr(torch.cuda, "get_device_properties", get_device_properties)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    return SimpleNamespace(table=table, asked=asked)


def test_hardware_facts_come_from_the_device(devices):
    profile = nvidia.nvidia_profile(torch.device("cuda", 0))
    assert devices.asked == [0]
    assert profile.compute_units == 132
    assert profile.warp_size == 32
    assert profile.onchip_bytes == 232448
    assert profile.max_num_warps == 32
    assert "Fake GPU" in profile.name and "sm_90" in profile.name
    tuning = nvidia.ARCH_TUNING[9]
    assert (profile.programs_per_unit, profile.max_block) == (tuning.programs_per_unit, tuning.max_block)
    assert profile.grid(10**6) == 132 * tuning.programs_per_unit
    assert profile.grid(7) == 7


@pytest.mark.parametrize("device", [torch.device("cpu"), torch.device("cuda"), "cuda"])
def test_device_without_index_uses_the_current_device(devices, device):
    profile = nvidia.nvidia_profile(device)
    assert devices.asked == [1]
    assert profile.compute_units == 108


def test_tuning_is_read_from_the_table_by_major(devices, monkeypatch):
    monkeypatch.setitem(nvidia.ARCH_TUNING, 8, nvidia.ArchTuning(programs_per_unit=3, max_block=1024))
    profile = nvidia.nvidia_profile(1)
    assert (profile.programs_per_unit, profile.max_block) == (3, 1024)
    assert profile.grid(10**6) == 108 * 3


def test_kernel_tuning_rows_reach_the_profile(devices, monkeypatch):
    row = nvidia.ArchTuning(
        gate_tile=2048, reduction_programs_per_unit=2, vocab_programs_per_unit=3, lm_head_chunk_ratio=1
    )
    monkeypatch.setitem(nvidia.ARCH_TUNING, 8, row)
    profile = nvidia.nvidia_profile(1)
    assert profile.gate_tile == 2048
    assert profile.reduction_programs_per_unit == 2
    assert profile.vocab_programs_per_unit == 3
    assert profile.lm_head_chunk_ratio == 1


@pytest.mark.parametrize(
    ("major", "minor", "shared"),
    [(8, 6, 99 * 1024), (7, 5, 64 * 1024), (9, 0, 227 * 1024), (6, 1, nvidia.DEFAULT_SHARED_MEMORY)],
)
def test_missing_properties_fall_back_by_compute_capability(monkeypatch, major, minor, shared):
    props = fake_props(major=major, minor=minor, warp_size=None, shared_memory_per_block_optin=None)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
    profile = nvidia.nvidia_profile(torch.device("cuda", 0))
    assert profile.warp_size == 32
    assert profile.onchip_bytes == shared


def test_unknown_architectures_take_the_nearest_row(monkeypatch):
    newest, oldest = max(nvidia.ARCH_TUNING), min(nvidia.ARCH_TUNING)
    monkeypatch.setitem(nvidia.ARCH_TUNING, newest, nvidia.ArchTuning(programs_per_unit=5))
    monkeypatch.setitem(nvidia.ARCH_TUNING, oldest, nvidia.ArchTuning(programs_per_unit=1))
    for major, expected in ((newest + 3, 5), (oldest - 1, 1)):
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index, m=major: fake_props(major=m))
        assert nvidia.nvidia_profile(0).programs_per_unit == expected


def test_profile_under_the_cuda_mock():
    mocks = pytest.importorskip("liger_conformance.mocks.cuda")
    with mocks.active():
        profile = nvidia.nvidia_profile(torch.device("cpu"))
    assert profile.compute_units == mocks.H100.multi_processor_count
    assert profile.onchip_bytes == mocks.H100.shared_memory_per_block_optin


def test_vocabulary_launches_are_the_measured_h100_ones(devices):
    """The register budget is the shared-memory budget the vocabulary kernels
    were measured with on an H100 (register_bytes unset), and loops keep 3
    stages: the blocks stay those the kernel modules' measurements chose
    (cross-entropy 16384, JSD 4096, KL-div and TVD 4096)."""
    pytest.importorskip("triton")
    from liger_kernel.triton import cross_entropy, jsd, kl_div
    from liger_kernel.triton.launch import pipeline_stages, register_block

    profile = nvidia.nvidia_profile(0)
    assert profile.register_bytes is None and profile.register_budget() == profile.onchip_bytes
    assert profile.pipeline_stages == 3 and pipeline_stages(profile, 16384 * 2) == 3
    assert register_block(profile, 128256, cross_entropy.BYTES_PER_BLOCK_ELEMENT) == 16384
    assert register_block(profile, 128256, jsd.BYTES_PER_BLOCK_ELEMENT) == 4096
    assert kl_div.streaming_launch(profile, 8192, 128256).block == 4096
