"""Check that this Python has every dependency pyproject.toml names, in its range.

Usage:
    python benchmarks/check_dependencies.py [--pyproject pyproject.toml]

On a machine where the project runs from its folder without being installed (a GPU server
given the wheels of ``benchmarks/offline_wheels.py`` and ``src`` on ``PYTHONPATH``), ``pip
check`` looks only at installed packages' own requirements, not at the project's: a
preinstalled timm or scikit-learn older than the project's floor, or a torch above its cap,
would show only as a failure minutes into a run. This lists each dependency that is missing
or out of range, in a second, and exits 1 if any is; 0 when all fit. ``benchmarks/gpu.sh``
runs it first and reports what it finds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: `benchmarks` is not on the path
    sys.path.insert(0, str(ROOT))

from benchmarks.offline_wheels import (  # noqa: E402
    OPTIONAL,
    _installed_version,
    project_dependencies,
)


def problems(pyproject: Path) -> list[str]:
    """One line for each dependency of ``pyproject`` missing here or outside its range
    (those whose environment marker excludes this Python are skipped, and so are the
    optional ones ``offline_wheels.py`` leaves out unless asked, MLflow tracking, kedro-viz
    and Jupyter, where they are not installed: the runs work without them)."""
    optional = {canonicalize_name(name) for names in OPTIONAL.values() for name in names}
    found = []
    for line in project_dependencies(pyproject):
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        installed = _installed_version(requirement.name)
        if installed is None:
            if canonicalize_name(requirement.name) in optional:
                continue
            needs = requirement.specifier or "any"
            found.append(f"{requirement.name}: not installed (needs {needs})")
            continue
        try:
            version = Version(installed)
        except InvalidVersion:
            found.append(f"{requirement.name}: version {installed!r} cannot be compared")
            continue
        if not requirement.specifier.contains(version, prereleases=True):
            found.append(f"{requirement.name} {installed}: outside {requirement.specifier}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    args = parser.parse_args(argv)
    found = problems(args.pyproject)
    for line in found:
        print(f"[check-dependencies] {line}", file=sys.stderr)
    if not found:
        print(f"[check-dependencies] every dependency of {args.pyproject.name} fits")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
