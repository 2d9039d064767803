"""Preprocessing throughput: data_processing's decode step vs a single-threaded PIL loop.

Usage:
    python benchmarks/preprocessing_speed.py [--real DIR | --no-real] [--images N]
        [--cache 256x341] [--repeats 3] [--out FILE]

Measures images/s and peak host memory of ``decode_images`` (the data_processing node:
decode and EXIF orientation with Pillow, cover-resize and centre-crop with OpenCV into one
preallocated uint8 array, on a thread per core) against a single-threaded
``PIL.Image.open -> convert('RGB') -> resize`` loop that fills the same uint8 array, at the
default cache size (256x341, HxW), on three sets of JPEGs:

* the real HAM10000 JPEGs in DIR (default ../shared/data/ham10000_200x150; a missing or
  empty DIR is an error, ``--no-real`` leaves these two rows out), as they are (200x150);
* the same real images upscaled x3 (bicubic) to 600x450, HAM10000's original size, saved as
  JPEG quality ``UPSCALE_QUALITY`` in a temporary folder: real content at the original pixel
  count, though smoother than the originals (so slightly cheaper to decode);
* 600x450 JPEGs made by the demo generator (``skin_lesion.demo``): synthetic cartoons.

Peak host memory is the process's resident-memory high-water mark (``VmHWM``) during one
measurement, after resetting it through ``/proc/self/clear_refs``, minus the resident memory
just before it: what the measurement itself added (mostly the output array). glibc's malloc
is held at its initial mmap threshold (:func:`fix_mmap_threshold`): left to adapt, it raises
the threshold to the size of the largest block freed, after which smaller arrays come from
heap memory an earlier measurement left resident, and a small ``--images`` run read too low a
peak (about nothing) after the first. The first 50
images go through the PIL loop once beforehand (libraries loaded). The two methods then
alternate ``--repeats`` times and the fastest run of each counts: other work on the machine
only slows runs down, and after the first run every file is in the page cache for both.
Results go to a JSON file and a markdown table (FILE with ``.md``), also printed; a file there
measured with other settings (images a row, cache size, repeats, CPU) is refused before any
measurement: ``--out`` keeps both. ``--images`` is at least the demo generator's minimum.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from skin_lesion.demo import MIN_IMAGES, generate_demo_dataset
from skin_lesion.pipelines.data_processing.nodes import decode_images
from skin_lesion.provenance import code_version, cpu_name, describe_code

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: `benchmarks` is not on the path
    sys.path.insert(0, str(ROOT))

from benchmarks.cli import image_size  # noqa: E402
from benchmarks.overwrite import check_not_overwriting  # noqa: E402

REAL, UPSCALED, DEMO = "HAM10000 (real)", "HAM10000 upscaled x3", "demo generator"
FULL_SIZE = (600, 450)
UPSCALE_QUALITY = 95
WARM_IMAGES = 50
MAX_FULL_SIZE_IMAGES = 1000


def _files(folder: Path, limit: int) -> list[Path]:
    return sorted(folder.rglob("*.jpg"))[:limit]


def _proc_kib(path: str, key: str) -> int | None:
    """A ``key:  N kB`` line of a /proc file, in KiB; None off Linux."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


M_MMAP_THRESHOLD = -3  # glibc's malloc.h
MMAP_THRESHOLD = 128 * 1024  # glibc's initial (and minimum dynamic) threshold


def fix_mmap_threshold() -> bool:
    """Serve every allocation of 128 KiB or more with its own ``mmap``, returned on free, as
    glibc does before its first large free: setting the threshold turns off its dynamic
    adjustment (see the module). False, and nothing done, off glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    return bool(ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def _with_peak_memory(run: Callable[[], Any]) -> tuple[float, int | None]:
    """Seconds that ``run()`` took and the MiB its peak resident memory rose above the start."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        before = _proc_kib("/proc/self/status", "VmRSS")
    except OSError:  # not Linux: no peak to report
        before = None
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    peak = _proc_kib("/proc/self/status", "VmHWM")
    del result
    if before is None or peak is None:
        return seconds, None
    return seconds, round((peak - before) / 1024)


def _pil_loop(files: list[Path], height: int, width: int) -> np.ndarray:
    out = np.empty((len(files), height, width, 3), dtype=np.uint8)
    for row, path in enumerate(files):
        with Image.open(path) as img:
            out[row] = np.asarray(img.convert("RGB").resize((width, height), Image.BILINEAR))
    return out


def _ours(files: list[Path], height: int, width: int) -> Any:
    raw_images = {str(p): p.read_bytes for p in files}
    metadata = pd.DataFrame({"image_id": [p.stem for p in files], "file": list(raw_images)})
    params = {"preprocessing": {"height": height, "width": width}}
    cache, _, rejections = decode_images(raw_images, metadata, params)
    if len(rejections) or len(cache.image_ids) != len(files):
        raise RuntimeError(f"decode_images rejected images: {rejections.head()}")
    return cache


def measure(name: str, files: list[Path], height: int, width: int, repeats: int) -> dict[str, Any]:
    """Both methods on ``files``, alternating, ``repeats`` times: the fastest of each run."""
    with Image.open(files[0]) as img:
        size = f"{img.width}x{img.height}"
    _pil_loop(files[:WARM_IMAGES], height, width)  # page cache and libraries warm
    pil, ours = [], []
    for _ in range(repeats):
        pil.append(_with_peak_memory(lambda: _pil_loop(files, height, width)))
        ours.append(_with_peak_memory(lambda: _ours(files, height, width)))
    (pil_s, pil_mib), (ours_s, ours_mib) = min(pil), min(ours)
    return {
        "data": name,
        "images": len(files),
        "source_size": size,
        "mean_file_kib": round(np.mean([p.stat().st_size for p in files]) / 1024, 1),
        "cache_size": f"{height}x{width}",
        "ours_img_per_s": round(len(files) / ours_s, 1),
        "pil_loop_img_per_s": round(len(files) / pil_s, 1),
        "speedup": round(pil_s / ours_s, 2),
        "repeats": repeats,
        "ours_peak_mib": ours_mib,
        "pil_loop_peak_mib": pil_mib,
    }


def upscale(files: list[Path], folder: Path) -> list[Path]:
    """Bicubic x3 copies of ``files`` at 600x450 in ``folder``, as JPEG."""
    out = []
    for path in files:
        target = folder / path.name
        with Image.open(path) as img:
            img.convert("RGB").resize(FULL_SIZE, Image.BICUBIC).save(
                target, quality=UPSCALE_QUALITY
            )
        out.append(target)
    return out


def markdown(result: dict[str, Any]) -> str:
    """The table the README quotes."""
    lines = [
        f"{result['cpu']}, {result['cores']} cores; cache {result['rows'][0]['cache_size']} (HxW); "
        f"fastest of {result['rows'][0]['repeats']} alternating runs; peak = rise of the "
        "process's peak RSS during a run (both build the same uint8 array)"
        + (f"; {describe_code(result['code'])}." if result.get("code") else "."),
        "",
        "| data | images | source | mean file (KiB) | ours (img/s) | PIL loop, 1 thread (img/s) "
        "| speed-up | ours peak (MiB) | PIL loop peak (MiB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['data']} | {r['images']:,} | {r['source_size']} | {r['mean_file_kib']} "
            f"| {r['ours_img_per_s']:,} | {r['pil_loop_img_per_s']:,} | {r['speedup']}x "
            f"| {r['ours_peak_mib']} | {r['pil_loop_peak_mib']} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, checked before any work: ``--cache`` as HxW (``args.cache_hw``),
    ``--images`` at least the demo generator's minimum, ``--repeats`` at least 1.

    Raises:
        SystemExit: Through ``parser.error``, naming the option, its value and what it takes.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=ROOT.parent / "shared/data/ham10000_200x150")
    parser.add_argument(
        "--no-real", action="store_true", help="measure the demo generator's images only"
    )
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--cache", default="256x341", help="HxW of the cached images")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each; the fastest counts")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/preprocessing.json")
    args = parser.parse_args(argv)
    args.cache_hw = image_size(parser, "--cache", args.cache)
    # The demo rows, made in every run, take min(--images, MAX_FULL_SIZE_IMAGES) images: fewer
    # than the generator's minimum failed only after the real rows were measured.
    if args.images < MIN_IMAGES:
        parser.error(
            f"--images must be at least {MIN_IMAGES} (the demo generator's minimum, for its "
            f"rows), got {args.images}"
        )
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    return args


def comparable_settings(result: dict[str, Any]) -> dict[str, Any]:
    """A result file's settings, read from its rows: the images of each, the cache size and
    the repeats; and the CPU."""
    settings = {k: result[k] for k in ("cpu", "cores") if k in result}
    rows = result.get("rows") or []
    if rows:
        settings["images"] = {row["data"]: row["images"] for row in rows}
        settings["cache"] = rows[0]["cache_size"]
        settings["repeats"] = rows[0]["repeats"]
    return settings


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, write JSON and markdown, print the table."""
    logging.basicConfig(level=logging.WARNING)
    args = parse_args(argv)
    height, width = args.cache_hw
    full = min(args.images, MAX_FULL_SIZE_IMAGES)
    real = [] if args.no_real else _files(args.real, args.images)
    if not args.no_real and not real:
        raise SystemExit(
            f"--real {args.real}: no .jpg files there (is it a HAM10000 folder?); pass the "
            "folder of your download, or --no-real to measure the demo images only"
        )
    images = {REAL: len(real), UPSCALED: len(real[:full])} if real else {}
    planned = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "images": images | {DEMO: full},
        "cache": f"{height}x{width}",
        "repeats": args.repeats,
    }
    check_not_overwriting(args.out, planned, flag="--out", recorded=comparable_settings)
    if not fix_mmap_threshold():
        print("warning: not glibc: peak memory may read low after the first run", file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if real:
            rows.append(measure(REAL, real, height, width, args.repeats))
            upscaled = upscale(real[:full], Path(tmp))
            rows.append(measure(UPSCALED, upscaled, height, width, args.repeats))
        demo = Path(tmp) / "demo"
        generate_demo_dataset(demo, n_images=full, seed=0, size=FULL_SIZE)
        rows.append(measure(DEMO, _files(demo, full), height, width, args.repeats))
    result = {"cpu": cpu_name(), "cores": os.cpu_count(), "code": code_version(ROOT), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    args.out.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
