"""End-to-end training step of a ~1B-parameter Llama (or a Qwen3-MoE, or a Qwen2.5-VL), stock or patched.

The model is Llama-3.2-1B-shaped (hidden 2048, 16 layers, 32 heads, 8 KV
heads, intermediate 8192, vocabulary 128256, tied embeddings: 1.24 B
parameters), randomly initialised from its config, in bf16, trained on random
tokens. ``impl`` picks the patch applied to Transformers' Llama classes before
the model is built: none (``torch``), this project's
``liger_kernel.transformers.apply_liger_kernel_to_llama`` (``liger``), or the
peer's function of the same name (``peer``). Each impl runs in its own process,
because patching changes Transformers' classes for the whole process.

``model="qwen3_moe"`` trains a Qwen3-MoE shape instead (hidden 1024, 8
layers, 16 heads of 64, 32 experts of intermediate 512, top-4, vocabulary
151936: 735 M parameters), patched by ``apply_liger_kernel_to_qwen3_moe``:
its experts are where the MoE kernels' time goes.

``model="qwen2_5_vl"`` trains a small Qwen2.5-VL shape (text decoder: hidden
1024, 8 layers, 16 heads of 64, 4 KV heads, intermediate 2816, vocabulary
151936; vision tower: hidden 640, 8 blocks of 8 heads of 80, intermediate
1728, windowed attention with full attention in blocks 3 and 7, 14-pixel
patches, 2 x 2 merge), patched by ``apply_liger_kernel_to_qwen2_5_vl``. Each
row of the batch holds one 448 x 448 image (32 x 32 patches, 256 image tokens
after the merge) and text to ``seq`` tokens; image tokens take no loss, and
tokens/s counts every position of the rows.

``scale`` < 1 shrinks the model and the sequence for CPU smoke runs. With
``compile`` the model runs under ``torch.compile`` (``fullgraph=True`` for
torch and this project, whose ops reach the graph as ``liger::`` operators;
the peer's Functions break the graph, so it gets the default); compilation
happens in the warm-up steps, outside the timing.
"""

from __future__ import annotations

import inspect
import time
import traceback
from typing import Any

import torch

from .measure import error_text

FULL = {"hidden": 2048, "layers": 16, "heads": 32, "kv_heads": 8, "inter": 8192, "vocab": 128256, "seq": 2048}
HEAD_DIM = 64
#: the Qwen3-MoE shape: FULL's keys, its experts' sizes apart
MOE_FULL = {"hidden": 1024, "layers": 8, "heads": 16, "kv_heads": 4, "inter": 2048, "vocab": 151936, "seq": 2048}
MOE_EXPERTS = {"experts": 32, "top_k": 4, "expert_inter": 512}
#: the Qwen2.5-VL shape's text decoder (FULL's keys) and vision tower
VL_FULL = {"hidden": 1024, "layers": 8, "heads": 16, "kv_heads": 4, "inter": 2816, "vocab": 151936, "seq": 2048}
VL_VISION = {"vision_hidden": 640, "vision_depth": 8, "vision_heads": 8, "vision_inter": 1728, "image_side": 32}
PATCH, TEMPORAL_PATCH, MERGE = 14, 2, 2
MODELS = ("llama", "qwen3_moe", "qwen2_5_vl")
LABELS = {"llama": "Llama", "qwen3_moe": "Qwen3-MoE", "qwen2_5_vl": "Qwen2.5-VL"}


def model_dims(scale: float, seq: int | None = None, model: str = "llama") -> dict[str, int]:
    full = {"qwen3_moe": MOE_FULL, "qwen2_5_vl": VL_FULL}.get(model, FULL)
    hidden = max(HEAD_DIM, HEAD_DIM * round(full["hidden"] * scale / HEAD_DIM))
    heads = hidden // HEAD_DIM
    dims = {
        "hidden": hidden,
        "layers": max(2, round(full["layers"] * scale)),
        "heads": heads,
        "kv_heads": max(1, heads // 4),
        "inter": {"qwen3_moe": 2 * hidden, "qwen2_5_vl": 16 * round(full["inter"] * scale / 16)}.get(model, 4 * hidden),
        "vocab": max(256, round(full["vocab"] * scale)),
        "seq": seq or max(32, round(full["seq"] * scale)),
    }
    if model == "qwen3_moe":
        dims["experts"] = max(4, round(MOE_EXPERTS["experts"] * scale))
        dims["top_k"] = MOE_EXPERTS["top_k"] if dims["experts"] >= 8 else 2
        dims["expert_inter"] = max(16, 16 * round(MOE_EXPERTS["expert_inter"] * scale / 16))
    if model == "qwen2_5_vl":
        vision_heads = max(2, round(VL_VISION["vision_heads"] * scale))
        dims["vision_heads"] = vision_heads
        dims["vision_hidden"] = vision_heads * 80 if scale >= 1 else vision_heads * 16
        dims["vision_depth"] = max(2, round(VL_VISION["vision_depth"] * scale))
        dims["vision_inter"] = max(32, 16 * round(VL_VISION["vision_inter"] * scale / 16))
        # an even side: the 2 x 2 merge; the image tokens must leave room for text in the row
        side = max(4, 2 * round(VL_VISION["image_side"] * scale / 2))
        while (side // MERGE) ** 2 + 8 > dims["seq"]:
            side -= 2
        dims["image_side"] = side
    return dims


def build_model(dims: dict[str, int], device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    if "experts" in dims:
        return _build_moe(dims, device, dtype)
    if "vision_depth" in dims:
        return _build_vision_language(dims, device, dtype)
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=dims["hidden"],
        num_hidden_layers=dims["layers"],
        num_attention_heads=dims["heads"],
        num_key_value_heads=dims["kv_heads"],
        intermediate_size=dims["inter"],
        vocab_size=dims["vocab"],
        max_position_embeddings=max(dims["seq"], 2048),
        tie_word_embeddings=True,
        rope_theta=500000.0,
    )
    with torch.device(device):
        model = LlamaForCausalLM(config)
    return model.to(dtype).train()


def _build_moe(dims: dict[str, int], device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    config = Qwen3MoeConfig(
        hidden_size=dims["hidden"],
        num_hidden_layers=dims["layers"],
        num_attention_heads=dims["heads"],
        num_key_value_heads=dims["kv_heads"],
        head_dim=HEAD_DIM,
        intermediate_size=dims["inter"],
        moe_intermediate_size=dims["expert_inter"],
        num_experts=dims["experts"],
        num_experts_per_tok=dims["top_k"],
        decoder_sparse_step=1,
        mlp_only_layers=[],
        vocab_size=dims["vocab"],
        max_position_embeddings=max(dims["seq"], 2048),
    )
    with torch.device(device):
        model = Qwen3MoeForCausalLM(config)
    return model.to(dtype).train()


def _vision_language_config(dims: dict[str, int]) -> Any:
    from transformers import Qwen2_5_VLConfig

    vocab = dims["vocab"]
    head_dim = dims["hidden"] // dims["heads"]
    # M-RoPE's temporal, height and width sections of the head's frequencies, in Qwen2.5-VL's 2:3:3
    section = [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16]
    section[0] += head_dim // 2 - sum(section)
    depth = dims["vision_depth"]
    return Qwen2_5_VLConfig(
        text_config={
            "hidden_size": dims["hidden"],
            "num_hidden_layers": dims["layers"],
            "num_attention_heads": dims["heads"],
            "num_key_value_heads": dims["kv_heads"],
            "intermediate_size": dims["inter"],
            "vocab_size": vocab,
            "max_position_embeddings": max(dims["seq"], 2048),
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": section},
            "bos_token_id": None,
            "eos_token_id": vocab - 5,
        },
        vision_config={
            "hidden_size": dims["vision_hidden"],
            "depth": depth,
            "num_heads": dims["vision_heads"],
            "intermediate_size": dims["vision_inter"],
            "out_hidden_size": dims["hidden"],
            "patch_size": PATCH,
            "temporal_patch_size": TEMPORAL_PATCH,
            "spatial_merge_size": MERGE,
            "window_size": 8 * PATCH,
            "fullatt_block_indexes": [depth // 2 - 1, depth - 1],
        },
        # the special tokens at the top of the vocabulary, out of the random text's range
        vision_start_token_id=vocab - 4,
        vision_end_token_id=vocab - 3,
        image_token_id=vocab - 2,
        video_token_id=vocab - 1,
    )


def _build_vision_language(dims: dict[str, int], device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import Qwen2_5_VLForConditionalGeneration

    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(_vision_language_config(dims))
    return model.to(dtype).train()


def batch_inputs(
    model: torch.nn.Module, dims: dict[str, int], batch: int, device: torch.device, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """The model's inputs for one step: random tokens (and, for the vision-language
    model, one random image at the start of every row), labels on the text."""
    vocab = dims["vocab"]
    if "vision_depth" not in dims:
        ids = torch.randint(0, vocab, (batch, dims["seq"]), device=device)
        return {"input_ids": ids, "labels": ids}
    config = model.config
    side = dims["image_side"]
    image_tokens = (side // MERGE) ** 2
    ids = torch.randint(0, vocab - 4, (batch, dims["seq"]), device=device)
    ids[:, 0] = config.vision_start_token_id
    ids[:, 1 : 1 + image_tokens] = config.image_token_id
    ids[:, 1 + image_tokens] = config.vision_end_token_id
    labels = ids.clone()
    labels[:, : 2 + image_tokens] = -100
    inputs = {
        "input_ids": ids,
        "labels": labels,
        "pixel_values": torch.randn(
            batch * side * side, 3 * TEMPORAL_PATCH * PATCH * PATCH, device=device, dtype=dtype
        ),
        "image_grid_thw": torch.tensor([[1, side, side]] * batch, device=device),
    }
    if "mm_token_type_ids" in inspect.signature(model.forward).parameters:  # Transformers >= 5 finds images by it
        inputs["mm_token_type_ids"] = (ids == config.image_token_id).long()
    return inputs


def patch(impl: str, model: str = "llama") -> None:
    if impl == "torch":
        return
    import liger_kernel.transformers as patches

    getattr(patches, f"apply_liger_kernel_to_{model}")(
        rope=True, rms_norm=True, swiglu=True, cross_entropy=False, fused_linear_cross_entropy=True
    )


def run_train(job: dict[str, Any]) -> dict[str, Any]:
    """tokens/s and peak memory of ``job['steps']`` timed optimizer steps."""
    from .run_ops import DTYPES

    impl, device, dtype = job["impl"], torch.device(job["device"]), DTYPES[job["dtype"]]
    model_name = job.get("model", "llama")
    dims = model_dims(job["scale"], job.get("seq"), model_name)
    batch = job.get("batch", 2)
    warmup, steps = (1, 2) if job["quick"] else (job.get("warmup", 3), job.get("steps", 10))
    record: dict[str, Any] = {
        "impl": impl,
        "model": model_name,
        "params": None,
        "batch": batch,
        "seq": dims["seq"],
        "dims": dims,
        "optimizer": job.get("optimizer", "adamw"),
        "compiled": bool(job.get("compile")),
        "steps": steps,
        "step_ms": None,
        "tokens_per_s": None,
        "peak_mib": None,
        "loss_first": None,
        "loss_last": None,
        "error": None,
    }
    try:
        patch(impl, model_name)
        torch.manual_seed(0)
        model = build_model(dims, device, dtype)
        record["params"] = sum(p.numel() for p in model.parameters())
        forward = torch.compile(model, fullgraph=impl != "peer") if record["compiled"] else model
        if record["optimizer"] == "sgd":
            opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        else:
            opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
        inputs = batch_inputs(model, dims, batch, device, dtype)

        def step() -> float:
            loss = forward(**inputs).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.detach()

        losses = [step() for _ in range(warmup)]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        losses += [step() for _ in range(steps)]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            record["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        elapsed = time.perf_counter() - start
        record["step_ms"] = elapsed / steps * 1e3
        record["tokens_per_s"] = batch * dims["seq"] * steps / elapsed
        record["loss_first"], record["loss_last"] = float(losses[0]), float(losses[-1])
    except Exception as exc:  # reported in the table
        record["error"] = error_text(exc)
        traceback.print_exc()
    return record
