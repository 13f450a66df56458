"""PEFT LoRA and Liger patching, in either order: the Liger modules keep the
adapters' layers and call them, and losses and adapter gradients match the
unpatched model's (rtol 1e-4: float32, the fused loss sums in another order)."""

from __future__ import annotations

import copy

import pytest
import torch
from tiny_models import batch, build, count_op_calls

peft = pytest.importorskip("peft")

from peft.tuners.lora import Linear as LoraLinear  # noqa: E402

from liger_kernel.transformers import (  # noqa: E402
    LigerGEGLUMLP,
    LigerRMSNorm,
    LigerSwiGLUMLP,
    _apply_liger_kernel_to_instance,
    apply_liger_kernel_to_llama,
)

RTOL = 1e-4
LIGER_MLP = {"llama": LigerSwiGLUMLP, "gemma2": LigerGEGLUMLP}


def _lora(model, target_modules, **extra):
    # random lora_B as well as lora_A, so that every adapter weight gets a gradient at once
    torch.manual_seed(1)
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=target_modules, init_lora_weights=False, **extra)
    return peft.get_peft_model(model, config)


def _step(model, data) -> tuple[float, dict[str, torch.Tensor]]:
    model.train()
    loss = model(**data).loss
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad and p.grad is not None}
    return loss.item(), grads


def _as_trainer_patches(peft_model):
    """What Trainer(use_liger_kernel=True) does with a PEFT model; returns it."""
    _apply_liger_kernel_to_instance(model=peft_model.get_base_model())
    return peft_model


def _same_step(stock, make_patched) -> tuple[object, dict[str, int]]:
    """One training step of ``stock``, then of the model ``make_patched()``
    returns (class-level patches reach every instance, so the stock step runs
    first); returns that model and the op calls of its step."""
    data = batch()
    stock_loss, stock_grads = _step(stock, data)
    patched = make_patched()
    with count_op_calls() as calls:
        loss, grads = _step(patched, data)
    assert loss == pytest.approx(stock_loss, rel=RTOL)
    assert grads.keys() == stock_grads.keys() and grads
    for name, grad in grads.items():
        torch.testing.assert_close(grad, stock_grads[name], rtol=RTOL, atol=1e-6, msg=name)
    return patched, calls


@pytest.mark.parametrize("family", ["llama", "gemma2"])
def test_all_linear_lora_then_patch_keeps_the_adapters(family):
    stock = _lora(build(family), "all-linear")
    copied = copy.deepcopy(stock)
    patched, calls = _same_step(stock, lambda: _as_trainer_patches(copied))

    mlps = [layer.mlp for layer in patched.get_base_model().model.layers]
    assert all(type(mlp) is LIGER_MLP[family] for mlp in mlps)
    assert all(isinstance(mlp.gate_proj, LoraLinear) and isinstance(mlp.down_proj, LoraLinear) for mlp in mlps)
    assert all(isinstance(m, LigerRMSNorm) for m in patched.modules() if "norm" in type(m).__name__.lower())
    assert patched.state_dict().keys() == stock.state_dict().keys()
    gate = "swiglu" if family == "llama" else "geglu"
    assert calls[gate] == 2 and calls["fused_linear_cross_entropy"] == 1


def test_patch_then_lora():
    base = build("llama")
    liger = copy.deepcopy(base)
    stock = _lora(base, "all-linear")

    def patch_then_lora():
        apply_liger_kernel_to_llama(model=liger)
        return _lora(liger, "all-linear")

    patched, calls = _same_step(stock, patch_then_lora)
    assert all(isinstance(layer.mlp.up_proj, LoraLinear) for layer in patched.get_base_model().model.layers)
    assert calls["swiglu"] == 2 and calls["fused_linear_cross_entropy"] == 1


def test_lora_on_lm_head_trains(caplog):
    stock = _lora(build("llama"), ["q_proj", "lm_head"])
    head_adapters = [n for n, p in stock.named_parameters() if "lm_head.lora_" in n and p.requires_grad]
    assert len(head_adapters) == 2
    copied = copy.deepcopy(stock)
    # _same_step compares every adapter's gradient, lm_head's lora_A and lora_B included
    _, calls = _same_step(stock, lambda: _as_trainer_patches(copied))
    assert not calls["fused_linear_cross_entropy"] and calls["cross_entropy"] == 1
    assert "not a plain nn.Linear" in caplog.text


def test_lm_head_in_modules_to_save_keeps_the_fused_loss():
    stock = _lora(build("llama"), ["q_proj"], modules_to_save=["lm_head"])
    copied = copy.deepcopy(stock)
    # the trained copy of lm_head gets the gradient, through the fused loss
    _, calls = _same_step(stock, lambda: _as_trainer_patches(copied))
    assert calls["fused_linear_cross_entropy"] == 1


class _Scaled(torch.nn.Module):
    """A projection wrapped by something that is not a Linear (as a quantized or adapter layer is)."""

    def __init__(self, inner: torch.nn.Linear) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.inner(x)


def test_conversion_keeps_any_sub_module_and_refuses_unused_parameters():
    stock = build("llama")
    for layer in stock.model.layers:
        layer.mlp.up_proj = _Scaled(layer.mlp.up_proj)
    patched = copy.deepcopy(stock)
    data = batch()
    with torch.no_grad():
        expected = stock(input_ids=data["input_ids"]).logits
    apply_liger_kernel_to_llama(model=patched)
    assert all(
        type(layer.mlp) is LigerSwiGLUMLP and type(layer.mlp.up_proj) is _Scaled for layer in patched.model.layers
    )
    with torch.no_grad():
        torch.testing.assert_close(patched(input_ids=data["input_ids"]).logits, expected, rtol=1e-5, atol=1e-5)

    from liger_kernel.transformers import revert_liger_kernel_patches

    revert_liger_kernel_patches()
    odd = build("llama")
    odd.model.layers[0].mlp.extra = torch.nn.Linear(4, 4)  # a stock forward may use it; the Liger one would not
    with pytest.raises(TypeError, match=r"sub-modules \['extra'\] hold parameters"):
        apply_liger_kernel_to_llama(model=odd)
