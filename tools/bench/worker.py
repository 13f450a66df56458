"""The measurement worker: one piece of code for every implementation.

``run_job(job)`` measures the ops (with :func:`bench.run_ops.run_ops`) or the
training step (:func:`bench.train.run_train`) for one implementation and
returns plain data. The CLI calls ``run_ops`` in its own process for ``torch``
and ``liger`` (this project), and runs ``python -m bench.worker JOB RESULT`` in
a subprocess for ``peer`` (with the liger-kernel 0.8.5 wheel's folder first on
the path) and for every training step; :func:`isolate_peer` makes sure that
``liger_kernel`` there is the peer and not this project, and fails loudly
otherwise.

A job is a dict: ``kind`` ("ops" or "train"), ``impl``, ``device``, ``dtype``,
``scale``, ``quick``, and for ops ``ops``, ``tokens`` (a list of token counts,
or [None] for the TARGETS.md size), ``modes``; for train the keys of
:func:`bench.train.run_train`. Progress goes to stderr, results to the
RESULT file as JSON.

This module imports neither torch nor ``liger_kernel`` at import time, so that
the peer's isolation is checked before anything else is loaded; the
measurements live in :mod:`bench.run_ops` and :mod:`bench.train`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

IMPLS = ("torch", "liger", "peer")
PEER_VERSION = "0.8.5"


class Progress:
    """Numbered progress lines on stderr: ``[3/24 12.1s] rms_norm · liger · ...``."""

    def __init__(self, total: int, start: int = 0, elapsed: float = 0.0) -> None:
        self.total, self.done, self.t0 = total, start, time.perf_counter() - elapsed

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def step(self, label: str) -> None:
        self.done += 1
        print(f"[{self.done}/{self.total} {self.elapsed():6.1f}s] {label}", file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        print(f"    {text}", file=sys.stderr, flush=True)


def isolate_peer(expect_site: str | None, forbid: list[str]) -> str:
    """Drop this project's source folders from sys.path, then prove that
    ``liger_kernel`` is the peer's. Returns its version."""
    forbidden = [Path(p).resolve() for p in forbid]
    sys.path[:] = [p for p in sys.path if not any(_within(Path(p or "."), f) for f in forbidden)]
    for name in [m for m in sys.modules if m == "liger_kernel" or m.startswith("liger_kernel.")]:
        del sys.modules[name]
    try:
        import liger_kernel
    except ImportError as exc:
        raise SystemExit(
            f"peer isolation failed: no peer liger_kernel importable ({exc}); refusing to measure"
        ) from exc

    where = Path(liger_kernel.__file__ or "").resolve()
    wrong = any(_within(where, f) for f in forbidden) or (
        expect_site is not None and not _within(where, Path(expect_site).resolve())
    )
    if wrong:
        raise SystemExit(
            f"peer isolation failed: liger_kernel resolves to {where}, "
            f"expected a package under {expect_site or 'the peer environment'}; refusing to measure"
        )
    from importlib import metadata

    try:
        return metadata.version("liger-kernel")
    except metadata.PackageNotFoundError:
        return "unknown"


def _within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder)
        return True
    except (ValueError, OSError):
        return False


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job in this process and return {"env": ..., "results": [...]}."""
    version = isolate_peer(job.get("expect_site"), job.get("forbid", [])) if job["impl"] == "peer" else None
    from .run_ops import describe, run_ops

    progress = Progress(job.get("progress_total", 0), job.get("progress_start", 0), job.get("progress_elapsed", 0.0))
    if job["kind"] == "train":
        from .train import run_train

        progress.step(f"train · {job['impl']}")
        results = [run_train(job)]
    else:
        results = run_ops(job, progress, version)
    return {"env": describe(job["impl"], job["device"], version), "results": results}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m bench.worker JOB.json RESULT.json", file=sys.stderr)
        return 2
    job = json.loads(Path(argv[0]).read_text())
    try:
        result = run_job(job)
    except (Exception, SystemExit) as exc:
        # The parent reads this reason into its table instead of a bare exit status.
        message = str(exc) if isinstance(exc, SystemExit) else f"{type(exc).__name__}: {exc}"
        print(message, file=sys.stderr)
        Path(argv[1]).write_text(json.dumps({"fatal": message}))
        return 1
    Path(argv[1]).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
