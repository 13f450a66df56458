"""``liger-kernel selftest`` (part of the README's main job) runs every op."""

from __future__ import annotations

import pytest

from liger_kernel.cli import selftest
from liger_kernel.ops import OPS


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_selftest_runs_every_op_on_the_cpu(capsys, dtype):
    assert selftest.main(["--device", "cpu", "--dtype", dtype]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line.startswith("  ") and "->" not in line}
    assert sorted(rows) == sorted(OPS)
    assert all("finite" in row and "NOT FINITE" not in row for row in rows.values())
    assert f"{len(OPS)} passed, 0 failed" in out
