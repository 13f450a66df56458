"""Timing and peak memory of one op: forward, backward and full (both).

On a GPU a time is the median of ``triton.testing.do_bench`` (which flushes
the L2 cache between runs); on the CPU it is the median of a few
``time.perf_counter`` runs, which only exists so that the tool can be smoke
tested without a GPU. Memory is the peak of ``torch.cuda.max_memory_allocated``
during one full step minus what was allocated before it; the CPU has no such
counter, so it is reported as None (n/a).

The do_bench time of a full step is the larger of two things: the device's
work, and the host's work of issuing it (Python, autograd, allocator, kernel
launches), because the device idles while it waits for launches. Two more
figures of the full step tell them apart (GPU only):

* ``host_ms``: host time to issue one step, the clock read before the call
  and after it returns, with the device idle at the start (no synchronize
  inside: launches are asynchronous).
* ``graph_ms``: device time of one step, replayed from a CUDA graph that holds
  several steps, so launch gaps vanish; the L2 cache is not flushed between
  them (every step the targets name moves more bytes than the L2 holds).
  None where the step cannot be captured (it reads a value back to the host).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

MODES = ("fwd", "bwd", "full")
#: host_ms and graph_ms of the full step: a mode of its own because a failed
#: CUDA graph capture leaves torch's default generator unusable in this
#: process, so run_ops takes it last, in a pass of its own
SPLIT = "split"


def error_text(exc: BaseException) -> str:
    """One line for a results table: the exception's type and first line."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]


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


def host_ms(fn: Callable[[], Any], device: torch.device, runs: int, setup: Callable[[], None] | None) -> float:
    """Median host milliseconds to issue ``fn`` (see the module docstring)."""
    elapsed = []
    for _ in range(runs + 3):  # three warm-up runs
        if setup is not None:
            setup()
        synchronize(device)
        start = time.perf_counter()
        fn()
        elapsed.append((time.perf_counter() - start) * 1e3)
    synchronize(device)
    return statistics.median(elapsed[3:])


def graph_ms(
    fn: Callable[[], Any],
    device: torch.device,
    leaves: Sequence[torch.Tensor],
    setup: Callable[[], None] | None,
    steps: int = 10,
    replays: int = 10,
) -> float:
    """Median device milliseconds of ``fn`` replayed from a CUDA graph of
    ``steps`` calls. With ``setup`` (fresh activations, a copy per step), a
    graph of the copies alone is timed too and taken off.

    The graph is captured on the current stream, which must not be the
    default one and should be the stream the inputs were made on: autograd
    orders a leaf's gradient after the stream that made the leaf, and a
    capture may not make the default stream wait on it."""

    def one_step() -> None:
        clear_grads(leaves)  # each step's gradients come from the graph's pool
        if setup is not None:
            setup()
        fn()

    def replay_ms(step: Callable[[], None]) -> float:
        step()  # the step ran many times before: compiled, tuned, its memory cached
        synchronize(device)
        graph = torch.cuda.CUDAGraph()
        cause: Exception | None = None
        try:
            with torch.cuda.graph(graph, stream=torch.cuda.current_stream(device)):
                try:
                    for _ in range(steps):
                        step()
                except Exception as exc:
                    cause = exc
                    raise
        except Exception as exc:
            # ending a broken capture raises too: report what broke it
            raise (cause or exc) from None
        graph.replay()  # the first replay uploads the graph
        times = []
        for _ in range(replays):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            graph.replay()
            end.record()
            times.append((start, end))
        synchronize(device)
        result = statistics.median(s.elapsed_time(e) for s, e in times) / steps
        del graph
        clear_grads(leaves)
        return result

    total = replay_ms(one_step)
    return total - replay_ms(setup) if setup is not None else total


def split(
    full: Callable[[], Any],
    device: torch.device,
    leaves: Sequence[torch.Tensor],
    setup: Callable[[], None] | None,
    quick: bool,
) -> dict[str, Any]:
    """host_ms and graph_ms of the full step (graph_ms None, with graph_error,
    where the step cannot be captured)."""
    result: dict[str, Any] = {"host_ms": host_ms(full, device, 10 if quick else 50, setup)}
    try:
        result["graph_ms"] = graph_ms(full, device, leaves, setup)
    except Exception as exc:
        result["graph_ms"] = None
        result["graph_error"] = error_text(exc)
    clear_grads(leaves)
    torch.cuda.empty_cache()
    return result


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
    """fwd_ms, bwd_ms, full_ms, host_ms and graph_ms (those in ``modes``; the
    last two from SPLIT, on a GPU only) and mem_mib (unless SPLIT is the only
    mode) of one op.

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
    result: dict[str, float | None] = {}
    if set(modes) & set(MODES):  # a split-only pass has had its memory measured
        prepare()
        synchronize(device)
        result["mem_mib"] = peak_extra_mib(full, device)
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
    if SPLIT in modes and device.type == "cuda":
        result.update(split(full, device, leaves, setup, quick))
    clear_grads(leaves)
    return result
