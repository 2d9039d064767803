"""Real-data accuracy of the whole pipeline, over several training seeds.

Usage:
    python benchmarks/accuracy.py --setting cpu-quick [--data DIR] [--seeds 0 1 2]
        [--ablation NAME] [--params key=value ...] [--work-dir data/benchmarks]
    python benchmarks/accuracy.py --setting cpu-quick --compare
    python benchmarks/accuracy.py --compare-runs BASELINE RUN
    python benchmarks/accuracy.py --compare-spread BASELINE RUN
    python benchmarks/accuracy.py --setting cpu-quick --folds 0 1 2 3 4 [--seeds 0]
    python benchmarks/accuracy.py --setting cpu-quick --split-seeds 1 2 3 42 [--seeds 0]
    python benchmarks/accuracy.py --setting cpu-quick [--seeds ...|--folds ...] --rescore
    python benchmarks/accuracy.py --setting gpu-full [same arguments as the cut run] --resume

A setting is a Kedro environment (``cpu-quick`` -> ``conf/cpu_quick``, ``gpu-full`` ->
``conf/gpu_full``); an ablation is a named set of parameter overrides on top of it (see
``ABLATIONS``). For each run the command copies ``conf/`` and ``pyproject.toml`` into
``<work-dir>/<name>/`` (a throwaway Kedro project, so nothing under ``data/`` of the checkout
is touched), runs ``data_processing`` once (the lesion-grouped split uses the environment's
``seed``, so every training seed is scored on the same test lesions), then for each training
seed runs ``contrastive_pretraining``, ``classifier_training`` and ``reporting`` with
``--params seed=<k>``. Each pipeline runs in its own process, which gives its wall time and
peak host memory (the child's ``ru_maxrss``) and, on CUDA, its peak GPU memory.

Writes ``benchmarks/results/accuracy/<name>/seed<k>.json`` per seed (so seeds can run in
separate invocations) and aggregates every seed file present into
``benchmarks/results/accuracy-<name>.json`` and ``.md``: mean and standard deviation over seeds
of balanced accuracy, macro-F1, macro AUC, accuracy, melanoma sensitivity at argmax and at the
threshold chosen on validation, each seed's lesion-bootstrap 95% interval, device, package
versions and the dataset's SHA-256 (of the metadata file and the sorted image list).

Each run keeps its training outputs (checkpoints, validation predictions, histories) under
``<work-dir>/<name>/kept/<label>/``; ``--rescore`` (same arguments otherwise) reruns only
``reporting`` on them and replaces the test figures of each record, for a change to the
reporting that should not need training again. The record keeps training's stages and
validation figures and says when and where it was rescored.

A run cut short (a time limit, a lost machine) is finished with ``--resume`` and its own
arguments: seeds (folds) already recorded are kept, and the stages the cut one finished are
not run again, since their outputs are still in the throwaway project (``progress.json`` there
says which; written before and after every stage). It refuses progress or records left with
other settings, parameters, data, device, packages or code.

``--folds`` runs grouped cross-validation instead: for each fold ``k``, ``data_processing``
again with ``data_processing.split.validation_fold=k`` (fold ``k`` of train+val validates, the
other folds train, the test lesions stay the same), then one training seed; it writes
``fold<k>.json`` under ``<name>`` (default ``<setting>[-<ablation>]-cv``) and the summary is
over folds: how much the figures move with the training and validation lesions drawn.

``--split-seeds`` runs the setting on other train/val/test splits instead (repeated hold-out):
for each split seed ``k``, ``data_processing`` again with ``data_processing.split.seed=k``
(every stage of the draw gets it), then one training seed; it writes ``split<k>.json`` under
``<name>`` (default ``<setting>[-<ablation>]-splits``) and the summary is over draws, each with
its own test split: how much the figures move with the test lesions drawn.

``--pretraining-from RUN`` takes each seed's (fold's) ``contrastive_pretraining`` outputs from
run ``RUN``'s kept outputs (the same label: ``seed<k>``, ``fold<k>``) instead of training
SupCon again, for an ablation that changes only ``classifier_training`` or ``reporting``
(``cross-entropy``, ``metadata-fusion``, ``weighted-sampling``): the stage is the same run for
run, so this halves the time such an ablation takes at ``gpu-full`` and pairs it with the
setting on the very same encoder. It refuses overrides that reach the split or the
pretraining, and a source recorded on other data, device, packages or code; each record
names the encoder's source (``pretraining_from``).

An ablation that would change nothing in the setting (``no-contrastive`` where SupCon is
already off) is refused. ``--compare`` sets each ablation run of a setting beside the setting
on the seeds both have, difference taken seed by seed (``accuracy-<setting>-ablations.md``),
each cross-validation ablation beside ``<setting>-cv`` fold by fold
(``accuracy-<setting>-cv-ablations.md``), and each split-draw ablation beside
``<setting>-splits`` split seed by split seed (``accuracy-<setting>-splits-ablations.md``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import yaml
from scipy import stats

import skin_lesion
from skin_lesion.provenance import code_version, cpu_name

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "ham10000_200x150"
SETTINGS = {"cpu-quick": "cpu_quick", "gpu-full": "gpu_full"}
TRAINING_PIPELINES = ("contrastive_pretraining", "classifier_training", "reporting")
FOLD_KEY = "data_processing.split.validation_fold"
SPLIT_SEED_KEY = "data_processing.split.seed"
# A record's unit (the key that tells its runs apart) -> its file and label prefix.
LABELS = {"seed": "seed", "fold": "fold", "split_seed": "split"}
# A run's name suffix by unit (``--name`` default: ``<setting>[-<ablation>]<suffix>``).
SUFFIXES = {"seed": "", "fold": "-cv", "split_seed": "-splits"}
RUN_KINDS = {
    "seed": "a seed run",
    "fold": "a cross-validation run",
    "split_seed": "a run over split draws",
}
# Named parameter overrides for the ablations; each flips one choice of the method.
ABLATIONS = {
    "no-contrastive": {"contrastive_pretraining.enabled": False},
    "contrastive": {"contrastive_pretraining.enabled": True},
    "metadata-fusion": {"classifier_training.metadata_fusion": True},
    "no-metadata-fusion": {"classifier_training.metadata_fusion": False},
    # Same inverse-frequency class weights, without the focal term.
    "cross-entropy": {"classifier_training.loss.name": "weighted_cross_entropy"},
    # Re-balance by sampling instead of by loss weights (never both: docs/classifier_training.md).
    "weighted-sampling": {
        "classifier_training.sampling": "inverse",
        "classifier_training.loss.alpha": "none",
    },
}
# A run's training outputs, relative to the data folder: each run keeps a copy under
# ``<work-dir>/<name>/kept/<label>/`` so ``--rescore`` can rerun the reporting on it.
KEPT = (
    "06_models/classifier.pt",
    "06_models/pretrained_encoder.pt",
    "07_model_output/val_predictions.csv",
    "07_model_output/contrastive_embeddings.parquet",
    "08_reporting/training_history.json",
    "08_reporting/pretraining_history.json",
)
# What --pretraining-from copies: the contrastive_pretraining stage's outputs.
PRETRAINING_KEPT = (
    "06_models/pretrained_encoder.pt",
    "07_model_output/contrastive_embeddings.parquet",
    "08_reporting/pretraining_history.json",
)
# Overrides that leave data_processing and contrastive_pretraining as they are.
CLASSIFIER_SIDE = ("classifier_training.", "reporting.")
PACKAGES = ("torch", "torchvision", "timm", "kedro", "scikit-learn", "numpy")
# (label, path in test_metrics.json, bootstrap key or None)
METRICS = (
    ("balanced_accuracy", ("test", "balanced_accuracy"), "balanced_accuracy"),
    ("macro_f1", ("test", "macro_f1"), "macro_f1"),
    ("macro_auc", ("test", "macro_auc"), "macro_auc"),
    ("accuracy", ("test", "accuracy"), None),
    ("mel_sensitivity_argmax", ("melanoma", "argmax", "sensitivity"), "melanoma_sensitivity"),
    (
        "mel_sensitivity_threshold",
        ("melanoma", "validated_threshold", "sensitivity"),
        "melanoma_sensitivity_at_threshold",
    ),
    (
        "mel_specificity_threshold",
        ("melanoma", "validated_threshold", "specificity"),
        "melanoma_specificity_at_threshold",  # bootstrapped since 2026-12-06
    ),
)


def setting_parameters(env: str, conf: Path = ROOT / "conf") -> dict:
    """The parameters an environment resolves to (base merged with ``env``), as Kedro loads them."""
    from skin_lesion.settings import CONFIG_LOADER_ARGS, CONFIG_LOADER_CLASS

    loader = CONFIG_LOADER_CLASS(
        conf_source=str(conf), **{**CONFIG_LOADER_ARGS, "default_run_env": env}
    )
    return loader["parameters"]


# Parameters a run sets per stage, not part of what the run is: the data folder (compared by
# its SHA-256), the training seed (one record each) and the cross-validation fold. (A run over
# split draws sets SPLIT_SEED_KEY per draw, not in its overrides: its records say
# ``split_seed``, and the parameters keep the environment's value.)
PER_RUN = ("raw_dir", "seed", FOLD_KEY)


def merge(base: dict, extra: dict) -> dict:
    """``base`` with ``extra`` merged in, nested dicts key by key (as Kedro merges ``--params``)."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def flatten(tree: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists are values."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def run_parameters(env: str, overrides: dict, conf: Path = ROOT / "conf") -> dict:
    """Every parameter a run's stages resolve, flat (``a.b``): the environment's configuration
    with the run's overrides, less what differs per seed or fold (:data:`PER_RUN`).

    Recorded with each seed so that a run filed under one name cannot mix configurations: the
    overrides alone do not show an edit to ``conf/`` between two seeds of one run.
    """
    flat = flatten(merge(setting_parameters(env, conf), nest(overrides)))
    return {k: v for k, v in flat.items() if k not in PER_RUN}


def parameters_at(commit: str, env: str, overrides: dict) -> dict | None:
    """:func:`run_parameters` with ``conf/`` as it was at ``commit`` (None where git cannot
    show it): for records written before the parameters were recorded."""
    import io
    import tarfile
    import tempfile

    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit, "conf"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        try:
            return run_parameters(env, overrides, Path(tmp) / "conf")
        except Exception:  # an old conf the current loader cannot read: unknown
            return None


def recorded_parameters(record: dict, cache: dict | None = None) -> tuple[dict | None, str]:
    """The parameters a record ran with, and where they come from: the record's own
    ``parameters``, else its commit's ``conf/`` (when that commit had no uncommitted changes),
    else None (unknown)."""
    if record.get("parameters") is not None:
        return record["parameters"], "recorded"
    code = record.get("code") or {}
    commit = code.get("commit")
    if not commit or code.get("changed") or code.get("package"):
        return None, "not recorded"
    key = (commit, record.get("env"), json.dumps(record.get("overrides"), sort_keys=True))
    cache = {} if cache is None else cache
    if key not in cache:
        cache[key] = parameters_at(commit, record.get("env", ""), record.get("overrides") or {})
    found = cache[key]
    return found, f"conf at its commit {commit[:10]}" if found is not None else "not recorded"


# Parameters added since records were kept, each with the value that does what every run
# before it did: a record without the key ran with that value, so a run with another differs.
EARLIER_VALUES = {
    "reporting.bootstrap.stratified": False,
    # null: the split drawn with the run's seed, as before the key existed (2026-12-06).
    "data_processing.split.seed": None,
}
# The intervals a report from before they said their kind had: 95%, not stratified.
EARLIER_BOOTSTRAP = {"confidence": 0.95, "stratified": False}


def parameter_differences(theirs: dict, ours: dict) -> tuple[list[str], list[str]]:
    """Keys whose values differ (both have them, or one has one of ``EARLIER_VALUES`` and
    the other ran before it), and keys only one side has (others added since)."""
    theirs = {**{k: v for k, v in EARLIER_VALUES.items() if k in ours}, **theirs}
    ours = {**{k: v for k, v in EARLIER_VALUES.items() if k in theirs}, **ours}
    both = sorted(k for k in set(theirs) & set(ours) if theirs[k] != ours[k])
    one = sorted(set(theirs) ^ set(ours))
    return both, one


def describe_differences(
    keys: list[str],
    theirs: dict,
    ours: dict,
    labels: tuple[str, str] = ("there", "now"),
    limit: int = 6,
) -> str:
    """``a.b 96 there, 128 now; ...`` for the first ``limit`` keys (absent: ``None``)."""
    shown = "; ".join(
        f"{k} {theirs.get(k)!r} {labels[0]}, {ours.get(k)!r} {labels[1]}" for k in keys[:limit]
    )
    return shown + (f"; and {len(keys) - limit} more" if len(keys) > limit else "")


def check_ablation(ablation: str, setting: str, params: dict) -> None:
    """Refuse an ablation that changes nothing in ``setting`` (it would rerun the setting)."""
    changed = []
    for key, value in ABLATIONS[ablation].items():
        node = params
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise SystemExit(f"ablation {ablation}: {key} is not a parameter of {setting}")
            node = node[part]
        if node != value:
            changed.append(key)
    if not changed:
        current = ", ".join(f"{k}={v}" for k, v in ABLATIONS[ablation].items())
        raise SystemExit(
            f"ablation {ablation} changes nothing in {setting}, which already has {current}; "
            f"choose another ({', '.join(sorted(ABLATIONS))})"
        )


def dataset_sha256(data: Path) -> str:
    """SHA-256 of the metadata CSV's bytes and the sorted list of image paths under ``data``."""
    metadata = data / "HAM10000_metadata.csv"
    if not metadata.is_file():
        raise FileNotFoundError(f"{data} has no HAM10000_metadata.csv; is it a HAM10000 folder?")
    digest = hashlib.sha256(metadata.read_bytes())
    images = sorted(
        p.relative_to(data).as_posix()
        for p in data.rglob("*")
        if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
    )
    digest.update("\n".join(images).encode())
    return digest.hexdigest()


def device_name() -> str:
    """The CUDA device's name, else the CPU model, core count and the SIMD level torch's
    kernels use (runs on different CPU generations do not pair seed by seed), and torch's
    thread count where it is not the core count (``OMP_NUM_THREADS``, ``taskset``): CPU
    kernels split their sums by thread, so other thread counts train other weights."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    simd = torch.backends.cpu.get_cpu_capability()
    name = f"CPU {cpu_name()}, {os.cpu_count()} cores, {simd}"
    threads = torch.get_num_threads()
    if threads != os.cpu_count():
        name += f", {threads} torch thread{'s' if threads > 1 else ''}"
    return name


def code_record() -> dict | None:
    """The code this benchmark runs: ``code_version`` of its checkout (scripts and ``conf``),
    with ``package`` naming where ``skin_lesion`` is imported from when that is not the
    checkout's ``src`` (``PYTHONPATH`` or an install elsewhere: the pipelines then run other
    code than the commit says), and that checkout's commit where it has one."""
    code = code_version(ROOT)
    package = Path(skin_lesion.__file__).resolve().parent
    if not package.is_relative_to(ROOT / "src"):
        elsewhere = code_version(package)
        code = {
            **(code or {}),
            "package": str(package),
            "package_commit": elsewhere and elsewhere["commit"],
        }
        print(
            f"[accuracy] warning: skin_lesion is imported from {package}, not from "
            f"{ROOT / 'src'}: the record names both",
            file=sys.stderr,
            flush=True,
        )
    return code


def packages_line(records: list[dict], unit: str) -> str | None:
    """A sentence naming the package versions that differ between runs (None when none do)."""
    first = records[0].get("packages") or {}
    differ = sorted(
        {
            p
            for r in records
            for p in set(first) | set(r.get("packages") or {})
            if first.get(p) != (r.get("packages") or {}).get(p)
        }
    )
    if not differ:
        return None
    runs = "; ".join(
        f"{said(unit)} {r[unit]}: "
        + ", ".join(f"{p} {(r.get('packages') or {}).get(p, 'not recorded')}" for p in differ)
        for r in records
    )
    return f"Packages differ between the {said(unit)}s: {runs}."


def code_line(records: list[dict], unit: str) -> str | None:
    """A sentence naming the code the runs of one result used (None where none recorded it).

    Commits that differ only outside ``src`` and ``conf`` ran the same code; other
    differences, and uncommitted changes, are named run by run.
    """
    codes = [(r[unit], r.get("code")) for r in records]
    if not any(code for _, code in codes):
        return None
    if not all(code for _, code in codes):
        missing = [str(key) for key, code in codes if not code]
        return f"Code: not recorded for {said(unit)} {', '.join(missing)} (run before it was)."

    def tree(code: dict) -> tuple:
        return code.get("src_tree"), code.get("conf_tree"), code.get("package_commit")

    def commit(code: dict) -> str:
        if code.get("commit"):
            return code["commit"][:10]
        # A copy without git whose CODE_VERSION.json did not match: its src tree names it.
        return f"no git, src tree {str(code.get('src_tree'))[:10]}"

    parts = []
    if len({tree(code) for _, code in codes}) == 1:
        commits = sorted({commit(code) for _, code in codes})
        same = " (same src and conf)" if len(commits) > 1 else ""
        parts.append(
            f"Code: commit{'s' if len(commits) > 1 else ''} `{'`, `'.join(commits)}`{same}"
        )
    else:
        per_run = ", ".join(f"{said(unit)} {key} `{commit(code)}`" for key, code in codes)
        parts.append(f"Code: the {said(unit)}s ran different src or conf ({per_run})")
    changed = [f"{said(unit)} {key}" for key, code in codes if code.get("changed")]
    if changed:
        parts.append(f"uncommitted changes in {', '.join(changed)}")
    elsewhere = sorted({code["package"] for _, code in codes if code.get("package")})
    if elsewhere:
        parts.append(f"skin_lesion imported from {', '.join(elsewhere)}")
    return "; ".join(parts) + "."


def node_seconds_mean(runs: list[dict]) -> dict[str, float]:
    """Each node's mean wall seconds over the stage runs that timed it, slowest first
    (empty where none did: records from before node timing)."""
    timed = [r["timing"]["nodes"] for r in runs if r.get("timing", {}).get("nodes")]
    names = {name for nodes in timed for name in nodes}
    means = {
        name: round(statistics.fmean(nodes[name] for nodes in timed if name in nodes), 1)
        for name in names
    }
    return dict(sorted(means.items(), key=lambda item: (-item[1], item[0])))


def run_stage(project: Path, env: str, pipeline: str, params: dict, out: Path) -> dict:
    """Run one pipeline in a child process; return wall seconds and peak memory."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "_stage",
        "--project",
        str(project),
        "--env",
        env,
        "--pipeline",
        pipeline,
        "--params",
        json.dumps(params),
        "--out",
        str(out),
    ]
    shown = {k: v for k, v in params.items() if k != "raw_dir"}
    print(f"[accuracy] {project.name}: {pipeline} {shown}", flush=True)
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=project)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{pipeline} failed with exit code {code} in {project}")
    stage = json.loads(out.read_text())
    # ru_maxrss is in KiB on Linux.
    record = {
        "pipeline": pipeline,
        "seconds": round(seconds, 1),
        "peak_host_mib": round(usage.ru_maxrss / 1024, 1),
        "peak_gpu_mib": stage["peak_gpu_mib"],
    }
    if stage.get("timing"):  # per node, load and save (skin_lesion.timing): where it went
        record["timing"] = stage["timing"]
    return record


def stage_main(args: argparse.Namespace) -> None:
    """Child process: run one pipeline in a KedroSession; record peak GPU memory and the
    wall time of each node, dataset load and save (``skin_lesion.timing``)."""
    import torch
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from skin_lesion.timing import last_run

    bootstrap_project(args.project)
    params = json.loads(args.params)
    with KedroSession.create(
        project_path=args.project, env=args.env, runtime_params=params or None
    ) as session:
        session.run(pipeline_names=[args.pipeline])
    peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    Path(args.out).write_text(
        json.dumps({"peak_gpu_mib": peak and round(peak, 1), "timing": last_run()})
    )


def make_project(work: Path, env: str) -> Path:
    """A throwaway copy of the project's configuration (data lands under it).

    The project's ``.telemetry`` (``consent: false``) goes with it: without it kedro-telemetry
    would ask for consent in every stage and, unanswered, try to send usage data unless
    ``KEDRO_DISABLE_TELEMETRY`` is set.
    """
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "pyproject.toml", work / "pyproject.toml")
    shutil.copy(ROOT / ".telemetry", work / ".telemetry")
    shutil.rmtree(work / "conf", ignore_errors=True)
    shutil.copytree(ROOT / "conf", work / "conf")
    (work / "src").mkdir(exist_ok=True)  # bootstrap_project wants it; the package is installed
    return work


def data_dir(project: Path, env: str) -> Path:
    """The environment's ``data_dir`` global, inside ``project``."""
    # Here, not at the top: skin_lesion.command imports torch and timm (about 8 s), which
    # gpu.sh's check of ABLATIONS (benchmarks/gpu_settings.py) and --help do not need.
    from skin_lesion.command import data_dir as env_data_dir

    return project / env_data_dir(env, project / "conf")


def seed_summary(metrics: dict) -> dict:
    """The headline figures of one seed's ``test_metrics.json``, with bootstrap intervals."""
    summary = {}
    for label, path, boot in METRICS:
        value = metrics
        for key in path:
            value = value[key]
        entry = {"value": value}
        if boot in metrics["bootstrap"]:  # a report from before an interval was added has none
            interval = metrics["bootstrap"][boot]
            # "ci95" whatever the confidence: the key of every record; "bootstrap" says which.
            entry["ci95"] = [interval["low"], interval["high"]]
        summary[label] = entry
    first = metrics["bootstrap"]["balanced_accuracy"]
    # The intervals' confidence, and whether each diagnosis's lesions were resampled apart
    # (reports from before 2026-12-06 were not, and do not say).
    summary["bootstrap"] = {key: first.get(key, value) for key, value in EARLIER_BOOTSTRAP.items()}
    summary["melanoma_threshold"] = metrics["melanoma"]["validated_threshold"]["threshold"]
    # The TTA the threshold and temperature were fitted with, as reporting records it; None
    # for reports from before it predicted validation itself (fitted on single-view
    # validation predictions, applied to TTA test predictions).
    summary["threshold_tta"] = metrics.get("operating_point", {}).get("tta")
    summary["test_images"] = metrics["test_images"]
    summary["test_lesions"] = metrics["test_lesions"]
    # Per class, what balanced accuracy averages (recall) and what macro-F1 does: where a
    # shortfall comes from. Reports from before per-class figures have none.
    if "per_class" in metrics["test"]:
        summary["per_class"] = {
            name: {key: entry.get(key) for key in ("recall", "precision", "f1", "support")}
            for name, entry in metrics["test"]["per_class"].items()
        }
        summary["confusion_matrix"] = metrics["test"].get("confusion_matrix")
    return summary


# Per epoch of the classifier's training history, what the record keeps.
EPOCH_FIELDS = ("phase", "epoch", "loss", "val_loss", "balanced_accuracy", "macro_f1")
# Per epoch of SupCon's history: the loss and the validation kNN monitor's scores.
PRETRAINING_FIELDS = ("epoch", "loss", "val_knn_balanced_accuracy", "val_knn_macro_f1")


def validation_summary(
    checkpoint: Path, history: Path | None = None, pretraining_history: Path | None = None
) -> dict:
    """The validation figures of the epoch the classifier kept: what model choice may use.

    With ``history`` (the run's ``training_history.json``), also every epoch's training loss
    and validation figures, so that which epoch was kept, and what came after it, can be read
    from the record rather than the run's log. With ``pretraining_history``, SupCon's loss
    and validation kNN scores per epoch (``pretraining_epochs``; none when SupCon was off).
    """
    import torch

    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    val = saved["metrics"]["val"]
    summary = {
        "balanced_accuracy": val["balanced_accuracy"],
        "macro_f1": val["macro_f1"],
        "selected": saved["selected"],
        # SHA-256 of every image's label and split (None from before it was recorded).
        "split_sha256": (saved.get("params") or {}).get("split_sha256"),
    }
    if history is not None and history.exists():
        summary["epochs"] = [
            {key: epoch.get(key) for key in EPOCH_FIELDS}
            for epoch in json.loads(history.read_text())
        ]
    if pretraining_history is not None and pretraining_history.exists():
        summary["pretraining_epochs"] = [
            {key: epoch.get(key) for key in PRETRAINING_FIELDS}
            for epoch in json.loads(pretraining_history.read_text())
        ]
    return summary


def supcon_knn(epochs: list[dict] | None) -> dict | None:
    """The SupCon kNN monitor of one run: its last and best validation balanced accuracy.

    Returns:
        ``{"last", "best", "best_epoch", "epochs"}`` (epochs counted from 1), or None when
        no epoch was scored.
    """
    scored = [
        (e["epoch"], e["val_knn_balanced_accuracy"])
        for e in epochs or []
        if e.get("val_knn_balanced_accuracy") is not None
    ]
    if not scored:
        return None
    best_epoch, best = max(scored, key=lambda pair: pair[1])
    return {
        "last": scored[-1][1],
        "best": best,
        "best_epoch": best_epoch + 1,
        "epochs": len(epochs),
    }


def kept_epoch(selected: dict | None) -> str:
    """``selected`` (the classifier's chosen epoch) in words: ``fine-tuning epoch 5 (EMA)``."""
    if not selected or selected.get("phase") is None:
        return "not recorded"
    phase = {"warmup": "warm-up", "finetune": "fine-tuning"}.get(
        selected["phase"], selected["phase"]
    )
    return f"{phase} epoch {selected.get('epoch')}" + (" (EMA)" if selected.get("ema") else "")


def split_of(record: dict) -> str | None:
    """The split fingerprint a run's classifier recorded, or None where it did not."""
    return (record.get("validation") or {}).get("split_sha256")


def _spread(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else None,
        "per_seed": values,
    }


def t_interval(values: list[float], confidence: float = 0.95) -> list[float] | None:
    """Student's t interval of the mean of ``values`` (None for fewer than two).

    It covers the spread between the runs only: each run's own test-sampling interval comes
    on top, and cross-validation folds (which share training images) are not independent, so
    over folds it is narrower than the truth.
    """
    if len(values) < 2:
        return None
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * sd / math.sqrt(len(values))
    return [mean - half, mean + half]


def parse_overrides(pairs: list[str]) -> dict:
    """``key=value`` strings to a dict, values parsed as YAML (``3`` -> int, ``null``).

    Each string may also hold several, comma-separated as ``kedro run --params`` takes them
    (``a.b=1,c=2``); a comma not followed by ``key=`` stays in its value (``x=[1, 2]``).
    """
    overrides = {}
    split = [part for pair in pairs for part in re.split(r",(?=\s*[A-Za-z_][\w.]*=)", pair)]
    for pair in split:
        key, sep, value = pair.strip().partition("=")
        if not sep or not key:
            raise SystemExit(f"--params expects key=value, got {pair!r}")
        try:
            overrides[key] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise SystemExit(
                f"--params {pair.strip()!r}: the value is not YAML ({error})"
            ) from None
    return overrides


def nest(flat: dict) -> dict:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``, as ``kedro run --params a.b=1`` does."""
    nested: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def load_seeds(name: str, results: Path = RESULTS) -> dict[int, dict]:
    """Every ``seed*.json`` of run ``name`` by training seed, every ``fold*.json`` of a
    cross-validation run by fold, or every ``split*.json`` of a run over split draws by split
    seed (empty when there are none).

    Raises:
        SystemExit: When the folder holds more than one kind of file.
    """
    folder = results / "accuracy" / name
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    kinds = {
        unit: [p for p in files if re.fullmatch(rf"{prefix}\d+\.json", p.name)]
        for unit, prefix in LABELS.items()
    }
    present = [unit for unit, paths in kinds.items() if paths]
    if len(present) > 1:
        raise SystemExit(
            f"{folder} holds "
            + ", ".join(f"{LABELS[unit]}*.json" for unit in present)
            + " files (runs of different kinds under one name: "
            + ", ".join(RUN_KINDS[unit] for unit in present)
            + "); move one aside or use --name"
        )
    unit = present[0] if present else "seed"
    found: dict[int, tuple[Path, dict]] = {}
    for path in kinds[unit]:
        record = json.loads(path.read_text())
        key = record[unit]
        if key in found:  # seed01.json beside seed1.json: neither may silently win
            raise SystemExit(f"{found[key][0]} and {path} are both {said(unit)} {key}; keep one")
        found[key] = (path, record)
    return {key: record for key, (_, record) in sorted(found.items())}


def check_not_overwriting(name: str, results: Path, common: dict, unit: str = "seed") -> None:
    """Refuse, before any work, to file a run under ``name`` beside records of another run.

    A record of the same setting, ablation, overrides, data and device is the same run
    (rerunning a seed replaces it); any other would be overwritten, or mixed into the summary.
    Records of another kind of run (``unit``: seeds, folds, split draws) are refused too.

    Raises:
        SystemExit: Naming the record, what differs, and ``--name``.
    """
    folder, cache = results / "accuracy" / name, {}
    for key, record in load_seeds(name, results).items():
        which = f"{said(run_unit([record]))} {key}"
        if run_unit([record]) != unit:
            raise SystemExit(
                f"{folder} holds {RUN_KINDS[run_unit([record])]} ({which}), this one is "
                f"{RUN_KINDS[unit]}: file it under another --name, or move that folder aside"
            )
        for field in ("setting", "ablation", "overrides", "data_sha256", "device"):
            if record.get(field) != common[field]:
                raise SystemExit(
                    f"{folder} holds another run ({which} has {field} {record.get(field)!r}, "
                    f"this one {common[field]!r}): file this one under another --name, or "
                    "move that folder aside"
                )
        if "parameters" not in common:
            continue
        theirs, source = recorded_parameters(record, cache)
        if theirs is None:
            print(
                f"[accuracy] warning: {folder}: {which} has no record of its parameters, and "
                "its commit's conf/ cannot stand in for them: the summary may mix configurations",
                file=sys.stderr,
                flush=True,
            )
            continue
        differ, one_side = parameter_differences(theirs, common["parameters"])
        if differ:
            raise SystemExit(
                f"{folder} holds another run ({which} ran other parameters, {source}: "
                f"{describe_differences(differ, theirs, common['parameters'])}): file this one "
                "under another --name, or move that folder aside"
            )
        if one_side:
            print(
                f"[accuracy] warning: {folder}: parameters that {which} ({source}) or this run "
                f"lacks, taken to keep the earlier behaviour: "
                f"{describe_differences(one_side, theirs, common['parameters'])}",
                file=sys.stderr,
                flush=True,
            )


def run_unit(records: list[dict]) -> str:
    """``fold`` for a cross-validation run's records, ``split_seed`` for a run over split
    draws, else ``seed``."""
    for unit in ("fold", "split_seed"):
        if records and records[0].get(unit) is not None:
            return unit
    return "seed"


def said(unit: str) -> str:
    """A run unit as the tables and messages name it (``split_seed`` -> ``split seed``)."""
    return unit.replace("_", " ")


def aggregate(name: str, results: Path = RESULTS) -> dict:
    """Mean and standard deviation over every ``seed*.json`` of run ``name``."""
    folder = results / "accuracy" / name
    seeds = list(load_seeds(name, results).values())
    if not seeds:
        raise SystemExit(f"no seed results under {folder}")
    unit = run_unit(seeds)
    first = seeds[0]
    for other in seeds[1:]:
        for key in ("setting", "ablation", "overrides", "data_sha256", "device"):
            if other[key] != first[key]:
                raise SystemExit(
                    f"{folder}: {said(unit)} {other[unit]} differs from {said(unit)} "
                    f"{first[unit]} in "
                    f"{key!r} ({other[key]!r} vs {first[key]!r}); rerun or move one aside"
                )
    recorded = [s for s in seeds if s.get("parameters") is not None]
    for other in recorded[1:]:
        differ, _ = parameter_differences(recorded[0]["parameters"], other["parameters"])
        if differ:
            raise SystemExit(
                f"{folder}: {said(unit)} {other[unit]} ran other parameters than {said(unit)} "
                f"{recorded[0][unit]} ("
                + describe_differences(
                    differ,
                    recorded[0]["parameters"],
                    other["parameters"],
                    (f"in {said(unit)} {recorded[0][unit]}", f"in {said(unit)} {other[unit]}"),
                )
                + "); rerun or move one aside"
            )
    # Seeds share one split (the environment's seed makes it); folds each have their own.
    splits = {s["seed"]: split_of(s) for s in seeds if split_of(s)}
    if unit == "seed" and len(set(splits.values())) > 1:
        raise SystemExit(
            f"{folder}: its seeds were trained on different splits ("
            + ", ".join(f"seed {k}: {v[:12]}" for k, v in sorted(splits.items()))
            + "); rerun or move the odd ones aside"
        )
    kinds = {
        json.dumps(s["metrics"].get("bootstrap") or EARLIER_BOOTSTRAP, sort_keys=True)
        for s in seeds
    }
    if len(kinds) > 1:
        raise SystemExit(
            f"{folder}: its {said(unit)}s' bootstrap intervals are of different kinds ("
            + " vs ".join(sorted(kinds))
            + "); rerun the odd ones with --rescore, or move them aside"
        )
    summary = {}
    for label, _, _ in METRICS:
        summary[label] = _spread([s["metrics"][label]["value"] for s in seeds])
        if len(seeds) > 1:
            # Every figure here is a proportion: an interval past 0 or 1 is cut there.
            low, high = t_interval(summary[label]["per_seed"])
            summary[label]["mean_ci95_t"] = [max(low, 0.0), min(high, 1.0)]
        if all("ci95" in s["metrics"][label] for s in seeds):
            summary[label]["ci95_per_seed"] = [s["metrics"][label]["ci95"] for s in seeds]
    stages = {}
    for pipeline in ("data_processing", *TRAINING_PIPELINES):
        runs = [st for s in seeds for st in s["stages"] if st["pipeline"] == pipeline]
        if runs:
            stages[pipeline] = {
                "seconds_mean": round(statistics.fmean(r["seconds"] for r in runs), 1),
                "peak_host_mib": max(r["peak_host_mib"] for r in runs),
                "peak_gpu_mib": max((r["peak_gpu_mib"] or 0) for r in runs) or None,
            }
            nodes = node_seconds_mean(runs)
            if nodes:
                stages[pipeline]["node_seconds_mean"] = nodes
    result = {
        key: first[key]
        for key in ("setting", "env", "ablation", "overrides", "data", "data_sha256", "device")
    }
    result.update(
        seeds=[s["seed"] for s in seeds],
        folds=[s["fold"] for s in seeds] if unit == "fold" else None,
        **({"split_seeds": [s["split_seed"] for s in seeds]} if unit == "split_seed" else {}),
        # Each split draw has its own test split: its sizes by draw.
        test_images=per_draw(seeds, unit, lambda s: s["metrics"]["test_images"]),
        test_lesions=per_draw(seeds, unit, lambda s: s["metrics"]["test_lesions"]),
        metrics=summary,
        # The intervals' confidence and stratification, alike in every seed (checked above);
        # seed files from before 2026-12-06 have none.
        bootstrap=first["metrics"].get("bootstrap"),
        # Seed files written before validation was recorded have none.
        validation={
            label: _spread([s["validation"][label] for s in seeds])
            for label in VALIDATION
            if all("validation" in s for s in seeds)
        },
        stages=stages,
        # Which epoch each seed's classifier kept on validation (phase, epoch, EMA or not).
        kept_epochs={
            str(s[unit]): s["validation"].get("selected")
            for s in seeds
            if s.get("validation", {}).get("selected")
        },
        # SupCon's validation kNN monitor, for each seed whose run scored it.
        supcon_knn={
            str(s[unit]): knn
            for s in seeds
            if (knn := supcon_knn(s.get("validation", {}).get("pretraining_epochs")))
        },
        # Test recall per class, where every seed recorded it.
        per_class_recall={
            name: {
                **_spread([s["metrics"]["per_class"][name]["recall"] for s in seeds]),
                "support": per_draw(
                    seeds, unit, lambda s, name=name: s["metrics"]["per_class"][name]["support"]
                ),
            }
            for name in first["metrics"].get("per_class", {})
            if all(
                s["metrics"].get("per_class", {}).get(name, {}).get("recall") is not None
                for s in seeds
            )
        },
        packages=first["packages"],  # the first's; packages_line names any that differ
        packages_line=packages_line(seeds, unit),
        code={str(s[unit]): s.get("code") for s in seeds},
        code_line=code_line(seeds, unit),
        single_view_threshold=_single_view(seeds, unit),
        pretraining_from={
            str(s[unit]): s["pretraining_from"] for s in seeds if s.get("pretraining_from")
        },
        concurrent={str(s[unit]): s["concurrent"] for s in seeds if s.get("concurrent")},
    )
    (results / f"accuracy-{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (results / f"accuracy-{name}.md").write_text(markdown(name, result))
    return result


def per_draw(records: list[dict], unit: str, value: Callable[[dict], Any]) -> Any:
    """``value`` of the first record, or of each record (a list) for a run over split draws,
    whose test splits differ."""
    return [value(r) for r in records] if unit == "split_seed" else value(records[0])


COMPARED = ("balanced_accuracy", "macro_f1", "macro_auc", "mel_sensitivity_threshold")
VALIDATION = ("balanced_accuracy", "macro_f1")
# Figures that depend on the reporting protocol of the threshold (see _single_view).
THRESHOLD_METRICS = ("mel_sensitivity_threshold",)


def _check_pair(ours: dict, base: dict, what: str, base_name: str) -> None:
    """Refuse to pair two records of different data, device, setting, fold seed or split."""
    # Folds (split draws) pair only when trained with the same seed.
    folds = {run_unit([ours]), run_unit([base])} != {"seed"}
    fields = ("data_sha256", "device", "setting", *(("seed",) if folds else ()))
    for field in fields:
        if ours[field] != base[field]:
            raise SystemExit(
                f"{what} differs from {base_name} in {field!r} ({ours[field]!r} vs {base[field]!r})"
            )
    # data_processing splits with the environment's seed, not the training seed, so runs on
    # the same data share one split unless the split code or the split settings changed
    # between them; where both recorded their split, check it.
    a, b = split_of(ours), split_of(base)
    if a and b and a != b:
        raise SystemExit(
            f"{what} was trained on another split than {base_name} "
            f"(split SHA-256 {a[:12]} vs {b[:12]}): rerun one of them"
        )


def _paired_metrics(runs: dict, baseline: dict, keys: list[int], units: str) -> dict:
    """The COMPARED test figures and the VALIDATION figures of ``runs`` against
    ``baseline``, paired on ``keys`` (seeds or folds)."""
    row: dict = {}
    for label in COMPARED:
        # A threshold figure pairs only runs scored with the same reporting protocol.
        paired = keys
        if label in THRESHOLD_METRICS:
            paired = [k for k in keys if _threshold_tta(runs[k]) == _threshold_tta(baseline[k])]
        if not paired:
            row[label] = None
            continue
        ours = [runs[k]["metrics"][label]["value"] for k in paired]
        base = [baseline[k]["metrics"][label]["value"] for k in paired]
        row[label] = {**_paired(ours, base), **({units: paired} if paired != keys else {})}
    # Seed files written before validation was recorded have none: compare validation on
    # the seeds where both runs have it, and name them.
    val_keys = [k for k in keys if "validation" in runs[k] and "validation" in baseline[k]]
    for label in VALIDATION if val_keys else ():
        ours = [runs[k]["validation"][label] for k in val_keys]
        base = [baseline[k]["validation"][label] for k in val_keys]
        row[f"val_{label}"] = {**_paired(ours, base), units: val_keys}
    return row


def _comparison(setting: str, baseline: dict, unit: str, rows: list[dict]) -> dict:
    """A comparison's JSON: the baseline's data, device and spread, and the paired rows."""
    units = f"{unit}s"
    base_keys = sorted(baseline)
    first = baseline[base_keys[0]]
    return {
        "setting": setting,
        "unit": unit,
        "device": first["device"],
        "data": first["data"],
        "data_sha256": first["data_sha256"],
        f"baseline_{units}": base_keys,
        "baseline_sd": {
            label: _spread([baseline[k]["metrics"][label]["value"] for k in base_keys])["sd"]
            for label in COMPARED
        }
        | {
            f"val_{label}": _spread([baseline[k]["validation"][label] for k in base_keys])["sd"]
            for label in VALIDATION
            if all("validation" in baseline[k] for k in base_keys)
        },
        "ablations": rows,
    }


def compare_runs(baseline_name: str, name: str, results: Path = RESULTS) -> dict:
    """Run ``name`` against run ``baseline_name``, seed by seed (or fold by fold): any two
    runs, not only a setting and its ablation.

    The pair must share data, device, setting and split on every seed compared; the row
    names each parameter the two ran with differently (from the parameters both recorded),
    so the table says what changed. Writes ``accuracy-<name>-vs-<baseline_name>.json``/``.md``.

    Raises:
        SystemExit: When either run is missing, they share no seed (fold), one is a
            cross-validation run and the other not, a pair differs in data, device, setting
            or split, or the seeds of one run ran with different parameter changes.
    """
    baseline, runs = load_seeds(baseline_name, results), load_seeds(name, results)
    for label, loaded in ((baseline_name, baseline), (name, runs)):
        if not loaded:
            raise SystemExit(f"no seed, fold or split results under {results / 'accuracy' / label}")
    unit, theirs = run_unit(list(baseline.values())), run_unit(list(runs.values()))
    if theirs != unit:
        raise SystemExit(
            f"{name} is {RUN_KINDS[theirs]}, {baseline_name} {RUN_KINDS[unit]}: they do not pair"
        )
    units = f"{unit}s"
    keys = sorted(set(runs) & set(baseline))
    if not keys:
        raise SystemExit(
            f"{name}'s {said(unit)}s {sorted(runs)} share none with {baseline_name}'s "
            f"{sorted(baseline)}"
        )
    changes = set()
    cache: dict = {}
    for key in keys:
        _check_pair(runs[key], baseline[key], f"{name} {said(unit)} {key}", baseline_name)
        ours_p, _ = recorded_parameters(runs[key], cache)
        base_p, _ = recorded_parameters(baseline[key], cache)
        if ours_p is None or base_p is None:
            change = ["parameters not recorded"]
        else:
            differ, one_side = parameter_differences(base_p, ours_p)
            change = [
                f"{k} {repr(base_p[k]) if k in base_p else 'unset'} -> "
                f"{repr(ours_p[k]) if k in ours_p else 'unset'}"
                for k in [*differ, *one_side]
            ]
        # The code too: a change in src/ (channels_last on the CPU, say) is a change.
        ours_c, base_c = runs[key].get("code") or {}, baseline[key].get("code") or {}
        if ours_c.get("src_tree") != base_c.get("src_tree"):
            commits = [(c.get("commit") or "unknown")[:7] for c in (base_c, ours_c)]
            change.append(f"code (src/) {commits[0]} -> {commits[1]}")
        changes.add("; ".join(sorted(change)) or "none (a rerun)")
    if len(changes) > 1:
        raise SystemExit(
            f"the {said(unit)}s of {name} differ from {baseline_name} in different ways: "
            + " | ".join(sorted(changes))
        )
    row = {"ablation": changes.pop(), "run": name, units: keys}
    row |= _paired_metrics(runs, baseline, keys, units)
    result = _comparison(baseline_name, baseline, unit, [row])
    single_view = {
        label: _single_view([loaded[k] for k in keys], unit)
        for label, loaded in ((baseline_name, baseline), (name, runs))
    }
    result["single_view_threshold"] = {k: v for k, v in single_view.items() if v}
    result["code_line"] = comparison_code_line(
        {
            label: [loaded[k] for k in keys]
            for label, loaded in ((baseline_name, baseline), (name, runs))
        },
        unit,
    )
    if unit != "seed":  # folds and split draws pair on one training seed: the caption names it
        result["training_seed"] = sorted({baseline[k]["seed"] for k in keys})
    result["title"] = f"{name} against {baseline_name}"
    out = f"accuracy-{name}-vs-{baseline_name}"
    (results / f"{out}.json").write_text(json.dumps(result, indent=2) + "\n")
    (results / f"{out}.md").write_text(compare_markdown(result))
    return result


def compare_spread(baseline_name: str, name: str, results: Path = RESULTS) -> dict:
    """Does run ``name``'s test figure spread more than run ``baseline_name``'s?

    An F-test of the ratio of their variances over their runs (seeds, folds or split draws),
    one-sided (``name`` spreads more), assuming normal run-to-run noise: e.g. split draws
    (each its own split and a training seed's noise) against training seeds on one split.
    Unpaired, so the two may differ in kind and count; they must share data and setting.
    Writes ``accuracy-spread-<name>-vs-<baseline_name>.json``/``.md``.

    Raises:
        SystemExit: When either run is missing or has fewer than two records, or the two
            differ in data or setting, or are one run.
    """
    if baseline_name == name:
        raise SystemExit(f"--compare-spread compares two runs, not {name} against itself")
    loaded = {label: load_seeds(label, results) for label in (baseline_name, name)}
    for label, records in loaded.items():
        if len(records) < 2:
            raise SystemExit(
                f"{label} has {len(records)} seed, fold or split result(s) under "
                f"{results / 'accuracy' / label}: a spread needs at least two"
            )
    first = next(iter(loaded[baseline_name].values()))
    for label, records in loaded.items():
        for key, record in records.items():
            for field in ("data_sha256", "setting"):
                if record[field] != first[field]:
                    raise SystemExit(
                        f"{label} {said(run_unit([record]))} {key} differs from {baseline_name} "
                        f"in {field!r} ({record[field]!r} vs {first[field]!r}): their spreads "
                        "do not compare"
                    )
    runs = {}
    for label, records in loaded.items():
        unit = run_unit(list(records.values()))
        runs[label] = {
            "unit": unit,
            "keys": list(records),
            "devices": sorted({r["device"] for r in records.values()}),
        }
    rows = {}
    df_run, df_base = len(loaded[name]) - 1, len(loaded[baseline_name]) - 1
    for label, _, _ in METRICS:
        values = {
            run: [r["metrics"][label]["value"] for r in records.values()]
            for run, records in loaded.items()
            if all(label in r["metrics"] for r in records.values())
        }
        if len(values) < 2:
            continue
        var_run = statistics.variance(values[name])
        var_base = statistics.variance(values[baseline_name])
        ratio = var_run / var_base if var_base > 0 else (math.inf if var_run > 0 else None)
        rows[label] = {
            "sd_baseline": math.sqrt(var_base),
            "sd_run": math.sqrt(var_run),
            "f": ratio,
            "p_one_sided": (
                None
                if ratio is None
                else 0.0
                if ratio == math.inf
                else stats.f.sf(ratio, df_run, df_base)
            ),
        }
    result = {
        "baseline": baseline_name,
        "run": name,
        "runs": runs,
        "data_sha256": first["data_sha256"],
        "setting": first["setting"],
        "degrees_of_freedom": [df_run, df_base],
        # The smallest ratio these counts call significant at 5%: what the test can see.
        "f_critical_5pct": stats.f.isf(0.05, df_run, df_base),
        "metrics": rows,
    }
    out = f"accuracy-spread-{name}-vs-{baseline_name}"
    (results / f"{out}.json").write_text(json.dumps(result, indent=2) + "\n")
    (results / f"{out}.md").write_text(spread_markdown(result))
    return result


def spread_markdown(result: dict) -> str:
    """The table of ``compare_spread``'s result."""
    name, base = result["run"], result["baseline"]

    def runs_of(label: str) -> str:
        run = result["runs"][label]
        return (
            f"{len(run['keys'])} {said(run['unit'])}s {run['keys']} on {', '.join(run['devices'])}"
        )

    df_run, df_base = result["degrees_of_freedom"]
    lines = [
        f"**Spread of {name} against {base}** (setting `{result['setting']}`, data SHA-256 "
        f"`{result['data_sha256'][:12]}…`): {name} is {runs_of(name)}; {base} is "
        f"{runs_of(base)}. F is the ratio of their variances ({name} over {base}); p is "
        f"one-sided ({name} spreads more), from the F distribution with {df_run} and {df_base} "
        "degrees of freedom, normal run-to-run noise assumed. At these counts p < 0.05 needs "
        f"F > {result['f_critical_5pct']:.1f}: a large p says the runs cannot tell the two "
        "spreads apart, not that they are alike.",
        "",
        f"| metric (test) | sd {base} | sd {name} | F | one-sided p |",
        "|---|---|---|---|---|",
    ]
    for label, row in result["metrics"].items():
        f = "-" if row["f"] is None else "inf" if row["f"] == math.inf else f"{row['f']:.2f}"
        p = "-" if row["p_one_sided"] is None else f"{row['p_one_sided']:.2f}"
        lines.append(f"| {label} | {row['sd_baseline']:.3f} | {row['sd_run']:.3f} | {f} | {p} |")
    return "\n".join(lines) + "\n"


def compare(
    setting: str, results: Path = RESULTS, cv: bool = False, unit: str | None = None
) -> dict:
    """Each ablation of ``setting`` against the setting itself, seed by seed (or fold by fold).

    Reads ``accuracy/<setting>/`` and every ``accuracy/<setting>-<ablation>/`` present. Only
    seeds both have are compared, and the difference is taken per seed (same split, same
    training seed) before averaging, so the table shows how far each change moves the figures
    next to how much they move between seeds. Writes ``accuracy-<setting>-ablations.json``/``.md``.

    With ``cv``, the cross-validation runs instead: ``<setting>-cv`` against each
    ``<setting>-<ablation>-cv``, paired by fold (same training and validation lesions) when
    both trained the fold with the same seed; writes ``accuracy-<setting>-cv-ablations.*``.
    With ``unit="split_seed"``, the runs over split draws likewise: ``<setting>-splits``
    against each ``<setting>-<ablation>-splits``, paired by split seed (the same split) and
    training seed; writes ``accuracy-<setting>-splits-ablations.*``.
    """
    unit = unit or ("fold" if cv else "seed")
    suffix = SUFFIXES[unit]
    units = f"{unit}s"
    base_folder = results / "accuracy" / f"{setting}{suffix}"
    baseline = load_seeds(f"{setting}{suffix}", results)
    if not baseline or run_unit(list(baseline.values())) != unit:
        raise SystemExit(f"no {said(unit)} results under {base_folder}")
    rows = []
    paired_records: dict[str, list[dict]] = {}
    single_view = {f"{setting}{suffix}": _single_view(list(baseline.values()), unit)}
    for ablation in sorted(ABLATIONS):
        name = f"{setting}-{ablation}{suffix}"
        runs = load_seeds(name, results)
        if runs and run_unit(list(runs.values())) != unit:
            raise SystemExit(f"{results / 'accuracy' / name} holds no {said(unit)} results")
        keys = sorted(set(runs) & set(baseline))
        if runs and not keys:
            print(
                f"[accuracy] {name} left out: its {said(unit)}s {sorted(runs)} share none with "
                f"{setting}{suffix}'s {sorted(baseline)}",
                file=sys.stderr,
            )
        if not keys:
            continue
        for key in keys:
            _check_pair(
                runs[key], baseline[key], f"{name} {said(unit)} {key}", f"{setting}{suffix}"
            )
            # A pair must differ in the one choice the ablation flips, and in nothing else:
            # in its overrides and, where both recorded them, in the parameters they ran.
            ours_p, base_p = runs[key].get("parameters"), baseline[key].get("parameters")
            if ours_p is not None and base_p is not None:
                differ, _ = parameter_differences(base_p, ours_p)
                beyond = [k for k in differ if k not in ABLATIONS[ablation]]
                if beyond:
                    raise SystemExit(
                        f"{name} {said(unit)} {key} differs from {setting}{suffix} in more than "
                        f"{ablation}: "
                        + describe_differences(
                            beyond, base_p, ours_p, (f"in {setting}{suffix}", f"in {name}")
                        )
                    )
            wanted = {**baseline[key]["overrides"], **ABLATIONS[ablation]}
            if runs[key]["ablation"] != ablation or runs[key]["overrides"] != wanted:
                raise SystemExit(
                    f"{name} {said(unit)} {key} is not {setting}{suffix} with {ablation} alone: "
                    "it ran "
                    f"ablation {runs[key]['ablation']!r} with overrides {runs[key]['overrides']!r}"
                    f", the pair needs {wanted!r}"
                )
        row = {"ablation": ablation, "overrides": runs[keys[0]]["overrides"], units: keys}
        paired_records[name] = [runs[k] for k in keys]
        single_view[name] = _single_view([runs[k] for k in keys], unit)
        row |= _paired_metrics(runs, baseline, keys, units)
        rows.append(row)
    if not rows:
        raise SystemExit(f"no ablation of {setting} shares a {said(unit)} with it under {results}")
    result = _comparison(setting, baseline, unit, rows)
    result["single_view_threshold"] = {k: v for k, v in single_view.items() if v}
    used = sorted({k for records in paired_records.values() for k in (r[unit] for r in records)})
    result["code_line"] = comparison_code_line(
        {f"{setting}{suffix}": [baseline[k] for k in used], **paired_records}, unit
    )
    if unit != "seed":
        result["training_seed"] = sorted({r["seed"] for r in baseline.values()})
    name = f"{setting}{suffix}-ablations"
    (results / f"accuracy-{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (results / f"accuracy-{name}.md").write_text(compare_markdown(result))
    return result


def compare_all(setting: str, results: Path = RESULTS) -> list[dict]:
    """:func:`compare` for the seed runs, the cross-validation runs and the runs over split
    draws, each where the setting and at least one of its ablations ran.

    ``setting`` names the baseline run: the setting itself, or a run filed with ``--name``
    (``cpu-quick-rerun``), whose ablations are then ``<name>-<ablation>``.

    Raises:
        SystemExit: When neither kind has both.
    """
    done = []
    for unit, suffix in SUFFIXES.items():
        if load_seeds(f"{setting}{suffix}", results) and any(
            load_seeds(f"{setting}-{ablation}{suffix}", results) for ablation in ABLATIONS
        ):
            done.append(compare(setting, results, unit=unit))
    if not done:
        raise SystemExit(
            f"nothing to compare under {results / 'accuracy'}: --compare needs {setting}/ and "
            f"at least one {setting}-<ablation>/ (or {setting}-cv/ and {setting}-<ablation>-cv/, "
            f"or {setting}-splits/ and {setting}-<ablation>-splits/)"
        )
    return done


def _threshold_tta(record: dict) -> str | None:
    """The TTA the run's threshold was fitted with; None before TTA-consistent reporting."""
    return record["metrics"].get("threshold_tta")


def _single_view(records: list[dict], unit: str) -> list[int]:
    """The seeds (or folds) whose melanoma threshold predates TTA-consistent reporting."""
    return [r[unit] for r in records if _threshold_tta(r) is None]


SINGLE_VIEW_NOTE = (
    "the melanoma threshold (and its temperature) fitted on single-view validation "
    "predictions and applied to TTA test predictions: the reporting protocol before the "
    "TTA fix (benchmarks/README.md)"
)


def _paired(ours: list[float], base: list[float]) -> dict:
    deltas = [a - b for a, b in zip(ours, base)]
    return {
        "mean": statistics.fmean(ours),
        "baseline_mean": statistics.fmean(base),
        "delta_mean": statistics.fmean(deltas),
        "delta_sd": statistics.stdev(deltas) if len(deltas) > 1 else None,
        "delta_per_seed": deltas,
    }


def comparison_code_line(groups: dict[str, list[dict]], unit: str) -> str | None:
    """The code of every run a comparison pairs: one sentence where all ran the same src and
    conf, else each run's (:func:`code_line`), so a table pairing two codes says so."""
    lines = {name: code_line(records, unit) for name, records in groups.items()}
    if not any(lines.values()):
        return None
    said = {line.removeprefix("Code: ") if line else "not recorded." for line in lines.values()}
    trees = {
        (code.get("src_tree"), code.get("conf_tree"))
        for records in groups.values()
        for code in (r.get("code") or {} for r in records)
    }
    if len(trees) == 1 and len(said) == 1:
        return f"Code: every run, {said.pop()}"
    return "Code, by run: " + " ".join(
        f"{name}: {line.removeprefix('Code: ') if line else 'not recorded.'}"
        for name, line in lines.items()
    )


def compare_markdown(result: dict) -> str:
    """The ablation comparison as a markdown table: value, and change against the setting."""
    unit = result.get("unit", "seed")
    units, shown = f"{unit}s", f"{said(unit)}s"
    sd = result["baseline_sd"]
    noise = ", ".join(
        f"{label[4:] + ' (validation)' if label.startswith('val_') else label} {value:.3f}"
        for label, value in sd.items()
        if value is not None
    )
    kinds = {"fold": "cross-validation runs", "split_seed": "runs over split draws"}
    what = (
        f", {kinds[unit]} (training seed {result['training_seed']}) paired by {said(unit)},"
        if unit in kinds
        else ""
    )
    title = result.get("title")
    lines = [
        f"**{title or 'Ablations of ' + result['setting']}**{what} on {result['device']}; data "
        f"`{result['data']}` (SHA-256 `{result['data_sha256'][:12]}…`). Each cell: the "
        f"{'run' if title else 'ablation'}'s mean over the {shown} shown, then its change "
        f"against {result['setting'] if title else 'the setting'} on the same {shown} (mean of "
        f"per-{said(unit)} differences, and each {said(unit)}'s difference in brackets).",
        "",
        f"| {'parameters changed' if title else 'ablation'} | {shown} | "
        + " | ".join(f"{label} (test)" for label in COMPARED)
        + " | "
        + " | ".join(f"{label} (validation)" for label in VALIDATION)
        + " |",
        "|---|---|" + "---|" * (len(COMPARED) + len(VALIDATION)),
    ]
    for row in result["ablations"]:
        cells = []
        for label in (*COMPARED, *(f"val_{label}" for label in VALIDATION)):
            entry = row.get(label)
            if entry is None:
                threshold = label in THRESHOLD_METRICS
                cells.append(
                    "not comparable (reporting protocols differ)" if threshold else "not recorded"
                )
                continue
            per_key = ", ".join(f"{d:+.3f}" for d in entry["delta_per_seed"])
            cell = f"{entry['mean']:.3f} ({entry['delta_mean']:+.3f}; [{per_key}])"
            if entry.get(units, row[units]) != row[units]:
                word = said(unit) if len(entry[units]) == 1 else shown
                cell += f" on {word} {', '.join(map(str, entry[units]))} only"
            cells.append(cell)
        keys = ", ".join(map(str, row[units]))
        lines.append(f"| {row['ablation']} | {keys} | " + " | ".join(cells) + " |")
    if result.get("single_view_threshold"):
        runs = "; ".join(f"{k} {shown} {v}" for k, v in result["single_view_threshold"].items())
        lines += [
            "",
            f"mel_sensitivity_threshold of {runs}: {SINGLE_VIEW_NOTE}. Its change is taken "
            f"only on the {shown} where the ablation and the setting share the protocol.",
        ]
    if noise:
        spread = {"fold": "Fold-to-fold spread", "split_seed": "Split-to-split spread"}.get(
            unit, "Seed noise"
        )
        lines += [
            "",
            f"{spread} of {result['setting']} itself (sd over {shown} "
            f"{result[f'baseline_{units}']}): {noise}.",
        ]
    if result.get("code_line"):
        lines += ["", result["code_line"]]
    return "\n".join(lines) + "\n"


def interval_label(bootstrap: dict | None) -> str:
    """What the per-seed intervals are: "lesion-bootstrap 95% CI", stratified or not."""
    bootstrap = {**EARLIER_BOOTSTRAP, **(bootstrap or {})}
    stratified = "stratified " if bootstrap["stratified"] else ""
    return f"{stratified}lesion-bootstrap {100 * bootstrap['confidence']:g}% CI"


def _sizes(value: int | list[int]) -> str:
    """A count, or the counts of each split draw (``1502, 1498, 1503``)."""
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def markdown(name: str, result: dict) -> str:
    """A markdown table of ``result`` for the README."""
    n = len(result["seeds"])
    folds, draws = result.get("folds"), result.get("split_seeds")
    unit = "fold" if folds else "split_seed" if draws else "seed"
    training = (
        f"training seed{'s' if len(set(result['seeds'])) > 1 else ''} "
        f"{sorted(set(result['seeds']))}"
    )
    if folds:
        runs = (
            f"cross-validation folds {folds} (each validated on its fold, trained on the "
            f"others), {training}"
        )
    elif draws:
        runs = (
            f"split draws {draws} (`{SPLIT_SEED_KEY}`: each draw its own lesion-grouped "
            f"train/val/test split of the same images), {training}"
        )
    else:
        runs = f"seeds {result['seeds']}"
    test = (
        f"test splits {_sizes(result['test_images'])} images of "
        f"{_sizes(result['test_lesions'])} lesions (by split seed)"
        if draws
        else f"test split {result['test_images']} images of {result['test_lesions']} lesions"
    )
    lines = [
        f"**{name}** on {result['device']}; data `{result['data']}` "
        f"(SHA-256 `{result['data_sha256'][:12]}…`), {test}; {runs}.",
        "",
        f"| metric (test) | mean ± sd over {n} {said(unit)}{'s' if n > 1 else ''} "
        f"| per {said(unit)} [{interval_label(result.get('bootstrap'))}] |",
        "|---|---|---|",
    ]
    for label, entry in result["metrics"].items():
        sd = f" ± {entry['sd']:.3f}" if entry["sd"] is not None else ""
        cis = entry.get("ci95_per_seed") or [None] * len(entry["per_seed"])
        per_seed = ", ".join(
            f"{v:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
            for v, ci in zip(entry["per_seed"], cis)
        )
        lines.append(f"| {label} | {entry['mean']:.3f}{sd} | {per_seed} |")
    means = {k: e["mean_ci95_t"] for k, e in result["metrics"].items() if e.get("mean_ci95_t")}
    if means:
        caveat = (
            " (folds share training images: not independent, so narrower than the truth)"
            if folds
            else ""
        )
        lines += [
            "",
            f"95% t-interval of the mean over the {n} {said(unit)}s, from their spread alone"
            f"{caveat}; each {said(unit)}'s own test interval comes on top"
            + (
                " (cut at 0 and 1)"
                if any(lo == 0.0 or hi == 1.0 for lo, hi in means.values())
                else ""
            )
            + ": "
            + "; ".join(f"{k} [{lo:.3f}, {hi:.3f}]" for k, (lo, hi) in means.items())
            + ".",
        ]
    if result.get("validation"):
        parts = []
        for label, entry in result["validation"].items():
            sd = f" ± {entry['sd']:.3f}" if entry["sd"] is not None else ""
            per_seed = ", ".join(f"{v:.3f}" for v in entry["per_seed"])
            parts.append(f"{label} {entry['mean']:.3f}{sd} ({per_seed})")
        lines += ["", f"Validation, at the epoch each {said(unit)} kept: " + "; ".join(parts) + "."]
    if result.get("kept_epochs"):
        kept = result["kept_epochs"]
        lines += [
            "",
            f"Epoch kept on validation, by {said(unit)}: "
            + "; ".join(f"{k} {kept_epoch(v)}" for k, v in kept.items())
            + ".",
        ]
    if result.get("supcon_knn"):
        lines += [
            "",
            f"SupCon validation kNN balanced accuracy (the pretraining monitor), by {said(unit)}: "
            + "; ".join(
                f"{k} {v['last']:.3f} after epoch {v['epochs']} (best {v['best']:.3f}, epoch "
                f"{v['best_epoch']})"
                for k, v in result["supcon_knn"].items()
            )
            + ".",
        ]
    if result.get("per_class_recall"):
        parts = [
            f"{name} {entry['mean']:.3f} ({_sizes(entry['support'])})"
            for name, entry in result["per_class_recall"].items()
        ]
        lines += [
            "",
            f"Test recall per class, mean over the {said(unit)}s (test images): "
            + ", ".join(parts)
            + ".",
        ]
    if result.get("single_view_threshold"):
        lines += [
            "",
            f"{said(unit).capitalize()}s {result['single_view_threshold']}: {SINGLE_VIEW_NOTE}.",
        ]
    if result.get("code_line"):
        lines += ["", result["code_line"]]
    if result.get("packages_line"):
        lines += ["", result["packages_line"]]
    if result.get("pretraining_from"):
        taken = result["pretraining_from"]
        sources = sorted({v.rsplit("/", 1)[0] for v in taken.values()})
        lines += [
            "",
            f"SupCon pretraining not trained in this run for {said(unit)}s "
            f"{sorted(int(k) for k in taken)}: each took the same {said(unit)}'s encoder from "
            + ", ".join(f"`{s}`" for s in sources)
            + " (`--pretraining-from`); the stage table covers the runs that trained it.",
        ]
    lines += [
        "",
        "| pipeline | wall s (mean) | peak host MiB | peak GPU MiB |",
        "|---|---|---|---|",
    ]
    for pipeline, stage in result["stages"].items():
        gpu = stage["peak_gpu_mib"] if stage["peak_gpu_mib"] is not None else "-"
        lines.append(f"| {pipeline} | {stage['seconds_mean']} | {stage['peak_host_mib']} | {gpu} |")
    slowest = [
        f"{pipeline}: "
        + ", ".join(
            f"{name} {value}" for name, value in list(stage["node_seconds_mean"].items())[:3]
        )
        for pipeline, stage in result["stages"].items()
        if stage.get("node_seconds_mean")
    ]
    if slowest:
        lines += ["", "Slowest nodes (wall s, mean): " + "; ".join(slowest) + "."]
    if result.get("concurrent"):
        shared = result["concurrent"]
        lines += [
            "",
            f"Wall times of {said(unit)}s {sorted(int(k) for k in shared)} were measured with "
            "up to "
            f"{max(shared.values())} runs started together on the device (`--concurrent`): "
            "longer than a run alone, and not comparable with one.",
        ]
    return "\n".join(lines) + "\n"


def copy_outputs(source: Path, target: Path, relatives: tuple[str, ...]) -> None:
    """Copy each of ``relatives`` that exists under ``source`` to the same place in ``target``."""
    for relative in relatives:
        if (source / relative).exists():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / relative, target / relative)


def keep_outputs(project: Path, env: str, label: str) -> None:
    """Copy the run's training outputs (``KEPT``) to ``<project>/kept/<label>/``."""
    kept = project / "kept" / label
    shutil.rmtree(kept, ignore_errors=True)
    copy_outputs(data_dir(project, env), kept, KEPT)


def kept_outputs(project: Path, label: str) -> Path:
    """The folder of a run's kept training outputs; refused if it holds no classifier."""
    kept = project / "kept" / label
    if not (kept / KEPT[0]).exists():
        raise SystemExit(
            f"--rescore {label}: no kept training outputs in {kept} (runs keep them since "
            "--rescore exists; an older run must be trained again)"
        )
    return kept


def restore_outputs(project: Path, env: str, label: str) -> None:
    """Put a kept run's training outputs back in place (and nothing of another run's)."""
    data, kept = data_dir(project, env), kept_outputs(project, label)
    for relative in KEPT:
        (data / relative).unlink(missing_ok=True)
    copy_outputs(kept, data, KEPT)


# Parameters that reach neither data_processing nor contrastive_pretraining.
AFTER_PRETRAINING = ("classifier_training.", "reporting.", "inference.")


def _src_changes(code: dict) -> list[str]:
    """Uncommitted changes under ``src`` (the commit's tree does not describe them)."""
    return [line for line in code.get("changes") or [] if line[3:].startswith("src/")]


def pretraining_code_differs(record: dict, common: dict, cache: dict) -> str | None:
    """Why ``record``'s SupCon stage may not be what this run's would be; None if it is.

    The same package code (``src`` tree, and no uncommitted change under ``src`` on either
    side unless the two code records are the same) and the same parameters outside the
    classifier's and the reporting's: a commit that touched only documentation, benchmarks
    or another environment's files does not stop the reuse. Where the record's parameters
    cannot be known, the whole code record must match.
    """
    theirs_code, ours_code = record.get("code") or {}, common.get("code") or {}
    if not theirs_code or not ours_code:
        return None if theirs_code == ours_code else "has no code record"
    for key in ("src_tree", "package_commit"):
        if theirs_code.get(key) != ours_code.get(key):
            return (
                f"ran other code ({key} {theirs_code.get(key)!r}, this run {ours_code.get(key)!r})"
            )
    # Uncommitted src changes: only the very same code record (as before) may tell they match.
    changed = _src_changes(theirs_code) + _src_changes(ours_code)
    if changed and theirs_code != ours_code:
        return f"or this run has uncommitted changes under src ({', '.join(changed)})"
    params, where = recorded_parameters(record, cache)
    if params is None or "parameters" not in common:
        return None if theirs_code == ours_code else f"has code {theirs_code!r}"
    ours = {k: v for k, v in common["parameters"].items() if not k.startswith(AFTER_PRETRAINING)}
    theirs = {k: v for k, v in params.items() if not k.startswith(AFTER_PRETRAINING)}
    differ, _ = parameter_differences(theirs, ours)
    if differ:
        return f"ran other parameters ({where}: {describe_differences(differ, theirs, ours)})"
    return None


def pretraining_sources(
    source: str,
    runs: list[tuple[str, int | None, int]],
    overrides: dict,
    common: dict,
    work_dir: Path,
    results: Path,
) -> dict[str, Path]:
    """Each label's kept folder in run ``source`` to take the SupCon stage from.

    Checked for every label before any work: the overrides touch only the classifier and
    the reporting, and ``source`` recorded the label with the same setting, data, device,
    packages, package code and parameters up to the SupCon stage
    (:func:`pretraining_code_differs`), no override of its own outside the classifier's, the
    same seed (and fold), and kept all of ``PRETRAINING_KEPT``.

    Raises:
        SystemExit: Naming the override, the record or the file that does not fit.
    """
    reach = sorted(k for k in overrides if not k.startswith(CLASSIFIER_SIDE))
    if reach:
        raise SystemExit(
            f"--pretraining-from {source}: {', '.join(reach)} changes what data_processing or "
            "contrastive_pretraining do; only classifier_training.* and reporting.* overrides "
            "can take another run's pretraining"
        )
    folders, cache = {}, {}
    for label, fold, seed in runs:
        path = results / "accuracy" / source / f"{label}.json"
        if not path.exists():
            raise SystemExit(
                f"--pretraining-from {source}: no record {path}; run {source} for {label} first"
            )
        record = json.loads(path.read_text())
        theirs = {k: v for k, v in record["overrides"].items() if not k.startswith(CLASSIFIER_SIDE)}
        wanted = {
            **{key: common[key] for key in ("setting", "data_sha256", "device", "packages")},
            "seed": seed,
            "fold": fold,
            "pretraining overrides": {},
        }
        found = {**record, "fold": record.get("fold"), "pretraining overrides": theirs}
        for key, value in wanted.items():
            if found.get(key) != value:
                raise SystemExit(
                    f"--pretraining-from {source}: {path} has {key} {found.get(key)!r}, this "
                    f"run {value!r}; its encoder is not this run's to reuse"
                )
        problem = pretraining_code_differs(record, common, cache)
        if problem:
            raise SystemExit(
                f"--pretraining-from {source}: {path} {problem}; its encoder is not this run's "
                "to reuse"
            )
        kept = work_dir / source / "kept" / label
        missing = [r for r in PRETRAINING_KEPT if not (kept / r).exists()]
        if missing:
            raise SystemExit(
                f"--pretraining-from {source}: {kept} lacks {', '.join(missing)} (the machine "
                f"that ran {source} kept them; run {source} for {label} again here)"
            )
        folders[label] = kept
    return folders


PROGRESS = "progress.json"
# What a run's progress must match for --resume to carry its stages over.
RESUME_KEYS = (
    "setting",
    "ablation",
    "overrides",
    "parameters",
    "data_sha256",
    "device",
    "packages",
    "code",
)


def save_progress(
    project: Path,
    identity: dict,
    label: str,
    done: list[dict],
    processing: dict | None = None,
    running: str | None = None,
) -> None:
    """Record in ``<project>/progress.json`` which stages of ``label`` have finished.

    Written before each stage starts (``running`` names it) and after it ends, so a run killed
    at any point (a time limit, a lost machine) leaves the stages whose outputs are complete.
    ``processing`` is the split's ``data_processing`` stage that the seeds share.
    """
    progress = {"identity": identity, "label": label, "done": done, "processing": processing}
    path = project / PROGRESS
    path.with_suffix(".tmp").write_text(json.dumps({**progress, "running": running}) + "\n")
    path.with_suffix(".tmp").replace(path)  # never half written


def tracked_stage(
    project: Path,
    env: str,
    pipeline: str,
    params: dict,
    stage_file: Path,
    stages: list[dict],
    track: dict | None,
) -> dict:
    """:func:`run_stage`, appended to ``stages``; with ``track`` (``identity``, ``label`` and
    optionally ``processing``), the progress is saved before and after it for ``--resume``."""
    if track is not None:
        save_progress(project, done=stages, running=pipeline, **track)
    stage = run_stage(project, env, pipeline, params, stage_file)
    stages.append(stage)
    if track is not None:
        save_progress(project, done=stages, **track)
    return stage


def _shown(key: str, theirs: object, ours: object) -> str:
    """What differs in ``key``: the parameters that do, else both values."""
    if key == "parameters" and isinstance(theirs, dict) and isinstance(ours, dict):
        differ, one_side = parameter_differences(theirs, ours)
        return describe_differences(differ + one_side, theirs, ours)
    return f"{theirs!r}, now {ours!r}"


def load_progress(project: Path, identity: dict) -> dict | None:
    """The progress an interrupted run of this project left, for ``--resume``; None if none.

    Raises:
        SystemExit: When it was left by another run (settings, parameters, data, device,
            packages or code differ): its outputs are not this run's to build on.
    """
    path = project / PROGRESS
    if not path.exists():
        return None
    progress = json.loads(path.read_text())
    for key in identity:
        if progress["identity"].get(key) != identity[key]:
            raise SystemExit(
                f"--resume: {path} was left by a run with other {key} "
                f"({_shown(key, progress['identity'].get(key), identity[key])}); its outputs "
                "are not this run's to build on: run again without --resume"
            )
    return progress


def finished_record(path: Path, identity: dict) -> dict | None:
    """The record ``--resume`` keeps for a finished seed or fold; None where there is none.

    Raises:
        SystemExit: When the record is of another run or other code (a summary must not mix
            them silently).
    """
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    for key in RESUME_KEYS:
        if record.get(key) != identity[key]:
            raise SystemExit(
                f"--resume: {path} was recorded with other {key} "
                f"({_shown(key, record.get(key), identity[key])}); run it again without "
                "--resume to replace it"
            )
    return record


def load_record(path: Path, overrides: dict, sha: str, seed: int) -> dict:
    """The saved record ``--rescore`` updates; refused if it is of another run."""
    if not path.exists():
        raise SystemExit(f"--rescore: {path} does not exist; run the benchmark first")
    record = json.loads(path.read_text())
    mine = (record["overrides"], record["data_sha256"], record["seed"])
    if mine != (overrides, sha, seed):
        raise SystemExit(
            f"--rescore: {path} was run with overrides {mine[0]} on data {mine[1][:12]} and "
            f"seed {mine[2]}, not {overrides} on {sha[:12]} and seed {seed}"
        )
    return record


def check_folds(folds: list[int], seeds: list[int], overrides: dict, params: dict) -> None:
    """Refuse a cross-validation request that cannot run as asked, before any work."""
    if len(seeds) != 1:
        raise SystemExit(f"--folds trains one seed per fold; give one --seeds value, got {seeds}")
    if FOLD_KEY in overrides:
        raise SystemExit(f"--folds sets {FOLD_KEY} itself; drop it from --params")
    n = params["data_processing"]["split"]["folds"]
    n = overrides.get("data_processing.split.folds", n)
    bad = [k for k in folds if not 0 <= k < (n or 0)]
    if bad or len(set(folds)) != len(folds):
        raise SystemExit(
            f"--folds {folds}: each fold must appear once and lie in 0..{(n or 0) - 1} "
            f"(data_processing.split.folds is {n})"
        )


def check_split_seeds(
    split_seeds: list[int], seeds: list[int], overrides: dict, pretraining_from: str | None
) -> None:
    """Refuse a run over split draws that cannot run as asked, before any work."""
    if len(seeds) != 1:
        raise SystemExit(
            f"--split-seeds trains one seed per split draw; give one --seeds value, got {seeds}"
        )
    if SPLIT_SEED_KEY in overrides:
        raise SystemExit(f"--split-seeds sets {SPLIT_SEED_KEY} itself; drop it from --params")
    if len(set(split_seeds)) != len(split_seeds) or any(k < 0 for k in split_seeds):
        raise SystemExit(f"--split-seeds {split_seeds}: each must appear once and be 0 or more")
    if pretraining_from:
        raise SystemExit(
            "--pretraining-from with --split-seeds: a SupCon stage is tied to its split; "
            "train it in the run"
        )


def _with_split(params: dict, field: str, value: int) -> dict:
    """``params`` with ``data_processing.split.<field>`` set, other keys kept."""
    processing = dict(params.get("data_processing", {}))
    processing["split"] = {**processing.get("split", {}), field: value}
    return {**params, "data_processing": processing}


def main() -> None:
    """Parse arguments and run the benchmark (or, with ``_stage``, one child pipeline)."""
    if len(sys.argv) > 1 and sys.argv[1] == "_stage":
        parser = argparse.ArgumentParser()
        for flag in ("--project", "--env", "--pipeline", "--params", "--out"):
            parser.add_argument(flag, required=True)
        stage_main(parser.parse_args(sys.argv[2:]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--setting", choices=sorted(SETTINGS), help="required, except with --compare-runs"
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a HAM10000 folder")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        help="training seeds (default 0 1 2; 0 with --folds or --split-seeds)",
    )
    parser.add_argument(
        "--folds",
        type=int,
        nargs="+",
        help="cross-validation: validate on each of these folds in turn (one training seed)",
    )
    parser.add_argument(
        "--split-seeds",
        type=int,
        nargs="+",
        metavar="SEED",
        help="repeated hold-out: draw the train/val/test split with each of these seeds "
        f"({SPLIT_SEED_KEY}) in turn, one training seed each",
    )
    parser.add_argument("--ablation", choices=sorted(ABLATIONS))
    parser.add_argument("--params", nargs="*", default=[], help="extra key=value overrides")
    parser.add_argument("--name", help="result name (default: setting[-ablation])")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "data" / "benchmarks")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="rerun only the reporting on each run's kept training outputs and update its "
        "test figures (after a change to the reporting; training is not repeated)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="finish an interrupted run (same arguments): keep the seeds (folds) already "
        "recorded and skip the stages the interrupted one finished",
    )
    parser.add_argument(
        "--pretraining-from",
        metavar="RUN",
        help="take each seed's (fold's) SupCon stage from run RUN's kept outputs instead of "
        "training it again (an ablation of the classifier only, e.g. --pretraining-from "
        "gpu-full --ablation cross-entropy)",
    )
    parser.add_argument(
        "--concurrent",
        type=int,
        default=1,
        metavar="N",
        help="N runs were started together on this device (benchmarks/gpu.sh PARALLEL=1): "
        "recorded so that the wall times are not read as those of a run alone",
    )
    parser.add_argument(
        "--aggregate-only", action="store_true", help="only rebuild the JSON/markdown summary"
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="only compare every ablation run of --setting with the setting, seed by seed "
        "(and every cross-validation or split-draw ablation with the setting's, fold by fold "
        "or split seed by split seed); with --name, "
        "the run NAME with every NAME-<ablation> run",
    )
    parser.add_argument(
        "--compare-runs",
        nargs=2,
        metavar=("BASELINE", "RUN"),
        help="only compare run RUN with run BASELINE, seed by seed (fold by fold): any two "
        "runs on the same data, device, setting and split; the table names the parameters "
        "that differ",
    )
    parser.add_argument(
        "--compare-spread",
        nargs=2,
        metavar=("BASELINE", "RUN"),
        help="only test whether run RUN's figures spread more over its runs than run "
        "BASELINE's (an F-test of their variances, e.g. split draws against training seeds)",
    )
    args = parser.parse_args()
    for flag, pair in (
        ("--compare-runs", args.compare_runs),
        ("--compare-spread", args.compare_spread),
    ):
        if pair and (
            args.compare
            or args.ablation
            or args.folds
            or args.split_seeds
            or args.seeds
            or (args.compare_runs and args.compare_spread)
        ):
            raise SystemExit(f"{flag} takes the two run names alone")
    if args.compare_runs:
        print(compare_markdown(compare_runs(*args.compare_runs, args.results_dir)))
        return
    if args.compare_spread:
        print(spread_markdown(compare_spread(*args.compare_spread, args.results_dir)))
        return
    if not args.setting:
        parser.error("the following arguments are required: --setting")
    if args.compare:
        base = args.name or args.setting
        if args.ablation or args.folds or args.split_seeds:
            raise SystemExit("--compare takes --setting and optionally --name (the baseline run)")
        for result in compare_all(base, args.results_dir):
            print(compare_markdown(result))
        return
    if args.folds and args.split_seeds:
        raise SystemExit(
            "--folds and --split-seeds: cross-validation keeps one split, split draws vary it; "
            "use one"
        )
    # What tells this run's records apart: training seeds, folds or split seeds.
    kind = "fold" if args.folds else "split_seed" if args.split_seeds else "seed"
    name = args.name or "-".join(filter(None, [args.setting, args.ablation])) + SUFFIXES[kind]
    if args.concurrent < 1:
        raise SystemExit(f"--concurrent {args.concurrent}: expected 1 or more runs")
    if args.resume and args.rescore:
        raise SystemExit("--resume finishes a training run; --rescore trains nothing: use one")
    if args.pretraining_from and args.rescore:
        raise SystemExit("--pretraining-from is for training; --rescore trains nothing: use one")
    if args.aggregate_only:
        print(markdown(name, aggregate(name, args.results_dir)))
        return
    data = args.data.resolve()
    if not data.is_dir():
        raise SystemExit(f"--data {data} is not a folder; download HAM10000 first (README)")
    env = SETTINGS[args.setting]
    if args.ablation:
        check_ablation(args.ablation, args.setting, setting_parameters(env))
    extra = parse_overrides(args.params)
    clash = sorted(set(extra) & set(ABLATIONS.get(args.ablation, {})))
    if clash:
        raise SystemExit(f"--params {', '.join(clash)}: set by --ablation {args.ablation} itself")
    overrides = {**ABLATIONS.get(args.ablation, {}), **extra}
    seeds = args.seeds or ([0] if args.folds or args.split_seeds else [0, 1, 2])
    if args.folds:
        check_folds(args.folds, seeds, overrides, setting_parameters(env))
    if args.split_seeds:
        check_split_seeds(args.split_seeds, seeds, overrides, args.pretraining_from)
    sha = dataset_sha256(data)
    project = make_project(args.work_dir.resolve() / name, env)
    base_params = {"raw_dir": str(data), **nest(overrides)}
    out = args.results_dir / "accuracy" / name
    out.mkdir(parents=True, exist_ok=True)
    stage_file = project / "stage.json"
    common = {
        "setting": args.setting,
        "env": env,
        "ablation": args.ablation,
        "overrides": overrides,
        # Every parameter the stages resolve (conf/ plus the overrides), flat.
        "parameters": run_parameters(env, overrides),
        "data": data.name,
        "data_sha256": sha,
        "device": device_name(),
        "packages": {p: importlib_metadata.version(p) for p in PACKAGES},
        "code": code_record(),
    }
    if not args.rescore:
        check_not_overwriting(name, args.results_dir, common, kind)
    # A seed run splits once (every seed on the same lesions); a cross-validation run
    # re-splits train+val for each fold, a run over split draws splits anew for each draw,
    # one training seed each. Each run: (unit, its key, training seed).
    if kind == "seed":
        runs = [("seed", seed, seed) for seed in seeds]
    else:
        runs = [(kind, k, seeds[0]) for k in args.folds or args.split_seeds]
    labels = [f"{LABELS[unit]}{key}" for unit, key, _ in runs]
    sources = {}
    if args.pretraining_from:
        if args.pretraining_from == name:
            raise SystemExit(f"--pretraining-from {name}: that is this run itself")
        sources = pretraining_sources(
            args.pretraining_from,
            [
                (label, key if unit == "fold" else None, seed)
                for label, (unit, key, seed) in zip(labels, runs)
            ],
            overrides,
            common,
            args.work_dir.resolve(),
            args.results_dir,
        )
    # --rescore updates saved records: read them all, and refuse, before any work.
    records = {}
    if args.rescore:
        for label, (_, _, seed) in zip(labels, runs):
            records[label] = load_record(out / f"{label}.json", overrides, sha, seed)
            kept_outputs(project, label)
    # What an interrupted run must share with this one for --resume to build on its outputs.
    identity = {
        **{key: common[key] for key in RESUME_KEYS},
        "params": base_params,
        "runs": "folds" if args.folds else "split seeds" if args.split_seeds else "seeds",
        "pretraining_from": args.pretraining_from,
    }
    progress = load_progress(project, identity) if args.resume else None
    processing = progress.get("processing") if progress else None
    for label, (unit, key, seed) in zip(labels, runs):
        if args.resume and finished_record(out / f"{label}.json", identity):
            print(f"[accuracy] {label}: recorded already, kept (--resume)", flush=True)
            continue
        # --resume: the stages the interrupted run finished for this seed (fold) are not rerun.
        carried = progress["done"] if progress and progress["label"] == label else []
        finished = {stage["pipeline"] for stage in carried}
        stages = list(carried)
        if carried:
            print(
                f"[accuracy] {label}: resuming after {', '.join(s['pipeline'] for s in carried)}",
                flush=True,
            )

        # Every stage of a fold (split draw) sees its validation_fold (split seed): MLflow logs
        # it with the run, and a stage that reads the splits checks it.
        run_params = (
            base_params
            if unit == "seed"
            else _with_split(
                base_params, {"fold": "validation_fold", "split_seed": "seed"}[unit], key
            )
        )
        params = {**run_params, "seed": seed}
        # A rescore trains nothing, so there is nothing for it to resume.
        track = None if args.rescore else {"identity": identity, "label": label}
        if unit != "seed" or processing is None:
            if "data_processing" in finished:
                processing = next(s for s in carried if s["pipeline"] == "data_processing")
            else:
                processing = tracked_stage(
                    project, env, "data_processing", run_params, stage_file, stages, track
                )
        if track is not None and unit == "seed":
            track["processing"] = processing  # the seeds share the split: not run again
        if args.rescore:
            restore_outputs(project, env, label)
            tracked_stage(project, env, "reporting", params, stage_file, stages, track)
        else:
            if label in sources:
                # The source's SupCon stage for this seed (fold), not trained again.
                copy_outputs(sources[label], data_dir(project, env), PRETRAINING_KEPT)
                finished.add("contrastive_pretraining")
            for pipeline in TRAINING_PIPELINES:
                if pipeline not in finished:
                    tracked_stage(project, env, pipeline, params, stage_file, stages, track)
            keep_outputs(project, env, label)
        metrics_file = data_dir(project, env) / "08_reporting" / "test_metrics.json"
        metrics = seed_summary(json.loads(metrics_file.read_text()))
        if args.rescore:
            # Training's record (stages, validation, packages) stays; the test figures are
            # the new reporting's, and the rescoring says when, where and how long.
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            record = records[label]
            record["rescored"] = {
                "at": when,
                "device": device_name(),
                "code": common["code"],
                "stages": stages,
            }
            record["metrics"] = metrics
        else:
            record = {
                **common,
                "seed": seed,
                **({unit: key} if unit != "seed" else {}),
                "stages": stages,
                "metrics": metrics,
                "validation": validation_summary(
                    data_dir(project, env) / "06_models/classifier.pt",
                    data_dir(project, env) / "08_reporting/training_history.json",
                    data_dir(project, env) / "08_reporting/pretraining_history.json",
                ),
                # Stages an interrupted run finished and --resume did not repeat.
                **({"resumed": [stage["pipeline"] for stage in carried]} if carried else {}),
                **(
                    {"pretraining_from": f"{args.pretraining_from}/{label}"}
                    if label in sources
                    else {}
                ),
                # Wall times measured beside other runs on the same device.
                **({"concurrent": args.concurrent} if args.concurrent > 1 else {}),
            }
        (out / f"{label}.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"[accuracy] {label}: {record['metrics']['balanced_accuracy']}", flush=True)
    print(markdown(name, aggregate(name, args.results_dir)))


if __name__ == "__main__":
    main()
