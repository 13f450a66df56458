"""What liger-xpu declares to the shared conformance suite.

Nothing is unsupported and nothing is expected to fail: every op passes under
the strict XPU mock. Add an entry only with the reason it cannot be fixed.
"""

from liger_kernel.backend import Conformance

CONFORMANCE = Conformance(unsupported_dtypes=frozenset(), expected_failures={})
