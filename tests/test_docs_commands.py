"""The commands the documentation tells users to run name things that still exist.

Every ``kedro run``, ``kedro viz``, ``kedro jupyter``/``ipython``, ``skin-lesion predict``,
``python benchmarks/<script>.py``, ``bash benchmarks/gpu.sh``, ``python -m skin_lesion[.<module>]``
and ``make`` command in the READMEs and ``docs/`` (fenced blocks and inline code) is read, and
each name in it is looked up where the code keeps it: a script's ``--flag`` in its own argparse
parser (and a value of an option with choices among them), a ``kedro run`` or ``kedro viz``
option in its click command, ``--pipelines`` in ``skin_lesion/pipelines``, ``--env`` and
``KEDRO_ENV=`` in ``conf/``, each ``--params`` key (dotted keys to the leaf) in the parameters of
that environment (``accuracy.py``'s: of its ``--setting``'s), node names and tags in the
pipelines, ``--to-outputs``/``--from-inputs``/``--load-versions`` among the datasets, a ``make``
target in the Makefile, a ``VAR=`` setting of ``gpu.sh`` among those it reads (and a value
among those it accepts), a module's subcommand in its ``__main__`` block. Each ``--params``
value is then merged into the environment's parameters as Kedro merges it and put through the
project's own checks (the ``ParametersCheck`` hook's), so a value the run would refuse fails
here too. Options that prose names alone (``--compare-runs A B``) must be options of one of
those commands. A flag renamed in the code without updating the docs, or a typo in the docs,
fails here with its file, line and token. Nothing is run: the parsers are read, not the
benchmarks.
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import importlib.util
import inspect
import json
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import click
import pytest

from skin_lesion.parameters_check import resolver_names
from skin_lesion.pipeline_registry import pipeline_names
from tests.test_readme_results import DOCS

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
# An inline code span: a run of backticks, its content (no blank line in it), the same run.
SPAN = re.compile(r"(?<!`)(`+)(?!`)((?:(?!\n[ \t]*\n).)+?)(?<!`)\1(?!`)", re.DOTALL)
# Where one shell command ends and the next may begin (a backtick: a command quoted inside a
# ``double-backtick`` span of an error message).
# A pipe has spaces around it: ``--tta none|flips|dihedral`` is one value.
SEPARATOR = re.compile(r"`|;|&&|\s\|\|?\s|\bthen\b|\bdo\b")
PROGRAM = re.compile(
    r"(?P<kedro>\bkedro\s+run\b)"
    r"|(?P<viz>\bkedro\s+viz\b)"
    # ``kedro jupyter`` alone is the group (prose names it so), not a command.
    r"|(?P<notebook>\bkedro\s+(?:jupyter\s+(?:lab|notebook)|ipython)\b)"
    r"|(?P<predict>(?<![\w-])skin-lesion\s+predict\b)"
    r"|(?P<demo>\bpython3?\s+-m\s+skin_lesion\.demo\b)"
    r"|\bpython3?\s+-m\s+(?P<module>skin_lesion(?:\.\w+)*)(?![\w.])"
    # ``benchmarks/x.py`` by any path to it (``./benchmarks/x.py``, ``/repo/benchmarks/x.py``).
    r"|(?P<script>(?<![\w/.-])(?:/?(?:[\w.-]+/)*benchmarks/)?(?P<name>\w+)\.py\b)"
)
# ``VAR=value`` environment settings a segment starts with (a quoted value may hold spaces):
# ``SEEDS="0 1" STEPS=gpu-full bash benchmarks/gpu.sh``, ``KEDRO_ENV=demo kedro jupyter lab``.
ASSIGNMENT = r"[A-Z_][A-Z0-9_]*=(?:\"[^\"]*\"|'[^']*'|[^\s\"']*)"
SETTINGS = re.compile(rf"\s*[\[(]?((?:{ASSIGNMENT}(?:\s+|$))*)")
# ``make TARGET`` only as the whole segment's command (after its settings): the word "make" is
# also English, and error messages quoted in code spans use it.
MAKE = re.compile(r"make\s+(?P<target>[\w.-]+)")
# PROGRAM's groups that name a command of their own (a key of CHECKS).
NAMED = ("kedro", "viz", "notebook", "predict", "demo")
GPU_SH = re.compile(r"(?:(?:bash|sh)\s+)?(?:\./)?benchmarks/gpu\.sh\b")
# A value written as a placeholder for the reader's own: <name>, DIR, RUN_A, K, ..., $VAR, and a
# single lowercase letter, as prose names a number (``validation_fold=k`` makes fold *k* ...).
PLACEHOLDER = re.compile(r"<|>|\.\.\.|…|\$|^[A-Z][A-Z0-9_]*$|^[a-z]$")
SCRIPTS = ROOT / "benchmarks"
GPU_SCRIPT = SCRIPTS / "gpu.sh"


@dataclass(frozen=True)
class Command:
    """One command in a doc: its program, its tokens after the program, and where it is."""

    doc: str
    line: int
    program: str  # a key of CHECKS, or a benchmark script's name
    tokens: tuple[str, ...]
    settings: tuple[str, ...] = ()  # the ``VAR=value`` settings before it, unquoted

    def setting(self, name: str) -> str | None:
        """The value the command's settings give ``name`` (None: none, or a placeholder)."""
        values = [v for n, _, v in (s.partition("=") for s in self.settings) if n == name]
        return values[-1] if values and not is_placeholder(values[-1]) else None

    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def code_snippets(text: str) -> Iterator[tuple[int, str]]:
    """``(line, code)`` for each logical line of a fenced block (``\\``-continued lines
    joined, ``# comments`` dropped) and each inline code span; newlines are kept in the code,
    so a position in it counts lines."""
    lines = text.splitlines()
    prose, fence, block = [], None, []
    for number, line in enumerate(lines, start=1):
        opening = FENCE.match(line)
        if fence is None and opening:
            fence, block = opening.group(1)[0] * 3, []
            prose.append("")
            continue
        if fence is not None:
            prose.append("")
            if line.strip().startswith(fence):
                fence = None
                yield from _logical_lines(block)
            else:
                block.append((number, line))
            continue
        prose.append(line)
    body = "\n".join(prose)
    for span in SPAN.finditer(body):
        yield body.count("\n", 0, span.start()) + 1, span.group(2)


def _logical_lines(block: list[tuple[int, str]]) -> list[tuple[int, str]]:
    logical: list[tuple[int, str]] = []
    continued = False
    for number, line in block:
        code = re.sub(r"(^|\s)#.*", "", line)  # a shell comment, or a comment line
        # A usage line, ``[--option VALUE]`` indented under its command without a backslash,
        # continues it as a backslash-ended line does.
        usage = re.match(r"\s+\[-", code) and logical
        if continued or usage:
            start, previous = logical.pop()
            logical.append((start, f"{previous}\n{code}"))
        else:
            logical.append((number, code))
        continued = code.rstrip().endswith("\\")
        if continued:
            start, text = logical.pop()
            logical.append((start, text.rstrip()[:-1]))
    return logical


def _clean(token: str) -> str:
    """A token without the brackets and punctuation of the prose around it (``[--env x]``);
    a ``]`` that closes a ``[`` of the token (a YAML list, ``alpha=[1,2]``) is kept."""
    token = token.lstrip("[(")
    while token[-1:] in ("]", ")", ",", ":"):
        if token[-1] == "]" and token.count("[") >= token.count("]"):
            break
        token = token[:-1]
    return token


def commands(doc: str, text: str) -> list[Command]:
    """Every command of the kinds this module checks in ``text`` (the file ``doc``)."""
    found = []
    for line, code in code_snippets(text):
        offset = 0
        for segment in SEPARATOR.split(code):
            here = line + code.count("\n", 0, code.find(segment, offset))
            offset = code.find(segment, offset) + len(segment)
            found += _segment_commands(doc, here, segment)
    return found


def _assignments(text: str) -> tuple[str, ...]:
    try:
        return tuple(a.rstrip("])") for a in shlex.split(text))
    except ValueError:  # an unbalanced quote: prose, not a shell line
        return tuple(text.split())


def _segment_commands(doc: str, here: int, segment: str) -> list[Command]:
    """The commands of one segment (``here``: its first line), after its ``VAR=`` settings."""

    def at(position: int) -> int:
        return here + segment.count("\n", 0, position)

    lead = SETTINGS.match(segment)
    assert lead is not None  # every part of the pattern may match nothing
    settings, start = _assignments(lead.group(1)), lead.end()
    rest = segment[start:]
    make = MAKE.match(rest)
    if make:
        target = make.group("target")
        found = [Command(doc, at(start + make.start("target")), "make", (target,), settings)]
        if target in gpu_make_targets():  # the Makefile hands the settings on to gpu.sh
            found.append(Command(doc, at(start), "gpu", (), settings))
        return found
    if GPU_SH.match(rest):
        return [Command(doc, at(start), "gpu", (), settings)]
    if settings and not rest.strip(" \n]),.:"):
        return [Command(doc, at(lead.start(1)), "settings", (), settings)]
    starts = list(PROGRAM.finditer(segment, start))
    if not starts and re.match(r"\s*\[?--\w", rest):
        # Options alone, as prose names them (``--compare-runs A B``).
        tokens = tuple(_clean(t) for t in rest.split())
        return [Command(doc, at(start), "options", tokens)]
    found = []
    for begin, after in zip(starts, [*starts[1:], None]):
        rest = segment[begin.end() : after.start() if after else None]
        tokens = tuple(_clean(t) for t in rest.split())
        where = at(begin.start())
        # The settings are the environment of the command they come before only.
        own = settings if begin.start() == start else ()
        kind = next((k for k in NAMED if begin.group(k)), None)
        if kind is not None:
            found.append(Command(doc, where, kind, tokens, own))
        elif begin.group("module"):
            found.append(Command(doc, where, "module", (begin.group("module"), *tokens), own))
        else:
            written = "benchmarks/" in begin.group("script")
            name = begin.group("name")
            # A bare ``x.py`` is one of ours only when benchmarks/ has it (the src modules,
            # ``settings.py``, are named so too); benchmarks/x.py must exist.
            if written or (SCRIPTS / f"{name}.py").is_file():
                found.append(Command(doc, where, name, tokens, own))
    return found


def options(tokens: tuple[str, ...], takes_value: set[str]) -> Iterator[tuple[str, list[str]]]:
    """``(flag, values)`` for each ``--flag`` (or short ``-x``) token; the values are the
    tokens up to the next flag (one at most for an option in ``takes_value``), a
    ``--flag=value`` its own."""
    for i, token in enumerate(tokens):
        if not re.match(r"--?[A-Za-z]", token):
            continue
        flag, equals, value = token.partition("=")
        if equals:
            yield flag, [value]
            continue
        values = []
        for following in tokens[i + 1 :]:
            if re.match(r"--?[A-Za-z]", following):
                break
            values.append(following)
        yield flag, values[:1] if flag in takes_value else values


# --- what the code has ---------------------------------------------------------------------


class _Parsed(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def _parser_options(build: Any, program: str) -> dict[str, argparse.Action]:
    """The options (``--flag`` -> action) of the parser ``build`` (a ``parse_args(argv)`` or
    a ``main``) makes: it is called with parsing replaced by a capture, so nothing runs."""

    def capture(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        raise _Parsed(self)

    argv = [[]] if inspect.signature(build).parameters else []
    with (
        mock.patch.object(argparse.ArgumentParser, "parse_known_args", capture),
        mock.patch.object(sys, "argv", [program]),
        mock.patch("logging.basicConfig"),  # inference_speed's main sets up logging first
    ):
        try:
            build(*argv)
        except _Parsed as parsed:
            return dict(parsed.parser._option_string_actions)
    raise AssertionError(f"{program} parsed no arguments")


@functools.cache
def script_options(name: str) -> dict[str, argparse.Action]:
    """A benchmark script's options, from its ``parse_args``, else its ``main``."""
    module = importlib.import_module(f"benchmarks.{name}")
    build = getattr(module, "parse_args", None) or module.main
    return _parser_options(build, f"{name}.py")


def scripts() -> list[str]:
    """The benchmark scripts with a command line (not the helpers ``cli.py``, ...)."""
    return sorted(
        p.stem for p in SCRIPTS.glob("*.py") if re.search(r"^def main\(", p.read_text(), re.M)
    )


@functools.cache
def demo_options() -> dict[str, argparse.Action]:
    from skin_lesion.demo import main

    return _parser_options(main, "python -m skin_lesion.demo")


@functools.cache
def predict_options() -> dict[str, argparse.Action]:
    from skin_lesion.command import _parser

    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(commands.choices["predict"]._option_string_actions)


def click_options(command: Any) -> tuple[dict[str, str], frozenset[str]]:
    """Each option of a click ``command`` (short ones too) -> its long name, and those that
    are flags (take no value)."""
    names, flags = {}, set()
    for param in command.params:
        if not isinstance(param, click.Option):
            continue
        spelled = [*param.opts, *param.secondary_opts]
        for opt in spelled:
            names[opt] = next(o for o in spelled if o.startswith("--"))
            if param.is_flag:
                flags.add(opt)
    return names, frozenset(flags)


@functools.cache
def kedro_run_options() -> tuple[dict[str, str], frozenset[str]]:
    from kedro.framework.cli.project import run

    return click_options(run)


@functools.cache
def viz_options(subcommand: str) -> tuple[dict[str, str], frozenset[str]]:
    """``kedro viz <subcommand>``'s options (kedro-viz's click commands; importing them costs
    about half a second, none of kedro-viz's server)."""
    viz = viz_group()
    return click_options(viz.get_command(click.Context(viz), subcommand))


@functools.cache
def viz_group() -> click.Group:
    import warnings

    with warnings.catch_warnings():  # kedro-viz's own use of click's deprecated BaseCommand
        warnings.simplefilter("ignore", DeprecationWarning)
        from kedro_viz.launchers.cli.main import viz
    return viz


def viz_subcommands() -> list[str]:
    return sorted(viz_group().list_commands(click.Context(viz_group())))


@functools.cache
def pipelines() -> dict[str, Any]:
    return {
        name: importlib.import_module(f"skin_lesion.pipelines.{name}.pipeline").create_pipeline()
        for name in pipeline_names()
    }


@functools.cache
def node_datasets() -> tuple[frozenset[str], frozenset[str]]:
    """The datasets some node reads, and those some node writes (parameters left out)."""
    nodes = [n for p in pipelines().values() for n in p.nodes]
    reads = {
        d for n in nodes for d in n.inputs if not d.startswith("params:") and d != "parameters"
    }
    return frozenset(reads), frozenset(d for n in nodes for d in n.outputs)


@functools.cache
def catalog_entries(env: str) -> frozenset[str]:
    """The dataset names of ``env``'s catalog (base merged with ``env``), as Kedro loads it."""
    from skin_lesion.settings import CONFIG_LOADER_ARGS, CONFIG_LOADER_CLASS

    loader = CONFIG_LOADER_CLASS(
        conf_source=str(CONF), **{**CONFIG_LOADER_ARGS, "default_run_env": env}
    )
    return frozenset(loader["catalog"])


def is_catalog_entry(name: str, env: str) -> bool:
    """``name`` is an entry of ``env``'s catalog, or matches one of its dataset factories
    (``{name}_plot``: any text for each ``{...}``)."""
    for entry in catalog_entries(env):
        pattern = re.sub(r"\\\{[^}]*\\\}", ".+", re.escape(entry))
        if re.fullmatch(pattern, name):
            return True
    return False


@functools.cache
def parameters(env: str) -> dict:
    """The parameters ``kedro run --env env`` resolves (base merged with ``env``)."""
    from benchmarks.accuracy import setting_parameters

    return setting_parameters(env, CONF)


@functools.cache
def runtime_names(env: str) -> frozenset[str]:
    """Names the config reads with ``${runtime_params:...}`` (``raw_dir``): keys too."""
    return frozenset(resolver_names(CONF, ["base", env]))


@functools.cache
def make_targets() -> frozenset[str]:
    text = (ROOT / "Makefile").read_text()
    return frozenset(re.findall(r"^([\w.-]+)\s*:(?!=)", text, re.MULTILINE))


@functools.cache
def gpu_make_targets() -> frozenset[str]:
    """The Makefile targets whose recipe runs benchmarks/gpu.sh (``make benchmark-gpu``)."""
    text = (ROOT / "Makefile").read_text()
    recipes = re.findall(r"^([\w.-]+)\s*:(?!=).*\n((?:\t.*\n?)*)", text, re.MULTILINE)
    return frozenset(target for target, recipe in recipes if "benchmarks/gpu.sh" in recipe)


@dataclass(frozen=True)
class GpuSettings:
    """What benchmarks/gpu.sh takes from the environment, read from the script itself."""

    names: frozenset[str]  # each read as ``${NAME:-default}``
    lists: frozenset[str]  # those walked word by word (``for name in $STEPS``)
    accepted: dict[str, frozenset[str]]  # the values a refusing ``case`` lets through


@functools.cache
def gpu_settings() -> GpuSettings:
    text = GPU_SCRIPT.read_text()
    walked = dict(re.findall(r"\bfor (\w+) in \$(\w+); do", text))  # loop variable -> setting
    accepted: dict[str, frozenset[str]] = {}
    for subject, body in re.findall(r'\bcase "\$(\w+)" in\n(.*?)\n\s*esac\b', text, re.DOTALL):
        # Only a check: a case whose ``*)`` exits (the dispatch and reuse()'s have none).
        if not re.search(r"^\s*\*\)(?:(?!;;).)*\bexit\b", body, re.DOTALL | re.MULTILINE):
            continue
        patterns = re.findall(r"^\s*([^()\n*]+)\)", body, re.MULTILINE)
        values = {v.strip().strip("\"'") for pattern in patterns for v in pattern.split("|")}
        accepted[walked.get(subject, subject)] = frozenset(values)
    names = frozenset(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):?-", text))  # not a local's default
    return GpuSettings(names, frozenset(walked.values()) & names, accepted)


# gpu.sh settings whose words become another command's arguments: each ablation of
# ABLATIONS is accuracy.py's ``--ablation NAME``; SPEED_ARGS are added to speed.py's.
GPU_ABLATIONS = ("accuracy", "--ablation")
GPU_ARGS = {"SPEED_ARGS": "speed"}


def module_path(module: str) -> Path | None:
    """The source ``python -m module`` runs (a package's ``__main__.py``), or None."""
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        return None
    if spec is None or spec.origin is None:
        return None
    if spec.submodule_search_locations is not None:  # a package: python -m runs __main__
        main = Path(spec.origin).with_name("__main__.py")
        return main if main.is_file() else None
    return Path(spec.origin)


@functools.cache
def module_argvs(module: str) -> tuple[tuple[str, ...], ...] | None:
    """The argument lists a module's ``__main__`` block compares ``sys.argv[1:]`` with
    (``python -m skin_lesion.provenance stamp``), or None where it has no ``__main__``
    block; ``()`` where it reads its arguments otherwise."""
    path = module_path(module)
    if path is None:
        return None
    tree = ast.parse(path.read_text())
    blocks = [
        n
        for n in tree.body
        if isinstance(n, ast.If)
        and ast.unparse(n.test) in ('__name__ == "__main__"', "__name__ == '__main__'")
    ]
    if not blocks and path.name != "__main__.py":
        return None
    argvs = []
    for node in (n for block in blocks for n in ast.walk(block)):
        if isinstance(node, ast.Compare) and ast.unparse(node.left) == "sys.argv[1:]":
            for listed in node.comparators:
                if isinstance(listed, ast.List | ast.Tuple):
                    argvs.append(tuple(ast.literal_eval(e) for e in listed.elts))
    return tuple(argvs)


def is_placeholder(value: str) -> bool:
    return bool(PLACEHOLDER.search(value)) or not value


def param_key_problem(key: str, env: str) -> str | None:
    """Why ``--params key=...`` names nothing in ``env``'s parameters, or None."""
    if key in runtime_names(env):
        return None
    node: Any = parameters(env)
    walked = []
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            where = ".".join(walked) or "the top level"
            return f"--params key {key!r}: no {part!r} under {where} in env {env!r}"
        node = node[part]
        walked.append(part)
    return None


def param_keys(values: list[str]) -> Iterator[str]:
    """The keys of ``key=value`` items, comma-separated as Kedro splits them."""
    for value in values:
        # A shell's quotes around the value are not part of the first key (nor the last value).
        for item in value.strip("\"'").split(","):
            key, equals, _ = item.strip().partition("=")
            # A placeholder (``...,seed=0``), or a comma inside a value (``x=[1, 2]``).
            if equals and not is_placeholder(key) and re.fullmatch(r"[\w.]+", key):
                yield key


def kedro_overrides(values: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The overrides ``kedro run --params`` makes of ``values`` (flat: ``a.b`` -> value), read
    as Kedro reads them: split at every comma, each value YAML to OmegaConf (``3`` an int,
    ``null`` None, ``.inf`` a float); and why an item cannot be read so. Placeholder items
    (``...``, ``raw_dir=DIR``) are left out."""
    from benchmarks.accuracy import flatten
    from kedro.framework.cli.utils import _split_params
    from omegaconf.errors import OmegaConfBaseException
    from yaml import YAMLError

    overrides, problems = {}, []
    # A shell's quotes around the value are not Kedro's to see.
    for item in (i.strip() for value in values for i in value.strip("\"'").split(",")):
        key, equals, setting = item.partition("=")
        if is_placeholder(item) or is_placeholder(key) or (equals and is_placeholder(setting)):
            continue
        if not equals:
            problems.append(
                f"--params item {item!r}: Kedro splits at every comma, and it has no '='"
            )
            continue
        try:
            overrides |= flatten(_split_params(None, None, item))
        except (YAMLError, OmegaConfBaseException) as error:
            problems.append(
                f"--params {item}: Kedro cannot read the value ({str(error).splitlines()[0]})"
            )
    return overrides, problems


def accuracy_overrides(values: list[str]) -> tuple[dict[str, Any], list[str]]:
    """:func:`kedro_overrides` for ``accuracy.py --params``, read by its own parser (values
    YAML, a comma splitting only before ``key=``)."""
    from benchmarks.accuracy import parse_overrides

    overrides, problems = {}, []
    for value in values:
        try:
            parsed = parse_overrides([value])
        except SystemExit as refused:
            if not is_placeholder(value):
                problems.append(str(refused).splitlines()[0])
            continue
        for key, setting in parsed.items():
            if not is_placeholder(key) and not (
                isinstance(setting, str) and is_placeholder(setting)
            ):
                overrides[key] = setting
    return overrides, problems


@functools.cache
def refusal(env: str, overrides: str) -> str | None:
    """Why the project refuses ``env``'s parameters with ``overrides`` (flat, as JSON), or None.

    Kedro's config loader merges them into the environment's parameters as a run's do, and the
    ``ParametersCheck`` hook's check (:func:`check_node_configs`: every node's config built
    from them, the run settings, the encoder's weights) runs on the result. Not the check of
    ``encoder.name`` against timm, run when a run starts: importing timm costs seconds.
    """
    from benchmarks.accuracy import nest
    from omegaconf.errors import OmegaConfBaseException

    from skin_lesion.parameters_check import check_node_configs
    from skin_lesion.settings import CONFIG_LOADER_ARGS, CONFIG_LOADER_CLASS

    loader = CONFIG_LOADER_CLASS(
        conf_source=str(CONF),
        **{**CONFIG_LOADER_ARGS, "default_run_env": env},
        runtime_params=nest(json.loads(overrides)),
    )
    try:
        check_node_configs(loader["parameters"])
    except (ValueError, OmegaConfBaseException) as error:  # ConfigError is a ValueError
        return str(error)
    return None


def param_value_problems(
    overrides: dict[str, Any], env: str, fixed: dict | None = None
) -> Iterator[str]:
    """Why a run of ``env`` with these ``--params`` overrides (flat) would be refused: each
    override refused alone is named, else all of them together. ``fixed``: overrides the
    command makes itself (an ``accuracy.py --ablation``'s). Keys named nothing
    (:func:`param_key_problem`) are left to that check."""
    overrides = {k: v for k, v in overrides.items() if param_key_problem(k, env) is None}
    if not overrides:
        return
    fixed = fixed or {}
    together = refusal(env, json.dumps({**fixed, **overrides}, sort_keys=True))
    if together is None:
        return
    named = False
    for key, value in overrides.items():
        alone = refusal(env, json.dumps({**fixed, key: value}, sort_keys=True))
        if alone is not None:
            named = True
            yield f"--params {key}={value!r} refused in env {env!r}: {alone}"
    if not named:
        given = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
        yield f"--params {given} refused together in env {env!r}: {together}"


# --- the checks ----------------------------------------------------------------------------


def check_kedro(command: Command, program: str = "kedro run") -> Iterator[str]:
    yield from _click_command_problems(command, command.tokens, *kedro_run_options(), program)


def _click_command_problems(
    command: Command,
    tokens: tuple[str, ...],
    known: dict[str, str],
    flags: frozenset[str],
    program: str,
) -> Iterator[str]:
    """The options of a Kedro-style click command (``kedro run``, ``kedro viz run``) in
    ``tokens``: each known, each value naming what exists, ``--params`` read as Kedro reads
    them and checked as the project checks parameters (in the ``--env`` given, else
    ``KEDRO_ENV``'s, else ``local``, as Kedro's session reads it)."""
    found = list(options(tokens, set(known) - flags))
    env = command.setting("KEDRO_ENV") or "local"
    for flag, values in found:
        if known.get(flag) == "--env" and values and not is_placeholder(values[0]):
            env = values[0]
    for flag, values in found:
        if flag not in known:
            yield f"{program} has no option {flag}"
            continue
        for value in values:
            yield from _value_problems(flag, known[flag], value, env)
    params = [v for flag, values in found if known.get(flag) == "--params" for v in values]
    if params and (CONF / env).is_dir():  # a bad --env: named above
        overrides, unread = kedro_overrides(params)
        yield from unread
        yield from param_value_problems(overrides, env)


def _value_problems(flag: str, option: str, value: str, env: str) -> Iterator[str]:
    """What names nothing in the value of a ``kedro run`` (or ``kedro viz run``) option."""
    # Kedro splits these at commas; a placeholder item (``...``, ``<name>``) is skipped.
    names = [n.strip() for n in value.split(",") if not is_placeholder(n.strip())]
    reads, writes = node_datasets()
    if option == "--env" and not is_placeholder(value) and not (CONF / value).is_dir():
        yield f"--env {value}: no folder conf/{value}"
    elif option in ("--pipeline", "--pipelines"):
        for name in names:
            if name not in pipelines() and name != "__default__":
                yield f"{flag} {name}: no such pipeline"
    elif option in ("--nodes", "--from-nodes", "--to-nodes"):
        nodes = {n.name for p in pipelines().values() for n in p.nodes}
        yield from (f"{flag} {n}: no such node" for n in names if n not in nodes)
    elif option == "--tags":
        tags = {t for p in pipelines().values() for n in p.nodes for t in n.tags}
        yield from (f"{flag} {t}: no node has this tag" for t in names if t not in tags)
    elif option == "--to-outputs":
        yield from (f"{flag} {n}: no node makes this dataset" for n in names if n not in writes)
    elif option == "--from-inputs":
        yield from (f"{flag} {n}: no node reads this dataset" for n in names if n not in reads)
    elif option == "--load-versions" and (CONF / env).is_dir():
        for name in (n.partition(":")[0] for n in names):
            if not is_placeholder(name) and not is_catalog_entry(name, env):
                yield f"{flag} {name}: no such dataset in the catalog of env {env!r}"
    elif option == "--params" and (CONF / env).is_dir():
        yield from filter(None, (param_key_problem(k, env) for k in param_keys([value])))


def check_viz(command: Command) -> Iterator[str]:
    """``kedro viz [run|build|deploy] ...``: its options; ``--pipeline``, ``--env`` and
    ``--params`` (keys and values) as ``kedro run``'s."""
    subcommand, tokens = "run", command.tokens  # kedro viz's default subcommand
    if tokens and not tokens[0].startswith("-"):
        subcommand, tokens = tokens[0], tokens[1:]
    if subcommand not in viz_subcommands():
        yield f"kedro viz has no subcommand {subcommand} (it has {viz_subcommands()})"
        return
    known, flags = viz_options(subcommand)
    yield from _click_command_problems(command, tokens, known, flags, f"kedro viz {subcommand}")


def check_notebook(command: Command) -> Iterator[str]:
    """``kedro jupyter lab|notebook`` and ``kedro ipython``: ``--env``/``-e``. Their other
    options are handed on to Jupyter or IPython, so not checked here."""
    for flag, values in options(command.tokens, {"--env", "-e"}):
        env = values[0] if flag in ("--env", "-e") and values else ""
        if not is_placeholder(env) and not (CONF / env).is_dir():
            yield f"{flag} {env}: no folder conf/{env}"


def check_gpu(command: Command, only_known: bool = False) -> Iterator[str]:
    """``VAR=value ... bash benchmarks/gpu.sh``: each VAR one the script reads, each value one
    its checks accept (a STEPS step, a REUSE_PRETRAINING of 0 or 1, ...), an ablation one of
    accuracy.py's and SPEED_ARGS options of speed.py. ``only_known``: settings named alone
    in prose, where a VAR gpu.sh does not read may be meant for another command."""
    known = gpu_settings()
    for name, _, value in (s.partition("=") for s in command.settings):
        if name not in known.names:
            if not only_known and name != "KEDRO_ENV":  # KEDRO_ENV: checked for every command
                yield f"benchmarks/gpu.sh reads no setting {name} (it reads {sorted(known.names)})"
            continue
        if is_placeholder(value):
            continue
        words = value.split() if name in known.lists else [value]
        if name in known.accepted:
            for word in words:
                if not is_placeholder(word) and word not in known.accepted[name]:
                    yield f"{name}={value}: {word!r} is not one of {sorted(known.accepted[name])}"
        if name == "ABLATIONS":
            script, flag = GPU_ABLATIONS
            yield from _choice_problems(flag, script_options(script)[flag], words)
        if name in GPU_ARGS:
            tokens = _assignments(value)  # gpu.sh splits them at spaces
            yield from check_script(Command(command.doc, command.line, GPU_ARGS[name], tokens))


def check_settings(command: Command) -> Iterator[str]:
    """Settings named alone in prose (``STEPS="speed gpu-full"``): the values of gpu.sh's."""
    return check_gpu(command, only_known=True)


def check_settings_env(command: Command) -> Iterator[str]:
    """``KEDRO_ENV=NAME`` before any command (or alone): a folder of ``conf/``."""
    env = command.setting("KEDRO_ENV")
    if env is not None and not (CONF / env).is_dir():
        yield f"KEDRO_ENV={env}: no folder conf/{env}"


def check_module(command: Command) -> Iterator[str]:
    """``python -m skin_lesion[.<module>] ...``: the module runs, and takes these arguments
    (``skin_lesion``: ``kedro run``'s options; ``skin_lesion.command``: the ``skin-lesion``
    command's; others the argument lists their ``__main__`` block compares ``sys.argv`` with)."""
    module, tokens = command.tokens[0], command.tokens[1:]
    argvs = module_argvs(module)
    if argvs is None:
        yield f"python -m {module}: no such module, or it has no __main__ block"
    elif module == "skin_lesion":  # its __main__ runs Kedro's run command
        run = Command(command.doc, command.line, "kedro", tokens, command.settings)
        yield from check_kedro(run, program=f"python -m {module}")
    elif module == "skin_lesion.command":  # the ``skin-lesion`` script
        if tokens[:1] == ("predict",):
            yield from check_predict(Command(command.doc, command.line, "predict", tokens[1:]))
        elif tokens and not is_placeholder(tokens[0]):
            yield f"python -m {module} has no subcommand {tokens[0]}"
    elif argvs:
        given = tuple(t for t in tokens if not is_placeholder(t))
        if given and given not in argvs:
            allowed = " or ".join(" ".join(a) or "(nothing)" for a in argvs)
            yield f"python -m {module} {' '.join(given)}: it takes {allowed}"


def check_predict(command: Command) -> Iterator[str]:
    known = predict_options()
    for flag, values in options(command.tokens, set(known)):
        if flag not in known:
            yield f"skin-lesion predict has no option {flag}"
        elif flag == "--env" and values and not is_placeholder(values[0]):
            if not (CONF / values[0]).is_dir():
                yield f"--env {values[0]}: no folder conf/{values[0]}"
        else:
            yield from _choice_problems(flag, known[flag], values)


def _choice_problems(flag: str, action: argparse.Action, values: list[str]) -> Iterator[str]:
    if action.choices is None:
        return
    # ``--tta none|flips|dihedral``: a usage line's alternatives, each a value.
    for choice in (c for value in values for c in value.split("|")):
        if not is_placeholder(choice) and choice not in action.choices:
            yield f"{flag} {choice}: not one of {sorted(action.choices)}"


def check_script(command: Command) -> Iterator[str]:
    name = command.program
    if not (SCRIPTS / f"{name}.py").is_file():
        yield f"no script benchmarks/{name}.py"
        return
    if name not in scripts():  # a helper module (cli.py, overwrite.py): no command line
        if any(True for _ in options(command.tokens, set())):
            yield f"benchmarks/{name}.py has no command line"
        return
    known = script_options(name)
    takes_one = {f for f, a in known.items() if a.nargs is None and a.const is None}
    found = list(options(command.tokens, takes_one))
    for flag, values in found:
        if flag not in known:
            yield f"benchmarks/{name}.py has no option {flag}"
        else:
            yield from _choice_problems(flag, known[flag], values)
    if name != "accuracy":
        return
    # accuracy.py --params: the keys of the setting's environment (its SETTINGS mapping);
    # without a --setting (a run refused so) they are not checked.
    from benchmarks.accuracy import ABLATIONS, SETTINGS

    settings = [v[0] for f, v in found if f == "--setting" and v]
    env = SETTINGS.get(settings[0]) if settings else None
    params = [v for flag, values in found if flag == "--params" for v in values]
    if params and env is not None:
        yield from filter(None, (param_key_problem(k, env) for k in param_keys(params)))
        # The values as the script reads them, with what its --ablation sets.
        ablations = [v[0] for f, v in found if f == "--ablation" and v]
        overrides, unread = accuracy_overrides(params)
        yield from unread
        ablation = ABLATIONS.get(ablations[0], {}) if ablations else {}
        yield from param_value_problems(overrides, env, ablation)


def check_make(command: Command) -> Iterator[str]:
    target = command.tokens[0]
    if target not in make_targets():
        yield f"make {target}: no such Makefile target"


def check_demo(command: Command) -> Iterator[str]:
    known = demo_options()
    for flag, _ in options(command.tokens, set(known)):
        if flag not in known:
            yield f"python -m skin_lesion.demo has no option {flag}"


# Options of no documented command that prose names: pip's, for installing the offline wheels
# (benchmarks/README.md).
OTHER_OPTIONS = {"--no-deps"}
# ``--params seeed=7`` is the docs' example of a misspelt name the run refuses (README.md,
# docs/running.md): a key that must not exist.
REFUSED_EXAMPLES = {"seeed"}
# Likewise values the docs give as ones the run refuses (docs/running.md: an infinite
# temperature); test_the_refused_examples_are_refused holds the docs to it.
REFUSED_VALUES = {"contrastive_pretraining.temperature=.inf"}


def check_options(command: Command) -> Iterator[str]:
    """Options named alone in prose: each must be one of some command the docs run (which one
    the prose says, not the span), and a ``--params`` key and value valid in the default
    parameters."""
    known = set(kedro_run_options()[0]) | set(predict_options()) | set(demo_options())
    known |= {flag for name in scripts() for flag in script_options(name)} | OTHER_OPTIONS
    known |= {flag for name in viz_subcommands() for flag in viz_options(name)[0]}
    for flag, values in options(command.tokens, set()):
        if flag.startswith("--") and flag not in known:
            yield f"no documented command has option {flag}"
        elif flag == "--params":
            keys = (k for k in param_keys(values) if k not in REFUSED_EXAMPLES)
            yield from filter(None, (param_key_problem(k, "local") for k in keys))
            items = [i for v in values for i in v.split(",") if i.strip() not in REFUSED_VALUES]
            overrides, unread = kedro_overrides([",".join(items)])
            yield from unread
            yield from param_value_problems(overrides, "local")


CHECKS = {
    "kedro": check_kedro,
    "viz": check_viz,
    "notebook": check_notebook,
    "predict": check_predict,
    "demo": check_demo,
    "module": check_module,
    "make": check_make,
    "gpu": check_gpu,
    "settings": check_settings,
    "options": check_options,
}


def problems(doc: str, text: str) -> list[str]:
    """``file:line: problem`` for each name a command in ``text`` uses that does not exist."""
    found = []
    for command in commands(doc, text):
        check = CHECKS.get(command.program, check_script)
        found += [f"{command.where()}: {problem}" for problem in check(command)]
        found += [f"{command.where()}: {problem}" for problem in check_settings_env(command)]
    return found


# --- the tests -----------------------------------------------------------------------------


@pytest.mark.parametrize("doc", DOCS)
def test_every_documented_command_names_what_exists(doc: str) -> None:
    assert problems(doc, (ROOT / doc).read_text()) == []


def test_the_docs_have_commands_of_every_kind() -> None:
    # The reader above finds something to check: if a change to it found nothing, every doc
    # would pass.
    found = [c for doc in DOCS for c in commands(doc, (ROOT / doc).read_text())]
    kinds = {c.program if c.program in CHECKS else "script" for c in found}
    assert kinds == {*CHECKS, "script"}
    assert any(c.setting("KEDRO_ENV") for c in found)
    assert any(c.setting("STEPS") for c in found if c.program == "gpu")
    assert {c.tokens[0] for c in found if c.program == "module"} >= {"skin_lesion.provenance"}
    params = [c for c in found if c.program == "kedro" and "--params" in c.tokens]
    assert len(found) > 100 and len(params) > 10


def _broken(code: str) -> list[str]:
    return problems("doc.md", f"Intro.\n\n```bash\n{code}\n```\n")


def test_a_bogus_script_flag_is_found() -> None:
    assert _broken("python benchmarks/accuracy.py --setting cpu-quick --seeds 0 1") == []
    assert _broken("python benchmarks/accuracy.py --setting cpu-quick --seed 0") == [
        "doc.md:4: benchmarks/accuracy.py has no option --seed"
    ]
    assert _broken(".venv/bin/python benchmarks/speed.py --data DIR --bogus") == [
        "doc.md:4: benchmarks/speed.py has no option --bogus"
    ]
    assert _broken("python benchmarks/accuracy.py --ablation no-supcon") == [
        "doc.md:4: --ablation no-supcon: not one of "
        "['contrastive', 'cross-entropy', 'metadata-fusion', 'no-contrastive', "
        "'no-metadata-fusion', 'weighted-sampling']"
    ]
    assert _broken("python benchmarks/nowhere.py --x 1") == [
        "doc.md:4: no script benchmarks/nowhere.py"
    ]


def test_a_bogus_kedro_run_name_is_found() -> None:
    good = (
        "kedro run --env cpu_quick --pipelines data_processing,reporting \\\n"
        "  --params raw_dir=/data,classifier_training.finetune.epochs=3,seed=1"
    )
    assert _broken(good) == []
    assert _broken("kedro run --pipelines data_processing,reprting") == [
        "doc.md:4: --pipelines reprting: no such pipeline"
    ]
    assert _broken("kedro run --env cpu-quick") == [
        "doc.md:4: --env cpu-quick: no folder conf/cpu-quick"
    ]
    assert _broken("kedro run --env demo \\\n  --params classifier_training.finetune.epoch=3") == [
        "doc.md:4: --params key 'classifier_training.finetune.epoch': no 'epoch' under "
        "classifier_training.finetune in env 'demo'"
    ]
    assert _broken("kedro run --from-nodes build_reprt --tags cpu --pipeline reporting") == [
        "doc.md:4: --from-nodes build_reprt: no such node",
        "doc.md:4: --tags cpu: no node has this tag",
    ]
    assert _broken("kedro run --pipelines reporting --resume") == [
        "doc.md:4: kedro run has no option --resume"
    ]


def test_bogus_predict_make_and_accuracy_params_are_found() -> None:
    text = (
        "Run `make demo`, then `skin-lesion predict a.jpg --csv out.csv --tta flip`.\n"
        "Or `make tests`; `SEEDS=0 make benchmark-gpu` and\n"
        "`python benchmarks/accuracy.py --setting gpu-full --params a.b=1\n"
        "classifier_training.loss.name=focal`.\n"
    )
    assert problems("doc.md", text) == [
        "doc.md:1: --tta flip: not one of ['dihedral', 'flips', 'none']",
        "doc.md:2: make tests: no such Makefile target",
        "doc.md:3: --params key 'a.b': no 'a' under the top level in env 'gpu_full'",
    ]
    # A usage block: options indented under the command, alternatives split by ``|``.
    usage = "skin-lesion predict IMAGE... [--env ENV]\n    [--tta none|flip] [--gradcam]\n# x"
    assert _broken(usage) == [
        "doc.md:4: --tta flip: not one of ['dihedral', 'flips', 'none']",
        "doc.md:4: skin-lesion predict has no option --gradcam",
    ]


def test_bogus_options_named_alone_are_found() -> None:
    text = (
        "Pass `--compare-runs A B` or `--pretraining-from RUN`, or `[--only-missing-outputs]`\n"
        "and `--params data_processing.split.seed=7`; `python -m skin_lesion.demo OUT --replace`.\n"
        "Not `--compare-run A B`, `--params data_processing.split.sed=7` or\n"
        "`python -m skin_lesion.demo OUT --images 9 --force`; `--params seeed=7` is refused.\n"
    )
    assert problems("doc.md", text) == [
        "doc.md:3: no documented command has option --compare-run",
        "doc.md:3: --params key 'data_processing.split.sed': no 'sed' under "
        "data_processing.split in env 'local'",
        "doc.md:4: python -m skin_lesion.demo has no option --force",
    ]


def test_placeholders_and_prose_are_not_commands() -> None:
    text = (
        "`kedro run --env ENV --pipelines ... --params <key>=<value>,seed=...`, the command\n"
        "that makes it; `settings.py --anything`; run `kedro run` (`--params` alone).\n"
        "```\n# kedro run --pipelines gone   (a comment)\n```\n"
    )
    assert problems("doc.md", text) == []


def test_a_refused_params_value_is_found() -> None:
    # Kedro reads each value as YAML; the project's checks refuse it as a run would.
    good = "kedro run --env cpu_quick --params classifier_training.loss.name=cross_entropy,seed=7"
    assert _broken(good) == []
    assert _broken("kedro run --params seed=<k>,raw_dir=DIR,data_processing.split.seed=k") == []
    assert _broken("kedro run --env demo --params classifier_training.loss.name=cross-entropy") == [
        "doc.md:4: --params classifier_training.loss.name='cross-entropy' refused in env 'demo': "
        "classifier_training.loss.name: 'cross-entropy' is not one of "
        "['focal', 'cross_entropy', 'weighted_cross_entropy']"
    ]
    assert _broken("kedro run --params seed=1.5,classifier_training.finetune.epochs=3") == [
        "doc.md:4: --params seed=1.5 refused in env 'local': seed: expected an integer from 0 to "
        "2**32 - 1 (NumPy's seed range), got 1.5"
    ]
    # Each is fine alone; together the warm-up outlasts its phase.
    together = _broken(
        "kedro run --params classifier_training.warmup.epochs=1,"
        "classifier_training.warmup.optim.warmup_epochs=2"
    )
    assert together == [
        "doc.md:4: --params classifier_training.warmup.epochs=1, "
        "classifier_training.warmup.optim.warmup_epochs=2 refused together in env 'local': "
        "classifier_training.warmup: optim.warmup_epochs (2) is longer than epochs (1): the "
        "learning rate would still be rising when training ends and never decay; shorten the "
        "warm-up or train for more epochs"
    ]
    # Kedro splits at every comma, a list's too.
    assert _broken("kedro run --params 'classifier_training.loss.alpha=[1,2]'") == [
        "doc.md:4: --params classifier_training.loss.alpha=[1: Kedro cannot read the value "
        "(while parsing a flow sequence)",
        "doc.md:4: --params item '2]': Kedro splits at every comma, and it has no '='",
    ]
    # accuracy.py reads its own way (a comma inside a list is kept) and adds the ablation's.
    assert _broken(
        "python benchmarks/accuracy.py --setting cpu-quick --params seed=-1 "
        "classifier_training.loss.alpha=[1,1,1,1,1,1,1]"
    ) == [
        "doc.md:4: --params seed=-1 refused in env 'cpu_quick': seed: expected an integer "
        "from 0 to 2**32 - 1 (NumPy's seed range), got -1"
    ]
    assert _broken(
        "python benchmarks/accuracy.py --setting cpu-quick --ablation cross-entropy "
        "--params classifier_training.loss.label_smoothing=1"
    ) == [
        "doc.md:4: --params classifier_training.loss.label_smoothing=1 refused in env "
        "'cpu_quick': classifier_training.loss: label_smoothing must lie in [0, 1), got 1.0"
    ]
    # Named alone in prose (the default environment), and kedro viz run's --params.
    text = (
        "`--params classifier_training.finetune.epochs=-1`; `kedro viz run --params seed=seven`.\n"
    )
    assert problems("doc.md", text) == [
        "doc.md:1: --params classifier_training.finetune.epochs=-1 refused in env 'local': "
        "classifier_training.finetune: epochs must be >= 0, got -1",
        "doc.md:1: --params seed='seven' refused in env 'local': seed: expected an integer from 0 "
        "to 2**32 - 1 (NumPy's seed range), got 'seven'",
    ]


def test_the_refused_examples_are_refused() -> None:
    # The docs give these as mistakes the run refuses: skipped above, so held to it here.
    for key in REFUSED_EXAMPLES:
        assert param_key_problem(key, "local") is not None
    for item in REFUSED_VALUES:
        overrides, unread = kedro_overrides([item])
        assert unread == [] and refusal("local", json.dumps(overrides)) is not None, item


def test_bogus_gpu_settings_are_found() -> None:
    assert _broken('SEEDS="0 1" STEPS=gpu-full RESUME=1 bash benchmarks/gpu.sh') == []
    assert _broken('SEED=2 STEPS="tests sped" RESUME=2 bash benchmarks/gpu.sh') == [
        "doc.md:4: benchmarks/gpu.sh reads no setting SEED (it reads ['ABLATIONS', 'DATA', "
        "'LOG_DIR', 'PARALLEL', 'PYTHON', 'RESUME', 'REUSE_PRETRAINING', 'SEEDS', 'SPEED_ARGS', "
        "'STEPS', 'STEP_TIMEOUT', 'WORK_DIR'])",
        "doc.md:4: STEPS=tests sped: 'sped' is not one of ['ablations', 'compare', 'gpu-full', "
        "'inference', 'speed', 'tests']",
        "doc.md:4: RESUME=2: '2' is not one of ['', '0', '1']",
    ]
    assert _broken(
        'ABLATIONS=no-supcon SPEED_ARGS="--workers 8 --step 60" sh benchmarks/gpu.sh'
    ) == [
        "doc.md:4: --ablation no-supcon: not one of ['contrastive', 'cross-entropy', "
        "'metadata-fusion', 'no-contrastive', 'no-metadata-fusion', 'weighted-sampling']",
        "doc.md:4: benchmarks/speed.py has no option --step",
    ]
    # Through make, which hands them on; and named alone in prose, where only gpu.sh's own
    # settings are checked (OMP_NUM_THREADS is another program's).
    text = (
        "Run `SEEDS=0 STEPS=speed make benchmark-gpu`, or `STEPS=infer make benchmark-gpu`;\n"
        '`STEPS="gpu-full ablation"` for a subset, `OMP_NUM_THREADS=1`, `PARALLEL=2`.\n'
    )
    assert problems("doc.md", text) == [
        "doc.md:1: STEPS=infer: 'infer' is not one of ['ablations', 'compare', 'gpu-full', "
        "'inference', 'speed', 'tests']",
        "doc.md:2: STEPS=gpu-full ablation: 'ablation' is not one of ['ablations', 'compare', "
        "'gpu-full', 'inference', 'speed', 'tests']",
        "doc.md:2: PARALLEL=2: '2' is not one of ['0', '1']",
    ]


def test_gpu_settings_are_read_from_the_script() -> None:
    # What the checker reads from gpu.sh agrees with the script: its default STEPS are steps
    # it accepts, and every setting it refuses a value of is one it reads.
    known = gpu_settings()
    default = re.search(r"^STEPS=\$\{STEPS:-([^}]*)\}", GPU_SCRIPT.read_text(), re.M)
    assert default and set(default.group(1).split()) == known.accepted["STEPS"]
    assert set(known.accepted) == {"STEPS", "RESUME", "REUSE_PRETRAINING", "PARALLEL"}
    assert set(known.accepted) <= known.names and "SEEDS" in known.lists


def test_bogus_dataset_names_are_found() -> None:
    good = (
        "kedro run --from-inputs splits,image_cache --to-outputs test_metrics "
        "--load-versions classifier:2026-01-01T00.00.00.000Z"
    )
    assert _broken(good) == []
    bad = (
        "kedro run --from-inputs splits,splts --to-outputs test_metric "
        "--load-versions classifer:2026-01-01T00.00.00.000Z,<name>:<version>"
    )
    assert _broken(bad) == [
        "doc.md:4: --from-inputs splts: no node reads this dataset",
        "doc.md:4: --to-outputs test_metric: no node makes this dataset",
        "doc.md:4: --load-versions classifer: no such dataset in the catalog of env 'local'",
    ]


def test_bogus_viz_and_notebook_names_are_found() -> None:
    good = (
        "kedro viz run --pipeline reporting --env demo\n"
        "KEDRO_ENV=demo kedro viz build --include-previews\n"
        "kedro jupyter lab --env cpu_quick --port 8890\nkedro viz"
    )
    assert _broken(good) == []
    bad = (
        "kedro viz run --pipeline reportng\nkedro viz --env dmo --autoreload\n"
        "kedro viz build --include-preview\nkedro viz serve\n"
        "kedro jupyter lab --env cpu-quick\nkedro ipython -e nope\n"
        "KEDRO_ENV=cpu-quick kedro jupyter notebook\nKEDRO_ENV=dem"
    )
    assert _broken(bad) == [
        "doc.md:4: --pipeline reportng: no such pipeline",
        "doc.md:5: --env dmo: no folder conf/dmo",
        "doc.md:6: kedro viz build has no option --include-preview",
        "doc.md:7: kedro viz has no subcommand serve (it has ['build', 'deploy', 'run'])",
        "doc.md:8: --env cpu-quick: no folder conf/cpu-quick",
        "doc.md:9: -e nope: no folder conf/nope",
        "doc.md:10: KEDRO_ENV=cpu-quick: no folder conf/cpu-quick",
        "doc.md:11: KEDRO_ENV=dem: no folder conf/dem",
    ]
    # KEDRO_ENV is kedro run's environment where --env is not given: the keys are its.
    assert _broken("KEDRO_ENV=demo kedro run --params reporting.gradcam_sampels=4") == [
        "doc.md:4: --params key 'reporting.gradcam_sampels': no 'gradcam_sampels' under "
        "reporting in env 'demo'"
    ]


def test_bogus_module_commands_are_found() -> None:
    good = (
        "python -m skin_lesion.provenance stamp\n"
        "python -m skin_lesion --conf-source=conf-skin_lesion.tar.gz --env demo\n"
        "python3 -m skin_lesion.command predict a.jpg --tta flips"
    )
    assert _broken(good) == []
    bad = (
        "python -m skin_lesion.provenance stmp\n.venv/bin/python -m skin_lesion.provenence stamp\n"
        "python -m skin_lesion.config\npython -m skin_lesion --env cpu-quick --pipelines xyz\n"
        "python -m skin_lesion.command predct a.jpg"
    )
    assert _broken(bad) == [
        "doc.md:4: python -m skin_lesion.provenance stmp: it takes stamp",
        "doc.md:5: python -m skin_lesion.provenence: no such module, or it has no __main__ block",
        "doc.md:6: python -m skin_lesion.config: no such module, or it has no __main__ block",
        "doc.md:7: --env cpu-quick: no folder conf/cpu-quick",
        "doc.md:7: --pipelines xyz: no such pipeline",
        "doc.md:8: python -m skin_lesion.command has no subcommand predct",
    ]


def test_quoted_params_and_paths_to_a_script_are_checked() -> None:
    # A shell's quotes around --params hid the key from the check; a path before benchmarks/
    # hid the script.
    assert _broken('kedro run --params "seeed=1"') == [
        "doc.md:4: --params key 'seeed': no 'seeed' under the top level in env 'local'"
    ]
    assert _broken("kedro run --env demo --params 'classifier_training.finetune.epoch=3'") == [
        "doc.md:4: --params key 'classifier_training.finetune.epoch': no 'epoch' under "
        "classifier_training.finetune in env 'demo'"
    ]
    for path in ("./benchmarks", "/srv/skin-lesion/benchmarks"):
        assert _broken(f"python {path}/speed.py --bogus") == [
            "doc.md:4: benchmarks/speed.py has no option --bogus"
        ]
    assert problems("doc.md", "See `src/skin_lesion/speed.py --x`.\n") == []  # not ours


def test_a_helper_module_of_the_benchmarks_is_not_a_command() -> None:
    # It has no parser to read: naming it crashed the check (no attribute 'main').
    assert problems("doc.md", "The helpers in `benchmarks/cli.py` and `overwrite.py`.\n") == []
    assert _broken("python benchmarks/cli.py --x") == [
        "doc.md:4: benchmarks/cli.py has no command line"
    ]
