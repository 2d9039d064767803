"""Kedro's start-up stays cheap: every `kedro` command, `kedro viz`, each `%reload_kedro` and
every notebook session create a context (the parameter check builds every node's config) and
most load the pipelines (every pipeline's nodes), yet run nothing. The heavy libraries the
nodes call (torch and timm, about 4 s; scipy, matplotlib) are imported only by the node
functions that run, and by the checks that need them when a run starts."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import skin_lesion
from tests.conftest import PROJECT_ROOT

HEAVY = ("torch", "timm", "scipy", "matplotlib", "mlflow")
# A session also loads kedro-mlflow, which imports mlflow and, through it, scipy; building
# the catalog's datasets imports kedro-datasets' MatplotlibDataset, and so matplotlib.
SESSION_HEAVY = ("torch", "timm", "matplotlib")
CATALOG_HEAVY = ("torch", "timm")

# In a fresh interpreter: the project's package set as `configure_project` sets it, without
# settings.py (its MLflow hook imports mlflow, as kedro-mlflow's own hook does anyway).
SCRIPT = f"""
import sys
from kedro.framework import project
project.PACKAGE_NAME = "skin_lesion"
from skin_lesion.pipeline_registry import register_pipelines
pipelines = register_pipelines()
assert len(pipelines["__default__"].nodes) > 0
print("heavy:", sorted(m for m in {HEAVY!r} if m in sys.modules))
"""

# A session as `kedro catalog`, `kedro viz` or a notebook's `%reload_kedro` makes one: the
# hooks of settings.py run, the parameter check among them. Then every dataset of the
# catalog is built, as kedro-viz and `kedro catalog describe-datasets` build them.
SESSION = f"""
import sys
from pathlib import Path
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
env = sys.argv[1] or None
bootstrap_project(Path.cwd())
with KedroSession.create(project_path=Path.cwd(), env=env) as session:
    context = session.load_context()
    assert context.params["encoder"]["name"]
    print("heavy:", sorted(m for m in {SESSION_HEAVY!r} if m in sys.modules))
    catalog = context.catalog  # each access of the property builds the catalog anew
    for name in catalog.keys():
        catalog.get(name)
    print("heavy:", sorted(m for m in {CATALOG_HEAVY!r} if m in sys.modules))
"""


def run_fresh(script: str, cwd: Path, *args: str) -> str:
    """``script``'s output, run in a fresh interpreter in ``cwd`` on the package these tests
    import; it must succeed."""
    source = str(Path(skin_lesion.__file__).parents[1])
    path = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH")) if p)
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path, "KEDRO_DISABLE_TELEMETRY": "true"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def heavy_imported(script: str, cwd: Path, *args: str) -> list[str]:
    """The ``heavy:`` lines ``script`` prints, run in a fresh interpreter in ``cwd``."""
    return re.findall(r"heavy: \[[^]]*\]", run_fresh(script, cwd, *args))  # amid Kedro's logs


def test_registering_the_pipelines_imports_no_heavy_library():
    assert heavy_imported(SCRIPT, PROJECT_ROOT) == ["heavy: []"]


# Kedro's parameter validation (KedroContext.params) resolves every node's type hints with
# typing.get_type_hints: a name imported for type checking only does not resolve.
HINTS = (
    SCRIPT.replace('print("heavy:"', "#")
    + """
from typing import get_type_hints
unresolved = []
for pipeline in pipelines.values():
    for node in pipeline.nodes:
        try:
            get_type_hints(node.func)
        except Exception as error:
            unresolved.append(f"{node.name}: {error}")
print("unresolved:", sorted(set(unresolved)))
print("heavy:", sorted(m for m in {heavy!r} if m in sys.modules))
""".replace("{heavy!r}", repr(HEAVY))
)


def test_every_node_s_type_hints_resolve_without_a_heavy_library():
    """``classify_images`` returned ``Callable[[], Figure]`` with matplotlib's Figure imported
    for type checking only: every `kedro run` and `%reload_kedro` logged "Could not extract
    type hints from function classify_images: name 'Figure' is not defined"."""
    output = run_fresh(HINTS, PROJECT_ROOT)
    assert "unresolved: []" in output, output[-2000:]
    assert re.findall(r"heavy: \[[^]]*\]", output) == ["heavy: []"]


@pytest.mark.slow
@pytest.mark.parametrize("env", ["", "test"])  # local (base's device: auto), test (cpu)
def test_a_session_s_context_imports_neither_torch_nor_timm(kedro_project: Path, env: str):
    assert heavy_imported(SESSION, kedro_project, env) == ["heavy: []", "heavy: []"]


# gpu.sh's first step on a GPU machine: check ABLATIONS and SPEED_ARGS with accuracy.py's
# names and speed.py's parser. It imported torch and timm twice over (about 8 s each, through
# skin_lesion.command and speed.py's training code) before it could say a word.
CHECK = f"""
import sys
from benchmarks import gpu_settings
assert gpu_settings.check("cross-entropy", "--workers 8 --steps 60") == []
assert gpu_settings.check("crossentropy", "--workers eight")  # refused, by the same readers
print("heavy:", sorted(m for m in {CATALOG_HEAVY!r} if m in sys.modules))
"""


def test_gpu_sh_s_check_of_its_settings_imports_neither_torch_nor_timm():
    """(scipy, for accuracy.py's statistics, costs under a second and is allowed.)"""
    assert heavy_imported(CHECK, PROJECT_ROOT) == ["heavy: []"]
