"""The direct launcher (``liger_kernel.triton.launch``) against fake Triton
objects: what it caches, what it passes to the compiled kernel's C launcher,
and when it goes back to Triton's own launch path. The real path runs on the
GPU machine, where every op of the conformance suite launches through it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from liger_kernel.triton import launch as launch_module


class FakeCompiled:
    def __init__(self) -> None:
        self.function, self.packed_metadata = object(), object()
        self.direct: list[tuple] = []
        self.runner: list[tuple] = []

    def run(self, *launch_args) -> None:
        self.direct.append(launch_args)

    def __getitem__(self, grid):
        return lambda *args: self.runner.append((grid, args))


class FakeJit:
    """``kernel[(grid,)](*args, **meta)`` compiles one kernel per call, as a cache miss does."""

    def __init__(self, *names: str) -> None:
        self.params = [SimpleNamespace(name=name) for name in names]
        self.compiles: list[tuple] = []

    def __getitem__(self, grid):
        def jit_launch(*args, **meta):
            self.compiles.append((grid, args, meta))
            return FakeCompiled()

        return jit_launch


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(launch_module, "_current_stream", lambda device: 1234)
    monkeypatch.setattr(launch_module, "_RUNTIME", SimpleNamespace(launch_enter_hook=None, launch_exit_hook=None))


def test_a_hit_calls_the_c_launcher_with_the_constexprs_in_parameter_order(no_cuda):
    kernel = FakeJit("X", "n", "BLOCK", "MODE")
    launcher = launch_module._DirectLauncher(kernel)
    x = torch.zeros(8)
    launcher(3, (x, 5), {"MODE": 1, "BLOCK": 16, "num_warps": 4})
    assert len(kernel.compiles) == 1
    launcher(7, (x, 5), {"MODE": 1, "BLOCK": 16, "num_warps": 4})
    assert len(kernel.compiles) == 1
    ((compiled, _),) = launcher.entries.values()
    (call,) = compiled.direct
    assert call[:4] == (7, 1, 1, 1234)  # grid, then the current stream
    assert call[4] is compiled.function and call[5] is compiled.packed_metadata
    assert call[6:9] == (None, None, None)  # no launch metadata, no hooks
    assert call[9] is x and call[10:] == (5, 16, 1)  # constexprs in parameter order


@pytest.mark.parametrize(
    "first, second",
    [
        ((torch.zeros(8), 5), (torch.zeros(8, dtype=torch.float16), 5)),  # dtype
        ((torch.zeros(8), 5), (torch.zeros(9)[1:], 5)),  # 16-byte alignment
        ((torch.zeros(8), 5), (torch.zeros(8), 1)),  # an integer equal to 1
        ((torch.zeros(8), 5), (torch.zeros(8), 32)),  # an integer divisible by 16
        ((torch.zeros(8), 5), (torch.zeros(8), 2**40)),  # an integer beyond int32
        ((torch.zeros(8), 5), (torch.zeros(8), True)),  # a bool is not the int 1
    ],
)
def test_every_specialization_triton_makes_compiles_apart(no_cuda, first, second):
    kernel = FakeJit("X", "n", "BLOCK")
    launcher = launch_module._DirectLauncher(kernel)
    launcher(1, first, {"BLOCK": 16})
    launcher(1, second, {"BLOCK": 16})
    assert len(kernel.compiles) == 2


def test_a_different_constexpr_compiles_apart_and_equal_runtime_values_do_not(no_cuda):
    kernel = FakeJit("X", "n", "BLOCK")
    launcher = launch_module._DirectLauncher(kernel)
    launcher(1, (torch.zeros(8), 5), {"BLOCK": 16})
    launcher(1, (torch.zeros(8), 7), {"BLOCK": 16})
    launcher(1, (torch.zeros(8), 5), {"BLOCK": 32})
    assert len(kernel.compiles) == 2


def test_a_defaulted_parameter_keeps_tritons_launch_path(no_cuda):
    kernel = FakeJit("X", "n", "BLOCK")
    launcher = launch_module._DirectLauncher(kernel)
    launcher(1, (torch.zeros(8),), {"BLOCK": 16})  # n left to its default
    launcher(2, (torch.zeros(8),), {"BLOCK": 16})
    assert [grid for grid, _, _ in kernel.compiles] == [(1,), (2,)]


def test_an_installed_launch_hook_gets_the_runner_and_its_metadata(no_cuda, monkeypatch):
    kernel = FakeJit("X", "BLOCK")
    launcher = launch_module._DirectLauncher(kernel)
    x = torch.zeros(8)
    launcher(1, (x,), {"BLOCK": 16})
    monkeypatch.setattr(launch_module, "_RUNTIME", SimpleNamespace(launch_enter_hook=print, launch_exit_hook=None))
    launcher(4, (x,), {"BLOCK": 16})
    compiled = next(iter(launcher.entries.values()))[0]
    assert compiled.direct == [] and compiled.runner == [((4, 1, 1), (x, 16))]


def test_a_launch_that_returns_no_compiled_kernel_keeps_tritons_launch_path(no_cuda):
    """A stand-in for Triton's run that records launches (tools/compile_kernels.py) returns None:
    every call must still reach it, and nothing is launched from a cached None."""
    recorded: list[tuple] = []

    class RecordingJit(FakeJit):
        def __getitem__(self, grid):
            return lambda *args, **meta: recorded.append((grid, args))

    launcher = launch_module._DirectLauncher(RecordingJit("X", "BLOCK"))
    x = torch.zeros(4)
    for grid in (2, 3):
        launcher(grid, (x,), {"BLOCK": 16})
    assert [grid for grid, _ in recorded] == [(2,), (3,)]
    assert list(launcher.entries.values()) == [launch_module._JIT]
