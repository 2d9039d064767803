"""The one training loop, shared by contrastive pretraining and classifier training.

The two differ only in a small step function ``step(model, images, labels) -> loss`` that
augments the uint8 batch and computes the loss. Everything is passed in (model, optimizer,
scheduler, batch source): no global state, so the loop can later be wrapped for DDP.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from skin_lesion.config import (
    ConfigError,
    parameter_differences,
)

# The parameter dataclasses live in skin_lesion.configs, which imports no torch (the
# start-up parameter check builds them); named here as before.
from skin_lesion.configs import OptimConfig
from skin_lesion.configs import check_warmup_fits as check_warmup_fits
from skin_lesion.lineage import (
    CACHE_KEY,
    DATA_KEY,
    ENCODER_KEY,
    ORDER_KEY,
    SETTINGS_KEY,
    SPLIT_KEY,
)

logger = logging.getLogger(__name__)

# step(model, batch) -> loss; the batch is a ``batches.Batch``.
StepFn = Callable[[nn.Module, Any], torch.Tensor]
# Check for a non-finite loss every this many steps: one host sync per window, not per step.
SYNC_EVERY = 10


class ResumeMismatchError(ConfigError):
    """``resume: true`` on a saved run whose parameters or inputs differ from the current
    ones: an error in the run's input (one line on the command line, no traceback)."""


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; any other name is used as given."""
    if name != "auto":
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} was requested but CUDA is not available")
        if device.type == "cuda" and device.index is not None:
            count = torch.cuda.device_count()
            if device.index >= count:  # else the first copy fails: "invalid device ordinal"
                raise RuntimeError(
                    f"device {name!r} was requested but this machine has {count} CUDA "
                    f"device(s): cuda:0 to cuda:{count - 1}"
                )
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


FORWARD_BATCH_CPU = 16
FORWARD_BATCH_GPU = 256


def forward_batch_size(
    requested: int | None, device: torch.device, *, gpu: int = FORWARD_BATCH_GPU
) -> int:
    """Images per gradient-free forward pass (validation, embedding, prediction).

    ``requested``, or where it is None the default for ``device``'s kind: ``gpu`` on an
    accelerator, :data:`FORWARD_BATCH_CPU` on a CPU, where 16 is the fastest and needs the
    least memory (453 img/s against 423 at 64 and 403 at 256, peak 1.6 GB against 3.6 at
    256, on a 2-core AMD EPYC with malloc keeping freed memory, ``host_memory``; 260 against
    126 without: large batches' activations were unmapped and faulted in again each batch;
    benchmarks/README.md, Inference). The batch size changes only speed and memory, not the
    predictions beyond float rounding.
    """
    if requested is not None:
        return requested
    return FORWARD_BATCH_CPU if device.type == "cpu" else gpu


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices); the augmentation draws from torch's RNG."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The RNG states a resumed run must continue from, for a checkpoint: torch's (CPU and
    CUDA; the augmentation and batch order draw from them), NumPy's global one (timm's
    MixUp/CutMix draws from it) and Python's. Plain tensors, ints and tuples only, so that
    ``torch.load(..., weights_only=True)`` reads them."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    state["numpy"] = {
        "kind": kind,
        "key": torch.from_numpy(key.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "gauss": float(gauss),
    }
    state["python"] = random.getstate()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` returned. A checkpoint from before NumPy's and Python's
    states were kept (2026-12-06) restores torch's only, as it was saved."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        # One state per GPU of the machine that saved it: resumed on a machine with fewer
        # GPUs, set_rng_state_all failed on the missing device ordinals.
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)
    if "numpy" in state:
        saved = state["numpy"]
        key = saved["key"].numpy().astype(np.uint32)
        np.random.set_state((saved["kind"], key, saved["pos"], saved["has_gauss"], saved["gauss"]))
    if "python" in state:
        version, internal, gauss_next = state["python"]
        random.setstate((version, tuple(internal), gauss_next))


# The first CUDA compute capability with bf16 tensor cores (Ampere).
BF16_CAPABILITY = (8, 0)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``device``: bf16 on CUDA GPUs with native bf16 (compute
    capability 8.0, Ampere, and later), else fp16 (with a GradScaler); ``None`` (float32) on
    other devices. ``torch.cuda.is_bf16_supported()`` counts emulation, which put a T4 or
    V100 on slow emulated bf16, and asks about the current GPU, not ``device``."""
    if device.type != "cuda":
        return None
    native = torch.cuda.get_device_capability(device) >= BF16_CAPABILITY
    return torch.bfloat16 if native else torch.float16


def use_channels_last(device: torch.device, requested: bool) -> bool:
    """NHWC memory format where it pays: CUDA (tensor cores) and the CPU (oneDNN's
    convolutions: ``cpu_quick``'s classifier training ran 1.9x faster in NHWC on a 2-core
    AVX-512 EPYC, benchmarks/README.md); contiguous elsewhere (e.g. MPS)."""
    return requested and device.type in ("cuda", "cpu")


def place_model(model: nn.Module, device: torch.device, channels_last: bool) -> bool:
    """Move ``model`` to ``device``, in NHWC memory format where that pays.

    Returns:
        Whether the model is now channels_last (``use_channels_last``), so the caller can
        put its input batches in the same format.
    """
    model.to(device)
    nhwc = use_channels_last(device, channels_last)
    if nhwc:
        model.to(memory_format=torch.channels_last)
    return nhwc


class Precision:
    """Autocast and loss scaling: bf16 on CUDA where supported, else fp16 with a GradScaler.

    On the CPU (and with ``enabled=False``) everything runs in float32.
    """

    def __init__(self, device: torch.device, enabled: bool = True) -> None:
        """Choose the precision for ``device`` (``autocast_dtype``)."""
        self.device = device
        self.dtype: torch.dtype | None = autocast_dtype(device) if enabled else None
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context for forward passes."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    @property
    def name(self) -> str:
        """``bf16``, ``fp16`` or ``fp32``."""
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.dtype, "fp32")


def no_weight_decay_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters a timm model exempts from weight decay by name (``no_weight_decay()``:
    a ViT's ``pos_embed`` and ``cls_token``, a Swin's relative position tables), looked up in
    every submodule that declares them, as timm's ``param_groups_weight_decay`` does for the
    model it is given (here the encoder sits inside our wrappers)."""
    exempt: list[nn.Parameter] = []
    for module in model.modules():
        declared = getattr(module, "no_weight_decay", None)
        if not callable(declared):
            continue
        names = set(declared())
        exempt += [p for name, p in module.named_parameters() if name in names]
    return exempt


def build_optimizer(
    param_groups: list[dict[str, Any]],
    config: OptimConfig,
    no_decay: Iterable[torch.Tensor] = (),
) -> torch.optim.AdamW:
    """AdamW over ``param_groups``; each group's ``lr_scale`` multiplies ``config.lr``.

    Discriminative learning rates (encoder lower than head) are groups with different
    ``lr_scale``. No weight decay on biases and norm weights (1-D tensors), nor on the
    parameters in ``no_decay`` (:func:`no_weight_decay_parameters`), as in timm.
    """
    exempt = {id(p) for p in no_decay}
    groups = []
    for group in param_groups:
        scale = group.get("lr_scale", 1.0)
        params = [p for p in group["params"] if p.requires_grad]
        decay = [p for p in params if p.ndim > 1 and id(p) not in exempt]
        no_decay_params = [p for p in params if p.ndim <= 1 or id(p) in exempt]
        name = group.get("name", "params")
        subsets = ((decay, config.weight_decay, ""), (no_decay_params, 0.0, "/no_decay"))
        for subset, wd, suffix in subsets:
            if subset:
                groups.append(
                    {
                        "params": subset,
                        "lr": config.lr * scale,
                        "weight_decay": wd,
                        "name": name + suffix,
                    }
                )
    if not groups:
        raise ValueError("no trainable parameters were given to the optimizer")
    return torch.optim.AdamW(groups, lr=config.lr)


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: OptimConfig, steps_per_epoch: int, epochs: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule: linear warm-up to each group's lr, then cosine to ``min_lr_ratio``."""
    total = max(1, steps_per_epoch * epochs)
    warmup = min(total, round(config.warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cosine

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_one_epoch(
    model: nn.Module,
    step: StepFn,
    batches: Iterable[Any],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    precision: Precision,
    *,
    epoch: int,
    grad_clip: float | None,
    total: int | None = None,
    progress: bool = True,
    desc: str = "train",
    after_step: Callable[[nn.Module], None] | None = None,
) -> dict[str, float]:
    """Run one epoch of optimisation.

    ``after_step(model)``, when given, runs after every optimizer step that was taken (an EMA
    update; fp16 skips the steps whose gradients overflowed).

    Returns:
        ``loss`` (mean), ``lr`` (the head group's, else the first's, at the end),
        ``img_per_s``, ``seconds``.

    Raises:
        NonFiniteLossError: Naming the epoch and step where the loss became NaN or inf.
    """
    model.train()
    losses: list[torch.Tensor] = []
    images_seen = 0
    start = time.perf_counter()
    bar = tqdm(
        batches,
        total=total,
        desc=f"{desc} epoch {epoch}",
        disable=not progress,
        leave=False,
        unit="batch",
    )
    for i, batch in enumerate(bar):
        with precision.autocast():
            loss = step(model, batch)
        optimizer.zero_grad(set_to_none=True)
        precision.scaler.scale(loss).backward()
        if grad_clip:
            precision.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scale = precision.scaler.get_scale() if precision.scaler.is_enabled() else None
        precision.scaler.step(optimizer)
        precision.scaler.update()
        # fp16: a step whose gradients overflowed is skipped and the scale lowered; the
        # schedule follows the optimizer's real steps (torch warns otherwise). Reading the
        # scale waits for the GPU, but GradScaler.step has already waited (it reads its
        # found-inf flag with .item()), so this costs no extra stall; bf16 and fp32 skip it.
        stepped = scale is None or precision.scaler.get_scale() >= scale
        if stepped:
            scheduler.step()
        losses.append(loss.detach().float())
        images_seen += len(batch[0])
        if after_step is not None and stepped:  # no EMA update for a skipped step either
            after_step(model)
        if (i + 1) % SYNC_EVERY == 0 or (total is not None and i + 1 == total):
            _check_finite(losses, epoch)
            rate = images_seen / (time.perf_counter() - start)
            bar.set_postfix(
                loss=f"{losses[-1].item():.4f}",
                lr=f"{reported_lr(optimizer):.2e}",
                img_s=f"{rate:.0f}",
            )
    _check_finite(losses, epoch)
    if precision.device.type == "cuda":
        torch.cuda.synchronize(precision.device)
    seconds = time.perf_counter() - start
    return {
        "loss": float(torch.stack(losses).mean()) if losses else math.nan,
        "lr": reported_lr(optimizer),
        "img_per_s": images_seen / seconds if seconds > 0 else math.nan,
        "seconds": seconds,
    }


def reported_lr(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate the history and progress bar show: the ``head`` group's where there
    is one (fine-tuning's encoder group runs at a fraction of it), else the first group's."""
    groups = optimizer.param_groups
    return float(next((g for g in groups if g.get("name") == "head"), groups[0])["lr"])


def _check_finite(losses: list[torch.Tensor], epoch: int) -> None:
    """Raise at the epoch's first non-finite loss (one host sync for the whole list)."""
    if not losses:
        return
    finite = torch.isfinite(torch.stack(losses))
    if bool(finite.all()):
        return
    bad = int((~finite).nonzero()[0])
    raise NonFiniteLossError(
        f"the training loss became {losses[bad].item()} at epoch {epoch}, step {bad} "
        "(0-based within the epoch); lower the learning rate, check the inputs, or "
        "disable mixed precision"
    )


def fit(
    model: nn.Module,
    step: StepFn,
    source: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    precision: Precision,
    *,
    epochs: int,
    grad_clip: float | None,
    describe: Callable[[int, list[dict]], dict[str, Any]],
    store: Any | None = None,
    resume: bool = False,
    evaluate: Callable[[nn.Module, int], dict[str, float]] | None = None,
    after_step: Callable[[nn.Module], None] | None = None,
    should_stop: Callable[[list[dict[str, float]]], bool] | None = None,
    stateful: dict[str, Any] | None = None,
    progress: bool = True,
    desc: str = "train",
) -> list[dict[str, float]]:
    """Train for ``epochs``, checkpointing every epoch, optionally resuming.

    Args:
        model: The model, already on its device.
        step: ``step(model, batch) -> loss``.
        source: A ``BatchSource`` (``len`` and ``epoch(e)``).
        optimizer: Built with ``build_optimizer``.
        scheduler: Stepped once per batch.
        precision: Autocast and gradient scaling.
        epochs: Total epochs of the run (a resumed run counts the ones already done).
        grad_clip: Max gradient norm, or None.
        describe: ``describe(epoch, history)`` returns the self-describing part of the
            checkpoint (architecture, constructor arguments, state dict, parameters,
            preprocessing). Its ``params`` must match on resume.
        store: A ``CheckpointStore``; when given, the latest epoch is saved atomically.
        resume: Continue from the store's latest checkpoint when there is one.
        evaluate: Optional ``evaluate(model, epoch) -> metrics`` merged into the history.
        after_step: Optional ``after_step(model)`` after every optimizer step (EMA).
        should_stop: Optional ``should_stop(history) -> bool`` after every epoch (early
            stopping).
        stateful: Further objects with ``state_dict``/``load_state_dict`` (an EMA model,
            a best-model tracker) saved with each epoch and restored on resume.
        progress: Show progress bars.
        desc: Label of the progress bar and log lines.

    Returns:
        The per-epoch history: epoch, loss, lr, img_per_s, seconds (and evaluation metrics).
    """
    stateful = stateful or {}
    history: list[dict[str, float]] = []
    start_epoch = 0
    latest = store.latest() if (store is not None and resume) else None
    if latest is not None:
        _check_resumable(latest, describe(-1, []))
        # The checkpoint holds the plain module's keys (``describe``); under ``torch.compile``
        # ``model`` is the wrapper, whose keys carry ``_orig_mod.``, so load into the module.
        getattr(model, "_orig_mod", model).load_state_dict(latest["state_dict"])
        optimizer.load_state_dict(latest["optimizer"])
        scheduler.load_state_dict(latest["scheduler"])
        # A run saved without loss scaling (bf16 or fp32: a disabled scaler saves {}) resumed
        # where fp16 scaling is on starts the scaler afresh; load_state_dict({}) raises.
        if latest["scaler"] or not precision.scaler.is_enabled():
            precision.scaler.load_state_dict(latest["scaler"])
        for name, obj in stateful.items():
            obj.load_state_dict(latest["stateful"][name])
        set_rng_state(latest["rng"])
        history = list(latest["history"])
        start_epoch = epochs if latest.get("stopped") else latest["epoch"] + 1
        logger.info("%s: resuming after epoch %d from %s", desc, latest["epoch"], store)
    elif store is not None:
        if resume:
            logger.warning(
                "%s: resume asked, but %s holds no checkpoint: from epoch 0", desc, store
            )
        else:
            _warn_if_interrupted(store, epochs, desc)
        store.clear()
    for epoch in range(start_epoch, epochs):
        stats = train_one_epoch(
            model,
            step,
            source.epoch(epoch),
            optimizer,
            scheduler,
            precision,
            epoch=epoch,
            grad_clip=grad_clip,
            total=len(source),
            progress=progress,
            desc=desc,
            after_step=after_step,
        )
        if evaluate is not None:
            stats.update(evaluate(model, epoch))
        history.append({"epoch": epoch, **stats})
        logger.info(
            "%s epoch %d: %s", desc, epoch, ", ".join(f"{k}={v:.4g}" for k, v in stats.items())
        )
        stop = should_stop is not None and should_stop(history)
        if store is not None:
            store.save(
                {
                    **describe(epoch, history),
                    "epoch": epoch,
                    "epochs": epochs,
                    "history": history,
                    "stopped": stop,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": precision.scaler.state_dict(),
                    "stateful": {name: obj.state_dict() for name, obj in stateful.items()},
                    "rng": rng_state(),
                }
            )
        if stop:
            logger.info("%s: stopping early after epoch %d", desc, epoch)
            break
    return history


def check_resumable(store: Any, params: dict[str, Any]) -> None:
    """What ``fit(resume=True)`` refuses, without training: ``store``'s latest checkpoint
    against the ``params`` the run would record (``describe``'s); none saved passes.

    Raises:
        ResumeMismatchError: Naming each difference, as ``fit`` does.
    """
    latest = store.latest() if store is not None else None
    if latest is not None:
        _check_resumable(latest, {"params": params})


def discard_run(store: Any, desc: str) -> None:
    """A fresh run: say so if ``store`` holds an interrupted run, then forget it."""
    _warn_if_interrupted(store, 0, desc)
    store.clear()


def run_complete(store: Any, epochs: int) -> bool:
    """Whether ``store`` holds a run of ``epochs`` epochs that finished (or stopped early);
    a phase of no epochs is complete with nothing saved."""
    if epochs == 0:
        return True
    latest = store.latest()
    return latest is not None and bool(latest.get("stopped") or latest["epoch"] + 1 >= epochs)


def _warn_if_interrupted(store: Any, epochs: int, desc: str) -> None:
    """Say so when a fresh run is about to discard an unfinished run's checkpoint."""
    try:
        previous = store.latest()
    except Exception:  # an unreadable leftover is discarded all the same
        previous = None
    if previous is None or previous.get("stopped"):
        return
    if "epochs" not in previous:  # saved before the planned length was: cannot tell
        return
    done, planned = previous.get("epoch", -1) + 1, previous["epochs"]
    if done < planned:
        logger.warning(
            "%s: starting over: the interrupted run in %s (%d of %d epochs done) is "
            "discarded; set resume: true to continue it instead",
            desc,
            store,
            done,
            planned,
        )


# Recorded with a run's parameters since a later version (not a parameter file's key).
RECORDED_SINCE = frozenset({SPLIT_KEY, SETTINGS_KEY, CACHE_KEY, ENCODER_KEY, DATA_KEY, ORDER_KEY})
# Parameters that may change between an interrupted run and its resumption.
RESUME_EXEMPT_KEYS = frozenset({"resume", "progress", "compile", "keep_epochs", "knn_monitor"})


# Settings added since runs were first saved, each with the value that behaves as runs did
# before it existed: a run interrupted before then resumes as long as the key has that value.
ADDED_SETTINGS = {("classifier_training", "finetune", "frozen_batchnorm"): "update"}


def _add_settings(settings: dict[str, Any]) -> None:
    """Give ``settings`` (a copy of a run's filled-in groups) any ``ADDED_SETTINGS`` key it
    lacks, in place."""
    for path, value in ADDED_SETTINGS.items():
        node = settings
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] not in node:
            node[path[-1]] = value


def _strip(params: Any) -> Any:
    if isinstance(params, dict):
        return {k: _strip(v) for k, v in params.items() if k not in RESUME_EXEMPT_KEYS}
    return params


def _check_resumable(latest: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse to resume a run whose parameters differ from the current ones, naming them."""
    saved, now = _strip(latest.get("params")), _strip(current.get("params"))
    if isinstance(saved, dict) and isinstance(now, dict):
        # The data fingerprint's parts both record: ``metadata`` comes and goes with
        # metadata_fusion, which is then named as the change (not the data).
        if isinstance(saved.get(DATA_KEY), dict) and isinstance(now.get(DATA_KEY), dict):
            both = set(saved[DATA_KEY]) & set(now[DATA_KEY])
            saved[DATA_KEY] = {k: v for k, v in saved[DATA_KEY].items() if k in both}
            now[DATA_KEY] = {k: v for k, v in now[DATA_KEY].items() if k in both}
        # Recorded only since a later version: a run saved before cannot be compared on it.
        now = {k: v for k, v in now.items() if k in saved or k not in RECORDED_SINCE}
        # Likewise a settings group recorded since (the classifier's pretrained encoder's).
        if isinstance(saved.get(SETTINGS_KEY), dict) and isinstance(now.get(SETTINGS_KEY), dict):
            groups = now[SETTINGS_KEY].items()
            now[SETTINGS_KEY] = {g: v for g, v in groups if g in saved[SETTINGS_KEY]}
            _add_settings(saved[SETTINGS_KEY])  # _strip made saved a copy
            # A group recorded both as given and with its defaults filled in is compared
            # filled in only: a key now given at its default value is no change, and a
            # change is named once, not also under ``settings.``.
            for group in set(saved[SETTINGS_KEY]) & set(now[SETTINGS_KEY]):
                saved.pop(group, None)
                now.pop(group, None)
    prefix = f"{SETTINGS_KEY}."
    differences = [d.removeprefix(prefix) for d in parameter_differences(saved, now)]
    if any(d.startswith(f"{SPLIT_KEY}:") for d in differences):
        # Other train/val images: their data fingerprint differs too, and says no more.
        differences = [d for d in differences if not d.startswith(f"{DATA_KEY}.")]
    elif any(d.startswith(f"{CACHE_KEY}.") for d in differences):
        # Other preprocessing makes other pixels: not a replaced image.
        differences = [d for d in differences if not d.startswith(f"{DATA_KEY}.images:")]
    if not differences:
        return
    advice = "Restore those values, or set resume: false to start over"
    if any(d.startswith(f"{SPLIT_KEY}:") for d in differences):
        advice = (
            "The splits changed since the run started (data_processing ran again with other "
            "settings): rerun data_processing as before to resume, or set resume: false"
        )
    elif any(d.startswith(f"{CACHE_KEY}.") for d in differences):
        advice = (
            "The image cache changed since the run started (data_processing ran again with "
            "other preprocessing): rerun it as before to resume, or set resume: false"
        )
    elif any(d.startswith(f"{DATA_KEY}.") for d in differences):
        advice = (
            "The images (or the fusion metadata) changed since the run started "
            "(data_processing ran again on other data): resume would mix two datasets' "
            "training; put the old data back and rerun data_processing, or set resume: false"
        )
    elif any(d.startswith(f"{ORDER_KEY}:") for d in differences):
        advice = (
            "The same train images are cached in another order since the run started "
            "(data_processing ran again: a cache written before 2026-12-07 holds the metadata's "
            "row order, a cache written since image_id order): each epoch's batches permute "
            "cache positions, so the resumed run would match no uninterrupted one; set "
            "resume: false to train from the start"
        )
    elif any(d.startswith(f"{ENCODER_KEY}:") for d in differences):
        advice = (
            "The encoder it starts from changed since the run started "
            "(contrastive_pretraining ran again): resume would mix two encoders' training; "
            "set resume: false"
        )
    raise ResumeMismatchError(
        f"cannot resume: the saved run differs in {'; '.join(differences)}. {advice}"
    )
