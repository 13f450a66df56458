"""liger_multimodal_rotary_pos_emb and liger_qwen2vl_mrope against Qwen2-VL's
rotary embedding as Transformers computes it."""

from __future__ import annotations

import inspect

import pytest
import torch
from transformers import Qwen2VLConfig
from transformers.models.qwen2_vl import modeling_qwen2_vl

from liger_kernel.transformers import functional as LF
from liger_kernel.transformers import liger_multimodal_rotary_pos_emb

TOL = dict(rtol=1e-5, atol=1e-5)


def _streams_and_transformers_tables(mrope_section, head_dim, batch, seq):
    """cos and sin per (temporal, height, width) stream, (3, batch, seq, head_dim),
    and, where Transformers merges the streams in its rotary module (5.x), the
    merged (batch, seq, head_dim) tables it makes of them (else None)."""
    # a different position per stream, as for image tokens
    positions = torch.stack([torch.arange(seq) * 3, torch.arange(seq) % 4, torch.arange(seq) + 7])
    positions = positions[:, None, :].expand(3, batch, seq) + torch.arange(batch)[None, :, None]
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
    angles = positions[..., None].float() * inv_freq
    angles = torch.cat((angles, angles), dim=-1)
    if hasattr(modeling_qwen2_vl, "apply_multimodal_rotary_pos_emb"):
        # Transformers 4.x: the rotary module returns the streams; the attention layer merges them
        return angles.cos(), angles.sin(), None
    config = Qwen2VLConfig(
        text_config=dict(
            hidden_size=head_dim * 2,
            num_attention_heads=2,
            num_key_value_heads=1,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": list(mrope_section)},
        )
    ).text_config
    rotary = modeling_qwen2_vl.Qwen2VLRotaryEmbedding(config)
    torch.testing.assert_close(rotary.inv_freq, inv_freq)
    merged = rotary(torch.zeros(batch, seq, head_dim * 2), positions)
    return angles.cos(), angles.sin(), merged


@pytest.mark.parametrize(("head_dim", "mrope_section"), [(16, [2, 3, 3]), (128, [16, 24, 24])])
@pytest.mark.parametrize("unsqueeze_dim", [1, 2])
def test_matches_transformers(head_dim, mrope_section, unsqueeze_dim):
    batch, heads, kv_heads, seq = 2, 4, 2, 6
    cos, sin, merged = _streams_and_transformers_tables(mrope_section, head_dim, batch, seq)
    if unsqueeze_dim == 1:
        q_shape, k_shape = (batch, heads, seq, head_dim), (batch, kv_heads, seq, head_dim)
    else:
        q_shape, k_shape = (batch, seq, heads, head_dim), (batch, seq, kv_heads, head_dim)
    q, k = torch.randn(q_shape, requires_grad=True), torch.randn(k_shape, requires_grad=True)
    q_ref, k_ref = q.detach().clone().requires_grad_(), k.detach().clone().requires_grad_()

    got = liger_multimodal_rotary_pos_emb(q, k, cos, sin, mrope_section, unsqueeze_dim)
    if merged is None:
        want = modeling_qwen2_vl.apply_multimodal_rotary_pos_emb(q_ref, k_ref, cos, sin, mrope_section, unsqueeze_dim)
    else:
        want = modeling_qwen2_vl.apply_rotary_pos_emb(q_ref, k_ref, *merged, unsqueeze_dim=unsqueeze_dim)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, **TOL)
    (got[0].pow(2).sum() + got[1].pow(2).sum()).backward()
    (want[0].pow(2).sum() + want[1].pow(2).sum()).backward()
    torch.testing.assert_close(q.grad, q_ref.grad, **TOL)
    torch.testing.assert_close(k.grad, k_ref.grad, **TOL)


def test_signature_is_transformers_one():
    for function in (liger_multimodal_rotary_pos_emb, LF.liger_qwen2vl_mrope):
        parameters = inspect.signature(function).parameters
        assert list(parameters) == ["q", "k", "cos", "sin", "mrope_section", "unsqueeze_dim"]
        assert parameters["unsqueeze_dim"].default == 1


def test_functional_matches_module():
    cos, sin, _ = _streams_and_transformers_tables([2, 1, 1], 8, 1, 3)
    q, k = torch.randn(1, 2, 3, 8), torch.randn(1, 1, 3, 8)
    for got, want in zip(
        LF.liger_qwen2vl_mrope(q, k, cos, sin, [2, 1, 1]), liger_multimodal_rotary_pos_emb(q, k, cos, sin, [2, 1, 1])
    ):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
