"""Import-time checks that the NPU kernels can run here.

triton-ascend installs the same top-level ``triton`` package as NVIDIA's
``triton`` wheel; whichever was installed last owns the files, and an NVIDIA
``triton`` cannot compile for an NPU. torch_npu is built against exactly one
torch release. Both mistakes otherwise surface as obscure compiler or symbol
errors deep inside a training step, so the kernels check them once, when
:mod:`liger_kernel_ascend.ops` is first imported, and raise
:class:`AscendEnvironmentError`. The backend's probe reports the same
problems as its reason for being unavailable; neither imports triton.

Mock bypass: the CPU conformance lane runs these kernels with the Triton
interpreter of NVIDIA's wheel under the strict NPU mock of
``liger_conformance.mocks.npu``. The triton-ascend identity check is skipped
only when both hold: the imported ``torch_npu`` is the mock's stand-in (it
carries ``LIGER_MOCK = "npu"``) and ``TRITON_INTERPRET=1`` (nothing is
compiled for a device). Either alone changes nothing.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path

logger = logging.getLogger("liger_kernel")

#: triton-ascend release to repair an install with.
RECOMMENDED_TRITON_ASCEND = "3.2.0"

#: Stacks the triton-ascend installation guide pairs: (triton-ascend,
#: torch_npu, torch, CANN). Not yet run by this project on NPU hardware.
DOCUMENTED_STACKS: tuple[tuple[str, str, str, str], ...] = (
    ("3.2.0rc4", "2.7.1", "2.7.1", "8.3.RC1"),
    ("3.2.0", "2.7.1", "2.7.1", "8.5.0"),
    ("3.2.1", "2.7.1", "2.7.1", "9.0.0"),
)


@dataclass(frozen=True)
class TorchNpuLine:
    """A torch_npu release line: the torch release it is built against and the
    CANN releases Ascend publishes it for (its ".postN" builds included)."""

    torch: str
    cann: tuple[str, ...]


#: torch_npu release line ("2.7.1" for "2.7.1.post2") -> what it pairs with.
TORCH_NPU_LINES: dict[str, TorchNpuLine] = {
    "2.5.1": TorchNpuLine("2.5.1", ("8.1.RC1", "8.2.RC1")),
    "2.6.0": TorchNpuLine("2.6.0", ("8.2.RC1", "8.3.RC1", "8.5.0")),
    "2.7.1": TorchNpuLine("2.7.1", ("8.3.RC1", "8.5.0", "9.0.0", "9.1.0")),
    "2.8.0": TorchNpuLine("2.8.0", ("8.3.RC1", "8.5.0", "9.0.0")),
    "2.9.0": TorchNpuLine("2.9.0", ("8.5.0", "9.0.0", "9.1.0")),
    "2.10.0": TorchNpuLine("2.10.0", ("9.0.0", "9.1.0")),
    "2.11.0": TorchNpuLine("2.11.0", ("9.1.0",)),
    "2.12.0": TorchNpuLine("2.12.0", ("9.1.0",)),
}

REPAIR_TRITON = (
    f"pip uninstall -y triton triton-ascend && pip install --force-reinstall triton-ascend=={RECOMMENDED_TRITON_ASCEND}"
)


class AscendEnvironmentError(ImportError):
    """The Python environment cannot run the NPU kernels; the message says why and how to repair it."""


def release(version: str) -> str:
    """``"2.7.1.post2"`` / ``"2.7.1+cpu"`` -> ``"2.7.1"``."""
    match = re.match(r"\d+(\.\d+)*", version)
    return match.group(0) if match else version


def mock_active() -> bool:
    """True only under the strict NPU mock with the Triton interpreter."""
    stand_in = sys.modules.get("torch_npu")
    interpreting = os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "yes", "on")
    return getattr(stand_in, "LIGER_MOCK", None) == "npu" and interpreting


@functools.lru_cache(maxsize=1)
def _triton_providers() -> tuple[str, ...]:
    return tuple(sorted(set(metadata.packages_distributions().get("triton", ()))))


def triton_problem() -> str | None:
    """Why the installed ``triton`` is not triton-ascend, or None if it is.

    Reads distribution metadata and the package directory; never imports triton.
    """
    if mock_active():
        return None
    providers = _triton_providers()
    if not providers:
        return "the triton module is not installed (pip install triton-ascend)"
    if "triton-ascend" not in [p.lower() for p in providers]:
        versions = ", ".join(f"{p} {_version(p)}" for p in providers)
        return (
            f"the installed triton module comes from {versions}, not triton-ascend; that build cannot "
            f"compile for an Ascend NPU. Repair with: {REPAIR_TRITON}"
        )
    spec = util.find_spec("triton")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if locations and not any((Path(loc) / "backends" / "ascend").is_dir() for loc in locations):
        return (
            "triton-ascend is installed but its files were overwritten by another triton wheel "
            f"(no triton/backends/ascend in {locations[0]}). Repair with: {REPAIR_TRITON}"
        )
    return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def torch_npu_version() -> str | None:
    """Installed torch_npu version, or the imported stand-in's ``__version__``."""
    return _version("torch-npu") or getattr(sys.modules.get("torch_npu"), "__version__", None)


def version_problems(torch_version: str, npu_version: str | None) -> list[str]:
    """Mismatches between torch and torch_npu, as sentences (empty: fine)."""
    if npu_version is None:
        return ["torch_npu is not installed; install the torch_npu release built for torch " + torch_version]
    npu_line, torch_line = release(npu_version), release(torch_version)
    known = TORCH_NPU_LINES.get(npu_line)
    # lines outside the table follow the same naming rule: torch_npu X.Y.Z[.postN] is built for torch X.Y.Z
    expected = known.torch if known else npu_line
    if expected != torch_line:
        cann = f" (with CANN {' / '.join(known.cann)})" if known else ""
        return [
            f"torch_npu {npu_version} is built for torch {expected}, but torch {torch_version} is installed; "
            f"install matching versions, e.g. pip install torch=={expected} torch-npu=={npu_version}{cann}"
        ]
    return []


def check_environment() -> None:
    """Raise :class:`AscendEnvironmentError` if the NPU kernels cannot run here."""
    problem = triton_problem()
    if problem:
        raise AscendEnvironmentError(f"liger-ascend cannot load its NPU kernels: {problem}")
    import torch

    npu_version = torch_npu_version()
    problems = version_problems(torch.__version__, npu_version)
    if problems:
        raise AscendEnvironmentError("liger-ascend cannot load its NPU kernels: " + "; ".join(problems))
    if npu_version and release(npu_version) not in TORCH_NPU_LINES:
        logger.info("liger-ascend: torch_npu %s is not in the compatibility table; untested", npu_version)
