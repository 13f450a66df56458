"""Modules with liger-kernel 0.8.5's constructors: the Gemma RMSNorm variants
(against a plain torch reference), the Gemma-4 GEGLU MLP, LigerKLDIVLoss's
pass-through arguments and LigerLayerNorm's implementation choice."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
import torch

from liger_kernel.backends import Capability, register_impl
from liger_kernel.backends import registry as registry_module
from liger_kernel.ops import LigerCrossEntropyFunction
from liger_kernel.transformers import LigerKLDIVLoss, LigerLayerNorm
from liger_kernel.transformers import cross_entropy as cross_entropy_module
from liger_kernel.transformers.geglu import LigerGEGLUMLP, LigerGEGLUMLPForGemma4
from liger_kernel.transformers.rms_norm import (
    LigerRMSNormForGemma,
    LigerRMSNormForGemma2,
    LigerRMSNormForGemma3,
    LigerRMSNormForGemma4,
)

RECORDING = "acme-recording"
CALLS: list[str] = []


@pytest.fixture(autouse=True)
def forget_registrations():
    CALLS.clear()
    yield
    registry_module.unregister(RECORDING)


def rms_reference(x: torch.Tensor, weight: torch.Tensor | None, eps: float, offset: float) -> torch.Tensor:
    """RMSNorm all in fp32, cast once at the end (the Gemma families)."""
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    if weight is not None:
        y = y * (offset + weight.float())
    return y.to(x.dtype)


def _x(dtype=torch.bfloat16):
    return torch.randn(3, 4, 16, generator=torch.Generator().manual_seed(0)).to(dtype)


@pytest.mark.parametrize(
    "cls, offset, init",
    [
        (LigerRMSNormForGemma, 1.0, 0.0),
        (LigerRMSNormForGemma2, 1.0, 0.0),
        (LigerRMSNormForGemma3, 1.0, 0.0),
        (LigerRMSNormForGemma4, 0.0, 1.0),
    ],
)
def test_gemma_norms_match_a_plain_torch_reference(cls, offset, init):
    norm = cls(16, eps=1e-5)
    assert torch.equal(norm.weight, torch.full((16,), init))
    with torch.no_grad():
        norm.weight.copy_(torch.randn(16, generator=torch.Generator().manual_seed(1)))
    x = _x()
    torch.testing.assert_close(norm(x), rms_reference(x, norm.weight, 1e-5, offset))
    assert norm.offset == offset and norm.casting_mode == "gemma"


def test_gemma_norm_defaults_are_0_8_5s():
    assert LigerRMSNormForGemma(8).in_place is True
    assert LigerRMSNormForGemma2(8).in_place is False
    assert LigerRMSNormForGemma(hidden_size=8).weight.shape == (8,)
    assert LigerRMSNormForGemma3(dim=8).in_place is False
    assert LigerRMSNormForGemma4(dim=8).with_scale is True


def test_gemma4_norm_without_scale_has_no_weight():
    norm = LigerRMSNormForGemma4(16, eps=1e-6, with_scale=False)
    assert norm.weight is None and not list(norm.parameters())
    x = _x().requires_grad_()
    y = norm(x)
    torch.testing.assert_close(y, rms_reference(x.detach(), None, 1e-6, 0.0))
    y.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


def _gemma4_config(**overrides):
    values = dict(
        hidden_size=8,
        intermediate_size=12,
        hidden_activation="gelu_pytorch_tanh",
        num_hidden_layers=6,
        num_kv_shared_layers=2,
        use_double_wide_mlp=True,
    )
    return SimpleNamespace(**{**values, **overrides})


@pytest.mark.parametrize(
    "layer_idx, overrides, width",
    [
        (3, {}, 12),  # before the KV-shared layers
        (4, {}, 24),  # the first KV-shared layer
        (5, {}, 24),
        (None, {}, 12),
        (5, {"use_double_wide_mlp": False}, 12),
        (5, {"num_kv_shared_layers": 0}, 12),
    ],
)
def test_gemma4_mlp_is_double_wide_on_the_kv_shared_layers(layer_idx, overrides, width):
    mlp = LigerGEGLUMLPForGemma4(_gemma4_config(**overrides), layer_idx)
    assert mlp.intermediate_size == width
    assert mlp.gate_proj.weight.shape == mlp.up_proj.weight.shape == (width, 8)
    assert mlp.down_proj.weight.shape == (8, width)
    x = torch.randn(2, 8)
    gelu = torch.nn.functional.gelu(mlp.gate_proj(x), approximate="tanh")
    torch.testing.assert_close(mlp(x), mlp.down_proj(gelu * mlp.up_proj(x)))
    assert isinstance(mlp, LigerGEGLUMLP)


def test_kl_div_loss_passes_torchs_arguments_through_as_given():
    assert list(inspect.signature(LigerKLDIVLoss).parameters) == ["eps", "args", "kwargs"]  # 0.8.5's
    # positionally, as torch.nn.KLDivLoss takes them: size_average, reduce, reduction, log_target
    module = LigerKLDIVLoss(1e-10, None, None, "sum", True)
    assert (module.reduction, module.log_target, module.eps) == ("sum", True, 1e-10)
    y_pred = torch.randn(2, 5).log_softmax(-1)
    y_true = torch.randn(2, 5).log_softmax(-1)
    expected = torch.nn.functional.kl_div(y_pred, y_true, reduction="sum", log_target=True)
    torch.testing.assert_close(module(y_pred, y_true), expected)
    assert LigerKLDIVLoss(reduction="batchmean").reduction == "batchmean"
    with pytest.raises(ValueError, match="reduction"):
        LigerKLDIVLoss(1e-10, reduction="average")


class RecordingLayerNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, X, W, B, eps):
        CALLS.append("layer_norm")
        return torch.nn.functional.layer_norm(X, X.shape[-1:], W, B, eps)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None, None


def test_layer_norm_impl_routes_every_call_and_backend_is_its_older_name():
    register_impl(
        "layer_norm", impl_name=RECORDING, capability=Capability(device_types=("cpu",)), preference_rank=1000
    )(RecordingLayerNorm)
    x = torch.randn(2, 16)
    plain = LigerLayerNorm(16)
    routed = LigerLayerNorm(16, impl=RECORDING)
    legacy = LigerLayerNorm(16, backend=RECORDING)
    assert legacy.impl == RECORDING and routed.backend == RECORDING
    expected = plain(x)
    assert CALLS == []
    torch.testing.assert_close(routed(x), expected)
    torch.testing.assert_close(legacy(x), expected)
    assert CALLS == ["layer_norm", "layer_norm"]
    plain.backend = RECORDING
    plain(x)
    assert CALLS == ["layer_norm"] * 3


def test_layer_norm_mode_and_conflicting_names_are_refused():
    assert LigerLayerNorm(8, mode="default").mode == "default"
    with pytest.raises(ValueError, match="mode"):
        LigerLayerNorm(8, mode="cute")
    with pytest.raises(ValueError, match="disagree"):
        LigerLayerNorm(8, impl="torch", backend="cuda")


def test_cross_entropy_module_re_exports_the_function():
    assert cross_entropy_module.LigerCrossEntropyFunction is LigerCrossEntropyFunction
