"""Subclasses written against liger-kernel 0.8.5's chunked-loss bases, each against a whole-batch torch oracle,
and the loss Functions as ``torch.autograd.Function`` subclasses called through ``.apply``."""

from __future__ import annotations

import chunked_reference as ref
import pytest
import torch
import torch.nn.functional as F

from liger_kernel.chunked_loss import functional
from liger_kernel.chunked_loss.cosine_similarity_loss import LigerFusedLinearCosineSimilarityFunction
from liger_kernel.chunked_loss.cpo_loss import LigerFusedLinearCPOFunction
from liger_kernel.chunked_loss.dpo_loss import LigerFusedLinearDPOFunction
from liger_kernel.chunked_loss.fused_linear_distillation import LigerFusedLinearDistillationBase
from liger_kernel.chunked_loss.fused_linear_preference import LigerFusedLinearPreferenceBase
from liger_kernel.chunked_loss.fused_linear_unpaired_preference import LigerFusedLinearUnpairedPreferenceBase
from liger_kernel.chunked_loss.jsd_loss import LigerFusedLinearJSDFunction
from liger_kernel.chunked_loss.kto_loss import LigerFusedLinearKTOFunction
from liger_kernel.chunked_loss.orpo_loss import LigerFusedLinearORPOFunction
from liger_kernel.chunked_loss.simpo_loss import LigerFusedLinearSimPOFunction

PAIRS, SEQ, HIDDEN, VOCAB = 3, 4, 8, 16
DTYPE = torch.float64
UPSTREAM = 1.7  # a non-unit incoming gradient checks that backward scales the saved gradients


def leaf(*shape, scale=1.0):
    return (torch.randn(*shape, dtype=DTYPE) * scale).requires_grad_(True)


def targets(rows, seq=SEQ):
    target = torch.randint(0, VOCAB, (rows, seq))
    target[0, -2:] = -100
    return target


def twin(*tensors):
    return [None if t is None else t.detach().clone().requires_grad_(True) for t in tensors]


def assert_grads_match(ours, theirs):
    for mine, oracle in zip(ours, theirs):
        if mine is None:
            continue
        torch.testing.assert_close(mine.grad, oracle.grad, rtol=1e-7, atol=1e-10)


# --------------------------------------------------------------------------- a paired preference subclass


class MarginPreferenceFunction(LigerFusedLinearPreferenceBase):
    """A logistic preference loss with a margin, written the way 0.8.5's subclasses are."""

    @staticmethod
    def preference_loss_fn(
        chosen_logps, rejected_logps, full_target, ref_chosen_logps=None, ref_rejected_logps=None, beta=0.1, margin=0.0
    ):
        if ref_chosen_logps is not None:
            chosen_logps = chosen_logps - ref_chosen_logps
            rejected_logps = rejected_logps - ref_rejected_logps
        z = beta * (chosen_logps - rejected_logps) - margin
        loss = -F.logsigmoid(z).sum() / (full_target.shape[0] // 2)
        return loss, beta * chosen_logps.detach(), z.detach().sum()

    @classmethod
    def forward(
        cls, ctx, _input, weight, target, bias=None, ref_input=None, ref_weight=None, ref_bias=None,
        beta=0.1, margin=0.0, alpha=1.0, chunk_size=1,
    ):  # fmt: skip
        return super().forward(
            cls=cls, ctx=ctx, _input=_input, weight=weight, target=target, bias=bias, chunk_size=chunk_size,
            alpha=alpha, beta=beta, use_ref_model=ref_input is not None, ref_input=ref_input, ref_weight=ref_weight,
            ref_bias=ref_bias, average_log_prob=False, margin=margin,
        )  # fmt: skip

    @staticmethod
    def backward(ctx, *grad_output):
        grads = LigerFusedLinearPreferenceBase.backward(ctx, grad_output)[:4]
        return *grads, None, None, None, None, None, None, None, None


@pytest.mark.parametrize("chunk_size", [1, 2, 3])
@pytest.mark.parametrize("with_ref", [False, True])
def test_a_0_8_5_style_preference_subclass(chunk_size, with_ref):
    torch.manual_seed(0)
    x, w, b = leaf(2 * PAIRS, SEQ, HIDDEN), leaf(VOCAB, HIDDEN, scale=0.3), leaf(VOCAB, scale=0.1)
    target = targets(2 * PAIRS)
    ref_x, ref_w = (torch.randn(2 * PAIRS, SEQ, HIDDEN, dtype=DTYPE), torch.randn(VOCAB, HIDDEN, dtype=DTYPE) * 0.3)
    refs = (ref_x, ref_w, None) if with_ref else (None, None, None)
    beta, margin, alpha = 0.3, 0.2, 0.7

    loss, (chosen, rejected, chosen_mean, rejected_mean, nll, rewards, z_sum) = MarginPreferenceFunction.apply(
        x, w, target, b, *refs, beta, margin, alpha, chunk_size
    )
    (loss * UPSTREAM).backward()

    x2, w2, b2 = twin(x, w, b)
    logps = ref.sequence_logps(x2, w2, b2, target, -100, False)
    ref_logps = ref.sequence_logps(ref_x, ref_w, None, target, -100, False) if with_ref else torch.zeros_like(logps)
    ratios = logps - ref_logps
    z = beta * (ratios[:PAIRS] - ratios[PAIRS:]) - margin
    expected_nll = ref.chosen_nll(x2, w2, b2, target, -100)
    expected = alpha * expected_nll - F.logsigmoid(z).mean()
    (expected * UPSTREAM).backward()

    torch.testing.assert_close(loss, expected.detach(), rtol=1e-7, atol=1e-10)
    torch.testing.assert_close(chosen, logps[:PAIRS].detach())
    torch.testing.assert_close(rejected, logps[PAIRS:].detach())
    torch.testing.assert_close(nll, expected_nll.detach())
    torch.testing.assert_close(rewards, beta * ratios[:PAIRS].detach())  # per-pair aux: concatenated
    torch.testing.assert_close(z_sum, z.detach().sum())  # 0-dim aux: summed over chunks
    logits = ref.full_logits(x2, w2, b2).detach()
    torch.testing.assert_close(chosen_mean, logits[:PAIRS].mean())
    torch.testing.assert_close(rejected_mean, logits[PAIRS:].mean())
    assert_grads_match((x, w, b), (x2, w2, b2))


# --------------------------------------------------------------------------- an unpaired preference subclass


class SignedLogisticFunction(LigerFusedLinearUnpairedPreferenceBase):
    """-log sigmoid(+-beta * ratio) per row, averaged over the batch, as a 0.8.5-style subclass."""

    @staticmethod
    def preference_loss_fn(log_prob_chunk, preference_labels_chunk, full_target, ref_log_prob_chunk=None, beta=0.1):
        ratio = log_prob_chunk if ref_log_prob_chunk is None else log_prob_chunk - ref_log_prob_chunk
        sign = preference_labels_chunk.to(ratio.dtype) * 2 - 1
        loss = -F.logsigmoid(beta * ratio * sign).sum() / full_target.shape[0]
        return loss, ratio.detach().sum()

    @classmethod
    def forward(
        cls, ctx, _input, weight, target, preference_labels, bias=None, ref_input=None, ref_weight=None,
        ref_bias=None, beta=0.1, chunk_size=1,
    ):  # fmt: skip
        return super().forward(
            cls=cls, ctx=ctx, _input=_input, weight=weight, target=target, preference_labels=preference_labels,
            bias=bias, chunk_size=chunk_size, use_ref_model=ref_input is not None, ref_input=ref_input,
            ref_weight=ref_weight, ref_bias=ref_bias, average_log_prob=True, beta=beta,
        )  # fmt: skip

    @staticmethod
    def backward(ctx, *grad_output):
        grads = LigerFusedLinearUnpairedPreferenceBase.backward(ctx, grad_output)[:5]
        return *grads, None, None, None, None, None, None


@pytest.mark.parametrize("chunk_size", [1, 2, 5])
@pytest.mark.parametrize("with_ref", [False, True])
def test_a_0_8_5_style_unpaired_preference_subclass(chunk_size, with_ref):
    torch.manual_seed(1)
    rows = 5
    x, w, b = leaf(rows, SEQ, HIDDEN), leaf(VOCAB, HIDDEN, scale=0.3), leaf(VOCAB, scale=0.1)
    target = targets(rows)
    desirable = torch.tensor([True, False, True, True, False])
    ref_x, ref_w = torch.randn(rows, SEQ, HIDDEN, dtype=DTYPE), torch.randn(VOCAB, HIDDEN, dtype=DTYPE) * 0.3
    refs = (ref_x, ref_w, None) if with_ref else (None, None, None)
    beta = 0.4

    loss, (chosen_sum, rejected_sum, chosen_logits, rejected_logits, ratio_sum) = SignedLogisticFunction.apply(
        x, w, target, desirable, b, *refs, beta, chunk_size
    )
    (loss * UPSTREAM).backward()

    x2, w2, b2 = twin(x, w, b)
    logps = ref.sequence_logps(x2, w2, b2, target, -100, True)
    ref_logps = ref.sequence_logps(ref_x, ref_w, None, target, -100, True) if with_ref else torch.zeros_like(logps)
    ratio = logps - ref_logps
    expected = -F.logsigmoid(beta * ratio * (desirable.to(DTYPE) * 2 - 1)).mean()
    (expected * UPSTREAM).backward()

    torch.testing.assert_close(loss, expected.detach(), rtol=1e-7, atol=1e-10)
    torch.testing.assert_close(chosen_sum, logps[desirable].sum().detach())
    torch.testing.assert_close(rejected_sum, logps[~desirable].sum().detach())
    logits = ref.full_logits(x2, w2, b2).detach()
    torch.testing.assert_close(chosen_logits, logits[desirable].sum())
    torch.testing.assert_close(rejected_logits, logits[~desirable].sum())
    torch.testing.assert_close(ratio_sum, ratio.sum().detach())
    assert_grads_match((x, w, b), (x2, w2, b2))


# --------------------------------------------------------------------------- a distillation subclass


class ScaledKLFunction(LigerFusedLinearDistillationBase):
    """beta * KL(teacher || student) per token, summed over the chunk's counted tokens (0.8.5 style)."""

    @staticmethod
    def distillation_loss_fn(student_logits, teacher_logits, target=None, ignore_index=-100, beta=0.5):
        per_token = F.kl_div(
            F.log_softmax(student_logits, -1), F.log_softmax(teacher_logits, -1), reduction="none", log_target=True
        ).sum(-1)
        return beta * (per_token * (target != ignore_index)).sum()

    @classmethod
    def forward(
        cls, ctx, student_input, student_weight, teacher_input, teacher_weight, true_labels, student_bias=None,
        teacher_bias=None, weight_hard_loss=0.5, weight_soft_loss=0.5, beta=0.5, temperature=1.0, chunk_size=1024,
        return_soft_hard_loss=False,
    ):  # fmt: skip
        return super().forward(
            cls=cls, ctx=ctx, student_input=student_input, student_weight=student_weight,
            teacher_input=teacher_input, teacher_weight=teacher_weight, target=true_labels,
            student_bias=student_bias, teacher_bias=teacher_bias, chunk_size=chunk_size,
            weight_hard_loss=weight_hard_loss, weight_soft_loss=weight_soft_loss, beta=beta,
            temperature=temperature, return_soft_hard_loss=return_soft_hard_loss,
        )  # fmt: skip

    @staticmethod
    def backward(ctx, grad_output, *args):
        grads = LigerFusedLinearDistillationBase.backward(ctx, grad_output, *args)[:6]
        return *grads, None, None, None, None, None, None, None, None


@pytest.mark.parametrize("chunk_size", [1, 4, 64])
@pytest.mark.parametrize("teacher_vocab", [VOCAB, VOCAB + 3])
def test_a_0_8_5_style_distillation_subclass(chunk_size, teacher_vocab):
    torch.manual_seed(2)
    rows, teacher_hidden = 10, 6
    x, w, b = leaf(rows, HIDDEN), leaf(VOCAB, HIDDEN, scale=0.3), leaf(VOCAB, scale=0.1)
    tx, tw = torch.randn(rows, teacher_hidden, dtype=DTYPE), torch.randn(teacher_vocab, teacher_hidden, dtype=DTYPE)
    true_labels = torch.randint(0, VOCAB, (rows,))
    true_labels[[1, 6]] = -100
    hard_w, soft_w, beta, temperature = 0.3, 0.7, 0.8, 2.0

    loss, soft, hard = ScaledKLFunction.apply(
        x, w, tx, tw, true_labels, b, None, hard_w, soft_w, beta, temperature, chunk_size, True
    )
    (loss * UPSTREAM).backward()

    x2, w2, b2 = twin(x, w, b)
    student = ref.full_logits(x2, w2, b2)
    # a larger teacher vocabulary meets zero student logits in the padded positions
    padded = F.pad(student, (0, teacher_vocab - VOCAB)) / temperature
    teacher = (tx @ tw.t()) / temperature
    counted = true_labels != -100
    kl = (F.softmax(teacher, -1) * (F.log_softmax(teacher, -1) - F.log_softmax(padded, -1))).sum(-1)
    expected_soft = beta * kl[counted].mean()
    expected_hard = F.cross_entropy(student, true_labels, ignore_index=-100)
    expected = hard_w * expected_hard + soft_w * expected_soft
    (expected * UPSTREAM).backward()

    torch.testing.assert_close(loss, expected.detach(), rtol=1e-7, atol=1e-10)
    torch.testing.assert_close(soft, expected_soft.detach())
    torch.testing.assert_close(hard, expected_hard.detach())
    assert_grads_match((x, w, b), (x2, w2, b2))


# --------------------------------------------------------------------------- this project's Functions


LOSS_FUNCTIONS = [
    (LigerFusedLinearDPOFunction, LigerFusedLinearPreferenceBase),
    (LigerFusedLinearCPOFunction, LigerFusedLinearPreferenceBase),
    (LigerFusedLinearORPOFunction, LigerFusedLinearPreferenceBase),
    (LigerFusedLinearSimPOFunction, LigerFusedLinearPreferenceBase),
    (LigerFusedLinearKTOFunction, LigerFusedLinearUnpairedPreferenceBase),
    (LigerFusedLinearJSDFunction, LigerFusedLinearDistillationBase),
    (LigerFusedLinearCosineSimilarityFunction, LigerFusedLinearDistillationBase),
]


@pytest.mark.parametrize(("function", "base"), LOSS_FUNCTIONS, ids=lambda f: f.__name__)
def test_loss_functions_are_autograd_functions_over_the_bases(function, base):
    assert issubclass(function, torch.autograd.Function) and issubclass(function, base)


def test_apply_takes_0_8_5_positional_arguments_and_differentiates():
    torch.manual_seed(3)
    x, w = leaf(2 * PAIRS, SEQ, HIDDEN), leaf(VOCAB, HIDDEN, scale=0.3)
    ref_x, ref_w = torch.randn(2 * PAIRS, SEQ, HIDDEN, dtype=DTYPE), torch.randn(VOCAB, HIDDEN, dtype=DTYPE) * 0.3
    target = targets(2 * PAIRS)
    # ... ignore_index, beta, compute_nll_loss, compiled, use_ref_model, average_log_prob, chunk_size, loss_type
    loss, _ = LigerFusedLinearDPOFunction.apply(
        x, w, target, None, ref_x, ref_w, None, -100, 0.2, True, True, True, False, 2, "hinge"
    )
    loss.backward()
    x2, w2 = twin(x, w)
    expected, _ = ref.dpo(
        x2, w2, None, target, beta=0.2, loss_type="hinge", ignore_index=-100, ref=(ref_x, ref_w, None), nll=True
    )
    expected.backward()
    torch.testing.assert_close(loss, expected.detach())
    assert_grads_match((x, w), (x2, w2))

    # CPO: average_log_prob and chunk_size where 0.8.5 has them, then this project's loss_type
    cpo_loss, _ = LigerFusedLinearCPOFunction.apply(x, w, target, None, -100, 0.1, 1.0, 0.0, True, True, True, 2)
    expected_cpo, _ = ref.cpo(
        x, w, None, target, beta=0.1, alpha=1.0, label_smoothing=0.0, loss_type="sigmoid", ignore_index=-100,
        average=True,
    )  # fmt: skip
    torch.testing.assert_close(cpo_loss, expected_cpo.detach())
    functional_loss, _ = functional.liger_fused_linear_cpo(x, w, target, None, -100, 0.1, 1.0, 0.0, True, True, True)
    torch.testing.assert_close(functional_loss, cpo_loss.detach())
