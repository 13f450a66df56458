"""Is the Triton in use Intel's?

PyTorch's XPU wheels depend on ``pytorch-triton-xpu``, Intel's build of
Triton, which installs the ``triton`` module with an ``intel`` backend whose
driver targets ``xpu``. ``pip install triton`` (NVIDIA's wheel, also pulled in
by any package that lists plain ``triton``) writes another build over the same
files; kernels then fail with "0 active drivers" or compile for a device that
is not there. Distribution names do not settle it (a source build of Intel's
Triton is named ``triton`` too), so the check asks the imported Triton what
it would use: the ``intel`` backend must be registered and the active driver's
target must be ``xpu``. It imports triton, so it runs as the backend's prepare
step, before the first kernel is imported, never in the probe.
"""

from __future__ import annotations

import re
from importlib import metadata

INTEL_TRITON = "pytorch-triton-xpu"
XPU_INDEX = "https://download.pytorch.org/whl/xpu"


class IntelTritonError(ImportError):
    """The ``triton`` module cannot run liger-xpu's kernels; the message says why and how to repair it."""


def torch_triton_pin() -> str:
    """The ``pytorch-triton-xpu`` requirement of the installed torch, e.g. ``"pytorch-triton-xpu==3.5.0"``."""
    for requirement in metadata.requires("torch") or ():
        match = re.match(rf"\s*{re.escape(INTEL_TRITON)}\s*(==\s*[^;\s]+)?", requirement)
        if match:
            return INTEL_TRITON + (match.group(1) or "").replace(" ", "")
    return f"{INTEL_TRITON}==<the version `pip show torch` lists>"


def repair_command() -> str:
    return (
        f"pip uninstall -y triton {INTEL_TRITON} && "
        f"pip install --force-reinstall --no-deps {torch_triton_pin()} --index-url {XPU_INDEX}"
    )


def _owners() -> str:
    owners = sorted(set(metadata.packages_distributions().get("triton", ())))
    return ", ".join(owners) if owners else "no installed distribution"


def intel_triton_problem() -> str | None:
    """None if the Triton in use is Intel's, else what is wrong and how to repair it."""
    try:
        import triton
        from triton.backends import backends
    except ImportError as exc:
        return f"the triton module cannot be imported ({exc}). Repair: {repair_command()}"
    found = f"triton {getattr(triton, '__version__', '?')} (from {_owners()})"
    if "intel" not in backends:
        return (
            f"{found} has no Intel backend (it has: {', '.join(sorted(backends)) or 'none'}), so it is not "
            f"{INTEL_TRITON}; plain `triton` was probably installed over it. Repair: {repair_command()}"
        )
    try:
        target = triton.runtime.driver.active.get_current_target()
    except Exception as exc:  # no active driver, or several: Triton says which
        return f"{found} has an Intel backend but no active driver for it ({exc}). Is an Intel GPU visible?"
    if target.backend != "xpu":
        return (
            f"{found} is active for target {target.backend!r}, not 'xpu' "
            "(is TRITON_DEFAULT_BACKEND set, or a second Triton backend active?)"
        )
    return None


def require_intel_triton() -> None:
    problem = intel_triton_problem()
    if problem:
        raise IntelTritonError(f"liger-xpu cannot load its kernels: {problem}")
