"""``python -m liger_kernel.cli``: the ``liger-kernel`` command."""

from liger_kernel.cli import main

raise SystemExit(main())
