"""Measuring the ops of one job in this process (see :mod:`bench.worker`)."""

from __future__ import annotations

import functools
import os
import platform
import traceback
from collections.abc import Callable
from typing import Any

import torch

from .cases import CASES, shape_label
from .measure import MODES, SPLIT, error_text, measure
from .worker import Progress

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def describe(impl: str, device: str | torch.device, peer_version: str | None = None) -> dict[str, Any]:
    device = torch.device(device)
    info: dict[str, Any] = {
        "impl": impl,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
    }
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    if impl != "torch":
        import liger_kernel

        info["liger_kernel_file"] = liger_kernel.__file__
        info["liger_kernel_version"] = peer_version or getattr(liger_kernel, "__version__", "unknown")
    if impl == "liger":
        from liger_kernel.dispatch import dispatcher

        device_type = dispatcher.device_alias.get(device.type, device.type)
        info["routes"] = {}
        for op, case in CASES.items():
            route = dispatcher.select(case.routed_op, device_type)
            info["routes"][op] = {
                "backend": route.backend,
                "distribution": f"{route.distribution} {route.version}",
                "implementation": route.implementation,
                "fallback_reason": route.fallback_reason,
            }
    return info


def backend_of(impl: str, op: str, device: torch.device, version: str | None) -> str:
    """Who serves ``op``: 'eager', this project's dispatcher route, or the peer."""
    if impl == "torch":
        return "eager"
    if impl == "peer":
        return f"liger-kernel {version}"
    from liger_kernel.dispatch import dispatcher

    device_type = dispatcher.device_alias.get(device.type, device.type)
    route = dispatcher.select(CASES[op].routed_op, device_type)
    return route.backend + (" (fallback)" if route.fallback_reason else "")


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _fresh_activations(inputs: dict[str, Any]) -> Callable[[], None]:
    """Puts a new non-leaf copy of each ``fresh`` leaf into ``inputs`` (its
    gradient flows on to the leaf, as an activation's flows to the weights)."""

    def setup() -> None:
        for name, leaf in inputs["fresh"].items():
            inputs[name] = leaf.clone()

    return setup


def _inputs_and_forward(case, impl: str, dims, dtype, device):
    torch.manual_seed(0)
    inputs = case.make(dims, dtype, device)
    if impl == "torch":
        forward = functools.partial(case.eager, inputs)
    else:  # resolved once, so the timed call is the public Function's apply alone
        forward = functools.partial(case.call, case.public_function(), inputs)
    setup = _fresh_activations(inputs) if "fresh" in inputs else None
    return inputs, forward, setup


def _error(exc: Exception) -> str:
    if os.environ.get("LIGER_BENCH_TRACEBACK"):
        traceback.print_exc()
    return error_text(exc)


def run_ops(job: dict[str, Any], progress: Progress, version: str | None = None) -> list[dict[str, Any]]:
    impl, device, dtype = job["impl"], torch.device(job["device"]), DTYPES[job["dtype"]]
    modes = tuple(job.get("modes") or MODES)
    timed_modes = tuple(m for m in modes if m != SPLIT)
    records = []
    for op in job["ops"]:
        case = CASES[op]
        for tokens in job.get("tokens") or [None]:
            dims = case.sized(job["scale"], tokens)
            record: dict[str, Any] = {
                "op": op,
                "impl": impl,
                "tokens": dims["tokens"],
                "shape": shape_label(case, dims),
                "dtype": job["dtype"],
                "device": device.type,
                "backend": None,
                "fwd_ms": None,
                "bwd_ms": None,
                "full_ms": None,
                "host_ms": None,
                "graph_ms": None,
                "mem_mib": None,
                "error": None,
            }
            progress.step(f"{op} · {impl} · {record['shape']} {job['dtype']}")
            try:
                record["backend"] = backend_of(impl, op, device, version)
                inputs, forward, setup = _inputs_and_forward(case, impl, dims, dtype, device)
                record.update(
                    measure(forward, inputs["leaves"], inputs["grads"], device, job["quick"], timed_modes, setup)
                )
                del inputs, forward, setup
            except Exception as exc:  # recorded in the table; the run goes on
                record["error"] = _error(exc)
                progress.note(f"error: {record['error']}")
            _free(device)
            records.append(record)
    if SPLIT in modes and device.type == "cuda":
        # last, in a pass of its own: see measure.SPLIT
        stream = torch.cuda.Stream(device)
        for record in records:
            if record["error"]:
                continue
            case = CASES[record["op"]]
            try:
                with torch.cuda.stream(stream):  # see measure.graph_ms
                    inputs, forward, setup = _inputs_and_forward(
                        case, impl, case.sized(job["scale"], record["tokens"]), dtype, device
                    )
                    found = measure(forward, inputs["leaves"], inputs["grads"], device, job["quick"], (SPLIT,), setup)
                    del inputs, forward, setup
                record.update({k: found.get(k) for k in ("host_ms", "graph_ms", "graph_error") if k in found})
            except Exception as exc:
                record["graph_error"] = _error(exc)
            _free(device)
    return records
