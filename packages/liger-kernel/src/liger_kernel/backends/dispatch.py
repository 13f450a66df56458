"""liger-kernel 0.8.5's ``dispatch``, ``set_impl``, ``available_impls``, ...,
answered by this project's dispatcher (:mod:`liger_kernel.dispatch`).

An implementation name is a backend name or alias: ``nvidia-triton`` (and
0.8.5's bare ``triton``) is liger-cuda's ``cuda`` backend, ``ascend-triton``
liger-ascend's ``ascend``, ``rocm-triton`` (or ``amd-triton``) liger-rocm's
``rocm``, ``intel-triton`` liger-xpu's ``xpu``, ``pytorch`` the pure-PyTorch
``torch`` backend; a name given to :func:`register_impl` is its own backend.
The names this module returns are those (a backend's first alias, else its
name). Selection is the dispatcher's, first match wins:
``LIGER_KERNEL_BACKEND_<OP>`` / ``LIGER_KERNEL_IMPL_<OP>``, then
``LIGER_KERNEL_BACKEND`` / ``LIGER_KERNEL_IMPL``, then ``impl=`` of a call or
:func:`set_impl` (``liger_kernel.use_backend`` / ``set_backend``), then automatic.

Where 0.8.5 differs, this project's documented rules are kept:

- An op the selected implementation lacks runs on the ``torch`` backend,
  logged once, where 0.8.5 raised :class:`NoImplAvailableError`; with
  ``LIGER_KERNEL_STRICT=1`` it raises (``FallbackError``, a
  :class:`NoImplAvailableError`). An op a registered implementation lacks goes
  where it would have gone had nothing been requested.
- The environment beats Python: ``LIGER_KERNEL_IMPL`` overrides ``impl=`` and
  :func:`set_impl` (0.8.5 let ``impl=`` win).
- Unknown names raise at once, in :func:`set_impl` too, listing the installed
  backends with their aliases; a requested backend whose probe fails raises
  with its reason and install command (:class:`ImplNotAvailableError` both).
- Probe (capability) results are cached until :func:`clear_available_cache`
  or ``liger_kernel.reset()``.
- ``mode=`` selects a kernel variant of a plain callable registered for an op
  of its own; the ops of :mod:`liger_kernel.ops` have no variants and accept
  only ``None`` or ``"default"``. 0.8.5's cuTile and CuTe DSL implementations
  (``nvidia-cutile``, ``nvidia-cutedsl``) do not exist here.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from liger_kernel import settings
from liger_kernel.backend import Backend
from liger_kernel.backends.capability import Capability
from liger_kernel.backends.registry import OpImpl, discover, get_registered, rank_of
from liger_kernel.dispatch import (
    BackendRequestError,
    BackendUnavailableError,
    NoRouteError,
    current_request,
    dispatcher,
    use_backend,
)
from liger_kernel.dispatch import set_backend as _set_default_backend
from liger_kernel.utils import infer_device

#: an implementation cannot be used: its name is unknown or its probe fails
ImplNotAvailableError = BackendRequestError
#: no implementation may run the op
NoImplAvailableError = NoRouteError


class LigerImplFallbackWarning(UserWarning):
    """Warned, once per (op, requested, actual), by :func:`emit_fallback_warning`."""


BackendNotAvailableError = ImplNotAvailableError
NoBackendAvailableError = NoImplAvailableError
LigerBackendFallbackWarning = LigerImplFallbackWarning

_VARIANTLESS_MODES = (None, "default")
_warned: set[tuple[str, str, str]] = set()
_warned_lock = threading.Lock()


def impl_name(backend: Backend) -> str:
    """The name this module reports ``backend`` by: its first alias, else its name."""
    return backend.aliases[0] if backend.aliases else backend.name


def set_impl(name: str | None) -> None:
    """Route every op to implementation ``name`` (None: automatic); see ``liger_kernel.set_backend``."""
    _set_default_backend(name)


def get_impl() -> str | None:
    """The name given to :func:`set_impl` (or ``set_backend``), else None."""
    return dispatcher.default_request


def clear_available_cache() -> None:
    """Forget probe results and routes, so capabilities are evaluated again."""
    dispatcher.forget_routes()


def _device_type(device: Any) -> str:
    """The device type routing uses for ``device`` (None: this process's accelerator)."""
    if device is None:
        device_type = infer_device()
    elif isinstance(device, int):
        device_type = "cuda"  # a bare index names a CUDA device, as in torch.cuda
    else:
        device_type = torch.device(device).type
    return dispatcher.device_alias.get(device_type, device_type)


def available_impls(op_name: str, device: Any = None) -> list[str]:
    """The implementations of ``op_name`` that may run on ``device`` (an index,
    name or ``torch.device``; None: this process's accelerator, else the CPU):
    installed, serving its device type, probe passing; best first."""
    discover(op_name)
    device_type = _device_type(device)
    usable = [
        inst
        for name, inst in dispatcher.installed().items()
        if op_name in inst.backend.implementations and inst.backend.serves(device_type) and dispatcher.probe(name)[0]
    ]
    # at equal priority the device's own backend keeps the op (Dispatcher.select)
    usable.sort(key=lambda inst: (-inst.backend.priority, inst.backend.per_op, inst.backend.name))
    return [impl_name(inst.backend) for inst in usable]


def all_impls(op_name: str) -> list[str]:
    """Every installed implementation of ``op_name``, available here or not."""
    discover(op_name)
    return sorted(
        impl_name(inst.backend) for inst in dispatcher.installed().values() if op_name in inst.backend.implementations
    )


set_backend = set_impl
get_backend = get_impl
available_backends = available_impls
all_backends = all_impls


@contextlib.contextmanager
def _requesting(name: str | None) -> Iterator[None]:
    if name is None:
        yield
    else:
        with use_backend(name):
            yield


def _label(op_name: str) -> str:
    from liger_kernel.ops import OPS

    public = OPS.get(op_name)
    return public.__name__ if public is not None else op_name


def resolve_impl(op_name: str, requested: str | None = None, device: Any = None) -> OpImpl:
    """The implementation a call of ``op_name`` on ``device`` runs (``requested``:
    as with ``impl=``): the registered :class:`OpImpl`, or one describing the
    installed backend's Function. Raises as the call would."""
    discover(op_name)
    device_type = _device_type(device)
    with _requesting(requested):
        route = dispatcher.select(op_name, device_type, current_request())
        function = dispatcher.function(op_name, device_type, _label(op_name))
    registered = get_registered(op_name, route.backend)
    if registered is not None:
        return registered
    inst = dispatcher.get(route.backend)
    return OpImpl(
        op_name=op_name,
        impl_name=impl_name(inst.backend),
        capability=Capability(
            predicate=lambda: dispatcher.probe(inst.backend.name)[0], device_types=inst.backend.device_types
        ),
        autograd_function=function,
        preference_rank=rank_of(inst.backend.priority),
        notes=f"backend {inst.backend.name!r} ({inst.distribution} {inst.version}): {route.implementation}"
        + (f"; fallback: {route.fallback_reason}" if route.fallback_reason else ""),
    )


resolve_backend = resolve_impl


def dispatch(op_name: str, *args: Any, impl: str | None = None, backend: str | None = None, **kwargs: Any) -> Any:
    """Call ``op_name`` with ``args`` on the implementation routing picks
    (``impl=``, or its former name ``backend=``, requests one for this call).

    An op of :mod:`liger_kernel.ops` goes through its public Function
    (``liger_kernel.ops.OPS[op_name].apply``: argument checks, keywords bound
    to its signature). Any other op is one only registered implementations
    have: it is routed on the device type of the first tensor in ``args``
    (none: this process's accelerator) and called with ``args`` and ``kwargs``.
    """
    from liger_kernel.ops import OPS

    requested = impl if impl is not None else backend
    discover(op_name)
    public = OPS.get(op_name)
    with _requesting(requested):
        if public is not None:
            mode = kwargs.pop("mode", None)
            if mode not in _VARIANTLESS_MODES:
                raise ValueError(f"{op_name} has no kernel variants: mode must be None or 'default', got {mode!r}")
            return public.apply(*args, **kwargs)
        tensor = next((a for a in args if isinstance(a, torch.Tensor)), None)
        device_type = tensor.device.type if tensor is not None else _device_type(None)
        function = dispatcher.function(op_name, device_type, op_name)
        if isinstance(function, type) and issubclass(function, torch.autograd.Function):
            kwargs.pop("mode", None)
            if kwargs:
                raise TypeError(
                    f"the {op_name!r} implementation is a torch.autograd.Function, whose apply() takes "
                    f"positional arguments only; got keywords {sorted(kwargs)}"
                )
        return function.apply(*args, **kwargs)


def emit_fallback_warning(op_name: str, requested: str, actual: str, reason: str) -> None:
    """For an implementation that hands a call to another: warn once per
    (op, requested, actual), or raise under ``LIGER_KERNEL_STRICT=1``."""
    message = f"{op_name}: implementation {requested!r} cannot run this call ({reason}); it runs on {actual!r}"
    if settings.flag("LIGER_KERNEL_STRICT"):
        raise BackendUnavailableError(f"{message}, which LIGER_KERNEL_STRICT=1 forbids")
    key = (op_name, requested, actual)
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(f"{message}. Set LIGER_KERNEL_STRICT=1 to raise instead.", LigerImplFallbackWarning, stacklevel=3)
