"""Efficient kernels for LLM training, routed at run time to the installed
vendor backend (see :mod:`liger_kernel.dispatch`).

The names of liger-kernel 0.8.5's top level are here too: ``set_impl`` /
``get_impl`` / ``available_impls`` (and their former names ``set_backend``,
``get_backend``, ``available_backends``), from :mod:`liger_kernel.backends`;
``set_backend`` is :func:`liger_kernel.dispatch.set_backend`, which
``set_impl`` calls. The functional API is :mod:`liger_kernel.functional`.
Importing the package imports torch, never a Triton kernel.
"""

from importlib import metadata

from liger_kernel.backends import available_backends, available_impls, get_backend, get_impl, set_impl
from liger_kernel.dispatch import reset, set_backend, use_backend

try:
    __version__ = metadata.version("liger-kernel")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "available_backends",
    "available_impls",
    "get_backend",
    "get_impl",
    "reset",
    "set_backend",
    "set_impl",
    "use_backend",
]
