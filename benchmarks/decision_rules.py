"""Decision rules after training, judged on validation: test-time augmentation and a prior shift.

Usage (after ``benchmarks/accuracy.py`` with the same ``--work-dir``, whose run folder holds
each seed's kept classifier):
    python benchmarks/decision_rules.py --run cpu-quick-split-draws [--work-dir data/benchmarks]

For every kept classifier of the run (``<work-dir>/<run>/kept/<label>/06_models/classifier.pt``;
runs over training seeds, folds or split draws), rebuilds the split it was trained on
(``skin_lesion.splits.split_by_lesion`` with the run's split settings and seed, checked against
the fingerprint the checkpoint records), predicts validation and test once per element of the
dihedral group (8 views: flips, 90-degree rotations; the model's own crop and precision, the
run's image cache), and scores at argmax:

- ``none`` (view 0 only), ``flips`` (views 0-3, reporting's default) and ``dihedral`` (all 8);
- ``flips + prior shift``: the flips probabilities with ``log p - tau * log(train share)``,
  the post-hoc logit adjustment of Menon et al. (2021), ``tau`` on a grid chosen on
  validation for its balanced accuracy. A ``tau`` chosen on validation always raises
  validation, so the shift is also *cross-fitted* inside validation: ``tau`` chosen on a
  random half of the validation lesions and scored on the other half, against ``tau = 0``
  there, ``--halves`` times; the mean of that gain is what validation alone says of it.

``none``'s validation figure reads high: training chose its epoch on validation scored with
that same single view. The test figures are for reading after a decision, as everywhere in
these benchmarks. Writes ``benchmarks/results/decision-rules-<run>.json`` and ``.md``
(``--results-dir``, where the run's records are read; ``--out FILE`` writes elsewhere, so a trial
leaves a committed result alone); a result there made with other ``--halves`` or on another
device is refused before any classifier is scored.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import balanced_accuracy_score
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: `benchmarks` is not on the path
    sys.path.insert(0, str(ROOT))

from benchmarks import accuracy  # noqa: E402
from benchmarks.overwrite import check_not_overwriting, recorded_at_top  # noqa: E402

from skin_lesion import engine, lineage  # noqa: E402
from skin_lesion import splits as splitting  # noqa: E402
from skin_lesion.checkpoints import load_checkpoint  # noqa: E402
from skin_lesion.classifier import CheckpointPredictor  # noqa: E402
from skin_lesion.config import from_dict  # noqa: E402
from skin_lesion.datasets.image_cache import ImageCacheDataset  # noqa: E402
from skin_lesion.lineage import SPLIT_KEY, split_fingerprint  # noqa: E402
from skin_lesion.prediction import TTA_VIEWS, dihedral  # noqa: E402

TAUS = np.round(np.arange(-1.0, 2.0001, 0.05), 2)
TAU_GRID = [float(TAUS[0]), float(TAUS[-1]), 0.05]  # first, last, step: as a result records it
RULES = ("none", "flips", "dihedral", "flips + prior shift")


def balanced_accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
    """Balanced accuracy of the argmax of ``scores``."""
    return float(balanced_accuracy_score(labels, scores.argmax(1)))


def shifted(probs: np.ndarray, log_prior: np.ndarray, tau: float) -> np.ndarray:
    """``log p - tau * log prior``: the scores whose argmax is the prior-shifted decision."""
    return np.log(np.clip(probs, 1e-12, 1.0)) - tau * log_prior


def fit_tau(probs: np.ndarray, labels: np.ndarray, log_prior: np.ndarray) -> float:
    """The grid ``tau`` with the highest balanced accuracy; among ties, the one nearest 0."""
    scores = np.array([balanced_accuracy(labels, shifted(probs, log_prior, t)) for t in TAUS])
    best = TAUS[scores >= scores.max() - 1e-12]
    return float(best[np.argmin(np.abs(best))])


def lesion_half(labels: np.ndarray, lesions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random half of the lesions of each class (a lesion's images together), as a mask."""
    chosen = []
    for label in np.unique(labels):
        unique = np.unique(lesions[labels == label])
        chosen.append(rng.choice(unique, len(unique) // 2, replace=False))
    return np.isin(lesions, np.concatenate(chosen))


def cross_fitted_gain(
    probs: np.ndarray,
    labels: np.ndarray,
    lesions: np.ndarray,
    log_prior: np.ndarray,
    *,
    halves: int,
    seed: int = 0,
) -> list[float]:
    """Per random halving of the lesions: balanced accuracy on one half with ``tau`` fitted on
    the other, minus that half's balanced accuracy at ``tau = 0``. A lesion's images stay
    together, as in the split, and each class's lesions are halved (:func:`lesion_half`)."""
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(halves):
        fit = lesion_half(labels, lesions, rng)
        tau = fit_tau(probs[fit], labels[fit], log_prior)
        held = ~fit
        gains.append(
            balanced_accuracy(labels[held], shifted(probs[held], log_prior, tau))
            - balanced_accuracy(labels[held], probs[held])
        )
    return gains


def score(views: dict[str, np.ndarray], data: dict[str, np.ndarray], halves: int) -> dict:
    """Every rule's validation and test balanced accuracy from the 8 views' probabilities.

    ``views[split]``: ``(8, N, K)``; ``data``: ``<split>_labels``, ``val_lesions`` and
    ``train_counts`` (training images per class).
    """
    counts = np.asarray(data["train_counts"], dtype=float)
    if (counts <= 0).any():
        raise ValueError(f"every class needs training images for a prior, got {counts.tolist()}")
    log_prior = np.log(counts / counts.sum())
    out: dict[str, Any] = {}
    means = {
        rule: {split: views[split][list(TTA_VIEWS[rule])].mean(0) for split in views}
        for rule in ("none", "flips", "dihedral")
    }
    for rule, probs in means.items():
        out[rule] = {s: balanced_accuracy(data[f"{s}_labels"], probs[s]) for s in probs}
    flips, val_labels = means["flips"], data["val_labels"]
    tau = fit_tau(flips["val"], val_labels, log_prior)
    gains = cross_fitted_gain(
        flips["val"], val_labels, data["val_lesions"], log_prior, halves=halves
    )
    out["flips + prior shift"] = {
        s: balanced_accuracy(data[f"{s}_labels"], shifted(flips[s], log_prior, tau)) for s in flips
    }
    out["flips + prior shift"].update(
        tau=tau,
        cross_fitted_gain=float(np.mean(gains)),
        cross_fitted_sd=float(np.std(gains, ddof=1)) if len(gains) > 1 else None,
    )
    return out


class _View(nn.Module):
    """The eval transform, then one element of the dihedral group."""

    def __init__(self, base: nn.Module, k: int) -> None:
        super().__init__()
        self.base, self.k = base, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dihedral(self.base(x), self.k)


def split_seeds(record: dict, project: Path, env: str) -> list[int]:
    """The seeds a record's split may have been drawn with: its split draw's, the parameter
    ``data_processing.split.seed``, a ``seed`` the run overrode, the environment's ``seed``
    (a seed run's data_processing runs once, with the environment's or the overridden seed)."""
    params = accuracy.setting_parameters(env, project / "conf")
    overrides = record.get("overrides") or {}
    candidates = [
        record.get("split_seed"),
        parameters_of(record).get(accuracy.SPLIT_SEED_KEY),
        overrides.get("seed"),
        params.get("seed"),
    ]
    return list(dict.fromkeys(int(s) for s in candidates if s is not None))


def parameters_of(record: dict) -> dict:
    """The parameters a record ran with (its own, else its commit's ``conf/``).

    Raises:
        SystemExit: When neither is known.
    """
    params, _ = accuracy.recorded_parameters(record)
    if params is None:
        raise SystemExit("a record without its parameters: rerun it with the current accuracy.py")
    return params


def rebuild_split(
    record: dict, metadata: pd.DataFrame, seeds: list[int], fingerprint: str, label: str
) -> pd.DataFrame:
    """The split the checkpoint was trained on: the record's split settings, each candidate
    seed in turn, the one whose fingerprint is the checkpoint's.

    Raises:
        SystemExit: Naming the label and the fingerprints, when none matches.
    """
    recorded = accuracy.nest(parameters_of(record))["data_processing"]["split"]
    # Every split setting as recorded; the fold a cross-validation record names, and the seed
    # from the candidates (a recorded split seed is among them).
    config = from_dict(
        splitting.SplitConfig,
        {**recorded, "validation_fold": record.get("fold"), "seed": None},
        "data_processing.split",
    )
    if not fingerprint:
        raise SystemExit(f"{label}: its classifier records no split fingerprint ({SPLIT_KEY})")
    tried: dict[int, str] = {}
    for seed in seeds:
        splits = splitting.split_by_lesion(metadata, config, seed)
        tried[seed] = split_fingerprint(splits)
        if tried[seed] == fingerprint:
            return splits
    raise SystemExit(
        f"{label}: no split seed gives the split its classifier was trained on (fingerprint "
        f"{fingerprint[:12]}...; tried {', '.join(f'{s} -> {h[:12]}...' for s, h in tried.items())}"
        "): "
        "was the run's data or code changed since?"
    )


def predict_views(
    checkpoint: dict, cache, rows: pd.DataFrame, splits: tuple[str, ...], device: torch.device
) -> dict[str, np.ndarray]:
    """For each split, ``(8, N, K)`` probabilities of its images, one slice per dihedral view
    (the model built once for all)."""
    predictor = CheckpointPredictor(
        checkpoint,
        device=device,
        batch_size=engine.forward_batch_size(None, device),
        tta="none",
        progress=False,
    )
    base = predictor.transform
    out = {}
    for split in splits:
        chosen = np.flatnonzero(rows["split"].to_numpy() == split)
        views = []
        for k in TTA_VIEWS["dihedral"]:
            predictor.transform = _View(base, k)
            views.append(predictor(cache.images, chosen, rows=rows))
        out[split] = np.stack(views)
    return out


def evaluate_run(
    run: str, work_dir: Path, halves: int, device: torch.device, results: Path = accuracy.RESULTS
) -> dict:
    """Every kept classifier of ``run`` scored under every rule (see the module docstring)."""
    from skin_lesion.pipelines.reporting.nodes import METADATA_COLUMNS
    from skin_lesion.splits import align_to_cache

    records = accuracy.load_seeds(run, results)
    if not records:
        raise SystemExit(f"no records of run {run!r} in {results / 'accuracy'}")
    unit = accuracy.run_unit(list(records.values()))
    project = work_dir / run
    env = next(iter(records.values()))["env"]
    data = accuracy.data_dir(project, env)
    cache_path = data / "02_intermediate" / "image_cache"
    if not cache_path.is_dir():
        raise SystemExit(f"{cache_path} is missing: was {run} run with --work-dir {work_dir}?")
    cache = ImageCacheDataset(path=str(cache_path)).load()
    metadata = pd.read_parquet(data / "03_primary" / "cached_metadata.parquet")
    per_run = {}
    for key, record in records.items():
        label = f"{accuracy.LABELS[unit]}{key}"
        path = project / "kept" / label / "06_models" / "classifier.pt"
        if not path.is_file():
            raise SystemExit(
                f"{path} is missing: the run keeps each {accuracy.said(unit)}'s classifier there"
            )
        checkpoint = load_checkpoint(path)
        splits = rebuild_split(
            record,
            metadata,
            split_seeds(record, project, env),
            (checkpoint.get("params") or {}).get(SPLIT_KEY),
            label,
        )
        # As reporting refuses a classifier trained on another cache (the split is the
        # checkpoint's already: rebuild_split matched its fingerprint).
        lineage.check_checkpoint_inputs(
            checkpoint, "classifier", "classifier_training", cache_preprocessing=cache.preprocessing
        )
        rows = align_to_cache(cache.image_ids, splits).merge(
            metadata[METADATA_COLUMNS], on="image_id", how="left", validate="one_to_one"
        )
        classes = list(checkpoint["class_names"])
        if (rows["dx"].map(classes.index) != rows["label"]).any():
            raise SystemExit(f"{label}: the split's labels are not the classifier's {classes}")
        start = time.perf_counter()
        views = predict_views(checkpoint, cache, rows, ("val", "test"), device)
        labels = rows["label"].to_numpy()
        in_split = {s: rows["split"].to_numpy() == s for s in ("train", "val", "test")}
        per_run[label] = score(
            views,
            {
                "val_labels": labels[in_split["val"]],
                "test_labels": labels[in_split["test"]],
                "val_lesions": rows["lesion_id"].to_numpy()[in_split["val"]],
                "train_counts": np.bincount(labels[in_split["train"]], minlength=len(classes)),
            },
            halves,
        )
        per_run[label]["seconds"] = round(time.perf_counter() - start, 1)
        # The run's own figure, from reporting: the same rule must give it again here.
        tta = parameters_of(record).get("reporting.tta", "flips")
        recorded = record["metrics"]["balanced_accuracy"]["value"]
        per_run[label]["recorded"] = {"tta": tta, "test": recorded}
        if tta in per_run[label] and abs(per_run[label][tta]["test"] - recorded) > 1e-6:
            print(
                f"warning: {label}: {tta} scores test balanced accuracy "
                f"{per_run[label][tta]['test']:.4f} here, the run recorded {recorded:.4f} "
                f"(recorded on {record.get('device')}; here {accuracy.device_name()})",
                file=sys.stderr,
            )
        print(label, json.dumps(per_run[label]), flush=True)
    return {
        "run": run,
        "unit": unit,
        "device": accuracy.device_name(),
        "code": accuracy.code_record(),
        "halves": halves,
        "taus": TAU_GRID,
        "per_run": per_run,
        "summary": summarize(per_run),
    }


def summarize(per_run: dict[str, dict]) -> dict:
    """Mean and sd over the run's classifiers of each rule's figures, and each rule's test
    change against ``flips`` run by run."""
    out = {}
    for rule in RULES:
        rows = [r[rule] for r in per_run.values()]
        entry = {}
        for split in ("val", "test"):
            values = np.array([r[split] for r in rows])
            entry[split] = [
                float(values.mean()),
                float(values.std(ddof=1)) if len(values) > 1 else None,
            ]
        entry["test_change_vs_flips"] = [
            float(r[rule]["test"] - r["flips"]["test"]) for r in per_run.values()
        ]
        if rule == "flips + prior shift":
            entry["tau"] = [r["tau"] for r in rows]
            entry["cross_fitted_gain"] = [r["cross_fitted_gain"] for r in rows]
        out[rule] = entry
    return out


def markdown(result: dict) -> str:
    """The summary table, one row a rule."""

    def spread(pair: list) -> str:
        mean, sd = pair
        return f"{mean:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")

    s = result["summary"]
    labels = list(result["per_run"])
    lines = [
        f"**Decision rules on `{result['run']}`**: {len(labels)} kept classifiers "
        f"({', '.join(labels)}) on {result['device']}; balanced accuracy at argmax, mean ± sd "
        "over the classifiers.",
        "",
        "| rule | validation | test | test change against flips, by classifier |",
        "|---|---|---|---|",
    ]
    for rule in RULES:
        e = s[rule]
        change = ", ".join(f"{d:+.3f}" for d in e["test_change_vs_flips"])
        lines.append(f"| {rule} | {spread(e['val'])} | {spread(e['test'])} | {change} |")
    shift = s["flips + prior shift"]
    lines += [
        "",
        "Prior shift: tau chosen on validation, by classifier: "
        + ", ".join(f"{t:+.2f}" for t in shift["tau"])
        + f"; cross-fitted inside validation ({result['halves']} halvings of each class's "
        "lesions), mean gain over tau = 0: "
        + ", ".join(f"{g:+.3f}" for g in shift["cross_fitted_gain"])
        + ". Validation of `none` reads high: training chose its epoch on it, single view.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Score the run's kept classifiers and write the JSON and markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="an accuracy.py run name (--name)")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "data" / "benchmarks")
    parser.add_argument("--halves", type=int, default=50, help="random halvings of validation")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=accuracy.RESULTS,
        help="where the run's records are (accuracy/<run>/) and, without --out, the result goes",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="the JSON to write, its markdown beside it with .md "
        "(default: <results-dir>/decision-rules-<run>.json)",
    )
    args = parser.parse_args(argv)
    if args.halves < 1:
        parser.error(f"--halves must be at least 1, got {args.halves}")
    out = args.out or args.results_dir / f"decision-rules-{args.run}.json"
    planned = {
        "run": args.run,
        "halves": args.halves,
        "taus": TAU_GRID,
        "device": accuracy.device_name(),
    }
    check_not_overwriting(out, planned, flag="--out", recorded=recorded_at_top, what="a scoring")
    device = engine.resolve_device(args.device)
    result = evaluate_run(args.run, args.work_dir, args.halves, device, args.results_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
