"""What this backend declares to the shared conformance suite.

``pytest --pyargs liger_conformance --liger-backend xpu`` reads it:

- ``unsupported_dtypes``: dtype names (``"float16"``) no op of this backend
  accepts; those cases are skipped with that reason;
- ``expected_failures``: ``{test-id substring: reason}``; each matching case
  runs as a strict xfail, so it must fail, and the run fails once it passes.
  Take the substring from the test id pytest prints, e.g.::

      expected_failures={
          "test_gates.py::test_forward_backward[bfloat16-swiglu": "bf16 sigmoid is 2 ulp off; fix tracked in #NN",
      }

Ops this backend does not implement need no entry: the suite skips them, as
they fall back to the ``torch`` backend.
"""

from liger_kernel.backend import Conformance

CONFORMANCE = Conformance(
    unsupported_dtypes=frozenset(),
    expected_failures={},
)
