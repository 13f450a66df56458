"""The causal-LM forward's loss options (use_token_scaling, return_token_accuracy,
return_predicted_tokens), which TRL's SFTTrainer passes with use_liger_kernel=True,
on every path of the forward: fused loss, evaluation with logits, a head that
cannot be fused, the mixture-of-experts forward and the plain cross-entropy patch."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
import torch.nn.functional as F
from tiny_models import VOCAB, batch, build, count_op_calls

from liger_kernel.transformers import (
    apply_liger_kernel_to_gemma2,
    apply_liger_kernel_to_llama,
    apply_liger_kernel_to_mixtral,
)
from liger_kernel.transformers.model.output_classes import LigerCausalLMOutputWithPast, LigerMoeCausalLMOutputWithPast


def _reference(logits: torch.Tensor, labels: torch.Tensor, token_scaling: bool) -> dict[str, torch.Tensor]:
    """TRL's DFT loss (or the plain next-token mean), accuracy and argmax from full logits."""
    targets = F.pad(labels, (0, 1), value=-100)[:, 1:].reshape(-1)
    kept = targets != -100
    logp = torch.log_softmax(logits.reshape(-1, VOCAB).float(), dim=-1)
    target_logp = logp.gather(1, targets.clamp(min=0)[:, None])[:, 0]
    per_token = -target_logp * (target_logp.exp().detach() if token_scaling else 1.0)
    predicted = logp.argmax(-1)
    return {
        "loss": (per_token * kept).sum() / kept.sum(),
        "token_accuracy": ((predicted == targets) & kept).sum() / kept.sum(),
        "predicted_tokens": torch.where(kept, predicted, -1),
    }


OPTIONS = {"use_token_scaling": True, "return_token_accuracy": True, "return_predicted_tokens": True}


def _check(out, expected, rel: float = 1e-5) -> None:
    assert out.loss.item() == pytest.approx(expected["loss"].item(), rel=rel)
    assert out.token_accuracy.item() == pytest.approx(expected["token_accuracy"].item(), abs=1e-6)
    assert torch.equal(out.predicted_tokens.reshape(-1), expected["predicted_tokens"])


@pytest.mark.parametrize("family", ["llama", "gemma2"])
def test_fused_loss_honours_token_scaling_and_returns_accuracy(family):
    stock = build(family)
    patched = copy.deepcopy(stock)
    data = batch()
    logits = stock(input_ids=data["input_ids"]).logits  # unpatched; gemma2: softcapped as the fused loss softcaps
    {"llama": apply_liger_kernel_to_llama, "gemma2": apply_liger_kernel_to_gemma2}[family](model=patched)
    with count_op_calls() as calls:
        scaled = patched(**data, **OPTIONS)
    assert calls["fused_linear_cross_entropy"] == 1
    assert isinstance(scaled, LigerCausalLMOutputWithPast) and scaled.logits is None
    _check(scaled, _reference(logits, data["labels"], token_scaling=True))

    # the scaling changes the objective: its gradient is DFT's, not cross-entropy's
    expected = _reference(logits, data["labels"], token_scaling=True)["loss"]
    expected.backward()
    scaled.loss.backward()
    torch.testing.assert_close(patched.lm_head.weight.grad, stock.lm_head.weight.grad, rtol=1e-4, atol=1e-6)

    plain = patched(**data, return_token_accuracy=True)
    assert plain.predicted_tokens is None
    assert plain.loss.item() == pytest.approx(_reference(logits, data["labels"], False)["loss"].item(), rel=1e-5)
    assert patched(**data).token_accuracy is None


def test_options_hold_when_logits_are_returned():
    stock = build("llama")
    patched = copy.deepcopy(stock)
    data = batch()
    with torch.no_grad():
        logits = stock(input_ids=data["input_ids"]).logits
    apply_liger_kernel_to_llama(model=patched)
    patched.eval()
    with count_op_calls() as calls:
        out = patched(**data, **OPTIONS)
    assert calls["cross_entropy"] == 1 and not calls["fused_linear_cross_entropy"]
    torch.testing.assert_close(out.logits, logits)
    _check(out, _reference(out.logits, data["labels"], token_scaling=True))


def test_num_items_in_batch_divides_the_scaled_sum():
    stock = build("llama")
    patched = copy.deepcopy(stock)
    data = batch()
    mean = _reference(stock(input_ids=data["input_ids"]).logits, data["labels"], token_scaling=True)["loss"]
    apply_liger_kernel_to_llama(model=patched)
    kept = (data["labels"][:, 1:] != -100).sum()
    summed = patched(**data, use_token_scaling=True, num_items_in_batch=torch.tensor(40)).loss
    assert summed.item() == pytest.approx(mean.item() * kept.item() / 40, rel=1e-5)


def test_moe_forward_returns_the_extras():
    stock = build("mixtral")
    patched = copy.deepcopy(stock)
    data = batch()
    logits = stock(input_ids=data["input_ids"]).logits
    apply_liger_kernel_to_mixtral(model=patched)
    out = patched(**data, **OPTIONS)
    assert isinstance(out, LigerMoeCausalLMOutputWithPast)
    expected = _reference(logits, data["labels"], token_scaling=True)
    assert out.token_accuracy.item() == pytest.approx(expected["token_accuracy"].item(), abs=1e-6)
    aux = patched.router_aux_loss_coef * out.aux_loss
    assert (out.loss - aux).item() == pytest.approx(expected["loss"].item(), rel=1e-5)


def test_plain_cross_entropy_patch_honours_token_scaling(caplog):
    stock = build("llama")
    patched = copy.deepcopy(stock)
    data = batch()
    logits = stock(input_ids=data["input_ids"]).logits
    apply_liger_kernel_to_llama(model=patched, cross_entropy=True, fused_linear_cross_entropy=False)
    with count_op_calls() as calls, caplog.at_level(logging.WARNING):
        out = patched(**data, use_token_scaling=True, return_token_accuracy=True)
    assert calls["cross_entropy"] == 1
    assert out.loss.item() == pytest.approx(_reference(logits, data["labels"], True)["loss"].item(), rel=1e-5)
    assert "return_token_accuracy" in caplog.text  # the stock output has no field for it


def test_undeclared_keywords_are_reported(caplog):
    model = build("llama")
    apply_liger_kernel_to_llama(model=model)
    with caplog.at_level(logging.WARNING, logger="liger_kernel.transformers.model.causal_lm"):
        model(**batch(), return_token_acuracy=True)
    assert "return_token_acuracy" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="liger_kernel.transformers.model.causal_lm"):
        model(**batch(), output_hidden_states=True, return_token_accuracy=True)
    assert not caplog.records  # declared by Transformers, or a loss option
