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


@pytest.mark.parametrize("family", ["hunyuan_v1_moe", "deepseek_v3"])
def test_trainer_use_liger_kernel_on_a_moe_family(tmp_path, family):
    """The Trainer converts a built MoE model in place: its norms, shared and
    dense MLPs and the experts run through the ops, and it trains as stock."""
    with count_op_calls() as calls:
        model, liger_losses = _train(tmp_path, use_liger_kernel=True, model=build(family, device="cpu"))
    norms = sum(isinstance(m, LigerRMSNorm) for m in model.modules())
    assert norms == 9  # 2 layers x (2 + 2 attention norms) + the final norm
    assert any(isinstance(m, LigerSwiGLUMLP) for m in model.modules())
    assert calls["fused_linear_cross_entropy"] == 3 and calls["rms_norm"] == 3 * norms
    assert calls["swiglu"] >= 3 * 2  # the shared or dense MLP of each layer, each step
    moe_layers = sum(type(m).__name__.endswith("Experts") for m in model.modules())
    assert moe_layers and calls["fused_moe"] == 3 * moe_layers  # each MoE layer's experts, each step
    assert calls["rope"] == (3 * 2 if family == "hunyuan_v1_moe" else 0)  # DeepSeek's RoPE stays stock

    from liger_kernel.transformers import revert_liger_kernel_patches

    revert_liger_kernel_patches()
    with count_op_calls() as stock_calls:
        _, stock_losses = _train(tmp_path, use_liger_kernel=False, model=build(family, device="cpu"))
    assert not stock_calls
    assert len(liger_losses) == len(stock_losses) == 3
    assert liger_losses == pytest.approx(stock_losses, rel=1e-4)


@pytest.mark.parametrize("family", ["mixtral", "qwen3_moe", "deepseek_v2", "deepseek_v4"])
def test_trainer_use_liger_kernel_on_the_other_moe_families(tmp_path, family):
    """The remaining MoE families through the Trainer's patching call: the
    fused loss and the norms run through the ops, each MoE layer's experts
    through fused_moe where the family patches them (DeepSeek-V4's clamped
    experts stay stock), and the model trains as stock (router loss included)."""
    from liger_kernel.transformers.monkey_patch import FAMILIES

    with count_op_calls() as calls:
        model, liger_losses = _train(tmp_path, use_liger_kernel=True, model=build(family, device="cpu"))
    assert calls["fused_linear_cross_entropy"] == 3 and calls["rms_norm"]
    moe_layers = sum(type(m).__name__.endswith("Experts") for m in model.modules())
    assert moe_layers
    assert calls["fused_moe"] == (3 * moe_layers if FAMILIES[family].liger_activation else 0)

    from liger_kernel.transformers import revert_liger_kernel_patches

    revert_liger_kernel_patches()
    _, stock_losses = _train(tmp_path, use_liger_kernel=False, model=build(family, device="cpu"))
    assert len(liger_losses) == len(stock_losses) == 3
    assert liger_losses == pytest.approx(stock_losses, rel=1e-4)


def test_trainer_use_liger_kernel_on_qwen3_next(tmp_path):
    """The hybrid family (Gated-DeltaNet and full-attention layers, experts with a
    shared expert, router loss) through the Trainer's own patching call."""
    from liger_kernel.transformers.rms_norm import LigerRMSNormForQwen3Next

    with count_op_calls() as calls:
        model, liger_losses = _train(tmp_path, use_liger_kernel=True, model=build("qwen3_next", device="cpu"))
    layers = model.model.layers
    assert all(type(layer.input_layernorm) is LigerRMSNormForQwen3Next for layer in layers)
    assert type(layers[0].mlp) is LigerSwiGLUMLP and type(layers[1].mlp.shared_expert) is LigerSwiGLUMLP
    assert type(layers[0].linear_attn.norm).__name__ == "Qwen3NextRMSNormGated"  # the gated norm stays stock
    # per step: 2 x 2 layer norms + q/k norms of the attention layer + final norm; rope is off by default
    assert calls["fused_linear_cross_entropy"] == 3 and calls["rms_norm"] == 3 * 7
    assert calls["swiglu"] >= 3 * 2 and not calls["rope"]

    from liger_kernel.transformers import revert_liger_kernel_patches

    revert_liger_kernel_patches()
    _, stock_losses = _train(tmp_path, use_liger_kernel=False, model=build("qwen3_next", device="cpu"))
    assert len(liger_losses) == len(stock_losses) == 3
    assert liger_losses == pytest.approx(stock_losses, rel=1e-4)


def test_trainer_use_liger_kernel_on_qwen3_5_moe(tmp_path):
    """Qwen3.5-MoE's text model (model type qwen3_5_moe_text: Gated-DeltaNet and
    gated-attention layers, experts with a gated shared expert in every layer,
    router loss) through the Trainer's own patching call."""
    from liger_kernel.transformers.rms_norm import LigerRMSNormForQwen3Next

    model = build("qwen3_5_moe", device="cpu")
    assert model.config.model_type == "qwen3_5_moe_text"
    with count_op_calls() as calls:
        model, liger_losses = _train(tmp_path, use_liger_kernel=True, model=model)
    layers = model.model.layers
    assert all(type(layer.input_layernorm) is LigerRMSNormForQwen3Next for layer in layers)
    assert all(type(layer.mlp.shared_expert) is LigerSwiGLUMLP for layer in layers)
    assert type(layers[0].linear_attn.norm).__name__ == "Qwen3_5MoeRMSNormGated"  # the gated norm stays stock
    # per step: 2 x 2 layer norms + q/k norms of the attention layer + final norm; rope is off by default
    assert calls["fused_linear_cross_entropy"] == 3 and calls["rms_norm"] == 3 * 7
    assert calls["fused_moe"] == 3 * 2 and calls["swiglu"] >= 3 * 2 and not calls["rope"]

    from liger_kernel.transformers import revert_liger_kernel_patches

    revert_liger_kernel_patches()
    _, stock_losses = _train(tmp_path, use_liger_kernel=False, model=build("qwen3_5_moe", device="cpu"))
    assert len(liger_losses) == len(stock_losses) == 3
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
