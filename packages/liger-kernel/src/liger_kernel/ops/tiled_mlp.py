"""Tiled MLP: an MLP applied over sequence tiles, recomputed tile by tile in the
backward, so that its activation memory is bounded by one tile, not the sequence.

For x of shape (..., S, H) (a batch of sequences, or (S, H) tokens) cut along
its sequence dimension (-2) into ``shards`` tiles x_1, ..., x_k (``torch.chunk``'s
tiles: the last may be shorter, and fewer than ``shards`` when S is small):

    out = cat(fn(mlp_module, x_1), ..., fn(mlp_module, x_k)) along dim -2

which is fn(mlp_module, x) itself for any fn that treats tokens independently
(an MLP, a gated MLP, a router and its experts per token). The forward runs fn
without recording a graph and keeps only x. The backward runs each tile again
with a graph, differentiates it with the incoming gradient's tile, and frees it
before the next: at any time one tile's activations are alive (fn runs twice per
step; three times under activation checkpointing). The gradients are those of
the untiled fn, summed over tiles: dx tile by tile, and the gradient of every
parameter fn uses.

Which tensors get a gradient: every parameter of ``mlp_module`` that requires
grad, and the tensors of ``compute_params`` (extra tensors fn reads, or the
module's own again). They are inputs of the autograd node, so their gradients
reach autograd like any other (``torch.autograd.grad``, gradient hooks, DDP's
bucketing all see them). liger-kernel 0.8.5 ran ``torch.autograd.backward``
inside the backward instead, which adds into ``.grad`` behind autograd's back:
a caller of ``torch.autograd.grad(loss, params)`` got nothing back and found
stray ``.grad``s. A tensor that requires grad, reached by fn but in neither set,
would silently get no gradient; the backward raises instead, naming its shape.
Parameters must keep their shape between the call and the backward (DeepSpeed
ZeRO-3 partitions them outside fn: gather them for the call, or use ZeRO-2).

fn must be deterministic (no dropout) and must not depend on which tokens share
a tile, since the backward recomputes it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from liger_kernel.ops._contract import require_int, require_tensor

MLPFn = Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]


def default_shards(x: torch.Tensor) -> int:
    """0.8.5's default tile count: ceil(S / H), at least 1 (tiles of about H tokens)."""
    return max(1, math.ceil(x.shape[-2] / x.shape[-1]))


def differentiated(mlp_module: torch.nn.Module, compute_params: Iterable[torch.Tensor] | None) -> list[torch.Tensor]:
    """The tensors a tiled call differentiates (see the module docstring), each once."""
    chosen: dict[int, torch.Tensor] = {}
    for p in mlp_module.parameters():
        if p.requires_grad:
            chosen.setdefault(id(p), p)
    for p in compute_params or ():
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"compute_params must hold tensors, got {type(p).__name__}")
        if p.requires_grad:
            chosen.setdefault(id(p), p)
    return list(chosen.values())


class _TiledMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, fn: MLPFn, mlp_module: torch.nn.Module, shards: int, x: torch.Tensor, *params: Any):
        ctx.fn, ctx.mlp_module, ctx.shards = fn, mlp_module, shards
        # The differentiated tensors are kept as themselves, not saved: a
        # saved-tensor hook (save_on_cpu, activation offloading) would copy
        # every weight off the device and back each step. Their versions are
        # kept, so that changing one in place before the backward raises, as
        # a saved tensor would, instead of giving a wrong gradient.
        ctx.params = params
        ctx.versions = [p._version for p in params]
        ctx.save_for_backward(x)
        with torch.no_grad():
            return torch.cat([fn(mlp_module, tile) for tile in torch.chunk(x, shards, dim=-2)], dim=-2)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        (x,) = ctx.saved_tensors
        params = ctx.params
        for p, version in zip(params, ctx.versions):
            if p._version != version:
                raise RuntimeError(
                    f"a tensor of shape {tuple(p.shape)} that the tiled MLP differentiates was modified by an "
                    f"inplace operation between its forward and backward (version {version}, now {p._version})"
                )
        need_x = ctx.needs_input_grad[3]
        need_params = ctx.needs_input_grad[4:]
        wanted = [p for p, need in zip(params, need_params) if need]
        dx = torch.empty_like(x) if need_x else None
        sums: list[torch.Tensor | None] = [None] * len(wanted)
        start = 0
        for index, tile in enumerate(torch.chunk(x.detach(), ctx.shards, dim=-2)):
            tile = tile.detach().requires_grad_(need_x)
            with torch.enable_grad():
                out = ctx.fn(ctx.mlp_module, tile)
            if index == 0:
                _check_leaves(out, {id(tile), *map(id, params)})
            length = tile.shape[-2]
            grads = torch.autograd.grad(
                out, ([tile] if need_x else []) + wanted, grad.narrow(-2, start, length), allow_unused=True
            )
            if need_x:
                tile_dx = dx.narrow(-2, start, length)
                tile_dx.copy_(grads[0]) if grads[0] is not None else tile_dx.zero_()
                grads = grads[1:]
            for i, g in enumerate(grads):
                if g is not None:
                    sums[i] = g if sums[i] is None else sums[i].add_(g)
            del out, grads
            start += length
        # None for a tensor fn did not use, as autograd gives it in the untiled call
        totals = iter(sums)
        return (None, None, None, dx, *(next(totals) if need else None for need in need_params))


def _check_leaves(out: torch.Tensor, known: set[int]) -> None:
    """Raise when fn's graph reaches a leaf that requires grad but is neither the
    tile nor a differentiated tensor (``known``, by id): it would get no gradient."""
    seen: set[int] = set()
    stack = [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        variable = getattr(node, "variable", None)
        if variable is not None and variable.requires_grad and id(variable) not in known:
            raise RuntimeError(
                f"the tiled MLP's fn uses a tensor of shape {tuple(variable.shape)} that requires grad but is "
                "neither a parameter of mlp_module nor in compute_params, so it would get no gradient; "
                "pass it in compute_params"
            )
        stack.extend(next_node for next_node, _ in node.next_functions)


class LigerTiledMLPFunction:
    """``fn(mlp_module, x)`` over sequence tiles with recomputation in the
    backward; see :mod:`liger_kernel.ops.tiled_mlp`."""

    @staticmethod
    def check(
        fn: MLPFn,
        mlp_module: torch.nn.Module,
        x: torch.Tensor,
        shards: int,
        compute_params: list[torch.nn.Parameter] | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable as fn(mlp_module, x), got {type(fn).__name__}")
        if not isinstance(mlp_module, torch.nn.Module):
            raise TypeError(f"mlp_module must be a torch.nn.Module, got {type(mlp_module).__name__}")
        require_tensor("x", x)
        if x.dim() < 2:
            raise ValueError(f"x must be (..., seq, hidden), at least 2-D, got shape {tuple(x.shape)}")
        require_int("shards", shards)
        if shards < 1:
            raise ValueError(f"shards must be >= 1, got {shards}")
        if compute_params is not None and not isinstance(compute_params, (list, tuple)):
            raise TypeError(f"compute_params must be a list of tensors or None, got {type(compute_params).__name__}")

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> torch.Tensor:
        bound = inspect.signature(cls.check).bind(*args, **kwargs)
        bound.apply_defaults()
        cls.check(*bound.args)
        fn, mlp_module, x, shards, compute_params = bound.args
        params = differentiated(mlp_module, compute_params)
        return _TiledMLP.apply(fn, mlp_module, shards, x, *params)


def apply_tiled_mlp(
    fn: MLPFn,
    mlp_module: torch.nn.Module,
    x: torch.Tensor,
    num_shards: int | None = None,
    compute_params: list[torch.nn.Parameter] | None = None,
) -> torch.Tensor:
    """``fn(mlp_module, x)`` over ``num_shards`` sequence tiles (None: ceil(S / H),
    tiles of about H tokens), with the memory of one tile; see
    :mod:`liger_kernel.ops.tiled_mlp`."""
    if num_shards is None:
        require_tensor("x", x)
        if x.dim() < 2:
            raise ValueError(f"x must be (..., seq, hidden), at least 2-D, got shape {tuple(x.shape)}")
        num_shards = default_shards(x)
    return LigerTiledMLPFunction.apply(fn, mlp_module, x, num_shards, compute_params)
