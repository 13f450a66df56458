"""Calling part of an FSDP-wrapped model with its parameters gathered.

FSDP gathers a wrapped module's sharded parameters in the pre-forward of the
wrapper and frees them in its post-forward. Calling a sub-module or a function
of the inner module directly (only the decoder stack, to get the hidden states
for a fused loss; only the ``lm_head`` weight) skips both, and the parameters
it reads are flat shards ("'weight' must be 2-D"). :class:`_FSDPForwardRedirection`
runs such a call *as* the wrapper's forward, so the hooks run around it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

_UNSET = object()


class _FSDPForwardRedirection:
    """``_FSDPForwardRedirection()(wrapper_module, method, *args, **kwargs)``
    calls ``method(*args, **kwargs)`` through ``wrapper_module``'s forward and
    returns what the wrapper returns (``method``'s result, after FSDP's
    post-forward).

    ``wrapper_module`` is an FSDP wrapper (``FullyShardedDataParallel``: the
    call goes through the module it wraps) or any other module, FSDP2's
    ``fully_shard`` ones among them (the call goes through the module's own
    ``__call__``, whose hooks do the gathering; for a plain module it is just
    the call). Where liger-kernel 0.8.5 accepted only ``FullyShardedDataParallel``
    and left the inner ``forward`` replaced when the wrapper raised before
    reaching it, the module's own ``forward`` is always put back."""

    def __call__(self, wrapper_module: nn.Module, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not isinstance(wrapper_module, nn.Module):
            raise TypeError(f"wrapper_module must be an nn.Module, got {type(wrapper_module).__name__}")
        inner = getattr(wrapper_module, "_fsdp_wrapped_module", wrapper_module)
        own_forward = vars(inner).get("forward", _UNSET)  # usually none: forward is the class's

        def restore() -> None:
            if own_forward is _UNSET:
                vars(inner).pop("forward", None)
            else:
                inner.forward = own_forward

        def redirected(*inner_args: Any, **inner_kwargs: Any) -> Any:
            restore()  # ``method`` may itself call the real forward
            return method(*inner_args, **inner_kwargs)

        inner.forward = redirected
        try:
            return wrapper_module(*args, **kwargs)
        finally:
            restore()
