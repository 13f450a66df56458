"""``register_impl``: liger-kernel 0.8.5's way to add an implementation of an op,
made a backend of this project's dispatcher.

Every implementation name (``impl_name``, e.g. ``"acme-triton"``) registered
here becomes one backend of :mod:`liger_kernel.dispatch`, registered with
:meth:`~liger_kernel.dispatch.Dispatcher.register` and marked ``per_op``: it
never becomes the backend of a whole device type, it takes the ops it
implements, one by one. Its parts come from the registrations under that name:

- op table: each registered op. A ``torch.autograd.Function`` subclass is used
  as it is (its ``forward(ctx, ...)`` takes the op's public positional
  arguments). A plain callable is called with them and does its own autograd;
  it has no backward of its own, so it cannot run under the ``torch.ops.liger``
  operators (``torch.compile``, ``use_operators()``) in training: register a
  Function for that.
- probe: the :class:`Capability` of every op registered under the name (all
  must hold: the dispatcher probes a backend, not an op; register ops with
  different needs under different names).
- device types: those the capabilities serve.
- priority: from the best ``preference_rank`` (lower is better, as in 0.8.5):
  ``150 - rank``, so that rank 50, that of 0.8.5's ``nvidia-triton``, is the
  priority of this project's vendor backends (100); a lower rank takes the op
  from them where the capability holds, rank 100 (the default) from the
  ``torch`` backend only.

An implementation name may not be the name of an installed backend (the
dispatcher would lose it); it may be an alias of one (``nvidia-triton``), and
then requesting that name selects the registered implementation.

``declare_op_locations(op, modules)`` names modules that register
implementations of ``op``; they are imported, once, when
:mod:`liger_kernel.backends` first looks at that op (``dispatch``,
``available_impls``, ``resolve_impl``, ...). A plain op call does not import
them: import the module that registers, or use those functions first. A
module that fails to import is logged and kept in
:func:`get_discovery_failures`.
"""

from __future__ import annotations

import functools
import importlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from liger_kernel.backend import API_VERSION, Backend
from liger_kernel.backends.capability import ANY_DEVICE, Capability
from liger_kernel.dispatch import dispatcher

logger = logging.getLogger("liger_kernel")

#: the priority of this project's vendor backends, and the preference_rank it
#: stands for (that of 0.8.5's nvidia-triton)
VENDOR_PRIORITY, VENDOR_RANK = 100, 50


def priority_of(rank: int) -> int:
    """The dispatcher priority of a ``preference_rank`` (see the module docstring)."""
    return VENDOR_PRIORITY + VENDOR_RANK - rank


def rank_of(priority: int) -> int:
    """The ``preference_rank`` of a dispatcher priority (inverse of :func:`priority_of`)."""
    return VENDOR_PRIORITY + VENDOR_RANK - priority


@dataclass(frozen=True)
class OpImpl:
    """One implementation of one op.

    ``impl_name`` is its ``<vendor>-<dsl>`` name (``backend`` is the former
    name of that field). Exactly one of ``forward`` (a plain callable) and
    ``autograd_function`` (a ``torch.autograd.Function`` subclass) is set.
    ``modes``/``default_mode`` name kernel variants a plain callable chooses
    from its ``mode=`` keyword; ``tolerances`` maps a dtype to the tolerances
    its tests allow; ``notes`` is free text.
    """

    op_name: str
    impl_name: str
    capability: Capability = field(default_factory=Capability)
    forward: Callable[..., Any] | None = None
    autograd_function: type | None = None
    modes: tuple[str, ...] = ()
    default_mode: str | None = None
    preference_rank: int = 100
    tolerances: Mapping[Any, Mapping[str, float]] = field(default_factory=dict)
    notes: str = ""

    @property
    def backend(self) -> str:
        return self.impl_name

    def call(self, *args: Any, **kwargs: Any) -> Any:
        """Run it. A Function takes positional arguments only (``mode=``, which
        selects a variant of a plain callable, is dropped); a plain callable
        gets the keywords too."""
        if self.autograd_function is not None:
            kwargs.pop("mode", None)
            if kwargs:
                raise TypeError(
                    f"implementation {self.impl_name!r} of {self.op_name!r} is a torch.autograd.Function, whose "
                    f"apply() takes positional arguments only; got keywords {sorted(kwargs)}: pass them "
                    "positionally, or register a plain callable"
                )
            return self.autograd_function.apply(*args)
        if self.forward is not None:
            return self.forward(*args, **kwargs)
        raise RuntimeError(f"implementation {self.impl_name!r} of {self.op_name!r} has nothing to call")


_LOCK = threading.RLock()
_REGISTRY: dict[tuple[str, str], OpImpl] = {}
#: "<impl>/<op>" -> what the dispatcher routes to; read through REGISTERED
_FUNCTIONS: dict[str, Any] = {}
#: impl name -> undo of its dispatcher registration
_UNDO: dict[str, Callable[[], None]] = {}
_LOCATIONS: dict[str, tuple[str, ...]] = {}
_DISCOVERED: set[str] = set()
_DISCOVERY_FAILURES: dict[str, tuple[type, str]] = {}


class _Registered:
    """The dispatcher imports a backend's op as ``"module:attr"``; a registered
    one is ``"liger_kernel.backends.registry:REGISTERED.<impl>/<op>"``."""

    def __getattr__(self, key: str) -> Any:
        try:
            return _FUNCTIONS[key]
        except KeyError:
            raise AttributeError(f"no implementation registered as {key!r}") from None


REGISTERED = _Registered()


def _routable(op_name: str, impl_name: str, obj: Any) -> Any:
    """What the dispatcher calls for ``obj``: a Function as it is, a plain
    callable behind the Function interface the op contracts use."""
    if isinstance(obj, type):
        return obj

    def forward(ctx: Any, *args: Any) -> Any:
        return obj(*args)

    def backward(ctx: Any, *grads: Any) -> Any:
        raise RuntimeError(
            f"implementation {impl_name!r} of {op_name!r} is a plain callable, which has no backward under the "
            "torch.ops.liger operators (torch.compile, use_operators()); register a torch.autograd.Function"
        )

    namespace = {
        "apply": staticmethod(obj),
        "forward": staticmethod(forward),
        "backward": staticmethod(backward),
        "__doc__": getattr(obj, "__doc__", None),
        "__module__": getattr(obj, "__module__", __name__),
    }
    return type(getattr(obj, "__name__", op_name), (), namespace)


def _probe(impl_name: str) -> tuple[bool, str]:
    with _LOCK:
        impls = [impl for (_, name), impl in sorted(_REGISTRY.items()) if name == impl_name]
    failing = []
    for impl in impls:
        ok, reason = impl.capability.check()
        if not ok:
            failing.append(f"{impl.op_name}: {reason}")
    if failing:
        return False, "; ".join(failing)
    return True, f"capabilities of {', '.join(i.op_name for i in impls)} hold (registered with register_impl)"


def _install(impl_name: str, module: str) -> None:
    """(Re)make the dispatcher backend of ``impl_name`` from its registrations."""
    impls = [impl for (_, name), impl in _REGISTRY.items() if name == impl_name]
    served: list[str] = []
    for impl in impls:
        served += [t for t in impl.capability.served_device_types() if t not in served]
    backend = Backend(
        name=impl_name,
        device_types=ANY_DEVICE if "*" in served else tuple(served),
        priority=priority_of(min(impl.preference_rank for impl in impls)),
        api_version=API_VERSION,
        probe=functools.partial(_probe, impl_name),
        functions={impl.op_name: f"{__name__}:REGISTERED.{impl_name}/{impl.op_name}" for impl in impls},
        per_op=True,
    )
    undo = _UNDO.pop(impl_name, None)
    if undo is not None:
        undo()
    _UNDO[impl_name] = dispatcher.register(backend, module, "register_impl")


def _check_name(what: str, name: Any) -> None:
    if not isinstance(name, str) or not name or any(c in name for c in ".: \t"):
        raise ValueError(f"{what} must be a non-empty string without '.', ':' or spaces, got {name!r}")


def register_impl(
    op_name: str,
    *,
    impl_name: str | None = None,
    capability: Capability | None = None,
    modes: tuple[str, ...] = (),
    default_mode: str | None = None,
    preference_rank: int = 100,
    tolerances: Mapping[Any, Mapping[str, float]] | None = None,
    notes: str = "",
    backend: str | None = None,
) -> Callable[[Any], Any]:
    """Decorator: register the decorated Function class or callable as the
    ``impl_name`` implementation of ``op_name`` (``backend=`` is the former
    name of ``impl_name=``) and return it unchanged. Registering the same
    (op, impl) pair again replaces it."""
    if impl_name is None:
        impl_name = backend
    if impl_name is None:
        raise TypeError("register_impl needs impl_name= (or its former name backend=)")
    _check_name("op_name", op_name)
    _check_name("impl_name", impl_name)

    def decorate(obj: Any) -> Any:
        if not callable(obj):
            raise TypeError(f"@register_impl expects a class or a callable, got {type(obj).__name__}")
        is_class = isinstance(obj, type)
        impl = OpImpl(
            op_name=op_name,
            impl_name=impl_name,
            capability=capability or Capability(),
            forward=None if is_class else obj,
            autograd_function=obj if is_class else None,
            modes=tuple(modes),
            default_mode=default_mode,
            preference_rank=preference_rank,
            tolerances=dict(tolerances or {}),
            notes=notes,
        )
        with _LOCK:
            if impl_name not in _UNDO and impl_name in dispatcher.installed():
                owner = dispatcher.installed()[impl_name]
                raise ValueError(
                    f"implementation name {impl_name!r} is the installed backend {impl_name!r} "
                    f"({owner.distribution} {owner.version}); register under another name"
                )
            _REGISTRY[(op_name, impl_name)] = impl
            _FUNCTIONS[f"{impl_name}/{op_name}"] = _routable(op_name, impl_name, obj)
            _install(impl_name, getattr(obj, "__module__", None) or "?")
        return obj

    return decorate


#: former name of :func:`register_impl`
register_op = register_impl


def unregister(impl_name: str) -> None:
    """Remove every op registered under ``impl_name`` (for tests)."""
    with _LOCK:
        for key in [key for key in _REGISTRY if key[1] == impl_name]:
            del _REGISTRY[key]
            _FUNCTIONS.pop(f"{impl_name}/{key[0]}", None)
        undo = _UNDO.pop(impl_name, None)
        if undo is not None:
            undo()


def declare_op_locations(op_name: str, module_paths: tuple[str, ...]) -> None:
    """Modules to import, once, when this package first looks at ``op_name``
    (see the module docstring)."""
    with _LOCK:
        _LOCATIONS[op_name] = tuple(module_paths)
        _DISCOVERED.discard(op_name)


def discover(op_name: str) -> None:
    """Import the modules declared for ``op_name`` unless done already."""
    with _LOCK:
        if op_name in _DISCOVERED:
            return
        _DISCOVERED.add(op_name)
        for path in _LOCATIONS.get(op_name, ()):
            try:
                importlib.import_module(path)
            except Exception as exc:
                _DISCOVERY_FAILURES[path] = (type(exc), str(exc))
                logger.warning(
                    "module %r declared for op %r cannot be imported: %s: %s", path, op_name, type(exc).__name__, exc
                )


def get_discovery_failures() -> dict[str, tuple[type, str]]:
    """Declared modules whose import failed: module path -> (exception type, message)."""
    return dict(_DISCOVERY_FAILURES)


def get_registered(op_name: str, backend: str) -> OpImpl | None:
    """The implementation registered as ``backend`` for ``op_name``, if any."""
    discover(op_name)
    with _LOCK:
        return _REGISTRY.get((op_name, backend))


def list_registered(op_name: str) -> tuple[OpImpl, ...]:
    """Every implementation registered for ``op_name``, available here or not."""
    discover(op_name)
    with _LOCK:
        return tuple(impl for (op, _), impl in sorted(_REGISTRY.items()) if op == op_name)


def all_registered_ops() -> tuple[str, ...]:
    """The ops with at least one registered implementation."""
    with _LOCK:
        return tuple(sorted({op for op, _ in _REGISTRY}))
