"""Checks that the NPU kernels can run here: the backend's prepare step.

triton-ascend installs the same top-level ``triton`` package as NVIDIA's
``triton`` wheel; whichever was installed last owns the files, and an NVIDIA
``triton`` cannot compile for an NPU. torch_npu is built against exactly one
torch release. Both mistakes otherwise surface as obscure compiler or symbol
errors deep inside a training step, so :func:`check_environment`, which the
dispatcher runs once before it imports the first NPU kernel, checks them and
raises :class:`AscendEnvironmentError`. The backend's probe reports the same
problems as its reason for being unavailable; neither imports triton.

Mock bypass: the CPU conformance lane runs these kernels with the Triton
interpreter of NVIDIA's wheel under the strict NPU mock of
``liger_conformance.mocks.npu``. The triton-ascend identity check is skipped
only when the dispatcher says the NPU is mocked
(:meth:`liger_kernel.dispatch.Dispatcher.mocked`): CPU tensors are routed as
``npu`` tensors and ``TRITON_INTERPRET=1`` (nothing is compiled for a
device). Either alone changes nothing.
"""

from __future__ import annotations

import base64
import functools
import hashlib
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

#: Stacks this project declares: (triton-ascend, torch_npu, torch, CANN).
#: Every triton-ascend and torch_npu release named here is published on PyPI
#: (triton-ascend 3.2.0 is the only triton-ascend release there, with wheels
#: for CPython 3.9-3.11 on manylinux x86_64 and aarch64), and each pairing is
#: one the triton-ascend installation guide documents for CANN 8.5.
#: The kernels are compiled against triton-ascend 3.2.0 by the compile-ascend
#: CI lane; no stack here has yet been run on NPU hardware by this project.
DOCUMENTED_STACKS: tuple[tuple[str, str, str, str], ...] = (
    ("3.2.0", "2.7.1", "2.7.1", "8.5.0"),
    ("3.2.0", "2.6.0", "2.6.0", "8.5.0"),
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
    """True only under the NPU mock with the Triton interpreter."""
    from liger_kernel.dispatch import dispatcher

    return dispatcher.mocked("npu")


def canonical_name(name: str) -> str:
    """A distribution name as PyPI compares them (PEP 503): ``triton_ascend`` == ``Triton-Ascend``."""
    return re.sub(r"[-_.]+", "-", name).lower()


TRITON_ASCEND = canonical_name("triton-ascend")


@functools.lru_cache(maxsize=1)
def _triton_providers() -> tuple[str, ...]:
    """Canonical names of the distributions that declare the ``triton`` package."""
    return tuple(sorted({canonical_name(d) for d in metadata.packages_distributions().get("triton", ())}))


def _record_digest(path: Path, mode: str) -> str | None:
    try:
        digest = hashlib.new(mode, path.read_bytes()).digest()
    except (OSError, ValueError):
        return None
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def triton_owner(init_file: Path) -> str | None:
    """The distribution whose RECORD lists ``init_file`` (the ``triton/__init__.py``
    Python imports) with the content it has now, or None when none does.

    Two wheels can both list the file (the one installed last overwrote it);
    only the one whose recorded hash matches the bytes on disk wrote it.
    """
    target = init_file.resolve()
    for dist in metadata.distributions():
        for entry in dist.files or ():
            if entry.as_posix() != "triton/__init__.py":
                continue
            if Path(dist.locate_file(entry)).resolve() != target:
                continue
            if entry.hash is None or _record_digest(target, entry.hash.mode) == entry.hash.value:
                return canonical_name(dist.metadata["Name"])
    return None


def _triton_init_file() -> Path | None:
    spec = util.find_spec("triton")
    return Path(spec.origin) if spec and spec.origin else None


def triton_problem() -> str | None:
    """Why the ``triton`` Python would import is not triton-ascend, or None if it is.

    Reads distribution metadata and files; never imports triton.
    """
    if mock_active():
        return None
    providers = _triton_providers()
    init_file = _triton_init_file()
    if not providers or init_file is None:
        return "the triton module is not installed (pip install triton-ascend)"
    if TRITON_ASCEND not in providers:
        versions = ", ".join(f"{p} {_version(p)}" for p in providers)
        return (
            f"the installed triton module comes from {versions}, not triton-ascend; that build cannot "
            f"compile for an Ascend NPU. Repair with: {REPAIR_TRITON}"
        )
    owner = triton_owner(init_file)
    if owner != TRITON_ASCEND:
        who = f"by {owner} {_version(owner)}" if owner else "by a wheel whose RECORD does not match it"
        return (
            f"triton-ascend is installed but {init_file} was overwritten {who}, so Python imports another "
            f"triton. Repair with: {REPAIR_TRITON}"
        )
    return None


def active_backend_problem(backend_names: list[str], active_driver_file: str | None) -> str | None:
    """Why Triton would not compile for the NPU, from the backends it discovered
    and the source file of the driver it made active (None: not asked)."""
    if "ascend" not in backend_names:
        found = ", ".join(sorted(backend_names)) or "none"
        return f"triton discovered no ascend backend (backends: {found}). Repair with: {REPAIR_TRITON}"
    if active_driver_file is not None and Path(active_driver_file).parent.name != "ascend":
        return (
            f"triton selected the driver in {active_driver_file}, not triton-ascend's NPU driver; "
            "check that CANN's set_env.sh is sourced and that no other Triton backend is installed"
        )
    return None


def cann_version(environ: dict[str, str] | None = None) -> str | None:
    """The CANN toolkit release ``set_env.sh`` put on this shell, read from the
    toolkit's install record (``version=...`` in ``*_install.info``), or None."""
    env = os.environ if environ is None else environ
    for variable in ("ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH"):
        home = env.get(variable)
        if not home:
            continue
        root = Path(home)
        for info in [*root.glob("*_install.info"), *root.glob("*-linux/*_install.info")]:
            try:
                text = info.read_text(errors="replace")
            except OSError:
                continue
            match = re.search(r"^version=(\S+)", text, re.MULTILINE)
            if match:
                return match.group(1)
    return None


def stack_problems(triton_ascend: str | None, torch_npu: str | None, cann: str | None) -> list[str]:
    """How the installed triton-ascend / torch_npu / CANN differ from every
    declared stack, as sentences (empty: a declared stack, or nothing known)."""
    problems = []
    if triton_ascend is not None and all(triton_ascend != stack[0] for stack in DOCUMENTED_STACKS):
        declared = ", ".join(sorted({stack[0] for stack in DOCUMENTED_STACKS}))
        problems.append(f"triton-ascend {triton_ascend} is not a declared release ({declared})")
    if triton_ascend is not None and cann is not None:
        cann_for = {stack[3] for stack in DOCUMENTED_STACKS if stack[0] == triton_ascend}
        if cann_for and cann not in cann_for:
            problems.append(
                f"triton-ascend {triton_ascend} is declared with CANN {' / '.join(sorted(cann_for))}, not {cann}"
            )
    if torch_npu is not None and triton_ascend is not None:
        npu_for = {stack[1] for stack in DOCUMENTED_STACKS if stack[0] == triton_ascend}
        if npu_for and release(torch_npu) not in npu_for:
            problems.append(
                f"torch_npu {torch_npu} is not declared with triton-ascend {triton_ascend} "
                f"(declared: {' / '.join(sorted(npu_for))})"
            )
    return problems


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


def _active_backend() -> str | None:
    """Ask the imported Triton which backends it found and which driver it selected."""
    import inspect

    from triton.backends import backends
    from triton.runtime.driver import driver

    try:
        active_file = inspect.getfile(type(driver.active))
    except Exception as exc:  # the driver's own error names what is missing (CANN, the device)
        return f"triton-ascend's NPU driver failed to start: {exc}"
    return active_backend_problem(list(backends), active_file)


def check_environment() -> None:
    """Raise :class:`AscendEnvironmentError` if the NPU kernels cannot run here."""
    problem = triton_problem()
    if problem is None and not mock_active():
        problem = _active_backend()
    if problem:
        raise AscendEnvironmentError(f"liger-ascend cannot load its NPU kernels: {problem}")
    import torch

    npu_version = torch_npu_version()
    problems = version_problems(torch.__version__, npu_version)
    if problems:
        raise AscendEnvironmentError("liger-ascend cannot load its NPU kernels: " + "; ".join(problems))
    if npu_version and release(npu_version) not in TORCH_NPU_LINES:
        logger.info("liger-ascend: torch_npu %s is not in the compatibility table; untested", npu_version)
    if not mock_active():
        for mismatch in stack_problems(_version("triton-ascend"), npu_version, cann_version()):
            logger.warning("liger-ascend: %s; see liger_kernel_ascend.safety.DOCUMENTED_STACKS", mismatch)
