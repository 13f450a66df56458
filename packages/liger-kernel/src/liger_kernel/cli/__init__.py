"""The ``liger-kernel`` command, and what its subcommands share.

The tooling around the library lives in this package, apart from the
architecture (contracts in ``ops``, the dispatcher, ``backends``, ``triton``):
``env_report`` (``info``), ``selftest``, ``demo``, ``scaffold``
(``new-backend``, with its templates) and ``samples``, the per-op example
arguments that selftest, the demo and the conformance suite run.
``models`` is ``liger_kernel.transformers.models_table``, beside the
families it describes.
``python -m liger_kernel.env_report`` still works, as in liger-kernel 0.8.x.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: subcommand -> (module with main(argv), one-line help)
COMMANDS = {
    "info": ("liger_kernel.cli.env_report", "installed distributions, backend probes and op routes"),
    "selftest": ("liger_kernel.cli.selftest", "run every op forward and backward on this machine and show its route"),
    "demo": (
        "liger_kernel.cli.demo",
        "train a small Llama twice, stock and patched, and compare loss, speed and memory",
    ),
    "new-backend": (
        "liger_kernel.cli.scaffold",
        "generate the distribution of a new backend (liger-NAME) and its CI lane",
    ),
    "models": (
        "liger_kernel.transformers.models_table",
        "the model types liger_kernel.transformers patches: what is patched, what stays stock and why",
    ),
}


class DeviceUnavailable(ValueError):
    """A device named on the command line that this process cannot use."""


def _allocates(device: str) -> str | None:
    """None if a tensor can be made on ``device``, else the first line of why not."""
    import torch

    try:
        torch.empty(0, device=device)
    except Exception as exc:  # torch raises AssertionError, RuntimeError, ... by device type
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return None


def available_device_types() -> list[str]:
    """The device types this process can make tensors on: the CPU, torch's
    accelerator, and those the installed backends serve."""
    import torch

    from liger_kernel.dispatch import BackendError, dispatcher

    candidates = ["cpu"]
    find = getattr(getattr(torch, "accelerator", None), "current_accelerator", None)
    accelerator = find() if find else None
    if accelerator is not None:
        candidates.append(accelerator.type)
    try:
        candidates += [t for inst in dispatcher.installed().values() for t in inst.backend.device_types if t != "*"]
    except BackendError:
        pass  # the device types are still worth listing; `liger-kernel info` says what is wrong
    return [t for t in dict.fromkeys(candidates) if _allocates(t) is None]


def usable_device(spec: str) -> torch.device:
    """``spec`` ("cuda", "cuda:1", "cpu") as a device this process can use; else
    :class:`DeviceUnavailable` with a one-line message naming those it can."""
    import torch

    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        problem = f"{spec!r} is not a torch device type"
    else:
        why = _allocates(spec)
        if why is None:
            return device
        problem = f"device {spec!r} is not available here ({why})"
    from liger_kernel.dispatch import dispatcher

    aliased = sorted(t for t, routed_as in dispatcher.device_alias.items() if routed_as == spec.partition(":")[0])
    # under a kernel mock, tensors of another device type are routed as this one
    hint = f" ({', '.join(aliased)} tensors route as {spec!r} here: use --device {aliased[0]})" if aliased else ""
    raise DeviceUnavailable(f"{problem}; available device types: {', '.join(available_device_types())}{hint}")


def version_lines() -> list[str]:
    """liger-kernel's version and each installed backend's distribution and version."""
    import liger_kernel
    from liger_kernel.dispatch import BackendError, dispatcher

    lines = [f"liger-kernel {liger_kernel.__version__}"]
    try:
        installed = dispatcher.installed()
        broken = dispatcher.broken()
    except BackendError as exc:
        return [*lines, f"backends: none found ({exc})"]
    width = max(len(name) for name in [*installed, *(b.name for b in broken)])
    lines += [f"backend {name:<{width}}  {i.distribution} {i.version}" for name, i in sorted(installed.items())]
    lines += [
        f"backend {b.name:<{width}}  {b.distribution} {b.version}  BROKEN (liger-kernel info says why)" for b in broken
    ]
    return lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liger-kernel",
        description="Efficient kernels for LLM training, routed to the installed vendor backend.",
        epilog="Each command has its own --help, e.g. liger-kernel selftest --help.",
    )
    parser.add_argument(
        "--version", action="store_true", help="print liger-kernel's version and the installed backends' versions"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    if argv[0] == "--version":
        print("\n".join(version_lines()))
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        parser.error(f"unknown command {command!r}; choose from {', '.join(COMMANDS)}")
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(rest) or 0)
