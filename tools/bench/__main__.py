"""``python -m tools.bench`` (from the repository root) or ``python tools/bench``."""

import sys
from pathlib import Path

if __package__:
    from .cli import main
else:
    # Run as a folder: make the package importable as ``bench``, the name the
    # peer worker subprocess uses too.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.cli import main

sys.exit(main())
