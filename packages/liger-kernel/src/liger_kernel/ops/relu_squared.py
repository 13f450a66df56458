"""Squared ReLU (Nemotron's ``relu2`` activation), elementwise:
    y = relu(x)**2 = max(x, 0)**2

Backward:
    dx = 2 * relu(x) * dy
(0 wherever x <= 0, so the kink at 0 takes the one-sided slope 0, as autograd
gives for torch.relu(x).square()). Computed in fp32 (fp64 for fp64 inputs),
stored in the dtype of X.

A backend may write dx over X during backward (``overwrites``): in an MLP X is
the up projection's output, dead once the activation's backward ran.
"""

from __future__ import annotations

import torch

from liger_kernel.ops._contract import DispatchedFunction, require_shape, require_tensor


class LigerReLUSquaredFunction(DispatchedFunction):
    op = "relu_squared"
    backward_reads = ("X",)
    overwrites = ("X",)

    @staticmethod
    def outputs(X):
        return ((X.shape, X.dtype),)

    @staticmethod
    def check(X: torch.Tensor) -> None:
        require_tensor("X", X)


def relu_squared_forward(X: torch.Tensor) -> torch.Tensor:
    """0.8.5's forward launch, offered as the op: ``y`` of :class:`LigerReLUSquaredFunction`."""
    return LigerReLUSquaredFunction.apply(X)


def relu_squared_backward(X: torch.Tensor, dY: torch.Tensor) -> torch.Tensor:
    """0.8.5's backward launch: ``dx`` for the incoming gradient ``dY``, by the
    op's own backward on whichever backend it routes to, after a forward it
    runs for that (0.8.5's launch needed none). ``X`` is neither changed nor
    recorded: the op sees a detached leaf over it, which no backend overwrites."""
    require_tensor("X", X)
    require_tensor("dY", dY)
    require_shape("dY", dY, tuple(X.shape), "the shape of X")
    leaf = X.detach().requires_grad_()
    with torch.enable_grad():
        (dx,) = torch.autograd.grad(LigerReLUSquaredFunction.apply(leaf), leaf, dY)
    return dx
