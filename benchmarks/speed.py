"""Training-step throughput on HAM10000: the compute limit, a conventional DataLoader, ours.

Usage:
    python benchmarks/speed.py [--encoder efficientnet_b0] [--crop 224] [--batch 128]
        [--cache 256x341] [--steps 30] [--device auto] [--workers N] [--images N]
        [--threads N] [--data ../shared/data/ham10000_200x150] [--results-dir DIR]

For SupCon pretraining and for classifier fine-tuning (whole encoder trained), measures
training images/s through the project's engine (``engine.train_one_epoch``: forward,
backward, gradient clipping, AdamW step; bf16/fp16 autocast on CUDA and channels_last on
CUDA and the CPU, as the pipelines' defaults), with the same model, batch size, precision and
device, fed three ways:

* ``limit``: one batch of crop-sized float tensors made once on the device and reused every
  step: pure compute, no input pipeline, no augmentation.
* ``conventional``: a ``torch.utils.data.DataLoader`` over the JPEG files whose Dataset
  decodes each file with PIL and augments it on the CPU with torchvision transforms
  (RandomResizedCrop, flips, rotation, ColorJitter, ToTensor, Normalize; two views per image
  for SupCon), ``--workers`` worker processes (default: every core this process may use but
  one), pinned memory and non-blocking copies on CUDA. Its timed steps are rounded up to whole
  rounds of its workers (``timed_steps``): loader-bound, the workers deliver in bursts.
* ``ours``: the images decoded once with ``skin_lesion.images`` into the uint8 cache at
  ``--cache``, saved and memory-mapped as the catalog's ``ImageCacheDataset`` does, gathered
  by ``skin_lesion.batches.BatchSource`` (on the GPU when it fits) and augmented per sample
  on the device by ``skin_lesion.augment``, through the pipelines' own step functions.

Every process first calls ``skin_lesion.host_memory.keep_freed_memory`` as each ``kedro run``
does (glibc's malloc keeps freed memory for the next batch), so all three feeds run under the
allocator the pipelines use; the DataLoader's workers fork with it. ``SKIN_LESION_MALLOC=system``
in the environment measures them with malloc as it is.

Augmentation parameters, losses, heads, optimizer settings and precision come from
``conf/base/parameters_{contrastive_pretraining,classifier_training}.yml``; ``--crop`` and
``--batch`` override the crop size and batch size of both. SupCon counts images, each giving
two views. Every (stage, feed) runs in its own process after ``WARMUP_STEPS`` untimed steps
(at least two per DataLoader worker, so the loader reaches its steady state), so that its
memory figures are its own; they are read at the end of the timed steps:

* host peak RSS: the kernel's high-water mark of the training process's resident memory
  (``VmHWM``), and the sum of its DataLoader workers' high-water marks (shared pages, e.g.
  torch's libraries, count once per process there, so that sum is an upper bound);
* host PSS: the proportional set size of the process plus its workers at that moment
  (each shared page split among the processes that map it), the memory the feed occupies
  in its steady state;
* GPU peak: ``torch.cuda.max_memory_allocated`` of the process (tensors, not the caching
  allocator's reserve or the CUDA context).

``--data`` takes any folder in HAM10000's layout (``HAM10000_metadata.csv`` and JPEGs in any
subfolders), e.g. the demo generator's ``python -m skin_lesion.demo DIR``. Writes
speed-<device>-<encoder>-<crop>.json and .md to ``--results-dir`` (benchmarks/results) and
prints the markdown. A file there measured with another batch, cache, steps, workers,
threads, malloc setting, data folder (by name) or image count is refused before anything is
measured; a setting an older file does not record is not held against it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import timm
import torch
import torchvision
import yaml
from PIL import Image
from torch.utils.data import DataLoader, Dataset, RandomSampler
from torchvision import transforms as T

from skin_lesion import engine
from skin_lesion.augment import NUM_VIEWS, AugmentConfig, build_train_augment
from skin_lesion.batches import Batch, BatchSource
from skin_lesion.classification import (
    ClassifierConfig,
    build_finetune_optimizer,
    make_classifier_step,
)
from skin_lesion.classifier import Classifier
from skin_lesion.config import from_dict
from skin_lesion.datasets import ImageCacheDataset
from skin_lesion.host_memory import keep_freed_memory
from skin_lesion.images import IMAGE_SUFFIXES, PreprocessConfig, build_image_cache
from skin_lesion.losses import SupConLoss, build_classification_loss
from skin_lesion.models import ContrastiveModel, create_encoder, resolve_preprocessing
from skin_lesion.pretraining import PretrainConfig, make_supcon_step
from skin_lesion.provenance import code_version, cpu_name, device_slug

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: `benchmarks` is not on the path
    sys.path.insert(0, str(ROOT))

# The command line is a module of its own that imports neither torch nor timm: gpu.sh's
# check of SPEED_ARGS (benchmarks/gpu_settings.py) reads it in a second instead of eight.
from benchmarks.overwrite import check_not_overwriting  # noqa: E402
from benchmarks.speed_args import parse_args  # noqa: E402

logger = logging.getLogger("speed")

CONF = ROOT / "conf/base"
METADATA_FILE = "HAM10000_metadata.csv"
ITEMS_FILE = "items.json"
STAGES = ("supcon", "classifier")
FEEDS = ("limit", "conventional", "ours")
STAGE_NAMES = {"supcon": "SupCon pretraining (2 views/image)", "classifier": "classifier"}
WARMUP_STEPS = 5
MIB = 2**20


# ----------------------------------------------------------------------------- the three feeds


class JpegDataset(Dataset):
    """The conventional Dataset: decode one JPEG with PIL, augment it with torchvision."""

    def __init__(self, files: list[str], labels: list[int], transform: T.Compose, views: int):
        """Serve ``files[i]`` as ``views`` augmented tensors (stacked if more than one)."""
        self.files, self.labels, self.transform, self.views = files, labels, transform, views

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.files[i]) as img:
            rgb = img.convert("RGB")
        if self.views == 1:
            return self.transform(rgb), self.labels[i]
        return torch.stack([self.transform(rgb) for _ in range(self.views)]), self.labels[i]


def torchvision_augment(config: AugmentConfig, mean: list[float], std: list[float]) -> T.Compose:
    """torchvision's CPU counterpart of ``skin_lesion.augment.TrainAugment`` for ``config``.

    Same operations, order and strengths; rotation resamples bilinearly as ours does
    (torchvision's default is nearest-neighbour, cheaper) and pads with zeros (its
    ``RandomRotation`` has no reflection padding), and the hue strength is passed as it is
    although ours turns the YIQ chroma plane and torchvision shifts HSV hue (the cost of
    either does not depend on the strength).
    """
    ops = [
        T.RandomResizedCrop(config.crop_size, scale=config.crop_scale, ratio=config.crop_ratio),
        T.RandomHorizontalFlip(config.hflip_p),
        T.RandomVerticalFlip(config.vflip_p),
        T.RandomApply(
            [T.RandomRotation(config.rotation_degrees, interpolation=T.InterpolationMode.BILINEAR)],
            p=config.rotation_p,
        ),
        T.RandomApply([T.ColorJitter(*config.color_jitter)], p=config.color_jitter_p),
    ]
    if config.blur_p > 0:
        blur = T.GaussianBlur(config.blur_kernel, config.blur_sigma)
        ops.append(T.RandomApply([blur], p=config.blur_p))
    return T.Compose([*ops, T.ToTensor(), T.Normalize(mean, std)])


def timed_steps(feed: str, steps: int, workers: int) -> int:
    """The steps ``feed`` is timed over: ``steps``, and for the conventional feed rounded up
    to whole rounds of its ``workers``.

    Loader-bound, the workers (started together, each a batch at a time) deliver their batches
    in bursts of ``workers``, one burst a round, and the timed steps start as the training
    loop waits for a burst; timed steps that end inside a burst are charged the whole round
    for part of its batches: 30 steps of 8 workers took four rounds' time for 3.75 rounds'
    batches, (b) 6% slow (30 of 14 workers: 29%). A whole number of rounds is charged its
    own time wherever in a round the warm-up ended. Images/s do not depend on the count.
    """
    if feed != "conventional" or workers < 2:
        return steps
    return -(-steps // workers) * workers


def _repeat_epochs(loader: DataLoader) -> Iterator[Any]:
    for _ in itertools.count():
        yield from loader


def _on_device(batches: Iterator[Any], device: torch.device) -> Iterator[Batch]:
    for images, labels in batches:
        yield Batch(images.to(device, non_blocking=True), labels.to(device, non_blocking=True))


def tensor_step(stage: str, loss_fn: torch.nn.Module, channels_last: bool) -> engine.StepFn:
    """The step for already-augmented float batches: the pipelines' steps minus augmentation."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def step(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        x = batch.images
        if stage == "supcon":
            b, v = x.shape[:2]
            flat = x.flatten(0, 1).contiguous(memory_format=memory_format)
            return loss_fn(model(flat).view(b, v, -1), batch.labels)
        return loss_fn(model(x.contiguous(memory_format=memory_format)), batch.labels)

    return step


# ----------------------------------------------------------------------------- one measurement


def load_stage_config(stage: str, crop: int, batch: int) -> PretrainConfig | ClassifierConfig:
    """The stage's parameters from conf/base, with ``crop`` and ``batch`` overridden."""
    group = "contrastive_pretraining" if stage == "supcon" else "classifier_training"
    params = yaml.safe_load((CONF / f"parameters_{group}.yml").read_text())[group]
    params["batch_size"] = batch
    params["augment"]["crop_size"] = crop
    return from_dict(PretrainConfig if stage == "supcon" else ClassifierConfig, params, group)


def build_model(
    stage: str, config: PretrainConfig | ClassifierConfig, encoder: torch.nn.Module, counts: list
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The stage's model and loss, as the pipelines build them from ``config``."""
    if stage == "supcon":
        projection = config.projection
        model = ContrastiveModel(
            encoder, hidden_dim=projection.hidden_dim, out_dim=projection.out_dim
        )
        return model, SupConLoss(config.temperature)
    head, loss = config.head, config.loss
    model = Classifier(encoder, len(counts), hidden_dim=head.hidden_dim, dropout=head.dropout)
    loss_fn = build_classification_loss(
        loss.name,
        num_classes=len(counts),
        class_counts=counts,
        gamma=loss.gamma,
        alpha=loss.alpha,
        label_smoothing=loss.label_smoothing,
    )
    return model, loss_fn


def limit_feed(
    stage: str, batch: int, crop: int, labels: np.ndarray, device: torch.device, cl: bool
) -> Iterator[Batch]:
    """(a): one random batch, already augmented-sized, normalised and laid out, forever."""
    views = NUM_VIEWS if stage == "supcon" else 1
    shape = (batch * views, 3, crop, crop)
    memory_format = torch.channels_last if cl else torch.contiguous_format
    x = torch.randn(shape, device=device).contiguous(memory_format=memory_format)
    if stage == "supcon":
        x = x.view(batch, views, *shape[1:])  # the step's flatten(0, 1) gives x back, no copy
    return itertools.repeat(Batch(x, torch.as_tensor(labels[:batch], device=device)))


def conventional_feed(
    stage: str, config: Any, items: dict, prep: dict, args: argparse.Namespace
) -> tuple[Iterator[Batch], DataLoader]:
    """(b): PIL decode and torchvision augmentation per item in DataLoader workers."""
    device = torch.device(args.device)
    transform = torchvision_augment(config.augment, prep["mean"], prep["std"])
    views = NUM_VIEWS if stage == "supcon" else 1
    dataset = JpegDataset(items["files"], items["labels"], transform, views)
    # One "epoch" long enough for the warm-up and every timed step: persistent workers do not
    # start the next epoch before this one ends, so an epoch boundary inside the timed steps
    # would stall the loader there (about 7-9% of the H200 result's 30 steps, which crossed
    # one at 5,000 images, batch 128). Without replacement, RandomSampler repeats
    # permutations past len(dataset), so every image is still served once per pass.
    warmup = max(WARMUP_STEPS, 2 * args.workers)
    steps = warmup + timed_steps("conventional", args.steps, args.workers) + 1
    loader = DataLoader(
        dataset,
        batch_size=args.batch,
        sampler=RandomSampler(
            dataset,
            num_samples=max(len(dataset), steps * args.batch),
            generator=torch.Generator().manual_seed(0),
        ),
        drop_last=True,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=args.workers > 0,
    )
    return _on_device(_repeat_epochs(loader), device), loader


def our_feed(
    config: Any, labels: np.ndarray, args: argparse.Namespace
) -> tuple[Iterator[Batch], BatchSource]:
    """Ours: the memory-mapped cache, gathered by index by the pipelines' BatchSource."""
    cache = ImageCacheDataset(path=str(args.cache_dir)).load()
    source = BatchSource(
        cache.images,
        labels,
        np.arange(len(labels)),
        batch_size=args.batch,
        device=torch.device(args.device),
        seed=0,
        placement=config.placement,
    )
    return itertools.chain.from_iterable(source.epoch(e) for e in itertools.count()), source


def measure(args: argparse.Namespace, stage: str, feed: str) -> dict[str, Any]:
    """Train ``timed_steps`` steps of ``stage`` fed by ``feed``, timed: images/s and memory."""
    malloc_kept = keep_freed_memory()  # in effect since main(); DataLoader workers fork with it
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    if cuda and args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True  # autotuned in the warm-up steps, untimed
    torch.manual_seed(0)
    items = json.loads((args.cache_dir / ITEMS_FILE).read_text())
    labels = np.asarray(items["labels"])
    counts = np.bincount(labels, minlength=len(items["classes"])).tolist()
    config = load_stage_config(stage, args.crop, args.batch)
    cl = engine.use_channels_last(device, config.channels_last)
    encoder = create_encoder(args.encoder, weights="none")
    prep = resolve_preprocessing(encoder)
    model, loss_fn = build_model(stage, config, encoder, counts)
    model.to(device)
    if cl:
        model.to(memory_format=torch.channels_last)
    loss_fn.to(device)
    warmup, extra = WARMUP_STEPS, {}
    steps = timed_steps(feed, args.steps, args.workers)
    if feed == "limit":
        batches = limit_feed(stage, args.batch, args.crop, labels, device, cl)
        step = tensor_step(stage, loss_fn, cl)
    elif feed == "conventional":
        batches, _ = conventional_feed(stage, config, items, prep, args)
        step = tensor_step(stage, loss_fn, cl)
        # Workers deliver their first batches together; let the loader reach steady state.
        warmup = max(WARMUP_STEPS, 2 * args.workers)
    else:
        batches, source = our_feed(config, labels, args)
        extra["cache_on_device"] = source.on_device
        augment = build_train_augment(config.augment, prep["mean"], prep["std"]).to(device)
        if stage == "supcon":
            step = make_supcon_step(augment, loss_fn, cl)
        else:
            step = make_classifier_step(augment, loss_fn, None, cl)
    if stage == "supcon":
        optim = config.optim
        optimizer = engine.build_optimizer([{"params": model.parameters()}], optim)
    else:
        optim = config.finetune.optim
        optimizer = build_finetune_optimizer(model, config.finetune)
    scheduler = engine.build_scheduler(optimizer, optim, warmup + steps, 1)
    precision = engine.Precision(device, enabled=config.amp)
    common = {"grad_clip": optim.grad_clip, "progress": False}
    warm = itertools.islice(batches, warmup)
    engine.train_one_epoch(
        model, step, warm, optimizer, scheduler, precision, epoch=0, total=warmup, **common
    )
    load_before = os.getloadavg()[0]
    timed = itertools.islice(batches, steps)
    stats = engine.train_one_epoch(
        model, step, timed, optimizer, scheduler, precision, epoch=1, total=steps, **common
    )
    return {
        "img_per_s": round(stats["img_per_s"], 1),
        "seconds": round(stats["seconds"], 2),
        "warmup_steps": warmup,
        "timed_steps": steps,
        "precision": precision.name,
        "channels_last": cl,
        "malloc_kept": malloc_kept,
        "torch_threads": torch.get_num_threads(),
        "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        **host_memory(),  # while the DataLoader's workers are still alive
        "gpu_peak_mib": round(torch.cuda.max_memory_allocated(device) / MIB) if cuda else None,
        **extra,
    }


# ----------------------------------------------------------------------------- host memory


def _children_of(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc/*/stat's parent ids)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _proc_kib(path: str, key: str) -> int:
    """A ``key:  N kB`` line of a /proc file, in KiB (0 if the process is gone)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return 0
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def host_memory() -> dict[str, Any]:
    """Peak RSS of this process and of its workers, and their PSS now (Linux /proc)."""
    workers = _children_of(os.getpid())
    pss = sum(_proc_kib(f"/proc/{p}/smaps_rollup", "Pss") for p in ["self", *workers])
    return {
        "host_peak_rss_mib": round(_proc_kib("/proc/self/status", "VmHWM") / 1024),
        "workers": len(workers),
        "workers_peak_rss_mib": round(
            sum(_proc_kib(f"/proc/{p}/status", "VmHWM") for p in workers) / 1024
        ),
        "host_pss_mib": round(pss / 1024),
    }


def run_isolated(args: argparse.Namespace, stage: str, feed: str) -> dict[str, Any]:
    """Run ``measure`` for one (stage, feed) in a fresh process, so memory peaks are its own."""
    command = [
        sys.executable,
        __file__,
        f"--child={stage}:{feed}",
        f"--cache-dir={args.cache_dir}",
        f"--device={args.device}",
        f"--encoder={args.encoder}",
        f"--crop={args.crop}",
        f"--batch={args.batch}",
        f"--steps={args.steps}",
        f"--workers={args.workers}",
        f"--threads={args.threads}",
        *(["--cudnn-benchmark"] if args.cudnn_benchmark else []),
    ]
    subprocess.run(command, check=True)
    result = json.loads((args.cache_dir / f"result-{stage}-{feed}.json").read_text())
    logger.info("%s / %s: %s", stage, feed, result)
    return result


# ----------------------------------------------------------------------------- data and report


def list_images(data: Path, limit: int, classes: list[str]) -> pd.DataFrame:
    """``image_id, file, label`` of the JPEGs under ``data`` (all, or ``limit`` drawn at random)."""
    metadata_path = data / METADATA_FILE
    if not metadata_path.is_file():
        raise FileNotFoundError(
            f"no {METADATA_FILE} in '{data}': pass --data a folder in HAM10000's layout "
            "(or make one with `python -m skin_lesion.demo DIR`)"
        )
    metadata = pd.read_csv(metadata_path, dtype=str).set_index("image_id")
    # The pipeline's image suffixes, any case (HAM10000 itself is .jpg).
    files = sorted(p for p in data.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"'{data}': no {'/'.join(IMAGE_SUFFIXES)} images under it")
    unknown = [f.name for f in files if f.stem not in metadata.index]
    if unknown:
        raise ValueError(
            f"'{data}': {len(unknown)} of {len(files)} images without a metadata row: {unknown[:5]}"
        )
    table = pd.DataFrame({"image_id": [f.stem for f in files], "file": [str(f) for f in files]})
    dx = metadata.loc[table["image_id"], "dx"]
    unknown_dx = sorted(set(dx) - set(classes), key=str)
    if unknown_dx:
        raise ValueError(
            f"{metadata_path}: diagnoses outside the classes {classes} (conf/base/parameters.yml): "
            f"{unknown_dx}"
        )
    table["label"] = dx.map(classes.index).to_numpy()
    if 0 < limit < len(table):
        table = table.sample(limit, random_state=0).sort_index()
    # The classifier's loss weights each class by its count (focal, alpha inverse): a class
    # without images failed its measurement after SupCon's three had run.
    absent = [c for k, c in enumerate(classes) if not (table["label"] == k).any()]
    if absent:
        drawn = f"the {len(table)} images drawn (--images {limit})" if limit else "the images"
        raise ValueError(
            f"'{data}': {drawn} hold no {absent}: the classifier's loss weights every class by "
            "its count; pass more --images (0: all)"
        )
    return table.reset_index(drop=True)


def build_cache(
    table: pd.DataFrame, cache: tuple[int, int], folder: Path, classes: list[str]
) -> dict:
    """Decode the images once into ``folder`` at ``cache`` (height, width) as the catalog's
    image cache; decode stats."""
    height, width = cache
    loaders = {row.image_id: Path(row.file).read_bytes for row in table.itertuples()}
    start = time.perf_counter()
    built, failures = build_image_cache(loaders, PreprocessConfig(height=height, width=width))
    seconds = time.perf_counter() - start
    if failures:
        raise ValueError(f"{len(failures)} images could not be decoded, e.g. {failures}")
    ImageCacheDataset(path=str(folder)).save(built)
    items = {"classes": classes, "files": list(table["file"]), "labels": table["label"].tolist()}
    (folder / ITEMS_FILE).write_text(json.dumps(items))
    return {
        "images": len(table),
        "seconds": round(seconds, 1),
        "img_per_s": round(len(table) / seconds),
    }


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def _fmt(value: float | None, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:,.1f}{suffix}"


def _threads(result: dict[str, Any]) -> str:
    """The torch threads of the timed steps: one number, or each feed's where they differ
    (pin_memory's thread sets 1 for the whole process of the conventional feed on CUDA)."""
    per_feed = {
        feed: {result["stages"][st][feed].get("torch_threads") for st in STAGES} for feed in FEEDS
    }
    if all(threads == {result["torch_threads"]} for threads in per_feed.values()):
        return f"{result['torch_threads']} torch threads; "
    listed = ", ".join(
        f"{feed} {'/'.join(str(t) for t in sorted(threads, key=str))}"
        for feed, threads in per_feed.items()
    )
    return f"torch threads: {listed}; "


def _conventional_steps(result: dict[str, Any]) -> str:
    """`` (conventional: N, whole rounds of its workers)`` where its timed steps were rounded
    up (:func:`timed_steps`); nothing where they were not or the file does not record them."""
    steps = {result["stages"][st]["conventional"].get("timed_steps") for st in STAGES}
    steps.discard(None)
    steps.discard(result["settings"]["steps"])
    if not steps:
        return ""
    listed = "/".join(str(n) for n in sorted(steps))
    return f" (conventional: {listed}, whole rounds of its workers)"


def markdown(result: dict[str, Any]) -> str:
    """The README's tables: throughput with the ratios, then memory per stage and feed."""
    s = result["settings"]
    loads = [
        v
        for stage in STAGES
        for feed in FEEDS
        for v in result["stages"][stage][feed]["load_avg_1min"]
    ]
    lines = [
        f"{result['device']} ({result['cpu_count']} CPU cores), {s['encoder']} (random init), "
        f"{s['crop']} px crops, batch {s['batch']}, {s['precision']}"
        f"{', channels_last' if s['channels_last'] else ''}; {s['images']:,} HAM10000 JPEGs "
        f"({s['source_size']}) from `{s['data']}`, cache {s['cache']} (HxW), "
        f"{s['workers']} DataLoader worker{'' if s['workers'] == 1 else 's'}, "
        f"{s['steps']} timed steps"
        f"{_conventional_steps(result)}; torch {result['torch']}, "
        f"timm {result['timm']}, torchvision {result['torchvision']}; "
        + _threads(result)
        + (
            "malloc keeping freed memory as the pipelines (every feed); "
            if all(result["stages"][st][f].get("malloc_kept") for st in STAGES for f in FEEDS)
            else ""
        )
        + "1-minute load average during the timed steps "
        f"{min(loads):.1f}-{max(loads):.1f}.",
        "",
        "| stage | (a) limit: synthetic tensors on the device (img/s) "
        "| (b) DataLoader, PIL decode + torchvision (img/s) "
        "| ours: cache + BatchSource + batched augmentation (img/s) | ours / (a) | ours / (b) |",
        "|---|---|---|---|---|---|",
    ]
    for stage in STAGES:
        r = result["stages"][stage]
        lines.append(
            f"| {STAGE_NAMES[stage]} | {_fmt(r['limit']['img_per_s'])} "
            f"| {_fmt(r['conventional']['img_per_s'])} | {_fmt(r['ours']['img_per_s'])} "
            f"| {r['ours_fraction_of_limit']:.2f} | {r['ours_multiple_of_conventional']:.2f}x |"
        )
    if any(result["stages"][stage]["ours_fraction_of_limit"] > 1 for stage in STAGES):
        lines += [
            "",
            "Ours above the limit means noise: the machine's load changed between the runs.",
        ]
    lines += [
        "",
        "| stage | feed | host peak RSS, process (MiB) | host peak RSS, workers, sum (MiB) "
        "| host PSS, process + workers (MiB) | GPU peak allocated (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for stage in STAGES:
        for feed in FEEDS:
            r = result["stages"][stage][feed]
            workers = f"{r['workers_peak_rss_mib']:,} ({r['workers']})" if r["workers"] else "-"
            lines.append(
                f"| {STAGE_NAMES[stage]} | {feed} | {r['host_peak_rss_mib']:,} | {workers} "
                f"| {r['host_pss_mib']:,} | {_fmt(r['gpu_peak_mib'])} |"
            )
    return "\n".join(lines) + "\n"


def data_name(data: Path | str) -> str:
    """The data folder's name: the same images at another path are the same measurement."""
    return Path(data).resolve().name


def comparable_settings(result: dict[str, Any]) -> dict[str, Any]:
    """A result file's settings as :func:`planned_settings` gives them: the data folder by
    name, and malloc from the feeds where the settings do not record it (older files record
    it per feed only, or not at all)."""
    settings = dict(result.get("settings") or {})
    if "data" in settings:
        settings["data"] = Path(settings["data"]).name
    if "malloc_kept" not in settings:
        kept = {
            feed.get("malloc_kept")
            for stage in (result.get("stages") or {}).values()
            for feed in stage.values()
            if isinstance(feed, dict)
        }
        if len(kept) == 1 and isinstance(next(iter(kept)), bool):
            settings["malloc_kept"] = kept.pop()
    return settings


def planned_settings(args: argparse.Namespace, images: int, malloc_kept: bool) -> dict[str, Any]:
    """The settings a run will record that its file name (device, encoder, crop) leaves out.

    Args:
        args: The parsed command line.
        images: The images the run measures (``--images``, or all under ``--data``).
        malloc_kept: Whether malloc keeps freed memory (``SKIN_LESION_MALLOC=system``: not).

    Returns:
        Batch, cache, steps, workers, threads, malloc, the data folder's name and the images
        (and ``cudnn_benchmark`` where on).
    """
    return {
        "batch": args.batch,
        "cache": args.cache,
        "steps": args.steps,
        "workers": args.workers,
        "threads": args.threads,
        "malloc_kept": malloc_kept,
        "data": data_name(args.data),
        "images": images,
        # Recorded only when on: results from before the option compare as they were.
        **({"cudnn_benchmark": True} if args.cudnn_benchmark else {}),
    }


def main(argv: list[str] | None = None) -> None:
    """Decode the cache, measure every (stage, feed) in its own process, write the results."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args(argv)
    malloc_kept = keep_freed_memory()  # as a kedro run does (SKIN_LESION_MALLOC=system: not)
    if args.child:
        stage, feed = args.child.split(":")
        result = measure(args, stage, feed)
        (args.cache_dir / f"result-{stage}-{feed}.json").write_text(json.dumps(result))
        return
    device = engine.resolve_device(args.device)
    args.device = str(device)
    classes = yaml.safe_load((CONF / "parameters.yml").read_text())["classes"]
    try:
        table = list_images(args.data.resolve(), args.images, classes)
    except (FileNotFoundError, ValueError) as error:  # the data given: no traceback
        raise SystemExit(f"speed.py: {error}") from None
    with Image.open(table["file"][0]) as img:
        source_size = f"{img.width}x{img.height}"
    name = device_name(device)
    stem = f"speed-{device_slug(device.type, name)}-{args.encoder}-{args.crop}"
    check_not_overwriting(
        args.results_dir / f"{stem}.json",
        planned_settings(args, len(table), malloc_kept),
        flag="--results-dir",
        recorded=comparable_settings,
    )
    stages: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="skin-lesion-speed-") as tmp:
        args.cache_dir = Path(tmp)
        decode = build_cache(table, args.cache_hw, args.cache_dir, classes)
        logger.info("decoded into the cache: %s", decode)
        for stage in STAGES:
            feeds = {}
            for feed in FEEDS:
                try:
                    feeds[feed] = run_isolated(args, stage, feed)
                except subprocess.CalledProcessError as error:
                    # Keep what finished (minutes of GPU time) instead of nothing at all.
                    partial = args.results_dir / f"{stem}-partial.json"
                    partial.parent.mkdir(parents=True, exist_ok=True)
                    done = {
                        # What was measured: the file name holds only device, encoder, crop.
                        "settings": planned_settings(args, len(table), malloc_kept),
                        "code": code_version(ROOT),
                        "stages": {**stages, stage: feeds},
                    }
                    partial.write_text(json.dumps(done, indent=2) + "\n")
                    raise SystemExit(
                        f"speed.py: {stage} / {feed} failed (exit {error.returncode}); the "
                        f"finished measurements are in {partial}"
                    ) from None
            ours = feeds["ours"]["img_per_s"]
            stages[stage] = {
                **feeds,
                "ours_fraction_of_limit": round(ours / feeds["limit"]["img_per_s"], 3),
                "ours_multiple_of_conventional": round(
                    ours / feeds["conventional"]["img_per_s"], 2
                ),
            }
    result = {
        "device": name,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": stages["supcon"]["limit"]["torch_threads"],
        "code": code_version(ROOT),
        "settings": {
            "encoder": args.encoder,
            "weights": "none",
            "crop": args.crop,
            "batch": args.batch,
            "cache": args.cache,
            "steps": args.steps,
            "workers": args.workers,
            "threads": args.threads,
            "malloc_kept": malloc_kept,
            "device": args.device,
            "precision": stages["supcon"]["ours"]["precision"],
            "channels_last": stages["supcon"]["ours"]["channels_last"],
            "data": str(args.data),
            "images": len(table),
            "source_size": source_size,
            **({"cudnn_benchmark": True} if args.cudnn_benchmark else {}),
        },
        "decode": decode,
        "measures": {
            "img_per_s": "images per second over the timed steps, after the warm-up steps; "
            "a SupCon image gives two views",
            "host_peak_rss_mib": "VmHWM (peak resident memory) of the training process",
            "workers_peak_rss_mib": "sum of the DataLoader workers' VmHWM (shared pages "
            "counted in each: an upper bound)",
            "host_pss_mib": "PSS of the training process plus its workers at the end of the "
            "timed steps (shared pages split among the processes mapping them)",
            "load_avg_1min": "the machine's 1-minute load average before and after the timed "
            "steps (other work on the machine slows every feed)",
            "gpu_peak_mib": "torch.cuda.max_memory_allocated of the training process",
        },
        "stages": stages,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    # A failed earlier attempt's partial file is superseded by this complete one.
    (args.results_dir / f"{stem}-partial.json").unlink(missing_ok=True)
    table_md = markdown(result)
    (args.results_dir / f"{stem}.md").write_text(table_md)
    print(table_md)


if __name__ == "__main__":
    main()
