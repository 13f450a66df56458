"""Bad inputs every backend must refuse, as data: the contract tests run them
and ``python -m liger_conformance.bad_inputs --markdown`` prints them as the
table in this package's README, so the two cannot drift apart.

A case starts from one valid call of an op (:func:`valid_arguments`), changes
one thing, and expects ``Liger<Op>Function.apply`` to raise ``error`` with a
message naming ``argument``. The checks live in the op contracts
(``liger_kernel.ops.<op>``), before dispatch, so every backend gives the same
error; a backend that computes anything for these calls is not conforming.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from liger_conformance.contracts._support import make, meta_like, raises_naming
from liger_kernel.ops import OPS

Arguments = dict[str, Any]


@dataclass(frozen=True)
class BadInput:
    op: str
    #: short test id, unique within the op
    name: str
    #: what is wrong, as the README table shows it
    what: str
    argument: str
    error: type[Exception]
    spoil: Callable[[Arguments], None]


def _set(**values: Any) -> Callable[[Arguments], None]:
    return lambda args: args.update(values)


def _change(name: str, how: Callable[[Any], Any]) -> Callable[[Arguments], None]:
    def spoil(args: Arguments) -> None:
        args[name] = how(args[name])

    return spoil


def _scalar(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1)[0]


def _no_width(t: torch.Tensor) -> torch.Tensor:
    return t[..., :0]


def valid_arguments(op: str, device: torch.device, rng: torch.Generator) -> Arguments:
    """One small valid call of ``op``, by argument name."""

    def x(*shape: int) -> torch.Tensor:
        return make(shape, torch.float32, device, rng)

    def labels(rows: int, vocab: int) -> torch.Tensor:
        return torch.randint(0, vocab, (rows,), generator=rng).to(device)

    if op == "rms_norm":
        return {"X": x(2, 8), "W": x(8), "eps": 1e-6}
    if op == "fused_add_rms_norm":
        return {"X": x(2, 8), "R": x(2, 8), "W": x(8), "eps": 1e-6}
    if op == "layer_norm":
        return {"X": x(2, 8), "W": x(8), "B": x(8), "eps": 1e-6}
    if op == "group_norm":
        return {"X": x(2, 4, 3), "weight": x(4), "bias": x(4), "num_channels": 4, "num_groups": 2, "eps": 1e-6}
    if op == "poly_norm":
        return {"X": x(2, 8), "W": x(3), "B": x(1), "eps": 1e-6}
    if op == "cross_entropy":
        return {"input": x(3, 10), "target": labels(3, 10), "weight": x(10).abs()}
    if op == "fused_linear_cross_entropy":
        return {"input": x(3, 8), "weight": x(10, 8), "target": labels(3, 10), "bias": x(10), "ce_weight": x(10).abs()}
    if op == "jsd":
        return {"input": x(3, 10).log_softmax(-1), "target": x(3, 10).log_softmax(-1), "shift_labels": labels(3, 10)}
    if op == "fused_linear_jsd":
        return {
            "student_input": x(3, 8),
            "student_weight": x(10, 8),
            "teacher_input": x(3, 6),
            "teacher_weight": x(10, 6),
        }
    if op == "kl_div":
        return {"y_pred": x(2, 8).log_softmax(-1), "y_true": x(2, 8).softmax(-1)}
    if op == "tvd":
        return {"p": x(2, 8).softmax(-1), "q": x(2, 8).softmax(-1)}
    raise KeyError(f"no valid call of {op!r} is described here")


def _eps_cases(op: str, *, positive: bool = False) -> list[BadInput]:
    cases = [
        BadInput(op, "eps-negative", "`eps` = -1e-06", "eps", ValueError, _set(eps=-1e-6)),
        BadInput(op, "eps-str", "`eps` = `'1e-6'` (a string)", "eps", TypeError, _set(eps="1e-6")),
        BadInput(op, "eps-nan", "`eps` = nan", "eps", ValueError, _set(eps=math.nan)),
    ]
    if positive:
        cases.append(
            BadInput(op, "eps-zero", "`eps` = 0 (log(max(t, eps)) needs eps > 0)", "eps", ValueError, _set(eps=0.0))
        )
    return cases


def _empty_row(op: str, argument: str, *others: str, what: str = "last dimension 0 (an empty row)") -> BadInput:
    """``argument`` made 0 wide, with ``others`` (the tensors sized by that
    width) to match, so that only the empty row itself is wrong."""

    def spoil(args: Arguments) -> None:
        for name in (argument, *others):
            args[name] = _no_width(args[name])

    shown = " and ".join(f"`{name}`" for name in (argument, *others))
    return BadInput(op, f"{argument}-zero-width", f"{shown} with {what}", argument, ValueError, spoil)


def _device(op: str, argument: str) -> BadInput:
    """On another device than the first tensor: a meta tensor, a mismatch on any machine."""
    return BadInput(
        op, f"{argument}-device", f"`{argument}` on another device", argument, ValueError, _change(argument, meta_like)
    )


def _dtype(op: str, argument: str, dtype: torch.dtype) -> BadInput:
    name = str(dtype).replace("torch.", "")
    return BadInput(
        op,
        f"{argument}-{name}",
        f"`{argument}` of dtype {name}",
        argument,
        TypeError,
        _change(argument, lambda t: t.to(dtype)),
    )


def _shape(
    op: str, argument: str, what: str, how: Callable[[torch.Tensor], torch.Tensor], name: str = "shape"
) -> BadInput:
    return BadInput(op, f"{argument}-{name}", f"`{argument}` {what}", argument, ValueError, _change(argument, how))


def _zero_dim(op: str, argument: str) -> BadInput:
    return BadInput(op, f"{argument}-0d", f"`{argument}` 0-D", argument, ValueError, _change(argument, _scalar))


CASES: list[BadInput] = [
    _dtype("rms_norm", "X", torch.int32),
    _shape("rms_norm", "W", "shorter than the last dimension of `X`", lambda w: w[:7]),
    BadInput(
        "rms_norm",
        "casting_mode",
        "`casting_mode` = `'llama3'`",
        "casting_mode",
        ValueError,
        _set(casting_mode="llama3"),
    ),
    _device("rms_norm", "W"),
    *_eps_cases("rms_norm"),
    BadInput("rms_norm", "eps-bool", "`eps` = True", "eps", TypeError, _set(eps=True)),
    BadInput("rms_norm", "offset-inf", "`offset` = inf", "offset", ValueError, _set(offset=math.inf)),
    _zero_dim("rms_norm", "X"),
    _empty_row("rms_norm", "X", "W"),
    *_eps_cases("fused_add_rms_norm"),
    _empty_row("fused_add_rms_norm", "X", "R", "W"),
    _dtype("layer_norm", "X", torch.int32),
    _shape("layer_norm", "W", "shorter than the last dimension of `X`", lambda w: w[:7]),
    _shape("layer_norm", "B", "shorter than the last dimension of `X`", lambda b: b[:7]),
    _device("layer_norm", "W"),
    _device("layer_norm", "B"),
    *_eps_cases("layer_norm"),
    _zero_dim("layer_norm", "X"),
    _empty_row("layer_norm", "X", "W", "B"),
    *_eps_cases("group_norm"),
    BadInput(
        "group_norm",
        "X-no-positions",
        "`X` with a spatial dimension of 0 (groups of no values)",
        "X",
        ValueError,
        _change("X", _no_width),
    ),
    *_eps_cases("poly_norm"),
    _empty_row("poly_norm", "X"),
    _shape("cross_entropy", "input", "3-D", lambda t: t.unsqueeze(0), "3d"),
    _dtype("cross_entropy", "input", torch.int64),
    _shape("cross_entropy", "target", "with fewer rows than `input`", lambda t: t[:2]),
    _dtype("cross_entropy", "target", torch.float32),
    _shape("cross_entropy", "weight", "not one per class", lambda w: w[:9]),
    BadInput(
        "cross_entropy", "reduction", "`reduction` = `'average'`", "reduction", ValueError, _set(reduction="average")
    ),
    BadInput(
        "cross_entropy",
        "label_smoothing",
        "`label_smoothing` = 1.5",
        "label_smoothing",
        ValueError,
        _set(label_smoothing=1.5),
    ),
    BadInput("cross_entropy", "softcap-zero", "`softcap` = 0", "softcap", ValueError, _set(softcap=0.0)),
    _device("cross_entropy", "target"),
    _device("cross_entropy", "weight"),
    BadInput(
        "cross_entropy",
        "lse_square_scale-negative",
        "`lse_square_scale` = -0.1",
        "lse_square_scale",
        ValueError,
        _set(lse_square_scale=-0.1),
    ),
    BadInput(
        "cross_entropy",
        "lse_square_scale-nan",
        "`lse_square_scale` = nan",
        "lse_square_scale",
        ValueError,
        _set(lse_square_scale=math.nan),
    ),
    BadInput(
        "cross_entropy",
        "label_smoothing-str",
        "`label_smoothing` = `'0.1'` (a string)",
        "label_smoothing",
        TypeError,
        _set(label_smoothing="0.1"),
    ),
    BadInput("cross_entropy", "softcap-inf", "`softcap` = inf", "softcap", ValueError, _set(softcap=math.inf)),
    _empty_row("cross_entropy", "input", what="vocabulary 0 (shape (rows, 0))"),
    _shape("fused_linear_cross_entropy", "input", "3-D", lambda t: t.unsqueeze(0), "3d"),
    _shape(
        "fused_linear_cross_entropy", "weight", "with another hidden size than `input`", lambda w: w[:, :7], "hidden"
    ),
    _dtype("fused_linear_cross_entropy", "weight", torch.int32),
    _shape("fused_linear_cross_entropy", "bias", "not one per vocabulary entry", lambda b: b[:9]),
    _shape("fused_linear_cross_entropy", "ce_weight", "not one per class", lambda w: w[:9]),
    _shape("fused_linear_cross_entropy", "target", "with fewer rows than `input`", lambda t: t[:2]),
    BadInput(
        "fused_linear_cross_entropy",
        "reduction",
        "`reduction` = `'batchmean'`",
        "reduction",
        ValueError,
        _set(reduction="batchmean"),
    ),
    _device("fused_linear_cross_entropy", "weight"),
    _device("fused_linear_cross_entropy", "bias"),
    _device("fused_linear_cross_entropy", "ce_weight"),
    BadInput(
        "fused_linear_cross_entropy",
        "accum_dtype-str",
        "`accum_dtype` = `'float32'` (a string)",
        "accum_dtype",
        TypeError,
        _set(accum_dtype="float32"),
    ),
    BadInput(
        "fused_linear_cross_entropy",
        "accum_dtype-int",
        "`accum_dtype` = torch.int32",
        "accum_dtype",
        ValueError,
        _set(accum_dtype=torch.int32),
    ),
    BadInput(
        "fused_linear_cross_entropy",
        "lse_square_scale-negative",
        "`lse_square_scale` = -1",
        "lse_square_scale",
        ValueError,
        _set(lse_square_scale=-1.0),
    ),
    BadInput(
        "fused_linear_cross_entropy",
        "weight-no-vocab",
        "`weight`, `bias` and `ce_weight` with vocabulary 0 (`weight` of shape (0, hidden))",
        "weight",
        ValueError,
        lambda a: a.update(weight=a["weight"][:0], bias=a["bias"][:0], ce_weight=a["ce_weight"][:0]),
    ),
    _shape("jsd", "input", "3-D", lambda t: t.unsqueeze(0), "3d"),
    _dtype("jsd", "input", torch.int32),
    _shape("jsd", "target", "with another vocabulary than `input`", lambda t: t[:, :9], "vocab"),
    _shape("jsd", "target", "with fewer rows than `input`", lambda t: t[:2], "rows"),
    _dtype("jsd", "target", torch.int64),
    _shape("jsd", "shift_labels", "with fewer rows than `input`", lambda t: t[:2]),
    _dtype("jsd", "shift_labels", torch.float32),
    BadInput("jsd", "beta-high", "`beta` = 1.5", "beta", ValueError, _set(beta=1.5)),
    BadInput("jsd", "beta-negative", "`beta` = -0.1", "beta", ValueError, _set(beta=-0.1)),
    _device("jsd", "target"),
    _device("jsd", "shift_labels"),
    BadInput(
        "jsd",
        "target-requires-grad",
        "`target` requires grad (it gets no gradient)",
        "target",
        ValueError,
        _change("target", lambda t: t.detach().requires_grad_()),
    ),
    BadInput("jsd", "beta-str", "`beta` = `'0.5'` (a string)", "beta", TypeError, _set(beta="0.5")),
    BadInput(
        "jsd", "ignore_index-float", "`ignore_index` = -100.0", "ignore_index", TypeError, _set(ignore_index=-100.0)
    ),
    BadInput(
        "fused_linear_jsd",
        "temperature-str",
        "`temperature` = `'2'` (a string)",
        "temperature",
        TypeError,
        _set(temperature="2"),
    ),
    BadInput(
        "fused_linear_jsd",
        "temperature-inf",
        "`temperature` = inf",
        "temperature",
        ValueError,
        _set(temperature=math.inf),
    ),
    _shape("kl_div", "y_true", "with another last dimension than `y_pred`", lambda t: t[:, :5]),
    _dtype("kl_div", "y_pred", torch.int32),
    _dtype("kl_div", "y_true", torch.int64),
    _device("kl_div", "y_true"),
    BadInput(
        "kl_div",
        "y_pred-0d",
        "`y_pred` and `y_true` 0-D",
        "y_pred",
        ValueError,
        lambda a: a.update(y_pred=_scalar(a["y_pred"]), y_true=_scalar(a["y_true"])),
    ),
    BadInput("kl_div", "reduction", "`reduction` = `'average'`", "reduction", ValueError, _set(reduction="average")),
    *_eps_cases("kl_div", positive=True),
]


def cases(op: str) -> list[BadInput]:
    found = [case for case in CASES if case.op == op]
    assert found, f"no bad-input case for {op!r}"
    return found


def case_id(case: BadInput) -> str:
    return case.name


def expect_refused(case: BadInput, device: torch.device, rng: torch.Generator) -> None:
    """Call the op with the spoiled arguments: it must raise the case's error naming its argument."""
    args = valid_arguments(case.op, device, rng)
    case.spoil(args)
    with raises_naming(case.error, case.argument):
        OPS[case.op].apply(**args)


def markdown() -> str:
    """The README table: one row per case, ops in the order of ``liger_kernel.ops.OPS``."""
    order = {op: index for index, op in enumerate(OPS)}
    lines = ["| op | bad input | error | names |", "|---|---|---|---|"]
    for case in sorted(CASES, key=lambda c: order[c.op]):
        lines.append(f"| `{case.op}` | {case.what} | `{case.error.__name__}` | `{case.argument}` |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m liger_conformance.bad_inputs", description=__doc__.split("\n")[0])
    parser.add_argument("--markdown", action="store_true", help="print the README table (op x bad input -> error)")
    options = parser.parse_args(argv)
    if options.markdown:
        sys.stdout.write(markdown())
    else:
        for case in CASES:
            print(f"{case.op}::{case.name}: {case.error.__name__} naming {case.argument}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
