"""Small valid arguments for every op, to call each op once: ``liger-kernel
selftest``, the operator contract of the conformance suite, routing tests of
a backend package. They are not for checking numbers (the per-op contracts of
the conformance suite do that)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

# (device, rng) -> (positional args, positions of the args that require grad);
# floating arguments are float32 here and take the caller's dtype in sample()
Sample = Callable[[torch.device, torch.Generator], tuple[tuple[Any, ...], tuple[int, ...]]]


def _randn(rng: torch.Generator, device: torch.device, *shape: int, scale: float = 1.0, shift: float = 0.0):
    return (torch.randn(shape, generator=rng) * scale + shift).to(device)


def _targets(rng: torch.Generator, device: torch.device, rows: int, vocab: int) -> torch.Tensor:
    target = torch.randint(0, vocab, (rows,), generator=rng)
    target[1] = -100
    return target.to(device)


def _llama4_freqs(rng: torch.Generator, device: torch.device, *shape: int) -> torch.Tensor:
    """complex64 frequencies as Llama 4's rotary embedding makes them (unit modulus)."""
    angles = torch.randn(shape, generator=rng) * 3
    return torch.polar(torch.ones_like(angles), angles).to(device)


def _log_probs(rng, device, rows, vocab):
    return torch.log_softmax(_randn(rng, device, rows, vocab), dim=-1)


def _completion(rng: torch.Generator, device: torch.device, batch: int, length: int, vocab: int):
    """Token ids (batch, length) and a completion mask with the last token of row 0 padding."""
    ids = torch.randint(0, vocab, (batch, length), generator=rng).to(device)
    mask = torch.ones(batch, length, dtype=torch.int64)
    mask[0, -1] = 0
    return ids, mask.to(device)


def _rope_tables(rng, device, *leading):
    angles = _randn(rng, device, *leading)
    return angles.cos(), angles.sin()


SAMPLES: dict[str, Sample] = {
    "rms_norm": lambda d, g: (
        (_randn(g, d, 3, 5, 16), _randn(g, d, 16, shift=1.0), 1e-6, 0.0, "llama", True, None),
        (0, 1),
    ),
    "fused_add_rms_norm": lambda d, g: (
        (_randn(g, d, 4, 16), _randn(g, d, 4, 16), _randn(g, d, 16, shift=1.0), 1e-6, 0.0, "llama", False),
        (0, 1, 2),
    ),
    "modulated_rms_norm": lambda d, g: (
        (
            _randn(g, d, 2, 3, 16),
            _randn(g, d, 16, shift=1.0),
            _randn(g, d, 2, 16, scale=0.3),
            _randn(g, d, 2, 16, scale=0.3),
            1e-6,
            0.0,
            "llama",
            True,
        ),
        (0, 1, 2, 3),
    ),
    "layer_norm": lambda d, g: ((_randn(g, d, 4, 16), _randn(g, d, 16, shift=1.0), _randn(g, d, 16), 1e-6), (0, 1, 2)),
    "rope": lambda d, g: (
        (_randn(g, d, 2, 4, 6, 8), _randn(g, d, 2, 2, 6, 8), *_rope_tables(g, d, 1, 6, 8), None, 1),
        (0, 1),
    ),
    "swiglu": lambda d, g: ((_randn(g, d, 4, 16), _randn(g, d, 4, 16)), (0, 1)),
    "geglu": lambda d, g: ((_randn(g, d, 4, 16), _randn(g, d, 4, 16)), (0, 1)),
    "cross_entropy": lambda d, g: (
        (_randn(g, d, 6, 20), _targets(g, d, 6, 20), None, -100, 1e-4, 0.1, "mean", None, True, True, True),
        (0,),
    ),
    "fused_linear_cross_entropy": lambda d, g: (
        (
            _randn(g, d, 6, 8),
            _randn(g, d, 20, 8, scale=0.3),
            _targets(g, d, 6, 20),
            _randn(g, d, 20),
            None,
            -100,
            0.0,
            0.0,
            "mean",
            None,
            False,
            None,
            False,
            False,
            False,
        ),
        (0, 1, 3),
    ),
    "kl_div": lambda d, g: ((_log_probs(g, d, 4, 10), _log_probs(g, d, 4, 10).exp(), "batchmean", False, 1e-10), (0,)),
    "jsd": lambda d, g: ((_log_probs(g, d, 6, 10), _log_probs(g, d, 6, 10), None, 0.5, -100), (0,)),
    "fused_linear_jsd": lambda d, g: (
        (
            _randn(g, d, 6, 8),
            _randn(g, d, 10, 8, scale=0.3),
            _randn(g, d, 6, 8),
            _randn(g, d, 10, 8, scale=0.3),
            None,
            0.5,
            -100,
            1.0,
        ),
        (0, 1),
    ),
    "tvd": lambda d, g: ((_log_probs(g, d, 4, 10).exp(), _log_probs(g, d, 4, 10).exp(), None, "batchmean", -100), (0,)),
    "softmax": lambda d, g: ((_randn(g, d, 4, 16),), (0,)),
    "sparsemax": lambda d, g: ((_randn(g, d, 4, 16), -1), (0,)),
    "multi_token_attention": lambda d, g: (
        (
            _randn(g, d, 2, 2, 6, 6),
            _randn(g, d, 2, 2, 3, 3, scale=0.5),
            _randn(g, d, 2),
            (1, 1),
            (1, 1),
            (1, 1),
            1,
            False,
        ),
        (0, 1, 2),
    ),
    "group_norm": lambda d, g: (
        (_randn(g, d, 2, 8, 5), _randn(g, d, 8, shift=1.0), _randn(g, d, 8), 8, 4, 1e-6),
        (0, 1, 2),
    ),
    "dyt": lambda d, g: (
        (_randn(g, d, 4, 16), _randn(g, d, 1, shift=0.5), _randn(g, d, 16), _randn(g, d, 16)),
        (0, 1, 2, 3),
    ),
    "relu_squared": lambda d, g: ((_randn(g, d, 4, 16),), (0,)),
    "poly_norm": lambda d, g: (
        (_randn(g, d, 4, 16), _randn(g, d, 3, scale=0.1, shift=0.3), _randn(g, d, 1), 1e-6, True),
        (0, 1, 2),
    ),
    "qwen2vl_mrope": lambda d, g: (
        (_randn(g, d, 2, 4, 6, 8), _randn(g, d, 2, 2, 6, 8), *_rope_tables(g, d, 3, 2, 6, 8), [2, 1, 1], 1),
        (0, 1),
    ),
    # 5 tokens, 4 experts of hidden 16 and intermediate 16, top-2; expert 3 gets no token
    "fused_moe": lambda d, g: (
        (
            _randn(g, d, 5, 16),
            _randn(g, d, 4, 32, 16, scale=0.25),
            _randn(g, d, 4, 16, 16, scale=0.25),
            torch.tensor([[0, 1], [1, 2], [2, 0], [0, 2], [1, 0]], device=d),
            torch.softmax(_randn(g, d, 5, 2), dim=-1),
        ),
        (0, 1, 2, 4),
    ),
    # scale 5: some values beyond the limit of 7, so both clamps act
    "clamped_swiglu": lambda d, g: ((_randn(g, d, 4, 16, scale=5.0), 1.702, 7.0), (0,)),
    "llama4_rope": lambda d, g: (
        (_randn(g, d, 2, 6, 4, 8), _randn(g, d, 2, 6, 2, 8), _llama4_freqs(g, d, 1, 6, 4)),
        (0, 1),
    ),
    # logits (batch 2, 3 completion tokens + 1, vocab 10)
    "selective_log_softmax": lambda d, g: ((_randn(g, d, 2, 4, 10), *_completion(g, d, 2, 3, 10)[:1], 0.9, None), (0,)),
    "grpo_loss": lambda d, g: (
        (
            _randn(g, d, 2, 4, 10),
            _randn(g, d, 2, 3, scale=0.1, shift=-2.3),
            _randn(g, d, 2, 3, scale=0.1, shift=-2.3),
            *_completion(g, d, 2, 3, 10)[:1],
            _randn(g, d, 2),
            _completion(g, d, 2, 3, 10)[1],
            0.9,
            0.04,
            0.2,
            0.4,
            True,
            "grpo",
            "token",
            1.0,
            1.05,
            None,
            None,
            False,
            None,
        ),
        (0,),
    ),
    # 2 x 3 tokens of HC = 2 streams, C = 4 (K = 8, M = 8); float32 x needs allow_fp32
    "mhc_coeffs": lambda d, g: (
        (
            _randn(g, d, 2, 3, 2, 4),
            _randn(g, d, 8, 8, scale=0.3),
            _randn(g, d, 8, scale=0.1),
            _randn(g, d, 1, scale=0.1, shift=1.0).reshape(()),
            _randn(g, d, 1, scale=0.1, shift=1.0).reshape(()),
            _randn(g, d, 1, scale=0.1, shift=1.0).reshape(()),
            True,
            20,
            1e-6,
            0.0,
            1e-6,
            2.0,
        ),
        (0, 1, 2, 3, 4, 5),
    ),
    "mhc_pre": lambda d, g: ((_randn(g, d, 2, 3, 2, 4), _randn(g, d, 2, 3, 2, scale=0.2, shift=0.5)), (0, 1)),
    "mhc_post_res": lambda d, g: (
        (
            _randn(g, d, 2, 3, 2, 4),
            _randn(g, d, 2, 3, 4),
            _randn(g, d, 2, 3, 2, scale=0.2, shift=1.0),
            _randn(g, d, 2, 3, 2, 2, scale=0.2, shift=0.5),
        ),
        (0, 1, 2, 3),
    ),
    # N = 3 blocks over (2, 3) tokens of D = 8
    "attn_res": lambda d, g: (
        (_randn(g, d, 3, 2, 3, 8), _randn(g, d, 8, scale=0.5), _randn(g, d, 8, shift=1.0), 1e-6),
        (0, 1, 2),
    ),
    # a table of 10 rows of width 16, looked up by a (2, 3) batch of indices (7 twice)
    "embedding": lambda d, g: ((_randn(g, d, 10, 16), torch.tensor([[1, 7, 3], [7, 0, 9]], device=d), None), (0,)),
    # 6 rows, hidden 8, vocab 10: the target is a distribution per row; row 2's label ignored
    "fused_linear_kl_div": lambda d, g: (
        (
            _randn(g, d, 6, 8),
            _randn(g, d, 10, 8, scale=0.3),
            _log_probs(g, d, 6, 10).exp(),
            torch.tensor([1, 4, -100, 0, 9, 3], device=d),
            "batchmean",
            -100,
            1.0,
            1e-10,
            None,
        ),
        (0, 1),
    ),
    "fused_ce_tvd": lambda d, g: ((_randn(g, d, 4, 10), _randn(g, d, 4, 10), _targets(g, d, 4, 10), -100), (0,)),
    # logits (seq 3, batch 2, vocabulary 10), one target ignored, smoothing over all classes
    "vocab_parallel_cross_entropy": lambda d, g: (
        (_randn(g, d, 3, 2, 10), _targets(g, d, 6, 10).view(3, 2), None, -100, 0.1, "pytorch", "global"),
        (0,),
    ),
    # hidden (5 tokens, 8), projection (vocabulary 12, 8), entropy and two selected ids
    "fused_linear_scaled_cross_entropy": lambda d, g: (
        (
            _randn(g, d, 5, 8),
            _randn(g, d, 12, 8, scale=0.5),
            _targets(g, d, 5, 12),
            0.8,
            -100,
            1,
            True,
            torch.tensor([3, 7], device=d),
        ),
        (0, 1),
    ),
}


def sample(op: str, device: torch.device, rng: torch.Generator, dtype: torch.dtype = torch.float32) -> tuple[Any, ...]:
    """``op``'s positional arguments on ``device``, floating tensors in
    ``dtype``, the differentiable ones requiring grad."""
    args, grads = SAMPLES[op](device, rng)
    args = tuple(a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)
    return tuple(a.requires_grad_() if i in grads else a for i, a in enumerate(args))
