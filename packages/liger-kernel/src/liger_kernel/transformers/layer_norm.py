"""LayerNorm module: y = (x - mean) / sqrt(var + eps) * weight + bias, through
:class:`liger_kernel.ops.LigerLayerNormFunction`.

``impl`` (``backend`` is 0.8.5's older name for it) names the backend every
call of this module routes to, by any name :func:`liger_kernel.use_backend`
takes; None: the usual selection. ``mode`` must be None or "default": each
backend has one LayerNorm kernel.
"""

from __future__ import annotations

import torch
from torch import nn

from liger_kernel.ops import LigerLayerNormFunction
from liger_kernel.ops._contract import check_implementation_choice, implementation_context


class LigerLayerNorm(nn.Module):
    def __init__(
        self,
        hidden_size: int,
        eps: float = 1e-6,
        bias: bool = False,
        init_fn: str = "ones",
        impl: str | None = None,
        mode: str | None = None,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        if init_fn not in ("ones", "zeros"):
            raise ValueError(f"init_fn must be 'ones' or 'zeros', got {init_fn!r}")
        if impl is not None and backend is not None and impl != backend:
            raise ValueError(f"impl={impl!r} and backend={backend!r} disagree; backend is an older name for impl")
        self.impl = impl if impl is not None else backend
        self.mode = mode
        check_implementation_choice("impl", self.impl, "mode", mode)
        self.hidden_size = hidden_size
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size) if init_fn == "ones" else torch.zeros(hidden_size))
        self.bias = nn.Parameter(torch.zeros(hidden_size)) if bias else None
        self.variance_epsilon = eps

    @property
    def backend(self) -> str | None:
        """0.8.5's older name for :attr:`impl`."""
        return self.impl

    @backend.setter
    def backend(self, value: str | None) -> None:
        self.impl = value

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        # contiguous, as nn.LayerNorm's output is whatever the input's strides: the op keeps a strided
        # input's layout, and callers view the result (SmolVLM's pixel shuffle after its last norm)
        hidden_states = hidden_states.contiguous()
        with implementation_context(self.impl, self.mode):
            return LigerLayerNormFunction.apply(hidden_states, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        routed = f", impl={self.impl!r}" if self.impl is not None else ""
        return f"{self.hidden_size}, eps={self.eps}, bias={self.bias is not None}{routed}"


class LigerLayerNormForNemotron(nn.LayerNorm):
    """Nemotron's ``NemotronLayerNorm1P``: a LayerNorm whose scale is stored
    less one, y = (x - mean) / sqrt(var + eps) * (weight + 1) + bias.

    Built, initialised and loaded as ``torch.nn.LayerNorm`` (the constructor
    and state dict of Transformers' module). The forward is the LayerNorm op
    with ``weight + 1`` as its scale, the sum taken in the weight's dtype as
    Transformers takes it, so autograd carries the scale's gradient back to
    ``weight`` unchanged. Under CUDA autocast the input, scale and bias are
    cast to the autocast dtype first, as Transformers' module does.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        scale = self.weight + 1.0
        if len(self.normalized_shape) != 1:
            # the op normalizes over the last dimension only; Nemotron never builds another shape
            return nn.functional.layer_norm(input, self.normalized_shape, scale, self.bias, self.eps)
        # the same predicate as Transformers' _cast_if_autocast_enabled (CUDA autocast)
        if not torch.is_autocast_enabled():
            return LigerLayerNormFunction.apply(input, scale, self.bias, self.eps)
        device_type = input.device.type
        dtype = torch.get_autocast_dtype(device_type)
        x, scale, bias = (_autocast_eligible(t, device_type, dtype) for t in (input, scale, self.bias))
        with torch.autocast(device_type=device_type, enabled=False):
            return LigerLayerNormFunction.apply(x, scale, bias, self.eps)


def _autocast_eligible(t: torch.Tensor | None, device_type: str, dtype: torch.dtype) -> torch.Tensor | None:
    """``t`` as ``torch.amp.autocast_mode._cast`` leaves it: floating tensors of
    the device, other than float64, in ``dtype``."""
    if t is None or not t.is_floating_point() or t.dtype == torch.float64 or t.device.type != device_type:
        return t
    return t.to(dtype)
