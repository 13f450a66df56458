"""Kernels in these tests run under the Triton interpreter inside the NPU mock;
the interpreter must be chosen before triton is first imported."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
