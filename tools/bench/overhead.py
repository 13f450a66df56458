"""Cost of the dispatch layer: µs per call of ``LigerSiLUMulFunction.apply``
(argument checks + route lookup + the backend Function) against calling the
backend's Function that the dispatcher resolved, directly, on tiny tensors.
The difference is what the dispatch layer adds to every op call. Also the
same op through its PyTorch operator (``liger::swiglu``, what torch.compile
sees; eager calls take it only after ``use_operators()``), where this
project's ``liger_kernel`` has one."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch

from .measure import synchronize


def _us_per_call(fns: list[Callable[[], Any]], calls: int, repeats: int, device: torch.device) -> list[float]:
    """Best µs per call of each fn. Repeats of the fns are interleaved, and the
    minimum is kept (as timeit advises), so that load from other processes
    affects both sides alike and is mostly filtered out."""
    for fn in fns:
        fn()
    best = [math.inf] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            synchronize(device)
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            synchronize(device)
            best[k] = min(best[k], (time.perf_counter() - start) / calls * 1e6)
    return best


def dispatch_overhead(device: torch.device, calls: int = 2000, repeats: int = 7, grad: bool = True) -> dict[str, Any]:
    from liger_kernel.ops import LigerSiLUMulFunction

    a = torch.randn(4, 8, device=device, requires_grad=grad)
    b = torch.randn(4, 8, device=device, requires_grad=grad)
    direct = LigerSiLUMulFunction.route(device.type)
    fns = [lambda: LigerSiLUMulFunction.apply(a, b), lambda: direct.apply(a, b)]
    try:
        from liger_kernel.ops import _library
    except ImportError:  # a liger_kernel without operators
        _library = None
    if _library is not None:
        fns.append(lambda: _library.call(LigerSiLUMulFunction, (a, b)))
    via_dispatch, via_backend, *via_operator = _us_per_call(fns, calls, repeats, device)
    return {
        "device": device.type,
        "backend_function": f"{direct.__module__}.{direct.__qualname__}",
        "calls": calls,
        "repeats": repeats,
        "dispatched_us": via_dispatch,
        "direct_us": via_backend,
        "overhead_us": via_dispatch - via_backend,
        "operator_us": via_operator[0] if via_operator else None,
    }
