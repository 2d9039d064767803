"""What one batch of training augmentation costs: ours against kornia's AugmentationSequential.

On a GPU the training step waits on the host whenever the host cannot queue kernels as fast
as the device runs them, and a host sync (``.item()``, a data-dependent shape) stops the
queue altogether. So for the same augmentation, on the same batch, on one device, this
records:

* ``aten_ops``: tensor operations one batch issues (PyTorch profiler, nested calls
  included), and whether that number grows with the batch (a loop over samples);
* ``syncs``: operations among them that wait for the device on CUDA (``item``,
  ``_local_scalar_dense``, ``nonzero``, ``is_nonzero``);
* ``host_ms``: median wall time of the call without waiting for the device (on a CPU this
  is the whole cost; on CUDA it is the time the host is busy queueing);
* ``device_ms``: median wall time with the device synchronised after the call.

``ours`` is ``skin_lesion.augment.TrainAugment``; ``kornia`` is the same augmentation as
``kornia.augmentation.AugmentationSequential`` (random resized crop, flips, ``RandomAffine``
rotation with the same padding, ``ColorJitter``, ``RandomGaussianBlur``; ``same_on_batch=False``),
the project's augmentation before it was replaced. Both read their knobs from
``conf/base/parameters_{contrastive_pretraining,classifier_training}.yml`` (``--crop``
overrides the crop). The process first calls ``skin_lesion.host_memory.keep_freed_memory``, as
every ``kedro run`` does (``SKIN_LESION_MALLOC=system``: malloc as it is). kornia comes with
the test dependencies (``pip install -e ".[test]"``).

    python benchmarks/augment_cost.py                          # 128 x 256x341 -> 224, auto device
    python benchmarks/augment_cost.py --batch 32 --cache 120x160 --crop 96 --device cpu

Writes ``augment-cost-<device>-<batch>x<crop>.{json,md}`` to ``--results-dir``; a file there
measured with another cache, repeats or malloc setting is refused before anything is measured.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from torch.profiler import ProfilerActivity, profile

from skin_lesion import engine
from skin_lesion.augment import AugmentConfig, build_train_augment
from skin_lesion.config import from_dict
from skin_lesion.host_memory import keep_freed_memory
from skin_lesion.provenance import code_version, cpu_name, describe_code, device_slug

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: `benchmarks` is not on the path
    sys.path.insert(0, str(ROOT))

from benchmarks.cli import image_size  # noqa: E402
from benchmarks.overwrite import check_not_overwriting  # noqa: E402

CONF = ROOT / "conf" / "base"
STAGES = {"supcon": "contrastive_pretraining", "classifier": "classifier_training"}
SYNCING_OPS = ("aten::item", "aten::_local_scalar_dense", "aten::nonzero", "aten::is_nonzero")
# ImageNet's statistics: the normalisation is the same for both and does not change the cost.
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def stage_config(stage: str, crop: int) -> AugmentConfig:
    """The stage's augmentation from conf/base, with the crop overridden."""
    group = STAGES[stage]
    params = yaml.safe_load((CONF / f"parameters_{group}.yml").read_text())[group]["augment"]
    params["crop_size"] = crop
    return from_dict(AugmentConfig, params, f"{group}.augment")


def kornia_version() -> str | None:
    """kornia's version, or None where it is not installed (it is a test dependency)."""
    try:
        import kornia
    except ImportError:
        return None
    return kornia.__version__


class KorniaAugment(nn.Module):
    """``config`` as kornia's AugmentationSequential: uint8 (B, H, W, 3) -> normalised floats."""

    def __init__(self, config: AugmentConfig) -> None:
        super().__init__()
        import kornia.augmentation as K

        size = (config.crop_size, config.crop_size)
        self.ops = K.AugmentationSequential(
            K.RandomResizedCrop(size, scale=config.crop_scale, ratio=config.crop_ratio),
            K.RandomHorizontalFlip(p=config.hflip_p),
            K.RandomVerticalFlip(p=config.vflip_p),
            K.RandomAffine(
                degrees=config.rotation_degrees,
                padding_mode=config.rotation_padding,
                p=config.rotation_p,
            ),
            K.ColorJitter(*config.color_jitter, p=config.color_jitter_p),
            K.RandomGaussianBlur(
                (config.blur_kernel, config.blur_kernel), config.blur_sigma, p=config.blur_p
            ),
            same_on_batch=False,
        )
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.ops(images.permute(0, 3, 1, 2).float().div(255.0))
        return (x.clamp(0.0, 1.0) - self.mean) / self.std


def op_counts(module: nn.Module, images: torch.Tensor) -> dict[str, int]:
    """aten calls of one call of ``module`` on ``images``, by name."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        module(images)
    return {e.key: e.count for e in prof.key_averages() if e.key.startswith("aten::")}


def timings(module: nn.Module, images: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Median host milliseconds (no wait) and device milliseconds (synchronised) per call."""
    cuda = images.device.type == "cuda"
    # The images' GPU, not the current one (which --device cuda:1 would leave unsynchronised).
    sync = (lambda: torch.cuda.synchronize(images.device)) if cuda else (lambda: None)
    host, device = [], []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        module(images)
        queued = time.perf_counter()
        sync()
        done = time.perf_counter()
        host.append((queued - start) * 1e3)
        device.append((done - start) * 1e3)
    return statistics.median(host), statistics.median(device)


def measure(
    module: nn.Module, batch: int, cache: tuple[int, int], device: torch.device, repeats: int
) -> dict[str, Any]:
    """Op counts (at ``batch`` and at 2 images) and timings of ``module`` on random images."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, *cache, 3), dtype=torch.uint8, generator=generator)
    images = images.to(device)
    module(images)  # warm-up: first-call allocations and lazy initialisation
    counts = op_counts(module, images)
    small = op_counts(module, images[:2])
    host_ms, device_ms = timings(module, images, repeats)
    return {
        "aten_ops": sum(counts.values()),
        "aten_ops_at_2_images": sum(small.values()),
        "syncs": sum(n for op, n in counts.items() if op in SYNCING_OPS),
        "host_ms": round(host_ms, 2),
        "device_ms": round(device_ms, 2),
        "img_per_s": round(batch / device_ms * 1e3, 1),
    }


def markdown(result: dict[str, Any]) -> str:
    """The result as a caption and a table."""
    s = result["settings"]
    lines = [
        f"{result['device']}, batch {s['batch']} of {s['cache']} (HxW) uint8 images -> "
        f"{s['crop']} px crops, float32, median of {s['repeats']} calls; torch "
        f"{result['torch']}, kornia {result['kornia']}; "
        + ("malloc keeping freed memory as the pipelines; " if result.get("malloc_kept") else "")
        + f"{describe_code(result['code'])}.",
        "",
        "| stage | pipeline | tensor ops a batch (at 2 images) | host syncs | host ms | "
        "device ms | crops/s (SupCon: 2 an image) |",
        "|---|---|---|---|---|---|---|",
    ]
    for stage, pipelines in result["stages"].items():
        for name, r in pipelines.items():
            lines.append(
                f"| {stage} | {name} | {r['aten_ops']:,} ({r['aten_ops_at_2_images']:,}) "
                f"| {r['syncs']} | {r['host_ms']:.1f} | {r['device_ms']:.1f} "
                f"| {r['img_per_s']:,.0f} |"
            )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, checked: ``--cache`` as HxW (``args.cache_hw``), sizes at least 1.

    Raises:
        SystemExit: Through ``parser.error``, naming the option and its value.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=128, help="images a batch (SupCon: x2)")
    parser.add_argument("--cache", default="256x341", help="cached image size, HxW")
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--results-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    args.cache_hw = image_size(parser, "--cache", args.cache)
    args.cache = "x".join(map(str, args.cache_hw))  # as recorded and compared: 256x341
    if args.batch < 2 or args.repeats < 1 or args.crop < 1:
        parser.error("--batch must be at least 2, --repeats and --crop at least 1")
    return args


def comparable_settings(result: dict[str, Any]) -> dict[str, Any]:
    """A result file's settings with its malloc setting, as the run's are compared."""
    settings = dict(result.get("settings") or {})
    if "malloc_kept" in result:  # older files do not record it: unknown
        settings["malloc_kept"] = result["malloc_kept"]
    return settings


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure both pipelines for both stages; write the JSON and markdown, return the record.

    Raises:
        SystemExit: Before measuring, where the result file there was measured with other
            settings (the file name leaves out the cache, the repeats and malloc).
    """
    args = parse_args(argv)
    malloc_kept = keep_freed_memory()  # as a kedro run does (SKIN_LESION_MALLOC=system: not)
    device = engine.resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    settings = {
        "batch": args.batch,
        "cache": args.cache,
        "crop": args.crop,
        "repeats": args.repeats,
    }
    stem = f"augment-cost-{device_slug(device.type, name)}-{args.batch}x{args.crop}"
    check_not_overwriting(
        args.results_dir / f"{stem}.json",
        settings | {"malloc_kept": malloc_kept},
        flag="--results-dir",
        recorded=comparable_settings,
    )
    torch.manual_seed(0)
    kornia = kornia_version()
    if kornia is None:
        print('augment_cost.py: kornia is not installed (pip install -e ".[test]"): ours only')
    stages: dict[str, dict[str, Any]] = {}
    for stage in STAGES:
        config = stage_config(stage, args.crop)
        # SupCon augments two views of every image in one call (augment.two_views).
        batch = args.batch * 2 if stage == "supcon" else args.batch
        ours = build_train_augment(config, MEAN, STD).to(device)
        stages[stage] = {"ours": measure(ours, batch, args.cache_hw, device, args.repeats)}
        if kornia is not None:
            reference = KorniaAugment(config).to(device)
            stages[stage]["kornia"] = measure(reference, batch, args.cache_hw, device, args.repeats)

    result = {
        "device": name,
        "settings": settings,
        "torch": torch.__version__,
        "kornia": kornia or "not installed",
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "malloc_kept": malloc_kept,
        "code": code_version(),
        "stages": stages,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (args.results_dir / f"{stem}.md").write_text(table)
    print(table)
    return result


if __name__ == "__main__":
    main()
