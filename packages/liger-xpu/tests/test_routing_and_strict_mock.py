"""Under the XPU mock every core op routes to liger-xpu and runs its kernels
within what the device allows (the mock is strict: a launch over the
work-group limit or over shared local memory would fail here)."""

from __future__ import annotations

import re

import pytest
import torch

import liger_kernel.ops as public
from liger_kernel.cli.samples import sample
from liger_kernel.dispatch import dispatcher

xpu_mock = pytest.importorskip("liger_conformance.mocks.xpu", reason="liger-conformance provides the XPU mock")
interpreter = pytest.importorskip("triton.runtime.interpreter")

LABELS = {op: cls.__name__ for op, cls in public.OPS.items()}


def _inputs(op):
    return sample(op, torch.device("cpu"), torch.Generator().manual_seed(0))


@pytest.mark.parametrize("op", sorted(LABELS))
def test_each_op_logs_its_xpu_route(op, monkeypatch, capsys):
    monkeypatch.setenv("LIGER_KERNEL_LOG", "1")
    monkeypatch.setenv("LIGER_KERNEL_STRICT", "1")
    with xpu_mock.active():
        public.OPS[op].apply(*_inputs(op))
        # every op runs its portable kernel, after the prepare step checked the Triton build
        assert dispatcher.select(op, "xpu").implementation.startswith("liger_kernel.triton.")
    out = capsys.readouterr().out
    assert re.search(rf"Using XPU {LABELS[op]} \(liger-xpu [\d.]+\)", out), out


def test_rope_route_is_logged_as_xpu(monkeypatch, capsys):
    monkeypatch.setenv("LIGER_KERNEL_LOG", "1")
    with xpu_mock.active():
        public.LigerRopeFunction.apply(*_inputs("rope"))
    assert "Using XPU LigerRopeFunction (liger-xpu 0.9.0)" in capsys.readouterr().out


@pytest.fixture
def launches(monkeypatch):
    """num_warps of every Triton launch the interpreter runs."""
    seen: list[int] = []
    run = interpreter.InterpretedFunction.run

    def recording_run(self, *args, **kwargs):
        seen.append(kwargs.get("num_warps") or 4)
        return run(self, *args, **kwargs)

    monkeypatch.setattr(interpreter.InterpretedFunction, "run", recording_run)
    return seen


def test_wide_rows_stay_within_the_work_group_and_shared_local_memory(launches):
    with xpu_mock.active():
        x = torch.randn(4, 20_000, requires_grad=True)  # wider than one 2048 block
        w = torch.randn(20_000, requires_grad=True)
        b = torch.randn(20_000, requires_grad=True)
        public.LigerRMSNormFunction.apply(x, w, 1e-6).sum().backward()
        public.LigerLayerNormFunction.apply(x, w, b, 1e-6).sum().backward()
        a = torch.randn(4, 9000, requires_grad=True)
        public.LigerSiLUMulFunction.apply(a, torch.randn(4, 9000)).sum().backward()
        peak = xpu_mock.monitor.peak
    assert launches, "no Triton launch was seen: the xpu backend did not run its kernels"
    assert max(launches) * 32 <= xpu_mock.MAX_1100.max_work_group_size
    assert 0 < peak <= xpu_mock.MAX_1100_SLM_BYTES
