"""``Capability``: what an implementation registered with
:func:`liger_kernel.backends.register_impl` needs in order to run.

It is that implementation's probe in the dispatcher (:mod:`liger_kernel.dispatch`):
the gates are evaluated when the dispatcher first probes the implementation,
and again after :func:`liger_kernel.backends.clear_available_cache` (or
``liger_kernel.reset()``), not on every call.

Gates, all of which must hold: the ``modules`` import (any exception counts as
missing: a vendor library can fail with ``OSError`` as well as ``ImportError``),
a CUDA device is visible (``requires_cuda``, or a compute-capability bound), its
compute capability lies within ``[min_cc, max_cc]``, and ``predicate()``
returns true (asked last, only when the others hold). No gate: holds anywhere.

``device_types`` is this project's addition: the torch device types whose
tensors the implementation takes. Left empty, it is ``("cuda",)`` when a CUDA
gate is set and any device type otherwise.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ANY_DEVICE = ("*",)


@dataclass(frozen=True)
class Capability:
    """Declarative gate of a registered implementation (see the module docstring)."""

    min_cc: tuple[int, int] | None = None
    max_cc: tuple[int, int] | None = None
    modules: list[str] = field(default_factory=list)
    requires_cuda: bool = False
    predicate: Callable[[], bool] | None = None
    device_types: tuple[str, ...] = ()

    @property
    def needs_cuda(self) -> bool:
        return self.requires_cuda or self.min_cc is not None or self.max_cc is not None

    def served_device_types(self) -> tuple[str, ...]:
        """The device types the implementation serves (``("*",)``: any)."""
        if self.device_types:
            return tuple(self.device_types)
        return ("cuda",) if self.needs_cuda else ANY_DEVICE

    def is_satisfied(self, device: Any = None) -> bool:
        """Whether every gate holds; ``device`` (an index, name or ``torch.device``;
        None: the current one) is the GPU whose compute capability is compared."""
        return self.check(device)[0]

    def reason_if_unsatisfied(self, device: Any = None) -> str | None:
        """Why a gate fails, or None when all hold."""
        ok, reason = self.check(device)
        return None if ok else reason

    def check(self, device: Any = None) -> tuple[bool, str]:
        """``(ok, reason)``, a probe's answer: the first gate that fails, or what held."""
        for module in self.modules:
            try:
                importlib.import_module(module)
            except Exception as exc:
                return False, f"module {module!r} cannot be imported: {type(exc).__name__}: {exc}"
        held = [f"imports {', '.join(self.modules)}"] if self.modules else []
        if self.needs_cuda:
            import torch

            if not torch.cuda.is_available():
                return False, "no CUDA device is visible"
            major, minor = torch.cuda.get_device_capability(device)
            if self.min_cc is not None and (major, minor) < tuple(self.min_cc):
                return False, f"the device is sm_{major}{minor}, below the required sm_{self.min_cc[0]}{self.min_cc[1]}"
            if self.max_cc is not None and (major, minor) > tuple(self.max_cc):
                return (
                    False,
                    f"the device is sm_{major}{minor}, above the supported sm_{self.max_cc[0]}{self.max_cc[1]}",
                )
            held.append(f"CUDA device sm_{major}{minor}")
        if self.predicate is not None:
            try:
                passed = bool(self.predicate())
            except Exception as exc:
                return False, f"its predicate raised {type(exc).__name__}: {exc}"
            if not passed:
                return False, f"its predicate {getattr(self.predicate, '__name__', 'predicate')}() returned False"
            held.append("predicate holds")
        return True, "capability holds" + (f" ({'; '.join(held)})" if held else " (no gates)")


#: A capability without gates, for pure-PyTorch reference implementations.
PYTORCH_FALLBACK = Capability()
