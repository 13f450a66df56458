"""The vision-language families against stock Transformers, on tiny random
models with random pixels, on the CPU (torch backend): logits, loss and the
gradient of every parameter, fp32, for the class-level patch (``model=None``,
then build) and the instance patch (``model=``); Trainer with
``use_liger_kernel=True`` on two families."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect

import pytest
import torch
from tiny_models import count_op_calls
from tiny_vision_models import TINY, build_vision_language, tiny_vision_config, vision_batch

from liger_kernel.transformers import (
    MODEL_TYPE_TO_APPLY_LIGER_FN,
    _apply_liger_kernel_to_instance,
    revert_liger_kernel_patches,
)
from liger_kernel.transformers.layer_norm import LigerLayerNorm
from liger_kernel.transformers.monkey_patch import VISION_LANGUAGE, VISION_ROPE_FUNCTIONS
from liger_kernel.transformers.rms_norm import LigerRMSNorm
from liger_kernel.transformers.swiglu import LigerSwiGLUMLP

STEPS = 2
#: per element; the Gemma families' offset norms and softcap put some gradients
#: a few float32 roundings apart
TOL = dict(rtol=1e-4, atol=2e-5)
FAMILIES = tuple(TINY)

#: the ops each family's default patch routes to, besides the fused loss (one call per step)
OPS = {
    "qwen2_vl": {"layer_norm", "rms_norm", "rope", "swiglu"},
    "qwen2_5_vl": {"rms_norm", "rope", "swiglu"},  # vision: RMSNorm and the biased SwiGLU MLP
    "qwen3_vl": {"layer_norm", "rms_norm", "rope"},  # swiglu defaults to False, as in 0.8.5
    "qwen3_vl_moe": {"layer_norm", "rms_norm", "rope", "fused_moe"},
    "qwen3_5": {"layer_norm", "rms_norm", "swiglu"},  # rope defaults to False, as in 0.8.5
    "qwen3_5_moe": {"layer_norm", "rms_norm", "swiglu", "fused_moe"},
    "glm4v": {"rms_norm", "swiglu"},  # GLM's interleaved RoPE stays stock
    "glm4v_moe": {"rms_norm", "swiglu", "fused_moe"},
    "gemma3": {"layer_norm", "rms_norm", "rope", "geglu"},
    "gemma4": {"rms_norm", "geglu"},  # its one-tensor RoPE stays stock; layer_norm defaults to False
    "paligemma": {"layer_norm", "rms_norm", "rope", "geglu"},
    "llava": {"layer_norm", "rms_norm", "rope", "swiglu"},
    "internvl": {"layer_norm", "rms_norm", "rope", "swiglu"},
    "smolvlm": {"layer_norm", "rms_norm", "rope", "swiglu"},
    "mllama": {"layer_norm", "rms_norm", "rope", "swiglu"},
    "llama4": {"layer_norm", "rms_norm", "llama4_rope", "swiglu"},
}


def _forward_of(family: str):
    module, attr = VISION_LANGUAGE[family].forward.split(":")
    return getattr(importlib.import_module(module), attr)


def _train(model, family: str, steps: int = STEPS) -> list[tuple[float, dict[str, torch.Tensor]]]:
    """Loss and gradients of each of ``steps`` SGD steps on fixed batches."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    history = []
    for step in range(steps):
        optimizer.zero_grad()
        loss = model(**vision_batch(family, seed=step)).loss
        loss.backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        history.append((loss.item(), grads))
        optimizer.step()
    return history


def _assert_same_training(stock_history, patched_history) -> None:
    for (stock_loss, stock_grads), (patched_loss, patched_grads) in zip(stock_history, patched_history, strict=True):
        assert patched_loss == pytest.approx(stock_loss, rel=1e-5)
        assert stock_grads.keys() == patched_grads.keys()
        for name, grad in stock_grads.items():
            torch.testing.assert_close(patched_grads[name], grad, **TOL, msg=lambda m, n=name: f"{n}: {m}")


def _eval(model, family: str):
    model.eval()
    with torch.no_grad():
        return model(**vision_batch(family, seed=7))


def test_every_vision_language_family_has_a_tiny_model():
    assert set(TINY) == set(VISION_LANGUAGE) == set(OPS)
    for spec in VISION_LANGUAGE.values():
        for model_type in spec.model_types:
            assert MODEL_TYPE_TO_APPLY_LIGER_FN[model_type].__name__ == spec.function_name
        assert tiny_vision_config(spec.name).model_type == spec.model_types[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_patched_classes_train_like_stock(family):
    stock = build_vision_language(family)
    stock_eval = _eval(stock, family)
    MODEL_TYPE_TO_APPLY_LIGER_FN[family]()
    patched = build_vision_language(family, seed=1)
    patched.load_state_dict(stock.state_dict())
    assert type(patched).forward is _forward_of(family)

    # evaluation: the stock logits and loss, in the family's Liger output
    got = _eval(patched, family)
    torch.testing.assert_close(got.logits, stock_eval.logits, **TOL)
    assert got.loss.item() == pytest.approx(stock_eval.loss.item(), rel=1e-5)
    assert isinstance(got, type(stock_eval)) and type(got).__name__.startswith("Liger")
    assert got.token_accuracy is None and got.predicted_tokens is None

    with count_op_calls() as calls:
        patched_history = _train(patched, family)
    assert calls.pop("fused_linear_cross_entropy") == STEPS
    assert set(calls) == OPS[family]
    _assert_same_training(_train(stock, family), patched_history)


@pytest.mark.parametrize("family", FAMILIES)
def test_instance_patch_converts_modules_and_trains_like_stock(family):
    model = build_vision_language(family)
    reference = copy.deepcopy(model)
    stock_eval = _eval(reference, family)
    stock_history = _train(copy.deepcopy(model), family)
    params = dict(model.named_parameters())
    keys = model.state_dict().keys()

    _apply_liger_kernel_to_instance(model=model)

    assert dict(model.named_parameters()) == params  # the same parameter objects
    assert model.state_dict().keys() == keys
    kinds = {type(m) for m in model.modules()}
    assert LigerRMSNorm in kinds or any(issubclass(k, LigerRMSNorm) for k in kinds)
    if "layer_norm" in OPS[family]:
        assert torch.nn.LayerNorm not in kinds and LigerLayerNorm in kinds
    got = _eval(model, family)
    torch.testing.assert_close(got.logits, stock_eval.logits, **TOL)
    assert got.loss.item() == pytest.approx(stock_eval.loss.item(), rel=1e-5)

    with count_op_calls() as calls:
        patched_history = _train(model, family)
    assert calls.pop("fused_linear_cross_entropy") == STEPS
    assert set(calls) == OPS[family]
    _assert_same_training(stock_history, patched_history)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "llava"])
def test_plain_cross_entropy_and_switches_off(family):
    stock = build_vision_language(family)
    switches = {"cross_entropy": True, "fused_linear_cross_entropy": False, "rms_norm": False, "swiglu": False}
    if "layer_norm" in inspect.signature(MODEL_TYPE_TO_APPLY_LIGER_FN[family]).parameters:
        switches["layer_norm"] = False
    MODEL_TYPE_TO_APPLY_LIGER_FN[family](**switches)
    patched = build_vision_language(family, seed=1)
    patched.load_state_dict(stock.state_dict())
    assert type(patched).forward is type(stock).forward
    assert not any(isinstance(m, LigerRMSNorm | LigerSwiGLUMLP | LigerLayerNorm) for m in patched.modules())
    with count_op_calls() as calls:
        patched_history = _train(patched, family)
    config = tiny_vision_config(family)
    rope_layers = config.text_config.num_hidden_layers
    if _vision_rope_function(family):  # rope stays on: the tower's attention layers rotate by the op too
        rope_layers += config.vision_config.depth
    assert dict(calls) == {"cross_entropy": STEPS, "rope": STEPS * rope_layers}
    _assert_same_training(_train(stock, family), patched_history)


def _vision_rope_function(family: str) -> str | None:
    modeling = importlib.import_module(VISION_LANGUAGE[family].module)
    names = [name for name in VISION_ROPE_FUNCTIONS if callable(getattr(modeling, name, None))]
    return names[0] if names else None


@pytest.mark.parametrize("family", [f for f in FAMILIES if _vision_rope_function(f)])
def test_rope_switch_replaces_the_vision_towers_rotary_function(family):
    modeling = importlib.import_module(VISION_LANGUAGE[family].module)
    name = _vision_rope_function(family)
    stock = getattr(modeling, name)
    MODEL_TYPE_TO_APPLY_LIGER_FN[family](rope=False)
    assert getattr(modeling, name) is stock
    MODEL_TYPE_TO_APPLY_LIGER_FN[family](rope=True)
    assert getattr(modeling, name) is VISION_ROPE_FUNCTIONS[name]
    revert_liger_kernel_patches()
    assert getattr(modeling, name) is stock


def test_rope_where_the_text_rope_is_not_the_ops_patches_the_tower_alone(caplog):
    """GLM-4V rotates interleaved pairs in its text decoder (stock) and halves in its
    vision tower (the vision_rope adapter over the rope op): every rope call is the tower's."""
    family = "glm4v"
    stock = build_vision_language(family)
    with caplog.at_level("WARNING", logger="liger_kernel"):
        MODEL_TYPE_TO_APPLY_LIGER_FN[family](rope=True)
    assert "patches the vision tower's rotary embedding" in caplog.text
    patched = build_vision_language(family, seed=1)
    patched.load_state_dict(stock.state_dict())
    with count_op_calls() as calls:
        patched_history = _train(patched, family)
    assert calls["rope"] == STEPS * tiny_vision_config(family).vision_config.depth
    _assert_same_training(_train(stock, family), patched_history)


def test_loss_options_and_skip_logits():
    family = "qwen2_vl"
    MODEL_TYPE_TO_APPLY_LIGER_FN[family]()
    model = build_vision_language(family)
    data = vision_batch(family)
    model.train()
    out = model(**data, return_token_accuracy=True, return_predicted_tokens=True)
    assert out.logits is None and out.token_accuracy is not None
    assert out.predicted_tokens.shape == (data["input_ids"].numel(),)
    model.eval()
    with torch.no_grad():
        evaluated = model(**data, return_token_accuracy=True)
        kept = model(**data, skip_logits=True)
    assert evaluated.logits is not None and evaluated.token_accuracy is not None
    assert kept.logits is None and kept.loss.item() == pytest.approx(evaluated.loss.item(), rel=1e-5)
    with pytest.raises(ValueError, match="skip_logits=True needs labels"):
        model(**{k: v for k, v in data.items() if k != "labels"}, skip_logits=True)


def test_moe_family_adds_the_router_loss():
    family = "qwen3_vl_moe"
    stock = build_vision_language(family)
    data = vision_batch(family)
    stock.train()
    expected = stock(**data)
    MODEL_TYPE_TO_APPLY_LIGER_FN[family]()
    got = stock(**data)  # the class forward is patched: the same model, the fused loss
    assert got.aux_loss is not None and expected.aux_loss is not None
    torch.testing.assert_close(got.aux_loss, expected.aux_loss)
    assert got.loss.item() == pytest.approx(expected.loss.item(), rel=1e-5)
    assert got.router_logits is not None


def test_pixtral_tower_of_llava_takes_its_own_patch():
    import transformers
    from tiny_vision_models import _TEXT, IMAGE_TOKEN

    config = transformers.LlavaConfig(
        text_config={**_TEXT, "model_type": "llama"},
        vision_config={
            "model_type": "pixtral",
            "hidden_size": 16,
            "intermediate_size": 24,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "head_dim": 8,
            "image_size": 4,
            "patch_size": 2,
            "hidden_act": "silu",
        },
        image_token_index=IMAGE_TOKEN,
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
    )
    torch.manual_seed(0)
    model = transformers.LlavaForConditionalGeneration._from_config(config, attn_implementation="eager").float()
    data = vision_batch("llava")
    data["image_sizes"] = torch.tensor([[4, 4]])
    model.eval()
    with torch.no_grad():
        expected = model(**data)
    _apply_liger_kernel_to_instance(model=model)
    tower = model.model.vision_tower
    assert type(tower.ln_pre) is LigerRMSNorm
    assert all(type(layer.feed_forward) is LigerSwiGLUMLP for layer in tower.transformer.layers)
    with torch.no_grad(), count_op_calls() as calls:
        got = model(**data)
    torch.testing.assert_close(got.logits, expected.logits, **TOL)
    assert calls["swiglu"] == 2 + 2  # the tower's 2 layers and the language model's 2


def test_revert_restores_stock_transformers():
    family = "qwen2_vl"
    stock_cls = type(build_vision_language(family))
    stock_forward = stock_cls.forward
    MODEL_TYPE_TO_APPLY_LIGER_FN[family]()
    assert stock_cls.forward is not stock_forward
    revert_liger_kernel_patches()
    assert stock_cls.forward is stock_forward
    model = build_vision_language(family)
    assert not any(isinstance(m, LigerRMSNorm | LigerLayerNorm | LigerSwiGLUMLP) for m in model.modules())


def test_output_classes_and_forwards_of_0_8_5_exist():
    from liger_kernel.transformers.model import output_classes

    for name in output_classes._FAMILY_OUTPUTS:
        cls = getattr(output_classes, name)
        assert dataclasses.is_dataclass(cls) and {"token_accuracy", "predicted_tokens"} <= {
            f.name for f in dataclasses.fields(cls)
        }
    for family in FAMILIES:
        forward = _forward_of(family)
        parameters = inspect.signature(forward).parameters
        assert "labels" in parameters and "skip_logits" in parameters, family


def _one_batch_dataset(family: str, n: int = 3) -> list[dict[str, torch.Tensor]]:
    return [vision_batch(family, seed=i, device="cpu") for i in range(n)]


@pytest.mark.parametrize("family", ["qwen2_vl", "llava"])
def test_trainer_use_liger_kernel(tmp_path, family):
    pytest.importorskip("accelerate")
    from transformers import Trainer, TrainingArguments

    def train(use_liger_kernel: bool) -> tuple[object, list[float]]:
        model = build_vision_language(family, device="cpu")
        args = TrainingArguments(
            output_dir=str(tmp_path / str(use_liger_kernel)),
            use_liger_kernel=use_liger_kernel,
            max_steps=3,
            per_device_train_batch_size=1,
            learning_rate=1e-2,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            use_cpu=True,
            seed=0,
            dataloader_num_workers=0,
            disable_tqdm=True,
            remove_unused_columns=False,
        )
        # each dataset item is a whole two-row batch with its image
        trainer = Trainer(
            model=model, args=args, train_dataset=_one_batch_dataset(family), data_collator=lambda rows: rows[0]
        )
        trainer.train()
        return trainer.model, [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]

    with count_op_calls() as calls:
        model, liger_losses = train(True)
    assert any(isinstance(m, LigerRMSNorm) for m in model.modules())
    assert calls["fused_linear_cross_entropy"] == 3 and calls["layer_norm"] and calls["swiglu"]
    revert_liger_kernel_patches()
    with count_op_calls() as stock_calls:
        _, stock_losses = train(False)
    assert not stock_calls
    assert len(liger_losses) == len(stock_losses) == 3
    assert liger_losses == pytest.approx(stock_losses, rel=1e-4)
