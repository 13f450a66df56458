"""liger_llama4_text_rotary_pos_emb against Llama 4's ``apply_rotary_emb`` as
Transformers computes it, on the frequencies its own rotary module makes, and
apply_liger_llama4_rope_full's replacement of it and of the vision function
(whose numerics test_vision_rope_functions.py tests)."""

from __future__ import annotations

import pytest
import torch
from transformers import Llama4TextConfig
from transformers.models.llama4 import modeling_llama4

from liger_kernel.transformers import (
    liger_llama4_text_rotary_pos_emb,
    liger_llama4_vision_rotary_pos_emb,
    revert_liger_kernel_patches,
)
from liger_kernel.transformers.llama4_rope import apply_liger_llama4_rope_full


def _frequencies(head_dim: int, batch: int, seq: int, rope_parameters: dict | None = None) -> torch.Tensor:
    """freqs_cis as ``Llama4TextRotaryEmbedding`` returns it (complex64, (batch, seq, head_dim / 2))."""
    config = Llama4TextConfig(
        hidden_size=head_dim * 4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=head_dim,
        rope_parameters=rope_parameters or {"rope_type": "default", "rope_theta": 500000.0},
    )
    rotary = modeling_llama4.Llama4TextRotaryEmbedding(config)
    positions = torch.arange(seq)[None, :] * 3 + torch.arange(batch)[:, None]
    return rotary(torch.zeros(batch, seq, head_dim * 4), positions)


LLAMA3_SCALING = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 32,
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("head_dim", [16, 128])
@pytest.mark.parametrize("rope_parameters", [None, LLAMA3_SCALING], ids=["default", "llama3"])
def test_matches_transformers(dtype, head_dim, rope_parameters):
    batch, heads, kv_heads, seq = 2, 4, 2, 6
    freqs_cis = _frequencies(head_dim, batch, seq, rope_parameters)
    assert freqs_cis.dtype == torch.complex64 and freqs_cis.shape == (batch, seq, head_dim // 2)
    torch.manual_seed(0)
    q = torch.randn(batch, seq, heads, head_dim, dtype=dtype, requires_grad=True)
    k = torch.randn(batch, seq, kv_heads, head_dim, dtype=dtype, requires_grad=True)
    dq, dk = torch.randn_like(q), torch.randn_like(k)
    got = liger_llama4_text_rotary_pos_emb(q, k, freqs_cis)
    torch.autograd.backward(got, (dq, dk))
    got_grads = q.grad, k.grad
    q.grad = k.grad = None
    expected = modeling_llama4.apply_rotary_emb(q, k, freqs_cis)
    torch.autograd.backward(expected, (dq, dk))
    # both multiply in fp32 and round once to the input dtype
    tol = {} if dtype == torch.float32 else {"rtol": 1e-2, "atol": 1e-2}
    for actual, wanted in zip((*got, *got_grads), (*expected, q.grad, k.grad)):
        assert actual.dtype == wanted.dtype
        torch.testing.assert_close(actual, wanted, **tol)


def test_apply_full_replaces_the_text_and_vision_functions_and_reverts():
    stock = modeling_llama4.apply_rotary_emb
    stock_vision = modeling_llama4.vision_apply_rotary_emb
    apply_liger_llama4_rope_full(modeling_llama4)
    try:
        assert modeling_llama4.apply_rotary_emb is liger_llama4_text_rotary_pos_emb
        assert modeling_llama4.vision_apply_rotary_emb is liger_llama4_vision_rotary_pos_emb
    finally:
        revert_liger_kernel_patches()
    assert modeling_llama4.apply_rotary_emb is stock
    assert modeling_llama4.vision_apply_rotary_emb is stock_vision
    with pytest.raises(AttributeError, match="apply_rotary_emb"):
        apply_liger_llama4_rope_full(torch)
