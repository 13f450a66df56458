"""liger-kernel 0.8.5's older implementation registry (``ImplInfo``,
``register_impl``, ``select_impl``), made a front of this project's
dispatcher: see :mod:`liger_kernel.ops.backends.registry`."""

from liger_kernel.ops.backends.registry import (
    IMPL_REGISTRY,
    LIGER_KERNEL_IMPL_ENV,
    ImplInfo,
    register_impl,
    select_impl,
)

__all__ = ["IMPL_REGISTRY", "LIGER_KERNEL_IMPL_ENV", "ImplInfo", "register_impl", "select_impl"]
