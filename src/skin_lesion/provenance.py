"""What a result was computed from: the dataset's fingerprint and the machine and packages.

The HTML report and the benchmarks record these beside every figure, so that a number can be
traced to the exact metadata table, image list, CPU or GPU and package versions behind it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import platform
import re
import subprocess
from pathlib import Path

import pandas as pd

logger = logging.getLogger(__name__)

PACKAGES = (
    "torch",
    "torchvision",
    "timm",
    "kornia",
    "kedro",
    "kedro-datasets",
    "numpy",
    "pandas",
    "scikit-learn",
    "matplotlib",
)


def dataset_fingerprint(metadata: pd.DataFrame) -> dict:
    """Hashes that identify a metadata table whatever its row or column order.

    Args:
        metadata: HAM10000-style metadata with at least ``image_id`` and ``lesion_id``.

    Returns:
        ``{"images", "lesions", "metadata_sha256", "image_ids_sha256"}``. The metadata hash
        is over a canonical CSV: columns sorted by name, rows sorted by ``image_id`` (then by
        the other columns, so duplicate ids still sort deterministically), no index, missing
        values as empty fields.

    Raises:
        ValueError: If ``image_id`` or ``lesion_id`` is missing.
    """
    missing = [c for c in ("image_id", "lesion_id") if c not in metadata.columns]
    if missing:
        raise ValueError(
            f"metadata needs columns {missing} for a fingerprint; it has {list(metadata.columns)}"
        )
    columns = sorted(metadata.columns, key=str)
    sort_keys = ["image_id", *(c for c in columns if c != "image_id")]
    canonical = metadata[columns].sort_values(sort_keys, kind="mergesort", na_position="last")
    text = canonical.to_csv(index=False, na_rep="", lineterminator="\n")
    image_ids = "\n".join(sorted(metadata["image_id"].astype(str)))
    return {
        "images": len(metadata),
        "lesions": int(metadata["lesion_id"].nunique()),
        "metadata_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "image_ids_sha256": hashlib.sha256(image_ids.encode("utf-8")).hexdigest(),
    }


def cpu_name() -> str:
    """The CPU model: ``model name`` of ``/proc/cpuinfo`` on Linux, with its ``cpu family``
    and ``model`` numbers where given, else what platform says.

    Virtual machines often show a bare ``AMD EPYC`` or ``Intel(R) Xeon(R) Processor`` for
    several generations, whose SIMD kernels round differently: CPU training is reproducible
    bit for bit on one generation, not across them, so the numbers tell them apart.
    """
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        text = cpuinfo.read_text(errors="replace")
        match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        if match:
            name = match.group(1).strip()
            family = re.search(r"^cpu family\s*:\s*(\d+)$", text, re.MULTILINE)
            model = re.search(r"^model\s*:\s*(\d+)$", text, re.MULTILINE)
            if family and model:
                name += f" (family {family.group(1)}, model {model.group(1)})"
            return name
    return platform.processor() or platform.machine()


# What a run's numbers depend on inside a checkout: the package, its configuration and the
# benchmark scripts (not the results they write, nor their documentation).
CODE_PATHS = ("src", "conf", "benchmarks", ":(exclude)benchmarks/results", ":(exclude)*.md")
MAX_LISTED_CHANGES = 20


def _git(checkout: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(checkout), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.rstrip("\n") if done.returncode == 0 else None


def code_version(path: str | os.PathLike | None = None) -> dict | None:
    """The git commit of the checkout holding ``path``, and what in it was not committed.

    Two results can differ because they ran different code; a figure that records only
    package versions cannot tell. This names the commit, the tree hashes of ``src`` and
    ``conf`` (which a commit touching only documentation leaves alone, so runs of one code
    on different commits are recognisable), and the uncommitted changes under ``src``,
    ``conf`` and ``benchmarks`` that the commit does not describe.

    Args:
        path: A file or folder inside the checkout; default this package's source.

    Returns:
        ``{"commit", "src_tree", "conf_tree", "changed", "changes"}`` (``changed``: how many
        paths ``git status`` lists there, 0 when clean; ``changes``: its lines, at most 20,
        then a count of the rest), or None where
        ``path`` is not in a git checkout (an installed wheel) or git is missing.
    """
    where = Path(path if path is not None else __file__).resolve()
    folder = where if where.is_dir() else where.parent
    top = _git(folder, "rev-parse", "--show-toplevel")
    commit = top and _git(Path(top), "rev-parse", "--verify", "HEAD")
    if not top or not commit:
        return None
    checkout = Path(top)
    status = _git(checkout, "status", "--porcelain", "--", *CODE_PATHS)
    lines = status.splitlines() if status else []
    changes = lines[:MAX_LISTED_CHANGES]
    if len(lines) > MAX_LISTED_CHANGES:
        changes.append(f"... and {len(lines) - MAX_LISTED_CHANGES} more")
    return {
        "commit": commit,
        "src_tree": _git(checkout, "rev-parse", "--verify", "HEAD:src"),
        "conf_tree": _git(checkout, "rev-parse", "--verify", "HEAD:conf"),
        "changed": len(lines),
        "changes": changes,
    }


def environment_info(device: str | None = None) -> dict:
    """Python, platform, package versions and accelerator of the running process.

    Args:
        device: The device the run used (e.g. ``"cuda:0"``), recorded as given.

    Returns:
        ``{"python", "platform", "cpu", "cpu_cores", "torch_threads", "device", "torch_build",
        "torch_cuda_build", "cuda_available", "gpu", "code_commit", "code_changes",
        "packages"}`` where ``packages`` maps distribution name to version or ``"not
        installed"``; torch fields are None without torch; ``code_commit`` is the git commit
        of this package's checkout (None for an installed package) and ``code_changes`` the
        number of uncommitted changes to its code (``code_version``).
    """
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = "not installed"
    code = code_version()
    cuda_available, gpu, torch_build, cuda_build, threads = False, None, None, None, None
    try:
        import torch

        # The wheel's local tag (e.g. "+cu130") is in __version__, not in the metadata.
        torch_build, cuda_build = str(torch.__version__), torch.version.cuda
        # CPU kernels split their sums by thread: on a CPU, results repeat bit for bit at
        # one thread count (OMP_NUM_THREADS), not across counts.
        threads = torch.get_num_threads()
        cuda_available = bool(torch.cuda.is_available())
        if cuda_available:
            gpu = torch.cuda.get_device_name(torch.cuda.current_device())
    except ImportError:
        logger.debug("torch is not installed; recording no GPU")
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": threads,
        "device": device,
        "torch_build": torch_build,
        "torch_cuda_build": cuda_build,
        "cuda_available": cuda_available,
        "gpu": gpu,
        "code_commit": code and code["commit"],
        "code_changes": code and code["changed"],
        "packages": packages,
    }
