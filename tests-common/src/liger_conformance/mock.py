"""Former name of :mod:`liger_conformance.run_mocked`, kept so that
``python -m liger_conformance.mock VENDOR COMMAND`` keeps working."""

import sys

from liger_conformance.run_mocked import main

if __name__ == "__main__":
    sys.exit(main())
