"""Helpers for the notebooks in ``notebooks/``.

A notebook opened before its pipelines ran (a fresh clone, or another ``KEDRO_ENV``) would
otherwise stop at its first ``catalog.load`` with a long traceback that ends in a file not
found; :func:`require_outputs` names what is missing and the command that makes it.

A notebook opened after one pipeline was rerun without the ones after it (``--pipelines
data_processing`` with another split, ``--pipelines classifier_training`` without reporting)
would show the old classifier's metrics and figures beside the new splits without a word:
:func:`require_results_current` and :func:`require_data_current` make the lineage checks
that ``kedro run`` makes before a stage reads them (:mod:`skin_lesion.lineage`), and name
what is stale and the command that makes it current.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from skin_lesion import lineage
from skin_lesion.lineage import StaleInputError


class PipelineNotRunError(RuntimeError):
    """The Kedro environment's catalog lacks outputs a notebook reads."""


def _location(catalog: Any, name: str) -> str:
    """Where the catalog keeps ``name`` (its file or folder), or "" when it cannot say."""
    try:
        described = catalog.get(name)._describe()
    except Exception:  # only a hint in an error message
        return ""
    where = described.get("filepath") or described.get("path")
    return f" ({where})" if where else ""


def require_outputs(catalog: Any, names: Sequence[str], *, env: str | None, run: str) -> None:
    """Raise :class:`PipelineNotRunError` unless every catalog entry in ``names`` exists.

    Args:
        catalog: The notebook's Kedro ``catalog``.
        names: The entries the notebook loads that a pipeline writes.
        env: The session's environment (``context.env``; None: base plus local).
        run: The command that writes them, without ``--env`` (added for ``env``).
    """
    missing = [name for name in names if not catalog.exists(name)]
    if not missing:
        return
    command = f"{run} --env {env}" if env else run
    listed = ", ".join(f"{name}{_location(catalog, name)}" for name in missing)
    raise PipelineNotRunError(
        f"Kedro environment {env or 'local (default)'!r} has no {listed} yet. Run first, in "
        f"that environment: `{command}`; then restart the kernel and run this notebook again. "
        "For another environment's outputs: `%reload_kedro --env NAME` (or start Jupyter with "
        "KEDRO_ENV=NAME)."
    )


class StaleOutputsError(StaleInputError):
    """Outputs a notebook reads were made by different runs (a pipeline rerun without the
    ones after it) and do not belong together."""


# The default pipelines in the order they run: each reads what the one before it made.
PIPELINE_ORDER = lineage.PIPELINE_ORDER
# For an error raised without ``pipelines`` (by code of its own): the ones its text names.
_RERUN = re.compile(r"`kedro run(?: --env \S+)? --pipelines ([\w,]+)")


def _rerun(error: StaleInputError) -> set[str]:
    """The pipelines ``error`` says to rerun: its ``pipelines``, else those its message names
    in a ``kedro run --pipelines`` command."""
    named = getattr(error, "pipelines", None)
    if named is not None:
        return set(named)
    return {name for found in _RERUN.findall(str(error)) for name in found.split(",")}


def _stale(error: StaleInputError, env: str | None, last: str) -> StaleOutputsError:
    """``error`` (one of :mod:`skin_lesion.lineage`'s, as ``kedro run`` gives it) said for a
    notebook: in which environment, and one command that runs every pipeline from the
    earliest one it names through ``last`` (the last whose outputs the notebook reads: once
    a pipeline is rerun, those after it are stale in turn)."""
    named = _rerun(error)
    first = min((PIPELINE_ORDER.index(n) for n in named if n in PIPELINE_ORDER), default=0)
    chain = PIPELINE_ORDER[first : PIPELINE_ORDER.index(last) + 1]
    command = "kedro run" if chain == PIPELINE_ORDER else f"kedro run --pipelines {','.join(chain)}"
    command += f" --env {env}" if env else ""
    return StaleOutputsError(
        f"Kedro environment {env or 'local (default)'!r}: the outputs this notebook reads were "
        "not made from each other (a pipeline was rerun without the ones after it, or the raw "
        "data changed), so it would show stale results beside current ones. "
        f"{error}\nTo make them all current, run in that environment `{command}` (with any "
        "--params your runs used), then restart the kernel and run this notebook again.",
        pipelines=chain,
    )


def check_results_current(catalog: Any) -> None:
    """Refuse what ``02_inspect_results`` reads when one output is not made from the others,
    by the checks ``kedro run --pipelines reporting`` makes before it scores a classifier
    (:func:`skin_lesion.parameters_check.check_classifier_current`), minus those against the
    parameters (a notebook shows the outputs, not the settings):

    * the classifier against the current splits, image cache and train/val data
      (``lineage.check_checkpoint_inputs``): ``--pipelines data_processing`` rerun with other
      split settings or other raw data;
    * ``test_predictions`` and ``test_metrics`` against the classifier, the test split and
      the cache's pixels (``lineage.check_predictions``, ``check_operating_point``,
      ``check_scored_pixels``): ``--pipelines classifier_training`` rerun without reporting;
    * the training histories against the checkpoints that recorded them, and the pretrained
      encoder (with its history and embeddings) against the one the classifier was
      fine-tuned from (``lineage.check_history``, ``check_fine_tuned_from``).

    Fingerprints and recorded digests only: no forward pass, no read of the image pixels.

    Raises:
        StaleInputError: Every problem, numbered, each naming the pipeline to rerun.
    """
    from skin_lesion.checkpoints import state_fingerprint
    from skin_lesion.pipelines.reporting.nodes import RERUN_ALL

    classifier = catalog.load("classifier")
    cache = catalog.load("image_cache")
    splits = catalog.load("splits")
    predictions = catalog.load("test_predictions")
    metrics = catalog.load("test_metrics")
    made_by = state_fingerprint(classifier)
    tta = str(metrics.get("tta"))  # the TTA the notebook's Grad-CAM averages over
    pixels = cache.digests_by_id()
    test_ids = splits.loc[splits["split"] == "test", "image_id"].astype(str)
    checks = [
        lambda: lineage.check_checkpoint_inputs(
            classifier,
            "classifier",
            RERUN_ALL,
            splits=splits,
            cache_preprocessing=cache.preprocessing,
            data=lineage.data_fingerprint(cache, splits, catalog.load("cached_metadata")),
        ),
        lambda: lineage.check_predictions(
            predictions, "test_predictions", made_by, tta, pixels, test_ids
        ),
        lambda: lineage.check_operating_point(metrics.get("operating_point") or {}, made_by, tta),
        lambda: lineage.check_scored_pixels(metrics, splits, pixels),
        lambda: lineage.check_history(
            catalog.load("training_history"), classifier, "training_history", "classifier"
        ),
    ]
    if "pretrained_encoder" in catalog and catalog.exists("pretrained_encoder"):
        encoder = catalog.load("pretrained_encoder")
        checks += [
            lambda: lineage.check_fine_tuned_from(classifier, state_fingerprint(encoder)),
            lambda: lineage.check_history(
                catalog.load("pretraining_history"),
                encoder,
                "pretraining_history",
                "pretrained_encoder",
            ),
        ]
    lineage.all_of(*checks)


def check_data_current(catalog: Any, names: Sequence[str], env: str | None) -> None:
    """Refuse outputs of data_processing (``names``, read beside ``raw_metadata`` by
    ``01_explore_data``) made from other raw data than is there now, or by different runs,
    with the check ``kedro run`` makes before a pipeline that reads them
    (:func:`skin_lesion.parameters_check.check_raw_data_current`), minus the one against the
    parameters, as in :func:`check_results_current`: a notebook shows the outputs, not the
    settings, and has no ``--params`` (outputs validated with ``--params
    data_processing.metadata.max_age=...`` were refused, however often remade)."""
    from kedro.pipeline import Node, Pipeline

    from skin_lesion.parameters_check import check_raw_data_current

    reads = Pipeline([Node(_reads, list(names), None, name="notebook")])
    check_raw_data_current(reads, catalog, env, settings=False)


def _reads(*_: Any) -> None:
    """The function of the node that stands for a notebook's reads."""


def require_results_current(catalog: Any, *, env: str | None) -> None:
    """:func:`check_results_current`, its refusal said for the notebook
    (:class:`StaleOutputsError`: in which environment, and one ``kedro run`` for all)."""
    try:
        check_results_current(catalog)
    except StaleInputError as error:
        raise _stale(error, env, "reporting") from None


def require_data_current(catalog: Any, names: Sequence[str], *, env: str | None) -> None:
    """:func:`check_data_current`, its refusal said for the notebook."""
    try:
        check_data_current(catalog, names, env)
    except StaleInputError as error:
        raise _stale(error, env, "data_processing") from None
