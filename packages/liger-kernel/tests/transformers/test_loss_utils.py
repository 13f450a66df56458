"""liger_kernel.transformers.model.loss_utils: the causal-LM loss helpers that
frameworks import and replace, and that the patched forwards go through."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from tiny_models import VOCAB, batch, build

from liger_kernel.transformers import apply_liger_kernel_to_llama
from liger_kernel.transformers.functional import CrossEntropyOutput
from liger_kernel.transformers.model import loss_utils
from liger_kernel.transformers.model.loss_utils import (
    LigerForCausalLMLoss,
    fixed_fused_linear_cross_entropy,
    unpack_cross_entropy_result,
)

HIDDEN = 8


def _inputs(seed: int = 0, rows: int = 2, seq: int = 5):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(rows, seq, HIDDEN, generator=generator, dtype=torch.float64)
    weight = torch.randn(VOCAB, HIDDEN, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, VOCAB, (rows, seq), generator=generator)
    labels[0, 1] = -100
    return hidden, weight, labels


def _reference(hidden, weight, labels, reduction="mean", softcap=None):
    logits = hidden @ weight.T
    if softcap is not None:
        logits = softcap * torch.tanh(logits / softcap)
    targets = F.pad(labels, (0, 1), value=-100)[:, 1:]
    return F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1), ignore_index=-100, reduction=reduction)


def test_unpack_reads_every_result_form():
    loss, accuracy = torch.tensor(1.0), torch.tensor(0.5)
    assert unpack_cross_entropy_result(loss) == (loss, None, None, None)
    assert unpack_cross_entropy_result((loss, None, accuracy)) == (loss, None, accuracy, None)
    output = CrossEntropyOutput(loss, token_accuracy=accuracy)
    assert unpack_cross_entropy_result(output) == (loss, None, accuracy, None)
    with pytest.raises(ValueError, match="1 to 4"):
        unpack_cross_entropy_result(())
    with pytest.raises(TypeError, match="not a cross-entropy result"):
        unpack_cross_entropy_result([loss])


def test_causal_lm_loss_shifts_labels_and_softcaps():
    hidden, weight, labels = _inputs()
    loss = LigerForCausalLMLoss(hidden, weight, labels, HIDDEN, final_logit_softcapping=3.0)
    torch.testing.assert_close(loss, _reference(hidden, weight, labels, softcap=3.0))


def test_causal_lm_loss_with_num_items_in_batch_is_the_sum_over_it():
    hidden, weight, labels = _inputs()
    loss = LigerForCausalLMLoss(hidden, weight, labels, HIDDEN, num_items_in_batch=torch.tensor(7))
    torch.testing.assert_close(loss, _reference(hidden, weight, labels, reduction="sum") / 7)


def test_causal_lm_loss_takes_shift_labels_and_ignores_keywords_it_has_no_use_for():
    hidden, weight, labels = _inputs()
    shifted = F.pad(labels, (0, 1), value=-100)[:, 1:]
    loss = LigerForCausalLMLoss(hidden, weight, None, HIDDEN, shift_labels=shifted, cu_seq_lens_q=None)
    torch.testing.assert_close(loss, _reference(hidden, weight, labels))


def test_causal_lm_loss_passes_on_the_fused_loss_options():
    hidden, weight, labels = _inputs()
    bias = torch.randn(VOCAB, dtype=torch.float64)
    out = LigerForCausalLMLoss(hidden, weight, labels, HIDDEN, bias=bias, return_token_accuracy=True)
    assert isinstance(out, CrossEntropyOutput)
    logits = hidden @ weight.T + bias
    targets = F.pad(labels, (0, 1), value=-100)[:, 1:]
    expected = F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, expected)
    kept = targets != -100
    accuracy = (logits.argmax(-1)[kept] == targets[kept]).double().mean()
    torch.testing.assert_close(out.token_accuracy.double(), accuracy)


def test_causal_lm_loss_refuses_a_wrong_hidden_size_or_label_count():
    hidden, weight, labels = _inputs()
    with pytest.raises(ValueError, match="hidden_size"):
        LigerForCausalLMLoss(hidden, weight, labels, HIDDEN + 1)
    with pytest.raises(ValueError, match="positions"):
        LigerForCausalLMLoss(hidden[:, 1:], weight, labels, HIDDEN)


def test_fixed_fused_linear_cross_entropy_keeps_a_requested_z_loss_reduced_as_the_loss():
    hidden, weight, labels = _inputs()
    rows, targets = hidden.reshape(-1, HIDDEN), labels.reshape(-1)
    out = fixed_fused_linear_cross_entropy(
        rows, weight, targets, num_items_in_batch=4, return_z_loss=True, lse_square_scale=0.01
    )
    lse = torch.logsumexp(rows @ weight.T, dim=-1)[targets != -100]
    torch.testing.assert_close(out.z_loss, 0.01 * (lse**2).sum() / 4)
    assert out.token_accuracy is None and out.predicted_tokens is None


def test_patched_forward_uses_the_module_attribute(monkeypatch):
    """A framework that replaces loss_utils.LigerForCausalLMLoss (after the
    model is patched) changes the loss the patched forward computes."""
    model = build("llama")
    apply_liger_kernel_to_llama(model=model)
    model.train()
    data = batch()
    original = loss_utils.LigerForCausalLMLoss
    seen = []

    def wrapped(hidden_states, *args, **kwargs):
        seen.append((hidden_states.shape, kwargs.get("hidden_size")))
        return original(hidden_states, *args, **kwargs) * 2

    reference = model(**data).loss
    monkeypatch.setattr(loss_utils, "LigerForCausalLMLoss", wrapped)
    doubled = model(**copy.deepcopy(data)).loss
    assert seen == [((2, 12, model.config.hidden_size), model.config.hidden_size)]
    torch.testing.assert_close(doubled, reference * 2)
