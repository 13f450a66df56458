"""The 0.8.x helper names frameworks import, by what they do (the manifest test
checks their names and signatures)."""

from __future__ import annotations

import importlib.util
import operator
import os
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

import liger_kernel.ops.utils as ops_utils
import liger_kernel.utils as utils
from liger_kernel.transformers import functional as LF


@pytest.fixture(autouse=True)
def _fresh_arch_cache():
    utils.infer_device_arch.cache_clear()
    yield
    utils.infer_device_arch.cache_clear()


def _no_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch, "npu", None, raising=False)
    monkeypatch.setattr(torch, "xpu", SimpleNamespace(is_available=lambda: False), raising=False)


# ------------------------------------------------------------------ liger_kernel.utils


def test_cpu_only(monkeypatch):
    _no_accelerator(monkeypatch)
    assert utils.infer_device() == "cpu"
    assert utils.infer_comm_backend() == "gloo"
    assert utils.infer_device_arch() == "cpu"
    assert not utils.is_npu_available()
    with pytest.raises(RuntimeError, match="no CUDA"):
        utils.get_total_gpu_memory()


def test_npu(monkeypatch):
    _no_accelerator(monkeypatch)
    props = SimpleNamespace(name="Ascend910B4", total_memory=64 * 2**30 + 5)
    npu = SimpleNamespace(is_available=lambda: True, get_device_properties=lambda index: props)
    monkeypatch.setattr(torch, "npu", npu, raising=False)
    assert utils.is_npu_available()
    assert (utils.infer_device(), utils.infer_comm_backend()) == ("npu", "hccl")
    assert utils.infer_device_arch() == "ascend910"
    assert utils.get_total_gpu_memory() == 64


def test_an_npu_runtime_that_raises_is_not_available(monkeypatch):
    def broken():
        raise RuntimeError("driver not loaded")

    monkeypatch.setattr(torch, "npu", SimpleNamespace(is_available=broken), raising=False)
    assert not utils.is_npu_available()


def test_xpu(monkeypatch):
    _no_accelerator(monkeypatch)
    props = SimpleNamespace(name="Intel(R) Data Center GPU Max 1550")
    monkeypatch.setattr(torch, "xpu", SimpleNamespace(is_available=lambda: True, get_device_properties=lambda i: props))
    assert (utils.infer_device(), utils.infer_comm_backend(), utils.infer_device_arch()) == ("xpu", "xccl", "pvc")


@pytest.mark.parametrize(
    "capability, family",
    [((9, 0), "hopper"), ((8, 6), "ampere_ada"), ((10, 3), "blackwell_ultra"), ((11, 1), "sm_111")],
)
def test_nvidia_arch(monkeypatch, capability, family):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index: capability)
    assert (utils.infer_device(), utils.infer_comm_backend(), utils.infer_device_arch()) == ("cuda", "nccl", family)


@pytest.mark.parametrize("gfx, family", [("gfx942:sramecc+:xnack-", "cdna3"), ("gfx1030", "gfx1030")])
def test_amd_arch(monkeypatch, gfx, family):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.version, "hip", "6.2")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(gcnArchName=gfx))
    assert utils.is_hip() and ops_utils.is_hip()
    assert utils.infer_device_arch() == family


def test_an_arch_query_that_fails_falls_back_to_the_device(monkeypatch):
    def fail(index):
        raise RuntimeError("invalid device ordinal")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", fail)
    assert utils.infer_device_arch(7) == "cuda"


def test_peft_available_is_whether_peft_is_installed():
    assert utils.PEFT_AVAILABLE is (importlib.util.find_spec("peft") is not None)
    assert utils.is_peft_available() is utils.PEFT_AVAILABLE


@pytest.mark.parametrize("installed, chosen", [("4.47.1", "before"), ("4.48.0", "after"), ("5.1.0", "after")])
def test_transformers_version_dispatch(monkeypatch, installed, chosen):
    transformers = pytest.importorskip("transformers")
    monkeypatch.setattr(transformers, "__version__", installed)
    result = utils.transformers_version_dispatch(
        "4.48.0",
        lambda *a, **k: ("before", a, k),
        lambda *a, **k: ("after", a, k),
        before_args=(1,),
        after_args=(2,),
        before_kwargs={"x": 1},
    )
    assert result == (("before", (1,), {"x": 1}) if chosen == "before" else ("after", (2,), {}))


@pytest.mark.parametrize("recent, mode", [(True, "256"), (False, "large")])
def test_set_large_grf_mode(monkeypatch, recent, mode):
    monkeypatch.setattr(ops_utils, "compare_version", lambda package, op, target: recent)
    args = {"num_warps": 4}
    utils.set_large_grf_mode(args)
    assert args == {"num_warps": 4, "grf_mode": mode}


def test_npu_core_count_falls_back_to_the_default(monkeypatch):
    profile = pytest.importorskip("liger_kernel_ascend.profile")

    def no_device(index):
        raise RuntimeError("no NPU")

    monkeypatch.setattr(profile, "core_counts", no_device)
    assert utils.get_npu_core_count(default=7) == 7
    monkeypatch.setattr(profile, "core_counts", lambda index: SimpleNamespace(vector=48))
    assert utils.get_npu_core_count() == 48


# ------------------------------------------------------------------ liger_kernel.ops.utils


@pytest.mark.parametrize(
    "n, settings",
    [(1, (1, 4)), (1000, (1024, 4)), (2048, (2048, 8)), (5000, (8192, 16)), (40000, (65536, 32))],
)
def test_calculate_settings(n, settings):
    assert ops_utils.calculate_settings(n) == settings


def test_calculate_settings_on_rocm_caps_warps(monkeypatch):
    monkeypatch.setattr(torch.version, "hip", "6.2")
    assert ops_utils.calculate_settings(32768) == (32768, 16)


@pytest.mark.parametrize("n, error", [(65537, RuntimeError), (0, ValueError), (2.5, ValueError)])
def test_calculate_settings_refuses(n, error):
    with pytest.raises(error, match="n"):
        ops_utils.calculate_settings(n)


def test_ensure_contiguous_makes_every_tensor_argument_contiguous():
    seen = {}

    @ops_utils.ensure_contiguous
    def forward(ctx, x, scale, *, y):
        seen.update(ctx=ctx, x=x, scale=scale, y=y)
        return x

    x = torch.randn(4, 3).t()
    y = torch.randn(5, 2)[:, :1]
    forward("ctx", x, 2.0, y=y)
    assert seen["ctx"] == "ctx" and seen["scale"] == 2.0
    assert seen["x"].is_contiguous() and seen["y"].is_contiguous()
    assert torch.equal(seen["x"], x) and torch.equal(seen["y"], y)
    assert forward.__name__ == "forward"


def test_compare_version():
    assert ops_utils.compare_version("torch", operator.ge, "1.0")
    assert not ops_utils.compare_version("torch", operator.lt, "1.0")
    assert not ops_utils.compare_version("no-such-package-for-liger", operator.ge, "0.1")


def test_torch_to_triton_dtype():
    assert set(ops_utils.torch_to_triton_dtype) == {torch.float32, torch.float16, torch.bfloat16}
    tl = pytest.importorskip("triton.language")
    assert ops_utils.torch_to_triton_dtype[torch.bfloat16] == tl.bfloat16
    with pytest.raises(KeyError):
        ops_utils.torch_to_triton_dtype[torch.int8]


def test_device_context_on_cpu_changes_nothing():
    with ops_utils.device_context("cpu"):
        assert torch.ones(1).device.type == "cpu"


def test_amp_decorators_follow_autocast():
    class Scale(torch.autograd.Function):
        @staticmethod
        @ops_utils.amp_custom_fwd
        def forward(ctx, x):
            return x * 2

        @staticmethod
        @ops_utils.amp_custom_bwd
        def backward(ctx, grad):
            return grad * 2

    x = torch.randn(3, requires_grad=True)
    Scale.apply(x).sum().backward()
    assert torch.equal(x.grad, torch.full((3,), 2.0))


# ------------------------------------------------------------------ functional, triton, reports


def test_cross_entropy_extras_come_as_a_cross_entropy_output():
    logits = torch.randn(6, 5, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 3, 4, -100])
    plain = LF.liger_cross_entropy(logits, target)
    assert isinstance(plain, torch.Tensor)
    out = LF.liger_cross_entropy(logits, target, return_token_accuracy=True)
    assert isinstance(out, LF.CrossEntropyOutput)
    assert out.z_loss is None and out.predicted_tokens is None
    torch.testing.assert_close(out.loss, plain)
    kept = target != -100
    expected = (logits[kept].argmax(-1) == target[kept]).double().mean()
    torch.testing.assert_close(out.token_accuracy.double(), expected)


def test_fused_linear_cross_entropy_takes_chunk_mem_const():
    x, w, target = torch.randn(4, 3), torch.randn(5, 3), torch.tensor([0, 1, 2, 3])
    got = LF.liger_fused_linear_cross_entropy(x, w, target, chunk_mem_const=4)
    torch.testing.assert_close(got, F.cross_entropy(x @ w.t(), target))
    with pytest.raises(ValueError, match="chunk_mem_const"):
        LF.liger_fused_linear_cross_entropy(x, w, target, chunk_mem_const=0)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(
    "legacy, reduction", [({}, "mean"), ({"size_average": False}, "sum"), ({"reduce": False}, "none")]
)
def test_kl_div_legacy_arguments(legacy, reduction):
    y_pred = torch.randn(3, 4, dtype=torch.float64).log_softmax(-1)
    y_true = torch.randn(3, 4, dtype=torch.float64).softmax(-1)
    got = LF.liger_kl_div(y_pred, y_true, **legacy)
    torch.testing.assert_close(got, F.kl_div(y_pred, y_true, reduction=reduction))


def test_sparsemax_takes_input_by_keyword():
    x = torch.tensor([[2.0, 1.0, -1.0]])
    torch.testing.assert_close(LF.liger_sparsemax(input=x), torch.tensor([[1.0, 0.0, 0.0]]))


def test_triton_cache_manager(monkeypatch, tmp_path):
    from liger_kernel.triton import apply_liger_triton_cache_manager

    monkeypatch.delenv("TRITON_CACHE_MANAGER", raising=False)
    apply_liger_triton_cache_manager()
    module, name = os.environ["TRITON_CACHE_MANAGER"].split(":")
    pytest.importorskip("triton")
    manager_class = getattr(importlib.import_module(module), name)
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))
    manager = manager_class("abc123")
    path = manager.put(b"\x00binary", "kernel.cubin")
    text_path = manager.put("source text", "kernel.ttir")
    with open(path, "rb") as f:
        assert f.read() == b"\x00binary"
    with open(text_path) as f:
        assert f.read() == "source text"
    folder = os.path.dirname(path)
    assert sorted(os.listdir(folder)) == ["kernel.cubin", "kernel.ttir"]  # no staging file left


def test_print_env_report(capsys):
    from liger_kernel.env_report import print_env_report

    print_env_report()
    out = capsys.readouterr().out
    assert "liger-kernel" in out and "rms_norm" in out


def test_trainer_integration_and_transformers_availability():
    from liger_kernel import transformers as lt
    from liger_kernel.transformers import monkey_patch, trainer_integration

    assert trainer_integration._apply_liger_kernel is monkey_patch._apply_liger_kernel
    assert lt.is_transformers_available() is (importlib.util.find_spec("transformers") is not None)
