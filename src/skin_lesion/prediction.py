"""Class probabilities of cached images from a classifier, with optional test-time augmentation.

Used for validation during training, for the test split (reporting) and for new images
(inference). The images stay uint8 in the cache; each batch is moved to the device and
preprocessed there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from skin_lesion import engine

if TYPE_CHECKING:
    from skin_lesion.classifier import Classifier


# Test-time augmentation: views of a square NCHW batch. Dermoscopy has no canonical
# orientation, so flips and 90-degree rotations are label-preserving.
TTA_VIEWS = {
    "none": (0,),
    "flips": (0, 1, 2, 3),
    "dihedral": (0, 1, 2, 3, 4, 5, 6, 7),
}


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th element of the dihedral group D4 acting on the last two dims."""
    if k >= 4:
        x = x.transpose(-1, -2)
        k -= 4
    return {0: x, 1: x.flip(-1), 2: x.flip(-2), 3: x.flip(-1).flip(-2)}[k]


def undo_dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The inverse of :func:`dihedral` ``k``: ``undo_dihedral(dihedral(x, k), k) == x``."""
    if k < 4:
        return dihedral(x, k)  # the flips are their own inverses
    return dihedral(x, k - 4).transpose(-1, -2)


@torch.no_grad()
def predict_proba(
    model: Classifier,
    images: np.ndarray,
    indices: np.ndarray,
    *,
    transform: nn.Module,
    device: torch.device,
    meta: np.ndarray | None = None,
    batch_size: int = 256,
    precision: engine.Precision | None = None,
    progress: bool = False,
    tta: str = "none",
) -> np.ndarray:
    """Softmax probabilities ``(len(indices), K)`` of ``images[indices]``, in order.

    ``tta``: ``none``; ``flips`` (identity, horizontal, vertical, both = 180-degree
    rotation); ``dihedral`` (those and their transposes: all flips and 90-degree
    rotations). The probabilities are the mean of the views' softmax outputs.
    """
    if tta not in TTA_VIEWS:
        raise ValueError(f"tta must be one of {sorted(TTA_VIEWS)}, got {tta!r}")
    model.eval()
    out = []
    autocast = precision.autocast if precision is not None else engine.Precision(device).autocast
    for start in tqdm(
        range(0, len(indices), batch_size), desc="predict", disable=not progress, leave=False
    ):
        rows = indices[start : start + batch_size]
        x = transform(torch.from_numpy(np.ascontiguousarray(images[rows])).to(device))
        m = None if meta is None else torch.from_numpy(meta[rows]).to(device)
        probs = 0.0
        for k in TTA_VIEWS[tta]:
            with autocast():
                logits = model(dihedral(x, k), m)
            probs = probs + torch.softmax(logits.float(), dim=1)
        out.append((probs / len(TTA_VIEWS[tta])).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.head[-1].out_features))
