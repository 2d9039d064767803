"""kedro-viz: the real ``kedro viz build`` against the pipeline registry, and in a browser.

The build runs in a copy of the project's conf/ and pyproject.toml in a temporary folder (it
writes ``build/`` in the current directory), so the repository is left as it was. Its API files
(``api/main``, ``api/pipelines/<name>``) must hold every registered pipeline with all its
nodes and edges, every dataset must sit in one of Kedro's layers, and the static site, served
on 127.0.0.1, must draw the ``__default__`` graph in headless Chromium.

``python -m tests.test_kedro_viz docs/images/kedro-viz.png`` writes the README's screenshot.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from kedro_datasets.matplotlib import MatplotlibDataset
from matplotlib.figure import Figure
from PIL import Image

from skin_lesion.datasets import PngDataset
from skin_lesion.figures import figure_to_png
from tests.browser import ensure_chromium, render, serve_directory
from tests.conftest import copy_project

pytestmark = pytest.mark.slow

LAYERS = {"raw", "intermediate", "primary", "model_input", "models", "model_output", "reporting"}
BUILD_TIMEOUT_S = 300
WINDOW = (1600, 1000)
# kedro-viz fetches api/main, then lays the graph out in a web worker; virtual time runs on
# once the page is idle, so this is an upper bound, not a sleep.
RENDER_BUDGET_MS = 15_000
# kedro-viz keeps its settings in localStorage["KedroViz"]; a page on the same origin sets
# them, then opens the app. No feature-hint pop-up, no minimap over the graph.
VIZ_SETTINGS = {"showFeatureHints": False, "visible": {"miniMap": False, "sidebar": True}}
README_SETTINGS = {**VIZ_SETTINGS, "theme": "light", "isPrettyName": True}


@dataclass(frozen=True)
class Graph:
    """A pipeline as kedro-viz draws it: task, dataset and parameter names, and edges."""

    tasks: frozenset[str]
    datasets: frozenset[str]
    parameters: frozenset[str]
    edges: frozenset[tuple[str, str]]


def is_parameter(name: str) -> bool:
    """Whether a node input is a parameter (``params:...`` or the whole ``parameters``)."""
    return name == "parameters" or name.startswith("params:")


def registry_graph(pipeline) -> Graph:
    """The graph kedro-viz should draw for ``pipeline``: one edge per node input and output."""
    edges = set()
    for node in pipeline.nodes:
        edges |= {(name, node.name) for name in node.inputs}
        edges |= {(node.name, name) for name in node.outputs}
    names = pipeline.datasets()
    return Graph(
        tasks=frozenset(node.name for node in pipeline.nodes),
        datasets=frozenset(name for name in names if not is_parameter(name)),
        parameters=frozenset(name for name in names if is_parameter(name)),
        edges=frozenset(edges),
    )


def viz_graph(response: dict) -> Graph:
    """The graph in a kedro-viz ``api/main`` or ``api/pipelines/<name>`` response."""
    names = {node["id"]: node["name"] for node in response["nodes"]}

    def of_type(kind: str) -> frozenset[str]:
        return frozenset(node["name"] for node in response["nodes"] if node["type"] == kind)

    def name(node_id: str) -> str:
        return names.get(node_id, f"<no node {node_id}>")

    return Graph(
        tasks=of_type("task"),
        datasets=of_type("data"),
        parameters=of_type("parameters"),
        edges=frozenset((name(edge["source"]), name(edge["target"])) for edge in response["edges"]),
    )


def build_viz(project: Path) -> Path:
    """Run ``kedro viz build`` in ``project``; returns the ``build`` folder it wrote."""
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    env.pop("KEDRO_ENV", None)
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "viz", "build"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    build = project / "build"
    # `kedro viz build` prints its own errors and still exits 0: look for what it writes.
    if result.returncode != 0 or not (build / "api" / "main").is_file():
        output = (result.stdout + result.stderr)[-3000:]
        raise AssertionError(f"kedro viz build exited {result.returncode}, no api/main:\n{output}")
    # FastAPI's 15-line deprecation of the class kedro-viz subclasses: skin_lesion.warning_filters.
    assert "ORJSONResponse" not in result.stdout + result.stderr, result.stderr[-3000:]
    return build


def prepare_page(settings: dict, pipeline: str = "__default__") -> str:
    """HTML that stores kedro-viz ``settings`` for the origin, then opens ``pipeline``."""
    return (
        '<!DOCTYPE html><meta charset="utf-8"><script>'
        f"localStorage.setItem('KedroViz', {json.dumps(json.dumps(settings))});"
        f"location.replace('./?pid={pipeline}');</script>"
    )


def render_viz(build: Path, png_path: Path, settings: dict, scale: float = 1.0) -> str:
    """Serve ``build``, screenshot the ``__default__`` graph; returns the rendered DOM."""
    with serve_directory(build, {"/prepare.html": prepare_page(settings)}) as url:
        return render(
            url + "prepare.html",
            png_path,
            *WINDOW,
            virtual_time_budget_ms=RENDER_BUDGET_MS,
            scale=scale,
        )


@pytest.fixture(scope="module")
def viz_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway copy of the project (conf/, pyproject.toml) for the module's tests."""
    return copy_project(tmp_path_factory.mktemp("viz_project"))


@pytest.fixture(scope="module")
def viz_build(viz_project: Path) -> Path:
    """The ``build/`` folder of one real ``kedro viz build``, shared by the module."""
    return build_viz(viz_project)


@pytest.fixture(scope="module")
def registry(viz_project: Path) -> dict:
    """The project's own pipelines, from its registry: what kedro-viz must show."""
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(viz_project)
    from skin_lesion.pipeline_registry import register_pipelines

    return register_pipelines()


def load_response(build: Path, pipeline: str | None = None) -> dict:
    path = build / "api" / ("main" if pipeline is None else f"pipelines/{pipeline}")
    return json.loads(path.read_text())


def test_build_lists_every_registered_pipeline(viz_build: Path, registry: dict):
    main = load_response(viz_build)
    assert {p["id"] for p in main["pipelines"]} == set(registry)
    assert main["selected_pipeline"] == "__default__"
    assert viz_graph(main) == registry_graph(registry["__default__"])
    built = {path.name for path in (viz_build / "api" / "pipelines").iterdir()}
    assert built == set(registry)


def test_every_pipeline_has_all_its_nodes_and_edges(viz_build: Path, registry: dict):
    for name, pipeline in registry.items():
        response = load_response(viz_build, name)
        assert response["selected_pipeline"] == name
        expected, drawn = registry_graph(pipeline), viz_graph(response)
        for part in ("tasks", "datasets", "parameters", "edges"):
            missing = getattr(expected, part) - getattr(drawn, part)
            extra = getattr(drawn, part) - getattr(expected, part)
            assert not missing and not extra, f"{name} {part}: missing {missing}, extra {extra}"
        assert len(drawn.tasks) == len(pipeline.nodes)
        for node in response["nodes"]:
            assert name in node["pipelines"], f"{node['name']} not marked as in {name}"


def test_every_dataset_has_a_layer_and_gpu_nodes_a_tag(viz_build: Path, registry: dict):
    main = load_response(viz_build)
    assert set(main["layers"]) == LAYERS
    assert "gpu" in {tag["id"] for tag in main["tags"]}
    for name, pipeline in registry.items():
        nodes = {node["name"]: node for node in load_response(viz_build, name)["nodes"]}
        no_layer = sorted(
            node["name"]
            for node in nodes.values()
            if node["type"] == "data" and node["layer"] not in LAYERS
        )
        assert not no_layer, f"{name}: datasets without a Kedro layer: {no_layer}"
        for node in pipeline.nodes:
            assert set(nodes[node.name]["tags"]) == set(node.tags), node.name
    gpu_nodes = {n.name for p in registry.values() for n in p.nodes if "gpu" in n.tags}
    assert {
        "pretrain_encoder",
        "train_classifier",
        "predict_test",
        "predict_val",
        "plot_gradcam_examples",
    } <= gpu_nodes


def _sample(dataset) -> object | None:
    """Something ``dataset`` can save, for the preview formats kedro-datasets supports."""
    # Of the class or a base (the project's atomic datasets subclass kedro-datasets').
    kinds = [f"{kind.__module__}.{kind.__name__}" for kind in type(dataset).__mro__]
    if any(kind.startswith("kedro_datasets.pandas.") for kind in kinds):
        return pd.DataFrame({"image_id": [f"ISIC_{i:07d}" for i in range(30)], "x": range(30)})
    if any(kind.startswith("kedro_datasets.json.") for kind in kinds):
        return {"balanced_accuracy": 0.5, "classes": ["mel", "nv"]}
    if isinstance(dataset, MatplotlibDataset | PngDataset):
        fig = Figure(figsize=(2, 2))
        fig.add_subplot().plot([0, 1], [1, 0])
        return figure_to_png(fig) if isinstance(dataset, PngDataset) else fig
    return None


def test_dataset_previews_work_with_their_catalog_settings(
    viz_project: Path, registry: dict, monkeypatch: pytest.MonkeyPatch
):
    """Tables, JSON and figures get a kedro-viz preview; ``preview_args`` fit ``preview()``."""
    from kedro.framework.project import settings
    from kedro.io import DataCatalog

    monkeypatch.chdir(viz_project)  # the catalog's relative paths land in the copy
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(viz_project / "conf"), **settings.CONFIG_LOADER_ARGS
    )
    catalog = DataCatalog.from_config(loader["catalog"])
    names = {n for p in registry.values() for n in p.datasets() if not is_parameter(n)}
    previewed = set()
    for name in sorted(names):
        dataset = catalog[name]
        viz = (dataset.metadata or {}).get("kedro-viz", {})
        assert viz.get("layer") in LAYERS, f"{name}: no Kedro layer in its catalog entry"
        sample = _sample(dataset)
        if viz.get("preview") is False or sample is None:
            continue
        args = viz.get("preview_args", {})
        inspect.signature(dataset.preview).bind(**args)  # a misspelt argument fails here
        dataset.save(sample)
        preview = dataset.preview(**args)
        if isinstance(sample, pd.DataFrame):
            assert len(preview["data"]) == args.get("nrows", 5), name
        else:
            assert preview, name
        previewed.add(name)
    assert {"splits", "test_predictions", "test_metrics", "confusion_matrix_plot"} <= previewed


@pytest.mark.browser
def test_static_build_draws_the_default_pipeline(viz_build: Path, registry: dict, tmp_path):
    ensure_chromium()
    png = tmp_path / "kedro-viz.png"
    dom = render_viz(viz_build, png, VIZ_SETTINGS)

    expected = registry_graph(registry["__default__"])
    # Parameters are hidden by default: every task and dataset has a label, nothing else.
    labels = re.findall(r'class="pipeline-node__text"[^>]*>([^<]*)<', dom)
    assert sorted(labels) == sorted(expected.tasks | expected.datasets)
    assert set(re.findall(r'data-id="layer-label--([^"]+)"', dom)) == LAYERS
    drawn_edges = [e for e in expected.edges if not (is_parameter(e[0]) or is_parameter(e[1]))]
    assert dom.count('class="pipeline-edge"') == len(drawn_edges)

    image = Image.open(png).convert("RGB")
    assert image.size == WINDOW
    graph_area = image.crop((WINDOW[0] // 2 - 200, 0, WINDOW[0], WINDOW[1]))
    colours = graph_area.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 20, f"graph area nearly blank: {len(colours)} colours"


def write_readme_screenshot(png_path: Path) -> Path:
    """Build kedro-viz in a temporary copy and capture the README's ``__default__`` graph."""
    with tempfile.TemporaryDirectory(prefix="viz_project-") as folder:
        build = build_viz(copy_project(Path(folder)))
        # Twice the pixels, so node labels stay legible when the image is opened full size.
        render_viz(build, png_path, README_SETTINGS, scale=2.0)
    return png_path


if __name__ == "__main__":
    print(write_readme_screenshot(Path(sys.argv[1] if len(sys.argv) > 1 else "kedro-viz.png")))
