"""liger_kernel.megatron against Megatron-Core itself (megatron-core 0.16.1, on the CPU).

A tiny GPT model of Megatron's local spec (RMSNorm with q/k norms, SwiGLU MLP
with the fused activation, vocabulary-parallel loss) is built stock and patched
from the same weights; its loss and every gradient must agree. Megatron's local
spec runs on the CPU with three stand-ins that change no number: its attention
asks ``torch.cuda.current_device()`` for a scratch buffer's device (answered
"cpu"), forks a CUDA RNG state around attention dropout, which is 0 here (the
fork is a no-op), and compiles a few fused helpers with torch.compile (run
eagerly: dynamo is disabled). Model parallelism is one rank over gloo.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("megatron.core")

import torch.distributed as dist

from liger_kernel.megatron import (
    LigerMegatronCrossEntropy,
    LigerMegatronRMSNorm,
    LigerMegatronSwiGLU,
    apply_liger_kernel_to_megatron,
    revert_liger_kernel_to_megatron,
)

VOCAB, HIDDEN, SEQ, BATCH = 50, 32, 8, 2


@pytest.fixture(scope="module")
def megatron_cpu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    from megatron.core import parallel_state
    from megatron.core.tensor_parallel import random as megatron_random

    started = not dist.is_initialized()
    if started:
        store = tmp_path_factory.mktemp("gloo") / "store"
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    parallel_state.initialize_model_parallel(1, 1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.cuda, "current_device", lambda: "cpu")
        mp.setattr(megatron_random.CudaRNGStatesTracker, "fork", lambda self, name=None: contextlib.nullcontext())
        mp.setattr(torch._dynamo.config, "disable", True)
        yield
    parallel_state.destroy_model_parallel()
    if started:
        dist.destroy_process_group()


@pytest.fixture(autouse=True)
def stock_megatron() -> Iterator[None]:
    revert_liger_kernel_to_megatron()
    yield
    revert_liger_kernel_to_megatron()


def config(**overrides):
    from megatron.core.transformer.transformer_config import TransformerConfig

    options = dict(
        num_layers=2,
        hidden_size=HIDDEN,
        num_attention_heads=4,
        ffn_hidden_size=48,
        use_cpu_initialization=True,
        normalization="RMSNorm",
        gated_linear_unit=True,
        activation_func=F.silu,
        bias_activation_fusion=True,
        add_bias_linear=False,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        qk_layernorm=True,
        cross_entropy_loss_fusion=True,
        cross_entropy_fusion_impl="native",
    )
    options.update(overrides)
    return TransformerConfig(**options)


def gpt(cfg):
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.models.gpt.gpt_model import GPTModel

    spec = get_gpt_layer_local_spec(normalization="RMSNorm", qk_layernorm=True)
    return GPTModel(
        config=cfg,
        transformer_layer_spec=spec,
        vocab_size=VOCAB,
        max_sequence_length=SEQ,
        position_embedding_type="learned_absolute",
    )


def loss_and_grads(model, batch):
    ids, labels = batch
    positions = torch.arange(SEQ).expand(BATCH, SEQ)
    mask = torch.ones(SEQ, SEQ, dtype=torch.bool).triu(1)[None, None]
    model.zero_grad(set_to_none=True)
    loss = model(ids, positions, mask, labels=labels)
    loss.float().mean().backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("fusion", [True, False], ids=["fused-ce", "unfused-ce"])
def test_patched_gpt_matches_stock(megatron_cpu, fusion):
    """Loss and every gradient of a patched tiny GPT equal the stock model's.
    Megatron's fused loss rounds the logits' gradient to bf16 (whatever their
    dtype), so with it the gradients agree to bf16's precision; its unfused loss
    keeps fp32, and so does the op."""
    torch.manual_seed(0)
    cfg = config(cross_entropy_loss_fusion=fusion)
    stock = gpt(cfg)
    batch = (torch.randint(0, VOCAB, (BATCH, SEQ)), torch.randint(0, VOCAB, (BATCH, SEQ)))
    stock_loss, stock_grads = loss_and_grads(stock, batch)

    apply_liger_kernel_to_megatron(rms_norm=True, cross_entropy=True, swiglu=True)
    patched = gpt(cfg)
    patched.load_state_dict(stock.state_dict())
    layer = patched.decoder.layers[0]
    for norm in (layer.input_layernorm, layer.pre_mlp_layernorm, layer.self_attention.q_layernorm):
        assert isinstance(norm, LigerMegatronRMSNorm)
    assert isinstance(patched.decoder.final_layernorm, LigerMegatronRMSNorm)

    from megatron.core.fusions import fused_bias_swiglu

    calls = []
    liger_swiglu = fused_bias_swiglu.SwiGLUFunction.apply
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fused_bias_swiglu.SwiGLUFunction, "apply", lambda *a: calls.append(1) or liger_swiglu(*a))
        patched_loss, patched_grads = loss_and_grads(patched, batch)
    assert len(calls) == cfg.num_layers  # every MLP's activation went through the op

    torch.testing.assert_close(patched_loss, stock_loss, rtol=1e-5, atol=1e-6)
    tolerance = dict(rtol=1e-2, atol=1e-4) if fusion else dict(rtol=1e-4, atol=1e-6)
    assert patched_grads.keys() == stock_grads.keys()
    for name, grad in stock_grads.items():
        torch.testing.assert_close(patched_grads[name], grad, **tolerance, msg=name)


def test_patch_is_idempotent_and_reverts(megatron_cpu):
    from megatron.core.fusions import fused_bias_swiglu, fused_cross_entropy
    from megatron.core.models import backends
    from megatron.core.models.common.language_module import language_module
    from megatron.core.tensor_parallel import cross_entropy as unfused
    from megatron.core.transformer import transformer_block

    def current():
        return (
            backends.LocalSpecProvider.layer_norm,
            transformer_block.LayerNormImpl,
            fused_cross_entropy.fused_vocab_parallel_cross_entropy,
            language_module.fused_vocab_parallel_cross_entropy,
            unfused.vocab_parallel_cross_entropy,
            fused_bias_swiglu.SwiGLUFunction,
        )

    stock = current()
    apply_liger_kernel_to_megatron(rms_norm=True, cross_entropy=True, swiglu=True)
    patched = current()
    assert all(p is not s for p, s in zip(patched, stock))
    # the call site bound by `from ... import` follows the defining module
    assert patched[3] is patched[2]
    apply_liger_kernel_to_megatron(rms_norm=True, cross_entropy=True, swiglu=True)
    assert current() == patched
    revert_liger_kernel_to_megatron()
    assert current() == stock


def test_layer_norm_configs_keep_megatrons_norm(megatron_cpu):
    """Under the patch a LayerNorm config still gets Megatron's (torch) LayerNorm."""
    apply_liger_kernel_to_megatron()
    torch.manual_seed(0)
    model = gpt(config(normalization="LayerNorm", qk_layernorm=False))
    assert isinstance(model.decoder.layers[0].input_layernorm, torch.nn.LayerNorm)
    assert isinstance(model.decoder.final_layernorm, torch.nn.LayerNorm)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rms_norm_matches_megatron_torch_norm(megatron_cpu, dtype):
    from megatron.core.transformer.torch_norm import WrappedTorchNorm

    cfg = config()
    stock = WrappedTorchNorm(config=cfg, hidden_size=HIDDEN, eps=1e-5)
    ours = LigerMegatronRMSNorm(config=cfg, hidden_size=HIDDEN, eps=1e-5)
    torch.manual_seed(0)
    weight = torch.rand(HIDDEN) + 0.5
    with torch.no_grad():
        stock.weight.copy_(weight)
        ours.weight.copy_(weight)
    stock.to(dtype), ours.to(dtype)
    x = (torch.randn(SEQ, BATCH, HIDDEN) * 3).to(dtype)
    xs, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
    dy = torch.randn(SEQ, BATCH, HIDDEN).to(dtype)
    ys, yo = stock(xs), ours(xo)
    ys.backward(dy), yo.backward(dy)
    if dtype == torch.bfloat16:
        assert torch.equal(yo, ys)  # both fp32 throughout, rounded once
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(yo, ys, **tol)
    torch.testing.assert_close(xo.grad, xs.grad, **tol)
    torch.testing.assert_close(ours.weight.grad.float(), stock.weight.grad.float(), **tol)


def test_rms_norm_zero_centered_gamma_scales_by_one_plus_weight():
    cfg = type(
        "Config", (), {"normalization": "RMSNorm", "layernorm_zero_centered_gamma": True, "sequence_parallel": True}
    )()
    norm = LigerMegatronRMSNorm(config=cfg, hidden_size=16, eps=1e-6)
    assert torch.equal(norm.weight.detach(), torch.zeros(16)) and norm.weight.sequence_parallel is True
    torch.manual_seed(0)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(3, 16, dtype=torch.float64)
    expected = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * (1 + norm.weight.double())
    torch.testing.assert_close(norm(x.float()).double(), expected, rtol=1e-5, atol=1e-6)


def test_rms_norm_refuses_a_layer_norm_config():
    cfg = type("Config", (), {"normalization": "LayerNorm"})()
    with pytest.raises(ValueError, match="config.normalization is 'LayerNorm'"):
        LigerMegatronRMSNorm(config=cfg, hidden_size=8)


def megatron_loss(logits, target, label_smoothing=0.0):
    from megatron.core.tensor_parallel.cross_entropy import vocab_parallel_cross_entropy

    # Megatron's kernel writes its fp32 input in place: give it a copy
    return vocab_parallel_cross_entropy(logits.clone(), target, label_smoothing)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_matches_megatron(megatron_cpu, label_smoothing):
    torch.manual_seed(0)
    logits = torch.randn(SEQ, BATCH, VOCAB) * 2
    target = torch.randint(0, VOCAB, (SEQ, BATCH))
    ref_in, our_in = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    expected = megatron_loss(ref_in, target, label_smoothing)
    got = LigerMegatronCrossEntropy(label_smoothing=label_smoothing)(our_in, target)
    assert got.shape == (SEQ, BATCH) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    dloss = torch.rand(SEQ, BATCH)
    expected.backward(dloss), got.backward(dloss)
    torch.testing.assert_close(our_in.grad, ref_in.grad, rtol=1e-5, atol=1e-6)


def test_cross_entropy_pytorch_formula_is_torchs_smoothing():
    torch.manual_seed(0)
    logits = torch.randn(SEQ, BATCH, VOCAB, dtype=torch.float64)
    target = torch.randint(0, VOCAB, (SEQ, BATCH))
    got = LigerMegatronCrossEntropy(label_smoothing=0.2, label_smoothing_formula="pytorch")(logits, target)
    expected = F.cross_entropy(logits.reshape(-1, VOCAB), target.reshape(-1), label_smoothing=0.2, reduction="none")
    torch.testing.assert_close(got, expected.view(SEQ, BATCH))


def test_cross_entropy_ignored_tokens_get_no_loss_and_no_gradient():
    torch.manual_seed(0)
    logits = torch.randn(SEQ, BATCH, VOCAB, requires_grad=True)
    target = torch.randint(0, VOCAB, (SEQ, BATCH))
    target[2, 1] = -100
    loss = LigerMegatronCrossEntropy()(logits, target)
    loss.sum().backward()
    assert loss[2, 1] == 0 and torch.count_nonzero(logits.grad[2, 1]) == 0
    assert torch.all(loss[target != -100] > 0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"reduction": "mean"}, ValueError, "reduction must be 'none'"),
        ({"label_smoothing": 1.0}, ValueError, "label_smoothing must be < 1"),
        ({"label_smoothing": -0.1}, ValueError, "label_smoothing"),
        ({"label_smoothing_formula": "nemo"}, ValueError, "label_smoothing_formula"),
        ({"label_smoothing_mode": "local"}, ValueError, "label_smoothing_mode"),
    ],
)
def test_cross_entropy_refuses_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        LigerMegatronCrossEntropy(**kwargs)


def test_cross_entropy_refuses_bad_shapes_and_smoothing_above_one():
    ce = LigerMegatronCrossEntropy()
    with pytest.raises(ValueError, match="3-D"):
        ce(torch.randn(4, VOCAB), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="target has shape"):
        ce(torch.randn(SEQ, BATCH, VOCAB), torch.zeros(SEQ, dtype=torch.long))
    # Megatron's a = alpha * V / (V - 1) passes 1 for alpha > (V - 1) / V
    with pytest.raises(ValueError, match="smoothing"):
        LigerMegatronCrossEntropy(label_smoothing=0.9)(torch.randn(2, 1, 4), torch.zeros(2, 1, dtype=torch.long))


def test_cross_entropy_out_of_range_target_is_refused():
    with pytest.raises(IndexError, match="target"):
        LigerMegatronCrossEntropy()(torch.randn(2, 1, VOCAB), torch.full((2, 1), VOCAB))


@pytest.mark.parametrize("shape", [(6, 2 * 24), (SEQ, BATCH, 2 * 24)])
def test_swiglu_matches_megatron(megatron_cpu, shape):
    from megatron.core.fusions.fused_bias_swiglu import bias_swiglu_impl

    torch.manual_seed(0)
    y = torch.randn(shape)
    ref_in, our_in = y.clone().requires_grad_(), y.clone().requires_grad_()
    expected = bias_swiglu_impl(ref_in, None)
    got = LigerMegatronSwiGLU()(our_in)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    dc = torch.randn_like(expected)
    expected.backward(dc), got.backward(dc)
    torch.testing.assert_close(our_in.grad, ref_in.grad, rtol=1e-5, atol=1e-6)


def test_swiglu_unsupported_options_raise_without_a_fallback(megatron_cpu, caplog):
    from megatron.core.fusions.fused_bias_swiglu import bias_swiglu_impl

    y, bias = torch.randn(4, 16), torch.randn(16)
    with pytest.raises(NotImplementedError, match="bias"):
        LigerMegatronSwiGLU()(y, bias)
    with pytest.raises(NotImplementedError, match="fp8_input_store"):
        LigerMegatronSwiGLU()(y, None, True)
    with caplog.at_level(logging.INFO, logger="liger_kernel.megatron.swiglu"):
        out = LigerMegatronSwiGLU(fallback_impl=bias_swiglu_impl)(y, bias)
    torch.testing.assert_close(out, bias_swiglu_impl(y, bias))
    assert any("fallback_impl" in r.getMessage() for r in caplog.records)


def test_swiglu_refuses_odd_width_and_bad_rank():
    with pytest.raises(ValueError, match="even"):
        LigerMegatronSwiGLU()(torch.randn(4, 7))
    with pytest.raises(ValueError, match="tokens"):
        LigerMegatronSwiGLU()(torch.randn(8))


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_over_two_tensor_parallel_ranks(tmp_path, label_smoothing):
    """Two gloo ranks, each with half the vocabulary: loss and each shard's
    gradient equal Megatron's unfused vocabulary-parallel loss (its label
    smoothing averages over the rank's own slice: the "partition" mode)."""
    pytest.importorskip(
        "liger_kernel.ops.vocab_parallel_cross_entropy", reason="the vocabulary-parallel cross-entropy op is not here"
    )
    worker = Path(__file__).with_name("tp_worker.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    store = tmp_path / "store"
    ranks = [
        subprocess.Popen([sys.executable, str(worker), str(rank), "2", str(store), str(label_smoothing)], env=env)
        for rank in range(2)
    ]
    assert [rank.wait(timeout=240) for rank in ranks] == [0, 0]
