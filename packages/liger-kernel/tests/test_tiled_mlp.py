"""Tiled MLP (liger_kernel.ops.tiled_mlp): gradients equal to the untiled MLP's,
activation memory bounded by the tile, and gradients that reach autograd."""

from __future__ import annotations

import types
import weakref

import pytest
import torch
from torch import nn

from liger_kernel.ops import LigerSiLUMulFunction, LigerTiledMLPFunction, apply_tiled_mlp
from liger_kernel.transformers import LigerTiledGEGLUMLP, LigerTiledSwiGLUMLP
from liger_kernel.transformers.geglu import LigerGEGLUMLP
from liger_kernel.transformers.swiglu import LigerSwiGLUMLP


def config(act: str, hidden: int = 16, intermediate: int = 40) -> types.SimpleNamespace:
    return types.SimpleNamespace(hidden_size=hidden, intermediate_size=intermediate, hidden_act=act)


def pair(tiled_cls, stock_cls, act, num_shards, dtype=torch.float64):
    torch.manual_seed(0)
    tiled = tiled_cls(config(act), num_shards=num_shards).to(dtype)
    stock = stock_cls(config(act)).to(dtype)
    stock.load_state_dict(tiled.state_dict())
    return tiled, stock


def grads_of(module: nn.Module, x: torch.Tensor, dy: torch.Tensor):
    x = x.clone().requires_grad_()
    y = module(x)
    y.backward(dy)
    return y.detach(), x.grad, {name: p.grad for name, p in module.named_parameters()}


@pytest.mark.parametrize(
    ("tiled_cls", "stock_cls", "act"),
    [(LigerTiledSwiGLUMLP, LigerSwiGLUMLP, "silu"), (LigerTiledGEGLUMLP, LigerGEGLUMLP, "gelu_pytorch_tanh")],
)
@pytest.mark.parametrize(
    ("shape", "num_shards"), [((2, 37, 16), 4), ((50, 16), 3), ((1, 5, 16), 8), ((2, 40, 16), None)]
)
def test_matches_the_untiled_mlp(tiled_cls, stock_cls, act, shape, num_shards):
    """Same output and gradients (x and every weight) as the untiled module, in
    float64 to rounding: uneven last tiles, more shards than tokens, the default count."""
    tiled, stock = pair(tiled_cls, stock_cls, act, num_shards)
    x = torch.randn(shape, dtype=torch.float64)
    dy = torch.randn(shape, dtype=torch.float64)
    y_t, dx_t, dp_t = grads_of(tiled, x, dy)
    y_s, dx_s, dp_s = grads_of(stock, x, dy)
    torch.testing.assert_close(y_t, y_s, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dx_t, dx_s, rtol=1e-12, atol=1e-12)
    for name in dp_s:
        torch.testing.assert_close(dp_t[name], dp_s[name], rtol=1e-12, atol=1e-12, msg=f"gradient of {name}")


class SavedBytes:
    """Bytes of activations autograd holds for a backward, at most, while active:
    every tensor a node saves, except the parameters (saved by reference)."""

    def __init__(self, module: nn.Module) -> None:
        self.params = {p.data_ptr() for p in module.parameters()}
        self.live = 0
        self.peak = 0

    def pack(self, t: torch.Tensor):
        if t.data_ptr() in self.params:
            return t
        holder = _Held(t)
        self.live += t.nbytes
        self.peak = max(self.peak, self.live)
        weakref.finalize(holder, self._release, t.nbytes)
        return holder

    def _release(self, nbytes: int) -> None:
        self.live -= nbytes

    @staticmethod
    def unpack(held):
        return held.tensor if isinstance(held, _Held) else held

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)


class _Held:
    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor


def peak_saved(module: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(bytes saved by the forward, peak bytes saved over forward and backward)."""
    meter = SavedBytes(module)
    x = x.clone().requires_grad_()
    with meter.hooks():
        y = module(x)
        after_forward = meter.live
        y.backward(torch.ones_like(y))
    return after_forward, meter.peak


def test_activation_memory_is_bounded_by_the_tile():
    """The forward keeps x alone; the backward holds one tile's activations at a
    time: with 8 tiles the peak is about an eighth of the untiled MLP's."""
    hidden, intermediate, seq = 16, 64, 512
    tiled = LigerTiledSwiGLUMLP(config("silu", hidden, intermediate), num_shards=8)
    stock = LigerSwiGLUMLP(config("silu", hidden, intermediate))
    stock.load_state_dict(tiled.state_dict())
    x = torch.randn(2, seq, hidden)

    forward_tiled, peak_tiled = peak_saved(tiled, x)
    _, peak_stock = peak_saved(stock, x)
    assert forward_tiled == x.nbytes, "the tiled forward keeps more than its input"
    # one tile's activations (an eighth of the untiled ones), plus the input kept for the backward
    assert peak_tiled <= peak_stock / 8 + x.nbytes + 1024, (peak_tiled, peak_stock)
    assert peak_stock > 4 * peak_tiled  # the measure sees the activations at all


def test_peak_does_not_grow_with_the_sequence():
    """At a fixed tile length the peak grows only by the kept input, not by the activations."""
    hidden, intermediate = 16, 64
    peaks = []
    for seq in (256, 1024):
        mlp = LigerTiledSwiGLUMLP(config("silu", hidden, intermediate), num_shards=seq // 64)
        x = torch.randn(1, seq, hidden)
        _, peak = peak_saved(mlp, x)
        peaks.append(peak - x.nbytes)
    assert peaks[1] <= peaks[0] * 1.1, peaks


def test_gradients_under_saved_tensor_hooks():
    """Saved tensors moved off and back (save_on_cpu, offloading) change nothing:
    the weights are differentiated as themselves."""
    tiled, stock = pair(LigerTiledSwiGLUMLP, LigerSwiGLUMLP, "silu", 4)
    x = torch.randn(2, 20, 16, dtype=torch.float64)
    dy = torch.randn(2, 20, 16, dtype=torch.float64)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: t.clone(), lambda t: t):
        _, dx_t, dp_t = grads_of(tiled, x, dy)
    _, dx_s, dp_s = grads_of(stock, x, dy)
    torch.testing.assert_close(dx_t, dx_s, rtol=1e-12, atol=1e-12)
    for name in dp_s:
        torch.testing.assert_close(dp_t[name], dp_s[name], rtol=1e-12, atol=1e-12, msg=f"gradient of {name}")


def test_gradients_reach_autograd_grad():
    """torch.autograd.grad gets the weights' gradients back and leaves .grad alone."""
    tiled, stock = pair(LigerTiledSwiGLUMLP, LigerSwiGLUMLP, "silu", 4)
    x = torch.randn(2, 24, 16, dtype=torch.float64, requires_grad=True)
    got = torch.autograd.grad(tiled(x).square().sum(), [x, *tiled.parameters()])
    want = torch.autograd.grad(stock(x).square().sum(), [x, *stock.parameters()])
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
    assert all(p.grad is None for p in tiled.parameters())


def test_extra_tensor_needs_compute_params():
    """A tensor fn reads that requires grad gets its gradient through
    compute_params, and without it the backward raises instead of dropping it."""
    mlp = nn.Linear(8, 8, bias=False).double()
    extra = torch.randn(8, dtype=torch.float64, requires_grad=True)

    def fn(module, x):
        return module(x) * extra

    x = torch.randn(3, 10, 8, dtype=torch.float64, requires_grad=True)
    apply_tiled_mlp(fn, mlp, x, 4, [extra]).sum().backward()
    want = torch.autograd.grad(fn(mlp, x).sum(), extra)[0]
    torch.testing.assert_close(extra.grad, want, rtol=1e-12, atol=1e-12)
    with pytest.raises(RuntimeError, match="compute_params"):
        apply_tiled_mlp(fn, mlp, x, 4).sum().backward()


def test_frozen_weights_and_input_without_grad():
    """Only what requires grad is differentiated: frozen weights get nothing,
    an input that needs no gradient still trains the weights."""
    tiled, stock = pair(LigerTiledSwiGLUMLP, LigerSwiGLUMLP, "silu", 3)
    tiled.up_proj.weight.requires_grad_(False)
    stock.up_proj.weight.requires_grad_(False)
    x = torch.randn(2, 12, 16, dtype=torch.float64)
    tiled(x).sum().backward()
    stock(x).sum().backward()
    assert tiled.up_proj.weight.grad is None
    torch.testing.assert_close(tiled.gate_proj.weight.grad, stock.gate_proj.weight.grad, rtol=1e-12, atol=1e-12)


def test_weight_changed_before_backward_raises():
    mlp = LigerTiledSwiGLUMLP(config("silu"), num_shards=2)
    y = mlp(torch.randn(1, 6, 16))
    with torch.no_grad():
        mlp.down_proj.weight.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_function_and_signatures():
    """LigerTiledMLPFunction.apply(fn, mlp_module, x, shards, compute_params)."""
    mlp = LigerSwiGLUMLP(config("silu")).double()
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    fn = lambda m, t: m.down_proj(LigerSiLUMulFunction.apply(m.gate_proj(t), m.up_proj(t)))  # noqa: E731
    torch.testing.assert_close(LigerTiledMLPFunction.apply(fn, mlp, x, 3), mlp(x))
    torch.testing.assert_close(LigerTiledMLPFunction.apply(fn, mlp, x, shards=3, compute_params=None), mlp(x))


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((None, "x", 2), TypeError, "fn must be callable"),
        ((lambda m, t: t, "not a module", 2), TypeError, "mlp_module"),
        ((lambda m, t: t, "module", 0), ValueError, "shards must be >= 1"),
        ((lambda m, t: t, "module", 2.0), TypeError, "shards must be an int"),
        ((lambda m, t: t, "module", 2, "1d"), ValueError, "at least 2-D"),
    ],
)
def test_bad_arguments(args, error, match):
    fn, module, shards, *rest = args
    mlp = nn.Linear(4, 4) if module == "module" else module
    x = torch.randn(4) if rest else torch.randn(2, 3, 4)
    with pytest.raises(error, match=match):
        LigerTiledMLPFunction.apply(fn, mlp, x, shards)


def test_activation_checks():
    with pytest.raises(ValueError, match="hidden_act"):
        LigerTiledSwiGLUMLP(config("gelu"))
    with pytest.raises(ValueError, match="hidden_act"):
        LigerTiledGEGLUMLP(config("gelu"))  # the exact GELU is not the op's tanh form
    LigerTiledGEGLUMLP(types.SimpleNamespace(hidden_size=8, intermediate_size=16))
