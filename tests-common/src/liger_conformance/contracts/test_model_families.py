"""Two patched tiny models end to end on the backend under test: a dense
family (Llama: RMSNorm, RoPE, SwiGLU, fused linear cross-entropy) and a
mixture-of-experts one (Qwen3-MoE: the same plus per-head q/k norms and the
fused_moe experts, router loss kept). Stock and patched Transformers models
with the same weights must give the same loss and gradients (fp32). Needs
``transformers``; skipped where it is not installed, and under the NPU mock:
Transformers then takes the mock's ``torch_npu`` stand-in for the real one and
imports torch_npu's own attention kernels from it (on an NPU it runs)."""

from __future__ import annotations

import copy

import pytest
import torch

transformers = pytest.importorskip("transformers")

#: family -> (config class, its arguments): 2 layers, hidden 32, random init, no downloads
TINY = {
    "llama": ("LlamaConfig", {}),
    "qwen3_moe": (
        "Qwen3MoeConfig",
        {
            "head_dim": 8,
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 32,
            "decoder_sparse_step": 1,
            "output_router_logits": True,
            "router_aux_loss_coef": 0.02,
        },
    ),
}
COMMON = dict(
    vocab_size=96,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
)
FAMILIES = [
    pytest.param("llama", marks=pytest.mark.liger_op("fused_linear_cross_entropy")),
    pytest.param("qwen3_moe", marks=pytest.mark.liger_op("fused_moe")),
]
#: the ops each patched model must have run on the backend
EXPECTED_OPS = {
    "llama": {"rms_norm", "rope", "swiglu", "fused_linear_cross_entropy"},
    "qwen3_moe": {"rms_norm", "rope", "fused_moe", "fused_linear_cross_entropy"},
}


def _model(family: str, device: torch.device) -> torch.nn.Module:
    name, extra = TINY[family]
    config = getattr(transformers, name)(**COMMON, **extra)
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(config).to(device, torch.float32).train()


def _loss_and_grads(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    loss.backward()
    return loss.item(), {n: p.grad.detach().cpu().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("family", FAMILIES)
def test_patched_model_trains_like_stock(liger_settings, liger_device, liger_backend, family):
    if liger_settings.mock == "npu":
        pytest.skip("Transformers imports torch_npu's attention kernels from the NPU mock's stand-in module")
    from liger_kernel.dispatch import dispatcher
    from liger_kernel.transformers import _apply_liger_kernel_to_instance, revert_liger_kernel_patches

    stock = _model(family, liger_device)
    patched = copy.deepcopy(stock)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(3, COMMON["vocab_size"], (2, 12), generator=generator).to(liger_device)
    batch = {"input_ids": ids, "labels": ids}
    # the stock result first: the patch replaces class-level pieces every instance sees
    stock_loss, stock_grads = _loss_and_grads(stock, batch)
    ran: set[str] = set()
    routed = dispatcher.function

    def recording(op: str, *args):
        ran.add(op)
        return routed(op, *args)

    try:
        _apply_liger_kernel_to_instance(model=patched, rope=True, rms_norm=True, swiglu=True)
        dispatcher.function = recording
        patched_loss, patched_grads = _loss_and_grads(patched, batch)
    finally:
        del dispatcher.function
        revert_liger_kernel_patches()

    assert EXPECTED_OPS[family] <= ran, f"the patched model ran {sorted(ran)}"
    assert patched_loss == pytest.approx(stock_loss, rel=1e-5)
    assert patched_grads.keys() == stock_grads.keys()
    for name, grad in stock_grads.items():
        torch.testing.assert_close(patched_grads[name], grad, rtol=1e-4, atol=2e-5, msg=lambda m, n=name: f"{n}: {m}")
