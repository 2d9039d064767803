"""Training and evaluation throughput on a CPU with glibc's malloc as it is and as the
pipelines set it (``skin_lesion.host_memory.keep_freed_memory``).

Each measurement runs in a fresh Python process, as a ``kedro run`` does, since glibc adapts
its mmap threshold to what a process has freed before: ``system`` leaves malloc alone
(``SKIN_LESION_MALLOC=system``), ``kept`` calls ``keep_freed_memory()`` first. The model is
the encoder at ``--crop`` px in channels_last with a linear head; inputs are random tensors
already in memory (no augmentation), so the figures are the model's steps alone:

* ``train B``: AdamW steps of cross-entropy at batch B (``cpu_quick`` trains the classifier
  at 32, SupCon at 64 images = 128 views);
* ``eval``: forward passes without gradients at the CPU's batch of 16, in a process that
  has not trained, as in the reporting pipeline and ``skin-lesion predict``.

The variants alternate within each round; the table gives the median over ``--rounds`` and
each process's peak resident memory (VmHWM). Results go to
``benchmarks/results/host-allocator-cpu-<crop>px.{json,md}`` (``--results-dir``); a file there
made with another encoder, batches, steps, warm-up or rounds is refused before any measurement.

    python benchmarks/host_allocator.py                       # Lite0 at 128 px, 3 rounds
    python benchmarks/host_allocator.py --encoder efficientnet_b0 --crop 224 --train-batches 32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: `benchmarks` is not on the path
    sys.path.insert(0, str(ROOT))

from benchmarks.overwrite import check_not_overwriting  # noqa: E402

VARIANTS = ("system", "kept")


def child(variant: str, task: str, args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in this (fresh) process: ``task`` is ``train:B`` or ``eval``."""
    import timm
    import torch

    from skin_lesion import engine
    from skin_lesion.host_memory import keep_freed_memory, peak_resident_mib

    applied = keep_freed_memory() if variant == "kept" else False
    if variant == "kept" and not applied:
        raise SystemExit("host_allocator.py: keep_freed_memory() left malloc alone here")
    torch.manual_seed(0)
    device = torch.device("cpu")
    model = timm.create_model(args.encoder, num_classes=7, pretrained=False)
    engine.place_model(model, device, True)
    if task == "eval":
        batch, steps = args.eval_batch, args.eval_steps
        model.eval()
        x = torch.randn(batch, 3, args.crop, args.crop)

        def step() -> None:
            with torch.no_grad():
                model(x)
    else:
        batch, steps = int(task.split(":")[1]), args.steps
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        x = torch.randn(batch, 3, args.crop, args.crop)
        y = torch.randint(0, 7, (batch,))

        def step() -> None:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    for _ in range(args.warmup):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - started
    peak = peak_resident_mib()
    return {
        "img_per_s": round(batch * steps / seconds, 1),
        "peak_host_mib": None if peak is None else round(peak, 1),
        "applied": applied,
    }


def run_child(variant: str, task: str, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ)
    src = str(ROOT / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    if variant == "system":
        env["SKIN_LESION_MALLOC"] = "system"
    else:
        env.pop("SKIN_LESION_MALLOC", None)
    command = [sys.executable, __file__, "--child", variant, task, *args.passed]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"host_allocator.py: {variant} {task} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(result: dict[str, Any]) -> str:
    from skin_lesion.provenance import describe_code

    s = result["settings"]
    lines = [
        f"CPU {result['device']}, {result['torch_threads']} torch threads: {s['encoder']} at "
        f"{s['crop']} px, channels_last, float32, random inputs in memory; "
        f"{s['steps']} train / {s['eval_steps']} eval steps after {s['warmup']} warm-up, each "
        f"in a fresh process, median of {s['rounds']} rounds (variants alternating); torch "
        f"{result['torch']}; {describe_code(result['code'])}.",
        "",
        "| task | img/s, malloc as it is | img/s, freed memory kept | speed-up "
        "| peak host MiB (as it is / kept) |",
        "|---|---|---|---|---|",
    ]
    for task, row in result["tasks"].items():
        system, kept = row["system"], row["kept"]
        name = (
            f"train, batch {task.split(':')[1]}"
            if task != "eval"
            else (f"eval, batch {s['eval_batch']}")
        )
        lines.append(
            f"| {name} | {system['img_per_s']:,.1f} | {kept['img_per_s']:,.1f} "
            f"| {kept['img_per_s'] / system['img_per_s']:.2f}x "
            f"| {system['peak_host_mib']:,.0f} / {kept['peak_host_mib']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoder", default="tf_efficientnet_lite0")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--train-batches", default="32,128", help="comma-separated")
    parser.add_argument("--eval-batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6, help="timed training steps")
    parser.add_argument("--eval-steps", type=int, default=40, help="timed eval batches")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results-dir", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "TASK"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.batches = [int(b) for b in args.train_batches.split(",") if b]
    except ValueError:
        parser.error(f"--train-batches must be integers, got {args.train_batches!r}")
    small = [
        n for n in ("crop", "eval_batch", "steps", "eval_steps", "rounds") if getattr(args, n) < 1
    ]
    if small or args.warmup < 0 or any(b < 1 for b in args.batches):
        parser.error("batches, --crop, --steps, --eval-steps and --rounds must be at least 1")
    # What the children get: every option but --results-dir and --rounds.
    args.passed = [
        "--encoder",
        args.encoder,
        "--crop",
        str(args.crop),
        "--eval-batch",
        str(args.eval_batch),
        "--steps",
        str(args.steps),
        "--eval-steps",
        str(args.eval_steps),
        "--warmup",
        str(args.warmup),
    ]
    return args


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    """The settings a result records (the file name holds the crop alone)."""
    return {
        "encoder": args.encoder,
        "crop": args.crop,
        "train_batches": args.batches,
        "eval_batch": args.eval_batch,
        "steps": args.steps,
        "eval_steps": args.eval_steps,
        "warmup": args.warmup,
        "rounds": args.rounds,
    }


def comparable_settings(result: dict[str, Any]) -> dict[str, Any]:
    """A result file's settings, its training batches read from its tasks where the settings
    do not list them (older files)."""
    settings = dict(result.get("settings") or {})
    tasks = result.get("tasks") or {}
    if "train_batches" not in settings and tasks:
        settings["train_batches"] = [int(t.split(":")[1]) for t in tasks if t.startswith("train:")]
    return settings


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    """Measure both malloc variants on every task, each in a fresh process; write the results.

    Raises:
        SystemExit: Before any measurement, where the result file there was made with other
            settings; off Linux; where a measurement's process fails.
    """
    args = parse_args(argv)
    if args.child:
        variant, task = args.child
        print(json.dumps(child(variant, task, args)))
        return None
    stem = f"host-allocator-cpu-{args.crop}px"
    check_not_overwriting(
        args.results_dir / f"{stem}.json",
        settings_of(args),
        flag="--results-dir",
        recorded=comparable_settings,
    )
    if platform.system() != "Linux":
        raise SystemExit("host_allocator.py: glibc's malloc is only on Linux")
    import torch

    from skin_lesion.provenance import code_version, cpu_name

    tasks = [f"train:{b}" for b in args.batches] + ["eval"]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        task: {v: [] for v in VARIANTS} for task in tasks
    }
    for round_ in range(args.rounds):
        for task in tasks:
            order = VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                runs[task][variant].append(run_child(variant, task, args))
                print(
                    f"[host_allocator] round {round_} {task} {variant}: {runs[task][variant][-1]}"
                )
    result = {
        "device": cpu_name(),
        "settings": settings_of(args),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "code": code_version(),
        "tasks": {
            task: {
                variant: {
                    "img_per_s": statistics.median(r["img_per_s"] for r in rows),
                    "peak_host_mib": statistics.median(r["peak_host_mib"] or 0 for r in rows),
                    "runs": rows,
                }
                for variant, rows in by_variant.items()
            }
            for task, by_variant in runs.items()
        },
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (args.results_dir / f"{stem}.md").write_text(table)
    print(table)
    return result


if __name__ == "__main__":
    main()
