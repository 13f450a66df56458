"""TRL's SFTTrainer with use_liger_kernel=True: plain and DFT (``loss_type="dft"``)
losses equal the unpatched run's (rel 1e-4), token accuracy is logged, and a
``peft_config`` with LoRA on every linear trains.

Written against TRL's public SFT API only, so that the same file runs on the
newest TRL (the ``integrations-latest`` environment) as on the ``test`` one.
Up to TRL 1.12 the loss is Liger's fused linear cross-entropy, to which TRL
passes ``use_token_scaling`` (DFT) and ``return_token_accuracy``; later
releases compute the loss with a fused head of their own and ask Liger for the
layer kernels only (``liger_kernel_config={"fused_linear_cross_entropy": False}``)."""

from __future__ import annotations

import pytest
from tiny_models import build, count_op_calls, word_tokenizer

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

from liger_kernel.transformers import LigerSwiGLUMLP, revert_liger_kernel_patches  # noqa: E402

RTOL = 1e-4
STEPS = 3


def _data():
    return datasets.Dataset.from_dict(
        {
            "prompt": ["the cat", "a dog", "the mat", "red cat"],
            "completion": [" sat on the mat", " ran fast", " is red", " is slow on a mat"],
        }
    )


def _train(tmp_path, use_liger_kernel: bool, peft_config=None, **config):
    args = trl.SFTConfig(
        output_dir=str(tmp_path / ("liger" if use_liger_kernel else "stock")),
        use_liger_kernel=use_liger_kernel,
        max_steps=STEPS,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        max_length=32,
        bf16=False,  # TRL's default autocast would round the stock run's logits, not the fused loss
        disable_tqdm=True,
        **config,
    )
    trainer = trl.SFTTrainer(
        model=build("llama", device="cpu"),
        args=args,
        train_dataset=_data(),
        processing_class=word_tokenizer(),
        peft_config=peft_config,
    )
    with count_op_calls() as calls:
        trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == STEPS
    if use_liger_kernel:
        assert calls["rms_norm"] and calls["rope"] and calls["swiglu"]
        assert calls["fused_linear_cross_entropy"] == (STEPS if _liger_loss(trainer) else 0)
    return trainer, logs, calls


def _liger_loss(trainer) -> bool:
    """Whether this TRL release lets Liger's fused linear cross-entropy compute the loss."""
    return (trainer.args.liger_kernel_config or {}).get("fused_linear_cross_entropy", True)


def _compare(tmp_path, **config) -> tuple[list[dict], list[dict]]:
    monkey = pytest.MonkeyPatch.context()
    with monkey as m:
        m.setenv("HF_HUB_OFFLINE", "1")
        trainer, liger_logs, _ = _train(tmp_path, True, **config)
        assert all(type(layer.mlp) is LigerSwiGLUMLP for layer in trainer.model.model.layers)
        revert_liger_kernel_patches()
        _, stock_logs, stock_calls = _train(tmp_path, False, **config)
    assert not stock_calls
    assert [e["loss"] for e in liger_logs] == pytest.approx([e["loss"] for e in stock_logs], rel=RTOL)
    return liger_logs, stock_logs


def test_sft_loss_matches_and_token_accuracy_is_logged(tmp_path):
    liger_logs, stock_logs = _compare(tmp_path)
    accuracy = [e["mean_token_accuracy"] for e in liger_logs]
    assert accuracy == pytest.approx([e["mean_token_accuracy"] for e in stock_logs], abs=1e-6)


def test_sft_dft_loss_trains_the_dft_objective(tmp_path):
    dft_logs, _ = _compare(tmp_path, loss_type="dft")
    # the DFT objective, not cross-entropy: the first step (same weights) differs from the nll run's
    revert_liger_kernel_patches()
    _, nll_logs, _ = _train(tmp_path / "nll", True)
    assert dft_logs[0]["loss"] != pytest.approx(nll_logs[0]["loss"], rel=0.05)


def test_sft_with_a_lora_peft_config(tmp_path):
    peft = pytest.importorskip("peft")
    lora = peft.LoraConfig(r=4, target_modules="all-linear")
    trainer, logs, calls = _train(tmp_path, True, peft_config=lora)
    layers = trainer.model.get_base_model().model.layers
    assert all(type(layer.mlp) is LigerSwiGLUMLP for layer in layers)
    # two layers a step, computed again in the backward under TRL's default activation checkpointing
    assert calls["swiglu"] in (STEPS * 2, STEPS * 2 * 2)
    assert all(e["loss"] > 0 for e in logs)
