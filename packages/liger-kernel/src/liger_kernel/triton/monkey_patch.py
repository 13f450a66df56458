"""``apply_liger_triton_cache_manager`` and its cache manager, as in liger-kernel 0.8.x.

Several processes compiling the same kernel (the ranks of one job on a shared
cache directory) can each see another's half-written file and fail with a
transient FileNotFoundError. :class:`LigerTritonFileCacheManager` writes each
file under a private temporary name first and renames it into place, which is
atomic on POSIX, so a reader sees either no file or the whole file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

from triton.runtime.cache import FileCacheManager

from liger_kernel.triton import apply_liger_triton_cache_manager

__all__ = ["LigerTritonFileCacheManager", "apply_liger_triton_cache_manager"]


class LigerTritonFileCacheManager(FileCacheManager):
    def put(self, data: bytes | str, filename: str, binary: bool = True) -> str:
        if not self.cache_dir:
            raise RuntimeError("LigerTritonFileCacheManager: no cache directory could be created or found")
        binary = isinstance(data, bytes)  # the data decide, as for Triton's own manager
        target = self._make_path(filename)
        handle, staging = tempfile.mkstemp(prefix=f".{filename}.{os.getpid()}.", dir=self.cache_dir)
        try:
            with os.fdopen(handle, "wb" if binary else "w") as out:
                out.write(data if binary else str(data))
            os.replace(staging, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staging)
            raise
        return target
