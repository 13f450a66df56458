"""The ``liger-kernel`` command."""

from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> (module with main(argv), one-line help)
COMMANDS = {
    "info": ("liger_kernel.env_report", "installed distributions, backend probes and op routes"),
    "selftest": ("liger_kernel.selftest", "run every op forward and backward on this machine and show its route"),
    "demo": ("liger_kernel.demo", "train a small Llama twice, stock and patched, and compare loss, speed and memory"),
    "new-backend": ("liger_kernel.scaffold", "generate the distribution of a new backend (liger-NAME) and its CI lane"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="liger-kernel",
        description="Efficient kernels for LLM training, routed to the installed vendor backend.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        parser.error(f"unknown command {command!r}; choose from {', '.join(COMMANDS)}")
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
