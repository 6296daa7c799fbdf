"""Trainers' data checks, beyond `rasa data validate`, each as file:line with a hint.

    python -m bot.trainer.validate [--data data/nlu] [--domain domain.yml]

Errors (exit 1): the same example under two intents, intents under the
minimum number of examples, FAQ sub-intents without an answer or answers
without examples, one text annotated as two different entities, sentiment
labels outside the label set. Warnings: near-duplicates across intents, and
words annotated as an entity in one example but left bare in another.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import yaml

from bot.brand import PROJECT_ROOT
from bot.nlu.sentiment import LABELS as SENTIMENT_LABELS
from bot.trainer.nlu_files import ANNOTATION, Example, normalise, read_examples

MIN_EXAMPLES = 25
MIN_FAQ_EXAMPLES = 8


@dataclass(frozen=True)
class Finding:
    level: str  # error | warning
    where: str
    message: str
    hint: str

    def __str__(self) -> str:
        return f"{self.where}: {self.level}: {self.message} (fix: {self.hint})"


def shape(text: str) -> str:
    """Near-duplicate key: case, punctuation, digits and word order ignored."""
    return " ".join(sorted(set(re.sub(r"\d", "0", normalise(text)).split())))


def check(data_dir: Path, domain_path: Path) -> List[Finding]:
    examples = [e for path in sorted(data_dir.rglob("*.yml")) for e in read_examples(path)]
    intents = [e for e in examples if e.block_kind == "intent"]
    findings: List[Finding] = []
    findings += _duplicates(intents)
    findings += _too_few(intents)
    findings += _faq_answers(intents, domain_path)
    findings += _entities(intents, [e for e in examples if e.block_kind == "lookup"])
    findings += _sentiment_labels(examples)
    return findings


def _duplicates(intents: List[Example]) -> List[Finding]:
    findings = []
    exact: Dict[str, List[Example]] = defaultdict(list)
    near: Dict[str, List[Example]] = defaultdict(list)
    for example in intents:
        key = normalise(example.text)
        if key:
            exact[key].append(example)
            near[shape(example.text)].append(example)
    reported: Set[Tuple[str, ...]] = set()
    for group in exact.values():
        names = {e.name for e in group}
        if len(names) > 1:
            first, *others = group
            findings.append(Finding(
                "error", first.where, f"{first.text!r} is an example of {sorted(names)} "
                f"(also at {', '.join(o.where for o in others)})",
                "keep it under the one intent it means"))
            reported.add(tuple(sorted(e.where for e in group)))
    for group in near.values():
        names = {e.name for e in group}
        key = tuple(sorted(e.where for e in group))
        if len(names) > 1 and key not in reported:
            first, *others = group
            findings.append(Finding(
                "warning", first.where, f"{first.text!r} ({first.name}) nearly repeats "
                + ", ".join(f"{o.text!r} ({o.name}, {o.where})" for o in others),
                "reword one so the intents are told apart, or move it"))
    return findings


def _too_few(intents: List[Example]) -> List[Finding]:
    counts: Dict[str, List[Example]] = defaultdict(list)
    for example in intents:
        counts[example.name].append(example)
    findings = []
    for name, group in sorted(counts.items()):
        minimum = MIN_FAQ_EXAMPLES if "/" in name else MIN_EXAMPLES
        if len(group) < minimum:
            findings.append(Finding(
                "error", group[0].where, f"{name} has {len(group)} examples, fewer than "
                f"{minimum}", f"write {minimum - len(group)} more, the way customers say it"))
    return findings


def _faq_answers(intents: List[Example], domain_path: Path) -> List[Finding]:
    domain = yaml.safe_load(domain_path.read_text(encoding="utf-8")) or {}
    responses = {name[len("utter_"):] for name in (domain.get("responses") or {})
                 if "/" in name}
    first_example: Dict[str, Example] = {}
    for example in intents:
        if "/" in example.name:
            first_example.setdefault(example.name, example)
    findings = [
        Finding("error", example.where, f"{name} has examples but no answer",
                f"add utter_{name} to {domain_path.name}")
        for name, example in sorted(first_example.items()) if name not in responses]
    findings += [
        Finding("error", f"{domain_path.name}", f"utter_{name} answers a question no example "
                f"asks", f"add examples for {name} to data/nlu/, or remove the answer")
        for name in sorted(responses - set(first_example))]
    return findings


def _entities(intents: List[Example], lookups: List[Example]) -> List[Finding]:
    findings = []
    labelled: Dict[str, Set[str]] = defaultdict(set)
    where: Dict[str, Example] = {}
    for example in intents:
        for value, entity in ANNOTATION.findall(example.raw):
            labelled[value.lower()].add(entity)
            where.setdefault(value.lower(), example)
    for value, entities in sorted(labelled.items()):
        if len(entities) > 1:
            findings.append(Finding(
                "error", where[value].where, f"{value!r} is annotated as {sorted(entities)}",
                "annotate it as one entity everywhere"))
    # Lookup words written bare in one example but annotated in others.
    words = {e.raw.lower() for e in lookups if e.raw.lower() in labelled}
    for example in intents:
        bare = ANNOTATION.sub(" ", example.raw).lower()
        for word in words:
            if re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", bare):
                findings.append(Finding(
                    "warning", example.where, f"{word!r} is not annotated here but is "
                    f"annotated as {sorted(labelled[word])} elsewhere",
                    f"write it as [{word}]({sorted(labelled[word])[0]})"))
    return findings


def _sentiment_labels(examples: List[Example]) -> List[Finding]:
    seen: Dict[Tuple[Path, str], Example] = {}
    for example in examples:
        if example.block_kind == "label":
            seen.setdefault((example.file, example.name), example)
    return [Finding("error", example.where, f"sentiment label {name!r} is not one of "
                    f"{list(SENTIMENT_LABELS)}", "use one of those labels")
            for (_, name), example in seen.items() if name not in SENTIMENT_LABELS]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Check the NLU data trainers edit")
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT / "data" / "nlu")
    parser.add_argument("--domain", type=Path, default=PROJECT_ROOT / "domain.yml")
    args = parser.parse_args(argv)
    findings = check(args.data, args.domain)
    for finding in sorted(findings, key=lambda f: (f.level != "error", f.where)):
        print(finding)
    errors = sum(f.level == "error" for f in findings)
    warnings = len(findings) - errors
    print(f"{errors} error(s), {warnings} warning(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
