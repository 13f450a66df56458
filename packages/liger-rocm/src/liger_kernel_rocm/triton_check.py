"""Can the installed `triton` compile for an AMD GPU, and is it the one ROCm's torch wants?

What matters is Triton's AMD backend (``triton/backends/amd``), not the name of
the distribution that installed it: PyTorch's ROCm 6 wheels bring it as
``pytorch-triton-rocm``, AMD's ROCm 7 wheels as ``triton``, and every ``triton``
wheel on PyPI since 3.0 ships the AMD backend too. A Triton without that
backend (an old or CUDA-only build) cannot compile for the GPU at all.

The other way it goes wrong: a package that lists plain ``triton`` (liger-cuda,
for one) makes pip install the index's ``triton`` over ROCm's. Both
distributions then own the ``triton/`` files, the last one installed having
overwritten the other's, and the version differs from the one torch was built
with. Both show in the distribution metadata.

Everything here reads distribution metadata and the file tree only, without
importing triton, so the probe stays cheap; the active target (``hip``) is
checked once triton is imported for the kernels (:func:`require_rocm_triton`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import PurePosixPath

#: the distributions that install ROCm's Triton: PyTorch's ROCm 6 index
#: (``pytorch-triton-rocm``), AMD's ROCm 7 wheels and PyPI (``triton``)
TRITON_DISTRIBUTIONS = ("pytorch-triton-rocm", "triton")
AMD_BACKEND = PurePosixPath("triton", "backends", "amd")
_PIN = re.compile(r"^\s*(pytorch-triton-rocm|triton)\s*==\s*([^\s;,]+)", re.IGNORECASE)


@dataclass(frozen=True)
class TritonLayout:
    """What the installed distributions say about the ``triton`` module.

    owners: ``(distribution, version)`` of each distribution whose files
        include ``triton/``.
    amd_backend: whether one of them installed ``triton/backends/amd`` and its
        files are on disk.
    torch_pin: ``(distribution, version)`` of the Triton torch requires
        (``Requires-Dist: triton==3.5.0``), or None when torch pins none.
    """

    owners: tuple[tuple[str, str], ...]
    amd_backend: bool
    torch_pin: tuple[str, str] | None


def _name(dist: metadata.Distribution) -> str:
    return (dist.metadata["Name"] or "").lower().replace("_", "-")


def _owns_triton(dist: metadata.Distribution) -> bool:
    return any(PurePosixPath(str(f)).parts[:1] == ("triton",) for f in dist.files or ())


def _has_amd_backend(dist: metadata.Distribution) -> bool:
    for f in dist.files or ():
        path = PurePosixPath(str(f))
        if path.parts[: len(AMD_BACKEND.parts)] == AMD_BACKEND.parts and path.suffix == ".py":
            if dist.locate_file(f).exists():
                return True
    return False


def _torch_pin(dists: Iterable[metadata.Distribution]) -> tuple[str, str] | None:
    for dist in dists:
        if _name(dist) != "torch":
            continue
        for requirement in dist.requires or ():
            found = _PIN.match(requirement)
            if found:
                return found.group(1).lower(), found.group(2)
    return None


def installed_layout(path: list[str] | None = None) -> TritonLayout:
    """The layout of the distributions on ``path`` (default ``sys.path``)."""
    dists = list(metadata.distributions(**({"path": path} if path is not None else {})))
    seen: dict[str, metadata.Distribution] = {}
    for dist in dists:  # the first of a name on the path is the one imported
        seen.setdefault(_name(dist), dist)
    owners = [dist for dist in seen.values() if _owns_triton(dist)]
    return TritonLayout(
        owners=tuple(sorted((_name(d), d.version) for d in owners)),
        amd_backend=any(_has_amd_backend(d) for d in owners),
        torch_pin=_torch_pin(seen.values()),
    )


def repair(layout: TritonLayout) -> str:
    """The commands that put back the Triton torch was built with."""
    remove = " ".join(sorted({name for name, _ in layout.owners} | set(TRITON_DISTRIBUTIONS)))
    wanted = (
        "{}=={}".format(*layout.torch_pin) if layout.torch_pin else "pytorch-triton-rocm==<the version torch requires>"
    )
    return (
        f"pip uninstall -y {remove} && pip install --no-deps {wanted} "
        "--index-url <the ROCm index torch came from, e.g. https://download.pytorch.org/whl/rocm7.0>"
        " (`pip show torch` lists the Triton it requires)"
    )


def layout_problem(layout: TritonLayout) -> str | None:
    """None if ``layout`` is a Triton that compiles for AMD GPUs and matches torch, else why not."""
    names = ", ".join(f"{name} {version}" for name, version in layout.owners)
    if not layout.owners:
        return f"no triton module is installed (ROCm builds of torch bring one). Repair: {repair(layout)}"
    if len(layout.owners) > 1:
        return (
            f"two distributions own the triton module ({names}): the one installed last wrote over the other's "
            "files. A package that lists plain `triton` (liger-cuda is one) makes pip install the package "
            f"index's triton over ROCm's. Repair: {repair(layout)}"
        )
    if not layout.amd_backend:
        return (
            f"the installed Triton ({names}) has no AMD backend (triton/backends/amd): it is a CUDA-only build "
            f"and cannot compile for an AMD GPU. Repair: {repair(layout)}"
        )
    if layout.torch_pin and layout.torch_pin != layout.owners[0]:
        return (
            f"torch requires {layout.torch_pin[0]}=={layout.torch_pin[1]} but {names} is installed: the package "
            "index's triton was installed over ROCm's (a package that lists plain `triton`, such as liger-cuda, "
            f"pulls it in). Repair: {repair(layout)}"
        )
    return None


def triton_problem() -> str | None:
    """None if the installed triton suits ROCm, else what is wrong and how to fix it."""
    from liger_kernel.dispatch import dispatcher

    if dispatcher.mocked("cuda"):
        # CPU tensors stand in for GPU ones and any triton's interpreter runs
        # the kernels: the build does not matter
        return None
    return layout_problem(installed_layout())


def target_problem(backend: str) -> str | None:
    """None if Triton's active target ``backend`` is AMD's (``hip``), else why it matters."""
    if backend == "hip":
        return None
    return (
        f"Triton's active target is {backend!r}, not 'hip': its AMD driver did not load (is the ROCm "
        "runtime visible, HIP_VISIBLE_DEVICES set right?), so kernels would be built for another vendor"
    )


def require_rocm_triton() -> None:
    """Raise ImportError unless the installed triton compiles for this AMD GPU."""
    problem = triton_problem()
    if problem:
        raise ImportError(f"liger-rocm: {problem}")
    from liger_kernel.dispatch import dispatcher

    if dispatcher.mocked("cuda"):
        return
    from triton.runtime import driver

    try:
        backend = driver.active.get_current_target().backend
    except RuntimeError as exc:  # no driver of any vendor found a device
        backend = f"none ({exc})"
    problem = target_problem(backend)
    if problem:
        raise ImportError(f"liger-rocm: {problem}")
