"""Timing and peak memory of one op: forward, backward and full (both).

On a GPU a time is the median of ``triton.testing.do_bench`` (which flushes
the L2 cache between runs); on the CPU it is the median of a few
``time.perf_counter`` runs, which only exists so that the tool can be smoke
tested without a GPU. Memory is the peak of ``torch.cuda.max_memory_allocated``
during one full step minus what was allocated before it; the CPU has no such
counter, so it is reported as None (n/a).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

MODES = ("fwd", "bwd", "full")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_ms(
    fn: Callable[[], Any], device: torch.device, quick: bool, grad_to_none: Sequence[torch.Tensor] = ()
) -> float:
    """Median milliseconds of one call of ``fn``."""
    if device.type == "cuda":
        import triton.testing

        warmup, rep = (5, 20) if quick else (25, 100)
        return float(triton.testing.do_bench(fn, warmup, rep, grad_to_none=list(grad_to_none), return_mode="median"))
    times = []
    for _ in range(1 + (1 if quick else 5)):  # the first run warms caches and is dropped
        for t in grad_to_none:
            t.grad = None
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times[1:])


def _as_list(out: Any) -> list[torch.Tensor]:
    return list(out) if isinstance(out, tuple | list) else [out]


def backward(outputs: Any, grads: Sequence[torch.Tensor] | None, retain_graph: bool) -> None:
    """Backpropagate ``grads`` (None: the output is a scalar loss) through ``outputs``."""
    torch.autograd.backward(_as_list(outputs), None if grads is None else list(grads), retain_graph=retain_graph)


def clear_grads(leaves: Sequence[torch.Tensor]) -> None:
    for t in leaves:
        t.grad = None


def peak_extra_mib(step: Callable[[], Any], device: torch.device) -> float | None:
    """Peak memory allocated during ``step`` beyond what was allocated before it."""
    if device.type != "cuda":
        step()
        return None
    gc.collect()
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    step()
    synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def measure(
    forward: Callable[[], Any],
    leaves: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor] | None,
    device: torch.device,
    quick: bool,
    modes: Sequence[str] = MODES,
) -> dict[str, float | None]:
    """fwd_ms, bwd_ms, full_ms (those in ``modes``) and mem_mib of one op.

    The forward runs with autograd recording, as in training. Backward is
    timed on one retained graph; ``grad_to_none`` keeps gradient accumulation
    out of the timings.
    """

    def full() -> None:
        backward(forward(), grads, retain_graph=False)

    full()  # warm-up: compilation and autotuning stay out of memory and time
    clear_grads(leaves)
    synchronize(device)
    result: dict[str, float | None] = {"mem_mib": peak_extra_mib(full, device)}
    clear_grads(leaves)
    if "fwd" in modes:
        result["fwd_ms"] = bench_ms(forward, device, quick, leaves)
    if "bwd" in modes:
        outputs = forward()
        result["bwd_ms"] = bench_ms(lambda: backward(outputs, grads, retain_graph=True), device, quick, leaves)
        del outputs
    if "full" in modes:
        result["full_ms"] = bench_ms(full, device, quick, leaves)
    clear_grads(leaves)
    return result
