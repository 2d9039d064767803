"""Training-step throughput (images/s) of SupCon pretraining and classifier fine-tuning.

Usage:
    python benchmarks/training_throughput.py [--encoder efficientnet_b0] [--crop 224]
        [--batch 128] [--cache 256x341] [--steps 20] [--device auto]

Runs the project's own engine, batch source, per-sample augmentation and step functions on
a random uint8 image cache (content does not change the cost), after a few warm-up steps.
SupCon counts images, each giving two views. Writes JSON to
benchmarks/results/throughput-<device>-<encoder>-<crop>.json and prints a table row.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import torch

from skin_lesion import engine
from skin_lesion.augment import AugmentConfig, build_train_augment
from skin_lesion.batches import BatchSource
from skin_lesion.classification import Classifier, make_classifier_step
from skin_lesion.losses import SupConLoss, build_classification_loss
from skin_lesion.models import ContrastiveModel, create_encoder, resolve_preprocessing
from skin_lesion.pretraining import make_supcon_step

ROOT = Path(__file__).resolve().parents[1]
WARMUP_STEPS = 3


def _measure(model, step, source, device, steps) -> float:
    model.to(device)
    cuda = device.type == "cuda"
    if cuda:
        model.to(memory_format=torch.channels_last)
    config = engine.OptimConfig(lr=1e-4, warmup_epochs=0)
    optimizer = engine.build_optimizer([{"params": model.parameters()}], config)
    scheduler = engine.build_scheduler(optimizer, config, steps + WARMUP_STEPS, 1)
    precision = engine.Precision(device)
    batches = source.epoch(0)
    warm = [next(batches) for _ in range(WARMUP_STEPS)]
    engine.train_one_epoch(
        model, step, warm, optimizer, scheduler, precision, epoch=0, grad_clip=1.0, progress=False
    )
    timed = [next(batches) for _ in range(steps)]
    stats = engine.train_one_epoch(
        model,
        step,
        timed,
        optimizer,
        scheduler,
        precision,
        epoch=1,
        grad_clip=1.0,
        total=steps,
        progress=True,
    )
    return stats["img_per_s"]


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="efficientnet_b0")
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--cache", default="256x341", help="HxW of the cached images")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = engine.resolve_device(args.device)
    height, width = (int(v) for v in args.cache.split("x"))
    n = args.batch * (args.steps + WARMUP_STEPS)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, height, width, 3), dtype=np.uint8)
    labels = np.arange(n) % 7
    source = BatchSource(images, labels, np.arange(n), batch_size=args.batch, device=device, seed=0)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    encoder = create_encoder(args.encoder, weights="none")
    prep = resolve_preprocessing(encoder)
    augment = build_train_augment(AugmentConfig(crop_size=args.crop), prep["mean"], prep["std"])
    augment = augment.to(device)
    supcon = _measure(
        ContrastiveModel(encoder),
        make_supcon_step(augment, SupConLoss(), cuda),
        source,
        device,
        args.steps,
    )
    loss = build_classification_loss(
        "focal", num_classes=7, class_counts=[n // 7] * 7, alpha="inverse"
    ).to(device)
    classifier = Classifier(create_encoder(args.encoder, weights="none"), 7)
    fine = _measure(
        classifier, make_classifier_step(augment, loss, None, cuda), source, device, args.steps
    )
    name = torch.cuda.get_device_name(device) if cuda else f"CPU {platform.machine()}"
    result = {
        "device": name,
        "threads": torch.get_num_threads(),
        "encoder": args.encoder,
        "crop": args.crop,
        "batch": args.batch,
        "cache": args.cache,
        "precision": engine.Precision(device).name,
        "supcon_img_per_s": round(supcon, 1),
        "classifier_img_per_s": round(fine, 1),
    }
    out = ROOT / f"benchmarks/results/throughput-{device.type}-{args.encoder}-{args.crop}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("| device | encoder | crop | batch | precision | SupCon img/s | classifier img/s |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {name} | {args.encoder} | {args.crop} | {args.batch} | {result['precision']} | "
        f"{result['supcon_img_per_s']} | {result['classifier_img_per_s']} |"
    )


if __name__ == "__main__":
    main()
