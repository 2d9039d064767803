"""Keep glibc's malloc from returning every batch's activations to the kernel.

glibc serves an allocation above its mmap threshold (128 KiB at first, rising with use to
at most 32 MiB) with a fresh ``mmap`` and unmaps it when freed, and it gives the top of its
heap back to the kernel once more than its trim threshold lies free there. PyTorch on a CPU
allocates each batch's activations and gradients anew (tens to hundreds of MiB at 128 px),
so every batch faults its pages in again and the kernel zeroes them: on a 2-core AMD EPYC
that took up to half of a training step's and an evaluation pass's time
(``benchmarks/host_allocator.py``). jemalloc or tcmalloc (``LD_PRELOAD``), which PyTorch's CPU
tuning guide recommends for this, need a system package and a variable set before Python
starts; :func:`keep_freed_memory` gets the same effect from inside the process, with
``mallopt``: no allocation is served by ``mmap`` (``M_MMAP_MAX`` 0), and up to 2 GiB freed at
the top of the heap stays mapped (``M_TRIM_THRESHOLD``), so later batches reuse pages already
faulted in.

The cost: memory a run freed stays in the process (its resident size stays near its peak,
which is what it needed anyway). :class:`HostMemoryHook` applies it when a ``kedro run`` starts
(``skin-lesion predict`` too); it is left alone where another allocator is preloaded, where
glibc's malloc tunables are set in the environment, off glibc, or with
``SKIN_LESION_MALLOC=system``. The computations are the same, so are the results.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import re
from pathlib import Path

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)

OPT_OUT = "SKIN_LESION_MALLOC"
M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_MAX = -4
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: 2 GiB
ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")
_APPLIED = False


def _reason_to_leave_alone() -> str | None:
    """Why :func:`keep_freed_memory` should not touch malloc here, or None."""
    if os.environ.get(OPT_OUT, "").lower() == "system":
        return f"{OPT_OUT}=system"
    preload = os.environ.get("LD_PRELOAD", "")
    if any(name in preload for name in ALLOCATORS):
        return f"LD_PRELOAD={preload}"
    if "malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return "GLIBC_TUNABLES sets malloc tunables"
    if any(name.startswith("MALLOC_") for name in os.environ):
        return "MALLOC_* variables are set"
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "not glibc"
    return None


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse (see the module); once a process.

    Returns:
        True where it is (now or already) in effect, False where left alone.
    """
    global _APPLIED
    if _APPLIED:
        return True
    reason = _reason_to_leave_alone()
    if reason is not None:
        logger.debug("malloc left alone: %s", reason)
        return False
    libc = ctypes.CDLL(None)
    if not (libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        logger.warning("glibc's mallopt refused the settings; malloc left as it was")
        return False
    _APPLIED = True
    logger.info(
        "malloc keeps freed memory for the next batch (no mmap, trim above 2 GiB; "
        "%s=system turns this off)",
        OPT_OUT,
    )
    return True


def peak_resident_mib() -> float | None:
    """This process's peak resident memory (``VmHWM`` of /proc/self/status) in MiB; None
    where there is no such file (off Linux)."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else None


class HostMemoryHook:
    """Applies :func:`keep_freed_memory` before a run's first node."""

    @hook_impl
    def before_pipeline_run(self) -> None:
        """Before any node allocates."""
        keep_freed_memory()
