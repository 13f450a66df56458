"""Efficient kernels for LLM training, routed at run time to the installed
vendor backend (see :mod:`liger_kernel.dispatch`)."""

from importlib import metadata

from liger_kernel.dispatch import reset, set_backend, use_backend

try:
    __version__ = metadata.version("liger-kernel")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

__all__ = ["__version__", "reset", "set_backend", "use_backend"]
