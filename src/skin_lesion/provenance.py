"""What a result was computed from: the dataset's fingerprint and the machine and packages.

The HTML report and the benchmarks record these beside every figure, so that a number can be
traced to the exact metadata table, image list, CPU or GPU and package versions behind it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
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


def device_slug(device_type: str, name: str) -> str:
    """A device for a file name: ``cpu``, or a GPU's name in lower case with dashes
    (``NVIDIA H100 80GB HBM3`` -> ``h100-80gb-hbm3``), so that two GPUs' benchmark
    results never share a file."""
    if device_type != "cuda":
        return device_type
    return re.sub(r"[^a-z0-9]+", "-", name.lower().replace("nvidia", "")).strip("-")


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


# A copy of the checkout without .git (rsync, a tarball, a machine the code was carried to)
# still names its code through this file: ``python -m skin_lesion.provenance stamp`` writes
# it in the checkout, and ``code_version`` in the copy trusts its commit only where the
# copy's src, conf and benchmark scripts hash to the trees it recorded.
STAMP_FILE = "CODE_VERSION.json"
# What .gitignore keeps out of src and conf (caches, build metadata, local settings) and
# CODE_PATHS out of benchmarks (results, documentation).
_IGNORED_DIRS = {"__pycache__", ".ipynb_checkpoints"}
_IGNORED_SUFFIXES = (".pyc", ".pyo", ".pyd")


def _ignored(rel: Path, is_dir: bool) -> bool:
    if is_dir and (rel.name in _IGNORED_DIRS or rel.name.endswith(".egg-info")):
        return True
    if not is_dir and rel.suffix in _IGNORED_SUFFIXES:
        return True
    # Benchmark results and documentation are not code (CODE_PATHS leaves them out too).
    if rel.parts[:1] == ("benchmarks",) and (
        rel.parts[:2] == ("benchmarks", "results") or (not is_dir and rel.suffix == ".md")
    ):
        return True
    # conf/local holds credentials and machine settings; git keeps only its .gitkeep.
    return rel.parts[:2] == ("conf", "local") and len(rel.parts) > 2 and rel.name != ".gitkeep"


def tree_hash(folder: str | os.PathLike, root: str | os.PathLike | None = None) -> str | None:
    """git's tree hash of ``folder`` as it is on disk, without git.

    The hash ``git add`` then ``git write-tree`` would give it (``git rev-parse HEAD:src`` on
    a clean checkout): blobs of the file bytes, modes 100644/100755/120000, entries in git's
    order, empty folders left out, and what this project's .gitignore excludes from ``src``
    and ``conf`` skipped (``_ignored``). None for a folder holding no file.

    Args:
        folder: The folder to hash.
        root: The checkout's root, for the ignore rules' paths; default ``folder``'s parent.
    """
    folder = Path(folder)
    root = Path(root) if root is not None else folder.parent
    entries = []
    for child in folder.iterdir():
        rel = child.relative_to(root)
        if child.is_symlink():
            mode, digest = b"120000", _object(b"blob", os.readlink(child).encode())
        elif child.is_dir():
            if _ignored(rel, True):
                continue
            sub = tree_hash(child, root)
            if sub is None:
                continue
            mode, digest = b"40000", bytes.fromhex(sub)
        else:
            if _ignored(rel, False):
                continue
            executable = child.stat().st_mode & 0o100
            mode = b"100755" if executable else b"100644"
            digest = _object(b"blob", child.read_bytes())
        name = child.name.encode()
        # git orders a folder as if its name ended in "/".
        entries.append((name + b"/" if mode == b"40000" else name, mode, name, digest))
    if not entries:
        return None
    body = b"".join(
        mode + b" " + name + b"\0" + digest for _, mode, name, digest in sorted(entries)
    )
    return _object(b"tree", body).hex()


def _object(kind: bytes, body: bytes) -> bytes:
    return hashlib.sha1(kind + b" %d\0" % len(body) + body).digest()


def _project_root(folder: Path) -> Path | None:
    """The nearest folder at or above ``folder`` holding pyproject.toml, src and conf."""
    for candidate in (folder, *folder.parents):
        if all((candidate / p).exists() for p in ("pyproject.toml", "src", "conf")):
            return candidate
    return None


def code_version(path: str | os.PathLike | None = None) -> dict | None:
    """The git commit of the checkout holding ``path``, and what in it was not committed.

    Two results can differ because they ran different code; a figure that records only
    package versions cannot tell. This names the commit, the tree hashes of ``src`` and
    ``conf`` (which a commit touching only documentation leaves alone, so runs of one code
    on different commits are recognisable), and the uncommitted changes under ``src``,
    ``conf`` and ``benchmarks`` that the commit does not describe.

    In a copy of a checkout without ``.git``, the trees are hashed from the files
    (``tree_hash``); the commit, and the changes it had, come from the copy's
    ``CODE_VERSION.json`` (``stamp``) where that file recorded these same trees, and the
    same for ``benchmarks`` (its scripts), with ``"stamp": "verified"``; otherwise the
    commit is None and ``stamp`` says why.

    Args:
        path: A file or folder inside the checkout; default this package's source.

    Returns:
        ``{"commit", "src_tree", "conf_tree", "changed", "changes"}`` (``changed``: how many
        paths ``git status`` lists there, 0 when clean, None when unknown; ``changes``: its
        lines, at most 20, then a count of the rest; plus ``stamp`` in a copy without git),
        or None where ``path`` is in no checkout or copy of one (an installed wheel).
    """
    where = Path(path if path is not None else __file__).resolve()
    folder = where if where.is_dir() else where.parent
    top = _git(folder, "rev-parse", "--show-toplevel")
    commit = top and _git(Path(top), "rev-parse", "--verify", "HEAD")
    if not top or not commit:
        root = _project_root(folder)
        return _code_from_files(root) if root is not None else None
    checkout = _code_root(folder, top)
    # Paths relative to the project's folder (git -C), which is the checkout's top or a
    # folder inside it (a project in a larger repository).
    status = _git(checkout, "status", "--porcelain", "--", *CODE_PATHS)
    lines = status.splitlines() if status else []
    changes = lines[:MAX_LISTED_CHANGES]
    if len(lines) > MAX_LISTED_CHANGES:
        changes.append(f"... and {len(lines) - MAX_LISTED_CHANGES} more")
    return {
        "commit": commit,
        "src_tree": _git(checkout, "rev-parse", "--verify", "HEAD:./src"),
        "conf_tree": _git(checkout, "rev-parse", "--verify", "HEAD:./conf"),
        "changed": None if status is None else len(lines),
        "changes": changes,
    }


def _code_root(folder: Path, top: str) -> Path:
    """The folder holding the project's ``src`` and ``conf`` in the git checkout whose top is
    ``top``: the top, or the project's own folder where it lies deeper (until 2026-12-06 a
    project in a larger repository was checked at the top, where it has no ``src``: no trees,
    and its uncommitted changes went unseen)."""
    root = _project_root(folder)
    if root is not None and root.resolve().is_relative_to(Path(top).resolve()):
        return root
    return Path(top)


def describe_code(code: dict | None) -> str:
    """For a results caption: ``commit abc1234567``, with ``plus N uncommitted changes``
    where there were some."""
    if not code:
        return "code not recorded"
    if code.get("commit"):
        name = f"commit `{code['commit'][:10]}`"
    else:
        name = f"no git, src tree `{str(code.get('src_tree'))[:10]}`"
    changed = code.get("changed") or 0
    return name + (f" plus {changed} uncommitted changes" if changed else "")


def _file_trees(root: Path) -> dict[str, str | None]:
    """Tree hashes of the code folders as on disk: src and conf (git's, when committed) and
    benchmarks without its results and documentation (what CODE_PATHS watches)."""
    return {
        f"{name}_tree": tree_hash(root / name, root) if (root / name).is_dir() else None
        for name in ("src", "conf", "benchmarks")
    }


def _code_from_files(root: Path) -> dict:
    trees = _file_trees(root)
    code = {
        "commit": None,
        "src_tree": trees["src_tree"],
        "conf_tree": trees["conf_tree"],
        "changed": None,
        "changes": [],
        "stamp": f"no git checkout and no {STAMP_FILE}",
    }
    stamp_path = root / STAMP_FILE
    if not stamp_path.is_file():
        return code
    try:
        stamp = json.loads(stamp_path.read_text())
        recorded = {key: stamp["files"][key] for key in trees}
    except (ValueError, KeyError, TypeError) as error:
        code["stamp"] = f"{STAMP_FILE} unreadable: {error!r}"
        return code
    if recorded != trees:
        differ = " and ".join(key[: -len("_tree")] for key in trees if recorded[key] != trees[key])
        code["stamp"] = (
            f"{differ} differ from {STAMP_FILE} (made at commit {str(stamp.get('commit'))[:10]})"
        )
        return code
    return {
        **code,
        "commit": stamp.get("commit"),
        "changed": stamp.get("changed"),
        "changes": stamp.get("changes", []),
        "stamp": "verified",
    }


def stamp(checkout: str | os.PathLike | None = None) -> Path:
    """Write ``CODE_VERSION.json`` at the root of the project (in the git checkout) holding
    ``checkout``.

    It holds ``code_version`` (commit, trees, uncommitted changes) and, under ``files``, the
    tree hashes of ``src``, ``conf`` and ``benchmarks`` (without results and documentation)
    as they are on disk, uncommitted changes included:
    what a copy of this checkout without ``.git`` is checked against. Make it right before
    copying; an edit after it leaves the copy's commit unnamed (never misnamed).

    Raises:
        RuntimeError: If ``checkout`` is not in a git checkout.
    """
    where = Path(checkout if checkout is not None else __file__).resolve()
    code = code_version(where)
    top = _git(where if where.is_dir() else where.parent, "rev-parse", "--show-toplevel")
    if not code or not top or code.get("commit") is None:
        raise RuntimeError(f"{where} is not in a git checkout: nothing to stamp")
    root = _code_root(where if where.is_dir() else where.parent, top)
    out = root / STAMP_FILE
    out.write_text(json.dumps({**code, "files": _file_trees(root)}, indent=2) + "\n")
    return out


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


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["stamp"]:
        raise SystemExit(
            "usage: python -m skin_lesion.provenance stamp\n"
            f"  writes {STAMP_FILE} at the checkout's root, for copies without .git"
        )
    written = stamp(Path.cwd())
    print(f"wrote {written}")
