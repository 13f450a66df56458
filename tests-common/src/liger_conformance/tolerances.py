"""How close a backend must come to the float64 oracle: one table for the suite.

A result r passes against the oracle value o when, elementwise,
|r - o| <= atol * scale + rtol * |o|, where scale is the largest |o| in the
tensor (1 if all are 0): rounding errors are relative to the magnitudes a
computation handles, and a gradient divided by the token count must be as
accurate, relative to its size, as the undivided one. The rows are per dtype: the input dtype of the op, which is also
the dtype of its outputs and gradients. rtol is a few units in the last place
of that dtype (2**-23, 2**-7, 2**-10), since each output is rounded to it at
least once; atol absorbs the cancellation in gradients such as RMSNorm's
``g - n * mean(g * n)``, whose exact value can be near zero while its terms
are of order one. "reduced" covers scalar losses and weight gradients, which
sum many rounded terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float


#: dtype -> {kind: Tolerance}; kind "elementwise" for outputs and input gradients,
#: "reduced" for losses and gradients summed over rows.
TOLERANCES: dict[torch.dtype, dict[str, Tolerance]] = {
    torch.float32: {
        "elementwise": Tolerance(atol=1e-5, rtol=1e-5),
        "reduced": Tolerance(atol=1e-4, rtol=1e-5),
    },
    torch.bfloat16: {
        "elementwise": Tolerance(atol=2e-2, rtol=1.6e-2),
        "reduced": Tolerance(atol=8e-2, rtol=2e-2),
    },
    torch.float16: {
        "elementwise": Tolerance(atol=2e-3, rtol=2e-3),
        "reduced": Tolerance(atol=1e-2, rtol=4e-3),
    },
}


def tolerance(dtype: torch.dtype, kind: str = "elementwise") -> Tolerance:
    return TOLERANCES[dtype][kind]


def assert_close(
    actual: torch.Tensor,
    expected: torch.Tensor,
    dtype: torch.dtype,
    what: str,
    kind: str = "elementwise",
) -> None:
    """Compare a backend result with the float64 oracle; ``what`` names it in the message."""
    assert isinstance(actual, torch.Tensor), f"{what}: expected a tensor, got {type(actual).__name__}"
    assert tuple(actual.shape) == tuple(expected.shape), (
        f"{what}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
    )
    tol = tolerance(dtype, kind)
    expected = expected.detach().to("cpu", torch.float64)
    scale = expected.abs().max().item() if expected.numel() else 0.0
    atol = tol.atol * (scale if scale > 0 else 1.0)
    torch.testing.assert_close(
        actual.detach().to("cpu", torch.float64),
        expected,
        atol=atol,
        rtol=tol.rtol,
        equal_nan=False,
        msg=lambda detail: (
            f"{what} ({str(dtype).replace('torch.', '')}, {kind} tolerance {tol}, atol scaled by "
            f"max |expected| = {scale:.3g}): {detail}"
        ),
    )
