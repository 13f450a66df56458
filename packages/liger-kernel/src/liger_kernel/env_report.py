"""``python -m liger_kernel.env_report`` and ``liger_kernel.env_report``, as in
liger-kernel 0.8.x: the report lives in :mod:`liger_kernel.cli.env_report`."""

from liger_kernel.cli.env_report import collect, failures, format_report, main

__all__ = ["collect", "failures", "format_report", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
