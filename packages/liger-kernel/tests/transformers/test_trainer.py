"""Hugging Face Trainer with ``TrainingArguments(use_liger_kernel=True)``."""

from __future__ import annotations

import importlib.metadata

import pytest
import torch
from tiny_models import batch, build, count_op_calls

pytest.importorskip("accelerate")

from transformers import Trainer, TrainingArguments
from transformers.utils import is_liger_kernel_available

from liger_kernel.transformers import LigerRMSNorm, LigerSwiGLUMLP


def test_transformers_sees_this_distribution_as_liger_kernel():
    assert importlib.metadata.version("liger_kernel")
    assert is_liger_kernel_available()


def _dataset(n: int = 8) -> list[dict]:
    rows = []
    for i in range(n):
        one = batch(seed=i, rows=1, seq=12, device="cpu")
        rows.append({key: value[0] for key, value in one.items()})
    return rows


def _train(tmp_path, use_liger_kernel: bool, model=None, **extra_args) -> tuple[object, list[float]]:
    model = build("llama", device="cpu") if model is None else model
    args = TrainingArguments(
        output_dir=str(tmp_path / ("liger" if use_liger_kernel else "stock")),
        use_liger_kernel=use_liger_kernel,
        **extra_args,
        max_steps=3,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=_dataset())
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return trainer.model, losses


def test_trainer_use_liger_kernel_routes_through_the_ops(tmp_path):
    with count_op_calls() as calls:
        model, liger_losses = _train(tmp_path, use_liger_kernel=True)
    assert any(isinstance(m, LigerRMSNorm) for m in model.modules())
    assert any(isinstance(m, LigerSwiGLUMLP) for m in model.modules())
    # 3 steps, each one fused loss, 2 layers x 2 norms + final norm, 2 layers of rope and swiglu
    assert calls["fused_linear_cross_entropy"] == 3
    assert calls["rms_norm"] == 3 * 5
    assert calls["rope"] == 3 * 2 and calls["swiglu"] == 3 * 2

    from liger_kernel.transformers import revert_liger_kernel_patches

    revert_liger_kernel_patches()
    with count_op_calls() as stock_calls:
        _, stock_losses = _train(tmp_path, use_liger_kernel=False)
    assert not stock_calls
    assert len(liger_losses) == len(stock_losses) == 3
    assert liger_losses == pytest.approx(stock_losses, rel=1e-4)


def test_trainer_passes_liger_kernel_config_to_the_patch(tmp_path):
    config = {"rope": False, "swiglu": False, "cross_entropy": True, "fused_linear_cross_entropy": False}
    with count_op_calls() as calls:
        model, liger_losses = _train(tmp_path, use_liger_kernel=True, liger_kernel_config=config)
    assert not any(isinstance(m, LigerSwiGLUMLP) for m in model.modules())
    assert calls["cross_entropy"] == 3 and calls["rms_norm"] == 3 * 5
    assert not (calls["rope"] or calls["swiglu"] or calls["fused_linear_cross_entropy"])

    from liger_kernel.transformers import revert_liger_kernel_patches

    revert_liger_kernel_patches()
    _, stock_losses = _train(tmp_path, use_liger_kernel=False)
    assert liger_losses == pytest.approx(stock_losses, rel=1e-4)


def test_trainer_use_liger_kernel_on_a_peft_lora_model(tmp_path):
    peft = pytest.importorskip("peft")

    def lora_model():
        torch.manual_seed(1)
        lora = peft.LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False)
        return peft.get_peft_model(build("llama", device="cpu"), lora)

    with count_op_calls() as calls:
        model, liger_losses = _train(tmp_path, use_liger_kernel=True, model=lora_model())
    assert all(type(layer.mlp) is LigerSwiGLUMLP for layer in model.get_base_model().model.layers)
    assert calls["swiglu"] == 3 * 2 and calls["fused_linear_cross_entropy"] == 3

    from liger_kernel.transformers import revert_liger_kernel_patches

    revert_liger_kernel_patches()
    _, stock_losses = _train(tmp_path, use_liger_kernel=False, model=lora_model())
    assert liger_losses == pytest.approx(stock_losses, rel=1e-4)


@pytest.mark.parametrize("config", [None, {"swiglu": True}], ids=["default", "swiglu"])
def test_trainer_use_liger_kernel_on_gpt_oss(tmp_path, config):
    """GPT-OSS through the Trainer: its norms, half-width RoPE and fused loss
    (router loss kept) by default; the clamped experts gate with swiglu=True."""
    extra = {} if config is None else {"liger_kernel_config": config}
    with count_op_calls() as calls:
        model, liger_losses = _train(tmp_path, use_liger_kernel=True, model=build("gpt_oss", device="cpu"), **extra)
    assert type(model.model.norm).__name__ == "LigerRMSNormForGptOss"
    # 3 steps, each one fused loss, 2 layers x 2 norms + final norm, 2 layers of rope
    assert calls["fused_linear_cross_entropy"] == 3
    assert calls["rms_norm"] == 3 * 5 and calls["rope"] == 3 * 2
    assert bool(calls["clamped_swiglu"]) is (config is not None)

    from liger_kernel.transformers import revert_liger_kernel_patches

    revert_liger_kernel_patches()
    with count_op_calls() as stock_calls:
        _, stock_losses = _train(tmp_path, use_liger_kernel=False, model=build("gpt_oss", device="cpu"))
    assert not stock_calls
    assert len(liger_losses) == len(stock_losses) == 3
    assert liger_losses == pytest.approx(stock_losses, rel=1e-4)
