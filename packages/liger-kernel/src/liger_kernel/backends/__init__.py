"""liger-kernel 0.8.5's implementation registry, on this project's dispatcher;
and, in :mod:`liger_kernel.backends.torch`, the pure-PyTorch backend.

0.8.5 names implementations ``<vendor>-<dsl>``; here each is a backend of
:mod:`liger_kernel.dispatch`, requested by that name (an alias):
``nvidia-triton`` (or ``triton``) is ``cuda``, ``ascend-triton`` is ``ascend``,
``rocm-triton`` (or ``amd-triton``) is ``rocm``, ``intel-triton`` is ``xpu``,
``pytorch`` is ``torch``. An implementation added with :func:`register_impl`
becomes a backend of its own that takes the ops it implements wherever its
:class:`Capability` holds and its ``preference_rank`` outranks the backend of
the device. How 0.8.5's rules map onto this project's (the ``torch`` fallback,
``LIGER_KERNEL_STRICT``, environment over ``impl=``) is in
:mod:`liger_kernel.backends.dispatch`; registration in
:mod:`liger_kernel.backends.registry`.

The former names (``register_op``, ``set_backend``, ``get_backend``,
``available_backends``, ``all_backends``, ``resolve_backend``,
``BackendNotAvailableError``, ``NoBackendAvailableError``,
``LigerBackendFallbackWarning``) are the same objects as the new ones.
"""

from liger_kernel.backends.capability import Capability
from liger_kernel.backends.dispatch import (
    BackendNotAvailableError,
    ImplNotAvailableError,
    LigerBackendFallbackWarning,
    LigerImplFallbackWarning,
    NoBackendAvailableError,
    NoImplAvailableError,
    all_backends,
    all_impls,
    available_backends,
    available_impls,
    clear_available_cache,
    dispatch,
    get_backend,
    get_impl,
    resolve_backend,
    resolve_impl,
    set_backend,
    set_impl,
)
from liger_kernel.backends.registry import OpImpl, register_impl, register_op

__all__ = [
    "BackendNotAvailableError",
    "Capability",
    "ImplNotAvailableError",
    "LigerBackendFallbackWarning",
    "LigerImplFallbackWarning",
    "NoBackendAvailableError",
    "NoImplAvailableError",
    "OpImpl",
    "all_backends",
    "all_impls",
    "available_backends",
    "available_impls",
    "clear_available_cache",
    "dispatch",
    "get_backend",
    "get_impl",
    "register_impl",
    "register_op",
    "resolve_backend",
    "resolve_impl",
    "set_backend",
    "set_impl",
]
