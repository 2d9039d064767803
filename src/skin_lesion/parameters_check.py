"""Check the run's parameters when the Kedro context is created, before any node runs.

These mistakes would otherwise cost a run or hide behind another error:

- ``kedro run --env cpu_quik``: no such configuration folder; Kedro runs on base alone and
  kedro-mlflow fails on its default file store, naming neither.
- ``kedro run --params seeed=1`` (or ``raw-dir=...``) is accepted by Kedro: the unknown
  top-level key is merged into the parameters, nothing reads it, and the run goes on with the
  default seed (or data folder) without a word. A top-level runtime name is accepted when the
  parameter files define it, or when a config file of the run's environments (base and the
  run's own) reads it through ``${runtime_params:NAME}`` (``raw_dir`` in the catalog).
- A mistyped key inside a group (``--params reporting.gradcam_sampels=4``, or in
  ``conf/local``) is named by :func:`skin_lesion.config.from_dict` when the node that reads
  the group runs, which for ``reporting`` is after the training. Here every node's config is
  built from the merged parameters first, so the same error comes before any work.
- ``encoder.name`` that timm does not know, or ``classifier_training.finetune.unfreeze_stages``
  above that encoder's number of stages (:func:`check_encoder`): found otherwise only when
  the model is built, after data_processing (and SupCon and the warm-up). This one needs
  timm, so it runs when a run starts (every run, before any node and before kedro-mlflow
  opens a run), not when the context is created: a notebook or ``kedro viz`` does not hear
  of it, unless the context refuses ``encoder.weights`` against the name (``imagenet-offline``
  beside another encoder), when the name is checked first, a typo being the likelier mistake.

Building the contexts' checks imports neither torch nor timm (the dataclasses are in
:mod:`skin_lesion.configs`; ``device`` is parsed by torch only when it is neither ``auto``
nor ``cpu``): ``kedro viz``, ``kedro catalog``, ``%reload_kedro`` and the like start without
the 4 s or so that importing them takes.

And when a pipeline starts that reads the splits without making them, the split settings and
classes they were made with (``split_summary``) must be the current ones
(``lineage.check_split_settings``): ``--params data_processing.split.validation_fold=1``
given to ``classifier_training`` alone would otherwise train on the old split. Likewise a
pipeline that scores a classifier it does not train (``reporting``) refuses one trained with
other settings, another seed, or from an encoder made with other encoder or SupCon settings
(``check_classifier_current``): the report and MLflow would list settings the model was not
made with. Both refusals come before any node runs and before kedro-mlflow opens a run, so
no FAILED run is left in the tracking store; as does a training node's refusal to resume a
saved run with other settings or inputs (``check_resume_current``).

Likewise a pipeline that reads outputs of data_processing without validating compares the
raw data with what data_processing read (``check_raw_data_current``), and every one of these
checks looks at the nodes that will run (``nodes_to_run``: Kedro trims an
``--only-missing-outputs`` run only inside its runner, after this hook).
"""

from __future__ import annotations

import difflib
import logging
import mimetypes
import re
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl
from kedro.framework.project import settings
from omegaconf.errors import InterpolationResolutionError

from skin_lesion import input_errors
from skin_lesion.config import ConfigError, from_dict

logger = logging.getLogger(__name__)
_RESOLVER = re.compile(r"\$\{\s*runtime_params:\s*([^,}\s]+)")


def node_configs() -> dict[str, type]:
    """The parameter groups the nodes read, each with the dataclass it becomes."""
    # Imported here: settings.py imports this module, and the data_processing nodes pull in
    # pandas and OpenCV. skin_lesion.configs imports neither torch nor timm.
    from skin_lesion import configs
    from skin_lesion.pipelines.data_processing.nodes import DataProcessingParams

    return {
        "data_processing": DataProcessingParams,
        "contrastive_pretraining": configs.PretrainConfig,
        "encoder": configs.EncoderConfig,
        "classifier_training": configs.ClassifierConfig,
        "reporting": configs.ReportingConfig,
        "inference": configs.InferenceConfig,
    }


def check_node_configs(params: Mapping[str, Any]) -> None:
    """Build every node's config from ``params``: a bad key or value raises ``ConfigError``.

    Imports neither torch nor timm (it runs when every Kedro context is created): the check
    that needs timm, :func:`check_encoder`, runs before a pipeline does
    (:func:`check_run_encoder`)."""
    check_run_settings(params)
    built = {}
    for group, config_class in node_configs().items():
        if group in params:  # a missing group is Kedro's own error, at the node
            built[group] = from_dict(config_class, params[group], group)
    training, classes = built.get("classifier_training"), params.get("classes")
    alpha = training.loss.alpha if training is not None else None
    if isinstance(alpha, tuple) and classes is not None and len(alpha) != len(classes):
        raise ConfigError(
            f"classifier_training.loss.alpha: {len(alpha)} weight(s) {list(alpha)} for "
            f"{len(classes)} classes {list(classes)}; give one per class, in that order"
        )
    if "encoder" in built:
        encoder = built["encoder"]
        try:
            check_encoder_weights(encoder.name, encoder.weights)
        except ConfigError:
            # The weights are refused against the name (imagenet-offline is lite0's): a
            # mistyped name is the mistake to name first, as before the timm check moved to
            # the run's start. timm is imported on this path only: the context fails anyway.
            check_encoder(encoder.name, training.finetune if training is not None else None)
            raise


def check_run_encoder(catalog: Any) -> None:
    """:func:`check_encoder` on the run's ``encoder`` and ``classifier_training`` parameters,
    for every run, before any node and before kedro-mlflow opens a run: here rather than
    when the context is created, as it imports timm (and torch), which every ``kedro``
    command, ``kedro viz`` and notebook would otherwise pay for (about 4 s). Both groups
    were checked when the context was created (:func:`check_node_configs`)."""
    if "params:encoder" not in catalog:
        return
    from skin_lesion.configs import ClassifierConfig, EncoderConfig, PretrainConfig

    # Read from the datasets, not catalog.load: no "Loading data from" line before every run.
    encoder = from_dict(EncoderConfig, catalog.get("params:encoder").load(), "encoder")
    finetune = None
    crops = {}
    if "params:contrastive_pretraining" in catalog:
        group = "contrastive_pretraining"
        pretraining = from_dict(PretrainConfig, catalog.get(f"params:{group}").load(), group)
        crops[f"{group}.augment.crop_size"] = pretraining.augment.crop_size
    if "params:classifier_training" in catalog:
        training = catalog.get("params:classifier_training").load()
        classifier = from_dict(ClassifierConfig, training, "classifier_training")
        finetune = classifier.finetune
        crops["classifier_training.augment.crop_size"] = classifier.augment.crop_size
    check_encoder(encoder.name, finetune)
    check_fixed_input_size(encoder.name, crops)


# Parameters the catalog reads through ${runtime_params:...} only: a value in a parameter file
# reaches MLflow's logged parameters but not the dataset. Each with the datasets reading it.
RUNTIME_ONLY = {
    "inference.input_dir": "inference_images",
    "inference.metadata": "inference_metadata",
}


def runtime_only_problems(
    params: Mapping[str, Any], runtime: Mapping[str, Any], datasets: Iterable[str] | None = None
) -> list[str]:
    """Each of ``RUNTIME_ONLY`` set in a parameter file and not at run time (of those whose
    dataset is in ``datasets``, where given), said as such."""
    problems = []
    for dotted, dataset in RUNTIME_ONLY.items():
        if datasets is not None and dataset not in datasets:
            continue
        group, key = dotted.split(".")
        section = params.get(group)
        value = section.get(key) if isinstance(section, Mapping) else None
        nested = runtime.get(group)
        given = nested.get(key) if isinstance(nested, Mapping) else runtime.get(dotted)
        if value is not None and given is None:
            problems.append(
                f"{dotted} is {value!r} in a parameter file, but the catalog reads it only "
                f"from the command line (${{runtime_params:{dotted}}}), so `{dataset}` would "
                f"not be read from it. Pass --params {dotted}={value} instead, and leave it "
                "null in the files."
            )
    return problems


def check_runtime_only(
    params: Mapping[str, Any], runtime: Mapping[str, Any], datasets: Iterable[str]
) -> None:
    """Refuse a run that reads ``inference_images`` or ``inference_metadata`` while its
    ``inference.input_dir`` or ``inference.metadata`` is set in a parameter file only: the
    catalog would classify ``data/01_raw/inference`` (or read no metadata) instead, while
    MLflow logged the file's value. Other runs, notebooks and kedro-viz only get a warning
    when the context is created."""
    problems = runtime_only_problems(params, runtime, set(datasets))
    if problems:
        raise ConfigError(" ".join(problems))


def check_encoder(name: str, finetune: Any = None) -> None:
    """``encoder.name`` must be a timm model, with ``unfreeze_stages`` within its stages.

    Both would otherwise fail only where the model is first built: after data_processing,
    and for ``unfreeze_stages`` after SupCon and the classifier's warm-up. Checked before a
    run (:func:`check_run_encoder`), not when the context is created: it imports timm.
    """
    import timm  # imported only when the parameters name an encoder

    if ":" in name:  # hf-hub:org/model and the like: known only to the hub, checked there
        return
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.8)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(
            f"encoder.name: {name!r} is not a timm model{hint}; "
            "`python -c \"import timm; print(timm.list_models('efficientnet*'))\"` lists them"
        )
    if finetune is not None and finetune.unfreeze_stages is not None:
        from skin_lesion.classifier import check_unfreeze_stages
        from skin_lesion.models import encoder_architecture

        try:
            check_unfreeze_stages(encoder_architecture(name), finetune.unfreeze_stages)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


def _fixed_input_config(name: str) -> Any:
    """timm's pretrained configuration of ``name`` where the model takes one input size only
    (``fixed_input_size``); None otherwise, for hub names and for models timm has none for.
    Imports timm: only when a run starts, as :func:`check_encoder`."""
    if ":" in name:  # known only to the hub, checked there
        return None
    import timm

    config = timm.models.get_pretrained_cfg(name)
    return config if config is not None and config.fixed_input_size else None


def check_fixed_input_size(name: str, crops: Mapping[str, int]) -> None:
    """An encoder that takes one input size only (timm's ``fixed_input_size``: ViT, DeiT,
    Swin, ...) needs every crop at that size (``crops``: parameter name to crop size).

    Otherwise SupCon's first batch fails deep in timm ("Input height (128) doesn't match
    model (224)"), after data_processing. Models timm has no configuration for pass.
    """
    config = _fixed_input_config(name)
    if config is None:
        return
    height, width = config.input_size[-2:]
    wrong = {key: size for key, size in crops.items() if (size, size) != (height, width)}
    if not wrong:
        return
    said = ", ".join(f"{key} is {size}" for key, size in wrong.items())
    if height == width:
        given = ",".join(f"{key}={height}" for key in wrong)
        fix = f"set {' and '.join(wrong)} to {height} (`--params {given}`)"
    else:
        fix = "choose another encoder (the crops are square)"
    raise ConfigError(
        f"encoder.name: {name!r} takes {height}x{width} images only (timm's fixed input "
        f"size), but {said}; {fix}"
    )


# The nodes that draw Grad-CAM maps, each with the parameter that asks for them and its "off".
GRADCAM_NODES = {
    "plot_gradcam_examples": ("reporting", "gradcam_per_class", "0"),
    "classify_images": ("inference", "gradcam", "false"),
}


def check_gradcam_encoder(pipeline: Any, catalog: Any) -> None:
    """Refuse Grad-CAM on an encoder without a (B, C, H, W) feature map (a ViT's tokens, a
    Swin's channels-last map), for a run whose nodes draw it with it asked for: found
    otherwise by the node, after the whole training. Only encoders of a fixed input size
    (transformers, in timm) are looked at, on PyTorch's ``meta`` device: no weights, no
    arithmetic (about 0.2 s)."""
    off = []  # what turns off each Grad-CAM the run would draw
    for node in pipeline.nodes:
        for suffix, (group, key, value) in GRADCAM_NODES.items():
            if not node.name.endswith(suffix) or f"params:{group}" not in catalog:
                continue
            config = from_dict(node_configs()[group], catalog.get(f"params:{group}").load(), group)
            if getattr(config, key):
                off.append(f"{group}.{key}: {value}")
    encoder = catalog.get("params:encoder").load() if "params:encoder" in catalog else None
    name = encoder.get("name") if isinstance(encoder, Mapping) else None
    config = _fixed_input_config(name) if off and isinstance(name, str) else None
    if config is None:
        return
    import timm
    import torch

    with torch.device("meta"):
        model = timm.create_model(name, num_classes=0, pretrained=False)
        features = model.forward_features(torch.empty(1, *config.input_size))
    if features.ndim == 4 and features.shape[1] == model.num_features:
        return
    raise ConfigError(
        f"encoder.name: {name!r} gives features of shape {tuple(features.shape)}, not a "
        "(B, C, H, W) feature map, and this run draws Grad-CAM maps, which need one: set "
        f"{' and '.join(sorted(set(off)))}, or choose a convolutional encoder"
    )


def check_encoder_weights(name: str, weights: str, *, file_needed: bool = False) -> None:
    """``encoder.weights``: one of the three keywords or a file, and ``imagenet-offline`` only
    for the model those weights are of. Found otherwise only when the encoder is built (a
    typo read as a file path "not found"), with a run already open.

    When the context is created (every command, notebooks too) only what cannot be a file is
    refused: a keyword's typo. ``file_needed`` (a run that builds the encoder) also refuses a
    path that is no file, as the node would read it (from the working folder)."""
    from skin_lesion.configs import (  # not skin_lesion.models: it imports timm and torch
        IMAGENET_OFFLINE_MODEL,
        WEIGHTS_IMAGENET_OFFLINE,
        WEIGHTS_NONE,
        WEIGHTS_TIMM,
    )

    keywords = (WEIGHTS_IMAGENET_OFFLINE, WEIGHTS_NONE, WEIGHTS_TIMM)
    if weights == WEIGHTS_IMAGENET_OFFLINE and name != IMAGENET_OFFLINE_MODEL:
        raise ConfigError(
            f"encoder.weights: {weights!r} are the ImageNet weights of {IMAGENET_OFFLINE_MODEL}, "
            f"not of encoder.name {name!r}; use {WEIGHTS_NONE!r}, {WEIGHTS_TIMM!r} (a download) "
            "or a path to a state dict"
        )
    if weights in keywords or Path(weights).is_file():
        return
    close = difflib.get_close_matches(weights, keywords, n=1, cutoff=0.6)
    if not close and not file_needed:
        return  # a path: read only by the run that builds the encoder, checked there
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(
        f"encoder.weights: {weights!r} is neither one of {list(keywords)} nor a file that "
        f"exists{hint}; give a keyword or the path to a .pth/.pt/.safetensors state dict"
    )


def check_encoder_weights_readable(pipeline: Any, catalog: Any) -> None:
    """:func:`check_encoder_weights` with the weights file needed, for a run that builds the
    encoder (``pretrain_encoder``) and so reads it."""
    if not any(n.name.endswith("pretrain_encoder") for n in pipeline.nodes):
        return
    encoder = catalog.load("params:encoder") if "params:encoder" in catalog else None
    if isinstance(encoder, Mapping) and isinstance(encoder.get("weights"), str):
        check_encoder_weights(str(encoder.get("name")), encoder["weights"], file_needed=True)


# The torch device types the nodes run on.
DEVICE_TYPES = frozenset({"cpu", "cuda", "mps", "xpu"})
# One above the largest seed: NumPy's legacy seeding takes 32 bits, and the batch order's
# torch generator seeds from ``seed * 100_003 + epoch``, which must fit in 64.
MAX_SEED = 2**32


def check_device(device: Any) -> None:
    """Refuse a device name torch cannot parse; only warn when CUDA is asked for but absent.

    A run that needs no GPU (data_processing, a notebook) still works with ``device: cuda``
    on a CPU machine; the training nodes then fail, naming the device. ``auto`` and ``cpu``
    (every shipped environment) are taken without importing torch, which costs seconds at
    every context's creation.
    """
    if not isinstance(device, str):
        raise ConfigError(f"device: expected auto, cpu, cuda, cuda:N or mps, got {device!r}")
    if device in ("auto", "cpu"):
        return
    import torch  # imported only when a device other than auto or cpu is configured

    try:
        parsed = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"device: {exc} (use auto, cpu, cuda, cuda:N or mps)") from exc
    if parsed.type not in DEVICE_TYPES:  # meta, hip, xla, ... parse but cannot run the nodes
        raise ConfigError(
            f"device: {device!r} is not a device the nodes run on (use auto, cpu, cuda, cuda:N "
            "or mps)"
        )
    backends = {"mps": getattr(torch.backends, "mps", None), "xpu": getattr(torch, "xpu", None)}
    if parsed.type in backends and not (
        backends[parsed.type] is not None and backends[parsed.type].is_available()
    ):
        raise ConfigError(
            f"device: {device!r} is not available in this torch build or machine "
            "(use auto, cpu or cuda)"
        )
    if parsed.type == "cuda" and not torch.cuda.is_available():
        logger.warning(
            "device %r: CUDA is not available here; a run of nodes that run a model is "
            "refused (use device=auto to take the CPU)",
            device,
        )


def check_device_present(pipeline: Any, catalog: Any) -> None:
    """For a run whose nodes take ``params:device`` (training, embedding, prediction): a
    CUDA device this machine lacks (no CUDA, or ``cuda:N`` past its GPUs) is refused before
    any node and before MLflow opens a run, not by the first node that runs a model, after
    the nodes before it ran. Runs that need no device pass (``check_device`` warns)."""
    # The nodes tagged gpu run a model on the device; others take it for a record only
    # (build_report names it in the report) and must not be refused for it.
    runs_model = any("params:device" in n.inputs and "gpu" in n.tags for n in pipeline.nodes)
    if not runs_model or "params:device" not in catalog:
        return
    device = catalog.load("params:device")
    if not isinstance(device, str) or not device.startswith("cuda"):
        return
    from skin_lesion.engine import resolve_device

    try:
        resolve_device(device)
    except RuntimeError as error:
        raise ConfigError(
            f"{error}, and this run's nodes run a model on it. Use --params device=auto "
            "(the GPU where there is one, else the CPU) or another device"
        ) from error


def check_run_settings(params: Mapping[str, Any]) -> None:
    """Check the top-level ``seed``, ``device`` and ``classes`` that several nodes read."""
    if "seed" in params:
        seed = params["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < MAX_SEED:
            raise ConfigError(
                f"seed: expected an integer from 0 to 2**32 - 1 (NumPy's seed range), got {seed!r}"
            )
    if "device" in params:
        check_device(params["device"])
    if "classes" in params:
        classes = params["classes"]
        if (
            isinstance(classes, str)
            or not isinstance(classes, Sequence)
            or not all(isinstance(c, str) and c for c in classes)
        ):
            raise ConfigError(f"classes: expected a list of class names, got {classes!r}")
        repeated = sorted({c for c in classes if list(classes).count(c) > 1})
        if repeated or len(classes) < 2:
            raise ConfigError(
                f"classes: expected two or more distinct names, got {list(classes)}"
                + (f" ({repeated} repeated)" if repeated else "")
            )


def _config_texts(conf_source: str | Path, envs: Iterable[str] | None) -> Iterable[str]:
    """The text of every .yml/.yaml/.json file of ``envs`` (default: all) in a configuration
    folder or a packaged ``.tar.gz``/``.zip`` of one (:func:`_archive`)."""
    root = Path(conf_source)
    suffixes = {".yml", ".yaml", ".json"}
    if root.is_dir():
        folders = [root / env for env in envs] if envs is not None else [root]
        for folder in folders:
            for path in sorted(folder.rglob("*")):
                if path.suffix.lower() in suffixes and path.is_file():
                    yield path.read_text(encoding="utf-8", errors="replace")
        return
    archive = _archive(root)
    if archive is None:
        return
    fs, top = archive
    folders = [f"{top}/{env}" for env in envs] if envs is not None else [top]
    for folder in folders:
        if not fs.isdir(folder):
            continue
        for name in sorted(fs.find(folder)):
            if PurePosixPath(name).suffix.lower() in suffixes:
                yield fs.cat_file(name).decode("utf-8", errors="replace")


def resolver_names(conf_source: str | Path, envs: Iterable[str] | None = None) -> set[str]:
    """Every name the config files read with ``${runtime_params:...}``.

    Args:
        conf_source: The configuration folder, or a packaged ``.tar.gz``/``.zip`` of one.
        envs: Only these environment folders (default: all); commented lines do not count.
    """
    names: set[str] = set()
    for text in _config_texts(conf_source, envs):
        for line in text.splitlines():
            if not line.lstrip().startswith("#"):
                names.update(_RESOLVER.findall(line))
    return names


def unknown_runtime_params(
    runtime: Iterable[str], defined: Iterable[str], resolved: Iterable[str]
) -> list[str]:
    """The top-level runtime names that are neither defined parameters nor resolver names.

    Args:
        runtime: The top-level keys given at run time (``--params``).
        defined: The top-level keys of the parameter files (without the runtime ones).
        resolved: Names read through ``${runtime_params:...}``; a dotted ``a.b`` allows ``a``.
    """
    allowed = set(defined) | {name.split(".")[0] for name in resolved}
    # The CLI splits --params a.b=1 into {"a": {"b": 1}}; a dotted key handed to
    # KedroSession.create as such stays one literal top-level name that nothing reads.
    return sorted(name for name in set(runtime) if name not in allowed)


def check_runtime_params(
    runtime: Mapping[str, Any], defined: Iterable[str], resolved: Iterable[str]
) -> None:
    """Raise :class:`ConfigError` naming each runtime parameter nothing reads."""
    defined, resolved = sorted(defined), sorted(resolved)
    unknown = unknown_runtime_params(runtime, defined, resolved)
    if not unknown:
        return
    known = sorted(set(defined) | set(resolved))
    named = []
    for name in unknown:
        head, dot, rest = name.partition(".")
        if dot and head in known:
            nested = "{" + f"'{head}': " + "{" + f"'{rest}': ..." + "}}"
            named.append(
                f"'{name}' (a dotted key is split only on the command line; in Python pass "
                f"runtime_params={nested})"
            )
            continue
        close = difflib.get_close_matches(name.replace("-", "_"), known, n=1, cutoff=0.6)
        named.append(f"'{name}' (did you mean '{close[0]}'?)" if close else f"'{name}'")
    raise ConfigError(
        "unknown runtime parameter(s) (--params, or a session's runtime_params): "
        f"{', '.join(named)}. No parameter file defines it and no config file reads it, so "
        "the run would ignore it. Top-level "
        f"parameters: {defined}; names the config reads at run time: {resolved}."
    )


def check_environment(conf_source: str | Path, env: str | None) -> None:
    """Refuse ``--env NAME`` when the configuration has no folder of that name.

    Kedro would run on base alone, and kedro-mlflow, finding no ``mlflow.yml`` to merge,
    would fail on its default file store with an error that names neither.
    """
    conf = Path(str(conf_source))
    if env is None:
        return
    known = environments(conf)
    if known is None or env in known:
        return
    close = difflib.get_close_matches(env, known, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ConfigError(
        f"environment '{env}' not found: {conf} has no folder '{env}'{hint}; environments: {known}"
    )


def _archive(conf: Path) -> tuple[Any, str] | None:
    """``(filesystem, root folder)`` of a ``.tar.gz``/``.zip`` configuration (``kedro
    package``'s ``conf-<package>.tar.gz``), read as Kedro's config loader reads it: its last
    top-level folder; None for a folder or a source that cannot be read so."""
    kind, _ = mimetypes.guess_type(str(conf))
    protocol = {  # as Kedro's config loader maps them (Windows names a .zip the third)
        "application/x-tar": "tar",
        "application/zip": "zip",
        "application/x-zip-compressed": "zip",
    }.get(kind or "")
    if protocol is None or not conf.is_file():
        return None
    import fsspec

    try:
        fs = fsspec.filesystem(protocol, fo=str(conf))
        return fs, fs.ls("", detail=False)[-1]
    except Exception:  # an unreadable archive is the loader's to report
        return None


def environments(conf: Path) -> list[str] | None:
    """The environment folders of a configuration folder, or of a ``.tar.gz``/``.zip`` of
    one (:func:`_archive`); None for a source whose folders cannot be listed."""
    if conf.is_dir():
        return sorted(p.name for p in conf.iterdir() if p.is_dir() and not p.name.startswith("."))
    archive = _archive(conf)
    if archive is None:
        return None
    fs, root = archive
    try:
        entries = fs.ls(root, detail=True)
    except Exception:  # an unreadable archive is the loader's to report
        return None
    names = (PurePosixPath(e["name"]).name for e in entries if e.get("type") == "directory")
    return sorted(n for n in names if n and not n.startswith("."))


def _defined_names(loader: Any) -> set[str] | None:
    """The top-level parameter names the files define, or None where they cannot be read."""
    # The run's loader merges the runtime parameters into "parameters"; one made the way
    # the session makes it, without them, gives what the files define.
    files_only = settings.CONFIG_LOADER_CLASS(
        conf_source=loader.conf_source, env=loader.env, **settings.CONFIG_LOADER_ARGS
    )
    try:
        return set(files_only["parameters"])
    except (MissingConfigException, InterpolationResolutionError):
        return None  # no parameter files, or files that need the runtime values themselves


def check_splits_current(pipeline: Any, catalog: Any) -> None:
    """``lineage.check_split_settings`` for a pipeline that reads ``splits`` it does not make.

    Runs that make the splits (``data_processing``, the default pipeline) and projects whose
    ``split_summary`` is missing or unrecorded pass.
    """
    from skin_lesion import lineage  # imports pandas; this module is loaded for every command

    if "splits" not in pipeline.inputs() or "split_summary" not in catalog:
        return
    if not catalog.exists("split_summary"):
        return  # no splits made yet: the run fails at `splits`, naming it
    summary = catalog.load("split_summary")
    if not isinstance(summary, Mapping):
        return
    group = from_dict(
        node_configs()["data_processing"], catalog.load("params:data_processing"), "data_processing"
    )
    lineage.check_split_settings(summary, group.split, list(catalog.load("params:classes")))


# What validation read (lineage.raw_data_record), and the same once made the record of the
# finished outputs of data_processing (record_raw_data).
RAW_READ = "raw_data_read"
RAW_RECORD = "raw_data_record"


def check_raw_data_current(
    pipeline: Any,
    catalog: Any,
    env: str | None = None,
    runtime: Mapping[str, Any] | None = None,
    *,
    settings: bool = True,
) -> None:
    """``lineage.check_raw_data`` for a pipeline that reads outputs of data_processing (the
    image cache, the splits) without running validation: a HAM10000 metadata file edited
    since data_processing ran, or images replaced, would otherwise go on being trained on or
    scored as they were. A run that starts after validation (``--from-nodes decode_images``,
    ``split_by_lesion``) is compared with what validation read, any other with the record of
    the finished outputs. Runs that validate, projects without a record (processed before it
    existed) and runs where the metadata is not at hand (processed data copied to a training
    machine) pass with a log line; where none of the image files used is at hand, the
    metadata alone is compared. Where ``raw_dir`` now names no data (a run that leaves out
    the ``--params raw_dir=...`` data_processing ran with) but the folder data_processing read
    is still there, that folder is checked. ``runtime``: the run's ``--params``, so that the
    commands the refusal gives name the same ``raw_dir``. ``settings=False`` leaves out the
    check of the metadata limits against the parameters (a notebook, which shows outputs and
    has no ``--params``, reads outputs validated with run-time limits).

    Raises:
        StaleInputError: Naming what changed and the commands that remake the outputs.
    """
    if RAW_READ in pipeline.all_outputs():
        return  # validation runs: it reads the raw data itself
    from skin_lesion import lineage
    from skin_lesion.pipelines import data_processing

    reads = set(pipeline.inputs()) & set(data_processing.create_pipeline().all_outputs())
    if not reads:
        return
    reference = RAW_READ if reads & {RAW_READ, "validated_metadata"} else RAW_RECORD
    if reference not in catalog:
        return
    if not catalog.exists(reference):
        logger.info(
            "No %s (data processed before it was recorded, 2026-12-05): the raw data are not "
            "checked; a full data_processing run records them",
            reference,
        )
        return
    recorded = catalog.load(reference)
    if not isinstance(recorded, Mapping):
        return
    if settings and "params:data_processing" in catalog:
        from skin_lesion.pipelines.data_processing.nodes import (
            DataProcessingParams,
            metadata_limits,
        )

        group = from_dict(
            DataProcessingParams, catalog.load("params:data_processing"), "data_processing"
        )
        now = metadata_limits(group.metadata)
        lineage.check_validation_settings(recorded, now, _run(env))
    if reference == RAW_READ:
        _check_outputs_kept(pipeline, catalog, recorded)
    where = _path(catalog.get("raw_images")) or "raw_images"
    metadata_set = catalog.get("raw_metadata") if "raw_metadata" in catalog else None
    images_set = catalog.get("raw_images") if "raw_images" in catalog else None
    rerun = _run(env)
    if "raw_dir" in (runtime or {}):
        rerun += f" --params raw_dir={shlex.quote(str(runtime['raw_dir']))}"
    if metadata_set is None or not metadata_set.exists():
        read_in = recorded.get("folder")
        # A run that decodes raw_images itself reads the current folder: check no other.
        fallback = read_in and "raw_images" not in pipeline.inputs()
        found = _raw_datasets_in(read_in) if fallback and not _same_folder(read_in, where) else None
        if found is None:
            logger.info(
                "The raw data (%s) are not at hand: the outputs of data_processing are not "
                "checked against them",
                where,
            )
            return
        logger.info(
            "raw_dir names %s, where there are no raw data: checking those data_processing "
            "read, in %s",
            where,
            read_in,
        )
        metadata_set, images_set = found
        where = read_in
        rerun = f"{_run(env)} --params raw_dir={shlex.quote(read_in)}"
    try:
        metadata = metadata_set.load()
        folder = images_set is not None and images_set.exists()
        images = images_set.load() if folder else {}
        current = lineage.raw_data_record(images, metadata, recorded.get("images") or {})
    except Exception as error:  # named in the refusal, with its cause
        raise lineage.StaleInputError(
            f"the raw data in {where} no longer read as data_processing read them ({error}). "
            f"Fix them, or rerun `{rerun}` to remake everything from them.",
            pipelines=lineage.PIPELINE_ORDER,  # the whole run
        ) from error
    compare_images = lineage.raw_data_at_hand(recorded, current)
    if not compare_images:
        logger.info(
            "None of the image files data_processing used is in %s: the metadata alone is "
            "checked against what it read",
            where,
        )
    read_from = getattr(metadata_set, "read_path", None)
    path = read_from() if callable(read_from) else _path(metadata_set)
    name = PurePosixPath(path).name if path else "the metadata"
    lineage.check_raw_data(recorded, current, rerun, name, images=compare_images)


def _same_folder(one: str, other: str) -> bool:
    return Path(one).resolve() == Path(other).resolve()


def _raw_datasets_in(folder: str) -> tuple[Any, Any] | None:
    """The raw metadata and image datasets of a HAM10000 ``folder`` as the catalog declares
    them for ``raw_dir``; None where the folder holds no metadata file now."""
    from skin_lesion.datasets import ImageFolderDataset, RawMetadataDataset

    metadata = RawMetadataDataset(filepath=f"{folder}/HAM10000_metadata.csv")
    return (metadata, ImageFolderDataset(path=folder)) if metadata.exists() else None


def _check_outputs_kept(pipeline: Any, catalog: Any, read: Mapping[str, Any]) -> None:
    """For a run that starts after validation: the outputs it keeps (the validated rows, and
    the cache unless it decodes again) must come from the read it continues, or
    ``record_raw_data`` would refuse them only at the end, after any training the run does."""
    from skin_lesion import lineage

    if not catalog.exists("validated_metadata"):
        return
    made = set(pipeline.all_outputs())
    cache = cached = None
    kept = ("image_cache", "cached_metadata")
    if not made & set(kept) and all(catalog.exists(name) for name in kept):
        cache, cached = (catalog.load(name) for name in kept)
    lineage.check_made_from(read, catalog.load("validated_metadata"), cache, cached)


def nodes_to_run(pipeline: Any, catalog: Any, run_params: Mapping[str, Any]) -> Any:
    """The part of ``pipeline`` the runner will run. With ``--only-missing-outputs`` Kedro
    trims the pipeline inside the runner, after ``before_pipeline_run``: the checks would
    see a pipeline that makes everything (and pass) while only the stages after existing
    outputs ran. The same trimming here (Kedro's own functions; where a Kedro version lacks
    them, the whole pipeline)."""
    if not run_params.get("only_missing_outputs"):
        return pipeline
    from kedro.pipeline import Pipeline

    try:
        from kedro.runner.runner import _build_node_children_map, _determine_nodes_to_run

        ordered = list(pipeline.nodes)
        ordered.reverse()
        children = _build_node_children_map(pipeline)
        keep = _determine_nodes_to_run(ordered, catalog, children, logger)
    except (ImportError, TypeError, AttributeError) as error:  # another Kedro's internals
        logger.warning(
            "--only-missing-outputs: cannot tell which nodes Kedro will run (%s); the checks "
            "before the run look at the whole pipeline and may miss stale inputs",
            error,
        )
        return pipeline
    return pipeline.filter(node_names=[node.name for node in keep]) if keep else Pipeline([])


def _run(env: str | None) -> str:
    return f"kedro run --env {env}" if env else "kedro run"


# The module whose nodes score a classifier with the settings it was trained with.
REPORTING_NODES = "skin_lesion.pipelines.reporting.nodes"


# What train_classifier reads that other pipelines make, and the parameters they must match
# (the cache's own, data_processing.preprocessing, checked before by check_cache_current).
TRAINING_INPUTS = ("image_cache", "splits", "pretrained_encoder")
TRAINING_SETTINGS = {"encoder": "encoder", "contrastive": "contrastive_pretraining"}
CACHE_SETTINGS = "params:data_processing.preprocessing"


def check_cache_current(pipeline: Any, catalog: Any) -> None:
    """``lineage.check_cache_settings`` for a run whose nodes read an image cache it does not
    make, with the preprocessing it should have been made with (``--pipelines
    contrastive_pretraining`` or ``classifier_training``): refused before any node and before
    MLflow opens a run, not in the node after loading."""
    reads = any({"image_cache", CACHE_SETTINGS} <= set(n.inputs) for n in pipeline.nodes)
    if not reads or "image_cache" in pipeline.all_outputs():
        return
    if CACHE_SETTINGS not in catalog or "image_cache" not in catalog:
        return
    if not catalog.exists("image_cache"):
        return  # not made yet: check_inputs_exist names it
    from skin_lesion import lineage
    from skin_lesion.preprocessing import PreprocessConfig

    configured = from_dict(
        PreprocessConfig, catalog.load(CACHE_SETTINGS), "data_processing.preprocessing"
    )
    lineage.check_cache_settings(catalog.load("image_cache").preprocessing, configured.to_dict())


def check_training_inputs_current(pipeline: Any, catalog: Any) -> None:
    """``classifier_training.nodes.check_inputs_current`` for a run that trains the classifier
    on an image cache, splits and pretrained encoder it does not make (``--pipelines
    classifier_training``): a changed SupCon, encoder or preprocessing setting is refused
    before any node and before MLflow opens a run, not after the node has loaded its inputs.
    Runs that make any of them leave the check to the node."""
    if not any(node.name.endswith("train_classifier") for node in pipeline.nodes):
        return
    if set(TRAINING_INPUTS) & set(pipeline.all_outputs()):
        return
    if not all(name in catalog and catalog.exists(name) for name in TRAINING_INPUTS):
        return  # not made yet: check_inputs_exist names them
    # Imports torch and the training code: only for the runs that train a classifier.
    from skin_lesion.pipelines.classifier_training import nodes

    settings = {
        keyword: catalog.load(f"params:{name}")
        for keyword, name in TRAINING_SETTINGS.items()
        if f"params:{name}" in catalog
    }
    from skin_lesion import lineage

    cache = catalog.load("image_cache")
    nodes.check_inputs_current(
        cache.preprocessing,
        catalog.load("splits"),
        catalog.load("pretrained_encoder"),
        **settings,
        data=lineage.data_fingerprint(cache, catalog.load("splits")),
    )


def check_embedded_encoder_current(pipeline: Any, catalog: Any) -> None:
    """``lineage.check_pretraining_settings`` for a run that embeds with a pretrained encoder
    it does not make (``--nodes export_embeddings``): an encoder pretrained with other
    ``contrastive_pretraining`` settings is refused before any node and before MLflow opens a
    run, not mapped as if the settings described it. Runs that make it pass."""
    if not any(node.name.endswith("export_embeddings") for node in pipeline.nodes):
        return
    if "pretrained_encoder" in pipeline.all_outputs():
        return
    names = ("pretrained_encoder", "params:contrastive_pretraining")
    if not all(name in catalog for name in names) or not catalog.exists("pretrained_encoder"):
        return  # not made yet: check_inputs_exist names it
    from skin_lesion import lineage

    lineage.check_pretraining_settings(
        catalog.load("pretrained_encoder"), catalog.load("params:contrastive_pretraining")
    )


# The training nodes that resume, each with its pipeline: the parameter group whose
# ``resume`` asks for it, and the package whose nodes module has its ``check_resumable``
# (which takes the node's own arguments).
RESUMING_NODES = {
    "pretrain_encoder": "contrastive_pretraining",
    "train_classifier": "classifier_training",
}


def check_resume_current(pipeline: Any, catalog: Any) -> None:
    """The training nodes' refusal to resume a saved run whose parameters or inputs differ
    (``engine.ResumeMismatchError``, same message), for each training node of the run with
    ``resume: true`` whose inputs the run does not make: before any node and before MLflow
    opens a run, not by the node once started (which left a FAILED run). A run that makes
    the inputs (``--pipelines data_processing,classifier_training``) leaves it to the node,
    which checks again in any case."""
    import importlib

    made = set(pipeline.all_outputs())
    for node in pipeline.nodes:
        found = [v for k, v in RESUMING_NODES.items() if node.name.endswith(k)]
        if not found:
            continue
        group = found[0]
        # From the dataset, not catalog.load: no "Loading data from" line before every run.
        name = f"params:{group}"
        asked = catalog.get(name).load() if name in catalog else None
        if not (isinstance(asked, Mapping) and asked.get("resume")):
            continue  # the usual case: nothing loaded
        inputs = list(node.inputs)
        if set(inputs) & made or not all(n in catalog and catalog.exists(n) for n in inputs):
            continue  # made by this run, or not yet: the node checks, or check_inputs_exist
        nodes = importlib.import_module(f"skin_lesion.pipelines.{group}.nodes")
        nodes.check_resumable(*(catalog.load(name) for name in inputs))


def check_classifier_current(pipeline: Any, catalog: Any) -> None:
    """For a run of reporting nodes that does not train the classifier (``--pipelines
    reporting``, ``--from-nodes evaluate_test``, ``--nodes build_report``), before any node:

    * ``reporting.nodes.check_classifier_settings``: a classifier trained with other settings
      than the parameters now say (the report would list settings it was not trained with);
    * the image cache against the current preprocessing;
    * the splits, image cache and data (``lineage.check_checkpoint_inputs``) against those the
      classifier recorded, where they exist, read by the run or not (an image replaced and
      data_processing rerun: the classifier did not learn from the current images);
    * predictions (``test_predictions``, ``reporting_val_predictions``) and ``test_metrics``
      the run reads without making them, against the classifier and ``reporting.tta``
      (``lineage.check_predictions``; the operating point's fingerprint and TTA), and the
      predictions against the pixels of the image cache, where it exists (a test image
      replaced: the classifier learnt nothing from it, but the predictions scored the old);
    * the SupCon outputs it reads without making them (``pretraining_history``,
      ``contrastive_embeddings``): the pretrained encoder must be the one the classifier was
      fine-tuned from, or the report's SupCon curves and embedding map describe another;
    * the training histories it reads: those the classifier and encoder recorded (a
      classifier copied in from another run was plotted with this run's curves).

    Other pipelines that read the classifier (``inference``) use it whatever it was trained
    with and pass, as do runs with no classifier saved yet (they fail at ``classifier``,
    naming it). The nodes check the splits, cache and data again, for calls made outside a
    ``kedro run``.
    """
    if not any(node.func.__module__ == REPORTING_NODES for node in pipeline.nodes):
        return
    made = set(pipeline.all_outputs())
    if "classifier" in made or "classifier" not in catalog or not catalog.exists("classifier"):
        return
    # Imports torch and the reporting code: only for the runs that score a classifier.
    from skin_lesion import lineage
    from skin_lesion.checkpoints import state_fingerprint
    from skin_lesion.pipelines.reporting import nodes

    classifier = catalog.load("classifier")
    now = {
        keyword: catalog.load(f"params:{group}")
        for keyword, group in nodes.UPSTREAM.items()
        if f"params:{group}" in catalog
    }
    checks = [lambda: nodes.check_classifier_settings(classifier, **now)]
    reads = set(pipeline.inputs())

    def present(name: str) -> bool:
        return name in reads and name in catalog and catalog.exists(name)

    def at_hand(name: str) -> bool:  # made by this run: its nodes check what they make
        return name not in made and name in catalog and catalog.exists(name)

    # Loaded where they exist, read or not: `--nodes evaluate_test,build_report` reads
    # neither, yet refitted the operating point and reported a classifier of other data.
    cache = catalog.load("image_cache") if at_hand("image_cache") else None
    splits = catalog.load("splits") if at_hand("splits") else None
    if cache is not None or splits is not None:  # what the nodes would refuse, refused first
        cached = catalog.load("cached_metadata") if at_hand("cached_metadata") else None
        data = None
        if cache is not None and splits is not None:
            data = lineage.data_fingerprint(cache, splits, cached)
        checks.append(
            lambda: lineage.check_checkpoint_inputs(
                classifier,
                "classifier",
                nodes.RERUN_ALL,
                splits=splits,
                cache_preprocessing=None if cache is None else cache.preprocessing,
                data=data,
            )
        )
    if present("image_cache") and CACHE_SETTINGS in catalog:
        from skin_lesion.preprocessing import PreprocessConfig

        configured = from_dict(
            PreprocessConfig, catalog.load(CACHE_SETTINGS), "data_processing.preprocessing"
        )
        checks.append(
            lambda: lineage.check_cache_settings(cache.preprocessing, configured.to_dict())
        )
    scored = [n for n in ("test_predictions", "reporting_val_predictions") if present(n)]
    scores = scored or present("test_metrics")  # reads predictions or metrics made before
    if scores:
        from skin_lesion.evaluation import ReportingConfig

        made_by = state_fingerprint(classifier)
        tta = from_dict(ReportingConfig, catalog.load("params:reporting"), "reporting").tta
    if "image_cache" in made and scores:
        # The cache this run rebuilds is not there to compare with yet (and the old one is
        # not at_hand): without this, `--nodes validate_metadata,decode_images,...,
        # evaluate_test` scored the old predictions of a replaced test image, unchecked.
        read = [*scored, *(["test_metrics"] if present("test_metrics") else [])]

        def rebuilt() -> None:
            raise lineage.StaleInputError(
                f"this run rebuilds the image cache but reads {', '.join(map(repr, read))} "
                "without making them: they were made from the cache as it was. Add "
                "predict_test and predict_val to the run, or rerun `kedro run --pipelines "
                "reporting` (add the same --env/--params) after data_processing.",
                pipelines=("reporting",),
            )

        checks.append(rebuilt)
    pixels = None  # the cache's pixel digests, for what the predictions were made from
    if cache is not None and scores:
        pixels = cache.digests_by_id()
    split_of = {"test_predictions": "test", "reporting_val_predictions": "val"}
    for name in scored:
        frame = catalog.load(name)
        expected = None  # the split's image_ids: a file cut short reads as a shorter table
        if splits is not None:
            expected = splits.loc[splits["split"] == split_of[name], "image_id"].astype(str)
        checks.append(
            lambda f=frame, n=name, e=expected: lineage.check_predictions(
                f, n, made_by, tta, pixels, e
            )
        )
    if present("test_metrics"):
        metrics = catalog.load("test_metrics")
        point = metrics.get("operating_point") or {}
        checks.append(lambda: lineage.check_operating_point(point, made_by, tta))
        if pixels is not None and splits is not None:
            checks.append(lambda: lineage.check_scored_pixels(metrics, splits, pixels))
    if present("training_history"):
        history = catalog.load("training_history")
        checks.append(
            lambda: lineage.check_history(history, classifier, "training_history", "classifier")
        )
    pretrained = "pretrained_encoder" in catalog and catalog.exists("pretrained_encoder")
    if (present("pretraining_history") or present("contrastive_embeddings")) and pretrained:
        encoder = catalog.load("pretrained_encoder")
        made_from = state_fingerprint(encoder)
        checks.append(lambda: lineage.check_fine_tuned_from(classifier, made_from))
        if present("pretraining_history"):
            supcon = catalog.load("pretraining_history")
            checks.append(
                lambda: lineage.check_history(
                    supcon, encoder, "pretraining_history", "pretrained_encoder"
                )
            )
    lineage.all_of(*checks)


def _path(dataset: Any) -> str | None:
    """The file or folder of a file-backed dataset; None for others."""
    path = getattr(dataset, "_filepath", None) or getattr(dataset, "_path", None)
    return str(path) if path else None


def _where(dataset: Any) -> str:
    """`` (path)`` of a file-backed dataset, for a message; empty otherwise."""
    path = _path(dataset)
    return f" ({path})" if path else ""


def check_inputs_exist(pipeline: Any, catalog: Any, env: str | None = None) -> None:
    """Refuse a run whose inputs another pipeline makes but has not made yet, naming each
    input, its file and the command that makes it: ``kedro run --pipelines inference``
    before any training would otherwise stop at the first node with a loading error that
    names neither. A missing raw input (made by no pipeline: HAM10000, the folder to
    classify) is loaded here, so that its own dataset's message (where HAM10000 belongs,
    which ``--params`` to give) stops the run before kedro-mlflow opens an MLflow run that
    would end FAILED; one that loads (an optional table not given) goes on.

    Raises:
        FileNotFoundError: Listing every missing input of the run.
        DatasetError: A raw input's own error.
    """
    absent = sorted(
        name
        for name in pipeline.inputs()
        if not name.startswith("params:")
        and name != "parameters"
        and name in catalog
        and not catalog.exists(name)
    )
    if not absent:
        return  # the usual case: no pipeline module imported for it
    import importlib

    from skin_lesion.pipeline_registry import pipeline_names

    # Each pipeline built from its module: Kedro registers only those a run names.
    outputs = {
        key: importlib.import_module(f"skin_lesion.pipelines.{key}").create_pipeline().all_outputs()
        for key in pipeline_names()
    }
    missing = [
        (name, made_by)
        for name in absent
        if (made_by := sorted(key for key, made in outputs.items() if name in made))
    ]
    if not missing:
        for name in absent:
            catalog.load(name)  # raw data: its dataset says what is wrong, or it loads after all
        return
    run = f"kedro run --env {env}" if env else "kedro run"
    lines = "\n".join(
        f"  {name}{_where(catalog.get(name))}: made by `{run} --pipelines {' or '.join(made_by)}`"
        for name, made_by in missing
    )
    raise MissingInputsError(
        f"this run reads {len(missing)} input(s) not made yet:\n{lines}\n"
        f"Run those pipelines first, or the whole `{run}`."
    )


class MissingInputsError(FileNotFoundError):
    """A run reads datasets that other pipelines make and have not made yet."""


def _is_run_command(argv: Sequence[str]) -> bool:
    """Whether ``argv`` is ``kedro run`` (or ``python -m kedro run``) or the packaged
    project's ``python -m skin_lesion``, whose options are ``kedro run``'s."""
    if not argv:
        return False
    program = Path(argv[0])
    if program.parts[-2:] == ("skin_lesion", "__main__.py"):
        return True
    kedro = (
        program.name in ("kedro", "kedro.exe")
        or program.parts[-2:] == ("kedro", "__main__.py")
        or argv[0] == "python -m kedro"
    )
    return kedro and list(argv[1:2]) == ["run"]


def params_options(argv: Sequence[str]) -> list[str]:
    """The value of each ``--params`` option in ``argv`` (``--params X`` or ``--params=X``),
    in order."""
    values: list[str] = []
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--params" and i + 1 < len(args):
            values.append(args[i + 1])
        elif arg.startswith("--params="):
            values.append(arg.partition("=")[2])
    return values


def check_params_given_once(argv: Sequence[str] | None = None) -> None:
    """Refuse ``kedro run --params A --params B``: click keeps the last ``--params`` only, so
    ``A`` (a ``raw_dir``, a seed, ...) would be dropped without a word and the run would go on
    with the defaults."""
    argv = sys.argv if argv is None else argv
    if not _is_run_command(argv):
        return
    given = params_options(argv)
    if len(given) < 2:
        return
    dropped = ", ".join(repr(value) for value in given[:-1])
    joined = ",".join(given)
    raise ConfigError(
        f"--params was given {len(given)} times; Kedro keeps only the last one "
        f"({given[-1]!r}), so {dropped} would be ignored. Give them all in one --params, "
        f"comma-separated: --params {joined}"
    )


class ParametersCheck:
    """Kedro hook: refuse bad parameters when the context is created, before any work (and
    an encoder timm does not know when a run starts, :func:`check_run_encoder`)."""

    @hook_impl(tryfirst=True)  # before kedro-mlflow's hook sets up tracking
    def after_context_created(self, context: Any) -> None:
        # Here, not in settings.py: Kedro's rich traceback handler is installed after that.
        input_errors.install()
        check_params_given_once()
        loader = context.config_loader
        check_environment(loader.conf_source, loader.env)
        runtime = dict(getattr(loader, "runtime_params", None) or {})
        if runtime:
            self._check_runtime_names(loader, runtime)
        try:
            params = loader["parameters"]
        except MissingConfigException:
            return
        check_node_configs(params)
        for problem in runtime_only_problems(params, runtime):
            logger.warning("%s", problem)

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Refuse an encoder timm does not know, or with fewer stages than ``unfreeze_stages``
        (every run); inputs other pipelines have not made yet; outputs of data_processing
        made from other raw data than is there now, or splits made with other split settings
        or classes than the parameters say, in a run that reads them without making them; a
        pretrained encoder made with other SupCon settings in a run that embeds with it
        without making it; a resume of a saved training run that differs from this one; and
        a classifier made with other settings in a run that scores it without training it;
        before any node runs."""
        check_run_encoder(catalog)  # every run, as when the context was created
        pipeline = nodes_to_run(pipeline, catalog, run_params)
        reads = set(pipeline.inputs())
        if reads & set(RUNTIME_ONLY.values()) and "params:inference" in catalog:
            params = {"inference": catalog.load("params:inference")}
            check_runtime_only(params, run_params.get("runtime_params") or {}, reads)
        check_inputs_exist(pipeline, catalog, run_params.get("env"))
        check_device_present(pipeline, catalog)
        check_raw_data_current(
            pipeline, catalog, run_params.get("env"), run_params.get("runtime_params")
        )
        check_splits_current(pipeline, catalog)
        check_cache_current(pipeline, catalog)
        check_training_inputs_current(pipeline, catalog)
        check_embedded_encoder_current(pipeline, catalog)
        check_encoder_weights_readable(pipeline, catalog)
        check_gradcam_encoder(pipeline, catalog)
        check_resume_current(pipeline, catalog)
        check_classifier_current(pipeline, catalog)

    @staticmethod
    def _check_runtime_names(loader: Any, runtime: dict[str, Any]) -> None:
        conf = Path(str(loader.conf_source))
        present = environments(conf)  # a folder's or a packaged archive's environments
        if present is None:  # a remote conf source: its files are not at hand
            logger.warning("--params names not checked: the configuration %s is not a folder", conf)
            return
        defined = _defined_names(loader)
        if defined is None:
            return
        envs = {loader.base_env, loader.env or loader.default_run_env} - {None}
        envs = [env for env in envs if env in present]
        check_runtime_params(runtime, defined, resolver_names(conf, envs))
