"""Preprocessing throughput: our parallel decode into the image cache vs a plain PIL loop.

Usage:
    python benchmarks/preprocessing_speed.py [--real DIR] [--images N] [--out FILE]

Measures images/s of ``build_image_cache`` (all cores) against a single-threaded
``PIL.Image.open -> convert('RGB') -> resize`` loop, at the default cache size (256x341),
on (a) the HAM10000 JPEGs in DIR (default ../shared/data/ham10000_200x150, skipped when
absent) and (b) full-size 600x450 JPEGs made by the demo generator. Results go to a JSON
file and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from PIL import Image

from skin_lesion.demo import generate_demo_dataset
from skin_lesion.images import PreprocessConfig, build_image_cache

ROOT = Path(__file__).resolve().parents[1]


def _files(folder: Path, limit: int) -> list[Path]:
    return sorted(p for p in folder.rglob("*.jpg"))[:limit]


def _ours(files: list[Path], config: PreprocessConfig) -> float:
    loaders = {p.stem: p.read_bytes for p in files}
    start = time.perf_counter()
    cache, failures = build_image_cache(loaders, config, progress=False)
    seconds = time.perf_counter() - start
    assert not failures and len(cache.image_ids) == len(files), failures
    return len(files) / seconds


def _pil_loop(files: list[Path], config: PreprocessConfig) -> float:
    start = time.perf_counter()
    for path in files:
        with Image.open(path) as img:
            img.convert("RGB").resize((config.width, config.height), Image.BILINEAR)
    return len(files) / (time.perf_counter() - start)


def _measure(name: str, files: list[Path], config: PreprocessConfig) -> dict:
    with Image.open(files[0]) as img:
        size = f"{img.width}x{img.height}"
    _pil_loop(files[:50], config)  # warm the page cache and libraries
    pil = _pil_loop(files, config)
    ours = _ours(files, config)
    return {
        "data": name,
        "images": len(files),
        "source_size": size,
        "cache_size": f"{config.width}x{config.height}",
        "ours_img_per_s": round(ours, 1),
        "pil_loop_img_per_s": round(pil, 1),
        "speedup": round(ours / pil, 2),
    }


def main() -> None:
    """Run the benchmark and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=ROOT.parent / "shared/data/ham10000_200x150")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/preprocessing.json")
    args = parser.parse_args()
    config = PreprocessConfig()
    rows = []
    if args.real.is_dir():
        rows.append(_measure(f"HAM10000 {args.real.name}", _files(args.real, args.images), config))
    with tempfile.TemporaryDirectory() as tmp:
        generate_demo_dataset(tmp, n_images=min(args.images, 1000), seed=0, size=(600, 450))
        rows.append(_measure("demo 600x450 JPEG", _files(Path(tmp), args.images), config))
    result = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['cores']} cores ({result['cpu']})\n")
    print(
        "| data | images | source | cache | ours (img/s) | PIL loop, 1 thread (img/s) | speed-up |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['data']} | {r['images']} | {r['source_size']} | {r['cache_size']} | "
            f"{r['ours_img_per_s']} | {r['pil_loop_img_per_s']} | {r['speedup']}x |"
        )


if __name__ == "__main__":
    main()
