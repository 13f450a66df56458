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
    fn: Callable[[], Any],
    device: torch.device,
    quick: bool,
    grad_to_none: Sequence[torch.Tensor] = (),
    setup: Callable[[], None] | None = None,
) -> float:
    """Median milliseconds of one call of ``fn``; ``setup`` runs before each
    call, untimed."""
    if device.type == "cuda" and setup is None:
        import triton.testing

        warmup, rep = (5, 20) if quick else (25, 100)
        return float(triton.testing.do_bench(fn, warmup, rep, grad_to_none=list(grad_to_none), return_mode="median"))
    if device.type == "cuda":
        return _events_ms(fn, device, 10 if quick else 50, grad_to_none, setup)
    times = []
    for _ in range(1 + (1 if quick else 5)):  # the first run warms caches and is dropped
        clear_grads(grad_to_none)
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times[1:])


def _events_ms(
    fn: Callable[[], Any],
    device: torch.device,
    runs: int,
    grad_to_none: Sequence[torch.Tensor],
    setup: Callable[[], None],
) -> float:
    """``do_bench``'s method with an untimed ``setup`` before each run: the L2
    cache is flushed, then CUDA events bracket ``fn`` alone."""
    flush = torch.empty(256 * 2**20, dtype=torch.int8, device=device)
    elapsed = []
    for i in range(runs + 3):  # three warm-up runs
        clear_grads(grad_to_none)
        setup()
        flush.zero_()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        if i >= 3:
            elapsed.append((start, end))
    torch.cuda.synchronize(device)
    return statistics.median(start.elapsed_time(end) for start, end in elapsed)


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
    setup: Callable[[], None] | None = None,
) -> dict[str, float | None]:
    """fwd_ms, bwd_ms, full_ms (those in ``modes``) and mem_mib of one op.

    The forward runs with autograd recording, as in training. Backward is
    timed on one retained graph; ``grad_to_none`` keeps gradient accumulation
    out of the timings. ``setup`` (fresh activations, see ``cases.Case``)
    runs before every timed step, outside time and memory; with it, each
    timed backward follows its own untimed forward.
    """
    prepare = setup or (lambda: None)

    def full() -> None:
        backward(forward(), grads, retain_graph=False)

    prepare()
    full()  # warm-up: compilation and autotuning stay out of memory and time
    clear_grads(leaves)
    prepare()
    synchronize(device)
    result: dict[str, float | None] = {"mem_mib": peak_extra_mib(full, device)}
    clear_grads(leaves)
    if "fwd" in modes:
        result["fwd_ms"] = bench_ms(forward, device, quick, leaves, setup)
    if "bwd" in modes and setup is None:
        outputs = forward()
        result["bwd_ms"] = bench_ms(lambda: backward(outputs, grads, retain_graph=True), device, quick, leaves)
        del outputs
    elif "bwd" in modes:
        # fresh activations cannot share one retained graph: each timed
        # backward gets its own forward, run untimed before it
        pending: list[Any] = []

        def setup_and_forward() -> None:
            prepare()
            pending.append(forward())

        result["bwd_ms"] = bench_ms(
            lambda: backward(pending.pop(), grads, retain_graph=False), device, quick, leaves, setup_and_forward
        )
    if "full" in modes:
        result["full_ms"] = bench_ms(full, device, quick, leaves, setup)
    clear_grads(leaves)
    return result
