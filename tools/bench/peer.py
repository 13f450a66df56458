"""The liger-kernel 0.8.5 wheel as a peer, kept out of this project's process.

* ``fetch``: ``pip download liger-kernel==0.8.5 --no-deps -d .peer/wheels``,
  run on a machine with internet (the GPU machine has none); ``.peer/`` is
  git-ignored, so the wheel travels with the working tree but is never committed.
* ``ensure_site``: ``pip install --no-deps --target .peer/site`` of that wheel,
  on the machine that measures.
* ``run_in_subprocess``: runs :mod:`bench.worker` with the peer's site first on
  ``PYTHONPATH`` (or another interpreter given by ``--peer-python``); the
  worker removes this project's source folders from ``sys.path`` and checks
  that ``liger_kernel`` comes from the peer before measuring anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .worker import PEER_VERSION

TOOLS_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = TOOLS_DIR.parent
PEER_DIR = REPO_ROOT / ".peer"
WHEELS_DIR = PEER_DIR / "wheels"
SITE_DIR = PEER_DIR / "site"
#: folders whose packages must not be importable in the peer's process
OUR_SOURCES = [REPO_ROOT / "packages", REPO_ROOT / "tests-common"]


class PeerError(RuntimeError):
    pass


def fetch(wheels: Path = WHEELS_DIR, python: str = sys.executable) -> Path:
    """Download the peer wheel (needs the package index) and return its path."""
    wheels.mkdir(parents=True, exist_ok=True)
    cmd = [python, "-m", "pip", "download", f"liger-kernel=={PEER_VERSION}", "--no-deps", "-d", str(wheels)]
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)
    return find_wheel(wheels)


def find_wheel(wheels: Path = WHEELS_DIR) -> Path:
    found = sorted(wheels.glob(f"liger_kernel-{PEER_VERSION}-*.whl"))
    if not found:
        raise PeerError(
            f"no liger-kernel {PEER_VERSION} wheel in {wheels}; run `python -m tools.bench fetch-peer` "
            "on a machine with internet access first (the folder is git-ignored)"
        )
    return found[-1]


def ensure_site(site: Path = SITE_DIR, wheels: Path = WHEELS_DIR) -> Path:
    """Install the downloaded wheel into ``site`` unless it is there already."""
    if (site / "liger_kernel" / "__init__.py").exists():
        return site
    wheel = find_wheel(wheels)
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site), str(wheel)]
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)
    return site


def run_in_subprocess(
    job: dict[str, Any], python: str | None = None, site: Path | None = None, timeout: float | None = None
) -> dict[str, Any]:
    """Run a worker job in a fresh interpreter and return its result.

    ``site``: a folder put first on PYTHONPATH, and where ``liger_kernel`` must
    resolve (the peer); None runs with this project's environment as is.
    """
    env = dict(os.environ)
    path = [str(TOOLS_DIR)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    if site is not None:
        path.insert(0, str(site))
    env["PYTHONPATH"] = os.pathsep.join(path)
    job = dict(job)
    if job["impl"] == "peer":
        job["expect_site"] = str(site) if site is not None else None
        job["forbid"] = [str(p) for p in OUR_SOURCES]
    with tempfile.TemporaryDirectory(prefix="liger-bench-") as tmp:
        job_file, result_file = Path(tmp, "job.json"), Path(tmp, "result.json")
        job_file.write_text(json.dumps(job))
        cmd = [python or sys.executable, "-m", "bench.worker", str(job_file), str(result_file)]
        # cwd is the temporary folder so that nothing of the checkout shadows the path above
        proc = subprocess.run(cmd, env=env, cwd=tmp, timeout=timeout, stdout=subprocess.PIPE, text=True)
        if proc.stdout.strip():
            sys.stderr.write(proc.stdout)
        result = json.loads(result_file.read_text()) if result_file.exists() else {}
        if proc.returncode != 0 or "fatal" in result:
            reason = result.get("fatal") or f"exited with status {proc.returncode} (see stderr above)"
            raise PeerError(f"worker for {job['impl']!r}: {reason}")
        return result
