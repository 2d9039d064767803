"""What a trained model was made from, and a check that it still matches the inputs at hand.

Kedro reruns only the pipelines asked for. After a new split (another ``seed`` or
``validation_fold``) or a new image cache (other preprocessing), ``kedro run --pipeline
reporting`` would score the old classifier on test images it may have trained on, and
``classifier_training`` would fine-tune a SupCon encoder that learnt from the old labels.
Each checkpoint therefore records the split's fingerprint, the cache's settings and the
fingerprint of the data it learnt from (an image replaced and data_processing rerun changes
neither of the others), and the stage that reads it checks them against its own inputs,
naming the pipeline to rerun.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from typing import Any

import pandas as pd

from skin_lesion.config import ConfigError, from_dict, parameter_differences
from skin_lesion.configs import PretrainConfig
from skin_lesion.splits import ASSIGNMENT

logger = logging.getLogger(__name__)

SPLIT_KEY = "split_sha256"
# Where a checkpoint's params keep each group's settings with every default filled in, so
# that a default changed in the code later still counts as a difference.
SETTINGS_KEY = "settings"
# Recorded in a training run's params so that resume compares them too: the image cache's
# preprocessing (data_processing may have run again with other settings) and, for the
# classifier, the weights of the encoder it starts from (contrastive_pretraining may have).
CACHE_KEY = "cache_preprocessing"
ENCODER_KEY = "encoder_sha256"
# The content the run learnt from, beyond the split (ids, labels) and the cache's settings:
# ``images``, the fingerprint of the train and val images' pixels; for a classifier with
# metadata fusion, ``metadata``, that of their age/sex/localization rows. An image replaced
# (or a fusion value edited) and data_processing rerun leaves the split and the settings as
# they were; only this tells. Test images do not count: the model never saw them, and a
# replaced test image is scored as it now is.
DATA_KEY = "data_sha256"
# The order of the train images in the cache, which DATA_KEY leaves out: each epoch's batches
# are a permutation of their positions, so the same images cached in another order train
# another model. data_processing caches in image_id order (since 2026-12-07; before, in the
# metadata's row order): resume compares it, for a cache rebuilt across that change.
ORDER_KEY = "train_order_sha256"
# The metadata a classifier with metadata fusion reads, with the key that joins it.
FUSION_COLUMNS = ("image_id", "age", "sex", "localization")


# The default pipelines in the order they run: each reads what the one before it made.
PIPELINE_ORDER = ("data_processing", "contrastive_pretraining", "classifier_training", "reporting")


class StaleInputError(RuntimeError):
    """A checkpoint was made from other splits or another image cache than the current ones.

    Attributes:
        pipelines: The pipelines the message says to rerun, in :data:`PIPELINE_ORDER` (all of
            them for a whole ``kedro run``), for code that acts on it (the notebooks'
            check) rather than reading the message; None where the raise site names none.
    """

    def __init__(self, message: str, *, pipelines: Iterable[str] | None = None) -> None:
        super().__init__(message)
        self.pipelines = None if pipelines is None else _ordered(pipelines)


def _ordered(pipelines: Iterable[str]) -> tuple[str, ...]:
    """``pipelines`` once each, those of :data:`PIPELINE_ORDER` in its order, others after."""
    named = set(pipelines)
    rank = {name: k for k, name in enumerate(PIPELINE_ORDER)}
    return tuple(sorted(named, key=lambda name: (rank.get(name, len(rank)), name)))


def rerun_pipelines(rerun: str) -> tuple[str, ...]:
    """The pipelines of a ``rerun`` argument (``"contrastive_pretraining,classifier_training"``)."""
    return _ordered(name.strip() for name in rerun.split(",") if name.strip())


def all_of(*checks: Callable[[], None]) -> None:
    """Run every check, then raise one ``StaleInputError`` naming every check that failed, so
    that a user who changed two settings learns both at once, not one per run.

    Raises:
        StaleInputError: The one failure's message, or each failure's, numbered.
    """
    problems: list[str] = []
    pipelines: list[str] | None = []  # None once a failure names none
    for check in checks:
        try:
            check()
        except StaleInputError as error:  # one of all_of's own keeps its items apart
            problems += getattr(error, "problems", None) or [str(error)]
            named = getattr(error, "pipelines", None)
            pipelines = None if pipelines is None or named is None else [*pipelines, *named]
    if len(problems) == 1:
        raise StaleInputError(problems[0], pipelines=pipelines)
    if problems:
        error = StaleInputError(
            f"{len(problems)} inputs or settings differ from what the output was made with:\n"
            + "\n".join(f"  {k}. {problem}" for k, problem in enumerate(problems, 1)),
            pipelines=pipelines,
        )
        error.problems = problems
        raise error


def split_fingerprint(splits: pd.DataFrame) -> str:
    """SHA-256 of every ``image_id, label, split`` triple, in image_id order.

    Two splits files share it exactly when every image has the same label and split; the
    fold column and row order do not count.
    """
    missing = {"image_id", "label", "split"} - set(splits.columns)
    if missing:
        raise ValueError(f"splits lack column(s) {sorted(missing)}")
    ordered = splits.sort_values("image_id", kind="stable")
    digest = hashlib.sha256()
    for image_id, label, split in zip(
        ordered["image_id"], ordered["label"], ordered["split"], strict=True
    ):
        digest.update(f"{image_id},{int(label)},{split}\n".encode())
    return digest.hexdigest()


# How many names a raw-data difference lists before "...".
SHOWN = 5


# Where raw_data_read keeps the fingerprint of the rows validation kept (rows_fingerprint).
VALIDATED_KEY = "validated_sha256"


def rows_fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of a table's values as text, rows in ``image_id`` order and columns in name
    order: the same for a frame and its Parquet round trip (dtypes aside)."""
    columns = sorted(map(str, frame.columns))
    ordered = frame.set_axis(list(map(str, frame.columns)), axis=1)[columns]
    if "image_id" in ordered.columns:
        ordered = ordered.sort_values("image_id", kind="stable")
    text = ordered.astype(object).where(ordered.notna(), "").astype(str)
    return hashlib.sha256(text.to_csv(index=False, lineterminator="\n").encode()).hexdigest()


def train_order_fingerprint(image_cache: Any, splits: pd.DataFrame) -> str:
    """SHA-256 of the train images' ``image_id``s in cache order (what the batch order
    permutes), unlike :func:`data_fingerprint`, which does not depend on the order."""
    train = set(splits.loc[splits["split"] == "train", "image_id"].astype(str))
    digest = hashlib.sha256()
    for image_id in image_cache.image_ids:
        if image_id in train:
            digest.update(f"{image_id}\n".encode())
    return digest.hexdigest()


# The splits whose images a model learns from (train) or is chosen on (val).
LEARNT_FROM = ("train", "val")


def data_fingerprint(
    image_cache: Any, splits: pd.DataFrame, cached_metadata: pd.DataFrame | None = None
) -> dict[str, str]:
    """``DATA_KEY``'s value: the fingerprint of ``image_cache``'s train and val images (by
    ``splits``) and, where ``cached_metadata`` is given, of their fusion columns."""
    learnt = splits["split"].isin(LEARNT_FROM).to_numpy()
    ids = set(splits["image_id"].astype(str)[learnt]) & set(image_cache.image_ids)
    recorded = {"images": image_cache.fingerprint(ids)}
    if cached_metadata is not None:
        missing = [c for c in FUSION_COLUMNS if c not in cached_metadata.columns]
        if missing:
            raise ValueError(f"cached_metadata lacks column(s) {missing}")
        rows = cached_metadata[list(FUSION_COLUMNS)]
        rows = rows[rows["image_id"].astype(str).isin(ids)]
        recorded["metadata"] = rows_fingerprint(rows.reset_index(drop=True))
    return recorded


DATA_CHANGES = {
    "images": "other train/val images than the current `image_cache` holds (pixels "
    "fingerprint {then} then, {now} now: an image was replaced, edited or decoded "
    "differently since)",
    "metadata": "other train/val age/sex/localization values (metadata fusion) than the "
    "current `cached_metadata` lists (fingerprint {then} then, {now} now)",
}


def data_changes(recorded: Any, current: Mapping[str, Any] | None) -> list[str]:
    """What of ``DATA_KEY``'s ``recorded`` value differs from ``current`` (each part both
    hold; a checkpoint or cache from before it was recorded has none), as message parts."""
    if not isinstance(recorded, Mapping) or not current:
        return []
    return [
        DATA_CHANGES[part].format(then=str(recorded[part])[:12], now=str(current[part])[:12])
        for part in DATA_CHANGES
        if recorded.get(part) is not None
        and current.get(part) is not None
        and recorded[part] != current[part]
    ]


def _labelled(frame: pd.DataFrame) -> set[tuple[str, int]]:
    return set(zip(frame["image_id"].astype(str), frame["label"].astype(int), strict=True))


def check_made_from(
    read: Mapping[str, Any],
    validated: pd.DataFrame,
    cache: Any = None,
    cached: pd.DataFrame | None = None,
    splits: pd.DataFrame | None = None,
) -> None:
    """Refuse to record ``read`` for outputs of data_processing that come from different runs
    (a run that failed midway, then a slice of the pipeline): the validated rows must be
    those validation wrote with ``read``, the cache's rows some of them, and the splits'
    images and labels the cache's. ``cache`` with ``cached``, and ``splits``, are compared
    where given (before a run, the outputs it will not make again).

    Raises:
        StaleInputError: Naming the outputs that do not match.
    """
    problems = []
    if read.get(VALIDATED_KEY) != rows_fingerprint(validated):
        problems.append(
            "`validated_metadata` is not the table validation wrote with `raw_data_read`"
        )
    if cache is not None and cached is not None:
        ids = [str(i) for i in cached["image_id"]]
        if ids != [str(i) for i in cache.image_ids]:
            problems.append("`cached_metadata` does not list the image cache's images")
        known = set(map(str, validated["image_id"]))
        if not set(ids) <= known:
            problems.append("the image cache holds images `validated_metadata` does not")
        else:
            rows = validated.set_axis(list(validated["image_id"].astype(str)), axis=0).loc[ids]
            if rows_fingerprint(rows.reset_index(drop=True)) != rows_fingerprint(cached):
                problems.append("the image cache was made from other validated rows")
    if splits is not None and cached is not None and _labelled(splits) != _labelled(cached):
        problems.append("`splits` were made from another image cache")
    if problems:
        raise StaleInputError(
            "data_processing's outputs come from different runs (one stopped midway, then a "
            f"part of the pipeline run alone): {'; '.join(problems)}. Rerun `kedro run "
            "--pipelines data_processing` in full (add the same --env/--params).",
            pipelines=("data_processing",),
        )


def raw_data_record(
    raw_images: Mapping[str, Any],
    raw_metadata: pd.DataFrame,
    files: Iterable[str] | None = None,
) -> dict[str, Any]:
    """What data_processing read: a digest of each metadata row, by ``image_id``, and the
    size of each image file it used, by path, so that a later run can name what changed.

    Image files are compared by size, not content: reading every file again on each run
    would cost as much as decoding them, and a file replaced by another image (another
    resolution, another lesion) all but always changes size. A moved raw folder with the
    same files, a reordered or re-quoted metadata file, CRLF line ends, blank lines: all the
    same record.

    Args:
        raw_images: ``raw_images`` as loaded: path -> loader, whose ``size()`` gives the
            file's size (``ImageFolderDataset``'s); a loader without one counts as size None.
        raw_metadata: ``raw_metadata`` as loaded (its values as text).
        files: The image files to record (``validated_metadata.file``: those the rows use,
            so that files data_processing sets aside, Kaggle's second copies or a
            ``._`` file, do not count); None: every file. One not in ``raw_images`` is
            recorded as None (absent).
    """
    columns = sorted(map(str, raw_metadata.columns))
    frame = raw_metadata.set_axis(list(map(str, raw_metadata.columns)), axis=1)[columns]
    rows: dict[str, list[str]] = {}
    image_ids = frame["image_id"] if "image_id" in frame.columns else [""] * len(frame)
    for image_id, values in zip(image_ids, frame.itertuples(index=False, name=None), strict=True):
        cells = [None if pd.isna(v) or str(v) == "" else str(v) for v in values]
        if all(cell is None or not cell.strip() for cell in cells):
            continue  # a blank line, or one of only spaces: no row (validation skips it too)
        text = json.dumps(cells, ensure_ascii=False)
        rows.setdefault("" if pd.isna(image_id) else str(image_id), []).append(text)
    digests = {
        image_id: hashlib.sha256("\n".join(sorted(texts)).encode()).hexdigest()[:16]
        for image_id, texts in sorted(rows.items())
    }
    wanted = sorted(raw_images) if files is None else sorted(set(map(str, files)))
    return {
        "folder": _folder(raw_images),
        "metadata_columns": columns,
        "metadata_rows": sum(len(texts) for texts in rows.values()),
        "metadata": digests,
        "images": {path: _size(raw_images.get(path)) for path in wanted},
    }


def _folder(raw_images: Mapping[str, Any]) -> str | None:
    """The folder the image files were listed under (a loader's path less its key)."""
    for key, loader in raw_images.items():
        path = str(getattr(loader, "path", ""))
        if path.endswith("/" + key):
            return path[: -len(key) - 1]
    return None


def _size(loader: Any) -> int | None:
    size = getattr(loader, "size", None)  # None too for a file not listed
    try:
        return None if size is None else int(size())
    except OSError:
        return None  # a broken link: decoding rejects it with the reason


def _named(names: list[str]) -> str:
    shown = [name or "<empty image_id>" for name in names[:SHOWN]]
    return ", ".join(shown) + (", ..." if len(names) > SHOWN else "")


def _counted(groups: Iterable[tuple[list[str], str]]) -> list[str]:
    """``"2 changed (a, b)"`` for each non-empty ``(names, label)`` group, in order."""
    return [f"{len(names)} {label} ({_named(names)})" for names, label in groups if names]


def _row_changes(then: Mapping[str, Any], now: Mapping[str, Any], what: str) -> str | None:
    """``"meta.csv, the rows of image_id: 2 changed (a, b); 1 added (c)"``, or None."""
    parts = _counted(
        (
            (sorted(k for k in then.keys() & now.keys() if then[k] != now[k]), "changed"),
            (sorted(now.keys() - then.keys()), "added"),
            (sorted(then.keys() - now.keys()), "removed"),
        )
    )
    return f"{what}: {'; '.join(parts)}" if parts else None


def _file_changes(then: Mapping[str, Any], now: Mapping[str, Any]) -> str | None:
    """``"image files: 1 changed size (a); 2 missing (b, c)"``, or None: the recorded files
    only (a file added since, used by no row then, is not one data_processing read)."""
    gone = sorted(p for p, size in then.items() if size is not None and now.get(p) is None)
    resized = sorted(p for p, size in then.items() if now.get(p) is not None and now.get(p) != size)
    parts = _counted(((resized, "changed size"), (gone, "missing")))
    return f"image files: {'; '.join(parts)}" if parts else None


def raw_data_at_hand(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether any image file data_processing used is there now (a project whose processed
    data were copied to another machine without the images has none)."""
    images = recorded.get("images") or {}
    return not images or any((current.get("images") or {}).get(p) is not None for p in images)


def check_raw_data(
    recorded: Mapping[str, Any],
    current: Mapping[str, Any],
    rerun: str,
    metadata: str = "the metadata",
    images: bool = True,
) -> None:
    """Refuse outputs of data_processing made from other raw data than is there now.

    Args:
        recorded: ``raw_data_record`` as data_processing saved it.
        current: ``raw_data_record`` of the raw data now, of the files ``recorded`` names.
        rerun: ``kedro run`` with the run's ``--env``, for the advice.
        metadata: The metadata file's name, for the message.
        images: Whether to compare the image files (False where none of them is at hand).

    Raises:
        StaleInputError: Naming the metadata rows (by image_id) that changed, were added or
            were removed, and the image files that changed size or are missing, the first
            few of each; and the folder data_processing read where it was another.
    """
    problems = []
    then_columns = list(recorded.get("metadata_columns") or [])
    now_columns = list(current.get("metadata_columns") or [])
    if then_columns != now_columns:
        # Lead with the difference (a Kaggle and a Dataverse copy differ by a column or two),
        # then both lists in full.
        changes = [
            f"{label} {names}"
            for label, names in (
                ("added", sorted(set(now_columns) - set(then_columns))),
                ("removed", sorted(set(then_columns) - set(now_columns))),
            )
            if names
        ]
        problems.append(
            f"{metadata}'s columns changed ({'; '.join(changes) or 'repeated'}): they are now "
            f"{now_columns}, then {then_columns}"
        )
    else:
        rows = _row_changes(
            recorded.get("metadata") or {},
            current.get("metadata") or {},
            f"{metadata}, the rows of image_id",
        )
        problems += [rows] if rows else []
    files = _file_changes(recorded.get("images") or {}, current.get("images") or {})
    problems += [files] if files and images else []
    if not problems:
        return
    then, now = recorded.get("folder"), current.get("folder")
    if then and now and then != now:
        where = f"in {now} differ from those data_processing read in {then}"
    else:
        where = f"{f'in {now}' if now else 'at hand'} changed since data_processing read them"
    raise StaleInputError(
        f"the raw data {where}: {'; and '.join(problems)}. The image cache, the splits and "
        "every model and figure after them were made from the data as they were. Rerun "
        f"data_processing (`{rerun} --pipelines data_processing`, then the stages after it, "
        f"each naming what it needs) or the whole `{rerun}` (any other --params of yours in the "
        "same --params, comma-separated: a second --params replaces the first), or put "
        "the old data back.",
        pipelines=("data_processing",),
    )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def check_checkpoint_inputs(
    checkpoint: Mapping[str, Any],
    what: str,
    rerun: str,
    *,
    splits: pd.DataFrame | None = None,
    cache_preprocessing: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
) -> None:
    """Refuse ``checkpoint`` when it was made from other splits, another cache or other data.

    Args:
        checkpoint: A ``pretrained_encoder`` or ``classifier`` checkpoint.
        what: Its catalog name, for the message.
        rerun: The pipeline that remakes it from the current inputs.
        splits: The current splits; compared with the recorded fingerprint.
        cache_preprocessing: The current ``image_cache.preprocessing``; compared with the
            settings of the cache the checkpoint was trained on.
        data: The current :func:`data_fingerprint`; compared with the recorded one, part by
            part (a part either side lacks is not compared), unless the splits differ (and
            the images unless the cache's preprocessing does: either explains the change).

    Raises:
        StaleInputError: Naming what differs and the command that fixes it. A checkpoint
            without a recorded fingerprint (made before it was recorded) passes the split
            check.
    """
    problems = []
    recorded = (checkpoint.get("params") or {}).get(SPLIT_KEY)
    split_changed = False
    if splits is not None and recorded is not None:
        current = split_fingerprint(splits)
        if recorded != current:
            split_changed = True  # other train/val images, so their data differs too
            problems.append(
                f"it was trained on other splits (fingerprint {recorded[:12]}) than the current "
                f"`splits` ({current[:12]}), so images now in val or test may have been training "
                "images"
            )
    trained_on = (checkpoint.get("preprocessing") or {}).get("cache")
    current_cache = None if cache_preprocessing is None else _canonical(dict(cache_preprocessing))
    cache_changed = trained_on is not None and current_cache not in (
        None,
        _canonical(trained_on),
    )
    if cache_changed:
        problems.append(
            f"it was trained on an image cache made with {_canonical(trained_on)}, but the "
            f"current `image_cache` was made with {current_cache}"
        )
    if not split_changed and data:
        # Other preprocessing makes other pixels: that is said above, not as a new image.
        now = {k: v for k, v in data.items() if not (cache_changed and k == "images")}
        problems += [
            f"it was trained on {change}"
            for change in data_changes((checkpoint.get("params") or {}).get(DATA_KEY), now)
        ]
    if problems:
        raise StaleInputError(
            f"`{what}` is stale: {'; and '.join(problems)}. Rerun "
            f"`kedro run --pipelines {rerun}` (add the same --env/--params) to remake it "
            "from the current inputs.",
            pipelines=rerun_pipelines(rerun),
        )


def check_cache_settings(
    cache_preprocessing: Mapping[str, Any], configured: Mapping[str, Any]
) -> None:
    """Refuse an image cache made with other preprocessing than the parameters now say.

    Args:
        cache_preprocessing: ``image_cache.preprocessing`` (what the cache was made with).
        configured: ``PreprocessConfig.to_dict()`` of ``data_processing.preprocessing``.
    """
    if _canonical(dict(cache_preprocessing)) != _canonical(dict(configured)):
        from skin_lesion.config import parameter_differences

        changed = parameter_differences(
            json.loads(_canonical(dict(cache_preprocessing))),
            json.loads(_canonical(dict(configured))),
            "data_processing.preprocessing",
        )
        raise StaleInputError(
            "`image_cache` is stale: it was made with other preprocessing than "
            f"data_processing.preprocessing now says ({'; '.join(changed)}). Rerun `kedro run "
            "--pipelines data_processing` (add the same --env/--params) to remake it, then the "
            "stages after it, or restore the settings.",
            pipelines=("data_processing",),
        )


def encoder_of(pretrained: Mapping[str, Any]) -> dict[str, Any]:
    """The ``encoder`` settings (``name``, ``weights``) a pretrained encoder was built from."""
    return {
        "name": pretrained["architecture"]["encoder"],
        "weights": pretrained.get("initial_weights"),
    }


def check_encoder_settings(
    made: Mapping[str, Any],
    encoder: Mapping[str, Any],
    what: str = "pretrained_encoder",
    rerun: str = "contrastive_pretraining",
) -> None:
    """Refuse an output built from another ``encoder`` than the parameters say.

    Args:
        made: The ``encoder`` settings it was built from (``encoder_of``).
        encoder: ``params:encoder`` (``name`` and ``weights``).
        what: The output's catalog name.
        rerun: The pipeline(s) that remake it.
    """
    wanted = {"name": encoder.get("name"), "weights": encoder.get("weights")}
    differing = [k for k in wanted if made.get(k) != wanted[k]]
    if differing:
        raise StaleInputError(
            f"`{what}` is stale: it was built from encoder "
            + ", ".join(f"{k}={made.get(k)!r}" for k in differing)
            + ", but the parameters now say "
            + ", ".join(f"encoder.{k}={wanted[k]!r}" for k in differing)
            + f". Rerun `kedro run --pipelines {rerun}` (add the same --env/--params) to "
            "remake it, or restore the settings.",
            pipelines=rerun_pipelines(rerun),
        )


# contrastive_pretraining settings that do not change the pretrained weights.
PRETRAINING_EXEMPT = frozenset(
    {"resume", "progress", "compile", "placement", "amp", "channels_last"}
    | {"export_embeddings", "embed_batch_size", "keep_epochs", "knn_monitor"}
)


def check_pretraining_settings(
    checkpoint: Mapping[str, Any],
    contrastive: Mapping[str, Any],
    what: str = "pretrained_encoder",
    rerun: str = "contrastive_pretraining",
) -> None:
    """Refuse an output whose encoder was pretrained with other SupCon settings than now.

    Args:
        checkpoint: A ``pretrained_encoder``, or a ``classifier`` (which records the settings
            of the encoder it was fine-tuned from); one without a readable record passes.
        contrastive: ``params:contrastive_pretraining``.
        what: The output's catalog name.
        rerun: The pipeline(s) that remake it.

    SupCon off and SupCon with 0 epochs are the same (the initial weights); between on and
    off only that is named, not every setting of the run that did not happen.
    """
    then = recorded_config(checkpoint, "contrastive_pretraining", PretrainConfig)
    if then is None:
        return
    now = from_dict(PretrainConfig, contrastive, "contrastive_pretraining")
    trained_then, trained_now = then.enabled and then.epochs > 0, now.enabled and now.epochs > 0
    if not (trained_then or trained_now):
        return  # initial weights either way
    key = "enabled and epochs > 0"
    both = trained_then and trained_now
    check_settings(
        asdict(then) if both else {key: trained_then},
        asdict(now) if both else {key: trained_now},
        "contrastive_pretraining",
        what,
        rerun,
        PRETRAINING_EXEMPT,
    )


def check_seed(checkpoint: Mapping[str, Any], seed: int, what: str, rerun: str) -> None:
    """Refuse an output trained with another ``seed`` than the parameters now say (the
    report and MLflow would list a seed it was not trained with); an unrecorded seed passes."""
    recorded = (checkpoint.get("params") or {}).get("seed")
    if recorded is not None and recorded != seed:
        raise StaleInputError(
            f"`{what}` is stale: it was trained with seed={recorded}, but the parameters now "
            f"say seed={seed}. Rerun `kedro run --pipelines {rerun} --params seed={seed}` (add "
            f"the same --env/--params) to train it with this seed, or pass --params "
            f"seed={recorded}.",
            pipelines=rerun_pipelines(rerun),
        )


# SplitConfig fields left out of the recorded settings: ``warn_share_gap`` does not change
# which image lands in which split, and the split's seed is recorded as ``seed`` (the one
# the split was drawn with, ``split.seed`` or the run's).
SPLIT_EXEMPT = frozenset({"warn_share_gap", "seed"})


def split_settings(split: Any, classes: list[str], seed: int) -> dict[str, Any]:
    """What ``split_summary`` records of the settings a split was made with.

    ``split`` is the ``SplitConfig``; ``seed`` the seed the split was drawn with. It is
    compared only against a ``data_processing.split.seed`` the parameters set: the run's
    ``seed`` may differ (the accuracy benchmark trains several seeds on one split).
    """
    return {
        "split": {k: v for k, v in asdict(split).items() if k not in SPLIT_EXEMPT},
        "classes": list(classes),
        "seed": seed,
        "assignment": ASSIGNMENT,
    }


def warn_earlier_assignment(recorded: Any) -> None:
    """Warn that splits were made by another lesion assignment than today's ``ASSIGNMENT``."""
    if recorded == ASSIGNMENT:
        return
    made = (
        "before 2026-12-06, by an earlier lesion assignment"
        if recorded is None
        else f"by the lesion assignment {recorded!r}, not today's {ASSIGNMENT!r}"
    )
    logger.warning(
        "`splits` were made %s, under which a small change to the data (one lesion fewer) "
        "could reshuffle a class; they are used as they are, and models trained on them stay "
        "valid. `kedro run --pipelines data_processing` remakes them with today's assignment, "
        "which gives other splits: every model must then be trained again",
        made,
    )


def check_split_settings(split_summary: Mapping[str, Any], split: Any, classes: list[str]) -> None:
    """Refuse ``splits`` made with other ``data_processing.split`` settings or classes than
    the parameters now say (``--params data_processing.split.validation_fold=1`` given to a
    run that does not make the splits would otherwise train on the old ones, while MLflow
    logged the new fold). A summary made before the settings were recorded passes.

    Splits made by another lesion assignment than today's (``splits.ASSIGNMENT``; none
    recorded: made before 2026-12-06) are used, with a warning saying so.
    """
    recorded = split_summary.get(SETTINGS_KEY)
    if not isinstance(recorded, Mapping):
        recorded = {}
    warn_earlier_assignment(recorded.get("assignment"))
    if not recorded:
        return
    now = split_settings(split, classes, seed=0)
    saved_split = recorded.get("split")
    if isinstance(saved_split, Mapping):  # recorded by a version that kept more fields
        saved_split = {k: v for k, v in saved_split.items() if k not in SPLIT_EXEMPT}
    differences = parameter_differences(
        {"data_processing": {"split": saved_split}, "classes": recorded.get("classes")},
        {"data_processing": {"split": now["split"]}, "classes": now["classes"]},
    )
    # A split seed the parameters name must be the one the splits were drawn with.
    drawn = recorded.get("seed")
    if split.seed is not None and drawn is not None and drawn != split.seed:
        differences.append(
            f"data_processing.split.seed: the splits were drawn with seed {drawn!r}, now "
            f"{split.seed!r}"
        )
    if differences:
        raise StaleInputError(
            f"`splits` is stale: they were made with other settings than the parameters now "
            f"say ({'; '.join(differences)}). Rerun `kedro run --pipelines data_processing` (add "
            "the same --env/--params) to remake them, then the stages after it, or restore "
            "the settings.",
            pipelines=("data_processing",),
        )


def recorded_config(checkpoint: Mapping[str, Any], group: str, config_class: type) -> Any:
    """The ``group`` settings a checkpoint recorded, as ``config_class``; None if unreadable.

    Reads the filled-in settings (``params.settings.<group>``) where the checkpoint has them,
    else the parameters as given (their missing keys then take today's defaults). A
    checkpoint from an older version may lack the group or hold keys that no longer exist;
    it is then not compared.
    """
    params = checkpoint.get("params") or {}
    recorded = (params.get(SETTINGS_KEY) or {}).get(group, params.get(group))
    if not isinstance(recorded, Mapping):
        return None
    try:
        return from_dict(config_class, recorded, group)
    except ConfigError:
        return None


def _without(settings: Mapping[str, Any], exempt: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k not in exempt}


def check_settings(
    recorded: Mapping[str, Any],
    current: Mapping[str, Any],
    group: str,
    what: str,
    rerun: str,
    exempt: frozenset[str] = frozenset(),
) -> None:
    """Refuse an output made with other ``group`` settings than the parameters now say.

    Args:
        recorded: The settings the output was made with (defaults filled in).
        current: The settings now (defaults filled in).
        group: The parameter group, for the message (``classifier_training``).
        what: The output's catalog name.
        rerun: The pipeline that remakes it.
        exempt: Top-level keys that do not change the output (progress bars, resume).
    """
    differences = parameter_differences(
        _without(recorded, exempt), _without(current, exempt), group
    )
    if differences:
        raise StaleInputError(
            f"`{what}` is stale: it was made with other {group} settings than the parameters "
            f"now say ({'; '.join(differences)}). Rerun `kedro run --pipelines {rerun}` (add "
            "the same --env/--params) to remake it, or restore the settings.",
            pipelines=rerun_pipelines(rerun),
        )


# Columns with which reporting's predictions name what made them (since 2026-12-07), and
# the SHA-256 of the pixels each row was predicted from (added later that day).
PREDICTED_BY = "classifier_sha256"
PREDICTED_TTA = "tta"
PREDICTED_PIXELS = "image_sha256"


def check_predictions(
    predictions: pd.DataFrame,
    what: str,
    classifier_sha256: str,
    tta: str,
    pixels: Mapping[str, str] | None = None,
    expected: Iterable[str] | None = None,
) -> None:
    """Refuse predictions made by another classifier or with another TTA than ``tta``: a run
    that starts after the predicting nodes (``--from-nodes evaluate_test``) fitted the
    operating point on them and recorded the current classifier's fingerprint and ``tta``,
    so inference accepted a temperature and threshold fitted for another model.

    ``pixels``: the SHA-256 of each image's pixels now, by ``image_id`` (the image cache's):
    predictions made from other pixels are refused too (a test image replaced and
    data_processing rerun: the classifier and its training data are unchanged, but the old
    predictions scored an image that is no longer there).

    ``expected``: the image_ids the predictions must hold, each once (the split's): a file
    cut short by a full disk or a kill at a row boundary reads as a valid, shorter table,
    and ``--from-nodes evaluate_test`` scored, calibrated and exported that subset.

    Raises:
        StaleInputError: Naming ``what``, the fingerprints, TTAs or images and the command to
            rerun; also for predictions that record none of them (made before they did).
    """
    rerun = (
        "Rerun `kedro run --pipelines reporting` (add the same --env/--params; it predicts again)."
    )
    if expected is not None and "image_id" in predictions.columns:
        wanted = {str(i) for i in expected}
        held = predictions["image_id"].astype(str)
        missing = sorted(wanted - set(held))
        extra = sorted(set(held) - wanted)
        repeated = sorted(set(held[held.duplicated()]))
        problems = _counted(
            ((missing, "missing"), (extra, "not of that split"), (repeated, "listed twice"))
        )
        if problems:
            raise StaleInputError(
                f"`{what}` does not hold the split's {len(wanted)} images, each once "
                f"({len(held)} rows: {'; '.join(problems)}): a write that did not finish (a "
                f"full disk, a killed run) or another split's file. {rerun}",
                pipelines=("reporting",),
            )
    if PREDICTED_BY not in predictions.columns or PREDICTED_TTA not in predictions.columns:
        raise StaleInputError(
            f"`{what}` does not record the classifier and TTA it was made with (made before "
            f"predictions did), so it cannot be scored as this classifier's. {rerun}",
            pipelines=("reporting",),
        )
    made_by = sorted(set(predictions[PREDICTED_BY].astype(str)))
    if made_by != [classifier_sha256]:
        raise StaleInputError(
            f"`{what}` is stale: it was predicted by classifier {', '.join(made_by)[:40]}…, "
            f"not by the current classifier.pt ({classifier_sha256[:12]}…). {rerun}",
            pipelines=("reporting",),
        )
    made_with = sorted(set(predictions[PREDICTED_TTA].astype(str)))
    if made_with != [tta]:
        raise StaleInputError(
            f"`{what}` is stale: it was predicted with tta {', '.join(made_with)}, but "
            f"reporting.tta is now {tta!r}. {rerun}",
            pipelines=("reporting",),
        )
    if pixels is None:
        return
    if PREDICTED_PIXELS not in predictions.columns:
        raise StaleInputError(
            f"`{what}` does not record the pixels of the images it scored (made before "
            f"predictions recorded them), so it cannot be told to be of the current images. "
            f"{rerun}",
            pipelines=("reporting",),
        )
    ids = predictions["image_id"].astype(str)
    then = predictions[PREDICTED_PIXELS].astype(str)
    gone = sorted(i for i in ids if i not in pixels)
    changed = sorted(i for i, d in zip(ids, then, strict=True) if i in pixels and pixels[i] != d)
    problems = _counted(
        (
            (changed, "now with other pixels in the image cache"),
            (gone, "no longer in the image cache"),
        )
    )
    if problems:
        raise StaleInputError(
            f"`{what}` is stale: it was predicted from images that have changed since: "
            f"{'; '.join(problems)} (data_processing was rerun on other images). {rerun}",
            pipelines=("reporting",),
        )


# What ``test_metrics`` records of the pixels its val and test predictions were made from.
SCORED_PIXELS = "scored_images_sha256"


def pixels_fingerprint(image_ids: Iterable[str], digests: Iterable[str]) -> str:
    """SHA-256 over each image's ``image_id`` and pixel SHA-256, in image_id order."""
    digest = hashlib.sha256()
    for image_id, pixels in sorted(zip(map(str, image_ids), map(str, digests), strict=True)):
        digest.update(f"{image_id},{pixels}\n".encode())
    return digest.hexdigest()


def scored_pixels(*predictions: pd.DataFrame) -> str | None:
    """:func:`pixels_fingerprint` of the rows of ``predictions`` together, or None where one
    does not record its pixels."""
    if any(PREDICTED_PIXELS not in frame.columns for frame in predictions):
        return None
    both = pd.concat([frame[["image_id", PREDICTED_PIXELS]] for frame in predictions])
    return pixels_fingerprint(both["image_id"], both[PREDICTED_PIXELS])


def check_scored_pixels(
    metrics: Mapping[str, Any], splits: pd.DataFrame, pixels: Mapping[str, str]
) -> None:
    """Refuse a ``test_metrics`` whose val and test predictions were made from other pixels
    than the image cache now holds for the val and test images of ``splits`` (a
    ``--nodes build_report`` run after a test image was replaced reported the old scores);
    one that records none passes (made before it did: the predictions are checked)."""
    recorded = metrics.get(SCORED_PIXELS)
    if recorded is None:
        return
    ids = [str(i) for i in splits.loc[splits["split"].isin(["val", "test"]), "image_id"]]
    if any(i not in pixels for i in ids) or recorded != pixels_fingerprint(
        ids, [pixels[i] for i in ids]
    ):
        raise StaleInputError(
            "`test_metrics` is stale: it scores predictions of val and test images that have "
            "changed since (other pixels, or other images in those splits: data_processing was "
            "rerun on other images or with another split). Rerun `kedro run --pipelines "
            "reporting` (add the same --env/--params; it predicts again).",
            pipelines=("reporting",),
        )


def check_operating_point(point: Mapping[str, Any], classifier_sha256: str, tta: str) -> None:
    """Refuse ``test_metrics`` fitted for another classifier or TTA than the current ones
    (a run of its figures or report alone would show them beside this classifier's
    settings); an operating point that records neither passes."""
    recorded = point.get(PREDICTED_BY)
    if recorded is not None and recorded != classifier_sha256:
        raise StaleInputError(
            f"`test_metrics` is stale: it scores classifier {str(recorded)[:12]}…, not the "
            f"current classifier.pt ({classifier_sha256[:12]}…). Rerun `kedro run --pipelines "
            "reporting` (add the same --env/--params).",
            pipelines=("reporting",),
        )
    if point.get(PREDICTED_TTA) not in (None, tta):
        raise StaleInputError(
            f"`test_metrics` is stale: it was fitted with tta {point.get(PREDICTED_TTA)!r}, but "
            f"reporting.tta is now {tta!r}. Rerun `kedro run --pipelines reporting` (add the "
            "same --env/--params).",
            pipelines=("reporting",),
        )


def check_fine_tuned_from(classifier: Mapping[str, Any], encoder_sha256: str) -> None:
    """Refuse SupCon outputs (curves, embeddings) of another encoder than the one the
    classifier was fine-tuned from, e.g. after ``--pipelines contrastive_pretraining`` was
    rerun alone; a classifier that does not record its encoder passes."""
    recorded = (classifier.get("params") or {}).get(ENCODER_KEY)
    if recorded is not None and recorded != encoder_sha256:
        raise StaleInputError(
            f"`pretrained_encoder` (with its pretraining_history and contrastive_embeddings) is "
            f"not the encoder the classifier was fine-tuned from ({encoder_sha256[:12]}… now, "
            f"{str(recorded)[:12]}… then): contrastive pretraining was rerun without "
            "classifier training. Rerun `kedro run --pipelines classifier_training,reporting`, "
            "or restore the encoder.",
            pipelines=("classifier_training", "reporting"),
        )


# The pipeline that makes each checkpoint.
MADE_BY = {"pretrained_encoder": "contrastive_pretraining", "classifier": "classifier_training"}


def check_history(history: Any, checkpoint: Mapping[str, Any], what: str, made_by: str) -> None:
    """Refuse a training history (``what``) other than the one ``checkpoint`` recorded: a
    classifier copied in from another run was plotted with the curves left by this one.
    A checkpoint without a history passes."""
    recorded = checkpoint.get("history")
    if recorded is None:
        return
    if _canonical(history) != _canonical(json.loads(_canonical(recorded))):
        raise StaleInputError(
            f"`{what}` is not the history `{made_by}` recorded (it was left by another run: "
            f"the figure would show curves of a model other than the one reported). Rerun the "
            f"pipeline that makes `{made_by}`, or restore the history it wrote with it.",
            pipelines=[MADE_BY[made_by]] if made_by in MADE_BY else None,
        )


# The raw-data record's key for the metadata validation limits data_processing applied
# (since 2026-12-07).
VALIDATION_KEY = "metadata_validation"


def check_validation_settings(
    recorded: Mapping[str, Any], now: Mapping[str, Any], rerun: str
) -> None:
    """Refuse outputs of data_processing validated with other ``data_processing.metadata``
    limits (ages, sexes) than the parameters now say: a training run records the current
    ones in the classifier, and inference then applied limits the training data were not
    held to (it refused the classifier's own training images as out of range). A record
    without them (made before they were recorded) passes.

    Raises:
        StaleInputError: Naming each limit, then and now, and the command that remakes the
            outputs.
    """
    then = recorded.get(VALIDATION_KEY)
    if not isinstance(then, Mapping):
        return
    differ = {k: (then.get(k), v) for k, v in now.items() if k in then and then[k] != v}
    if differ:
        shown = ", ".join(
            f"data_processing.metadata.{k}={old!r} then, {new!r} now"
            for k, (old, new) in differ.items()
        )
        raise StaleInputError(
            f"the outputs of data_processing were validated with other metadata limits ({shown}). "
            f"Rerun `{rerun}` to validate with the new ones, or pass the ones they were made with.",
            pipelines=PIPELINE_ORDER,
        )
