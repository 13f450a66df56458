"""Cross-entropy over logits whose vocabulary is split across a tensor-parallel group.

Each of the ``W`` ranks of ``tp_group`` holds a contiguous shard of the
vocabulary: rank r's ``vocab_parallel_logits`` (S, B, V_local) are the columns
[r * V_local, (r + 1) * V_local) of the full (S, B, V) logits, V = W * V_local,
and every rank holds the same ``target`` (S, B) of global class indices. For a
row with logits x and target t (on whichever rank it lies), with the
smoothing strength ``alpha`` and ``K`` the classes the smoothing averages over:
    lse   = log(sum_j exp(x_j))                 over all V classes
    nll   = lse - x_t
    loss  = (1 - a) * nll + a * (lse - (1 / K) * sum_{j in K} x_j)
where ``a`` is ``alpha`` (``label_smoothing_formula="pytorch"``: the target
distribution is (1 - alpha) one-hot + alpha / K uniform, as
``torch.nn.functional.cross_entropy(label_smoothing=alpha)``) or
``alpha * K / (K - 1)`` (``"megatron"``: 1 - alpha on the target and
alpha / (K - 1) on every other class, Megatron-LM's rule), and the averaged
classes are all V (``label_smoothing_mode="global"``: the same loss on every
rank, that of the unsharded logits) or the rank's own V_local
(``"partition"``: no extra all-reduce, the loss differs per rank, as
Megatron-LM's vocab-parallel cross-entropy computes it). With W = 1 the two
modes agree. Rows whose target is ``ignore_index`` have loss 0 and no gradient.
A target outside [0, V) that is not ``ignore_index`` is an error (IndexError)
where it can be checked without a host synchronization (see
``require_indices_in_range``), else a NaN loss and gradient for its row.

The loss is per row, (S, B), float32 (float64 for float64 logits); nothing is
reduced. Backward, with p = softmax(x) over all V and g the row's incoming
gradient, each rank gets the gradient of its loss with respect to its shard:
    dx_j = g * (p_j - a / K * [j in K] - (1 - a) * [j == t])
in the logits' dtype. The all-reduces run over ``tp_group`` (None, or a group
of one rank: no communication): the max, then one sum of (sum-exp, target
logit, and in "global" mode the sum of the logits) per row; backward needs none.

Memory: the shard is read once forward and once backward (no fp32 copy of it,
no exp buffer is kept: backward recomputes p from the saved per-row lse). As
the contract allows (``overwrites``), the gradient is written over the logits
when they require grad and are not a leaf (the LM head's output).

The signature and names are 0.8.5's (``LigerVocabParallelCEFunction``,
``validate_formula_and_mode``; every argument positional and required, the
module :class:`liger_kernel.transformers.LigerVocabParallelCrossEntropy` has
the defaults). A call with a ``tp_group`` never
goes through the ``liger::`` operator (a process group cannot cross a PyTorch
operator): under ``torch.compile`` it runs eagerly, as a graph break.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from liger_kernel.dispatch import dispatcher
from liger_kernel.ops._contract import (
    FLOAT_DTYPES,
    INDEX_DTYPES,
    DispatchedFunction,
    require_choice,
    require_indices_in_range,
    require_int,
    require_ndim,
    require_real,
    require_rows,
    require_same_device,
    require_shape,
    require_tensor,
)
from liger_kernel.ops.cross_entropy import loss_dtype

FORMULAS = ("pytorch", "megatron")
MODES = ("global", "partition")


def validate_formula_and_mode(label_smoothing_formula: str, label_smoothing_mode: str) -> None:
    """Raise ValueError unless the formula is one of FORMULAS and the mode one of MODES."""
    require_choice("label_smoothing_formula", label_smoothing_formula, FORMULAS)
    require_choice("label_smoothing_mode", label_smoothing_mode, MODES)


def check_scalar_options(
    ignore_index: int, label_smoothing: float, label_smoothing_formula: str, label_smoothing_mode: str
) -> None:
    """The options that are plain numbers or names (also checked when the module is built)."""
    require_int("ignore_index", ignore_index)
    require_real("label_smoothing", label_smoothing, minimum=0.0)
    if label_smoothing >= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    validate_formula_and_mode(label_smoothing_formula, label_smoothing_mode)


def group_size(tp_group: Any) -> int:
    """Ranks of ``tp_group``; 1 for None. A group must be a torch.distributed ProcessGroup."""
    if tp_group is None:
        return 1
    size = getattr(tp_group, "size", None)
    if not callable(size):
        raise TypeError(f"tp_group must be a torch.distributed ProcessGroup or None, got {type(tp_group).__name__}")
    return int(size())


def smoothing_weights(label_smoothing: float, formula: str, classes: int) -> tuple[float, float]:
    """(a, a / K) of the module docstring for ``classes`` = K averaged classes."""
    if label_smoothing == 0:
        return 0.0, 0.0
    if formula == "megatron":
        if classes < 2:
            raise ValueError(
                "label_smoothing_formula='megatron' spreads the smoothing over the K - 1 non-target classes, "
                f"so it needs K >= 2 averaged classes, got {classes}"
            )
        alpha = label_smoothing * classes / (classes - 1)
    else:
        alpha = label_smoothing
    return alpha, alpha / classes


class LigerVocabParallelCEFunction(DispatchedFunction):
    op = "vocab_parallel_cross_entropy"
    overwrites = ("vocab_parallel_logits",)
    backward_reads = ("vocab_parallel_logits", "target")

    @staticmethod
    def outputs(vocab_parallel_logits, target, tp_group, ignore_index, label_smoothing, label_smoothing_formula,
                label_smoothing_mode):  # fmt: skip
        return ((tuple(vocab_parallel_logits.shape[:2]), loss_dtype(vocab_parallel_logits.dtype)),)

    @staticmethod
    def check(
        vocab_parallel_logits: torch.Tensor,
        target: torch.Tensor,
        tp_group: Any,
        ignore_index: int,
        label_smoothing: float,
        label_smoothing_formula: str,
        label_smoothing_mode: str,
    ) -> None:
        require_tensor("vocab_parallel_logits", vocab_parallel_logits, FLOAT_DTYPES)
        if vocab_parallel_logits.dim() != 3:
            raise ValueError(
                "vocab_parallel_logits must be 3-D ([seq, batch, vocab shard]), got shape "
                f"{tuple(vocab_parallel_logits.shape)} (Hugging Face's [batch, seq, vocab] callers transpose first)"
            )
        require_rows("vocab_parallel_logits", vocab_parallel_logits, "the vocabulary shard")
        require_tensor("target", target, INDEX_DTYPES)
        require_ndim("target", target, (2,))
        require_shape("target", target, tuple(vocab_parallel_logits.shape[:2]), "one target per (seq, batch) row")
        check_scalar_options(ignore_index, label_smoothing, label_smoothing_formula, label_smoothing_mode)
        require_same_device("vocab_parallel_logits", {"vocab_parallel_logits": vocab_parallel_logits, "target": target})
        shard = vocab_parallel_logits.shape[-1]
        world = group_size(tp_group)
        classes = shard * world if label_smoothing_mode == "global" else shard
        smoothing_weights(label_smoothing, label_smoothing_formula, classes)
        require_indices_in_range("target", target, shard * world, f"a target of {shard * world} classes", ignore_index)

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            args = cls._bind(args, kwargs)
        if len(args) > 2 and args[2] is not None:
            cls.check(*args)
            return sharded_call(cls, args)
        return super().apply(*args)


def sharded_call(cls: type[DispatchedFunction], args: tuple[Any, ...]) -> Any:
    """The eager route of a call with a multi-rank group (the process group
    cannot be an operator argument, so torch.compile breaks the graph here)."""
    return _eager_sharded_call()(cls, args)


@functools.cache
def _eager_sharded_call() -> Callable[..., Any]:
    # wrapped on first use: torch.compiler.disable imports torch._dynamo, and it imports triton
    return torch.compiler.disable(_sharded_call)


def _sharded_call(cls: type[DispatchedFunction], args: tuple[Any, ...]) -> Any:
    return dispatcher.function(cls.op, args[0].device.type, cls.__name__).apply(*args)
