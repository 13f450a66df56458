"""The measurement worker: one piece of code for every implementation.

``run_job(job)`` measures the ops (or the training step) for one
implementation and returns plain data. The CLI calls it in its own process for
``torch`` and ``liger`` (this project), and runs ``python -m bench.worker JOB
RESULT`` in a subprocess for ``peer``, with the liger-kernel 0.8.5 wheel's
folder first on the path; :func:`isolate_peer` makes sure ``liger_kernel``
there is the peer and not this project, and fails loudly otherwise.

A job is a dict: ``kind`` ("ops" or "train"), ``impl``, ``device``, ``dtype``,
``scale``, ``quick``, and for ops ``ops``, ``tokens`` (a list of token counts,
or [None] for the TARGETS.md size), ``modes``; for train the keys of
:func:`bench.train.run_train`. Progress goes to stderr, results to the
RESULT file as JSON.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from .cases import CASES, shape_label
from .measure import MODES, measure

IMPLS = ("torch", "liger", "peer")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
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


def describe(impl: str, device: torch.device, peer_version: str | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "impl": impl,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
    }
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    if impl != "torch":
        import liger_kernel

        info["liger_kernel_file"] = liger_kernel.__file__
        info["liger_kernel_version"] = peer_version or getattr(liger_kernel, "__version__", "unknown")
    return info


def backend_of(impl: str, op: str, device: torch.device, version: str | None) -> str:
    """Who serves ``op``: 'eager', this project's dispatcher route, or the peer."""
    if impl == "torch":
        return "eager"
    if impl == "peer":
        return f"liger-kernel {version}"
    from liger_kernel.dispatch import dispatcher

    device_type = dispatcher.device_alias.get(device.type, device.type)
    route = dispatcher.select(op, device_type)
    return route.backend + (" (fallback)" if route.fallback_reason else "")


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_ops(job: dict[str, Any], progress: Progress, version: str | None = None) -> list[dict[str, Any]]:
    impl, device, dtype = job["impl"], torch.device(job["device"]), DTYPES[job["dtype"]]
    modes = tuple(job.get("modes") or MODES)
    records = []
    for op in job["ops"]:
        case = CASES[op]
        for tokens in job.get("tokens") or [None]:
            dims = case.sized(job["scale"], tokens)
            record: dict[str, Any] = {
                "op": op,
                "impl": impl,
                "tokens": dims["tokens"],
                "shape": shape_label(case, dims),
                "dtype": job["dtype"],
                "device": device.type,
                "backend": None,
                "fwd_ms": None,
                "bwd_ms": None,
                "full_ms": None,
                "mem_mib": None,
                "error": None,
            }
            progress.step(f"{op} · {impl} · {record['shape']} {job['dtype']}")
            try:
                record["backend"] = backend_of(impl, op, device, version)
                torch.manual_seed(0)
                inputs = case.make(dims, dtype, device)
                forward = functools.partial(case.eager if impl == "torch" else case.liger, inputs)
                record.update(measure(forward, inputs["leaves"], inputs["grads"], device, job["quick"], modes))
                del inputs, forward
            except Exception as exc:  # recorded in the table; the run goes on
                record["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
                progress.note(f"error: {record['error']}")
                if os.environ.get("LIGER_BENCH_TRACEBACK"):
                    traceback.print_exc()
            _free(device)
            records.append(record)
    return records


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job in this process and return {"env": ..., "results": [...]}."""
    version = job.get("peer_version")
    if job["impl"] == "peer" and version is None:
        version = isolate_peer(job.get("expect_site"), job.get("forbid", []))
    device = torch.device(job["device"])
    progress = Progress(job.get("progress_total", 0), job.get("progress_start", 0), job.get("progress_elapsed", 0.0))
    if job["kind"] == "train":
        from .train import run_train

        progress.step(f"train · {job['impl']}")
        results = [run_train(job)]
    else:
        results = run_ops(job, progress, version)
    return {"env": describe(job["impl"], device, version), "results": results}


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
