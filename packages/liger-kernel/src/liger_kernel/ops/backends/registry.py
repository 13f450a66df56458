"""liger-kernel 0.8.5's older implementation registry, on this project's dispatcher.

An :class:`ImplInfo` names an alternative kernel set: the device types it
supports (``devices``), those where it applies without being asked
(``default_devices``), and the module holding its op Functions
(``module_path``). :func:`register_impl` records it in :data:`IMPL_REGISTRY`
and makes it a backend of :mod:`liger_kernel.dispatch` through
:func:`liger_kernel.backends.register_impl`, one op at a time: every
``torch.autograd.Function`` of ``module_path`` named as a public Function of
:mod:`liger_kernel.ops` (``LigerRMSNormFunction``, ...) becomes that op's
implementation under ``info.name``. It is then requested like any backend:
``LIGER_KERNEL_IMPL=<name>`` (:data:`LIGER_KERNEL_IMPL_ENV`),
``LIGER_KERNEL_BACKEND[_<OP>]``, ``impl=`` of :mod:`liger_kernel.functional`,
:func:`liger_kernel.use_backend`. Such a Function receives the arguments of
this project's op (those of ``liger_kernel.ops.<op>``'s ``check``, less the
ones the contract consumes itself).

Where 0.8.5 differs, this project's rules are kept:

- 0.8.5 swapped the kernels into ``liger_kernel.ops`` when that package was
  imported, so an implementation registered later changed nothing but
  :func:`select_impl`'s answer. Here the dispatcher routes every call, so a
  registration takes effect at once.
- ``module_path`` is imported by :func:`register_impl`; an import that fails
  raises there, with its cause (0.8.5 silently kept its own kernels when an
  automatically applied implementation failed to import).
- Where it applies by default, it takes its ops from the device's vendor
  backend; elsewhere it runs only when requested. ``default_devices`` must be
  empty or all of ``devices``: the dispatcher ranks a backend once, not per
  device type. Register per op with :func:`liger_kernel.backends.register_impl`
  for finer control.
- :func:`select_impl` answers from :data:`IMPL_REGISTRY`, as in 0.8.5; the
  installed vendor backends are the dispatcher's, listed by
  :func:`liger_kernel.backends.available_impls`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import torch

from liger_kernel.backends import registry as _impl_registry
from liger_kernel.backends.capability import Capability

#: the environment variable that requests an implementation by name
LIGER_KERNEL_IMPL_ENV = "LIGER_KERNEL_IMPL"

#: ``preference_rank`` of an implementation applied by default: above the
#: vendor backends (see :func:`liger_kernel.backends.registry.priority_of`)
DEFAULT_RANK = _impl_registry.VENDOR_RANK - 1
#: ``preference_rank`` of an opt-in implementation: that of the ``torch``
#: backend's priority (0), which automatic selection never passes over for it
OPT_IN_RANK = _impl_registry.rank_of(0)


@dataclass(frozen=True)
class ImplInfo:
    """One alternative kernel set (see the module docstring)."""

    name: str
    devices: tuple[str, ...]
    default_devices: tuple[str, ...] = field(default_factory=tuple)
    module_path: str = ""

    def __post_init__(self) -> None:
        if not self.devices:
            raise ValueError(f"implementation {self.name!r} names no devices: give devices=('cuda',) or the like")
        if not self.module_path:
            raise ValueError(f"implementation {self.name!r} needs module_path, the module holding its op Functions")
        unsupported = sorted(set(self.default_devices) - set(self.devices))
        if unsupported:
            raise ValueError(
                f"implementation {self.name!r}: default_devices {unsupported} are not among its devices "
                f"{list(self.devices)}"
            )


#: implementation name -> its :class:`ImplInfo`, as registered
IMPL_REGISTRY: dict[str, ImplInfo] = {}


def _op_functions(info: ImplInfo) -> dict[str, type]:
    """op name -> the Function ``info.module_path`` gives for it."""
    from liger_kernel.ops import OPS

    try:
        module = importlib.import_module(info.module_path)
    except Exception as exc:
        raise ImportError(
            f"implementation {info.name!r}: its module_path {info.module_path!r} cannot be imported: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    found = {}
    for op, public in OPS.items():
        candidate = getattr(module, public.__name__, None)
        if isinstance(candidate, type) and issubclass(candidate, torch.autograd.Function):
            found[op] = candidate
    if not found:
        names = ", ".join(public.__name__ for public in OPS.values())
        raise ValueError(
            f"implementation {info.name!r}: {info.module_path!r} defines no torch.autograd.Function named as an "
            f"op Function of liger_kernel.ops ({names})"
        )
    return found


def register_impl(info: ImplInfo) -> None:
    """Record ``info`` and route its ops to the Functions of its module (see the module docstring)."""
    if not isinstance(info, ImplInfo):
        raise TypeError(f"register_impl expects an ImplInfo, got {type(info).__name__}")
    if info.default_devices and set(info.default_devices) != set(info.devices):
        raise ValueError(
            f"implementation {info.name!r}: default_devices {list(info.default_devices)} is a part of its devices "
            f"{list(info.devices)}; here an implementation applies by default on all of them or on none. Register "
            "one ImplInfo per group of devices, or use liger_kernel.backends.register_impl"
        )
    functions = _op_functions(info)
    rank = DEFAULT_RANK if info.default_devices else OPT_IN_RANK
    capability = Capability(device_types=tuple(info.devices))
    _impl_registry.unregister(info.name)  # registering a name again replaces it, as in 0.8.5
    for op, function in functions.items():
        _impl_registry.register_impl(op, impl_name=info.name, capability=capability, preference_rank=rank)(function)
    IMPL_REGISTRY[info.name] = info


def select_impl(device: str, explicit: str | None = None) -> ImplInfo | None:
    """The registered implementation for device type ``device``: ``explicit``
    by name (RuntimeError when unknown or not supporting ``device``), else the
    first that applies by default there, else None."""
    if explicit:
        info = IMPL_REGISTRY.get(explicit)
        if info is None:
            known = ", ".join(sorted(IMPL_REGISTRY)) or "none"
            raise RuntimeError(
                f"unknown {LIGER_KERNEL_IMPL_ENV}={explicit!r}; registered implementations: {known} (the installed "
                "backends are listed by liger_kernel.backends.available_impls)"
            )
        if device not in info.devices:
            raise RuntimeError(
                f"{LIGER_KERNEL_IMPL_ENV}={explicit!r} supports devices {list(info.devices)}, not {device!r}"
            )
        return info
    return next((info for info in IMPL_REGISTRY.values() if device in info.default_devices), None)
