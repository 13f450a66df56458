"""Each chunked loss and its gradients against the whole-batch oracles in chunked_reference."""

from __future__ import annotations

import math

import chunked_reference as ref
import pytest
import torch

from liger_kernel.chunked_loss import (
    LigerFusedLinearCosineSimilarityLoss,
    LigerFusedLinearCPOLoss,
    LigerFusedLinearDPOLoss,
    LigerFusedLinearGRPOLoss,
    LigerFusedLinearJSDLoss,
    LigerFusedLinearKTOLoss,
    LigerFusedLinearORPOLoss,
    LigerFusedLinearSimPOLoss,
    functional,
)

PAIRS, SEQ, HIDDEN, VOCAB = 3, 5, 8, 24
DTYPE = torch.float64
CHUNKS = [1, 2, 4]  # 2 leaves a short last chunk; 4 is one chunk holding the whole batch
IGNORE = [-100, 3]


def leaf(*shape, scale=1.0):
    return (torch.randn(*shape, dtype=DTYPE) * scale).requires_grad_(True)


def labels(rows, ignore_index, seq=SEQ):
    """Targets with the ignore index in a few places, including one sequence's last two positions."""
    target = torch.randint(0, VOCAB, (rows, seq))
    target = torch.where(target == ignore_index, (target + 1) % VOCAB, target)
    target[0, -2:] = ignore_index
    target[rows - 1, 0] = ignore_index
    return target


def head(bias: bool, scale=0.3):
    return leaf(VOCAB, HIDDEN, scale=scale), (leaf(VOCAB, scale=0.1) if bias else None)


def assert_close(actual, expected, rtol=1e-7):
    torch.testing.assert_close(actual, expected.to(actual.dtype), rtol=rtol, atol=1e-9 * rtol / 1e-7)


def assert_same_grads(ours: dict, theirs: dict, rtol=1e-7):
    for name, (mine, oracle) in {k: (ours[k], theirs[k]) for k in ours}.items():
        if mine is None:
            assert oracle is None, name
            continue
        assert mine.grad is not None, f"no gradient for {name}"
        assert_close(mine.grad, oracle.grad, rtol)


def twins(**tensors):
    """Independent leaf copies of each tensor (None stays None), for our loss and the oracle."""
    copy = {k: (None if v is None else v.detach().clone().requires_grad_(v.requires_grad)) for k, v in tensors.items()}
    return tensors, copy


def backward_with(loss, scale=1.7):
    # a non-unit upstream gradient checks that backward scales the stored gradients
    (loss * scale).backward()


@pytest.mark.parametrize("chunk_size", CHUNKS)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("ignore_index", IGNORE)
@pytest.mark.parametrize(
    ("loss_type", "use_ref", "average", "nll"),
    [
        ("sigmoid", True, False, False),
        ("sigmoid", False, True, True),
        ("apo_zero", True, False, False),
        ("apo_down", True, True, False),
        ("sppo_hard", True, True, False),
        ("nca_pair", True, False, True),
    ],
)
def test_dpo(chunk_size, bias, ignore_index, loss_type, use_ref, average, nll):
    torch.manual_seed(0)
    w, b = head(bias)
    mine, theirs = twins(x=leaf(2 * PAIRS, SEQ, HIDDEN), w=w, b=b, rx=leaf(2 * PAIRS, SEQ, HIDDEN))
    ref_w, ref_b = head(bias)
    target = labels(2 * PAIRS, ignore_index)

    loss_fn = LigerFusedLinearDPOLoss(
        ignore_index=ignore_index, beta=0.2, compute_nll_loss=nll, use_ref_model=use_ref,
        average_log_prob=average, chunk_size=chunk_size, loss_type=loss_type,
    )  # fmt: skip
    ref_args = (mine["rx"], ref_w, ref_b) if use_ref else (None, None, None)
    loss, outputs = loss_fn(mine["w"], mine["x"], target, mine["b"], *ref_args)
    expected, expected_outputs = ref.dpo(
        theirs["x"], theirs["w"], theirs["b"], target, beta=0.2, loss_type=loss_type, ignore_index=ignore_index,
        ref=(theirs["rx"], ref_w, ref_b) if use_ref else None, average=average, nll=nll,
    )  # fmt: skip
    assert_close(loss, expected)
    assert len(outputs) == len(expected_outputs) == 7
    for got, want in zip(outputs, expected_outputs):
        assert_close(got, want)
    backward_with(loss)
    backward_with(expected)
    assert_same_grads({"x": mine["x"], "w": mine["w"], "b": mine["b"]}, theirs)
    assert mine["rx"].grad is None and ref_w.grad is None


DPO_VARIANTS = [
    # (loss_type, label_smoothing, discopop_tau, average_log_prob)
    ("hinge", 0.0, 0.05, False),
    ("ipo", 0.0, 0.05, False),
    ("ipo", 0.0, 0.05, True),
    ("sigmoid_norm", 0.0, 0.05, False),
    ("exo_pair", 1e-3, 0.05, False),
    ("exo_pair", 0.2, 0.05, True),
    ("robust", 0.0, 0.05, False),
    ("robust", 0.3, 0.05, False),
    ("bco_pair", 0.0, 0.05, False),
    ("discopop", 0.0, 0.05, False),
    ("discopop", 0.0, 0.5, True),
    ("sft", 0.0, 0.05, False),
]


@pytest.mark.parametrize("chunk_size", [1, 2])
@pytest.mark.parametrize(("loss_type", "smoothing", "tau", "average"), DPO_VARIANTS)
def test_dpo_loss_types_and_their_parameters(chunk_size, loss_type, smoothing, tau, average):
    """Every loss type 0.8.5 (and TRL's DPO trainer) names, with label_smoothing, discopop_tau and alpha."""
    torch.manual_seed(1)
    w, b = head(True)
    mine, theirs = twins(x=leaf(2 * PAIRS, SEQ, HIDDEN), w=w, b=b, rx=leaf(2 * PAIRS, SEQ, HIDDEN))
    ref_w, ref_b = head(True)
    target = labels(2 * PAIRS, -100)
    loss_fn = LigerFusedLinearDPOLoss(
        beta=0.3, alpha=0.7, compute_nll_loss=True, average_log_prob=average, chunk_size=chunk_size,
        loss_type=loss_type, label_smoothing=smoothing, discopop_tau=tau,
    )  # fmt: skip
    loss, outputs = loss_fn(mine["w"], mine["x"], target, mine["b"], mine["rx"], ref_w, ref_b)
    expected, expected_outputs = ref.dpo(
        theirs["x"], theirs["w"], theirs["b"], target, beta=0.3, loss_type=loss_type, ignore_index=-100,
        ref=(theirs["rx"], ref_w, ref_b), average=average, nll=True, smoothing=smoothing, tau=tau, alpha=0.7,
    )  # fmt: skip
    assert_close(loss, expected)
    for got, want in zip(outputs, expected_outputs):
        assert_close(got, want)
    backward_with(loss)
    backward_with(expected)
    assert_same_grads({"x": mine["x"], "w": mine["w"], "b": mine["b"]}, theirs)


def test_dpo_sft_is_the_chosen_nll_even_without_compute_nll_loss():
    torch.manual_seed(2)
    w, _ = head(False)
    x = leaf(2 * PAIRS, SEQ, HIDDEN)
    target = labels(2 * PAIRS, -100)
    loss, _ = LigerFusedLinearDPOLoss(loss_type="sft", use_ref_model=False)(w, x, target)
    assert_close(loss, ref.chosen_nll(x, w, None, target, -100))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"loss_type": "exo_pair"}, "label_smoothing"),
        ({"loss_type": "robust", "label_smoothing": 0.5}, "label_smoothing"),
        ({"loss_type": "discopop", "discopop_tau": 0.0}, "discopop_tau"),
        ({"loss_type": "aot"}, "whole batch"),
        ({"loss_type": "aot_unpaired"}, "whole batch"),
        ({"loss_type": "kto"}, "unknown DPO loss_type"),
    ],
)
def test_dpo_refuses_options_that_do_not_go_together(options, message):
    with pytest.raises(ValueError, match=message):
        LigerFusedLinearDPOLoss(**options)
    with pytest.raises(ValueError, match=message):
        functional.liger_fused_linear_dpo(
            torch.zeros(2, 1, HIDDEN), torch.zeros(VOCAB, HIDDEN), torch.zeros(2, 1, dtype=torch.long),
            **options,
        )  # fmt: skip


@pytest.mark.parametrize("chunk_size", CHUNKS)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("ignore_index", IGNORE)
@pytest.mark.parametrize("which", ["orpo", "cpo_sigmoid", "cpo_hinge", "simpo"])
def test_reference_free_preference(chunk_size, bias, ignore_index, which):
    torch.manual_seed(1)
    w, b = head(bias)
    mine, theirs = twins(x=leaf(2 * PAIRS, SEQ, HIDDEN), w=w, b=b)
    target = labels(2 * PAIRS, ignore_index)
    args = (target,)
    if which == "orpo":
        loss_fn = LigerFusedLinearORPOLoss(ignore_index=ignore_index, beta=0.3, chunk_size=chunk_size)
        oracle = lambda x, w, b: ref.orpo(x, w, b, target, beta=0.3, ignore_index=ignore_index)  # noqa: E731
    elif which.startswith("cpo"):
        kind = which.split("_")[1]
        loss_fn = LigerFusedLinearCPOLoss(
            ignore_index=ignore_index, beta=0.3, alpha=0.7, label_smoothing=0.1, loss_type=kind, chunk_size=chunk_size
        )
        oracle = lambda x, w, b: ref.cpo(  # noqa: E731
            x, w, b, target, beta=0.3, alpha=0.7, label_smoothing=0.1, loss_type=kind, ignore_index=ignore_index
        )
    else:
        loss_fn = LigerFusedLinearSimPOLoss(
            ignore_index=ignore_index, beta=2.0, alpha=0.5, gamma=0.4, label_smoothing=0.05, chunk_size=chunk_size
        )
        oracle = lambda x, w, b: ref.simpo(  # noqa: E731
            x, w, b, target, beta=2.0, alpha=0.5, gamma=0.4, label_smoothing=0.05, ignore_index=ignore_index
        )
    loss, outputs = loss_fn(mine["w"], mine["x"], *args, mine["b"])
    expected, expected_outputs = oracle(theirs["x"], theirs["w"], theirs["b"])
    assert_close(loss, expected)
    assert len(outputs) == len(expected_outputs)
    for got, want in zip(outputs, expected_outputs):
        assert_close(got, want)
    backward_with(loss)
    backward_with(expected)
    assert_same_grads(mine, theirs)


def test_orpo_nll_target_replaces_the_nll_labels():
    torch.manual_seed(2)
    w, _ = head(False)
    x = leaf(2 * PAIRS, SEQ, HIDDEN)
    target = labels(2 * PAIRS, -100)
    nll_target = torch.full_like(target, -100)
    nll_target[:PAIRS, 1:3] = target[:PAIRS, 1:3]
    loss_fn = LigerFusedLinearORPOLoss(beta=0.3, chunk_size=2)
    _, outputs = loss_fn(w, x, target, None, nll_target)
    expected_nll = ref.chosen_nll(x, w, None, nll_target, -100)
    assert_close(outputs[4], expected_nll)


@pytest.mark.parametrize("chunk_size", [1, 3, 8])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("ignore_index", IGNORE)
@pytest.mark.parametrize(("use_ref", "kl", "average"), [(True, 0.05, False), (False, None, True), (True, None, True)])
def test_kto(chunk_size, bias, ignore_index, use_ref, kl, average):
    torch.manual_seed(3)
    rows = 5
    w, b = head(bias)
    ref_w, ref_b = head(bias)
    mine, theirs = twins(x=leaf(rows, SEQ, HIDDEN), w=w, b=b, rx=leaf(rows, SEQ, HIDDEN))
    target = labels(rows, ignore_index)
    preference = torch.tensor([True, False, False, True, True])
    kl_tensor = None if kl is None else torch.tensor(kl, dtype=DTYPE)
    loss_fn = LigerFusedLinearKTOLoss(
        ignore_index=ignore_index, beta=0.5, use_ref_model=use_ref, average_log_prob=average, chunk_size=chunk_size
    )
    loss, outputs = loss_fn(mine["x"], mine["w"], target, mine["b"], preference, mine["rx"], ref_w, ref_b, kl_tensor)
    expected, expected_outputs = ref.kto(
        theirs["x"], theirs["w"], theirs["b"], target, preference, beta=0.5, ignore_index=ignore_index,
        ref=(theirs["rx"], ref_w, ref_b) if use_ref else None, kl=kl, average=average,
    )  # fmt: skip
    assert_close(loss, expected)
    for got, want in zip(outputs, expected_outputs, strict=True):
        assert_close(got, want)
    backward_with(loss)
    backward_with(expected)
    assert_same_grads({"x": mine["x"], "w": mine["w"], "b": mine["b"]}, theirs)
    assert mine["rx"].grad is None


GRPO_CASES = [
    # loss_type, beta, reference source, importance level, off-policy old logps
    ("dapo", 0.04, "model", "token", True),
    ("grpo", 0.1, "logps", "token", True),
    ("bnpo", 0.0, None, "token", True),
    ("dr_grpo", 0.04, "model", "sequence", True),
    ("cispo", 0.0, None, "token", True),
    ("sapo", 0.04, "logps", "token", True),
    ("grpo", 0.04, "model", "token", False),
    ("delta+bias_kl", 0.04, "logps", "token", True),
    ("vespo", 0.0, None, "token", True),
    ("vespo", 0.04, "logps", "token", True),
    ("luspo", 0.0, None, "sequence", True),
    ("luspo", 0.04, "model", "token", True),
]


@pytest.mark.parametrize("chunk_size", [1, 3, 8])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize(("loss_type", "beta", "ref_source", "level", "off_policy"), GRPO_CASES)
def test_grpo(chunk_size, bias, loss_type, beta, ref_source, level, off_policy):
    torch.manual_seed(4)
    rows, temperature = 5, 0.7
    extras = {"delta": 1.1, "use_bias_correction_kl": True} if loss_type == "delta+bias_kl" else {}
    loss_type = "dapo" if extras else loss_type
    w, b = head(bias, scale=0.5)
    ref_w, ref_b = head(bias, scale=0.5)
    mine, theirs = twins(x=leaf(rows, SEQ, HIDDEN), w=w, b=b, rx=leaf(rows, SEQ, HIDDEN))
    ids = torch.randint(0, VOCAB, (rows, SEQ))
    mask = torch.ones(rows, SEQ, dtype=torch.long)
    mask[0, 3:] = 0  # padded completion tails
    mask[2, 1:] = 0
    advantages = torch.randn(rows, dtype=DTYPE)
    with torch.no_grad():
        policy = torch.log_softmax(ref.full_logits(theirs["x"], w, b) / temperature, -1).gather(-1, ids[..., None])[
            ..., 0
        ]
    # old logps a little off the policy's, so that some tokens are clipped
    old = (policy + 0.4 * torch.randn_like(policy)) if off_policy else None
    ref_logps = policy + 0.1 * torch.randn_like(policy) if ref_source == "logps" else None
    loss_fn = LigerFusedLinearGRPOLoss(
        beta=beta, use_ref_model=ref_source is not None, chunk_size=chunk_size, epsilon_low=0.2, epsilon_high=0.28,
        loss_type=loss_type, max_completion_length=SEQ + 2, importance_sampling_level=level, temperature=temperature,
        **extras,
    )  # fmt: skip
    use_model = ref_source == "model"
    loss, metrics = loss_fn(
        mine["x"], mine["w"], ids, mask, advantages, mine["b"], ref_per_token_logps=ref_logps, old_per_token_logps=old,
        ref_input=mine["rx"] if use_model else None, ref_weight=ref_w if use_model else None,
        ref_bias=ref_b if use_model else None,
    )  # fmt: skip
    expected, expected_metrics = ref.grpo(
        theirs["x"], theirs["w"], theirs["b"], ids, mask, advantages, beta=beta, eps_low=0.2, eps_high=0.28,
        loss_type=loss_type, temperature=temperature, old=old, ref_logps=ref_logps,
        ref=(theirs["rx"], ref_w, ref_b) if use_model else None, level=level, max_len=SEQ + 2,
        delta=extras.get("delta"), bias_kl=bool(extras),
    )  # fmt: skip
    assert_close(loss, expected)
    assert len(metrics) == len(expected_metrics) == (2 if beta else 1)
    for got, want in zip(metrics, expected_metrics):
        assert_close(got, want)
    backward_with(loss)
    backward_with(expected)
    # VESPO's weights are exp(lambda + k log w - lambda w): its reference, evaluated directly, differs in the last bits
    assert_same_grads({"x": mine["x"], "w": mine["w"], "b": mine["b"]}, theirs, 1e-6 if loss_type == "vespo" else 1e-7)
    assert mine["rx"].grad is None


def test_grpo_off_policy_case_clips_some_tokens():
    """The off-policy GRPO cases above exercise the clipped branch, not only the unclipped one."""
    torch.manual_seed(4)
    rows = 5
    w, _ = head(False, scale=0.5)
    x = leaf(rows, SEQ, HIDDEN)
    ids = torch.randint(0, VOCAB, (rows, SEQ))
    mask = torch.ones(rows, SEQ)
    with torch.no_grad():
        policy = torch.log_softmax(ref.full_logits(x, w, None), -1).gather(-1, ids[..., None])[..., 0]
    old = policy + 0.4 * torch.randn_like(policy)
    _, metrics = LigerFusedLinearGRPOLoss(beta=0.0, loss_type="dapo", epsilon_high=0.28)(
        x, w, ids, mask, torch.randn(rows, dtype=DTYPE), old_per_token_logps=old
    )
    assert 0 < metrics[-1] < 1


@pytest.mark.parametrize("chunk_size", [1, 4, 64])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("ignore_index", IGNORE)
@pytest.mark.parametrize(("kind", "beta"), [("jsd", 0.5), ("jsd", 0.0), ("jsd", 1.0), ("jsd", 0.3), ("cosine", 0.8)])
def test_distillation(chunk_size, bias, ignore_index, kind, beta):
    torch.manual_seed(5)
    rows, teacher_hidden = 11, 6
    w, b = head(bias)
    mine, theirs = twins(x=leaf(rows, HIDDEN), w=w, b=b)
    teacher_x = leaf(rows, teacher_hidden)
    teacher_w, teacher_b = leaf(VOCAB, teacher_hidden, scale=0.3), (leaf(VOCAB, scale=0.1) if bias else None)
    target = labels(rows, ignore_index, seq=1)[:, 0]
    module = LigerFusedLinearJSDLoss if kind == "jsd" else LigerFusedLinearCosineSimilarityLoss
    loss_fn = module(
        weight_hard_loss=0.3, weight_soft_loss=0.7, beta=beta, ignore_index=ignore_index, temperature=1.5,
        chunk_size=chunk_size, return_soft_hard_loss=True,
    )  # fmt: skip
    loss, soft, hard = loss_fn(mine["x"], mine["w"], teacher_x, teacher_w, target, mine["b"], teacher_b)
    rows_fn = ref.jsd_rows if kind == "jsd" else ref.cosine_rows
    expected, expected_soft, expected_hard = ref.distillation(
        theirs["x"], theirs["w"], theirs["b"], teacher_x, teacher_w, teacher_b, target,
        rows_fn=lambda s, t: rows_fn(s, t, beta), w_hard=0.3, w_soft=0.7, ignore_index=ignore_index, temperature=1.5,
    )  # fmt: skip
    assert_close(loss, expected)
    assert_close(soft, expected_soft)
    assert_close(hard, expected_hard)
    backward_with(loss)
    backward_with(expected)
    assert_same_grads(mine, theirs)
    assert teacher_x.grad is None and teacher_w.grad is None


def test_functional_forms_match_the_modules():
    torch.manual_seed(6)
    w, b = head(True)
    x = leaf(2 * PAIRS, SEQ, HIDDEN)
    target = labels(2 * PAIRS, -100)
    module_loss, _ = LigerFusedLinearDPOLoss(use_ref_model=False, chunk_size=2)(w, x, target, b)
    functional_loss, _ = functional.liger_fused_linear_dpo(
        x, w, target, b, None, None, None, -100, 0.1, False, True, False, False, 2
    )
    assert_close(functional_loss, module_loss)
    expected_names = {"dpo", "orpo", "cpo", "simpo", "kto", "grpo", "jsd", "cosine"}
    assert {name.removeprefix("liger_fused_linear_") for name in functional.__all__} == expected_names
    assert all(callable(getattr(functional, name)) for name in functional.__all__)


def test_half_precision_inputs_give_gradients_in_their_dtypes():
    torch.manual_seed(7)
    x = torch.randn(2 * PAIRS, SEQ, HIDDEN, dtype=torch.bfloat16, requires_grad=True)
    w = (torch.randn(VOCAB, HIDDEN) * 0.3).to(torch.bfloat16).requires_grad_(True)
    target = labels(2 * PAIRS, -100)
    loss, _ = LigerFusedLinearSimPOLoss(chunk_size=2)(w, x, target)
    loss.backward()
    assert loss.dtype == torch.float32 and x.grad.dtype == torch.bfloat16 and w.grad.dtype == torch.bfloat16
    expected, _ = ref.simpo(
        x.detach().double().requires_grad_(True), w.detach().double(), None, target,
        beta=0.1, alpha=1.0, gamma=0.5, label_smoothing=0.0, ignore_index=-100,
    )  # fmt: skip
    torch.testing.assert_close(loss.double(), expected, rtol=2e-2, atol=2e-2)


def test_no_grad_call_computes_the_loss_without_gradients():
    torch.manual_seed(8)
    w, _ = head(False)
    x = leaf(2 * PAIRS, SEQ, HIDDEN)
    target = labels(2 * PAIRS, -100)
    with torch.no_grad():
        loss, _ = LigerFusedLinearCPOLoss(chunk_size=1)(w, x, target)
    expected, _ = ref.cpo(
        x, w, None, target, beta=0.1, alpha=1.0, label_smoothing=0.0, loss_type="sigmoid", ignore_index=-100
    )
    assert not loss.requires_grad
    assert_close(loss, expected)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: LigerFusedLinearDPOLoss(loss_type="aot"), "loss_type"),
        (lambda: LigerFusedLinearGRPOLoss(loss_type="ppo"), "loss_type"),
        (lambda: LigerFusedLinearJSDLoss(temperature=0), "temperature"),
        (
            lambda: LigerFusedLinearDPOLoss(use_ref_model=False)(
                torch.randn(VOCAB, HIDDEN), torch.randn(3, SEQ, HIDDEN), torch.zeros(3, SEQ, dtype=torch.long)
            ),
            "even",
        ),
        (
            lambda: LigerFusedLinearORPOLoss()(
                torch.randn(VOCAB, HIDDEN + 1), torch.randn(2, SEQ, HIDDEN), torch.zeros(2, SEQ, dtype=torch.long)
            ),
            "hidden",
        ),
        (
            lambda: LigerFusedLinearGRPOLoss(loss_type="dr_grpo")(
                torch.randn(2, SEQ, HIDDEN),
                torch.randn(VOCAB, HIDDEN),
                torch.zeros(2, SEQ, dtype=torch.long),
                torch.ones(2, SEQ),
                torch.ones(2),
            ),
            "max_completion_length",
        ),
    ],
)
def test_bad_arguments_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_grpo_takes_the_keywords_trl_passes():
    """TRL's GRPOTrainer builds and calls the loss with these keywords (TRL 1.9)."""
    torch.manual_seed(9)
    rows = 4
    w, b = head(True)
    loss_fn = LigerFusedLinearGRPOLoss(
        beta=0.04, epsilon_low=0.2, epsilon_high=0.28, temperature=1.0, use_ref_model=True, loss_type="dapo",
        max_completion_length=SEQ, importance_sampling_level="token", delta=None, use_bias_correction_kl=False,
        sapo_temperature_pos=1.0, sapo_temperature_neg=1.05, vespo_k_pos=2.0, vespo_lambda_pos=3.0, vespo_k_neg=3.0,
        vespo_lambda_neg=2.0,
    )  # fmt: skip
    x = leaf(rows, SEQ, HIDDEN)
    ids = torch.randint(0, VOCAB, (rows, SEQ))
    mask = torch.ones(rows, SEQ)
    advantages = torch.randn(rows, dtype=DTYPE)
    with torch.no_grad():
        policy = torch.log_softmax(ref.full_logits(x, w, b), -1).gather(-1, ids[..., None])[..., 0]
    ratio = torch.rand(rows, SEQ, dtype=DTYPE) + 0.5
    loss, metrics = loss_fn(
        _input=x, lin_weight=w, selected_token_ids=ids, attention_mask=mask, advantages=advantages, bias=b,
        old_per_token_logps=policy, ref_per_token_logps=policy - 0.1, vllm_is_ratio=ratio,
        num_items_in_batch=torch.tensor(40.0),
    )  # fmt: skip
    # on-policy and unclipped: the policy term is -A * ratio per token, the KL term exp(-0.1) + 0.1 - 1;
    # dapo divides by the trainer's token count, num_items_in_batch
    expected = (-(advantages[:, None] * ratio) + 0.04 * (math.exp(-0.1) + 0.1 - 1)).sum() / 40.0
    assert_close(loss, expected)
    assert len(metrics) == 2
    assert_close(metrics[0], torch.tensor(math.exp(-0.1) + 0.1 - 1, dtype=DTYPE))


def test_kto_takes_preference_labels_as_a_list():
    torch.manual_seed(10)
    w, _ = head(False)
    x = leaf(3, SEQ, HIDDEN)
    target = labels(3, -100)
    loss_fn = LigerFusedLinearKTOLoss(use_ref_model=False, chunk_size=2)
    from_list, _ = loss_fn(x, w, target, preference_labels=[True, False, True])
    from_tensor, _ = loss_fn(x, w, target, preference_labels=torch.tensor([True, False, True]))
    assert_close(from_list, from_tensor)


def test_fp32_head_over_bf16_hidden_states():
    """An LM head kept in fp32 under bf16 activations (as TRL's cast_lm_head_to_fp32 does) trains."""
    torch.manual_seed(11)
    x = torch.randn(2 * PAIRS, SEQ, HIDDEN, dtype=torch.bfloat16, requires_grad=True)
    w = (torch.randn(VOCAB, HIDDEN) * 0.3).requires_grad_(True)
    target = labels(2 * PAIRS, -100)
    loss, _ = LigerFusedLinearDPOLoss(use_ref_model=False, chunk_size=2)(w, x, target)
    loss.backward()
    assert x.grad.dtype == torch.bfloat16 and w.grad.dtype == torch.float32
    expected, _ = ref.dpo(
        x.detach().double(), w.detach().double(), None, target, beta=0.1, loss_type="sigmoid", ignore_index=-100
    )
    torch.testing.assert_close(loss.double(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(3,), (2, 4), (4, 1)])
def test_grpo_refuses_an_is_ratio_of_another_shape(shape):
    batch, seq, hidden, vocab = 2, 3, 4, 5
    with pytest.raises(ValueError, match="vllm_is_ratio must be"):
        LigerFusedLinearGRPOLoss()(
            torch.randn(batch, seq, hidden),
            torch.randn(vocab, hidden),
            torch.randint(0, vocab, (batch, seq)),
            torch.ones(batch, seq),
            torch.randn(batch),
            vllm_is_ratio=torch.ones(shape),
        )


@pytest.mark.parametrize("ratio_shape", [(5,), (5, 1), (5, SEQ)])
def test_vespo_folds_the_is_ratio_into_its_gamma_weights(ratio_shape):
    torch.manual_seed(5)
    rows = 5
    w, b = head(True, scale=0.5)
    mine, theirs = twins(x=leaf(rows, SEQ, HIDDEN), w=w, b=b)
    ids = torch.randint(0, VOCAB, (rows, SEQ))
    mask = torch.ones(rows, SEQ)
    mask[1, 2:] = 0
    advantages = torch.randn(rows, dtype=DTYPE)
    with torch.no_grad():
        policy = torch.log_softmax(ref.full_logits(theirs["x"], w, b), -1).gather(-1, ids[..., None])[..., 0]
    old = policy + 0.05 * torch.randn_like(policy)
    ratio = torch.rand(*ratio_shape, dtype=DTYPE) + 0.5
    vespo = (1.5, 2.5, 2.0, 1.5)
    loss, metrics = LigerFusedLinearGRPOLoss(
        beta=0.0, loss_type="vespo", chunk_size=2, use_ref_model=False,
        vespo_k_pos=vespo[0], vespo_lambda_pos=vespo[1], vespo_k_neg=vespo[2], vespo_lambda_neg=vespo[3],
    )(mine["x"], mine["w"], ids, mask, advantages, mine["b"], old_per_token_logps=old, vllm_is_ratio=ratio)  # fmt: skip
    expected, expected_metrics = ref.grpo(
        theirs["x"], theirs["w"], theirs["b"], ids, mask, advantages, beta=0.0, eps_low=0.2, eps_high=0.2,
        loss_type="vespo", old=old, is_ratio=ratio, vespo=vespo,
    )  # fmt: skip
    assert_close(loss, expected, 1e-6)
    assert_close(metrics[-1], expected_metrics[-1])
    backward_with(loss)
    backward_with(expected)
    assert_same_grads({"x": mine["x"], "w": mine["w"], "b": mine["b"]}, theirs, 1e-6)


def test_get_gamma_weights_is_one_on_policy_and_detached():
    from liger_kernel.chunked_loss.grpo_loss import get_gamma_weights

    torch.manual_seed(6)
    adv = torch.tensor([1.0, -1.0, 0.0])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    on_policy = torch.zeros(3, 3, requires_grad=True)
    phi = get_gamma_weights(adv, on_policy, mask)
    assert phi.shape == (3, 1) and not phi.requires_grad
    torch.testing.assert_close(phi, torch.ones(3, 1))  # phi(1) = 1 whatever k and lambda
    log_ratio = torch.randn(3, 3)
    torch.testing.assert_close(
        get_gamma_weights(adv, log_ratio, mask, None, 2.0, 3.0, 3.0, 2.0),
        ref.gamma_weights(adv, log_ratio, mask, None, 2.0, 3.0, 3.0, 2.0),
    )


def test_grpo_refuses_sequence_level_weights_for_token_level_loss_types():
    for loss_type in ("cispo", "sapo", "vespo"):
        with pytest.raises(ValueError, match="importance_sampling_level='token'"):
            LigerFusedLinearGRPOLoss(loss_type=loss_type, importance_sampling_level="sequence")


def test_grpo_functional_takes_the_vespo_parameters_before_num_items_in_batch():
    """0.8.5's positional order: ..., use_bias_correction_kl, vespo_k_pos, ..., vespo_lambda_neg, num_items_in_batch."""
    import inspect

    names = list(inspect.signature(functional.liger_fused_linear_grpo).parameters)
    assert names[-6:] == [
        "use_bias_correction_kl", "vespo_k_pos", "vespo_lambda_pos", "vespo_k_neg", "vespo_lambda_neg",
        "num_items_in_batch",
    ]  # fmt: skip


def test_a_ppo_loss_subclasses_the_ppo_base_as_with_0_8_5():
    """A loss written against 0.8.5's LigerFusedLinearPPOBase: its own ppo_loss_fn, forward and backward."""
    from liger_kernel.chunked_loss.fused_linear_ppo import LigerFusedLinearPPOBase

    class MeanLogProb(LigerFusedLinearPPOBase):
        @staticmethod
        def ppo_loss_fn(per_token_logps, attention_mask, advantages, full_attention_mask, **kwargs):
            loss = -(per_token_logps * attention_mask * advantages[:, None]).sum() / full_attention_mask.sum()
            return loss, [(attention_mask.sum() / full_attention_mask.sum()).detach()]

        @classmethod
        def forward(cls, ctx, _input, weight, selected_token_ids, attention_mask, advantages, bias=None, chunk_size=1):
            return super().forward(
                cls=cls, ctx=ctx, _input=_input, weight=weight, selected_token_ids=selected_token_ids,
                attention_mask=attention_mask, advantages=advantages, bias=bias, chunk_size=chunk_size,
            )  # fmt: skip

        @staticmethod
        def backward(ctx, grad_output, *grad_metrics):
            grads = LigerFusedLinearPPOBase.backward(ctx, grad_output)
            return (*grads[:6], None)

    torch.manual_seed(7)
    rows = 3
    w, b = head(True)
    mine, theirs = twins(x=leaf(rows, SEQ, HIDDEN), w=w, b=b)
    ids = torch.randint(0, VOCAB, (rows, SEQ))
    mask = torch.ones(rows, SEQ)
    mask[0, 3:] = 0
    adv = torch.randn(rows, dtype=DTYPE)
    loss, metrics = MeanLogProb.apply(mine["x"], mine["w"], ids, mask, adv, mine["b"], 2)
    logps = torch.log_softmax(ref.full_logits(theirs["x"], theirs["w"], theirs["b"]), -1).gather(-1, ids[..., None])
    expected = -(logps[..., 0] * mask * adv[:, None]).sum() / mask.sum()
    assert_close(loss, expected)
    assert_close(metrics[0], torch.tensor(1.0, dtype=DTYPE))
    backward_with(loss)
    backward_with(expected)
    assert_same_grads({"x": mine["x"], "w": mine["w"], "b": mine["b"]}, theirs)


@pytest.mark.parametrize("module", [LigerFusedLinearJSDLoss, LigerFusedLinearCosineSimilarityLoss])
def test_distillation_takes_batch_seq_hidden_inputs_as_trl_gkd_passes(module):
    """TRL's GKD trainer passes (batch, seq, hidden) hidden states and (batch, seq) labels."""
    torch.manual_seed(8)
    batch, teacher_hidden = 2, 6
    w, b = head(True)
    mine, theirs = twins(x=leaf(batch, SEQ, HIDDEN), w=w, b=b)
    teacher_x = leaf(batch, SEQ, teacher_hidden)
    teacher_w = leaf(VOCAB, teacher_hidden, scale=0.3)
    target = labels(batch, -100)
    loss_fn = module(weight_hard_loss=0.0, weight_soft_loss=1.0, beta=0.4, chunk_size=3)
    loss = loss_fn(mine["x"], mine["w"], teacher_x, teacher_w, target, mine["b"])
    rows_fn = ref.jsd_rows if module is LigerFusedLinearJSDLoss else ref.cosine_rows
    expected, _, _ = ref.distillation(
        theirs["x"].reshape(-1, HIDDEN), theirs["w"], theirs["b"], teacher_x.reshape(-1, teacher_hidden), teacher_w,
        None, target.reshape(-1), rows_fn=lambda s, t: rows_fn(s, t, 0.4), w_hard=0.0, w_soft=1.0, ignore_index=-100,
        temperature=1.0,
    )  # fmt: skip
    assert_close(loss, expected)
    backward_with(loss)
    backward_with(expected)
    assert_same_grads(mine, theirs)
    assert mine["x"].grad.shape == (batch, SEQ, HIDDEN)
