"""liger-kernel 0.8.5's functional API: one autograd-aware function per op.

Each function computes its op through the public Function of
:mod:`liger_kernel.ops` (the math and the argument checks are that op's
contract, documented in its module), routed by :func:`liger_kernel.backends.dispatch`.

Every function takes three keywords besides the op's own arguments:

- ``impl``: the backend this call runs on, by any name the registry knows:
  ``nvidia-triton`` (or 0.8.5's bare ``triton``), ``ascend-triton``,
  ``rocm-triton``, ``intel-triton``, ``pytorch``, a backend's own name
  (``cuda``, ``torch``), or a name given to
  :func:`liger_kernel.backends.register_impl`. None: the usual selection.
  An unknown name raises, listing the installed backends; the environment
  (``LIGER_KERNEL_BACKEND[_<OP>]``, ``LIGER_KERNEL_IMPL[_<OP>]``) still beats
  it, as it beats :func:`liger_kernel.use_backend`.
- ``backend``: the former name of ``impl``. Giving both with different values
  is an error (0.8.5 silently preferred ``impl``).
- ``mode``: 0.8.5 picks among kernel variants of one implementation (cuTile's
  ``"static_persistent"``, ...). Each backend here has one kernel per op, so
  only None and ``"default"`` are accepted; anything else raises.
"""

from __future__ import annotations

from typing import Any

import torch

from liger_kernel.backends import dispatch


def _requested(impl: str | None, backend: str | None) -> str | None:
    if impl is not None and backend is not None and impl != backend:
        raise TypeError(f"give impl= or its former name backend=, not both (got impl={impl!r}, backend={backend!r})")
    return impl if impl is not None else backend


def _run(op: str, *args: Any, impl: str | None, backend: str | None, mode: str | None) -> Any:
    return dispatch(op, *args, impl=_requested(impl, backend), mode=mode)


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    eps: float = 1e-6,
    *,
    offset: float = 0.0,
    casting_mode: str = "llama",
    in_place: bool = False,
    row_mode: bool | None = None,
    impl: str | None = None,
    mode: str | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """RMSNorm of ``x`` over its last dimension (op ``rms_norm``, :mod:`liger_kernel.ops.rms_norm`)."""
    return _run(
        "rms_norm", x, weight, eps, offset, casting_mode, in_place, row_mode, impl=impl, backend=backend, mode=mode
    )


def layer_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    eps: float = 1e-6,
    *,
    impl: str | None = None,
    mode: str | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """LayerNorm of ``x`` over its last dimension (op ``layer_norm``); ``bias`` None: no shift."""
    return _run("layer_norm", x, weight, bias, eps, impl=impl, backend=backend, mode=mode)


def jsd(
    _input: torch.Tensor,
    target: torch.Tensor,
    shift_labels: torch.Tensor | None = None,
    beta: float = 0.5,
    ignore_index: int = -100,
    *,
    impl: str | None = None,
    mode: str | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Generalized Jensen-Shannon divergence of log-probabilities (op ``jsd``, :mod:`liger_kernel.ops.jsd`)."""
    return _run("jsd", _input, target, shift_labels, beta, ignore_index, impl=impl, backend=backend, mode=mode)


def softmax(
    x: torch.Tensor,
    *,
    impl: str | None = None,
    mode: str | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Softmax over the last dimension (op ``softmax``)."""
    return _run("softmax", x, impl=impl, backend=backend, mode=mode)


def swiglu(
    a: torch.Tensor,
    b: torch.Tensor,
    gate_multiplier: float = 1.0,
    down_multiplier: float = 1.0,
    *,
    impl: str | None = None,
    mode: str | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """``silu(gate_multiplier * a) * b * down_multiplier`` (op ``swiglu``, :mod:`liger_kernel.ops.swiglu`)."""
    # the multipliers only when they are not the defaults: an implementation
    # registered for the plain gate keeps working for plain calls
    multipliers = () if (gate_multiplier, down_multiplier) == (1.0, 1.0) else (gate_multiplier, down_multiplier)
    return _run("swiglu", a, b, *multipliers, impl=impl, backend=backend, mode=mode)


def rope(
    q: torch.Tensor,
    k: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    position_ids: torch.Tensor | None = None,
    unsqueeze_dim: int = 1,
    *,
    impl: str | None = None,
    mode: str | None = None,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary embedding of ``q`` and ``k`` (op ``rope``, :mod:`liger_kernel.ops.rope`); returns ``(q, k)``."""
    return _run("rope", q, k, cos, sin, position_ids, unsqueeze_dim, impl=impl, backend=backend, mode=mode)


def cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    lse_square_scale: float = 0.0,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    softcap: float | None = None,
    return_z_loss: bool = False,
    return_token_accuracy: bool = False,
    return_predicted_tokens: bool = False,
    *,
    impl: str | None = None,
    mode: str | None = None,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Cross-entropy of logits (op ``cross_entropy``): ``(loss, z_loss, token_accuracy,
    predicted_tokens)``, each optional output None unless its flag is set."""
    return _run(
        "cross_entropy",
        input,
        target,
        weight,
        ignore_index,
        lse_square_scale,
        label_smoothing,
        reduction,
        softcap,
        return_z_loss,
        return_token_accuracy,
        return_predicted_tokens,
        impl=impl,
        backend=backend,
        mode=mode,
    )


def fused_add_rms_norm(
    X: torch.Tensor,
    R: torch.Tensor,
    W: torch.Tensor,
    eps: float = 1e-6,
    offset: float = 0.0,
    casting_mode: str = "llama",
    in_place: bool = False,
    *,
    impl: str | None = None,
    mode: str | None = None,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(RMSNorm(X + R), X + R)`` (op ``fused_add_rms_norm``)."""
    return _run(
        "fused_add_rms_norm", X, R, W, eps, offset, casting_mode, in_place, impl=impl, backend=backend, mode=mode
    )


def geglu(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    impl: str | None = None,
    mode: str | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """``gelu_tanh(a) * b`` (op ``geglu``)."""
    return _run("geglu", a, b, impl=impl, backend=backend, mode=mode)


def kl_div(
    y_pred: torch.Tensor,
    y_true: torch.Tensor,
    reduction: str = "batchmean",
    log_target: bool = False,
    eps: float = 1e-10,
    *,
    impl: str | None = None,
    mode: str | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """KL divergence of ``y_true`` from log-probabilities ``y_pred`` (op ``kl_div``)."""
    return _run("kl_div", y_pred, y_true, reduction, log_target, eps, impl=impl, backend=backend, mode=mode)


def fused_linear_jsd(
    student_input: torch.Tensor,
    student_weight: torch.Tensor,
    teacher_input: torch.Tensor,
    teacher_weight: torch.Tensor,
    shift_labels: torch.Tensor | None = None,
    jsd_beta: float = 0.5,
    ignore_index: int = -100,
    temperature: float = 1.0,
    *,
    impl: str | None = None,
    mode: str | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """JSD of the student's and teacher's projected logits, without the full
    logits in memory (op ``fused_linear_jsd``)."""
    return _run(
        "fused_linear_jsd",
        student_input,
        student_weight,
        teacher_input,
        teacher_weight,
        shift_labels,
        jsd_beta,
        ignore_index,
        temperature,
        impl=impl,
        backend=backend,
        mode=mode,
    )


def fused_linear_cross_entropy(
    _input: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None = None,
    ce_weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    lse_square_scale: float = 0.0,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    softcap: float | None = None,
    return_z_loss: bool = False,
    accum_dtype: torch.dtype | None = None,
    use_token_scaling: bool = False,
    return_token_accuracy: bool = False,
    return_predicted_tokens: bool = False,
    *,
    impl: str | None = None,
    mode: str | None = None,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Cross-entropy of ``_input @ weight.T (+ bias)`` without the full logits in
    memory (op ``fused_linear_cross_entropy``): ``(loss, z_loss, token_accuracy,
    predicted_tokens)``, each optional output None unless its flag is set."""
    return _run(
        "fused_linear_cross_entropy",
        _input,
        weight,
        target,
        bias,
        ce_weight,
        ignore_index,
        lse_square_scale,
        label_smoothing,
        reduction,
        softcap,
        return_z_loss,
        accum_dtype,
        use_token_scaling,
        return_token_accuracy,
        return_predicted_tokens,
        impl=impl,
        backend=backend,
        mode=mode,
    )


__all__ = [
    "cross_entropy",
    "fused_add_rms_norm",
    "fused_linear_cross_entropy",
    "fused_linear_jsd",
    "geglu",
    "jsd",
    "kl_div",
    "layer_norm",
    "rms_norm",
    "rope",
    "softmax",
    "swiglu",
]
