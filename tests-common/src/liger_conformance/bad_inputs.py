"""Bad inputs every backend must refuse, as data: the contract tests run them
and ``python -m liger_conformance.bad_inputs --markdown`` prints them as the
table in this package's README, so the two cannot drift apart.

A case starts from one valid call of an op (:func:`valid_arguments`), changes
one thing, and expects ``Liger<Op>Function.apply`` to raise ``error`` with a
message naming ``argument``. The checks live in the op contracts
(``liger_kernel.ops.<op>``), before dispatch, so every backend gives the same
error; a backend that computes anything for these calls is not conforming.
A layout adapter over an op (:data:`ADAPTERS`, e.g. the vision towers'
rotary embeddings) has cases of its own, in its own layout and argument names.
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from liger_conformance.contracts._support import make, meta_like, raises_naming
from liger_kernel.ops import OPS
from liger_kernel.ops.llama4_rope import check_llama4_vision_rope, llama4_vision_rope
from liger_kernel.ops.rope import check_vision_rope, vision_rope

Arguments = dict[str, Any]

#: layout adapters over an op: name -> (function, its argument checks, the op it runs through)
ADAPTERS: dict[str, tuple[Callable[..., Any], Callable[..., None], str]] = {
    "vision_rope": (vision_rope, check_vision_rope, "rope"),
    "llama4_vision_rope": (llama4_vision_rope, check_llama4_vision_rope, "llama4_rope"),
}


def entry_point(name: str) -> Callable[..., Any]:
    """What a case calls: an op's public ``apply``, or an adapter."""
    return OPS[name].apply if name in OPS else ADAPTERS[name][0]


def check_arguments(name: str, args: Arguments) -> None:
    """Run only the argument checks of op or adapter ``name`` on ``args`` (by name)."""
    if name in OPS:
        OPS[name].check(*OPS[name]._bind((), args))
    else:
        ADAPTERS[name][1](**args)


def checked_parameters(name: str) -> set[str]:
    """The argument names of op or adapter ``name``."""
    check = OPS[name].check if name in OPS else ADAPTERS[name][1]
    return set(inspect.signature(check).parameters)


@dataclass(frozen=True)
class BadInput:
    op: str
    #: short test id, unique within the op
    name: str
    #: what is wrong, as the README table shows it
    what: str
    argument: str
    error: type[Exception]
    spoil: Callable[[Arguments], None]


def _set(**values: Any) -> Callable[[Arguments], None]:
    return lambda args: args.update(values)


def _change(name: str, how: Callable[[Any], Any]) -> Callable[[Arguments], None]:
    def spoil(args: Arguments) -> None:
        args[name] = how(args[name])

    return spoil


def _scalar(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1)[0]


def _no_width(t: torch.Tensor) -> torch.Tensor:
    return t[..., :0]


def valid_arguments(op: str, device: torch.device, rng: torch.Generator) -> Arguments:
    """One small valid call of ``op``, by argument name."""

    def x(*shape: int) -> torch.Tensor:
        return make(shape, torch.float32, device, rng)

    def labels(rows: int, vocab: int) -> torch.Tensor:
        return torch.randint(0, vocab, (rows,), generator=rng).to(device)

    if op == "rms_norm":
        return {"X": x(2, 8), "W": x(8), "eps": 1e-6}
    if op == "fused_add_rms_norm":
        return {"X": x(2, 8), "R": x(2, 8), "W": x(8), "eps": 1e-6}
    if op == "modulated_rms_norm":
        return {"X": x(2, 3, 8), "W": x(8), "scale": x(2, 8), "shift": x(2, 8), "eps": 1e-6}
    if op == "layer_norm":
        return {"X": x(2, 8), "W": x(8), "B": x(8), "eps": 1e-6}
    if op == "group_norm":
        return {
            "X": x(2, 4, 3),
            "affine_scaling_weight": x(4),
            "affine_shifting_bias": x(4),
            "num_channels": 4,
            "num_groups": 2,
            "eps": 1e-6,
        }
    if op == "poly_norm":
        return {"X": x(2, 8), "W": x(3), "B": x(1), "eps": 1e-6}
    if op == "cross_entropy":
        return {"_input": x(3, 10), "target": labels(3, 10), "weight": x(10).abs()}
    if op == "fused_linear_cross_entropy":
        return {"_input": x(3, 8), "weight": x(10, 8), "target": labels(3, 10), "bias": x(10), "ce_weight": x(10).abs()}
    if op == "jsd":
        return {"_input": x(3, 10).log_softmax(-1), "target": x(3, 10).log_softmax(-1), "shift_labels": labels(3, 10)}
    if op == "fused_linear_jsd":
        return {
            "student_input": x(3, 8),
            "student_weight": x(10, 8),
            "teacher_input": x(3, 6),
            "teacher_weight": x(10, 6),
            "shift_labels": labels(3, 10),
        }
    if op == "kl_div":
        return {"y_pred": x(2, 8).log_softmax(-1), "y_true": x(2, 8).softmax(-1)}
    if op == "fused_linear_kl_div":
        return {
            "student_input": x(3, 8),
            "student_weight": x(10, 8),
            "target": x(3, 10).softmax(-1),
            "shift_labels": labels(3, 10),
        }
    if op == "fused_ce_tvd":
        return {"student_logits": x(3, 10), "teacher_logits": x(3, 10), "target": labels(3, 10)}
    if op == "tvd":
        return {"p": x(2, 8).softmax(-1), "q": x(2, 8).softmax(-1), "shift_labels": labels(2, 8)}
    if op == "rope":
        # cos and sin a table of 16 positions, looked up by position_ids
        return {
            "q": x(2, 3, 5, 6),
            "k": x(2, 1, 5, 6),
            "cos": x(16, 6),
            "sin": x(16, 6),
            "position_ids": labels(10, 16).reshape(2, 5),
            "unsqueeze_dim": 1,
        }
    if op == "qwen2vl_mrope":
        # cos and sin (3 streams, batch, seq, head_dim); the section sums to head_dim / 2
        return {
            "q": x(2, 3, 5, 8),
            "k": x(2, 1, 5, 8),
            "cos": x(3, 2, 5, 8),
            "sin": x(3, 2, 5, 8),
            "mrope_section": [2, 1, 1],
            "unsqueeze_dim": 1,
        }
    if op in ("swiglu", "geglu"):
        return {"a": x(2, 8), "b": x(2, 8)}
    if op == "softmax":
        return {"input_": x(2, 8)}
    if op == "sparsemax":
        return {"x": x(2, 8), "dim": -1}
    if op == "multi_token_attention":
        # (batch 1, 4 heads, L 6), a 3x3 convolution in 2 groups, padded to keep 6 x 6
        return {"scores": x(1, 4, 6, 6), "weight": x(4, 2, 3, 3), "bias": x(4), "padding": 1, "groups": 2}
    if op == "dyt":
        return {"x": x(2, 8), "alpha": torch.full((1,), 0.5, device=device), "gamma": x(8), "beta": x(8)}
    if op == "fused_moe":
        # 3 tokens, 4 experts (hidden 8, intermediate 6), top-2
        return {
            "x": x(3, 8),
            "gate_up_proj": x(4, 12, 8),
            "down_proj": x(4, 8, 6),
            "top_k_index": torch.tensor([[0, 1], [2, 3], [1, 2]], device=device),
            "top_k_weights": x(3, 2).softmax(-1),
        }
    if op == "relu_squared":
        return {"X": x(2, 8)}
    if op == "clamped_swiglu":
        return {"x": x(2, 8), "alpha": 1.702, "limit": 7.0}
    if op == "llama4_rope":
        # (batch, seq, heads, head_dim) q and k (GQA), complex freqs_cis shared over the batch
        angles = x(1, 5, 4)
        return {
            "q": x(2, 5, 3, 8),
            "k": x(2, 5, 1, 8),
            "freqs_cis": torch.polar(torch.ones_like(angles), angles),
        }
    if op == "vision_rope":
        # (seq, heads, head_dim) q and k, fp32 (seq, head_dim) cos and sin
        return {"q": x(5, 3, 8), "k": x(5, 1, 8), "cos": x(5, 8), "sin": x(5, 8)}
    if op == "llama4_vision_rope":
        # (tiles, seq, heads, head_dim) query and key, freqs_ci (seq, 1, head_dim / 2) as Llama 4's buffer
        angles = x(5, 1, 4)
        return {"query": x(2, 5, 3, 8), "key": x(2, 5, 3, 8), "freqs_ci": torch.polar(torch.ones_like(angles), angles)}
    if op in ("selective_log_softmax", "grpo_loss"):
        ids = torch.randint(0, 10, (2, 3), generator=rng).to(device)
        mask = torch.ones(2, 3, dtype=torch.int64, device=device)
        if op == "selective_log_softmax":
            return {"logits": x(2, 4, 10), "input_ids": ids, "temperature": 0.9, "mask": mask}
        return {
            "logits": x(2, 4, 10),
            "old_logp": x(2, 3) - 2.3,
            "ref_logp": x(2, 3) - 2.3,
            "completion_ids": ids,
            "advantages": x(2),
            "completion_mask": mask,
            "temperature": 0.9,
            "beta": 0.04,
            "eps_low": 0.2,
            "eps_high": 0.4,
            "inplace": True,
        }
    if op == "vocab_parallel_cross_entropy":
        # logits (seq 3, batch 2, vocabulary 10), no process group: one shard
        return {
            "vocab_parallel_logits": x(3, 2, 10),
            "target": labels(6, 10).view(3, 2),
            "tp_group": None,
            "ignore_index": -100,
            "label_smoothing": 0.1,
            "label_smoothing_formula": "pytorch",
            "label_smoothing_mode": "global",
        }
    if op == "fused_linear_scaled_cross_entropy":
        return {
            "_input": x(4, 8),
            "weight": x(10, 8),
            "target": labels(4, 10),
            "temperature": 0.8,
            "return_entropy": True,
            "selected_token_ids": torch.tensor([1, 4], device=device),
        }
    if op == "embedding":
        return {"embeddings": x(10, 8), "indices": torch.tensor([[1, 7], [3, 7]], device=device), "padding_idx": None}
    if op == "mhc_coeffs":
        # 2 tokens of HC = 2 streams, C = 4 channels: K = 8, M = 8; float32 x needs allow_fp32
        return {
            "x": x(2, 2, 4),
            "phi": x(8, 8),
            "b": x(8),
            "alpha_pre": torch.ones((), device=device),
            "alpha_post": torch.ones((), device=device),
            "alpha_res": torch.ones((), device=device),
            "allow_fp32": True,
            "tmax": 20,
            "rms_eps": 1e-6,
            "pre_eps": 0.0,
            "sinkhorn_eps": 1e-6,
            "post_mult": 2.0,
        }
    if op == "mhc_pre":
        return {"x": x(2, 2, 4), "h_pre": x(2, 2)}
    if op == "mhc_post_res":
        return {"x": x(2, 2, 4), "f_out": x(2, 4), "h_post": x(2, 2), "h_res": x(2, 2, 2)}
    if op == "attn_res":
        # N = 3 blocks over (2, 2) tokens of D = 8
        return {"V_stacked": x(3, 2, 2, 8), "w_query": x(8), "w_norm": x(8), "eps": 1e-6}
    raise KeyError(f"no valid call of {op!r} is described here")


def _eps_cases(op: str, *, positive: bool = False) -> list[BadInput]:
    cases = [
        BadInput(op, "eps-negative", "`eps` = -1e-06", "eps", ValueError, _set(eps=-1e-6)),
        BadInput(op, "eps-str", "`eps` = `'1e-6'` (a string)", "eps", TypeError, _set(eps="1e-6")),
        BadInput(op, "eps-nan", "`eps` = nan", "eps", ValueError, _set(eps=math.nan)),
    ]
    if positive:
        cases.append(
            BadInput(op, "eps-zero", "`eps` = 0 (log(max(t, eps)) needs eps > 0)", "eps", ValueError, _set(eps=0.0))
        )
    return cases


def _empty_row(op: str, argument: str, *others: str, what: str = "last dimension 0 (an empty row)") -> BadInput:
    """``argument`` made 0 wide, with ``others`` (the tensors sized by that
    width) to match, so that only the empty row itself is wrong."""

    def spoil(args: Arguments) -> None:
        for name in (argument, *others):
            args[name] = _no_width(args[name])

    shown = " and ".join(f"`{name}`" for name in (argument, *others))
    return BadInput(op, f"{argument}-zero-width", f"{shown} with {what}", argument, ValueError, spoil)


def _device(op: str, argument: str) -> BadInput:
    """On another device than the first tensor: a meta tensor, a mismatch on any machine."""
    return BadInput(
        op, f"{argument}-device", f"`{argument}` on another device", argument, ValueError, _change(argument, meta_like)
    )


def _dtype(op: str, argument: str, dtype: torch.dtype) -> BadInput:
    name = str(dtype).replace("torch.", "")
    return BadInput(
        op,
        f"{argument}-{name}",
        f"`{argument}` of dtype {name}",
        argument,
        TypeError,
        _change(argument, lambda t: t.to(dtype)),
    )


def _shape(
    op: str, argument: str, what: str, how: Callable[[torch.Tensor], torch.Tensor], name: str = "shape"
) -> BadInput:
    return BadInput(op, f"{argument}-{name}", f"`{argument}` {what}", argument, ValueError, _change(argument, how))


def _zero_dim(op: str, argument: str) -> BadInput:
    return BadInput(op, f"{argument}-0d", f"`{argument}` 0-D", argument, ValueError, _change(argument, _scalar))


def _each(how: Callable[[Any], Any], *names: str) -> Callable[[Arguments], None]:
    """The same change to several arguments (cos and sin, say), so they still agree with each other."""

    def spoil(args: Arguments) -> None:
        for name in names:
            args[name] = how(args[name])

    return spoil


def _gate_cases(op: str) -> list[BadInput]:
    return [
        _shape(op, "b", "narrower than `a`", lambda b: b[:, :7]),
        _dtype(op, "b", torch.bfloat16),
        _dtype(op, "a", torch.int32),
        _device(op, "b"),
    ]


CASES: list[BadInput] = [
    _dtype("rms_norm", "X", torch.int32),
    _shape("rms_norm", "W", "shorter than the last dimension of `X`", lambda w: w[:7]),
    BadInput(
        "rms_norm",
        "casting_mode",
        "`casting_mode` = `'llama3'`",
        "casting_mode",
        ValueError,
        _set(casting_mode="llama3"),
    ),
    _device("rms_norm", "W"),
    *_eps_cases("rms_norm"),
    BadInput("rms_norm", "eps-bool", "`eps` = True", "eps", TypeError, _set(eps=True)),
    BadInput("rms_norm", "offset-inf", "`offset` = inf", "offset", ValueError, _set(offset=math.inf)),
    _zero_dim("rms_norm", "X"),
    _empty_row("rms_norm", "X", "W"),
    _dtype("modulated_rms_norm", "X", torch.int32),
    _dtype("modulated_rms_norm", "scale", torch.int64),
    _shape("modulated_rms_norm", "W", "shorter than the last dimension of `X`", lambda w: w[:7]),
    _shape("modulated_rms_norm", "scale", "narrower than `X`", lambda s: s[:, :7]),
    _shape(
        "modulated_rms_norm",
        "scale",
        "(1, 3, 8) over `X` (2, 3, 8): per position, not a leading run of `X`'s dimensions",
        lambda s: torch.cat([s, s[:1]]).reshape(1, 3, 8),
        name="per-position",
    ),
    _shape(
        "modulated_rms_norm",
        "scale",
        "(3, 8): 3 rows, which divide 6 but are no leading run",
        lambda s: s[:1].repeat(3, 1),
        name="rows",
    ),
    _shape("modulated_rms_norm", "shift", "(1, 8) while `scale` has 2 rows", lambda s: s[:1]),
    BadInput(
        "modulated_rms_norm",
        "casting_mode",
        "`casting_mode` = `'llama3'`",
        "casting_mode",
        ValueError,
        _set(casting_mode="llama3"),
    ),
    _device("modulated_rms_norm", "scale"),
    _device("modulated_rms_norm", "shift"),
    _device("modulated_rms_norm", "W"),
    *_eps_cases("modulated_rms_norm"),
    BadInput("modulated_rms_norm", "offset-inf", "`offset` = inf", "offset", ValueError, _set(offset=math.inf)),
    _zero_dim("modulated_rms_norm", "X"),
    _empty_row("modulated_rms_norm", "X", "W", "scale", "shift"),
    *_eps_cases("fused_add_rms_norm"),
    _empty_row("fused_add_rms_norm", "X", "R", "W"),
    _shape("fused_add_rms_norm", "R", "narrower than `X`", lambda r: r[:, :7]),
    BadInput(
        "fused_add_rms_norm",
        "R-float16",
        "`R` of dtype float16 (`X` float32)",
        "R",
        TypeError,
        _change("R", lambda r: r.to(torch.float16)),
    ),
    _shape("fused_add_rms_norm", "W", "shorter than the last dimension of `X`", lambda w: w[:7]),
    BadInput(
        "fused_add_rms_norm",
        "casting_mode",
        "`casting_mode` = `'gemma2'`",
        "casting_mode",
        ValueError,
        _set(casting_mode="gemma2"),
    ),
    BadInput(
        "fused_add_rms_norm",
        "X-int64",
        "`X` and `R` of dtype int64",
        "X",
        TypeError,
        _each(lambda t: t.to(torch.int64), "X", "R"),
    ),
    _device("fused_add_rms_norm", "R"),
    _device("fused_add_rms_norm", "W"),
    _dtype("layer_norm", "X", torch.int32),
    _shape("layer_norm", "W", "shorter than the last dimension of `X`", lambda w: w[:7]),
    _shape("layer_norm", "B", "shorter than the last dimension of `X`", lambda b: b[:7]),
    _device("layer_norm", "W"),
    _device("layer_norm", "B"),
    *_eps_cases("layer_norm"),
    _zero_dim("layer_norm", "X"),
    _empty_row("layer_norm", "X", "W", "B"),
    *_eps_cases("group_norm"),
    BadInput(
        "group_norm",
        "X-no-positions",
        "`X` with a spatial dimension of 0 (groups of no values)",
        "X",
        ValueError,
        _change("X", _no_width),
    ),
    BadInput(
        "group_norm",
        "num_groups-zero",
        "`num_groups` = 0",
        "num_groups",
        ValueError,
        _set(num_groups=0),
    ),
    BadInput(
        "group_norm",
        "num_groups-float",
        "`num_groups` = 2.0 (a float)",
        "num_groups",
        TypeError,
        _set(num_groups=2.0),
    ),
    BadInput(
        "group_norm",
        "num_groups-indivisible",
        "`num_groups` = 3, not dividing `num_channels` = 4",
        "num_groups",
        ValueError,
        _set(num_groups=3),
    ),
    BadInput(
        "group_norm",
        "num_channels-mismatch",
        "`num_channels` = 6, not the channels of `X` (4)",
        "num_channels",
        ValueError,
        _set(num_channels=6),
    ),
    _shape("group_norm", "X", "1-D (no channel dimension)", lambda t: t[0, :, 0], "1d"),
    _shape("group_norm", "affine_scaling_weight", "not one per channel", lambda w: w[:3]),
    _shape("group_norm", "affine_shifting_bias", "not one per channel", lambda b: b[:3]),
    _dtype("group_norm", "X", torch.int32),
    _device("group_norm", "affine_scaling_weight"),
    _device("group_norm", "affine_shifting_bias"),
    *_eps_cases("poly_norm"),
    _empty_row("poly_norm", "X"),
    _shape("poly_norm", "W", "with 4 weights (not 3)", lambda w: torch.cat((w, w[:1]))),
    _shape("poly_norm", "W", "of shape (1, 3) (not 1-D)", lambda w: w.unsqueeze(0), "2d"),
    _shape("poly_norm", "B", "with 2 elements (not 1)", lambda b: torch.cat((b, b))),
    _shape("poly_norm", "B", "of shape (1, 1) (not 1-D)", lambda b: b.unsqueeze(0), "2d"),
    _dtype("poly_norm", "X", torch.int32),
    _device("poly_norm", "W"),
    _device("poly_norm", "B"),
    BadInput("rope", "q-3d", "`q` 3-D", "q", ValueError, _change("q", lambda t: t[0])),
    BadInput(
        "rope",
        "q-odd-head-dim",
        "`q`, `k`, `cos` and `sin` with an odd head_dim (5)",
        "q",
        ValueError,
        _each(lambda t: t[..., :5], "q", "k", "cos", "sin"),
    ),
    _shape("rope", "k", "with another sequence length than `q`", lambda t: t[:, :, :4], "seq"),
    BadInput(
        "rope", "sin-shape", "`sin` of another shape than `cos`", "cos", ValueError, _change("sin", lambda t: t[:-1])
    ),
    BadInput("rope", "cos-1d", "`cos` and `sin` 1-D", "cos", ValueError, _each(lambda t: t[0], "cos", "sin")),
    BadInput(
        "rope",
        "cos-head-dim",
        "`cos` and `sin` wider than the head_dim of `q`",
        "cos",
        ValueError,
        _each(lambda t: torch.cat((t, t), dim=-1), "cos", "sin"),
    ),
    BadInput("rope", "rotary_dim-odd", "`rotary_dim` = 3 (odd)", "rotary_dim", ValueError, _set(rotary_dim=3)),
    BadInput(
        "rope", "rotary_dim-wide", "`rotary_dim` = 8, above head_dim 6", "rotary_dim", ValueError, _set(rotary_dim=8)
    ),
    BadInput("rope", "rotary_dim-float", "`rotary_dim` = 6.0 (a float)", "rotary_dim", TypeError, _set(rotary_dim=6.0)),
    BadInput(
        "rope",
        "rotary_dim-table",
        "`rotary_dim` = 4 with `cos` 6 wide (neither 4 nor 2)",
        "cos",
        ValueError,
        _set(rotary_dim=4),
    ),
    _dtype("rope", "position_ids", torch.float32),
    _shape("rope", "position_ids", "shorter than the sequence", lambda t: t[:, :4], "length"),
    BadInput("rope", "unsqueeze_dim", "`unsqueeze_dim` = 3", "unsqueeze_dim", ValueError, _set(unsqueeze_dim=3)),
    _device("rope", "sin"),
    BadInput("qwen2vl_mrope", "q-3d", "`q` 3-D", "q", ValueError, _change("q", lambda t: t[0])),
    _dtype("qwen2vl_mrope", "q", torch.int32),
    BadInput(
        "qwen2vl_mrope",
        "q-odd-head-dim",
        "`q`, `k`, `cos` and `sin` with an odd head_dim (7)",
        "q",
        ValueError,
        _each(lambda t: t[..., :7], "q", "k", "cos", "sin"),
    ),
    _shape("qwen2vl_mrope", "k", "with another sequence length than `q`", lambda t: t[:, :, :4], "seq"),
    _shape("qwen2vl_mrope", "k", "with another batch than `q`", lambda t: t[:1], "batch"),
    _shape("qwen2vl_mrope", "k", "with another head_dim than `q`", lambda t: t[..., :6], "head-dim"),
    BadInput(
        "qwen2vl_mrope",
        "cos-3d",
        "`cos` and `sin` 3-D (no streams)",
        "cos",
        ValueError,
        _each(lambda t: t[0], "cos", "sin"),
    ),
    BadInput(
        "qwen2vl_mrope",
        "cos-two-streams",
        "`cos` and `sin` with 2 streams (not 3)",
        "cos",
        ValueError,
        _each(lambda t: t[:2], "cos", "sin"),
    ),
    BadInput(
        "qwen2vl_mrope",
        "cos-batch",
        "`cos` and `sin` with another batch than `q` (not 1 either)",
        "cos",
        ValueError,
        _each(lambda t: torch.cat((t, t), dim=1), "cos", "sin"),
    ),
    BadInput(
        "qwen2vl_mrope",
        "cos-seq",
        "`cos` and `sin` with another sequence length than `q`",
        "cos",
        ValueError,
        _each(lambda t: t[:, :, :4], "cos", "sin"),
    ),
    BadInput(
        "qwen2vl_mrope",
        "cos-head-dim",
        "`cos` and `sin` with another head_dim than `q`",
        "cos",
        ValueError,
        _each(lambda t: t[..., :6], "cos", "sin"),
    ),
    _shape("qwen2vl_mrope", "sin", "of another shape than `cos`", lambda t: t[:, :1]),
    _device("qwen2vl_mrope", "sin"),
    BadInput(
        "qwen2vl_mrope",
        "section-sum",
        "`mrope_section` = [2, 1, 2] (not summing to head_dim / 2)",
        "mrope_section",
        ValueError,
        _set(mrope_section=[2, 1, 2]),
    ),
    BadInput(
        "qwen2vl_mrope",
        "section-two",
        "`mrope_section` = [2, 2] (not 3 sections)",
        "mrope_section",
        ValueError,
        _set(mrope_section=[2, 2]),
    ),
    BadInput(
        "qwen2vl_mrope",
        "section-negative",
        "`mrope_section` = [3, -1, 2]",
        "mrope_section",
        ValueError,
        _set(mrope_section=[3, -1, 2]),
    ),
    BadInput(
        "qwen2vl_mrope",
        "section-float",
        "`mrope_section` = [2.0, 1, 1] (a float in it)",
        "mrope_section",
        TypeError,
        _set(mrope_section=[2.0, 1, 1]),
    ),
    BadInput(
        "qwen2vl_mrope",
        "section-int",
        "`mrope_section` = 4 (not a sequence)",
        "mrope_section",
        TypeError,
        _set(mrope_section=4),
    ),
    BadInput(
        "qwen2vl_mrope", "unsqueeze_dim", "`unsqueeze_dim` = 3", "unsqueeze_dim", ValueError, _set(unsqueeze_dim=3)
    ),
    *_gate_cases("swiglu"),
    BadInput(
        "swiglu",
        "gate_multiplier-str",
        "`gate_multiplier` = `'2'` (a string)",
        "gate_multiplier",
        TypeError,
        _set(gate_multiplier="2"),
    ),
    BadInput(
        "swiglu",
        "down_multiplier-nan",
        "`down_multiplier` = nan",
        "down_multiplier",
        ValueError,
        _set(down_multiplier=math.nan),
    ),
    *_gate_cases("geglu"),
    _shape("cross_entropy", "_input", "3-D", lambda t: t.unsqueeze(0), "3d"),
    _dtype("cross_entropy", "_input", torch.int64),
    _shape("cross_entropy", "target", "with fewer rows than `_input`", lambda t: t[:2]),
    _dtype("cross_entropy", "target", torch.float32),
    _shape("cross_entropy", "weight", "not one per class", lambda w: w[:9]),
    BadInput(
        "cross_entropy", "reduction", "`reduction` = `'average'`", "reduction", ValueError, _set(reduction="average")
    ),
    BadInput(
        "cross_entropy",
        "label_smoothing",
        "`label_smoothing` = 1.5",
        "label_smoothing",
        ValueError,
        _set(label_smoothing=1.5),
    ),
    BadInput("cross_entropy", "softcap-zero", "`softcap` = 0", "softcap", ValueError, _set(softcap=0.0)),
    _device("cross_entropy", "target"),
    _device("cross_entropy", "weight"),
    BadInput(
        "cross_entropy",
        "lse_square_scale-negative",
        "`lse_square_scale` = -0.1",
        "lse_square_scale",
        ValueError,
        _set(lse_square_scale=-0.1),
    ),
    BadInput(
        "cross_entropy",
        "lse_square_scale-nan",
        "`lse_square_scale` = nan",
        "lse_square_scale",
        ValueError,
        _set(lse_square_scale=math.nan),
    ),
    BadInput(
        "cross_entropy",
        "label_smoothing-str",
        "`label_smoothing` = `'0.1'` (a string)",
        "label_smoothing",
        TypeError,
        _set(label_smoothing="0.1"),
    ),
    BadInput("cross_entropy", "softcap-inf", "`softcap` = inf", "softcap", ValueError, _set(softcap=math.inf)),
    _empty_row("cross_entropy", "_input", what="vocabulary 0 (shape (rows, 0))"),
    _shape("fused_linear_cross_entropy", "_input", "3-D", lambda t: t.unsqueeze(0), "3d"),
    _shape(
        "fused_linear_cross_entropy", "weight", "with another hidden size than `_input`", lambda w: w[:, :7], "hidden"
    ),
    _dtype("fused_linear_cross_entropy", "weight", torch.int32),
    _shape("fused_linear_cross_entropy", "bias", "not one per vocabulary entry", lambda b: b[:9]),
    _shape("fused_linear_cross_entropy", "ce_weight", "not one per class", lambda w: w[:9]),
    _shape("fused_linear_cross_entropy", "target", "with fewer rows than `_input`", lambda t: t[:2]),
    BadInput(
        "fused_linear_cross_entropy",
        "reduction",
        "`reduction` = `'batchmean'`",
        "reduction",
        ValueError,
        _set(reduction="batchmean"),
    ),
    _device("fused_linear_cross_entropy", "weight"),
    _device("fused_linear_cross_entropy", "bias"),
    _device("fused_linear_cross_entropy", "ce_weight"),
    BadInput(
        "fused_linear_cross_entropy",
        "accum_dtype-str",
        "`accum_dtype` = `'float32'` (a string)",
        "accum_dtype",
        TypeError,
        _set(accum_dtype="float32"),
    ),
    BadInput(
        "fused_linear_cross_entropy",
        "accum_dtype-int",
        "`accum_dtype` = torch.int32",
        "accum_dtype",
        ValueError,
        _set(accum_dtype=torch.int32),
    ),
    BadInput(
        "fused_linear_cross_entropy",
        "lse_square_scale-negative",
        "`lse_square_scale` = -1",
        "lse_square_scale",
        ValueError,
        _set(lse_square_scale=-1.0),
    ),
    BadInput(
        "fused_linear_cross_entropy",
        "weight-no-vocab",
        "`weight`, `bias` and `ce_weight` with vocabulary 0 (`weight` of shape (0, hidden))",
        "weight",
        ValueError,
        lambda a: a.update(weight=a["weight"][:0], bias=a["bias"][:0], ce_weight=a["ce_weight"][:0]),
    ),
    _shape("jsd", "_input", "3-D", lambda t: t.unsqueeze(0), "3d"),
    _dtype("jsd", "_input", torch.int32),
    _shape("jsd", "target", "with another vocabulary than `_input`", lambda t: t[:, :9], "vocab"),
    _shape("jsd", "target", "with fewer rows than `_input`", lambda t: t[:2], "rows"),
    _dtype("jsd", "target", torch.int64),
    _shape("jsd", "shift_labels", "with fewer rows than `_input`", lambda t: t[:2]),
    _dtype("jsd", "shift_labels", torch.float32),
    BadInput("jsd", "beta-high", "`beta` = 1.5", "beta", ValueError, _set(beta=1.5)),
    BadInput("jsd", "beta-negative", "`beta` = -0.1", "beta", ValueError, _set(beta=-0.1)),
    _device("jsd", "target"),
    _device("jsd", "shift_labels"),
    BadInput(
        "jsd",
        "target-requires-grad",
        "`target` requires grad (it gets no gradient)",
        "target",
        ValueError,
        _change("target", lambda t: t.detach().requires_grad_()),
    ),
    BadInput("jsd", "beta-str", "`beta` = `'0.5'` (a string)", "beta", TypeError, _set(beta="0.5")),
    BadInput(
        "jsd", "ignore_index-float", "`ignore_index` = -100.0", "ignore_index", TypeError, _set(ignore_index=-100.0)
    ),
    _shape("fused_linear_jsd", "student_input", "3-D", lambda t: t.unsqueeze(0), "3d"),
    _shape(
        "fused_linear_jsd",
        "student_weight",
        "with another hidden size than `student_input`",
        lambda w: w[:, :-1],
        "hidden",
    ),
    _shape(
        "fused_linear_jsd",
        "teacher_weight",
        "with another hidden size than `teacher_input`",
        lambda w: w[:, :-1],
        "hidden",
    ),
    _shape(
        "fused_linear_jsd", "teacher_weight", "with another vocabulary than `student_weight`", lambda w: w[:9], "vocab"
    ),
    _shape("fused_linear_jsd", "teacher_input", "with fewer rows than `student_input`", lambda t: t[:2], "rows"),
    _dtype("fused_linear_jsd", "student_weight", torch.int32),
    _dtype("fused_linear_jsd", "teacher_input", torch.int32),
    _shape("fused_linear_jsd", "shift_labels", "with fewer rows than `student_input`", lambda t: t[:2]),
    BadInput("fused_linear_jsd", "jsd_beta", "`jsd_beta` = 2", "jsd_beta", ValueError, _set(jsd_beta=2.0)),
    BadInput(
        "fused_linear_jsd", "temperature-zero", "`temperature` = 0", "temperature", ValueError, _set(temperature=0.0)
    ),
    BadInput(
        "fused_linear_jsd",
        "temperature-negative",
        "`temperature` = -1",
        "temperature",
        ValueError,
        _set(temperature=-1.0),
    ),
    _device("fused_linear_jsd", "student_weight"),
    _device("fused_linear_jsd", "teacher_input"),
    _device("fused_linear_jsd", "teacher_weight"),
    _device("fused_linear_jsd", "shift_labels"),
    BadInput(
        "fused_linear_jsd",
        "temperature-str",
        "`temperature` = `'2'` (a string)",
        "temperature",
        TypeError,
        _set(temperature="2"),
    ),
    BadInput(
        "fused_linear_jsd",
        "temperature-inf",
        "`temperature` = inf",
        "temperature",
        ValueError,
        _set(temperature=math.inf),
    ),
    _shape("kl_div", "y_true", "with another last dimension than `y_pred`", lambda t: t[:, :5]),
    _dtype("kl_div", "y_pred", torch.int32),
    _dtype("kl_div", "y_true", torch.int64),
    _device("kl_div", "y_true"),
    BadInput(
        "kl_div",
        "y_pred-0d",
        "`y_pred` and `y_true` 0-D",
        "y_pred",
        ValueError,
        lambda a: a.update(y_pred=_scalar(a["y_pred"]), y_true=_scalar(a["y_true"])),
    ),
    BadInput("kl_div", "reduction", "`reduction` = `'average'`", "reduction", ValueError, _set(reduction="average")),
    *_eps_cases("kl_div", positive=True),
    _shape("tvd", "q", "with another last dimension than `p`", lambda t: t[:, :5]),
    _dtype("tvd", "p", torch.int32),
    _device("tvd", "q"),
    _shape("tvd", "shift_labels", "with fewer rows than `p`", lambda t: t[:-1]),
    _dtype("tvd", "shift_labels", torch.float32),
    _device("tvd", "shift_labels"),
    BadInput("tvd", "reduction", "`reduction` = `'average'`", "reduction", ValueError, _set(reduction="average")),
    _dtype("softmax", "input_", torch.int32),
    _zero_dim("softmax", "input_"),
    _empty_row("softmax", "input_"),
    _dtype("sparsemax", "x", torch.int32),
    _zero_dim("sparsemax", "x"),
    BadInput(
        "sparsemax",
        "x-empty-dim",
        "`x` of shape (2, 0, 3) with `dim` = 1 (an empty dimension to normalize)",
        "x",
        ValueError,
        lambda a: a.update(x=a["x"].new_ones((2, 0, 3)), dim=1),
    ),
    BadInput("sparsemax", "dim-too-large", "`dim` = 2 (for 2-D `x`)", "dim", ValueError, _set(dim=2)),
    BadInput("sparsemax", "dim-too-small", "`dim` = -3 (for 2-D `x`)", "dim", ValueError, _set(dim=-3)),
    BadInput("sparsemax", "dim-float", "`dim` = 1.0 (a float)", "dim", TypeError, _set(dim=1.0)),
    _shape("multi_token_attention", "scores", "3-D (no batch)", lambda t: t[0]),
    _shape(
        "multi_token_attention", "scores", "with L x (L - 1) scores (not square)", lambda t: t[..., :-1], "not-square"
    ),
    _dtype("multi_token_attention", "scores", torch.int32),
    BadInput(
        "multi_token_attention",
        "weight-dtype-mismatch",
        "`weight` of dtype float64 for float32 `scores`",
        "weight",
        TypeError,
        _change("weight", lambda t: t.double()),
    ),
    _shape(
        "multi_token_attention",
        "weight",
        "with 3 input channels per group (not 4 / groups = 2)",
        lambda t: t.repeat(1, 2, 1, 1)[:, :3],
        "in-channels",
    ),
    _shape("multi_token_attention", "weight", "3-D", lambda t: t[0]),
    _shape("multi_token_attention", "bias", "with 3 entries for 4 output channels", lambda t: t[:3]),
    _device("multi_token_attention", "weight"),
    _device("multi_token_attention", "bias"),
    BadInput(
        "multi_token_attention",
        "groups-not-dividing",
        "`groups` = 3 (4 channels)",
        "groups",
        ValueError,
        _set(groups=3),
    ),
    BadInput("multi_token_attention", "groups-zero", "`groups` = 0", "groups", ValueError, _set(groups=0)),
    BadInput("multi_token_attention", "stride-zero", "`stride` = 0", "stride", ValueError, _set(stride=0)),
    BadInput(
        "multi_token_attention", "stride-float", "`stride` = 1.5 (a float)", "stride", TypeError, _set(stride=1.5)
    ),
    BadInput("multi_token_attention", "padding-negative", "`padding` = -1", "padding", ValueError, _set(padding=-1)),
    BadInput(
        "multi_token_attention",
        "dilation-triple",
        "`dilation` = (1, 1, 1) (not a pair)",
        "dilation",
        TypeError,
        _set(dilation=(1, 1, 1)),
    ),
    BadInput(
        "multi_token_attention",
        "padding-not-square",
        "`padding` = (1, 0): a 6 x 4 output, which the causal mask cannot take",
        "padding",
        ValueError,
        _set(padding=(1, 0)),
    ),
    BadInput(
        "multi_token_attention", "sparse-str", "`sparse` = `'yes'` (a string)", "sparse", TypeError, _set(sparse="yes")
    ),
    _shape("dyt", "gamma", "shorter than the last dimension of `x`", lambda t: t[:5]),
    _shape("dyt", "beta", "shorter than the last dimension of `x`", lambda t: t[:5]),
    _shape("dyt", "alpha", "with 2 elements (not 1)", lambda t: torch.cat((t, t)), "two-elements"),
    _dtype("dyt", "x", torch.int32),
    _dtype("dyt", "gamma", torch.int32),
    _device("dyt", "alpha"),
    _device("dyt", "gamma"),
    _device("dyt", "beta"),
    _shape("fused_moe", "x", "3-D (batch, seq, hidden)", lambda t: t[None]),
    _shape("fused_moe", "gate_up_proj", "with I rows, not 2I (no up projection)", lambda t: t[:, :6], "no-up"),
    _shape("fused_moe", "down_proj", "with another hidden size than `x`", lambda t: t[:, :5], "hidden"),
    _shape("fused_moe", "top_k_index", "for another token count than `x`", lambda t: t[:2]),
    _shape("fused_moe", "top_k_weights", "of another shape than `top_k_index`", lambda t: t[:, :1]),
    _dtype("fused_moe", "top_k_index", torch.float32),
    _dtype("fused_moe", "x", torch.int32),
    _dtype("fused_moe", "down_proj", torch.float64),
    _device("fused_moe", "gate_up_proj"),
    _device("fused_moe", "top_k_index"),
    _dtype("relu_squared", "X", torch.int32),
    _dtype("relu_squared", "X", torch.bool),
    BadInput("relu_squared", "X-list", "`X` a list (not a tensor)", "X", TypeError, _change("X", lambda t: t.tolist())),
    _dtype("clamped_swiglu", "x", torch.int32),
    _shape("clamped_swiglu", "x", "with an odd last dimension (gate and up interleave)", lambda t: t[:, :7], "odd"),
    _zero_dim("clamped_swiglu", "x"),
    BadInput("clamped_swiglu", "alpha-nan", "`alpha` = nan", "alpha", ValueError, _set(alpha=math.nan)),
    BadInput("clamped_swiglu", "alpha-str", "`alpha` = `'1.702'` (a string)", "alpha", TypeError, _set(alpha="1.702")),
    BadInput("clamped_swiglu", "limit-zero", "`limit` = 0", "limit", ValueError, _set(limit=0.0)),
    BadInput("clamped_swiglu", "limit-inf", "`limit` = inf", "limit", ValueError, _set(limit=math.inf)),
    BadInput("llama4_rope", "q-3d", "`q` 3-D", "q", ValueError, _change("q", lambda t: t[0])),
    _dtype("llama4_rope", "q", torch.int32),
    BadInput(
        "llama4_rope",
        "q-odd-head-dim",
        "`q` and `k` with an odd head_dim (7)",
        "q",
        ValueError,
        _each(lambda t: t[..., :7], "q", "k"),
    ),
    _shape("llama4_rope", "k", "with another sequence length than `q`", lambda t: t[:, :4], "seq"),
    _shape("llama4_rope", "k", "with another batch than `q`", lambda t: t[:1], "batch"),
    _shape("llama4_rope", "k", "with another head_dim than `q`", lambda t: t[..., :6], "head-dim"),
    _device("llama4_rope", "k"),
    _shape("llama4_rope", "freqs_cis", "with another sequence length than `q`", lambda t: t[:, :4], "seq"),
    _shape(
        "llama4_rope",
        "freqs_cis",
        "with another batch than `q` (not 1 either)",
        lambda t: torch.cat((t, t, t)),
        "batch",
    ),
    _shape("llama4_rope", "freqs_cis", "not head_dim / 2 wide", lambda t: t[..., :3], "width"),
    _shape("llama4_rope", "freqs_cis", "1-D", lambda t: t[0, 0], "1d"),
    _shape("llama4_rope", "freqs_cis", "a 2-D table of fewer positions than the sequence", lambda t: t[0, :4], "table"),
    _shape(
        "llama4_rope",
        "freqs_cis",
        "real without the trailing (real, imaginary) dimension of 2",
        lambda t: torch.view_as_real(t)[..., 0],
        "real-no-pairs",
    ),
    BadInput(
        "llama4_rope",
        "freqs_cis-int32",
        "`freqs_cis` of dtype int32 (neither complex nor floating)",
        "freqs_cis",
        TypeError,
        _change("freqs_cis", lambda t: torch.view_as_real(t).to(torch.int32)),
    ),
    _device("llama4_rope", "freqs_cis"),
    BadInput("llama4_rope", "block-size-zero", "`BLOCK_SIZE` = 0", "BLOCK_SIZE", ValueError, _set(BLOCK_SIZE=0)),
    BadInput(
        "llama4_rope",
        "block-size-float",
        "`BLOCK_SIZE` = 64.0 (a float)",
        "BLOCK_SIZE",
        TypeError,
        _set(BLOCK_SIZE=64.0),
    ),
    BadInput(
        "vision_rope", "q-4d", "`q` 4-D (not (seq, heads, head_dim))", "q", ValueError, _change("q", lambda t: t[None])
    ),
    _dtype("vision_rope", "q", torch.int32),
    BadInput(
        "vision_rope",
        "q-odd-head-dim",
        "`q`, `k`, `cos` and `sin` with an odd head_dim (7)",
        "q",
        ValueError,
        _each(lambda t: t[..., :7], "q", "k", "cos", "sin"),
    ),
    _shape("vision_rope", "k", "with another sequence length than `q`", lambda t: t[:4], "seq"),
    _shape("vision_rope", "k", "with another head_dim than `q`", lambda t: t[..., :6], "head-dim"),
    _device("vision_rope", "k"),
    _shape("vision_rope", "cos", "3-D (batch, seq, head_dim)", lambda t: t[None], "3d"),
    _shape("vision_rope", "cos", "with another sequence length than `q`", lambda t: t[:4], "seq"),
    BadInput(
        "vision_rope",
        "cos-partial",
        "`cos` and `sin` narrower than head_dim (the vision rotary turns the whole head)",
        "cos",
        ValueError,
        _each(lambda t: t[..., :4], "cos", "sin"),
    ),
    _shape("vision_rope", "sin", "of another shape than `cos`", lambda t: t[:, :6]),
    _dtype("vision_rope", "cos", torch.int32),
    _device("vision_rope", "sin"),
    BadInput("llama4_vision_rope", "query-3d", "`query` 3-D", "query", ValueError, _change("query", lambda t: t[0])),
    _dtype("llama4_vision_rope", "query", torch.int32),
    BadInput(
        "llama4_vision_rope",
        "query-odd-head-dim",
        "`query` and `key` with an odd head_dim (7)",
        "query",
        ValueError,
        _each(lambda t: t[..., :7], "query", "key"),
    ),
    _shape("llama4_vision_rope", "key", "with another sequence length than `query`", lambda t: t[:, :4], "seq"),
    _shape("llama4_vision_rope", "key", "with another batch than `query`", lambda t: t[:1], "batch"),
    _shape("llama4_vision_rope", "key", "with another head_dim than `query`", lambda t: t[..., :6], "head-dim"),
    _device("llama4_vision_rope", "key"),
    _shape("llama4_vision_rope", "freqs_ci", "with another sequence length than `query`", lambda t: t[:4], "seq"),
    _shape("llama4_vision_rope", "freqs_ci", "not head_dim / 2 wide", lambda t: t[..., :3], "width"),
    _shape("llama4_vision_rope", "freqs_ci", "flattened to 1-D", lambda t: t.reshape(-1), "1d"),
    _shape(
        "llama4_vision_rope",
        "freqs_ci",
        "in its real form (torch.view_as_real: a trailing 2)",
        torch.view_as_real,
        "real-form",
    ),
    BadInput(
        "llama4_vision_rope",
        "freqs_ci-int32",
        "`freqs_ci` of dtype int32 (neither complex nor floating)",
        "freqs_ci",
        TypeError,
        _change("freqs_ci", lambda t: t.real.to(torch.int32)),
    ),
    _device("llama4_vision_rope", "freqs_ci"),
    _shape("selective_log_softmax", "logits", "2-D", lambda t: t[:, 0]),
    _dtype("selective_log_softmax", "logits", torch.int32),
    _empty_row("selective_log_softmax", "logits", what="an empty vocabulary"),
    _shape("selective_log_softmax", "input_ids", "with fewer columns than the completion", lambda t: t[:, 1:]),
    _dtype("selective_log_softmax", "input_ids", torch.float32),
    _device("selective_log_softmax", "input_ids"),
    BadInput(
        "selective_log_softmax",
        "input_ids-out-of-range",
        "`input_ids` holding an id >= the vocabulary (checked on the CPU)",
        "input_ids",
        IndexError,
        _change("input_ids", lambda t: torch.full_like(t, 10)),
    ),
    _shape("selective_log_softmax", "mask", "with another batch", lambda t: t[:1]),
    _dtype("selective_log_softmax", "mask", torch.complex64),
    BadInput(
        "selective_log_softmax",
        "temperature-zero",
        "`temperature` = 0",
        "temperature",
        ValueError,
        _set(temperature=0.0),
    ),
    _shape("grpo_loss", "logits", "2-D", lambda t: t[:, 0]),
    _dtype("grpo_loss", "logits", torch.int64),
    _shape("grpo_loss", "completion_ids", "with another length than the logits' positions - 1", lambda t: t[:, 1:]),
    _dtype("grpo_loss", "completion_ids", torch.float32),
    _shape("grpo_loss", "old_logp", "with another length", lambda t: t[:, 1:]),
    _shape("grpo_loss", "ref_logp", "with another batch", lambda t: t[:1]),
    _shape("grpo_loss", "advantages", "(B, 1), not (B,)", lambda t: t.unsqueeze(-1)),
    _dtype("grpo_loss", "advantages", torch.int64),
    _shape("grpo_loss", "completion_mask", "with another length", lambda t: t[:, 1:]),
    _device("grpo_loss", "advantages"),
    _device("grpo_loss", "completion_mask"),
    BadInput(
        "grpo_loss",
        "ref_logp-missing",
        "`ref_logp` None with beta != 0",
        "ref_logp",
        ValueError,
        _set(ref_logp=None),
    ),
    BadInput(
        "grpo_loss",
        "old_logp-requires-grad",
        "`old_logp` requiring grad (it takes no gradient)",
        "old_logp",
        ValueError,
        _change("old_logp", lambda t: t.detach().requires_grad_()),
    ),
    BadInput(
        "grpo_loss",
        "completion_ids-out-of-range",
        "`completion_ids` holding a negative id (checked on the CPU)",
        "completion_ids",
        IndexError,
        _change("completion_ids", lambda t: torch.full_like(t, -1)),
    ),
    BadInput("grpo_loss", "loss_type", "`loss_type` = `'ppo'`", "loss_type", ValueError, _set(loss_type="ppo")),
    BadInput(
        "grpo_loss",
        "importance-sampling-level",
        "`importance_sampling_level` = `'row'`",
        "importance_sampling_level",
        ValueError,
        _set(importance_sampling_level="row"),
    ),
    BadInput(
        "grpo_loss",
        "sequence-level-sapo",
        "`importance_sampling_level` = `'sequence'` with loss_type `'sapo'`",
        "importance_sampling_level",
        ValueError,
        _set(importance_sampling_level="sequence", loss_type="sapo"),
    ),
    BadInput("grpo_loss", "temperature-zero", "`temperature` = 0", "temperature", ValueError, _set(temperature=0.0)),
    BadInput("grpo_loss", "beta-negative", "`beta` = -0.1", "beta", ValueError, _set(beta=-0.1)),
    BadInput("grpo_loss", "eps_high-str", "`eps_high` = `'0.2'`", "eps_high", TypeError, _set(eps_high="0.2")),
    BadInput("grpo_loss", "inplace-int", "`inplace` = 1 (not a bool)", "inplace", TypeError, _set(inplace=1)),
    BadInput(
        "grpo_loss",
        "sapo-temperature",
        "`sapo_temperature_neg` = 0",
        "sapo_temperature_neg",
        ValueError,
        _set(sapo_temperature_neg=0.0, loss_type="sapo"),
    ),
    BadInput("grpo_loss", "delta-zero", "`delta` = 0", "delta", ValueError, _set(delta=0.0)),
    BadInput(
        "grpo_loss",
        "delta-cispo",
        "`delta` with loss_type `'cispo'`",
        "delta",
        ValueError,
        _set(delta=2.0, loss_type="cispo"),
    ),
    BadInput(
        "grpo_loss",
        "vllm_is_ratio-shape",
        "`vllm_is_ratio` of shape (B, L + 1)",
        "vllm_is_ratio",
        ValueError,
        _set(vllm_is_ratio=torch.ones(2, 4)),
    ),
    BadInput(
        "grpo_loss",
        "phi_seq-missing",
        "`phi_seq` None with loss_type `'vespo'`",
        "phi_seq",
        ValueError,
        _set(loss_type="vespo"),
    ),
    BadInput(
        "grpo_loss",
        "phi_seq-not-vespo",
        "`phi_seq` given with loss_type `'grpo'`",
        "phi_seq",
        ValueError,
        _set(phi_seq=torch.ones(2)),
    ),
    _shape("vocab_parallel_cross_entropy", "vocab_parallel_logits", "2-D, not (seq, batch, vocab)", lambda t: t[0]),
    _dtype("vocab_parallel_cross_entropy", "vocab_parallel_logits", torch.int64),
    _empty_row("vocab_parallel_cross_entropy", "vocab_parallel_logits", what="an empty vocabulary shard"),
    _shape("vocab_parallel_cross_entropy", "target", "with another batch", lambda t: t[:, :1]),
    _dtype("vocab_parallel_cross_entropy", "target", torch.float32),
    _device("vocab_parallel_cross_entropy", "target"),
    BadInput(
        "vocab_parallel_cross_entropy",
        "target-out-of-range",
        "`target` holding a class >= the vocabulary (checked on the CPU)",
        "target",
        IndexError,
        _change("target", lambda t: torch.full_like(t, 10)),
    ),
    BadInput(
        "vocab_parallel_cross_entropy",
        "label_smoothing-one",
        "`label_smoothing` = 1 (must be below 1)",
        "label_smoothing",
        ValueError,
        _set(label_smoothing=1.0),
    ),
    BadInput(
        "vocab_parallel_cross_entropy",
        "label_smoothing_formula",
        "`label_smoothing_formula` = `'nemo'`",
        "label_smoothing_formula",
        ValueError,
        _set(label_smoothing_formula="nemo"),
    ),
    BadInput(
        "vocab_parallel_cross_entropy",
        "label_smoothing_mode",
        "`label_smoothing_mode` = `'local'`",
        "label_smoothing_mode",
        ValueError,
        _set(label_smoothing_mode="local"),
    ),
    BadInput(
        "vocab_parallel_cross_entropy",
        "megatron-one-class",
        "`label_smoothing_formula` `'megatron'` over a vocabulary of 1 class",
        "label_smoothing_formula",
        ValueError,
        lambda args: args.update(
            label_smoothing_formula="megatron",
            vocab_parallel_logits=args["vocab_parallel_logits"][..., :1],
            target=torch.zeros_like(args["target"]),
        ),
    ),
    BadInput(
        "vocab_parallel_cross_entropy",
        "tp_group-not-a-group",
        "`tp_group` = 2 (not a ProcessGroup)",
        "tp_group",
        TypeError,
        _set(tp_group=2),
    ),
    _shape("fused_linear_scaled_cross_entropy", "_input", "1-D", lambda t: t[0]),
    _dtype("fused_linear_scaled_cross_entropy", "_input", torch.int32),
    _shape("fused_linear_scaled_cross_entropy", "weight", "with another hidden size", lambda t: t[:, 1:]),
    BadInput(
        "fused_linear_scaled_cross_entropy",
        "weight-other-dtype",
        "`weight` of another floating dtype than `_input`",
        "weight",
        TypeError,
        _change("weight", lambda t: t.double()),
    ),
    _shape("fused_linear_scaled_cross_entropy", "target", "with another row count", lambda t: t[1:]),
    _dtype("fused_linear_scaled_cross_entropy", "target", torch.float32),
    _device("fused_linear_scaled_cross_entropy", "weight"),
    BadInput(
        "fused_linear_scaled_cross_entropy",
        "target-out-of-range",
        "`target` holding a class >= the vocabulary (checked on the CPU)",
        "target",
        IndexError,
        _change("target", lambda t: torch.full_like(t, 10)),
    ),
    BadInput(
        "fused_linear_scaled_cross_entropy",
        "temperature-zero",
        "`temperature` = 0",
        "temperature",
        ValueError,
        _set(temperature=0.0),
    ),
    BadInput(
        "fused_linear_scaled_cross_entropy",
        "return_entropy-int",
        "`return_entropy` = 1 (not a bool)",
        "return_entropy",
        TypeError,
        _set(return_entropy=1),
    ),
    BadInput(
        "fused_linear_scaled_cross_entropy",
        "m_tiles_per_cluster-zero",
        "`m_tiles_per_cluster` = 0",
        "m_tiles_per_cluster",
        ValueError,
        _set(m_tiles_per_cluster=0),
    ),
    _dtype("fused_linear_scaled_cross_entropy", "selected_token_ids", torch.int32),
    _shape("fused_linear_scaled_cross_entropy", "selected_token_ids", "2-D", lambda t: t.view(1, -1)),
    BadInput(
        "fused_linear_scaled_cross_entropy",
        "selected_token_ids-out-of-range",
        "`selected_token_ids` holding an id >= the vocabulary (checked on the CPU)",
        "selected_token_ids",
        IndexError,
        _change("selected_token_ids", lambda t: torch.full_like(t, 10)),
    ),
    _shape("embedding", "embeddings", "1-D", lambda t: t[0]),
    _dtype("embedding", "embeddings", torch.int32),
    _dtype("embedding", "indices", torch.float32),
    _device("embedding", "indices"),
    BadInput(
        "embedding",
        "indices-out-of-range",
        "`indices` holding an index >= the table's rows (checked on the CPU)",
        "indices",
        IndexError,
        _change("indices", lambda t: torch.full_like(t, 10)),
    ),
    BadInput(
        "embedding",
        "indices-negative",
        "`indices` holding a negative index (checked on the CPU)",
        "indices",
        IndexError,
        _change("indices", lambda t: torch.full_like(t, -1)),
    ),
    BadInput(
        "embedding",
        "padding_idx-range",
        "`padding_idx` >= the table's rows",
        "padding_idx",
        ValueError,
        _set(padding_idx=10),
    ),
    BadInput(
        "embedding", "padding_idx-float", "`padding_idx` a float", "padding_idx", TypeError, _set(padding_idx=1.0)
    ),
    _shape("fused_linear_kl_div", "student_input", "3-D", lambda t: t.unsqueeze(0), "3d"),
    _shape(
        "fused_linear_kl_div",
        "student_weight",
        "with another hidden size than `student_input`",
        lambda w: w[:, :-1],
        "hidden",
    ),
    _shape(
        "fused_linear_kl_div", "target", "with another vocabulary than `student_weight`", lambda t: t[:, :9], "vocab"
    ),
    _shape("fused_linear_kl_div", "target", "with fewer rows than `student_input`", lambda t: t[:2], "rows"),
    _dtype("fused_linear_kl_div", "student_weight", torch.int32),
    _dtype("fused_linear_kl_div", "target", torch.int64),
    _shape("fused_linear_kl_div", "shift_labels", "with fewer rows than `student_input`", lambda t: t[:2]),
    _dtype("fused_linear_kl_div", "shift_labels", torch.float32),
    BadInput(
        "fused_linear_kl_div",
        "reduction-none",
        "`reduction` = `'none'` (the fused op needs a scalar loss)",
        "reduction",
        ValueError,
        _set(reduction="none"),
    ),
    BadInput(
        "fused_linear_kl_div", "reduction", "`reduction` = `'avg'`", "reduction", ValueError, _set(reduction="avg")
    ),
    BadInput(
        "fused_linear_kl_div",
        "temperature-zero",
        "`temperature` = 0",
        "temperature",
        ValueError,
        _set(temperature=0.0),
    ),
    BadInput(
        "fused_linear_kl_div",
        "temperature-negative",
        "`temperature` = -1",
        "temperature",
        ValueError,
        _set(temperature=-1.0),
    ),
    *_eps_cases("fused_linear_kl_div", positive=True),
    BadInput(
        "fused_linear_kl_div",
        "ignore_index-float",
        "`ignore_index` = -100.0",
        "ignore_index",
        TypeError,
        _set(ignore_index=-100.0),
    ),
    BadInput(
        "fused_linear_kl_div",
        "accum_dtype",
        "`accum_dtype` = torch.int32",
        "accum_dtype",
        ValueError,
        _set(accum_dtype=torch.int32),
    ),
    BadInput(
        "fused_linear_kl_div",
        "target-requires-grad",
        "`target` requires grad (it gets no gradient)",
        "target",
        ValueError,
        _change("target", lambda t: t.detach().requires_grad_()),
    ),
    _device("fused_linear_kl_div", "student_weight"),
    _device("fused_linear_kl_div", "target"),
    _device("fused_linear_kl_div", "shift_labels"),
    _zero_dim("fused_ce_tvd", "student_logits"),
    _empty_row("fused_ce_tvd", "student_logits", "teacher_logits", what="an empty vocabulary"),
    _shape("fused_ce_tvd", "teacher_logits", "narrower than `student_logits`", lambda t: t[:, :9]),
    _shape("fused_ce_tvd", "target", "with fewer rows than `student_logits`", lambda t: t[:2]),
    _dtype("fused_ce_tvd", "student_logits", torch.int32),
    _dtype("fused_ce_tvd", "teacher_logits", torch.int64),
    _dtype("fused_ce_tvd", "target", torch.float32),
    BadInput(
        "fused_ce_tvd",
        "target-out-of-range",
        "`target` holding the vocabulary size (checked on the CPU)",
        "target",
        IndexError,
        _change("target", lambda t: torch.full_like(t, 10)),
    ),
    BadInput(
        "fused_ce_tvd",
        "teacher_logits-requires-grad",
        "`teacher_logits` requires grad (it gets no gradient)",
        "teacher_logits",
        ValueError,
        _change("teacher_logits", lambda t: t.detach().requires_grad_()),
    ),
    BadInput(
        "fused_ce_tvd",
        "ignore_index-float",
        "`ignore_index` = -100.0",
        "ignore_index",
        TypeError,
        _set(ignore_index=-100.0),
    ),
    _device("fused_ce_tvd", "teacher_logits"),
    _device("fused_ce_tvd", "target"),
    BadInput(
        "mhc_coeffs",
        "x-float32-not-allowed",
        "`x` float32 with `allow_fp32` = False",
        "x",
        TypeError,
        _set(allow_fp32=False),
    ),
    _dtype("mhc_coeffs", "x", torch.float64),
    BadInput("mhc_coeffs", "x-2d", "`x` 2-D (no stream axis)", "x", ValueError, _change("x", lambda t: t[0])),
    _shape("mhc_coeffs", "phi", "with M = 7 columns (not HC*HC + 2*HC)", lambda t: t[:, :7], "columns"),
    _shape("mhc_coeffs", "phi", "with K = 6 rows (not HC*C)", lambda t: t[:6], "rows"),
    _shape("mhc_coeffs", "b", "with 7 entries (not M)", lambda t: t[:7]),
    _shape("mhc_coeffs", "alpha_res", "with 2 elements (not 1)", lambda t: torch.stack((t, t)), "two-elements"),
    _dtype("mhc_coeffs", "phi", torch.int32),
    _device("mhc_coeffs", "phi"),
    _device("mhc_coeffs", "alpha_pre"),
    BadInput("mhc_coeffs", "tmax-zero", "`tmax` = 0", "tmax", ValueError, _set(tmax=0)),
    BadInput("mhc_coeffs", "tmax-float", "`tmax` = 20.0 (a float)", "tmax", TypeError, _set(tmax=20.0)),
    BadInput("mhc_coeffs", "rms_eps-negative", "`rms_eps` = -1e-06", "rms_eps", ValueError, _set(rms_eps=-1e-6)),
    BadInput(
        "mhc_coeffs",
        "sinkhorn_eps-nan",
        "`sinkhorn_eps` = nan",
        "sinkhorn_eps",
        ValueError,
        _set(sinkhorn_eps=math.nan),
    ),
    BadInput(
        "mhc_coeffs", "allow_fp32-int", "`allow_fp32` = 1 (not a bool)", "allow_fp32", TypeError, _set(allow_fp32=1)
    ),
    _shape("mhc_pre", "h_pre", "with 3 streams (x has 2)", lambda t: torch.cat((t, t[:, :1]), 1), "streams"),
    _dtype("mhc_pre", "x", torch.int32),
    _dtype("mhc_pre", "h_pre", torch.float64),
    BadInput("mhc_pre", "x-2d", "`x` 2-D (no stream axis)", "x", ValueError, _change("x", lambda t: t[0])),
    _device("mhc_pre", "h_pre"),
    _shape("mhc_post_res", "f_out", "with another width than `x`", lambda t: t[:, :3]),
    _shape("mhc_post_res", "h_post", "for one token (x has 2)", lambda t: t[:1]),
    _shape("mhc_post_res", "h_res", "(2, 2) per token with HC missing", lambda t: t[:, 0]),
    _dtype("mhc_post_res", "f_out", torch.int32),
    _device("mhc_post_res", "h_res"),
    _shape("attn_res", "w_query", "shorter than the last dimension of `V_stacked`", lambda t: t[:5]),
    _shape("attn_res", "w_norm", "shorter than the last dimension of `V_stacked`", lambda t: t[:5]),
    BadInput(
        "attn_res",
        "V_stacked-1d",
        "`V_stacked` 1-D",
        "V_stacked",
        ValueError,
        _change("V_stacked", lambda t: t[0, 0, 0]),
    ),
    BadInput(
        "attn_res",
        "V_stacked-no-blocks",
        "`V_stacked` with N = 0 blocks",
        "V_stacked",
        ValueError,
        _change("V_stacked", lambda t: t[:0]),
    ),
    _dtype("attn_res", "V_stacked", torch.int32),
    _dtype("attn_res", "w_norm", torch.float64),
    _device("attn_res", "w_query"),
    *_eps_cases("attn_res"),
]


def cases(op: str) -> list[BadInput]:
    found = [case for case in CASES if case.op == op]
    assert found, f"no bad-input case for {op!r}"
    return found


def case_id(case: BadInput) -> str:
    return case.name


def expect_refused(case: BadInput, device: torch.device, rng: torch.Generator) -> None:
    """Call the op with the spoiled arguments: it must raise the case's error naming its argument."""
    args = valid_arguments(case.op, device, rng)
    case.spoil(args)
    with raises_naming(case.error, case.argument):
        entry_point(case.op)(**args)


def markdown() -> str:
    """The README table: one row per case, ops in the order of ``liger_kernel.ops.OPS``,
    each adapter after the op it runs through."""
    order = {op: (index, "") for index, op in enumerate(OPS)}
    order.update((name, (order[op][0], name)) for name, (_, _, op) in ADAPTERS.items())
    lines = ["| op | bad input | error | names |", "|---|---|---|---|"]
    for case in sorted(CASES, key=lambda c: order[c.op]):
        lines.append(f"| `{case.op}` | {case.what} | `{case.error.__name__}` | `{case.argument}` |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m liger_conformance.bad_inputs", description=__doc__.split("\n")[0])
    parser.add_argument("--markdown", action="store_true", help="print the README table (op x bad input -> error)")
    options = parser.parse_args(argv)
    if options.markdown:
        sys.stdout.write(markdown())
    else:
        for case in CASES:
            print(f"{case.op}::{case.name}: {case.error.__name__} naming {case.argument}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
