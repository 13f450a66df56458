"""Loss modules refuse bad options when they are built, with the op contract's
own checks, and the functional losses honour torch's legacy size_average/reduce."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from liger_kernel.transformers import functional as LF
from liger_kernel.transformers.cross_entropy import LigerCrossEntropyLoss
from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss
from liger_kernel.transformers.fused_linear_jsd import LigerFusedLinearJSD
from liger_kernel.transformers.jsd import LigerJSD
from liger_kernel.transformers.kl_div import LigerKLDIVLoss
from liger_kernel.transformers.tvd import LigerTVDLoss

BAD_OPTIONS = [
    (LigerKLDIVLoss, {"reduction": "bogus"}, ValueError, "reduction"),
    (LigerKLDIVLoss, {"eps": "1e-10"}, TypeError, "eps"),
    (LigerKLDIVLoss, {"log_target": 1}, TypeError, "log_target"),
    (LigerTVDLoss, {"ignore_index": 1.5}, TypeError, "ignore_index"),
    (LigerJSD, {"beta": "0.5"}, TypeError, "beta"),
    (LigerJSD, {"ignore_index": -100.0}, TypeError, "ignore_index"),
    (LigerFusedLinearJSD, {"temperature": "2"}, TypeError, "temperature"),
    (LigerFusedLinearJSD, {"temperature": float("inf")}, ValueError, "temperature"),
    (LigerFusedLinearJSD, {"ignore_index": None}, TypeError, "ignore_index"),
    (LigerCrossEntropyLoss, {"lse_square_scale": -0.5}, ValueError, "lse_square_scale"),
    (LigerCrossEntropyLoss, {"label_smoothing": "0.1"}, TypeError, "label_smoothing"),
    (LigerFusedLinearCrossEntropyLoss, {"lse_square_scale": -0.5}, ValueError, "lse_square_scale"),
    (LigerFusedLinearCrossEntropyLoss, {"accum_dtype": "float32"}, TypeError, "accum_dtype"),
    (LigerFusedLinearCrossEntropyLoss, {"accum_dtype": torch.int32}, ValueError, "accum_dtype"),
]


@pytest.mark.parametrize(
    ("module", "options", "error", "argument"),
    BAD_OPTIONS,
    ids=[f"{m.__name__}-{next(iter(o))}-{o[next(iter(o))]!r}" for m, o, _, _ in BAD_OPTIONS],
)
def test_module_refuses_bad_option_when_built(module, options, error, argument):
    with pytest.raises(error, match=rf"\b{argument}\b"):
        module(**options)


def test_kl_div_module_legacy_reduction_is_checked_too():
    """torch turns size_average/reduce into a reduction; the module keeps that one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = LigerKLDIVLoss(reduce=False)
    assert module.reduction == "none"


@pytest.mark.parametrize(
    "legacy",
    [
        {"reduce": False},
        {"size_average": False},
        {"size_average": True, "reduce": True},
        {"size_average": False, "reduce": False},
    ],
    ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()),
)
def test_cross_entropy_honours_size_average_and_reduce(legacy):
    torch.manual_seed(0)
    logits = torch.randn(5, 7, dtype=torch.float64)
    target = torch.randint(0, 7, (5,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = F.cross_entropy(logits, target, **legacy)
        got = LF.liger_cross_entropy(logits.clone(), target, **legacy)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected)


def test_kl_div_functional_honours_reduce():
    torch.manual_seed(0)
    y_pred = torch.randn(3, 6, dtype=torch.float64).log_softmax(-1)
    y_true = torch.randn(3, 6, dtype=torch.float64).softmax(-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = F.kl_div(y_pred, y_true, reduce=False)
        got = LF.liger_kl_div(y_pred, y_true, reduce=False)
    assert got.shape == (3, 6)
    torch.testing.assert_close(got, expected)
