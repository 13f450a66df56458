"""``liger-kernel selftest``: every op forward and backward on this machine.

Small inputs, one call per op, on the best available device (or --device).
For each op it prints the backend and implementation that served it, the loss
of a forward + backward, and whether every output and gradient is finite. It
is a smoke check of an installation, not a correctness suite (that is
``pytest --pyargs liger_conformance``).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import torch

from liger_kernel.cli import DeviceUnavailable, usable_device
from liger_kernel.cli.samples import sample
from liger_kernel.dispatch import BackendError, dispatcher
from liger_kernel.ops import OPS
from liger_kernel.utils import infer_device


def _scalar(outputs: Any) -> torch.Tensor:
    """Sum every floating tensor output into one scalar to differentiate."""
    items = outputs if isinstance(outputs, tuple) else (outputs,)
    tensors = [o for o in items if isinstance(o, torch.Tensor) and o.is_floating_point() and o.requires_grad]
    return sum(o.float().sum() for o in tensors)  # type: ignore[return-value]


def run(device: str, dtype: torch.dtype) -> list[dict[str, Any]]:
    rows = []
    device_type = torch.device(device).type
    for op, function in OPS.items():
        row: dict[str, Any] = {"op": op}
        try:
            route = dispatcher.select(
                op, dispatcher.device_alias.get(device_type, device_type), dispatcher.default_request
            )
            row["route"] = f"{route.backend} ({route.distribution} {route.version}) {route.implementation}"
            args = sample(op, torch.device(device), torch.Generator().manual_seed(0), dtype)
            start = time.perf_counter()
            loss = _scalar(function.apply(*args))
            loss.backward()
            row["ms"] = (time.perf_counter() - start) * 1e3
            grads = [a.grad for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
            finite = bool(torch.isfinite(loss)) and all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
            row["result"] = f"loss {loss.item():.4g}, {len(grads)} grads, {'finite' if finite else 'NOT FINITE'}"
            row["ok"] = finite
        except (BackendError, RuntimeError, ValueError, TypeError) as exc:
            row["result"] = f"FAILED {type(exc).__name__}: {exc}"
            row["ok"] = False
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="liger-kernel selftest", description=__doc__.split("\n\n")[1])
    parser.add_argument(
        "--device", default=None, help="torch device, e.g. cpu, cuda, cuda:1 (default: the best available)"
    )
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args(argv)
    device = args.device or infer_device()
    try:
        usable_device(device)
    except DeviceUnavailable as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    rows = run(device, getattr(torch, args.dtype))
    print(f"liger-kernel selftest on {device}, {args.dtype}")
    width = max(len(r["op"]) for r in rows)
    for r in rows:
        ms = f"{r['ms']:8.1f} ms" if "ms" in r else " " * 11
        print(f"  {r['op']:<{width}}  {ms}  {r['result']}")
        if "route" in r:
            print(f"  {'':<{width}}  -> {r['route']}")
    failed = [r["op"] for r in rows if not r["ok"]]
    print(f"{len(rows) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
