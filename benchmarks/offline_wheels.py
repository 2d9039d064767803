"""Wheels for running the pipelines and benchmarks on a machine without internet.

Usage:
    python benchmarks/offline_wheels.py --have have.txt [--python-version 3.12]
        [--platform manylinux_2_28_x86_64 ...] [--with tracking] [--out .offline/wheels]

GPU servers in hospitals and clusters often have PyTorch installed and no way to reach
PyPI. This collects, here where pip works, the wheels that such a machine lacks: the
project's run-time dependencies and everything they need, minus what the machine already
has (``--have``: the output of ``python3 -m pip list --format=freeze`` or ``pip freeze``
there, or one package name a line). The versions are the ones installed in this
environment, the ones the test suite ran with, fetched for the target's Python and platform
(compiled wheels such as ``kornia-rs`` in the target's ABI; pure-Python ones as they are; a
package that PyPI ships only as source is built into a pure-Python wheel here, and one that
would need compiling for the target is an error naming it).

Left out unless ``--with`` names them: ``tracking`` (kedro-mlflow and mlflow; without them
runs go untracked, see src/skin_lesion/settings.py), ``viz`` (kedro-viz) and ``notebooks``
(Jupyter). The project itself is not a wheel: run from the checkout with ``src`` on the path.

On the target, with the checkout and the wheels copied there::

    python3 -m pip install --no-index --no-deps --target /tmp/site WHEELS/*.whl
    export PYTHONPATH=/tmp/site:$PWD/src KEDRO_DISABLE_TELEMETRY=true
    PYTHON=python3 DATA=/path/to/HAM10000 bash benchmarks/gpu.sh

``--have`` versions are checked against what the project asks for (``torch<=2.14.1``, say):
a package the target has in a version outside the range is reported before anything is
downloaded. Writes the wheels and ``MANIFEST.json`` (what was fetched, what the target must
already have) into ``--out``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[1]

# Dependencies of pyproject.toml that running the pipelines does not import; each group is
# added by --with. Every name here must be a dependency of pyproject.toml (tested), so a
# renamed package cannot silently drop out of both lists.
OPTIONAL = {
    "tracking": ("kedro-mlflow",),
    "viz": ("kedro-viz",),
    # ipywidgets draws tqdm's bars in Jupyter; without it they fall back to text.
    "notebooks": ("ipykernel", "jupyterlab", "ipywidgets"),
}

DEFAULT_PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)


def read_have(text: str) -> dict[str, str | None]:
    """Package names (canonical) and versions from ``pip freeze``/``pip list`` output.

    Accepts ``name==version``, ``name @ url`` (version unknown), ``-e`` lines (skipped),
    plain names, comments and blank lines; a line it cannot read is an error naming it.
    """
    have: dict[str, str | None] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith(("-e", "--")):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:==\s*([^\s;]+)|@\s*\S+)?", line)
        if not match:
            raise ValueError(f"--have line {number} is not 'name', 'name==version': {raw!r}")
        have[canonicalize_name(match.group(1))] = match.group(2)
    return have


def check_target_python(pyproject: Path, python_version: str) -> None:
    """Refuse a target Python outside the project's ``requires-python``, naming both."""
    wanted = tomllib.loads(pyproject.read_text())["project"].get("requires-python", "")
    if wanted and Version(f"{python_version}.0") not in SpecifierSet(wanted):
        raise ValueError(
            f"--python-version {python_version}: the project needs Python {wanted}"
            f" ({pyproject.name} requires-python)"
        )


def project_dependencies(pyproject: Path) -> list[str]:
    """``[project] dependencies`` of ``pyproject``."""
    return tomllib.loads(pyproject.read_text())["project"]["dependencies"]


def runtime_requirements(pyproject: Path, extras: Iterable[str] = ()) -> list[Requirement]:
    """The project's dependencies minus the OPTIONAL groups not named in ``extras``."""
    unknown = sorted(set(extras) - set(OPTIONAL))
    if unknown:
        raise ValueError(f"unknown --with {unknown}; known: {sorted(OPTIONAL)}")
    deps = [Requirement(d) for d in project_dependencies(pyproject)]
    left_out = {
        canonicalize_name(name)
        for group, names in OPTIONAL.items()
        if group not in extras
        for name in names
    }
    return [r for r in deps if canonicalize_name(r.name) not in left_out]


def marker_environment(python_version: str, platforms: Iterable[str]) -> dict[str, str]:
    """The PEP 508 marker values of a CPython ``python_version`` on a Linux ``platforms``."""
    if not re.fullmatch(r"\d+\.\d+", python_version):
        raise ValueError(f"--python-version must be MAJOR.MINOR, e.g. 3.12: {python_version!r}")
    # manylinux_2_28_x86_64, manylinux2014_aarch64, linux_x86_64: the machine comes last.
    machines = (re.search(r"(x86_64|aarch64|i686|ppc64le|s390x|armv7l)$", p) for p in platforms)
    machine = next((m.group(1) for m in machines if m), platform.machine())
    return {
        "python_version": python_version,
        "python_full_version": f"{python_version}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": machine,
        "extra": "",
    }


def _applies(requirement: Requirement, env: dict[str, str], extras: Iterable[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({**env, "extra": extra}) for extra in ("", *extras))


def _installed_requires(name: str) -> list[str]:
    return importlib.metadata.requires(name) or []


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def closure(
    roots: Iterable[Requirement],
    have: dict[str, str | None],
    env: dict[str, str],
    *,
    version_of: Callable[[str], str | None] = _installed_version,
    requires_of: Callable[[str], list[str]] = _installed_requires,
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """What the target lacks, pinned to this environment's versions, and what it must have.

    Walks the requirements from ``roots`` through each installed package's own requirements
    (markers evaluated for ``env`` and the extras asked for). A package in ``have`` is not
    fetched and its own requirements are the target's business.

    Returns:
        ``(fetch, needed_from_target)``: ``{name: version}`` to download, and
        ``{name: [specifiers asked of it, with who asked]}`` for packages the target has.

    Raises:
        ValueError: A needed package is not installed here (install the project first), or
            its version here is outside what a dependent asks for.
    """
    fetch: dict[str, str] = {}
    from_target: dict[str, list[str]] = {}
    done: set[tuple[str, frozenset[str]]] = set()
    queue = [(r, "skin-lesion") for r in roots if _applies(r, env, ())]
    while queue:
        requirement, asker = queue.pop(0)
        name = canonicalize_name(requirement.name)
        if name in have:
            spec = str(requirement.specifier) or "any version"
            from_target.setdefault(name, []).append(f"{spec} (for {asker})")
            continue
        version = version_of(name)
        if version is None:
            raise ValueError(
                f"{requirement.name} (needed by {asker}) is not installed in this environment"
                f" ({sys.executable}); run `make install` first, or list it in --have if the"
                " target has it"
            )
        if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
            raise ValueError(
                f"{asker} asks for {requirement}, but this environment has {name} {version}"
            )
        fetch[name] = version
        key = (name, frozenset(requirement.extras))
        if key in done:
            continue
        done.add(key)
        for line in requires_of(name):
            child = Requirement(line)
            if _applies(child, env, requirement.extras):
                queue.append((child, f"{name} {version}"))
    return dict(sorted(fetch.items())), dict(sorted(from_target.items()))


def target_conflicts(
    needed: dict[str, list[str]], have: dict[str, str | None], roots: Iterable[Requirement]
) -> list[str]:
    """Packages the target has in a version outside what the project asks of them directly.

    Only the project's own ranges are checked (``torch<=2.14.1``); ranges other packages ask
    of the target's packages are listed in the manifest, not enforced: the target's
    environment is its own and was resolved there.
    """
    problems = []
    for requirement in roots:
        name = canonicalize_name(requirement.name)
        version = have.get(name)
        if name not in needed or version is None or not requirement.specifier:
            continue
        try:
            ok = requirement.specifier.contains(Version(version), prereleases=True)
        except InvalidVersion:
            continue
        if not ok:
            problems.append(f"{name} {version} on the target; the project asks {requirement}")
    return problems


def pip_download_command(
    pin: str, out: Path, python_version: str, platforms: Iterable[str]
) -> list[str]:
    """``pip download`` of one pinned wheel for the target's Python and platforms."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        python_version,
        "--implementation",
        "cp",
        "--dest",
        str(out),
    ]
    for tag in platforms:
        command += ["--platform", tag]
    return [*command, pin]


def fetch_wheels(
    fetch: dict[str, str],
    out: Path,
    python_version: str,
    platforms: Iterable[str],
    *,
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
) -> list[str]:
    """Download each pinned wheel into ``out``; build pure-Python ones from source if needed.

    Returns the notes of packages built here. Raises RuntimeError naming a package that has
    no wheel for the target and does not build into a pure-Python one.
    """
    out.mkdir(parents=True, exist_ok=True)
    platforms = list(platforms)
    built = []
    for name, version in fetch.items():
        pin = f"{name}=={version}"
        print(f"[offline-wheels] {pin}", flush=True)
        done = run(
            pip_download_command(pin, out, python_version, platforms),
            capture_output=True,
            text=True,
        )
        if done.returncode == 0:
            continue
        with tempfile.TemporaryDirectory() as scratch:
            made = run(
                [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", scratch, pin],
                capture_output=True,
                text=True,
            )
            wheels = list(Path(scratch).glob("*.whl"))
            if (
                made.returncode != 0
                or len(wheels) != 1
                or not wheels[0].name.endswith("-none-any.whl")
            ):
                raise RuntimeError(
                    f"{pin} has no wheel for CPython {python_version} on {platforms[0]} and"
                    f" does not build into a pure-Python one here:\n{done.stderr.strip()}"
                    f"\n{made.stderr.strip()}"
                )
            (out / wheels[0].name).write_bytes(wheels[0].read_bytes())
            built.append(f"{pin}: built from source here ({wheels[0].name})")
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--have",
        type=Path,
        required=True,
        help="what the target has: `python3 -m pip list --format=freeze` run there",
    )
    parser.add_argument("--python-version", default=f"{sys.version_info[0]}.{sys.version_info[1]}")
    parser.add_argument(
        "--platform",
        action="append",
        dest="platforms",
        help=f"wheel platform tags the target accepts (default: {' '.join(DEFAULT_PLATFORMS)})",
    )
    parser.add_argument("--with", action="append", dest="extras", default=[], choices=OPTIONAL)
    parser.add_argument("--out", type=Path, default=ROOT / ".offline" / "wheels")
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    args = parser.parse_args(argv)

    if not args.have.is_file():
        parser.error(f"--have {args.have} is not a file")
    platforms = args.platforms or list(DEFAULT_PLATFORMS)
    try:
        have = read_have(args.have.read_text())
        roots = runtime_requirements(args.pyproject, args.extras)
        env = marker_environment(args.python_version, platforms)
        check_target_python(args.pyproject, args.python_version)
        fetch, needed = closure(roots, have, env)
    except ValueError as error:
        parser.exit(2, f"offline_wheels: {error}\n")
    conflicts = target_conflicts(needed, have, roots)
    if conflicts:
        parser.exit(
            2,
            "offline_wheels: the target's packages do not fit:\n  " + "\n  ".join(conflicts) + "\n",
        )
    stale = sorted(args.out.glob("*.whl")) if args.out.is_dir() else []
    if stale:
        parser.exit(
            2,
            f"offline_wheels: {args.out} already holds {len(stale)} wheels; two versions of a"
            " package stop the install there: empty it or pass another --out\n",
        )
    built = fetch_wheels(fetch, args.out, args.python_version, platforms)
    wheels = sorted(p.name for p in args.out.glob("*.whl"))
    size = sum((args.out / w).stat().st_size for w in wheels)
    manifest = {
        "python_version": args.python_version,
        "platforms": platforms,
        "with": sorted(args.extras),
        "fetched": fetch,
        "built_here": built,
        "wheels": wheels,
        "bytes": size,
        "from_target": needed,
    }
    (args.out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(
        f"[offline-wheels] {len(wheels)} wheels, {size / 2**20:.1f} MiB in {args.out};"
        f" the target must already have: {', '.join(needed)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
