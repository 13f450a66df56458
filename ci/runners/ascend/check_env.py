"""Check a Python environment for the Ascend lanes: torch-npu present, `triton` is triton-ascend.

    python ci/runners/ascend/check_env.py            packages only (any machine)
    python ci/runners/ascend/check_env.py --device   also run a small op on every visible NPU

Run by the Ascend lanes after their install step, and by setup.sh and health.sh on the
runner. triton-ascend installs the same `triton` module as NVIDIA's `triton` wheel; if
both are installed, whichever was installed last owns the files and the other is broken,
so the distribution named `triton` must be absent, and `import triton` must load files
that triton-ascend installed.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import importlib.util
import sys
from pathlib import Path


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def problems(check_device: bool) -> list[str]:
    found = []
    if not _installed("triton-ascend"):
        found.append("triton-ascend is not installed")
    else:
        spec = importlib.util.find_spec("triton")
        files = metadata.distribution("triton-ascend").files or []
        owned = {str(Path(str(file)).parts[0]) for file in files}
        locations = list(spec.submodule_search_locations or []) if spec else []
        if spec is None or spec.origin is None:
            found.append("`import triton` finds nothing although triton-ascend is installed")
        elif "triton" not in owned:
            found.append(f"`triton` loads from {spec.origin}, which triton-ascend did not install")
        elif not any((Path(loc) / "backends" / "ascend").is_dir() for loc in locations):
            # Newer triton-ascend releases declare the community `triton` as a
            # dependency; that is fine as long as the Ascend backend is in place.
            version = _installed("triton")
            found.append(
                "the `triton` module has no backends/ascend: "
                + (f"the `triton` distribution {version} overwrote triton-ascend's files. " if version else "")
                + "Remove both and reinstall triton-ascend (ci/runners/ascend/README.md)."
            )
    for name in ("torch", "torch-npu", "pytest"):
        if not _installed(name):
            found.append(f"{name} is not installed")
    if found or not check_device:
        return found

    import torch
    import torch_npu  # noqa: F401  (registers the npu device with torch)

    count = torch.npu.device_count()
    if count < 1:
        return ["torch_npu sees no NPU (driver, CANN environment, or ASCEND_RT_VISIBLE_DEVICES)"]
    for index in range(count):
        x = torch.arange(1024, dtype=torch.float32, device=f"npu:{index}")
        if float((x * 2).sum().cpu()) != 2 * 1023 * 1024 / 2:
            found.append(f"npu:{index} computed a wrong sum")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", action="store_true", help="also run a small op on every visible NPU")
    args = parser.parse_args()
    found = problems(args.device)
    versions = ", ".join(f"{name} {_installed(name)}" for name in ("torch", "torch-npu", "triton-ascend", "pytest"))
    print(f"python {sys.version.split()[0]}: {versions}")
    for problem in found:
        print(f"PROBLEM: {problem}")
    print("environment ok" if not found else f"{len(found)} problem(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
