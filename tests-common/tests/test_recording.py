"""Recording mock kernels prove routing: under each vendor mock, the op goes
to the vendor's backend, announces itself, and is called exactly once."""

from __future__ import annotations

import importlib

import pytest
import torch

from liger_conformance.recording import recording_backend
from liger_kernel.dispatch import dispatcher
from liger_kernel.ops import LigerRMSNormFunction, LigerRopeFunction

#: vendor mock -> (backend name, device type it serves, what the log line says)
VENDORS = [("cuda", "cuda", "cuda", "CUDA"), ("rocm", "rocm", "cuda", "CUDA"), ("npu", "ascend", "npu", "NPU")]


def mock_module(vendor):
    try:
        return importlib.import_module(f"liger_conformance.mocks.{vendor}")
    except ImportError as exc:  # the NPU mock ships separately
        pytest.skip(f"liger_conformance.mocks.{vendor} is not importable: {exc}")


def rope_inputs():
    q, k = torch.randn(1, 2, 3, 4), torch.randn(1, 1, 3, 4)
    cos, sin = torch.randn(1, 3, 4), torch.randn(1, 3, 4)
    return q, k, cos, sin


@pytest.mark.parametrize(("vendor", "backend", "device_type", "shown"), VENDORS, ids=[v[0] for v in VENDORS])
def test_rope_routes_to_vendor_backend(monkeypatch, capsys, vendor, backend, device_type, shown):
    monkeypatch.setenv("LIGER_KERNEL_LOG", "1")
    mock = mock_module(vendor)
    q, k, cos, sin = rope_inputs()
    with mock.active(), recording_backend(backend, (device_type,)) as recorder:
        q_out, _ = LigerRopeFunction.apply(q, k, cos, sin)
    assert recorder.ops() == ["rope"]
    assert recorder.calls[0].args[0] is q
    assert f"Using {shown} LigerRopeFunction" in capsys.readouterr().out
    # the recording op computed the real result through the torch backend
    half = q.shape[-1] // 2
    rotated = torch.cat((-q[..., half:], q[..., :half]), dim=-1)
    torch.testing.assert_close(q_out, q * cos.unsqueeze(1) + rotated * sin.unsqueeze(1))


def test_without_mock_cpu_tensors_stay_on_torch():
    with recording_backend("cuda", ("cuda",)) as recorder:
        LigerRMSNormFunction.apply(torch.randn(2, 4), torch.ones(4), 1e-6)
        assert recorder.ops() == []
        assert dispatcher.select("rms_norm", "cuda").backend == "cuda"


def test_recorded_ops_keep_gradients_and_uninstall():
    from liger_conformance.mocks import cuda

    before = dict(dispatcher.installed())
    x = torch.randn(3, 8, requires_grad=True)
    with cuda.active(), recording_backend("cuda", ops=["rms_norm"]) as recorder:
        LigerRMSNormFunction.apply(x, torch.ones(8), 1e-6).sum().backward()
        assert dispatcher.installed()["cuda"].distribution == "liger-conformance"
    assert recorder.ops() == ["rms_norm"]
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert dispatcher.installed()["cuda"].distribution == before["cuda"].distribution


def test_unknown_op_is_refused():
    with pytest.raises(ValueError, match="unknown ops"), recording_backend("x", ops=["no_such_op"]):
        pass
