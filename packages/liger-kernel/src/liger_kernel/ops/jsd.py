"""Generalized Jensen-Shannon divergence between two distributions given as log-probabilities.

For row i, with X = input[i] = log Q (the student) and Y = target[i] = log P
(the teacher), both of width V, and P = exp(Y), Q = exp(X):
    beta = 0:   l_j = P_j * (Y_j - X_j)                       KL(P || Q), the forward KL
    beta = 1:   l_j = Q_j * (X_j - Y_j)                       KL(Q || P), the reverse KL
    otherwise:  M_j = beta * P_j + (1 - beta) * Q_j
                l_j = beta * P_j * (Y_j - log M_j) + (1 - beta) * Q_j * (X_j - log M_j)
                                                  beta * KL(P || M) + (1 - beta) * KL(Q || M)
    loss_i = sum_j l_j
A term whose probability (P_j or Q_j) is 0 contributes 0, as p log p -> 0:
-inf entries (a masked vocabulary) and log-probabilities too small for the
compute dtype are fine. Rows whose ``shift_labels`` entry equals
``ignore_index`` contribute nothing and are not counted:
    loss = sum over kept rows of loss_i / (number of kept rows)
which is 0 (not nan) when every row is ignored. Without ``shift_labels`` every
row is kept.

The gradient goes to ``input`` only, per element, with
the same divisor, X taken as free coordinates (no renormalization):
    beta = 0:   dl_j/dX_j = -P_j
    beta = 1:   dl_j/dX_j = Q_j * (X_j - Y_j + 1)
    otherwise:  dl_j/dX_j = (1 - beta) * Q_j * (X_j - log M_j)
and 0 on ignored rows. Two identities that backends use: for beta = 1,
dl_j/dX_j = l_j + Q_j; otherwise dl_j/dX_j is also the student's term of l_j,
so l_j = beta * P_j * (Y_j - log M_j) + dl_j/dX_j. Backends may compute it in the forward pass and scale
it by the incoming gradient in backward. ``target`` takes no gradient:
passing a target that requires grad while autograd records is an error
(detach it), as for kl_div's y_true.

The loss is returned in float32 for half-precision input (float64 for float64).

``jsd_impl`` and ``jsd_mode`` are 0.8.5's per-call implementation choice, consumed
by the contract: ``jsd_impl`` names the backend this call routes to (as
:func:`liger_kernel.use_backend` takes it; None: the usual selection), and
``jsd_mode`` must be None or "default" (each backend has one JSD kernel; 0.8.5's
modes pick among kernel variants that do not exist here).
"""

from __future__ import annotations

import torch

from liger_kernel.ops._contract import (
    INDEX_DTYPES,
    DispatchedFunction,
    check_implementation_choice,
    implementation_context,
    require_int,
    require_ndim,
    require_no_grad,
    require_real,
    require_same_device,
    require_shape,
    require_tensor,
)
from liger_kernel.ops.cross_entropy import loss_dtype


def check_beta(name: str, beta: float) -> None:
    require_real(name, beta, minimum=0.0, maximum=1.0)


def check_scalar_options(beta_name: str, beta: float, ignore_index: int) -> None:
    """The options that are plain values (also checked when a loss module is built)."""
    check_beta(beta_name, beta)
    require_int("ignore_index", ignore_index)


def check_shift_labels(shift_labels: torch.Tensor | None, rows: int) -> None:
    if shift_labels is not None:
        require_tensor("shift_labels", shift_labels, INDEX_DTYPES)
        require_shape("shift_labels", shift_labels, (rows,), "one label per row of the input")


class LigerJSDFunction(DispatchedFunction):
    op = "jsd"
    backward_reads = ("_input", "target")  # the fp16 path recomputes in backward
    contract_args = ("jsd_impl", "jsd_mode")
    call_context = staticmethod(implementation_context)
    keyword_aliases = (("input", "_input"),)

    @staticmethod
    def outputs(_input, *_):
        return (((), loss_dtype(_input.dtype)),)

    @staticmethod
    def check(
        _input: torch.Tensor,
        target: torch.Tensor,
        shift_labels: torch.Tensor | None = None,
        beta: float = 0.5,
        ignore_index: int = -100,
        jsd_impl: str | None = None,
        jsd_mode: str | None = None,
    ) -> None:
        require_tensor("_input", _input)
        require_ndim("_input", _input, (2,))
        require_tensor("target", target)
        require_shape("target", target, tuple(_input.shape), "the shape of _input")
        check_shift_labels(shift_labels, _input.shape[0])
        check_scalar_options("beta", beta, ignore_index)
        require_same_device("_input", {"_input": _input, "target": target, "shift_labels": shift_labels})
        require_no_grad("target", target, "_input")
        check_implementation_choice("jsd_impl", jsd_impl, "jsd_mode", jsd_mode)
