"""The commands the documentation tells users to run name things that still exist.

Every ``kedro run``, ``skin-lesion predict``, ``python benchmarks/<script>.py``,
``python -m skin_lesion.demo`` and ``make`` command in the READMEs and ``docs/`` (fenced blocks
and inline code) is read, and each name in it is looked up where the code keeps it: a script's
``--flag`` in its own argparse parser (and a value of an option with choices among them), a
``kedro run`` option in Kedro's click command, ``--pipelines`` in ``skin_lesion/pipelines``,
``--env`` in ``conf/``, each ``--params`` key (dotted keys to the leaf) in the parameters of
that environment (``accuracy.py``'s: of its ``--setting``'s), node names and tags in the
pipelines, a ``make`` target in the Makefile. Options that prose names alone
(``--compare-runs A B``) must be options of one of those commands. A flag renamed in the code
without updating the docs, or a typo in the docs, fails here with its file, line and token.
Nothing is run: the parsers are read, not the benchmarks.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

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
    r"|(?P<predict>(?<![\w-])skin-lesion\s+predict\b)"
    r"|(?P<demo>\bpython3?\s+-m\s+skin_lesion\.demo\b)"
    r"|(?P<script>(?<![\w/.-])(?:benchmarks/)?(?P<name>\w+)\.py\b)"
)
# ``make TARGET`` only as the whole segment's command (after ``VAR=value`` settings): the word
# "make" is also English, and error messages quoted in code spans use it.
MAKE = re.compile(r"^\s*[\[(]?(?:\w+=\S*\s+)*make\s+(?P<target>[\w.-]+)")
# A value written as a placeholder for the reader's own: <name>, DIR, RUN_A, K, ..., $VAR.
PLACEHOLDER = re.compile(r"<|>|\.\.\.|…|\$|^[A-Z][A-Z0-9_]*$")
SCRIPTS = ROOT / "benchmarks"


@dataclass(frozen=True)
class Command:
    """One command in a doc: its program, its tokens after the program, and where it is."""

    doc: str
    line: int
    program: str  # a key of CHECKS, or a benchmark script's name
    tokens: tuple[str, ...]

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
    """A token without the brackets and punctuation of the prose around it (``[--env x]``)."""
    return token.lstrip("[(").rstrip("]),:")


def commands(doc: str, text: str) -> list[Command]:
    """Every command of the kinds this module checks in ``text`` (the file ``doc``)."""
    found = []
    for line, code in code_snippets(text):
        offset = 0
        for segment in SEPARATOR.split(code):
            here = line + code.count("\n", 0, code.find(segment, offset))
            offset = code.find(segment, offset) + len(segment)
            make = MAKE.match(segment)
            if make:
                at = here + segment.count("\n", 0, make.start("target"))
                found.append(Command(doc, at, "make", (make.group("target"),)))
                continue
            starts = list(PROGRAM.finditer(segment))
            if not starts and re.match(r"\s*\[?--\w", segment):
                # Options alone, as prose names them (``--compare-runs A B``).
                tokens = tuple(_clean(t) for t in segment.split())
                found.append(Command(doc, here, "options", tokens))
            for start, after in zip(starts, [*starts[1:], None]):
                rest = segment[start.end() : after.start() if after else None]
                tokens = tuple(_clean(t) for t in rest.split())
                at = here + segment.count("\n", 0, start.start())
                if start.group("kedro"):
                    found.append(Command(doc, at, "kedro", tokens))
                elif start.group("predict"):
                    found.append(Command(doc, at, "predict", tokens))
                elif start.group("demo"):
                    found.append(Command(doc, at, "demo", tokens))
                else:
                    written = start.group("script").startswith("benchmarks/")
                    name = start.group("name")
                    # A bare ``x.py`` is one of ours only when benchmarks/ has it (the src
                    # modules, ``settings.py``, are named so too); benchmarks/x.py must exist.
                    if written or (SCRIPTS / f"{name}.py").is_file():
                        found.append(Command(doc, at, name, tokens))
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


@functools.cache
def kedro_run_options() -> tuple[dict[str, str], frozenset[str]]:
    """Each option of ``kedro run`` (short ones too) -> its long name, and those that are
    flags (take no value)."""
    from kedro.framework.cli.project import run

    names, flags = {}, set()
    for param in run.params:
        spelled = [*param.opts, *param.secondary_opts]
        for opt in spelled:
            names[opt] = next(o for o in spelled if o.startswith("--"))
            if getattr(param, "is_flag", False):
                flags.add(opt)
    return names, frozenset(flags)


@functools.cache
def pipelines() -> dict[str, Any]:
    return {
        name: importlib.import_module(f"skin_lesion.pipelines.{name}.pipeline").create_pipeline()
        for name in pipeline_names()
    }


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
        for item in value.split(","):
            key, equals, _ = item.partition("=")
            # A placeholder (``...,seed=0``), or a comma inside a value (``x=[1, 2]``).
            if equals and not is_placeholder(key) and re.fullmatch(r"[\w.]+", key):
                yield key


# --- the checks ----------------------------------------------------------------------------


def check_kedro(command: Command) -> Iterator[str]:
    known, flags = kedro_run_options()
    found = list(options(command.tokens, set(known) - flags))
    env = "local"
    for flag, values in found:
        if known.get(flag) == "--env" and values and not is_placeholder(values[0]):
            env = values[0]
    for flag, values in found:
        if flag not in known:
            yield f"kedro run has no option {flag}"
            continue
        option = known[flag]
        for value in values:
            # Kedro splits these at commas; a placeholder item (``...``, ``<name>``) is skipped.
            names = [n.strip() for n in value.split(",") if not is_placeholder(n.strip())]
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
            elif option == "--params" and (CONF / env).is_dir():  # a bad --env: named above
                yield from filter(None, (param_key_problem(k, env) for k in param_keys([value])))


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
    from benchmarks.accuracy import SETTINGS

    settings = [v[0] for f, v in found if f == "--setting" and v]
    env = SETTINGS.get(settings[0]) if settings else None
    for flag, values in found:
        if flag == "--params" and env is not None:
            yield from filter(None, (param_key_problem(k, env) for k in param_keys(values)))


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


def check_options(command: Command) -> Iterator[str]:
    """Options named alone in prose: each must be one of some command the docs run (which one
    the prose says, not the span), and a ``--params`` key one of the default parameters."""
    known = set(kedro_run_options()[0]) | set(predict_options()) | set(demo_options())
    known |= {flag for name in scripts() for flag in script_options(name)} | OTHER_OPTIONS
    for flag, values in options(command.tokens, set()):
        if flag.startswith("--") and flag not in known:
            yield f"no documented command has option {flag}"
        elif flag == "--params":
            keys = (k for k in param_keys(values) if k not in REFUSED_EXAMPLES)
            yield from filter(None, (param_key_problem(k, "local") for k in keys))


CHECKS = {
    "kedro": check_kedro,
    "predict": check_predict,
    "demo": check_demo,
    "make": check_make,
    "options": check_options,
}


def problems(doc: str, text: str) -> list[str]:
    """``file:line: problem`` for each name a command in ``text`` uses that does not exist."""
    found = []
    for command in commands(doc, text):
        check = CHECKS.get(command.program, check_script)
        found += [f"{command.where()}: {problem}" for problem in check(command)]
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
