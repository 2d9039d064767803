"""Self-describing checkpoints: atomic writes, safe loads, and a per-run store for resume.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so that
``torch.load(..., weights_only=True)`` can read it without executing pickled code. It
records everything needed to rebuild its model (architecture and constructor arguments)
and to feed it (the preprocessing images must get), plus, for resume, the optimizer,
scheduler, gradient-scaler and RNG states.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from skin_lesion.files import atomic_write
from skin_lesion.provenance import cpu_name

# torch is imported by the functions that need it: the catalog's checkpoint datasets import
# this module, and kedro-viz or a notebook that builds every dataset need not load torch.
if TYPE_CHECKING:
    import torch

LAST = "last.pt"
NOT_RECORDED = "not recorded"


def library_versions() -> dict[str, str]:
    """The Python, torch, timm and skin_lesion versions a checkpoint is saved with."""
    import platform

    import timm
    import torch

    import skin_lesion

    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),  # a TorchVersion, which weights_only cannot load
        "timm": str(timm.__version__),
        "skin_lesion": skin_lesion.__version__,
    }


def training_device(device: torch.device) -> dict[str, str | None]:
    """The device a checkpoint's weights were trained on, for its ``trained_on``: ``type``
    (``cuda``, ``mps`` or ``cpu``) and ``name`` (the GPU's, the CPU model, None for mps).

    The torch version is in the ``versions`` that :func:`save_checkpoint` adds.
    """
    name = None
    if device.type == "cuda":
        import torch

        name = torch.cuda.get_device_name(device)
    elif device.type == "cpu":
        name = cpu_name()
    return {"type": device.type, "name": name}


def describe_training_device(checkpoint: Mapping[str, Any] | None) -> str:
    """``checkpoint``'s training device and torch version as one line, e.g. ``cuda (NVIDIA
    H100 80GB HBM3), torch 2.9.1``; "not recorded" for a checkpoint saved before they were
    (2026-12-07), or none."""
    trained_on = (checkpoint or {}).get("trained_on")
    if not trained_on:
        return NOT_RECORDED
    text = trained_on["type"] + (f" ({trained_on['name']})" if trained_on.get("name") else "")
    torch_version = (checkpoint.get("versions") or {}).get("torch")
    return f"{text}, torch {torch_version}" if torch_version else text


# What a classifier says of its encoder's training where contrastive pretraining was off.
SUPCON_OFF = (
    "none (contrastive pretraining off: the classifier was fine-tuned from the encoder's "
    "initial weights)"
)


def encoder_training_record(pretrained: Mapping[str, Any]) -> dict[str, Any]:
    """What a classifier records of the encoder it was fine-tuned from, for its
    ``encoder_trained_on``: whether contrastive pretraining trained it (``supcon``) and, if
    so, the encoder checkpoint's ``trained_on`` and torch version (``versions``), which
    :func:`describe_encoder_training_device` reads as :func:`describe_training_device` does.

    An encoder without a history is the initial weights (SupCon off, or 0 epochs): its
    ``trained_on`` names the device of a run that trained nothing, and is left out.
    """
    if not pretrained.get("history"):
        return {"supcon": False}
    torch_version = (pretrained.get("versions") or {}).get("torch")
    return {
        "supcon": True,
        "trained_on": pretrained.get("trained_on"),
        "versions": {"torch": torch_version} if torch_version else {},
    }


def describe_encoder_training_device(classifier: Mapping[str, Any] | None) -> str:
    """Where ``classifier``'s SupCon encoder was pretrained, as one line (as
    :func:`describe_training_device`); :data:`SUPCON_OFF` where contrastive pretraining was
    off; "not recorded" for a classifier saved before it was (2026-12-07), or an encoder
    saved before its device was."""
    record = (classifier or {}).get("encoder_trained_on")
    if not isinstance(record, Mapping):
        return NOT_RECORDED
    if not record.get("supcon"):
        return SUPCON_OFF
    return describe_training_device(record)


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file beside it, then a rename.

    A crash mid-write leaves the previous checkpoint intact (timm's ``CheckpointSaver``
    does the same). The file records the library versions it was saved with (``versions``,
    :func:`library_versions`) unless ``state`` names them already; they are recorded, not
    compared on load.
    """
    import torch

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if "versions" not in state:
        state = {**state, "versions": library_versions()}
    atomic_write(target, lambda file: torch.save(state, file))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint on the CPU with ``weights_only=True``.

    Raises:
        FileNotFoundError: Naming the path when there is no file.
        ValueError: Naming the path when the file is not a checkpoint dict (truncated,
            another format, or tensors that are not in a dict).
    """
    import torch

    target = Path(path)
    if not target.is_file():
        raise FileNotFoundError(f"No checkpoint at '{target}'")
    try:
        checkpoint = torch.load(target, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, KeyError, ...
        raise ValueError(
            f"'{target}' is not a readable checkpoint ({type(error).__name__}: {error})"
        ) from error
    if not isinstance(checkpoint, dict):
        raise ValueError(
            f"'{target}' holds a {type(checkpoint).__name__}, not a checkpoint of this "
            "project (a dict with kind, state_dict, ...)"
        )
    return checkpoint


def state_fingerprint(checkpoint: dict[str, Any]) -> str:
    """SHA-256 of a checkpoint's weights (every ``state_dict`` name, dtype, shape and byte).

    Ties an output made from a model, such as the operating point fitted for a classifier,
    to exactly that model.
    """
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(checkpoint["state_dict"].items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def require_kind(checkpoint: dict[str, Any], kind: str) -> None:
    """Fail with a clear message when ``checkpoint`` is not of the expected ``kind``."""
    if checkpoint.get("kind") != kind:
        raise ValueError(f"expected a '{kind}' checkpoint, got kind {checkpoint.get('kind')!r}")


def to_cpu(obj: Any) -> Any:
    """Copy every tensor in a nested structure to the CPU (checkpoints are device-free), and
    turn NumPy scalars (``np.float64(0.5)``, a ``float`` to Python) into Python numbers:
    pickled as NumPy objects, ``torch.load(weights_only=True)`` refused the checkpoint that
    had been saved over a readable one."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


# What a resume needs beyond the checkpoint itself (engine.fit saves them each epoch).
TRAINING_STATE = frozenset({"optimizer", "scheduler", "scaler", "stateful", "rng"})


class CheckpointStore:
    """The folder where one training run keeps its latest epoch, for ``resume``.

    The engine calls ``save`` at the end of every epoch; a resumed run calls ``latest``.
    Kedro hands a store to a node through ``CheckpointStoreDataset``, so that the folder's
    path lives in the catalog and the node never opens files itself.
    """

    def __init__(self, directory: str | os.PathLike, *, keep_epochs: bool = False) -> None:
        """Use ``directory`` (created on first save); with ``keep_epochs``, every epoch's
        checkpoint is also kept as ``epoch<N>.pt`` (``N`` its 0-based ``epoch``), without
        the training state (optimizer, scheduler, scaler, RNG) that only a resume needs."""
        self.directory = Path(directory)
        self.keep_epochs = keep_epochs

    def keeping_epochs(self) -> CheckpointStore:
        """This store, also keeping every epoch's checkpoint."""
        return CheckpointStore(self.directory, keep_epochs=True)

    def save(self, state: dict[str, Any]) -> None:
        """Atomically replace the run's latest checkpoint (and keep this epoch's if asked)."""
        state = to_cpu(state)
        save_checkpoint(state, self.directory / LAST)
        if self.keep_epochs:
            weights = {k: v for k, v in state.items() if k not in TRAINING_STATE}
            save_checkpoint(weights, self.directory / f"epoch{state['epoch']}.pt")

    def latest(self) -> dict[str, Any] | None:
        """The latest complete epoch's checkpoint, or ``None`` when the run has none."""
        path = self.directory / LAST
        return load_checkpoint(path) if path.is_file() else None

    def child(self, name: str) -> CheckpointStore:
        """A store in a subfolder, for one phase of a multi-phase run."""
        return CheckpointStore(self.directory / name)

    def clear(self) -> None:
        """Forget the run (a fresh run that must not resume), the epochs it kept included."""
        (self.directory / LAST).unlink(missing_ok=True)
        for kept in self.directory.glob("epoch*.pt"):
            kept.unlink()

    def __repr__(self) -> str:
        return f"CheckpointStore('{self.directory}')"
