"""Inference throughput: a trained classifier on a folder of images, as `skin-lesion predict` runs.

Usage (after a training and reporting run, e.g. `kedro run --env cpu_quick`, or a kept run of
benchmarks/accuracy.py):
    python benchmarks/inference_speed.py --data-dir data/cpu_quick
        [--images DIR] [--metadata CSV] [--tta default none] [--repeats 2]
        [--batch-size N] [--device auto] [--chunk-size 2048]
        [--out benchmarks/results/inference_speed.json]

Classifies every image in ``--images`` (default ``HAM10000_images_part_1`` of
../shared/data/ham10000_200x150: 5,000 images) with ``--data-dir``'s
``06_models/classifier.pt`` and the operating point of its ``08_reporting/test_metrics.json``,
through ``skin_lesion.inference.predict_images``, the function behind both
``skin-lesion predict`` and the inference pipeline. A classifier trained with metadata fusion
gets ``--metadata`` (default: the ``HAM10000_metadata.csv`` beside the images' folder).

Each TTA setting (``default``: the operating point's, the one ``predict`` uses unless told
otherwise; ``none``; ``flips``; ``dihedral``) runs ``--repeats`` times, each in a fresh
process so that its memory peaks are its own, and the fastest run counts. Per run:

* ``classify s``: ``predict_images`` alone (decode, preprocess, forward passes, calibration),
  after the checkpoint is loaded; ``img/s`` is images over that;
* ``decode s``: the decoding and resizing part, timed in a separate call afterwards;
* ``end to end s``: the whole process, Python and torch start-up included, less that separate
  decode pass, as a user running ``skin-lesion predict`` waits (``process_s`` keeps the whole;
  results from before 2026-12-06 have no ``process_s``: the decode pass, then timed before
  ``predict_images``, is inside their end to end);
* malloc: as ``skin-lesion predict`` runs, each process first asks glibc to keep freed
  memory for the next batch (``skin_lesion.host_memory``; ``SKIN_LESION_MALLOC=system`` to
  measure without);
* host peak: the process's resident-memory high-water mark (``VmHWM``); GPU peak:
  ``torch.cuda.max_memory_allocated``.

Results go to a JSON file and a markdown table (FILE with ``.md``), also printed. A file there
made with other settings (classifier, images folder, TTA settings, repeats, batch and chunk
sizes, device, malloc) is refused before any measurement: ``--out`` keeps both.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: `benchmarks` is not on the path
    sys.path.insert(0, str(ROOT))

from benchmarks.overwrite import check_not_overwriting  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "ham10000_200x150"
TTAS = ("default", "none", "flips", "dihedral")
MIB = 2**20
OUT = ROOT / "benchmarks" / "results" / "inference_speed.json"


def _peak_host_mib() -> int | None:
    """The process's peak resident memory (VmHWM) in whole MiB; None off Linux."""
    from skin_lesion.host_memory import peak_resident_mib

    peak = peak_resident_mib()
    return None if peak is None else round(peak)


def measure(args: argparse.Namespace, tta: str) -> dict[str, Any]:
    """One run in this process: decode once alone, then classify every image."""
    import torch

    from skin_lesion.checkpoints import load_checkpoint
    from skin_lesion.config import from_dict
    from skin_lesion.engine import resolve_device
    from skin_lesion.host_memory import keep_freed_memory
    from skin_lesion.images import IMAGE_SUFFIXES, build_image_cache
    from skin_lesion.inference import (
        InferenceConfig,
        batch_size_for,
        chunked,
        file_loaders,
        predict_images,
    )
    from skin_lesion.preprocessing import PreprocessConfig
    from skin_lesion.tabular import read_text_csv

    malloc_kept = keep_freed_memory()  # as skin-lesion predict does first
    device = resolve_device(args.device)
    checkpoint = load_checkpoint(args.data_dir / "06_models" / "classifier.pt")
    metrics = json.loads((args.data_dir / "08_reporting" / "test_metrics.json").read_text())
    # The images alone: a HAM10000 folder also holds its metadata CSV, which
    # skin-lesion predict would list in its rejects as left out.
    loaders = {
        name: load
        for name, load in file_loaders([str(args.images)]).items()
        if name.lower().endswith(IMAGE_SUFFIXES)
    }
    fuses = bool(checkpoint.get("metadata_encoder"))
    metadata = read_text_csv(args.metadata, str(args.metadata)) if fuses else None
    prep = from_dict(PreprocessConfig, checkpoint["preprocessing"]["cache"], "cache")
    config = InferenceConfig(
        tta=None if tta == "default" else tta,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size or None,
        progress=False,
    )
    names = list(loaders)
    if device.type == "cuda":
        # Untimed: the process's one-time CUDA start (context, cuDNN and cuBLAS handles, lazily
        # loaded kernels), a second or more that is no per-image work (end_to_end_s keeps it).
        first = dict(list(loaders.items())[: batch_size_for(config, device)])
        predict_images(
            checkpoint, metrics["operating_point"], first, device=device, config=config,
            metadata=metadata,
        )  # fmt: skip
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    predictions, rejects, _ = predict_images(
        checkpoint, metrics["operating_point"], loaders, device=device, config=config,
        metadata=metadata,
    )  # fmt: skip
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    classify = time.perf_counter() - start
    # After predict_images, so that it reads the files as a user's run does; run_isolated
    # takes this pass out of the end-to-end time.
    start = time.perf_counter()
    for part in chunked(names, config.chunk_size):  # in parts, as predict_images decodes
        build_image_cache({names[i]: loaders[names[i]] for i in part}, prep, progress=False)
    decode = time.perf_counter() - start
    return {
        "images": len(predictions),
        "rejected": len(rejects),
        "tta": str(predictions["tta"].iloc[0]) if len(predictions) else tta,
        "metadata": fuses,
        "decode_s": round(decode, 3),
        "classify_s": round(classify, 2),
        "img_per_s": round(len(predictions) / classify, 1),
        "host_peak_mib": _peak_host_mib(),
        "gpu_peak_mib": (
            round(torch.cuda.max_memory_allocated(device) / MIB) if device.type == "cuda" else None
        ),
        "device": str(device),
        "batch_size": batch_size_for(config, device),
        "chunk_size": config.chunk_size,
        "malloc_kept": malloc_kept,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }


def run_isolated(args: argparse.Namespace, tta: str) -> dict[str, Any]:
    """``measure`` in a fresh process; adds the process's whole wall time (``process_s``) and
    that less the separate decode pass ``skin-lesion predict`` does not make
    (``end_to_end_s``)."""
    command = [
        sys.executable, __file__, f"--child={tta}", f"--data-dir={args.data_dir}",
        f"--images={args.images}", f"--metadata={args.metadata}",
        f"--device={args.device}", f"--chunk-size={args.chunk_size}",
    ]  # fmt: skip
    if args.batch_size is not None:
        command.append(f"--batch-size={args.batch_size}")
    start = time.perf_counter()
    # stdout is the result; stderr is kept so that a failure is reported by its last line (the
    # error itself) rather than as this process's CalledProcessError traceback.
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    process = time.perf_counter() - start
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise SystemExit(
            f"inference_speed.py: the --tta {tta} run failed (exit {done.returncode}): {last}"
        )
    sys.stderr.write(done.stderr)  # its warnings, as when they passed through
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = round(process, 2)
    result["end_to_end_s"] = round(process - result["decode_s"], 2)
    return result


def describe(args: argparse.Namespace) -> dict[str, Any]:
    """What was measured: the checkpoint, its operating point, the images."""
    from skin_lesion.checkpoints import load_checkpoint, state_fingerprint
    from skin_lesion.provenance import code_version, cpu_name

    checkpoint = load_checkpoint(args.data_dir / "06_models" / "classifier.pt")
    metrics = json.loads((args.data_dir / "08_reporting" / "test_metrics.json").read_text())
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "code": code_version(ROOT),
        "encoder": checkpoint["architecture"]["encoder"],
        "crop": checkpoint["preprocessing"]["crop_size"],
        "classifier_sha256": state_fingerprint(checkpoint),
        "operating_point_tta": metrics["operating_point"].get("tta", "none"),
        "images_dir": str(args.images),
        "batch_size": args.batch_size,
        "repeats": args.repeats,
    }


def planned_settings(args: argparse.Namespace, described: dict[str, Any]) -> dict[str, Any]:
    """The settings a run records, as :func:`comparable_settings` reads them from a file.

    Args:
        args: The parsed command line (``--tta``, ``--chunk-size``, ``--device``).
        described: :func:`describe`'s record: the machine, the classifier, the images folder.

    Returns:
        Everything the result records that makes it another measurement (not its code).
    """
    import torch

    from skin_lesion.engine import resolve_device
    from skin_lesion.host_memory import keep_freed_memory

    device = resolve_device(args.device)
    planned = {k: v for k, v in described.items() if k != "code"}
    return planned | {
        # The folder, wherever it is mounted (a GPU machine has its own copy).
        "images_dir": Path(described["images_dir"]).name,
        "tta": list(args.tta),
        "chunk_size": args.chunk_size or None,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        # The children ask the same of the same environment, so this answer is theirs.
        "malloc_kept": keep_freed_memory(),
    }


def comparable_settings(result: dict[str, Any]) -> dict[str, Any]:
    """A result file's settings: its description, the TTA settings asked for, and the rest
    from its first row where the row records them (older files lack some: unknown)."""
    settings = {k: v for k, v in result.items() if k not in ("code", "rows")}
    if "images_dir" in settings:
        settings["images_dir"] = Path(settings["images_dir"]).name
    rows = result.get("rows") or []
    if rows:
        settings["tta"] = [row.get("asked") for row in rows]
        settings |= {
            k: rows[0][k] for k in ("chunk_size", "device", "gpu", "malloc_kept") if k in rows[0]
        }
    return settings


def markdown(result: dict[str, Any]) -> str:
    """The table the README quotes."""
    rows = result["rows"]
    first = rows[0]
    where = f"{first['gpu']} ({first['device']})" if first["gpu"] else f"CPU {result['cpu']}"
    lines = [
        f"Inference on {where}, {result['cores']} cores: {result['encoder']} at "
        f"{result['crop']} px (classifier `{result['classifier_sha256'][:12]}`"
        f"{', metadata fusion' if first['metadata'] else ''}), "
        f"{first['images']:,} images of `{Path(result['images_dir']).name}`, batch "
        f"{first.get('batch_size', result['batch_size'])}"
        + (
            f", decoded and classified {first['chunk_size']:,} at a time"
            if first.get("chunk_size")
            else (", all decoded at once" if "chunk_size" in first else "")
        )
        + f"; fastest of {result['repeats']} "
        "runs, each in a fresh process"
        + (
            ", malloc keeping freed memory as `skin-lesion predict`"
            if first.get("malloc_kept")
            else ""
        )
        + "; "
        f"code `{(result['code'] or {}).get('commit', '?')[:10]}`.",
        "",
        "| TTA (views) | classify s | img/s | decode s (timed alone) "
        + (
            "| end to end s (start-up incl., decode pass excl.) "
            if "process_s" in first
            else "| end to end s (start-up incl.) "
        )
        + "| host peak MiB | GPU peak MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    views = {"none": 1, "flips": 4, "dihedral": 8}
    for r in rows:
        label = r["tta"] + (" (the operating point's)" if r["asked"] == "default" else "")
        gpu = "-" if r["gpu_peak_mib"] is None else f"{r['gpu_peak_mib']:,}"
        lines.append(
            f"| {label}, {views.get(r['tta'], '?')} | {r['classify_s']} | {r['img_per_s']:,} "
            f"| {r['decode_s']} | {r['end_to_end_s']} | {r['host_peak_mib']:,} | {gpu} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--child``, one measurement), write JSON and markdown."""
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--images", type=Path, default=DATA / "HAM10000_images_part_1")
    parser.add_argument("--metadata", type=Path, help="default: beside --images' folder")
    parser.add_argument("--tta", nargs="+", choices=TTAS, default=["default", "none"])
    parser.add_argument("--repeats", type=int, default=2, help="runs of each; the fastest counts")
    parser.add_argument(
        "--batch-size", type=int, help="default: predict's own (64 on a GPU, 16 on a CPU)"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=2048,
        help="images decoded and classified at a time (inference.chunk_size; 0: all at once)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--child", choices=TTAS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    args.metadata = args.metadata or args.images.parent / "HAM10000_metadata.csv"
    if args.child:
        print(json.dumps(measure(args, args.child)))
        return 0
    for path, what in [
        (args.data_dir / "06_models" / "classifier.pt", "classifier checkpoint"),
        (
            args.data_dir / "08_reporting" / "test_metrics.json",
            "test_metrics.json from the reporting",
        ),
    ]:
        if not path.is_file():
            raise SystemExit(f"no {what} at '{path}': pass --data-dir a trained run's data folder")
    if not args.images.is_dir():
        raise SystemExit(f"--images '{args.images}' is not a folder")
    result = describe(args)
    check_not_overwriting(
        args.out, planned_settings(args, result), flag="--out", recorded=comparable_settings
    )
    rows = []
    for tta in args.tta:
        runs = [run_isolated(args, tta) for _ in range(args.repeats)]
        rows.append({**min(runs, key=lambda r: r["classify_s"]), "asked": tta})
        print(f"{tta}: {[r['classify_s'] for r in runs]} s", file=sys.stderr)
    result["rows"] = rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    args.out.with_suffix(".md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
