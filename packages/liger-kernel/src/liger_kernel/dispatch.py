"""Routing each op call to a backend.

Backends are discovered from the ``liger_kernel.backends`` entry-point group on
first use. For an op called on a tensor of device type ``D``, the backend is,
first match wins:

1. ``LIGER_KERNEL_BACKEND_<OP>`` (e.g. ``LIGER_KERNEL_BACKEND_RMS_NORM``; alias
   ``LIGER_KERNEL_IMPL_<OP>``),
2. ``LIGER_KERNEL_BACKEND`` (alias ``LIGER_KERNEL_IMPL``),
3. the innermost :func:`use_backend` context, else :func:`set_backend`,
4. the installed backends serving ``D`` whose probe passes, highest priority,
5. the ``torch`` backend.

A backend may be requested by its name or one of its aliases (liger-kernel
0.8.5's implementation names, such as ``nvidia-triton``). An explicitly
requested backend must exist and pass its probe, or the call raises; if it
does not serve ``D`` (a CPU tensor in a CUDA process), ``D`` is routed
automatically. An op the chosen backend lacks falls back to ``torch``, logged
once, or raises under ``LIGER_KERNEL_STRICT=1``.

Backends with ``per_op=True`` (the implementations registered through
:mod:`liger_kernel.backends`) supplement the others op by op: in step 4 one
takes an op it implements from the backend chosen for ``D`` when its priority
is higher, and when one is requested for an op it lacks, that op is routed as
in step 4 (logged once; an error under ``LIGER_KERNEL_STRICT=1``).

The result is cached per (op, device type, requested backend), so the cost of a
call after the first is two dict lookups. A route to a Triton backend carries
that backend's device profile: its kernels, forward and backward, are sized by
the profile of the backend that was chosen, never by a second lookup that
could pick another one (:meth:`Dispatcher.profile`). Environment variables are read when
a route is first resolved, and a ``LIGER_KERNEL_*`` name that does nothing is
warned about then (:mod:`liger_kernel.settings`); :func:`reset` forgets
everything.

A broken plugin breaks nothing else. An entry point that cannot be used is
recorded as :class:`Broken` (with its distribution, version and the error)
instead of failing discovery. The cases are: its import raises, it yields
something other than a :class:`~liger_kernel.backend.Backend`, its core API
version differs from this core's, or its backend name is registered by another
entry point too (then neither is used, except that liger-kernel's own ``torch``
backend is kept). Where it matters it is loud:

- requesting it by name (any of the ways above) raises its error
  (:class:`BackendLoadError`; :class:`BackendConflictError` for a shared name);
- it is a candidate for the device types it declares, or, when it could not
  say (its import failed), for every device type but ``cpu`` and ``meta``.
  Automatic routing on such a device type that no working backend (installed,
  loaded, probe passing; ``torch`` does not count) serves raises
  :class:`BackendLoadError` naming the plugin, its cause and the repair; where
  a working backend serves it, ops go there with a warning logged once;
- ``liger-kernel info`` lists it with its cause and exits non-zero.

Every other backend, and every route it cannot claim (CPU ops among them),
keeps working.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from liger_kernel import settings
from liger_kernel.backend import API_VERSION, Backend, DeviceProfile, load_attr

GROUP = "liger_kernel.backends"
TORCH = "torch"
#: device types a plugin that could not say what it serves is not a candidate for
#: (the torch backend serves them, and no accelerator backend does)
HOST_DEVICE_TYPES = ("cpu", "meta")

logger = logging.getLogger("liger_kernel")


class BackendError(RuntimeError):
    """Base of every routing error."""


class BackendRequestError(BackendError):
    """A requested backend cannot be used: unknown, or its probe fails."""


class UnknownBackendError(BackendRequestError):
    pass


class BackendUnavailableError(BackendRequestError):
    pass


class NoRouteError(BackendError):
    """No backend may run the op: none implements it, or strict mode forbids the fallback."""


class BackendLoadError(BackendError):
    pass


class BackendConflictError(BackendError):
    pass


class FallbackError(NoRouteError):
    """Raised instead of falling back to ``torch`` under LIGER_KERNEL_STRICT=1."""


@dataclass(frozen=True)
class Installed:
    backend: Backend
    distribution: str
    version: str


@dataclass(frozen=True)
class Route:
    """Where one op goes on one device type, and why."""

    op: str
    device_type: str
    backend: str
    distribution: str
    version: str
    implementation: str
    fallback_reason: str | None = None
    #: ``"module:attr"`` of the device-profile factory of ``backend`` (Triton
    #: backends; None otherwise): what the route's kernels are sized by
    profile: str | None = None


@dataclass(frozen=True)
class Broken:
    """An installed backend entry point that cannot be used, and why.

    name: the backend name it registers, or the entry point's name where it
        never got as far as saying (its import failed).
    device_types: what it says it serves; None when it could not say.
    cause: the error, as text; repair: what the user should run.
    conflict: True when the problem is a backend name registered twice.
    """

    name: str
    entry_point: str
    distribution: str
    version: str
    cause: str
    repair: str
    device_types: tuple[str, ...] | None = None
    conflict: bool = False
    exception: BaseException | None = field(default=None, compare=False, repr=False)

    def claims(self, device_type: str) -> bool:
        """Whether it might be the backend meant to serve ``device_type``."""
        if self.device_types is None or "*" in self.device_types:
            return device_type not in HOST_DEVICE_TYPES
        return device_type in self.device_types

    def describe(self) -> str:
        return (
            f"backend plugin {self.name!r} (entry point {self.entry_point!r} of {self.distribution} "
            f"{self.version}) is broken: {self.cause}"
        )


def _broken_error(broken: list[Broken], lead: str) -> BackendError:
    """One error for ``broken`` plugins, chained to the first one's exception."""
    cls = BackendConflictError if all(b.conflict for b in broken) else BackendLoadError
    details = "; ".join(f"{b.describe()}. Repair: {b.repair}" for b in broken)
    error = cls(f"{lead}: {details}")
    error.__cause__ = next((b.exception for b in broken if b.exception is not None), None)
    return error


class Dispatcher:
    """Discovery, probing and the route cache. One instance per process."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._installed: dict[str, Installed] | None = None
        self._broken: list[Broken] = []
        self._registered: dict[str, Installed] = {}
        self._probes: dict[str, tuple[bool, str]] = {}
        #: (backend, prepare step) pairs that have run and passed; forgotten by
        #: reset(), since a kernel mock changes what a step finds
        self._prepared: set[tuple[str, str]] = set()
        self._functions: dict[tuple[str, str, str | None], Any] = {}
        self._profiles: dict[tuple[str, str, str, int | None], DeviceProfile] = {}
        self._logged: set[tuple[str, ...]] = set()
        self._settings_checked = False
        #: device type -> the device type its tensors are routed as. Only the
        #: kernel mocks (liger_conformance.mocks) set it, making CPU tensors
        #: stand in for a vendor's; see :meth:`mocked`.
        self.device_alias: dict[str, str] = {}
        self.default_request: str | None = None

    # -- discovery -------------------------------------------------------
    def installed(self) -> dict[str, Installed]:
        """Discovered backends, with those added by :meth:`register` over them."""
        if self._installed is None:
            with self._lock:
                if self._installed is None:
                    self._installed = self._discover()
        return {**self._installed, **self._registered} if self._registered else self._installed

    def register(self, backend: Backend, distribution: str, version: str) -> Callable[[], None]:
        """Add (or shadow) a backend without an entry point; returns its undo.

        For tests and mocks (the recording backends of liger-conformance): a
        registered backend survives :meth:`reset` until its undo is called.
        """
        with self._lock:
            previous = self._registered.get(backend.name)
            self._registered[backend.name] = Installed(backend, distribution, version)
            self.forget_routes()

        def unregister() -> None:
            with self._lock:
                if previous is None:
                    self._registered.pop(backend.name, None)
                else:
                    self._registered[backend.name] = previous
                self.forget_routes()

        return unregister

    def broken(self) -> list[Broken]:
        """Installed entry points that cannot be used (see the module docstring)."""
        self.installed()
        # a backend added by register() under the same name shadows the broken one
        return [b for b in self._broken if b.name not in self._registered]

    def _discover(self) -> dict[str, Installed]:
        loaded: dict[str, list[tuple[str, Installed]]] = {}
        broken: list[Broken] = []
        for ep in metadata.entry_points(group=GROUP):
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            reinstall = f"pip install --force-reinstall {dist}, or pip uninstall {dist}"
            try:
                backend = ep.load()
            except Exception as exc:
                broken.append(Broken(ep.name, ep.name, dist, version, _text(exc), reinstall, exception=exc))
                continue
            if not isinstance(backend, Backend):
                cause = f"it yields {type(backend).__name__}, not a liger_kernel.backend.Backend"
                broken.append(Broken(ep.name, ep.name, dist, version, cause, reinstall))
                continue
            if backend.api_version != API_VERSION:
                cause = (
                    f"it implements core API version {backend.api_version}, but liger-kernel "
                    f"{_core_version()} provides API version {API_VERSION}"
                )
                repair = "install versions that match: " + (
                    backend.install_hint or f"pip install -U liger-kernel {dist}"
                )
                broken.append(Broken(backend.name, ep.name, dist, version, cause, repair, backend.device_types))
                continue
            loaded.setdefault(backend.name, []).append((ep.name, Installed(backend, dist, version)))
        found: dict[str, Installed] = {}
        for name, claims in loaded.items():
            if len(claims) == 1:
                found[name] = claims[0][1]
                continue
            # liger-kernel's own backend is every route's fallback: it stays, its rivals go
            keep = next((c for c in claims if name == TORCH and c[1].distribution == "liger-kernel"), None)
            if keep is not None:
                found[name] = keep[1]
            who = " and ".join(f"entry point {ep} of {inst.distribution} {inst.version}" for ep, inst in claims)
            cause = f"backend name {name!r} is registered more than once ({who})"
            for ep_name, inst in claims:
                if (ep_name, inst) == keep:
                    continue
                repair = f"uninstall the one you do not want (pip uninstall {inst.distribution})"
                broken.append(
                    Broken(
                        name,
                        ep_name,
                        inst.distribution,
                        inst.version,
                        cause,
                        repair,
                        inst.backend.device_types,
                        conflict=True,
                    )
                )
        if TORCH not in found:
            raise BackendLoadError(
                "the built-in 'torch' backend is not registered: liger-kernel is not installed "
                "(run pip install liger-kernel, or pip install -e packages/liger-kernel in a checkout)"
            )
        self._broken = broken
        return found

    def get(self, name: str) -> Installed:
        """The backend called ``name``, or else the one with that alias."""
        installed = self.installed()
        if name in installed:
            return installed[name]
        claimants = [inst for inst in installed.values() if name in inst.backend.aliases]
        if len(claimants) == 1:
            return claimants[0]
        if claimants:
            who = " and ".join(f"{inst.backend.name!r} ({inst.distribution})" for inst in claimants)
            raise BackendConflictError(f"backends {who} both claim the name {name!r}; request one by its own name")
        broken = [b for b in self.broken() if b.name == name]
        if broken:
            raise _broken_error(broken, f"backend {name!r} was requested but cannot be used")
        names = ", ".join(
            f"{n} (alias {', '.join(inst.backend.aliases)})" if inst.backend.aliases else n
            for n, inst in sorted(installed.items())
        )
        unusable = sorted({b.name for b in self.broken()})
        also = f"; installed but broken: {', '.join(unusable)}" if unusable else ""
        raise UnknownBackendError(f"unknown backend {name!r}; installed backends: {names}{also}")

    def probe(self, name: str) -> tuple[bool, str]:
        if name not in self._probes:
            backend = self.get(name).backend
            try:
                ok, reason = backend.probe()
            except Exception as exc:
                raise BackendLoadError(f"probe of backend {name!r} raised {type(exc).__name__}: {exc}") from exc
            self._probes[name] = (bool(ok), str(reason))
        return self._probes[name]

    # -- selection -------------------------------------------------------
    def requested(self, op: str | None, context: str | None) -> str | None:
        per_op = None
        if op:
            variables = (settings.per_op_variable(op, prefix) for prefix in settings.PER_OP_PREFIXES)
            per_op = next(filter(None, map(os.environ.get, variables)), None)
        return (
            per_op or os.environ.get("LIGER_KERNEL_BACKEND") or os.environ.get("LIGER_KERNEL_IMPL") or context or None
        )

    def _auto(self, device_type: str) -> Installed:
        candidates = [
            inst
            for name, inst in self.installed().items()
            if name != TORCH and not inst.backend.per_op and inst.backend.serves(device_type) and self.probe(name)[0]
        ]
        claimants = [b for b in self.broken() if b.claims(device_type)]
        if not candidates:
            if claimants:
                raise _broken_error(
                    claimants,
                    f"no working backend serves device type {device_type!r}, and an installed plugin that "
                    "may be the one meant to cannot be used (LIGER_KERNEL_BACKEND=torch runs every op on the "
                    "pure-PyTorch backend meanwhile)",
                )
            return self.get(TORCH)
        candidates.sort(key=lambda inst: -inst.backend.priority)
        if len(candidates) > 1 and candidates[0].backend.priority == candidates[1].backend.priority:
            a, b = candidates[0], candidates[1]
            raise BackendConflictError(
                f"backends {a.backend.name!r} ({a.distribution}) and {b.backend.name!r} "
                f"({b.distribution}) both claim device type {device_type!r} at priority "
                f"{a.backend.priority}; uninstall one or choose with LIGER_KERNEL_BACKEND"
            )
        chosen = candidates[0]
        for b in claimants:
            key = ("broken", device_type, f"{b.name}/{b.entry_point}/{b.distribution}")
            if key not in self._logged:
                self._logged.add(key)
                logger.warning(
                    "%s. %s ops use backend %r (%s %s). Repair: %s",
                    b.describe(),
                    device_type,
                    chosen.backend.name,
                    chosen.distribution,
                    chosen.version,
                    b.repair,
                )
        return chosen

    def choose(self, device_type: str, name: str | None) -> Installed:
        """The backend serving ``device_type`` when ``name`` (or nobody) asked."""
        if not name:
            return self._auto(device_type)
        chosen = self.get(name)
        ok, reason = self.probe(name)
        if not ok:
            hint = chosen.backend.install_hint
            raise BackendUnavailableError(
                f"backend {name!r} was requested but is unavailable: {reason}"
                + (f". Install or repair it with: {hint}" if hint else "")
            )
        return chosen if chosen.backend.serves(device_type) else self._auto(device_type)

    def _supplement(self, op: str, device_type: str, chosen: Installed) -> Installed:
        """The ``per_op`` backend that outranks ``chosen`` for ``op`` on ``device_type``, else ``chosen``."""
        better = [
            inst
            for name, inst in self.installed().items()
            if inst.backend.per_op
            and op in inst.backend.implementations
            and inst.backend.serves(device_type)
            and inst.backend.priority > chosen.backend.priority
            and self.probe(name)[0]
        ]
        if not better:
            return chosen
        better.sort(key=lambda inst: -inst.backend.priority)
        if len(better) > 1 and better[0].backend.priority == better[1].backend.priority:
            a, b = better[0], better[1]
            raise BackendConflictError(
                f"backends {a.backend.name!r} and {b.backend.name!r} both implement op {op!r} on device type "
                f"{device_type!r} at priority {a.backend.priority}; choose with LIGER_KERNEL_BACKEND_{op.upper()}"
            )
        return better[0]

    def select(self, op: str, device_type: str, context: str | None = None) -> Route:
        """Decide the route without importing the implementation."""
        self._check_settings()
        requested = self.requested(op, context)
        chosen = self.choose(device_type, requested)
        passed_over = None
        if chosen.backend.per_op and op not in chosen.backend.implementations:
            passed_over = f"backend {chosen.backend.name!r} has no {op!r} implementation"
            if settings.flag("LIGER_KERNEL_STRICT"):
                raise FallbackError(f"{passed_over} and LIGER_KERNEL_STRICT=1 forbids routing it elsewhere")
            chosen, requested = self._auto(device_type), None
        if not requested:
            chosen = self._supplement(op, device_type, chosen)
        spec = chosen.backend.implementations.get(op)
        if spec is not None:
            return Route(
                op,
                device_type,
                chosen.backend.name,
                chosen.distribution,
                chosen.version,
                spec,
                fallback_reason=passed_over,
                profile=chosen.backend.profile,
            )
        torch_backend = self.get(TORCH)
        reason = f"backend {chosen.backend.name!r} has no {op!r} implementation"
        if passed_over:
            reason = f"{passed_over}, nor has {chosen.backend.name!r}"
        if op not in torch_backend.backend.implementations:
            holders = [
                self._why_not(name, inst, device_type)
                for name, inst in sorted(self.installed().items())
                if op in inst.backend.implementations
            ]
            where = f"; backends that implement it: {', '.join(holders)}" if holders else ""
            raise NoRouteError(f"no backend implements op {op!r} on device type {device_type!r}{where}")
        if chosen.backend.name != TORCH and settings.flag("LIGER_KERNEL_STRICT"):
            raise FallbackError(f"{reason} and LIGER_KERNEL_STRICT=1 forbids falling back to 'torch'")
        return Route(
            op,
            device_type,
            TORCH,
            torch_backend.distribution,
            torch_backend.version,
            torch_backend.backend.implementations[op],
            fallback_reason=reason if chosen.backend.name != TORCH else None,
            profile=torch_backend.backend.profile,
        )

    def _why_not(self, name: str, inst: Installed, device_type: str) -> str:
        """Why backend ``name`` does not serve an op it implements on ``device_type``."""
        if not inst.backend.serves(device_type):
            return f"{name} (serves {', '.join(inst.backend.device_types)})"
        ok, reason = self.probe(name)
        return f"{name} (unavailable: {reason})" if not ok else f"{name} (not chosen)"

    def _resolve(self, op: str, device_type: str, context: str | None, label: str) -> Any:
        with self._lock:
            key = (op, device_type, context)
            if key in self._functions:
                return self._functions[key]
            route = self.select(op, device_type, context)
            backend = self.get(route.backend).backend
            step = "import " + route.implementation
            try:
                if backend.prepare is not None and (backend.name, backend.prepare) not in self._prepared:
                    step = f"prepare ({backend.prepare})"
                    load_attr(backend.prepare)()
                    self._prepared.add((backend.name, backend.prepare))
                    step = "import " + route.implementation
                function = load_attr(route.implementation)
            except Exception as exc:
                hint = backend.install_hint
                raise BackendLoadError(
                    f"backend {route.backend!r} ({route.distribution} {route.version}) failed to "
                    f"{step} for op {op!r}: {type(exc).__name__}: {exc}" + (f". Reinstall with: {hint}" if hint else "")
                ) from exc
            if route.profile is not None:
                function = _sized_by(function, route.profile)
            self._announce(route, label)
            self._functions[key] = function
            return function

    def setting_problems(self) -> list[str]:
        """The LIGER_KERNEL_* variables in the environment that do nothing."""
        return settings.problems(self.ops())

    def ops(self) -> list[str]:
        """Every op some installed backend implements: the torch backend's, then any others."""
        ops = list(self.get(TORCH).backend.implementations)
        for inst in self.installed().values():
            ops += [op for op in inst.backend.implementations if op not in ops]
        return ops

    def _check_settings(self) -> None:
        if self._settings_checked:
            return
        self._settings_checked = True
        for problem in self.setting_problems():
            logger.warning("%s", problem)

    def _announce(self, route: Route, label: str) -> None:
        key = (route.op, route.device_type, route.backend)
        if key in self._logged:
            return
        self._logged.add(key)
        if route.fallback_reason:
            logger.warning(
                "%s on %s falls back to the %r backend: %s",
                label,
                route.device_type,
                route.backend,
                route.fallback_reason,
            )
        if settings.flag("LIGER_KERNEL_LOG"):
            # Printed as well as logged: users turn this on to see it, whatever
            # their logging configuration.
            message = f"Using {route.device_type.upper()} {label} ({route.distribution} {route.version})"
            logger.info(message)
            print(f"[liger_kernel] {message}", flush=True)

    def function(self, op: str, device_type: str, label: str) -> Any:
        """The autograd Function serving ``op`` on ``device_type`` (hot path)."""
        device_type = self.device_alias.get(device_type, device_type)
        context = current_request()
        function = self._functions.get((op, device_type, context))
        if function is None:
            function = self._resolve(op, device_type, context, label)
        return function

    def mocked(self, device_type: str) -> bool:
        """Whether a kernel mock makes CPU tensors stand in for ``device_type``
        tensors while the Triton interpreter runs the kernels. Nothing is then
        compiled for a device, so a backend's check of its Triton build or
        device driver does not apply (its prepare step may skip it)."""
        return self.device_alias.get("cpu") == device_type and settings.flag("TRITON_INTERPRET")

    def profile(self, device: Any) -> DeviceProfile:
        """The device profile a Triton kernel running on ``device`` is sized by.

        Inside a routed call it is the profile of the route's backend (see
        :func:`_sized_by`). A kernel called directly, outside any route (a
        tool, a kernel test), gets the profile of the backend that routing
        would choose for ``device`` with no op named.
        """
        spec = _route_profile.get()
        device_type = self.device_alias.get(device.type, device.type)
        if spec is None:
            context = _context.get() or self.default_request
            inst = self.choose(device_type, self.requested(None, context))
            if inst.backend.profile is None:
                raise BackendError(
                    f"backend {inst.backend.name!r} serving {device_type!r} has no Triton device profile"
                )
            spec = inst.backend.profile
        key = (spec, device_type, device.type, device.index)
        found = self._profiles.get(key)
        if found is None:
            found = load_attr(spec)(device)
            self._profiles[key] = found
        return found

    def forget_routes(self) -> None:
        """Forget probes, routes and profiles, keeping the installed backends."""
        with self._lock:
            self._probes.clear()
            self._functions.clear()
            self._profiles.clear()
            self._logged.clear()
            self._settings_checked = False

    def reset(self) -> None:
        """Forget discovered backends, prepare steps, probes, routes and profiles."""
        with self._lock:
            self._installed = None
            self._prepared.clear()
            self.forget_routes()


_context: contextvars.ContextVar[str | None] = contextvars.ContextVar("liger_backend", default=None)
#: the profile factory of the route whose Function is running (see _sized_by)
_route_profile: contextvars.ContextVar[str | None] = contextvars.ContextVar("liger_route_profile", default=None)
dispatcher = Dispatcher()


@functools.cache
def _sized_by(function: Any, profile: str) -> Any:
    """``function`` (an autograd Function) whose forward and backward see
    ``profile`` as the device profile of every kernel they launch.

    The backward is wrapped as well as the forward because autograd may run
    it on another thread, after the call (and any :func:`use_backend` block)
    has returned: the route's choice must hold there too. The subclass keeps
    the Function's names, docstring and signatures; one is made per
    (Function, profile), so a route resolved twice returns the same class.
    """
    forward, backward = function.forward, function.backward

    @functools.wraps(forward)
    def sized_forward(*args: Any, **kwargs: Any) -> Any:
        token = _route_profile.set(profile)
        try:
            return forward(*args, **kwargs)
        finally:
            _route_profile.reset(token)

    @functools.wraps(backward)
    def sized_backward(*args: Any) -> Any:
        token = _route_profile.set(profile)
        try:
            return backward(*args)
        finally:
            _route_profile.reset(token)

    namespace = {
        "forward": staticmethod(sized_forward),
        "backward": staticmethod(sized_backward),
        "__module__": function.__module__,
        "__qualname__": function.__qualname__,
        "__doc__": function.__doc__,
    }
    return type(function.__name__, (function,), namespace)


def set_backend(name: str | None) -> None:
    """Route every op to backend ``name`` from now on (None: automatic)."""
    if name is not None:
        dispatcher.get(name)
    dispatcher.default_request = name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Route ops called inside the ``with`` block to backend ``name``."""
    dispatcher.get(name)
    token = _context.set(name)
    try:
        yield
    finally:
        _context.reset(token)


def reset() -> None:
    dispatcher.reset()


def current_request() -> str | None:
    """The backend requested from Python here: the innermost :func:`use_backend`, else :func:`set_backend`'s."""
    return _context.get() or dispatcher.default_request


def device_profile(device: Any) -> DeviceProfile:
    return dispatcher.profile(device)


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _core_version() -> str:
    try:
        return metadata.version("liger-kernel")
    except metadata.PackageNotFoundError:
        return "(not installed)"
