"""Routing each op call to a backend.

Backends are discovered from the ``liger_kernel.backends`` entry-point group on
first use. For an op called on a tensor of device type ``D``, the backend is,
first match wins:

1. ``LIGER_KERNEL_BACKEND_<OP>`` (e.g. ``LIGER_KERNEL_BACKEND_RMS_NORM``),
2. ``LIGER_KERNEL_BACKEND`` (alias ``LIGER_KERNEL_IMPL``),
3. the innermost :func:`use_backend` context, else :func:`set_backend`,
4. the installed backends serving ``D`` whose probe passes, highest priority,
5. the ``torch`` backend.

An explicitly requested backend must exist and pass its probe, or the call
raises; if it does not serve ``D`` (a CPU tensor in a CUDA process), ``D`` is
routed automatically. An op the chosen backend lacks falls back to ``torch``,
logged once, or raises under ``LIGER_KERNEL_STRICT=1``.

The result is cached per (op, device type, requested backend), so the cost of a
call after the first is two dict lookups. Environment variables are read when
a route is first resolved; :func:`reset` forgets everything.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from liger_kernel.backend import API_VERSION, Backend, DeviceProfile, load_attr

GROUP = "liger_kernel.backends"
TORCH = "torch"

logger = logging.getLogger("liger_kernel")


class BackendError(RuntimeError):
    """Base of every routing error."""


class UnknownBackendError(BackendError):
    pass


class BackendUnavailableError(BackendError):
    pass


class BackendLoadError(BackendError):
    pass


class BackendConflictError(BackendError):
    pass


class FallbackError(BackendError):
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


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class Dispatcher:
    """Discovery, probing and the route cache. One instance per process."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._installed: dict[str, Installed] | None = None
        self._registered: dict[str, Installed] = {}
        self._probes: dict[str, tuple[bool, str]] = {}
        self._functions: dict[tuple[str, str, str | None], Any] = {}
        self._profiles: dict[tuple[str, str, int | None], DeviceProfile] = {}
        self._logged: set[tuple[str, str, str]] = set()
        #: device types the mocks make tensors on one device type look like another
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

    def _discover(self) -> dict[str, Installed]:
        found: dict[str, Installed] = {}
        for ep in metadata.entry_points(group=GROUP):
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            try:
                backend = ep.load()
            except Exception as exc:
                raise BackendLoadError(
                    f"backend entry point {ep.name!r} of {dist} {version} failed to load: "
                    f"{type(exc).__name__}: {exc}. Repair or uninstall it (pip uninstall {dist})."
                ) from exc
            if not isinstance(backend, Backend):
                raise BackendLoadError(
                    f"entry point {ep.name!r} of {dist} yields {type(backend).__name__}, "
                    "not a liger_kernel.backend.Backend"
                )
            if backend.api_version != API_VERSION:
                raise BackendLoadError(
                    f"backend {backend.name!r} ({dist} {version}) implements core API version "
                    f"{backend.api_version}, but liger-core {_core_version()} provides API version "
                    f"{API_VERSION}; install matching versions (pip install -U liger-kernel[{backend.name}])"
                )
            if backend.name in found:
                other = found[backend.name].distribution
                raise BackendConflictError(f"two distributions register backend {backend.name!r}: {other} and {dist}")
            found[backend.name] = Installed(backend, dist, version)
        if TORCH not in found:
            raise BackendLoadError(
                "the built-in 'torch' backend is not registered: liger-core is not installed "
                "(run pip install liger-core, or pip install -e packages/liger-core in a checkout)"
            )
        return found

    def get(self, name: str) -> Installed:
        installed = self.installed()
        if name not in installed:
            names = ", ".join(sorted(installed))
            raise UnknownBackendError(f"unknown backend {name!r}; installed backends: {names}")
        return installed[name]

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
        per_op = os.environ.get(f"LIGER_KERNEL_BACKEND_{op.upper()}") if op else None
        return (
            per_op or os.environ.get("LIGER_KERNEL_BACKEND") or os.environ.get("LIGER_KERNEL_IMPL") or context or None
        )

    def _auto(self, device_type: str) -> Installed:
        candidates = [
            inst
            for name, inst in self.installed().items()
            if name != TORCH and inst.backend.serves(device_type) and self.probe(name)[0]
        ]
        if not candidates:
            return self.get(TORCH)
        candidates.sort(key=lambda inst: -inst.backend.priority)
        if len(candidates) > 1 and candidates[0].backend.priority == candidates[1].backend.priority:
            a, b = candidates[0], candidates[1]
            raise BackendConflictError(
                f"backends {a.backend.name!r} ({a.distribution}) and {b.backend.name!r} "
                f"({b.distribution}) both claim device type {device_type!r} at priority "
                f"{a.backend.priority}; uninstall one or choose with LIGER_KERNEL_BACKEND"
            )
        return candidates[0]

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

    def select(self, op: str, device_type: str, context: str | None = None) -> Route:
        """Decide the route without importing the implementation."""
        chosen = self.choose(device_type, self.requested(op, context))
        spec = chosen.backend.ops.get(op)
        if spec is not None:
            return Route(op, device_type, chosen.backend.name, chosen.distribution, chosen.version, spec)
        torch_backend = self.get(TORCH)
        reason = f"backend {chosen.backend.name!r} has no {op!r} implementation"
        if op not in torch_backend.backend.ops:
            raise BackendError(f"no backend implements op {op!r}")
        if chosen.backend.name != TORCH and _env_flag("LIGER_KERNEL_STRICT"):
            raise FallbackError(f"{reason} and LIGER_KERNEL_STRICT=1 forbids falling back to 'torch'")
        return Route(
            op,
            device_type,
            TORCH,
            torch_backend.distribution,
            torch_backend.version,
            torch_backend.backend.ops[op],
            fallback_reason=reason if chosen.backend.name != TORCH else None,
        )

    def _resolve(self, op: str, device_type: str, context: str | None, label: str) -> Any:
        with self._lock:
            key = (op, device_type, context)
            if key in self._functions:
                return self._functions[key]
            route = self.select(op, device_type, context)
            try:
                function = load_attr(route.implementation)
            except Exception as exc:
                hint = self.get(route.backend).backend.install_hint
                raise BackendLoadError(
                    f"backend {route.backend!r} ({route.distribution} {route.version}) failed to "
                    f"import {route.implementation} for op {op!r}: {type(exc).__name__}: {exc}"
                    + (f". Reinstall with: {hint}" if hint else "")
                ) from exc
            self._announce(route, label)
            self._functions[key] = function
            return function

    def _announce(self, route: Route, label: str) -> None:
        key = (route.op, route.device_type, route.backend)
        if key in self._logged:
            return
        self._logged.add(key)
        if route.fallback_reason:
            logger.warning(
                "%s on %s falls back to the 'torch' backend: %s",
                label,
                route.device_type,
                route.fallback_reason,
            )
        if _env_flag("LIGER_KERNEL_LOG"):
            # Printed as well as logged: users turn this on to see it, whatever
            # their logging configuration.
            message = f"Using {route.device_type.upper()} {label} ({route.distribution} {route.version})"
            logger.info(message)
            print(f"[liger_kernel] {message}", flush=True)

    def function(self, op: str, device_type: str, label: str) -> Any:
        """The autograd Function serving ``op`` on ``device_type`` (hot path)."""
        device_type = self.device_alias.get(device_type, device_type)
        context = _context.get() or self.default_request
        function = self._functions.get((op, device_type, context))
        if function is None:
            function = self._resolve(op, device_type, context, label)
        return function

    def profile(self, device: Any) -> DeviceProfile:
        """The device profile of the Triton backend serving ``device``."""
        device_type = self.device_alias.get(device.type, device.type)
        key = (device_type, device.type, device.index)
        found = self._profiles.get(key)
        if found is None:
            context = _context.get() or self.default_request
            inst = self.choose(device_type, self.requested(None, context))
            if inst.backend.profile is None:
                raise BackendError(
                    f"backend {inst.backend.name!r} serving {device_type!r} has no Triton device profile"
                )
            found = load_attr(inst.backend.profile)(device)
            self._profiles[key] = found
        return found

    def forget_routes(self) -> None:
        """Forget probes, routes and profiles, keeping the installed backends."""
        with self._lock:
            self._probes.clear()
            self._functions.clear()
            self._profiles.clear()
            self._logged.clear()

    def reset(self) -> None:
        """Forget discovered backends, probes, routes and profiles."""
        with self._lock:
            self._installed = None
            self.forget_routes()


_context: contextvars.ContextVar[str | None] = contextvars.ContextVar("liger_backend", default=None)
dispatcher = Dispatcher()


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


def device_profile(device: Any) -> DeviceProfile:
    return dispatcher.profile(device)


def _core_version() -> str:
    try:
        return metadata.version("liger-core")
    except metadata.PackageNotFoundError:
        return "(not installed)"
