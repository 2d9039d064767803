"""The figures pasted into the READMEs are the figures the benchmark commands wrote.

Every table a README quotes from ``benchmarks/results/*.md`` (recognised by its header row)
must match, row for row, one results file with that header, and a table whose rows are a
results file's under another header is refused; every run caption (``**<name>** on
<device>...``) must be that run's own line, and every line of the kinds the commands write
beside their tables (validation, recall, kept epochs, code, speed captions, ...) must be in a
results file. The hand-written headline and target rows are rebuilt from their JSON. A number
edited by hand, or a results file rewritten without updating the README, fails here.
"""

import posixpath
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = ["README.md", "benchmarks/README.md"]
# The README's reference pages: their pasted tables and links are checked like the READMEs'.
PAGES = [
    "docs/running.md",
    "docs/data_processing.md",
    "docs/contrastive_pretraining.md",
    "docs/classifier_training.md",
    "docs/reporting.md",
    "docs/inference.md",
    "docs/mlflow.md",
    "docs/development.md",
]
DOCS = READMES + PAGES
CAPTION = re.compile(r"\*\*([\w.-]+)\*\* on ")
# Lines the benchmark commands write beside their tables (how each kind starts).
GENERATED = re.compile(
    r"Validation, at the epoch each|Test recall per|Epoch kept on validation|SupCon validation "
    r"kNN|Seed noise of|Code: commit|Slowest nodes|(Fold-to-fold|Split-to-split) spread of "
    r"[\w-]+ itself \(sd|"
    r"Inference on CPU|CPU AMD EPYC|Ours above the|Seeds \[|Folds \[|Split seeds \[|"
    r"Prior shift: tau chosen|"
    r"(AMD EPYC|NVIDIA)[^,]* \(\d+ CPU cores\)"
)


def _results() -> dict[str, list[str]]:
    return {p.name: p.read_text().splitlines() for p in (ROOT / "benchmarks/results").glob("*.md")}


def _tables(lines: list[str]) -> list[tuple[int, list[str]]]:
    """Each run of consecutive ``|`` lines, with the line number of its header."""
    tables, start = [], None
    for number, line in enumerate([*lines, ""], start=1):
        if line.startswith("|") and start is None:
            start = number
        elif not line.startswith("|") and start is not None:
            tables.append((start, lines[start - 1 : number - 1]))
            start = None
    return tables


def pasted_mismatches(doc: list[str], results: dict[str, list[str]]) -> list[str]:
    """Where ``doc`` quotes a results file and differs from it, one message each."""
    problems = []
    for number, table in _tables(doc):
        sources = [name for name, lines in results.items() if table[0] in lines]
        if not sources:
            # A table written for the README, not pasted: unless its rows are a results
            # file's (then its header was edited, and the check above would skip it).
            copied = sorted(n for n, lines in results.items() if any(r in lines for r in table[2:]))
            if copied:
                problems.append(f"line {number}: header differs from that of {copied}")
            continue
        rows = table[2:]
        if not any(all(row in results[name] for row in rows) for name in sources):
            at, missing = next(
                (number + 2 + i, r)
                for i, r in enumerate(rows)
                if not any(r in results[n] for n in sources)
            )
            problems.append(f"line {at}: a table of {sources} has {missing!r}")
    for number, line in enumerate(doc, start=1):
        caption = CAPTION.match(line)
        if caption:
            own = results.get(f"accuracy-{caption.group(1)}.md", [])
            if line not in own:
                problems.append(f"line {number}: caption of {caption.group(1)!r} differs")
        if GENERATED.match(line) and not any(line in lines for lines in results.values()):
            problems.append(f"line {number}: {line[:60]!r} is in no results file")
    return problems


@pytest.mark.parametrize("doc", DOCS)
def test_every_pasted_result_matches_its_file(doc: str) -> None:
    text = (ROOT / doc).read_text().splitlines()
    assert pasted_mismatches(text, _results()) == []
    # The check has something to check: each README quotes at least the current run (a page
    # in docs/ may quote none).
    if doc in READMES:
        assert any(CAPTION.match(line) for line in text)


def test_every_docs_page_is_checked() -> None:
    assert sorted(PAGES) == sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("docs/*.md"))


def test_a_figure_edited_by_hand_is_found() -> None:
    results = {
        "accuracy-run.md": [
            "**run** on CPU x; data y.",
            "",
            "| metric (test) | mean |",
            "|---|---|",
            "| balanced_accuracy | 0.713 |",
            "| macro_f1 | 0.665 |",
            "",
            "Validation, at the epoch each seed kept: balanced_accuracy 0.700.",
        ]
    }
    doc = ["Intro.", *results["accuracy-run.md"], "", "| made | here |", "|---|---|", "| a | b |"]
    assert pasted_mismatches(doc, results) == []
    assert pasted_mismatches(doc[:6] + doc[7:], results) == []  # fewer rows is fine
    edited = [line.replace("0.713", "0.731") for line in doc]
    assert pasted_mismatches(edited, results) == [
        "line 6: a table of ['accuracy-run.md'] has '| balanced_accuracy | 0.731 |'"
    ]
    wrong = [line.replace("CPU x", "GPU").replace("0.700", "0.7") for line in doc]
    assert [p.split(":")[0] for p in pasted_mismatches(wrong, results)] == ["line 2", "line 9"]
    header = [line.replace("| mean |", "| mean  |") for line in edited]
    assert pasted_mismatches(header, results) == [
        "line 4: header differs from that of ['accuracy-run.md']"
    ]
    code = [*doc, "Code: commit `abc`."]
    assert pasted_mismatches(code, results) == [
        "line 14: 'Code: commit `abc`.' is in no results file"
    ]


@pytest.mark.parametrize("doc", DOCS)
def test_no_unfilled_template_placeholder(doc: str) -> None:
    # A script that pastes a results file through a format string once left a bare ``{md}``
    # where a table belonged; the table check above cannot see a table that is not there.
    lines = (ROOT / doc).read_text().splitlines()
    bare = [n for n, line in enumerate(lines, start=1) if re.fullmatch(r"\{\w*\}", line.strip())]
    assert bare == []


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found, fenced = set(), False
    for line in text.splitlines():
        fenced ^= line.startswith("```")
        heading = None if fenced else re.match(r"#+ (.*)", line)
        if heading:
            title = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            found.add(title.replace(" ", "-"))
    return found


def broken_links(docs: dict[str, str]) -> list[str]:
    """Relative links of ``docs`` (path -> text) to a missing file or heading."""
    anchors = {path: _anchors(text) for path, text in docs.items()}
    problems = []
    for path, text in docs.items():
        for link in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", link):
                continue  # http(s), mailto: not checked here
            target, _, anchor = link.partition("#")
            file = (
                posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
                if target
                else path
            )
            if target and not (ROOT / file).exists():
                problems.append(f"{path}: {link} (no such file)")
            elif anchor and file in anchors and anchor not in anchors[file]:
                problems.append(f"{path}: {link} (no such heading)")
    return problems


def test_links_between_the_readmes_resolve() -> None:
    # Sections move between the two READMEs; a link left pointing at the old place fails here.
    assert broken_links({doc: (ROOT / doc).read_text() for doc in DOCS}) == []


def test_a_broken_link_is_found() -> None:
    docs = {
        "README.md": "# Results\n\n## On the GPU: `gpu-full`\n"
        "[a](#results) [b](#on-the-gpu-gpu-full) [c](benchmarks/README.md#speed)\n"
        "[d](#gone) [e](nowhere.md) [f](https://x.org/#y)\n",
        "benchmarks/README.md": "## Speed\n```\n# not a heading\n```\n[g](../README.md#results)\n"
        "[h](#not-a-heading)\n",
    }
    assert broken_links(docs) == [
        "README.md: #gone (no such heading)",
        "README.md: nowhere.md (no such file)",
        "benchmarks/README.md: #not-a-heading (no such heading)",
    ]


def _record(name: str) -> dict:
    import json

    return json.loads((ROOT / "benchmarks/results" / name).read_text())


def _pm(metric: dict) -> str:
    return f"{metric['mean']:.3f} ± {metric['sd']:.3f}"


def _seeds(metric: dict, ci: bool = False) -> str:
    if not ci:
        return "(" + ", ".join(f"{v:.3f}" for v in metric["per_seed"]) + ")"
    pairs = zip(metric["per_seed"], metric["ci95_per_seed"], strict=True)
    return "(" + ", ".join(f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, (lo, hi) in pairs) + ")"


def written_figures() -> dict[str, list[str]]:
    """The README's hand-written headline and target rows (found by how each line starts),
    each with the figures its records say it must show."""
    cpu = _record("accuracy-cpu-quick-stable-split.json")
    cpu_first = _record("accuracy-cpu-quick-channels-last-contrastive.json")
    cpu_off = _record("accuracy-cpu-quick-channels-last.json")
    draws = _record("accuracy-cpu-quick-split-draws.json")
    folds = _record("accuracy-cpu-quick-stable-split-cv.json")
    faster_folds = _record("accuracy-cpu-quick-encoder-lr-1-cv.json")
    larger = _record("accuracy-cpu-quick-150px.json")
    unfrozen = _record("accuracy-cpu-quick-unfreeze-all.json")
    faster = _record("accuracy-cpu-quick-encoder-lr-1.json")
    faster_draws = _record("accuracy-cpu-quick-encoder-lr-1-split-draws.json")
    gpu = _record("accuracy-gpu-full-d47f237.json")
    speed = _record("speed-h200-efficientnet_b0-224-c140027.json")["stages"]
    sup, cls = speed["supcon"], speed["classifier"]

    def headline(run: dict) -> list[str]:
        m = run["metrics"]
        sens, spec = m["mel_sensitivity_threshold"]["mean"], m["mel_specificity_threshold"]["mean"]
        return [
            f"| {_pm(m['balanced_accuracy'])} ({len(m['balanced_accuracy']['per_seed'])} seeds",
            f"| {m['macro_auc']['mean']:.3f} |",
            f"| {sens:.2f} / {spec:.2f} |",
        ]

    def limit_over_conventional(feeds: dict) -> str:
        return f"{feeds['limit']['img_per_s'] / feeds['conventional']['img_per_s']:.2f}x"

    return {
        "| `cpu-quick`: ImageNet Lite0": headline(cpu),
        "| `gpu-full`: ImageNet Lite0": headline(gpu),
        "| CPU: `cpu-quick` balanced accuracy": [
            f"{_pm(cpu['metrics']['balanced_accuracy'])} over 3 seeds "
            + _seeds(cpu["metrics"]["balanced_accuracy"]),
            f"validation {_pm(cpu['validation']['balanced_accuracy'])}",
            f"{_pm(cpu_first['metrics']['balanced_accuracy'])} over 3 seeds "
            + _seeds(cpu_first["metrics"]["balanced_accuracy"]),
            f"with SupCon off {_pm(cpu_off['metrics']['balanced_accuracy'])}",
            f"{_pm(draws['metrics']['balanced_accuracy'])} over {len(draws['split_seeds'])} "
            "split draws " + _seeds(draws["metrics"]["balanced_accuracy"]),
            f"validation {_pm(draws['validation']['balanced_accuracy'])}",
            f"with 150 px crops {_pm(larger['metrics']['balanced_accuracy'])} over 3 seeds, "
            f"validation {_pm(larger['validation']['balanced_accuracy'])}",
            f"with every stage fine-tuned {_pm(unfrozen['metrics']['balanced_accuracy'])} over 3 "
            f"seeds, validation {_pm(unfrozen['validation']['balanced_accuracy'])}",
            "with the encoder at the head's learning rate "
            f"{_pm(faster['metrics']['balanced_accuracy'])} over 3 seeds "
            + _seeds(faster["metrics"]["balanced_accuracy"]),
            f"validation {_pm(faster['validation']['balanced_accuracy'])}",
            f"test, read after, {_pm(faster_draws['metrics']['balanced_accuracy'])} against "
            f"{draws['metrics']['balanced_accuracy']['mean']:.3f}",
            f"{_pm(folds['metrics']['balanced_accuracy'])} over {len(folds['folds'])} grouped "
            "folds " + _seeds(folds["metrics"]["balanced_accuracy"]),
            f"validation {_pm(folds['validation']['balanced_accuracy'])}",
            f"test, read after, {_pm(faster_folds['metrics']['balanced_accuracy'])} against "
            f"{folds['metrics']['balanced_accuracy']['mean']:.3f}",
        ],
        "| `cpu-quick-stable-split-cv`": [
            f"| {_pm(folds['metrics']['balanced_accuracy'])} "
            f"| {folds['metrics']['macro_f1']['mean']:.3f} "
            f"| {folds['metrics']['macro_auc']['mean']:.3f} "
            f"| {folds['metrics']['mel_sensitivity_threshold']['mean']:.3f} / "
            f"{folds['metrics']['mel_specificity_threshold']['mean']:.3f} |",
        ],
        "| GPU: `gpu-full` balanced accuracy": [
            f"{_pm(gpu['metrics']['balanced_accuracy'])} over seeds 0 and 1 "
            + _seeds(gpu["metrics"]["balanced_accuracy"], ci=True),
            f"validation {_pm(gpu['validation']['balanced_accuracy'])}",
        ],
        "| GPU: input pipeline at most 10%": [
            f"{sup['ours_fraction_of_limit']:.2f} (SupCon) and "
            f"{cls['ours_fraction_of_limit']:.2f} (classifier) of the limit"
        ],
        "| GPU: at least 3x the conventional": [
            f"{sup['ours_multiple_of_conventional']:.2f}x (SupCon) and "
            f"{cls['ours_multiple_of_conventional']:.2f}x (classifier)",
            f"only {limit_over_conventional(cls)} (the limit over the conventional feed)",
        ],
    }


def written_mismatches(doc: list[str], claims: dict[str, list[str]]) -> list[str]:
    """Each claimed line missing from ``doc``, or lacking a figure its records give."""
    problems = []
    for start, figures in claims.items():
        lines = [line for line in doc if line.startswith(start)]
        if len(lines) != 1:
            problems.append(f"{start!r}: {len(lines)} lines start so (want 1)")
            continue
        problems += [f"{start!r} lacks {f!r}" for f in figures if f not in lines[0]]
    return problems


def test_the_headline_and_target_figures_are_their_records() -> None:
    # These rows are written by hand (they gather several runs), so no results file holds
    # them whole; each figure in them is rebuilt here from the JSON it comes from.
    doc = (ROOT / "README.md").read_text().splitlines()
    assert written_mismatches(doc, written_figures()) == []
    edited = [line.replace("0.683 ± 0.021", "0.693 ± 0.021") for line in doc]
    assert len(written_mismatches(edited, written_figures())) == 2  # the check can fail
