"""``python -m liger_kernel.env_report`` and ``liger_kernel.env_report``, as in
liger-kernel 0.8.x: the report lives in :mod:`liger_kernel.cli.env_report`."""

from liger_kernel.cli.env_report import collect, failures, format_report, main


def print_env_report() -> None:
    """Print the environment report (``liger-kernel info``): distributions and
    versions, every backend probe with its reason, and each op's route."""
    print(format_report(collect()))


__all__ = ["collect", "failures", "format_report", "main", "print_env_report"]

if __name__ == "__main__":
    raise SystemExit(main())
