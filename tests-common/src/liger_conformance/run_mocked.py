"""Run an installed console command as if this machine had vendor hardware.

    python -m liger_conformance.run_mocked {cuda,rocm,npu,xpu} COMMAND [ARGS...]

sets ``TRITON_INTERPRET=1``, activates ``liger_conformance.mocks.<vendor>``
and runs the console-script entry point COMMAND of an installed distribution
(for example ``liger-kernel info --json``) in this process, so its output
shows how routing would look on that hardware.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
from importlib import metadata

from liger_conformance.mocks import VENDORS


def console_scripts() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group="console_scripts")}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m liger_conformance.run_mocked",
        description="Run the console command of an installed distribution in this process, with a "
        "CPU-only machine made to look like VENDOR hardware (tensors stay on the CPU, Triton kernels "
        "run under the interpreter).",
        epilog="example: python -m liger_conformance.run_mocked npu liger-kernel info --json",
    )
    p.add_argument("vendor", choices=VENDORS, help="hardware to mock")
    p.add_argument("command", metavar="COMMAND", help="a console script of an installed distribution")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="passed on to COMMAND")
    return p


def main(argv: list[str] | None = None) -> int:
    options = parser().parse_args(sys.argv[1:] if argv is None else argv)
    scripts = console_scripts()
    entry_point = scripts.get(options.command)
    if entry_point is None:
        close = difflib.get_close_matches(options.command, list(scripts), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        print(
            f"python -m liger_conformance.run_mocked: no installed distribution provides the command "
            f"{options.command!r}{hint} (installed liger commands: "
            f"{', '.join(sorted(n for n in scripts if 'liger' in n)) or 'none'})",
            file=sys.stderr,
        )
        return 2
    # before the mock or the command imports any kernel module
    os.environ["TRITON_INTERPRET"] = "1"
    mock = importlib.import_module(f"liger_conformance.mocks.{options.vendor}")
    command = entry_point.load()
    saved_argv = sys.argv
    sys.argv = [options.command, *options.args]
    try:
        with mock.active():
            try:
                result = command()
            except SystemExit as exc:
                result = exc.code
    finally:
        sys.argv = saved_argv
    if result is None:
        return 0
    if isinstance(result, int):
        return result
    print(result, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
