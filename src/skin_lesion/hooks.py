"""Project hooks: log each run's training curves, test metrics and key files to MLflow.

kedro-mlflow (a Kedro plugin that registers itself) opens one MLflow run per ``kedro run``
and logs the parameters every node reads, flattened (``classifier_training.finetune.epochs``).
``MlflowOutputsHook`` adds what the plugin cannot know about, as each output is saved:

- ``pretraining_history``: ``pretraining/<key>`` per epoch (``loss``, ``lr``, ...).
- ``training_history``: ``<phase>/<key>`` per epoch and phase (``warmup/loss``,
  ``finetune/balanced_accuracy``, ...). The step is the epoch within its phase, so each
  phase's curves start at step 0 and hold one point per epoch that ran.
- ``test_metrics``: every number of the JSON as ``test/<path>`` (``test/balanced_accuracy``,
  ``test/per_class/mel/recall``, ``test/bootstrap/macro_f1/low``, ...), step 0.
- Files: ``classifier`` and ``pretrained_encoder`` under ``checkpoints/``, ``report`` and
  ``test_metrics`` under ``reporting/``, every ``*_plot`` figure under ``reporting/figures/``.
- Tags that say what the run's outputs were made from (``lineage_tags``), so runs can be
  searched and compared by them: ``metadata_sha256`` (the validated metadata table, as the
  report's dataset fingerprint gives it), ``split_sha256``
  (every image's label and split) and ``classifier_sha256`` (the classifier's weights, as
  ``test_metrics``' operating point records it). A run that only reports takes the split
  and classifier from the checkpoint it scored.

It logs only while an MLflow run is active, i.e. while kedro-mlflow tracks this run; with
tracking off (``disable_tracking`` in ``mlflow.yml``) it does nothing.

A run stopped before its end is marked ``KILLED``: kedro-mlflow ends a run at the pipeline's
end or error, but Ctrl-C is neither (Kedro prints ``Aborted!``, and MLflow's own exit handler
then ended the run as ``FINISHED``), and a ``kill`` (SIGTERM) ended the process with the run
left ``RUNNING`` for good. In the ``kedro run`` command, while a pipeline runs, a first SIGTERM
raises ``SystemExit`` (exit status 143) so that exit handlers run, and one of ours ends a run
still open then as ``KILLED``; a second SIGTERM ends the process at once. Notebooks, tests
and other programs running a session in-process keep their own SIGTERM handling.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import re
import signal
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io import AbstractDataset, AbstractVersionedDataset, CatalogProtocol
from kedro.pipeline import Pipeline

logger = logging.getLogger(__name__)

# Per-epoch histories: dataset -> metric prefix for records without a ``phase`` key.
HISTORIES = {"pretraining_history": "pretraining", "training_history": "training"}
TEST_METRICS = "test_metrics"
# Files logged as artifacts: dataset -> folder in the run's artifacts.
ARTIFACTS = {
    "classifier": "checkpoints",
    "pretrained_encoder": "checkpoints",
    "report": "reporting",
    "test_metrics": "reporting",
}
# The reporting figures ("{name}_plot" in the catalog) go to reporting/figures/.
FIGURE_SUFFIX, FIGURE_FOLDER = "_plot", "reporting/figures"
# test_metrics leaves that are settings (already logged as parameters), not results.
TEST_SETTINGS = {
    "operating_point",
    "n_resamples",
    "confidence",
    "bins",
    "target_sensitivity",
    "single_lesion_strata",  # a count about the split, shown by the report
}
# test_metrics.json's numbers that come from the validation split (the melanoma threshold
# chosen there, and its result there): logged under ``val/``, not among the test scores.
_FROM_VALIDATION = re.compile(
    r"^test/(?P<path>.*/)(?:val_(?P<score>\w+)|(?P<threshold>threshold))$"
)
# Fitted on the validation split and applied to test (the calibration's temperature): under
# ``val/`` too.
_FITTED_ON_VALIDATION = {"test/calibration/temperature"}
# Characters MLflow accepts in a metric name (mlflow.utils.validation); others become "_".
_INVALID_NAME_CHARS = re.compile(r"[^\w\-. /]")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _metric_name(*parts: str) -> str:
    return _INVALID_NAME_CHARS.sub("_", "/".join(parts))


def history_metrics(
    records: Iterable[Mapping[str, Any]], default_phase: str
) -> list[tuple[int, dict[str, float]]]:
    """One ``(step, {name: value})`` per epoch record of a training history.

    Args:
        records: Dicts with ``epoch`` and optionally ``phase``; every other numeric key
            becomes the metric ``<phase>/<key>``.
        default_phase: The prefix for records without a ``phase``.

    Returns:
        ``(epoch, metrics)`` pairs in record order; the step is the epoch within its phase.
    """
    out = []
    for record in records:
        phase = str(record.get("phase", default_phase))
        values = {
            _metric_name(phase, key): float(value)
            for key, value in record.items()
            if key not in ("phase", "epoch") and _is_number(value)
        }
        out.append((int(record["epoch"]), values))
    return out


def _numbers(tree: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """The finite numeric leaves of nested dicts, named by their key path joined with ``/``."""
    out: dict[str, float] = {}
    for key, value in tree.items():
        if key in TEST_SETTINGS:
            continue
        if isinstance(value, Mapping):
            out.update(_numbers(value, _metric_name(prefix, str(key))))
        elif _is_number(value):
            out[_metric_name(prefix, str(key))] = float(value)
    return out


def scalar_test_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The scalar results of ``test_metrics`` as ``test/<path>`` metric names.

    The JSON's ``test`` section (accuracy, balanced accuracy, F1, AUC, per class) moves up
    one level (``test/accuracy``, not ``test/test/accuracy``). Lists (the confusion matrix),
    strings and undefined values (``None``) are left out; the JSON itself is an artifact.
    Settings repeated in the JSON (the operating point, bootstrap size) are left out too.
    The validation numbers in it (the melanoma threshold chosen on validation and its
    ``val_sensitivity``/``val_specificity``) go under ``val/`` (until 2026-12-07 they were
    logged under ``test/``, where a search on ``test/*`` mixed them with test scores), as does
    the calibration's temperature, fitted there (``val/calibration/temperature``; under
    ``test/`` until 2026-12-07, the second time).
    """
    results = {**metrics.get("test", {}), **{k: v for k, v in metrics.items() if k != "test"}}
    out = {}
    for name, value in _numbers(results, "test").items():
        found = _FROM_VALIDATION.match(name)
        if found:
            name = f"val/{found['path']}{found['score'] or found['threshold']}"
        elif name in _FITTED_ON_VALIDATION:
            name = "val/" + name.removeprefix("test/")
        out[name] = value
    return out


def _saved_file(dataset: AbstractDataset) -> Path | None:
    """The local file a dataset has just written, or ``None`` if it is not one."""
    # Kedro has no public API for "the path just saved"; kedro-mlflow's MlflowArtifactDataset
    # reads the same attributes. A versioned save goes to <filepath>/<save version>/<name>.
    filepath = getattr(dataset, "_filepath", None)
    if filepath is None or getattr(dataset, "_protocol", "file") not in ("file", "local"):
        return None
    if isinstance(dataset, AbstractVersionedDataset):
        version = dataset.resolve_save_version()
        if version is not None:
            filepath = dataset._get_versioned_path(version)
    path = Path(str(filepath))
    return path if path.is_file() else None


# Inputs whose lineage tags a run that reads them without making them also sets (the classifier
# is left out: its test_metrics names it, and fingerprinting its weights on every load costs).
LINEAGE_INPUTS = ("cached_metadata", "splits", TEST_METRICS)


def lineage_tags(dataset_name: str, data: Any) -> dict[str, str]:
    """MLflow tags naming the data, split and classifier a saved output belongs to."""
    # Imported here: Kedro loads this module for every command, and these bring in torch.
    from skin_lesion.checkpoints import state_fingerprint
    from skin_lesion.lineage import DATA_KEY, SPLIT_KEY, split_fingerprint
    from skin_lesion.provenance import dataset_fingerprint

    tags: dict[str, Any] = {}
    if dataset_name == "cached_metadata":
        tags["metadata_sha256"] = dataset_fingerprint(data)["metadata_sha256"]
    elif dataset_name == "splits":
        tags[SPLIT_KEY] = split_fingerprint(data)
    elif dataset_name in ("pretrained_encoder", "classifier"):
        tags[SPLIT_KEY] = (data.get("params") or {}).get(SPLIT_KEY)
        learnt_from = (data.get("params") or {}).get(DATA_KEY) or {}
        tags["train_val_images_sha256"] = learnt_from.get("images")
        if dataset_name == "classifier":
            tags["classifier_sha256"] = state_fingerprint(data)
    elif dataset_name == TEST_METRICS:
        tags[SPLIT_KEY] = data.get(SPLIT_KEY)
        tags["classifier_sha256"] = (data.get("operating_point") or {}).get("classifier_sha256")
    return {k: str(v) for k, v in tags.items() if v is not None}


def code_tags() -> dict[str, str]:
    """MLflow tags naming the code that ran: MLflow's own ``mlflow.source.git.commit`` (its UI
    shows it as the run's source version) and ``code_changes``, the number of uncommitted
    changes to the code (``provenance.code_version``), each only where known: none for an
    installed package; in a copy without git, the commit only where its ``CODE_VERSION.json``
    matches the copy's files, and ``code_src_tree`` always."""
    from skin_lesion.provenance import code_version

    code = code_version()
    if code is None:
        return {}
    tags = {"mlflow.source.git.commit": code["commit"], "code_changes": code["changed"]}
    if "stamp" in code:
        tags |= {"code_src_tree": code["src_tree"], "code_stamp": code["stamp"]}
    return {key: str(value) for key, value in tags.items() if value is not None}


# Whether a pipeline is running (between before_pipeline_run and its end or error), for the
# exit handler that marks a run still open at exit as KILLED.
_RUNNING = {"pipeline": False, "exit_handler": False}


def end_interrupted_run() -> None:
    """At exit: end the active MLflow run as ``KILLED`` if its pipeline never finished or
    failed (Ctrl-C, SIGTERM); registered once, after MLflow's own handler, so it runs first
    (``atexit`` runs the last registered first)."""
    if _RUNNING["pipeline"] and mlflow.active_run() is not None:
        logger.warning("the run was interrupted: its MLflow run is marked KILLED")
        mlflow.end_run(status="KILLED")
    _RUNNING["pipeline"] = False


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM as an orderly exit, once: the default action is back in place first, so a
    second SIGTERM ends the process at once (a node on another thread of a ThreadRunner
    would otherwise be waited for)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise SystemExit(128 + signum)


def _is_kedro_command() -> bool:
    """Whether this process is ``kedro run`` (or ``python -m kedro run``), not a notebook, a
    test or another program running a session in-process, whose own handling of SystemExit
    (a notebook catches it) must not meet a SIGTERM turned into one."""
    program = Path(sys.argv[0])
    if program.parts[-2:] == ("skin_lesion", "__main__.py"):
        return True  # `python -m skin_lesion`: the packaged project's `kedro run`
    kedro = (
        program.name in ("kedro", "kedro.exe")
        or program.parts[-2:] == ("kedro", "__main__.py")
        # kedro/__main__.py renames argv[0] so before its CLI starts: `python -m kedro run`
        # never showed the path above, and a SIGTERM left its MLflow run RUNNING.
        or sys.argv[0] == "python -m kedro"
    )
    return kedro and sys.argv[1:2] == ["run"]


# The run's slicing options as `kedro run` spells them, in its --help's order.
SLICE_OPTIONS = (
    ("from_inputs", "--from-inputs"),
    ("to_outputs", "--to-outputs"),
    ("from_nodes", "--from-nodes"),
    ("to_nodes", "--to-nodes"),
    ("node_names", "--nodes"),
    ("tags", "--tags"),
    ("namespaces", "--namespaces"),
)
RUN_NAME_LIMIT = 250  # MLflow refuses longer run names


def slice_description(run_params: Mapping[str, Any]) -> str:
    """The slicing options of a run as on its command line (``--from-nodes evaluate_test``),
    empty for a whole pipeline."""
    parts = []
    for key, option in SLICE_OPTIONS:
        value = run_params.get(key)
        if value:
            listed = [value] if isinstance(value, str) else list(value)
            parts.append(f"{option} {','.join(map(str, listed))}")
    if run_params.get("only_missing_outputs"):
        parts.append("--only-missing-outputs")
    return " ".join(parts)


def name_slice(run_id: str, run_name: str | None, run_params: Mapping[str, Any]) -> None:
    """Name a run that kedro-mlflow named after its pipelines alone: their names in
    alphabetical order, then the slicing options.

    Every partial run (``--from-nodes evaluate_test``, ``--nodes build_report``) was named
    ``__default__`` like a whole run, so the MLflow UI's list could not tell them apart; and
    several pipelines came in no fixed order (Kedro's CLI passes ``--pipelines`` on through a
    set, so one command was ``reporting+classifier_training`` in one run and
    ``classifier_training+reporting`` in the next). A name set in ``mlflow.yml``
    (``tracking.run.name``) is left as it is: only a name equal to the pipelines' (kedro-mlflow's
    default) is changed.
    """
    described = slice_description(run_params)
    # kedro-mlflow's default name, as it makes it.
    names = run_params.get("pipeline_name") or run_params.get("pipeline_names") or "__default__"
    default = names if isinstance(names, str) else "+".join(names)
    if run_name != default:
        return
    name = names if isinstance(names, str) else "+".join(sorted(names))
    name = f"{name} {described}" if described else name
    if name == run_name:
        return
    if len(name) > RUN_NAME_LIMIT:
        name = name[: RUN_NAME_LIMIT - 3] + "..."
    mlflow.MlflowClient().update_run(run_id, name=name)


class MlflowOutputsHook:
    """Logs training histories, test metrics and checkpoint/report files to the active run,
    and marks a run interrupted before its end ``KILLED``."""

    def __init__(self) -> None:
        """Start with no catalog; ``before_pipeline_run`` hands it over."""
        self._catalog: CatalogProtocol | None = None
        self._code_tagged = False
        self._tagged_inputs: set[str] = set()
        self._previous_sigterm: Any = None
        self._run_id: str | None = None
        self._lock = threading.Lock()

    @hook_impl(trylast=True)  # after kedro-mlflow's, which starts the run
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol
    ) -> None:
        """Keep the run's catalog: ``after_dataset_saved`` needs it to find saved files.
        Make SIGTERM an orderly exit while the pipeline runs (main thread, default handler
        only: a handler someone else installed is left alone)."""
        self._catalog = catalog
        self._code_tagged = False
        self._tagged_inputs: set[str] = set()
        # MLflow's active run is per thread: `--async` loads inputs, and ThreadRunner runs
        # nodes, in threads where it is None. The run's id, for tags set from those threads.
        active = mlflow.active_run()
        self._run_id = active.info.run_id if active is not None else None
        if active is not None:
            name_slice(active.info.run_id, active.info.run_name, run_params)
        _RUNNING["pipeline"] = True
        self._previous_sigterm = None
        with contextlib.suppress(ValueError):  # not the main thread: signals left alone
            if _is_kedro_command() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                self._previous_sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)

    @hook_impl
    def before_node_run(self) -> None:
        """Register the exit handler once, now that kedro-mlflow has started the run (and
        MLflow registered its own exit handler, which must run after ours)."""
        if not _RUNNING["exit_handler"]:
            atexit.register(end_interrupted_run)
            _RUNNING["exit_handler"] = True

    def _finished(self) -> None:
        self._catalog = None
        self._run_id = None
        _RUNNING["pipeline"] = False
        if self._previous_sigterm is not None:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        """Log a saved output that MLflow should hold, if an MLflow run is active."""
        if mlflow.active_run() is None:
            return
        if not self._code_tagged:  # the run is active from the first save on, whichever hook
            mlflow.set_tags(code_tags())  # of kedro-mlflow and ours runs first
            self._code_tagged = True
        if dataset_name in HISTORIES:
            for step, values in history_metrics(data, HISTORIES[dataset_name]):
                mlflow.log_metrics(values, step=step)
        if dataset_name == TEST_METRICS:
            mlflow.log_metrics(scalar_test_metrics(data), step=0)
        tags = lineage_tags(dataset_name, data)
        if tags:
            mlflow.set_tags(tags)
        folder = ARTIFACTS.get(dataset_name)
        if folder is None and dataset_name.endswith(FIGURE_SUFFIX):
            folder = FIGURE_FOLDER
        if folder is not None and self._catalog is not None:
            self._log_file(dataset_name, folder)

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str, data: Any, node: Any) -> None:
        """Tag the run with what the inputs it reads were made from, where it does not make
        them (``reporting`` alone, a ``--from-nodes build_report`` rebuild, ``inference``):
        the metadata, split and classifier its outputs come from, as a full run's saves tag
        them. Each input once a run."""
        if dataset_name not in LINEAGE_INPUTS:
            return
        active = mlflow.active_run()
        run_id = active.info.run_id if active is not None else self._run_id
        if run_id is None:
            return
        with self._lock:  # ThreadRunner and --async load in several threads at once
            if dataset_name in self._tagged_inputs:
                return
            self._tagged_inputs.add(dataset_name)
        tags = lineage_tags(dataset_name, data)
        if not tags:
            return
        if active is not None:
            mlflow.set_tags(tags)
            return
        client = mlflow.MlflowClient()  # a loading thread with no active run: by the run's id
        for key, value in tags.items():
            client.set_tag(run_id, key, value)

    def _log_file(self, dataset_name: str, folder: str) -> None:
        path = _saved_file(self._catalog.get(dataset_name))
        if path is None:
            logger.warning("MLflow: '%s' is not a local file; not logged", dataset_name)
            return
        mlflow.log_artifact(str(path), artifact_path=folder)

    @hook_impl
    def after_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol
    ) -> None:
        """Drop the catalog at the end of the run; SIGTERM as it was."""
        self._finished()

    @hook_impl
    def on_pipeline_error(
        self,
        error: Exception,
        run_params: dict[str, Any],
        pipeline: Pipeline,
        catalog: CatalogProtocol,
    ) -> None:
        """Drop the catalog when the run fails (kedro-mlflow marks it FAILED)."""
        self._finished()
