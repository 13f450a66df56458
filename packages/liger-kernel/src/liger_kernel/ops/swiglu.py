"""SwiGLU gate with Falcon-H1's multipliers g (``gate_multiplier``) and d
(``down_multiplier``):

    c = silu(g * a) * b * d,  silu(u) = u * sigmoid(u)

g = d = 1 (the defaults) is the plain gate of Llama-style MLPs. Falcon-H1's MLP
computes ``down_proj(up_proj(x) * silu(gate_proj(x) * g)) * d``; its
``down_proj`` is linear, so without a bias that equals ``down_proj(c)``.

Backward, with u = g * a and s = sigmoid(u):
    da = dc * d * g * b * s * (1 + u * (1 - s))
    db = dc * d * u * s
computed in fp32 (fp64 for fp64 inputs), stored in the input dtype.

A backend may write da and db over a and b during backward (``overwrites``):
in an MLP they are the projections' outputs, dead once the gate's backward ran.

:class:`LigerFusedGateUpSiLUMulFunction` is the same gate over one tensor
y = [a | b] (the last dimension 2 * I, gate first), as a fused ``gate_up``
projection makes it.
"""

from __future__ import annotations

import torch

from liger_kernel.ops._contract import (
    DispatchedFunction,
    require_real,
    require_same_device,
    require_shape,
    require_tensor,
)


def check_gate_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    require_tensor("a", a)
    require_tensor("b", b)
    require_shape("b", b, tuple(a.shape), "the shape of a")
    if b.dtype != a.dtype:
        raise TypeError(f"b has dtype {b.dtype} but a has {a.dtype}")
    require_same_device("a", {"a": a, "b": b})


class LigerSiLUMulFunction(DispatchedFunction):
    op = "swiglu"
    backward_reads = ("a", "b")
    overwrites = ("a", "b")

    @staticmethod
    def outputs(a, *_):
        return ((a.shape, a.dtype),)

    @staticmethod
    def check(a: torch.Tensor, b: torch.Tensor, gate_multiplier: float = 1.0, down_multiplier: float = 1.0) -> None:
        check_gate_pair(a, b)
        require_real("gate_multiplier", gate_multiplier)
        require_real("down_multiplier", down_multiplier)


def _gate_up_halves(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The gate and up halves of y, as views (no copy)."""
    require_tensor("y", y)
    if y.dim() == 0 or y.shape[-1] % 2:
        raise ValueError(
            f"y has shape {tuple(y.shape)}; its last dimension must be even: [gate | up], 2 * intermediate_size"
        )
    gate, up = y.chunk(2, dim=-1)
    return gate, up


def _check_in_place(in_place: bool) -> None:
    if not isinstance(in_place, bool):
        raise TypeError(f"in_place must be a bool, got {type(in_place).__name__} {in_place!r}")


class LigerFusedGateUpSiLUMulFunction:
    """SwiGLU of a fused gate-up projection: y (..., 2 * I) -> c (..., I),
    c = silu(y[..., :I]) * y[..., I:].

    A thin contract over the ``swiglu`` op: the halves are views of y, passed to
    :class:`LigerSiLUMulFunction` (whose backends read them through their
    strides or copy them, as each does for any non-contiguous gate), and
    autograd joins their gradients into y's.

    ``in_place`` (0.8.5: let the backward write y's gradient over y) is
    accepted and changes nothing: y's gradient is always a new tensor, and y's
    storage is written only as the gate's own rule allows for its a and b
    (:attr:`LigerSiLUMulFunction.overwrites`: a non-leaf y, during backward,
    its version counter moved so that another saved use of y raises). No
    backend here does so for halves of one tensor, which they copy, or read
    through their strides, without writing.
    """

    @staticmethod
    def check(y: torch.Tensor, in_place: bool = False) -> None:
        _gate_up_halves(y)
        _check_in_place(in_place)

    @staticmethod
    def apply(y: torch.Tensor, in_place: bool = False) -> torch.Tensor:
        _check_in_place(in_place)
        return LigerSiLUMulFunction.apply(*_gate_up_halves(y))


def swiglu_fused_gate_up_forward(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, c): the gate of the fused y, computed without recording autograd, and
    y as given (what :func:`swiglu_fused_gate_up_backward` takes back)."""
    gate, up = _gate_up_halves(y)
    with torch.no_grad():
        c = LigerSiLUMulFunction.apply(gate, up)
    return y, c


def swiglu_fused_gate_up_backward(y: torch.Tensor, dc: torch.Tensor, in_place: bool = False) -> torch.Tensor:
    """dy, the gradient of the fused gate at y for the incoming ``dc``.

    With ``in_place=True`` the caller asks for dy to be written over y (0.8.5's
    memory saving when y is dead after this): y is overwritten (its version
    counter moves, so a use of y saved elsewhere for a backward raises) and
    returned. Otherwise y is left untouched and dy is a new tensor."""
    gate, _ = _gate_up_halves(y)
    _check_in_place(in_place)
    require_tensor("dc", dc)
    require_shape("dc", dc, tuple(gate.shape), "the shape of the gate, half of y's last dimension")
    with torch.enable_grad():
        y_leaf = y.detach().requires_grad_(True)
        c = LigerSiLUMulFunction.apply(*y_leaf.chunk(2, dim=-1))
        (dy,) = torch.autograd.grad(c, y_leaf, dc)
    if not in_place:
        return dy
    with torch.no_grad():
        y.copy_(dy)
    return y
