"""Resolve `pip install` of this project for another machine, without installing it.

``pip install --dry-run --platform ...`` picks wheels by the target's tags but
evaluates environment markers (``platform_machine == "x86_64"``) on the host
running pip. torch's metadata is full of such markers (its CUDA wheels are
required only on x86_64 Linux), so from an x86_64 host pip asks an aarch64
resolution for x86_64-only packages and fails. This tool runs pip in-process
with the marker environment's machine set to the target's, which is what pip
on that machine would see; everything else is pip's own resolver.

It then prints what would be installed and, with ``--check-ascend-stack``,
checks the resolved triton-ascend / torch-npu / torch against the stacks
liger-ascend declares (``liger_kernel_ascend.safety.DOCUMENTED_STACKS``).

Example (the wheels built by tools/check_packaging.py in wheels/):

    python tools/resolve_install.py --machine aarch64 --find-links wheels \\
        --check-ascend-stack "liger-kernel[ascend]==0.9.0"

It needs the package index (it downloads the metadata of what it resolves).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: manylinux tags a wheel for each machine may carry, newest first
PLATFORM_TAGS = {
    "x86_64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64"),
    "aarch64": ("manylinux_2_28_aarch64", "manylinux2014_aarch64"),
}


@contextlib.contextmanager
def machine_seen_as(machine: str) -> Iterator[None]:
    """Make ``platform.machine()`` (what marker evaluation reads) answer ``machine``."""
    real = platform.machine
    platform.machine = lambda: machine  # type: ignore[assignment]
    try:
        yield
    finally:
        platform.machine = real  # type: ignore[assignment]


def pip_arguments(
    requirements: list[str], machine: str, python: str, find_links: list[str], extra_indexes: list[str], report: Path
) -> list[str]:
    target = tempfile.mkdtemp(prefix="resolve-target-")
    args = ["install", "--dry-run", "--ignore-installed", "--target", target, "--report", str(report)]
    args += ["--only-binary=:all:", "--implementation", "cp", "--python-version", python]
    args += ["--abi", "cp" + python.replace(".", "")]
    for tag in PLATFORM_TAGS[machine]:
        args += ["--platform", tag]
    for link in find_links:
        args += ["--find-links", link]
    for index in extra_indexes:
        args += ["--extra-index-url", index]
    return args + requirements


def resolve(
    requirements: list[str], machine: str, python: str, find_links: list[str], extra_indexes: list[str]
) -> dict[str, str]:
    """What pip on ``machine`` with CPython ``python`` would install: {name: version}."""
    from pip._internal.cli.main import main as pip_main

    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        with machine_seen_as(machine):
            status = pip_main(pip_arguments(requirements, machine, python, find_links, extra_indexes, report))
        if status != 0:
            raise SystemExit(f"resolve_install: pip could not resolve {requirements} for {machine} (exit {status})")
        installed = json.loads(report.read_text())["install"]
    return {canonical(item["metadata"]["name"]): item["metadata"]["version"] for item in installed}


def canonical(name: str) -> str:
    """A distribution name as the index compares it (``torch_npu`` is ``torch-npu``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def ascend_stack_problems(resolved: dict[str, str]) -> list[str]:
    """Problems of the resolved set against liger-ascend's declared stacks."""
    from liger_kernel_ascend.safety import DOCUMENTED_STACKS

    triton_ascend = resolved.get("triton-ascend")
    torch_npu = resolved.get("torch-npu")
    torch = resolved.get("torch")
    if "triton" in resolved:
        return [f"triton {resolved['triton']} would be installed beside triton-ascend"]
    if not (triton_ascend and torch_npu and torch):
        return [f"not a full stack: triton-ascend={triton_ascend}, torch-npu={torch_npu}, torch={torch}"]
    npu_release = torch_npu.split(".post")[0]
    torch_release = torch.split("+")[0]
    for stack_triton, stack_npu, stack_torch, _cann in DOCUMENTED_STACKS:
        if (triton_ascend, npu_release, torch_release) == (stack_triton, stack_npu, stack_torch):
            return []
    declared = "; ".join(f"triton-ascend {s[0]}, torch-npu {s[1]}, torch {s[2]}" for s in DOCUMENTED_STACKS)
    return [f"triton-ascend {triton_ascend}, torch-npu {torch_npu}, torch {torch} is not declared ({declared})"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("requirements", nargs="+", help='what to install, e.g. "liger-kernel[ascend]==0.9.0"')
    parser.add_argument("--machine", choices=sorted(PLATFORM_TAGS), required=True, help="the target's CPU")
    parser.add_argument("--python", default="3.11", help="the target's CPython version (default: 3.11)")
    parser.add_argument("--find-links", action="append", default=[], help="a folder of wheels (repeatable)")
    parser.add_argument(
        "--extra-index-url",
        action="append",
        default=[],
        help="another index (repeatable); torch-npu on x86_64 needs PyTorch's CPU index for its torch==X+cpu",
    )
    parser.add_argument(
        "--check-ascend-stack", action="store_true", help="fail unless it resolves to a stack liger-ascend declares"
    )
    options = parser.parse_args(argv)
    resolved = resolve(
        options.requirements, options.machine, options.python, options.find_links, options.extra_index_url
    )
    print(f"pip on {options.machine}, CPython {options.python}, would install {len(resolved)} distributions:")
    for name in sorted(resolved):
        print(f"  {name}=={resolved[name]}")
    if options.check_ascend_stack:
        problems = ascend_stack_problems(resolved)
        for problem in problems:
            print(f"  FAIL  {problem}")
        if problems:
            return 1
        print("  ok    a declared Ascend stack")
    return 0


if __name__ == "__main__":
    sys.exit(main())
