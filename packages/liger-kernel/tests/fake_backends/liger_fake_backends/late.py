"""An op module a backend's prepare step must run before."""

from __future__ import annotations

from liger_fake_backends import RecordingSwiGLU


class LateSwiGLU(RecordingSwiGLU):
    pass
