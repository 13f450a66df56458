"""Under the NPU mock every core op routes to liger-ascend, and the mock is
strict: a launch the device would refuse fails here too."""

import inspect
import re

import pytest
import torch
import triton
import triton.language as tl

import liger_kernel.ops as public
import liger_kernel_ascend as ascend
from liger_conformance.mocks import npu as npu_mock
from liger_kernel.cli.samples import sample
from liger_kernel.dispatch import dispatcher

LABELS = {op: cls.__name__ for op, cls in public.OPS.items()}


def _inputs(op):
    return sample(op, torch.device("cpu"), torch.Generator().manual_seed(0))


@pytest.mark.parametrize("op", sorted(LABELS))
def test_each_op_logs_its_npu_route(op, monkeypatch, capsys):
    monkeypatch.setenv("LIGER_KERNEL_LOG", "1")
    with npu_mock.active():
        public.OPS[op].apply(*_inputs(op))
        route = public.OPS[op].route("cpu")
        # an NPU kernel where the backend has one, else the portable kernel
        chosen = dispatcher.select(op, "npu")
        assert chosen.backend == "ascend"
        own = op in ascend.FUNCTIONS
        assert chosen.implementation.startswith("liger_kernel_ascend.ops." if own else "liger_kernel.triton."), op
    out = capsys.readouterr().out
    assert re.search(rf"Using NPU {LABELS[op]} \(liger-ascend [\d.]+\)", out), out
    signature = inspect.signature(route.forward).parameters
    params = list(signature)[1:]
    contract = public.OPS[op]
    backend_params = [p for p in inspect.signature(contract.check).parameters if p not in contract.contract_args]
    # the contract's arguments, in order; a backend may take trailing defaulted ones of its own
    # (the scaled cross-entropy's tp_group, which its tensor-parallel form passes)
    assert params[: len(backend_params)] == backend_params
    assert all(signature[p].default is not inspect.Parameter.empty for p in params[len(backend_params) :])


def test_outside_the_mock_cpu_tensors_go_to_torch(monkeypatch, capsys):
    monkeypatch.setenv("LIGER_KERNEL_LOG", "1")
    with npu_mock.active():
        pass
    public.OPS["rope"].apply(*_inputs("rope"))
    assert "Using CPU LigerRopeFunction (liger-kernel" in capsys.readouterr().out


@triton.jit
def _copy(X, Y, n, BLOCK: tl.constexpr):
    for start in tl.range(tl.program_id(0) * BLOCK, n, tl.num_programs(0) * BLOCK):
        offsets = start + tl.arange(0, BLOCK)
        tl.store(Y + offsets, tl.load(X + offsets, mask=offsets < n), mask=offsets < n)


def test_strict_mock_grid_check_fires():
    x = torch.randn(8)
    y = torch.empty_like(x)
    with npu_mock.active():
        with pytest.raises(npu_mock.GridLimitError, match="grid should be less than 65536"):
            _copy[(65536,)](x, y, 8, BLOCK=8)
        with pytest.raises(npu_mock.GridLimitError, match="65536 programs"):
            _copy[(256, 256)](x, y, 8, BLOCK=8)
        npu_mock.monitor.check_grid((255, 257, 1))  # 65535 programs: at the limit, accepted


def test_strict_mock_unified_buffer_check_fires():
    n = 64 * 1024  # one fp32 tile of 256 KiB > 192 KiB of UB
    x = torch.randn(n)
    y = torch.empty_like(x)
    with npu_mock.active():
        with pytest.raises(npu_mock.UBOverflowError, match="ub overflow, requires .* bits while 1572864 bits"):
            _copy[(1,)](x, y, n, BLOCK=n)
        _copy[(1,)](x, y, n, BLOCK=n // 4)  # 64 KiB tiles fit
    torch.testing.assert_close(y, x)


def test_the_ascend_kernels_stay_within_the_emulated_buffer_on_a_wide_row():
    # a 20000-wide row does not fit one tile: the kernel must walk sub-blocks,
    # and the strict mock would raise if any launch held more than the UB
    x = torch.randn(2, 20_000, requires_grad=True)
    w = torch.randn(20_000, requires_grad=True)
    with npu_mock.active():
        y = public.LigerRMSNormFunction.apply(x, w, 1e-6)
        y.sum().backward()
        peak = npu_mock.monitor.peak
    expected = x.detach() * torch.rsqrt(x.detach().pow(2).mean(-1, keepdim=True) + 1e-6) * w.detach()
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)
    assert 0 < peak <= 192 * 1024


def test_mock_restores_everything_on_exit():
    import sys

    from triton.runtime import interpreter

    had_npu = hasattr(torch, "npu")
    call = interpreter.GridExecutor.__call__
    with npu_mock.active():
        assert torch.npu.is_available() and "torch_npu" in sys.modules and dispatcher.mocked("npu")
    assert hasattr(torch, "npu") == had_npu
    assert "torch_npu" not in sys.modules and not dispatcher.mocked("npu")
    assert interpreter.GridExecutor.__call__ is call
    assert npu_mock.monitor is None


def test_mock_answers_device_queries_as_an_npu():
    from triton.runtime.driver import driver

    with npu_mock.active(device_count=2):
        import torch_npu

        assert torch_npu.npu is torch.npu and torch.npu.device_count() == 2
        props = torch.npu.get_device_properties(1)
        assert (props.cube_core_num, props.vector_core_num, props.ub_size) == (20, 40, 192 * 1024)
        assert torch.npu.get_device_name(0).startswith("Ascend910B3")
        assert driver.active.utils.get_device_properties(0) == {"num_aicore": 20, "num_vectorcore": 40}
        torch.npu.set_device(1)
        assert torch.npu.current_device() == 1
        with pytest.raises(RuntimeError, match="invalid device ordinal 2"):
            torch.npu.get_device_properties(2)


def test_strict_mock_rejects_fp64_launches_as_the_compiler_does():
    x = torch.randn(8, dtype=torch.float64)
    y = torch.empty_like(x)
    with npu_mock.active():
        with pytest.raises(npu_mock.UnsupportedDtypeError, match=r"\[fp8, fp64\] is unsupported on Ascend"):
            _copy[(1,)](x, y, 8, BLOCK=8)
        _copy[(1,)](x.float(), y.float(), 8, BLOCK=8)  # fp32 launches as before


@pytest.mark.parametrize("op", sorted(LABELS))
def test_fp64_inputs_raise_a_clear_error_on_every_op(op):
    def to_fp64(value):
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.double().requires_grad_(value.requires_grad)
        return value

    args = [to_fp64(value) for value in _inputs(op)]
    with npu_mock.active(), pytest.raises((TypeError, npu_mock.UnsupportedDtypeError), match="fp64|float64"):
        out = public.OPS[op].apply(*args)
        first = out[0] if isinstance(out, tuple) else out
        first.float().sum().backward()
