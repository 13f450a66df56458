"""Dynamic Tanh (DyT), a normalization-free replacement for LayerNorm.

Forward, over the last dimension of x (width H):
    y = gamma * tanh(alpha * x) + beta
alpha one element, gamma and beta of shape (H,), beta optional (None: no
shift). Computed in fp32 (fp64 if any input is fp64), y stored in x.dtype.

Backward, with t = tanh(alpha * x) and g = dy * gamma * (1 - t**2):
    dx = g * alpha
    dalpha = sum over all elements of g * x
    dgamma = sum over rows of dy * t;  dbeta = sum over rows of dy
"""

from __future__ import annotations

import torch

from liger_kernel.ops._contract import DispatchedFunction, require_same_device, require_shape, require_tensor


class LigerDyTFunction(DispatchedFunction):
    op = "dyt"
    backward_reads = ("x", "alpha", "gamma")

    @staticmethod
    def outputs(x, *_):
        return ((x.shape, x.dtype),)

    @staticmethod
    def check(x: torch.Tensor, alpha: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor | None) -> None:
        require_tensor("x", x)
        require_tensor("alpha", alpha)
        require_tensor("gamma", gamma)
        if x.dim() == 0:
            raise ValueError("x must have at least one dimension (the hidden one is last), got a 0-D tensor")
        if alpha.numel() != 1:
            raise ValueError(f"alpha must hold exactly one element, got shape {tuple(alpha.shape)}")
        require_shape("gamma", gamma, (x.shape[-1],), "the last dimension of x")
        if beta is not None:
            require_tensor("beta", beta)
            require_shape("beta", beta, (x.shape[-1],), "the last dimension of x")
        require_same_device("x", {"x": x, "alpha": alpha, "gamma": gamma, "beta": beta})


def liger_dyt_fwd(x: torch.Tensor, alpha: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor | None) -> torch.Tensor:
    """0.8.5's DyT forward launch, offered as the op: ``y`` of :class:`LigerDyTFunction`."""
    return LigerDyTFunction.apply(x, alpha, gamma, beta)


def liger_dyt_bwd(
    dy: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """0.8.5's DyT backward launch: ``(dx, dalpha, dgamma, dbeta)`` for the
    incoming gradient ``dy``, as this module's docstring states them (dbeta None
    without beta). Computed by the op's own backward on whichever backend it
    routes to, after a forward it runs for that (0.8.5's launch needed no
    forward); the arguments themselves are not changed or recorded."""
    inputs = [t.detach().requires_grad_() for t in (x, alpha, gamma, beta) if t is not None]
    with torch.enable_grad():
        y = LigerDyTFunction.apply(*inputs, None) if beta is None else LigerDyTFunction.apply(*inputs)
        grads = torch.autograd.grad(y, inputs, dy)
    return (*grads, None) if beta is None else tuple(grads)
