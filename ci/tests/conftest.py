"""The ci/ scripts are plain files, not a package: make them importable for the tests."""

import sys
from pathlib import Path

CI = Path(__file__).resolve().parent.parent
if str(CI) not in sys.path:
    sys.path.insert(0, str(CI))
