"""The fused-loss causal-LM forward: label shifting, ignore_index,
num_items_in_batch, logits_to_keep, skip_logits, outputs."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from tiny_models import VOCAB, batch, build, count_op_calls
from transformers.modeling_outputs import CausalLMOutputWithPast, MoeCausalLMOutputWithPast

from liger_kernel.transformers import apply_liger_kernel_to_llama, apply_liger_kernel_to_mixtral


@pytest.fixture
def pair():
    """(stock llama, patched copy with the same weights)."""
    stock = build("llama")
    patched = copy.deepcopy(stock)
    apply_liger_kernel_to_llama(model=patched)
    return stock, patched


def _manual_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    targets = F.pad(labels, (0, 1), value=-100)[:, 1:]
    return F.cross_entropy(logits.reshape(-1, VOCAB).float(), targets.reshape(-1), ignore_index=-100)


def test_training_loss_skips_logits_and_matches_shifted_cross_entropy(pair):
    stock, patched = pair
    data = batch()
    with torch.no_grad():
        logits = stock(input_ids=data["input_ids"]).logits
    with count_op_calls() as calls:
        out = patched(**data)
    assert isinstance(out, CausalLMOutputWithPast)
    assert out.logits is None
    assert calls["fused_linear_cross_entropy"] == 1
    assert out.loss.item() == pytest.approx(_manual_loss(logits, data["labels"]).item(), rel=1e-5)


def test_no_labels_returns_logits(pair):
    stock, patched = pair
    ids = batch()["input_ids"]
    with count_op_calls() as calls:
        out = patched(input_ids=ids)
    assert out.loss is None and not calls["fused_linear_cross_entropy"]
    torch.testing.assert_close(out.logits, stock(input_ids=ids).logits)


def test_eval_with_labels_returns_logits_and_loss(pair):
    stock, patched = pair
    stock.eval()
    patched.eval()
    data = batch()
    out, expected = patched(**data), stock(**data)
    torch.testing.assert_close(out.logits, expected.logits)
    assert out.loss.item() == pytest.approx(expected.loss.item(), rel=1e-5)
    # what Trainer passes for evaluation with prediction_loss_only
    skipped = patched(**data, skip_logits=True)
    assert skipped.logits is None
    assert skipped.loss.item() == pytest.approx(expected.loss.item(), rel=1e-5)


def test_num_items_in_batch_divides_the_summed_loss(pair):
    stock, patched = pair
    data = batch()
    # e.g. gradient accumulation over more tokens than this micro-batch holds
    items = torch.tensor(40)
    expected = stock(**data, num_items_in_batch=items).loss
    got = patched(**data, num_items_in_batch=items).loss
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    total = (
        _manual_loss(stock(input_ids=data["input_ids"]).logits, data["labels"]) * (data["labels"][:, 1:] != -100).sum()
    )
    assert got.item() == pytest.approx(total.item() / 40, rel=1e-5)


def test_shift_labels_are_used_as_given(pair):
    stock, patched = pair
    data = batch()
    shift = F.pad(data["labels"], (0, 1), value=-100)[:, 1:]
    shift[1, 4:] = -100
    expected = stock(input_ids=data["input_ids"], shift_labels=shift, labels=data["labels"]).loss
    got = patched(input_ids=data["input_ids"], shift_labels=shift, labels=data["labels"]).loss
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    alone = patched(input_ids=data["input_ids"], shift_labels=shift).loss
    assert alone.item() == pytest.approx(expected.item(), rel=1e-5)


def test_all_labels_ignored_gives_zero_not_nan(pair):
    _, patched = pair
    data = batch()
    loss = patched(input_ids=data["input_ids"], labels=torch.full_like(data["labels"], -100)).loss
    assert loss.item() == 0.0


def test_logits_to_keep(pair):
    stock, patched = pair
    ids = batch()["input_ids"]
    got = patched(input_ids=ids, logits_to_keep=3).logits
    assert got.shape == (2, 3, VOCAB)
    torch.testing.assert_close(got, stock(input_ids=ids, logits_to_keep=3).logits)
    # with labels for the kept positions only, the fused loss sees those rows
    labels = ids[:, -3:]
    got_loss = patched(input_ids=ids, labels=labels, logits_to_keep=3).loss
    assert got_loss.item() == pytest.approx(stock(input_ids=ids, labels=labels, logits_to_keep=3).loss.item(), rel=1e-5)
    with pytest.raises(ValueError, match="logits_to_keep"):
        patched(input_ids=ids, labels=ids, logits_to_keep=3)


def test_return_dict_false_gives_a_tuple(pair):
    _, patched = pair
    out = patched(**batch(), return_dict=False)
    assert isinstance(out, tuple) and out[0].dim() == 0


def test_gradients_reach_the_tied_or_untied_head(pair):
    stock, patched = pair
    data = batch()
    stock(**data).loss.backward()
    patched(**data).loss.backward()
    torch.testing.assert_close(patched.lm_head.weight.grad, stock.lm_head.weight.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(
        patched.model.embed_tokens.weight.grad, stock.model.embed_tokens.weight.grad, rtol=1e-4, atol=1e-6
    )


def test_generate_matches_stock(pair):
    stock, patched = pair
    stock.eval()
    patched.eval()
    prompt = batch()["input_ids"][:1, :5]
    kwargs = dict(max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert torch.equal(patched.generate(prompt, **kwargs), stock.generate(prompt, **kwargs))


def test_moe_forward_adds_the_router_loss():
    stock = build("mixtral")
    patched = copy.deepcopy(stock)
    apply_liger_kernel_to_mixtral(model=patched)
    data = batch()
    expected, got = stock(**data), patched(**data)
    assert isinstance(got, MoeCausalLMOutputWithPast)
    assert got.aux_loss is not None and got.logits is None
    assert got.aux_loss.item() == pytest.approx(expected.aux_loss.item(), rel=1e-5)
    assert got.loss.item() == pytest.approx(expected.loss.item(), rel=1e-5)
    without_router = patched(**data, output_router_logits=False)
    assert without_router.aux_loss is None
    assert without_router.loss.item() < got.loss.item()
