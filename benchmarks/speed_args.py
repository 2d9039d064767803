"""The command line of ``benchmarks/speed.py`` (see its docstring), apart from the script:
it imports neither torch nor timm, so that ``benchmarks/gpu_settings.py`` checks gpu.sh's
``SPEED_ARGS`` with the script's own parser in about a second."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from benchmarks.cli import image_size

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks/results"
DESCRIPTION = (
    "Training-step throughput on HAM10000: the compute limit, a conventional DataLoader, ours."
)


def default_workers() -> int:
    """The conventional loader's default workers: every core this process may run on but one
    (for the training loop itself), as a loader tuned for the machine would take."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; ``--child`` and ``--cache-dir`` are internal.

    Raises:
        SystemExit: Through ``parser.error``, for a ``--cache`` that is not HxW.
    """
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--encoder", default="efficientnet_b0")
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--cache", default="256x341", help="HxW of the cached images")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/ham10000_200x150")
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="DataLoader workers of the conventional pipeline (default: the cores this "
        "process may use, less one)",
    )
    parser.add_argument("--images", type=int, default=0, help="use N images (0: all)")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)"
    )
    parser.add_argument(
        "--cudnn-benchmark",
        action="store_true",
        help="on CUDA, let cuDNN pick its fastest kernels per shape (torch.backends.cudnn."
        "benchmark, as timm's train.py sets it), in every feed: to measure before adopting it",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where to write")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # Checked here, not after the images are listed: a bad size failed in build_cache.
    args.cache_hw = image_size(parser, "--cache", args.cache)
    args.cache = "x".join(map(str, args.cache_hw))  # as recorded and compared: 256x341
    return args
