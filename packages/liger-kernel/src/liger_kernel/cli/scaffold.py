"""``liger-kernel new-backend``: generate the distribution of a new backend.

    liger-kernel new-backend NAME --device-type TYPE [--dest DIR] [--priority N]

writes ``DIR/liger-NAME`` (default ``packages/liger-NAME`` of the checkout the
command runs in) from the templates in ``scaffold_templates/``: a pyproject
with the ``liger_kernel.backends`` entry point, the backend description with
an empty op table (every op falls back to ``torch``), a torch-only probe, a
device profile, conformance declarations, a README and CPU-only tests. It also
appends a lane for the backend to the checkout's ``ci/lanes.toml`` (or to
``--lanes-file``). docs/new-backend.md is the guide that goes with it.
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from string import Template
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]

ENTRY_POINT_GROUP = "liger_kernel.backends"
#: names of this repository's backends and distributions, taken even when not installed
RESERVED_NAMES = frozenset({"torch", "cuda", "rocm", "ascend", "core", "kernel", "conformance", "workspace"})
#: device types no backend may claim: "*" is the torch backend's, meta tensors have no data
RESERVED_DEVICE_TYPES = frozenset({"meta", "*"})
_NAME = re.compile(r"^[a-z][a-z0-9]{1,31}$")
_DEVICE_TYPE = re.compile(r"^[a-z][a-z0-9_]*$")
TEMPLATES = "scaffold_templates"
#: template file -> path inside the generated distribution ({package} is filled in)
LAYOUT = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "src/__init__.py.tmpl": "src/{package}/__init__.py",
    "src/probe.py.tmpl": "src/{package}/probe.py",
    "src/profile.py.tmpl": "src/{package}/profile.py",
    "src/conformance.py.tmpl": "src/{package}/conformance.py",
    "src/ops/__init__.py.tmpl": "src/{package}/ops/__init__.py",
    "tests/test_backend.py.tmpl": "tests/test_backend.py",
}


class ScaffoldError(Exception):
    """A request the scaffold refuses, with what to do instead."""


@dataclass(frozen=True)
class Spec:
    name: str
    device_type: str
    priority: int
    triton: bool

    @property
    def distribution(self) -> str:
        return f"liger-{self.name}"

    @property
    def package(self) -> str:
        return f"liger_kernel_{self.name}"


def installed_backend_names() -> set[str]:
    """Entry-point names of the installed backends (nothing is imported)."""
    return {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def validate_name(name: str) -> None:
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise ScaffoldError(
            f"backend name {name!r} must be 2 to 32 lowercase letters and digits, starting with a letter "
            "(it becomes the distribution liger-NAME, the package liger_kernel_NAME and LIGER_KERNEL_BACKEND=NAME)"
        )
    if name in RESERVED_NAMES:
        raise ScaffoldError(f"backend name {name!r} is taken by liger-kernel itself; choose your vendor's name")
    if name in installed_backend_names():
        raise ScaffoldError(
            f"a backend named {name!r} is already installed (liger-kernel info shows which distribution); "
            "choose another name"
        )


def validate_device_type(device_type: str, custom: bool) -> None:
    if device_type in RESERVED_DEVICE_TYPES or not _DEVICE_TYPE.match(device_type):
        raise ScaffoldError(
            f"device type {device_type!r} must be a torch device type such as xpu, mps, hpu or cpu "
            "(what tensor.device.type says on your hardware)"
        )
    if custom:
        return
    import torch

    try:
        torch.device(device_type)
    except RuntimeError as exc:
        raise ScaffoldError(
            f"torch {torch.__version__} does not know the device type {device_type!r}. If your vendor's torch "
            "extension registers it at import (a renamed PrivateUse1 backend, e.g. 'npu'), pass "
            f"--custom-device-type; otherwise check the spelling. ({exc})"
        ) from None


def find_checkout(start: Path) -> Path | None:
    """The liger-kernel checkout containing ``start``, if any."""
    for folder in (start, *start.parents):
        if (folder / "ci" / "lanes.toml").is_file() and (folder / "packages" / "liger-kernel").is_dir():
            return folder
    return None


def core_version() -> str:
    try:
        return metadata.version("liger-kernel")
    except metadata.PackageNotFoundError:
        raise ScaffoldError("liger-kernel is not installed, so the version to pin is unknown") from None


def render(template: str, spec: Spec) -> str:
    profile = (
        f'portable=True,\n    profile="{spec.package}.profile:device_profile",'
        if spec.triton
        else f'profile=None,  # "{spec.package}.profile:device_profile" once ops use the portable Triton kernels'
    )
    values = {
        "name": spec.name,
        "device_type": spec.device_type,
        "priority": str(spec.priority),
        "distribution": spec.distribution,
        "package": spec.package,
        "core_version": core_version(),
        "profile_line": profile,
    }
    return Template(template).substitute(values)


def _template(relative: str) -> str:
    return resources.files("liger_kernel.cli").joinpath(TEMPLATES, relative).read_text(encoding="utf-8")


def generate(spec: Spec, dest: Path) -> Path:
    """Write the distribution into ``dest/liger-NAME``; refuse to overwrite."""
    target = dest / spec.distribution
    if target.exists():
        raise ScaffoldError(f"{target} already exists; the scaffold never overwrites (remove it or choose --dest)")
    files = {LAYOUT[t].format(package=spec.package): render(_template(t), spec) for t in LAYOUT}
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target


def require_free_lane(spec: Spec, lanes_file: Path) -> str:
    """The backend's lane name; raises when ``lanes_file`` cannot take it."""
    lane_name = f"backend-{spec.name}"
    if not lanes_file.is_file():
        raise ScaffoldError(f"lane file {lanes_file} does not exist")
    text = lanes_file.read_text(encoding="utf-8")
    parsed = _parse_toml(text, lanes_file)
    taken = (
        any(lane.get("name") == lane_name for lane in parsed.get("lane", []))
        if parsed is not None
        else f'name = "{lane_name}"' in text
    )
    if taken:
        raise ScaffoldError(f"{lanes_file} already has a lane named {lane_name!r}")
    return lane_name


def append_lane(spec: Spec, lanes_file: Path) -> str:
    """Append the backend's CPU lane to ``lanes_file``; returns the lane name."""
    lane_name = require_free_lane(spec, lanes_file)
    text = lanes_file.read_text(encoding="utf-8")
    combined = (text if text.endswith("\n") else text + "\n") + render(_template("lane.toml.tmpl"), spec)
    _parse_toml(combined, lanes_file)  # never leave a file ci/lanes.py cannot read
    lanes_file.write_text(combined, encoding="utf-8")
    return lane_name


def _parse_toml(text: str, path: Path) -> dict[str, Any] | None:
    """The parsed TOML, or None where no TOML reader is installed (Python 3.10 without tomli)."""
    if tomllib is None:
        return None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScaffoldError(f"{path} is not valid TOML ({exc}); nothing was appended") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="liger-kernel new-backend",
        description=(
            "Generate liger-NAME, the distribution of a new liger-kernel backend: a pyproject with the\n"
            "liger_kernel.backends entry point, the backend description with an empty op table (every op\n"
            "falls back to the torch backend until you add it), a torch-only probe, a device profile,\n"
            "conformance declarations, a README and CPU-only tests; and append its lane to ci/lanes.toml."
        ),
        epilog=(
            "example, from the root of a liger-kernel checkout:\n"
            "  liger-kernel new-backend acme --device-type xpu\n"
            "then follow the printed next steps, or docs/new-backend.md."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", metavar="NAME", help="backend name: lowercase letters and digits, e.g. 'gaudi'")
    p.add_argument(
        "--device-type",
        required=True,
        metavar="TYPE",
        help="torch device type the backend serves (tensor.device.type: xpu, mps, hpu, cpu, ...)",
    )
    p.add_argument(
        "--custom-device-type",
        action="store_true",
        help="accept a device type this torch does not know yet (one a vendor extension registers at import)",
    )
    p.add_argument(
        "--dest",
        type=Path,
        metavar="DIR",
        help="folder to create liger-NAME in (default: packages/ of the liger-kernel checkout around the "
        "current directory)",
    )
    p.add_argument(
        "--priority",
        type=int,
        default=100,
        metavar="N",
        help="among backends whose probe passes for TYPE the highest priority wins (default 100, as the "
        "vendor backends; the torch backend has 0)",
    )
    p.add_argument(
        "--triton",
        action="store_true",
        help="the backend will route ops to the portable Triton kernels: name its device profile in the description",
    )
    lanes = p.add_mutually_exclusive_group()
    lanes.add_argument(
        "--lanes-file",
        type=Path,
        metavar="FILE",
        help="lane file to append the backend's CI lane to (default: ci/lanes.toml of the checkout DIR lies in; "
        "none when DIR is outside a checkout)",
    )
    lanes.add_argument("--no-lane", action="store_true", help="do not add a CI lane")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        validate_name(args.name)
        validate_device_type(args.device_type, args.custom_device_type)
        if args.priority <= 0:
            raise ScaffoldError("--priority must be above 0, the torch backend's, or the backend is never chosen")
        checkout = find_checkout(Path.cwd().resolve())
        if args.dest is None:
            if checkout is None:
                raise ScaffoldError("not inside a liger-kernel checkout: run from its root, or pass --dest DIR")
            dest = checkout / "packages"
        else:
            dest = args.dest.resolve()
        lanes_file = args.lanes_file
        if lanes_file is None and not args.no_lane:
            around_dest = find_checkout(dest)
            lanes_file = around_dest / "ci" / "lanes.toml" if around_dest else None
        spec = Spec(args.name, args.device_type, args.priority, args.triton)
        if lanes_file is not None:
            require_free_lane(spec, lanes_file)  # before anything is written
        target = generate(spec, dest)
        lane = append_lane(spec, lanes_file) if lanes_file is not None else None
    except ScaffoldError as exc:
        print(f"liger-kernel new-backend: {exc}", file=sys.stderr)
        return 2
    print(_next_steps(spec, target, lane, lanes_file))
    return 0


def _next_steps(spec: Spec, target: Path, lane: str | None, lanes_file: Path | None) -> str:
    shown = _relative(target)
    lines = [f"Created {shown} (backend {spec.name!r} for device type {spec.device_type!r}).", ""]
    if lane:
        lines.append(f"Appended lane {lane!r} to {_relative(lanes_file)}.")
    else:
        lines.append("No CI lane added (pass --lanes-file to add one).")
    lines += [
        "",
        "Next steps:",
        f"  python -m pip install --no-deps --no-build-isolation -e {shown}",
        "  liger-kernel info                      # the backend, its probe, and every op's route",
        f"  python -m pytest -q {shown}/tests",
        f"  python -m pytest -q --pyargs liger_conformance --liger-backend {spec.name}",
    ]
    if lane:
        lines.append("  python ci/generate.py                  # regenerate the workflows with the new lane")
    lines.append(f"In a hatch workspace, also add {shown} to workspace.members in hatch.toml.")
    lines.append("Implement an op: see the README it wrote, or docs/new-backend.md.")
    return "\n".join(lines)


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
