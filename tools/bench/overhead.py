"""Cost of the dispatch layer: µs per call of ``LigerSiLUMulFunction.apply``
(argument checks + route lookup + the backend Function) against calling the
backend's Function that the dispatcher resolved, directly, on tiny tensors.
The difference is what the dispatch layer adds to every op call."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from .measure import synchronize


def _us_per_call(fn: Callable[[], Any], calls: int, repeats: int, device: torch.device) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        synchronize(device)
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def dispatch_overhead(device: torch.device, calls: int = 2000, repeats: int = 5, grad: bool = True) -> dict[str, Any]:
    from liger_kernel.ops import LigerSiLUMulFunction

    a = torch.randn(4, 8, device=device, requires_grad=grad)
    b = torch.randn(4, 8, device=device, requires_grad=grad)
    direct = LigerSiLUMulFunction.route(device.type)
    via_dispatch = _us_per_call(lambda: LigerSiLUMulFunction.apply(a, b), calls, repeats, device)
    via_backend = _us_per_call(lambda: direct.apply(a, b), calls, repeats, device)
    return {
        "device": device.type,
        "backend_function": f"{direct.__module__}.{direct.__qualname__}",
        "calls": calls,
        "dispatched_us": via_dispatch,
        "direct_us": via_backend,
        "overhead_us": via_dispatch - via_backend,
    }
