"""Merge a labelled review file into data/nlu/, keeping each file's format and comments.

    python -m bot.trainer.review_import FILE [--data data/nlu] [--domain domain.yml] [--dry-run]

Each labelled message is appended to the examples of its intent, in the file
that already holds that intent, as one more `    - ` line: nothing else in
the file moves. Messages already in the data are skipped (and reported if
they sit under another intent). Any unknown label stops the import before a
file is touched, so a typo loses nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml

from bot.brand import PROJECT_ROOT
from bot.privacy import unmask
from bot.trainer.nlu_files import ANNOTATION, Example, normalise, read_examples


class ReviewFileError(ValueError):
    """The review file can't be imported as it is; nothing was changed."""


@dataclass
class Addition:
    label: str
    text: str  # as written to the data file (placeholders replaced)
    file: Optional[Path] = None
    line: int = 0


@dataclass
class ImportReport:
    added: List[Addition]
    skipped: List[Tuple[str, str]]  # (text, why)

    def lines(self) -> List[str]:
        counts: Dict[Tuple[str, str], int] = defaultdict(int)
        for a in self.added:
            counts[(_shown(a.file), a.label)] += 1
        out = [f"{path}: +{n} {label}" for (path, label), n in sorted(counts.items())]
        out += [f"  {_shown(a.file)}:{a.line}: {a.text}" for a in self.added]
        out += [f"skipped: {text!r}: {why}" for text, why in self.skipped]
        out.append(f"{len(self.added)} example(s) added, {len(self.skipped)} skipped.")
        return out


def _shown(path: Optional[Path]) -> str:
    if path is None:
        return "?"
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def labelled_messages(review: Path) -> List[Tuple[str, str]]:
    """(label, text) for every message the trainer labelled, in file order."""
    try:
        document = yaml.safe_load(review.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ReviewFileError(f"{review}: cannot read it as YAML ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("groups"), list):
        raise ReviewFileError(f"{review}: expected a `groups:` list, as `make review` writes")
    result = []
    for group in document["groups"]:
        if not isinstance(group, dict) or not isinstance(group.get("messages"), list):
            raise ReviewFileError(f"{review}: group {group!r} has no `messages:` list")
        for message in group["messages"]:
            if not isinstance(message, dict) or not str(message.get("text") or "").strip():
                raise ReviewFileError(f"{review}: a message in group {group.get('group')} "
                                      "has no text")
            label = message.get("label") or group.get("label")
            if label and str(label).strip().lower() != "skip":
                result.append((str(label).strip(), " ".join(str(message["text"]).split())))
    return result


def known_labels(examples: List[Example], domain: Path) -> Dict[str, List[Example]]:
    """Label -> its examples, for labels the data already has a block for."""
    declared = set((yaml.safe_load(domain.read_text(encoding="utf-8")) or {}).get("intents")
                   or [])
    declared = {next(iter(i)) if isinstance(i, dict) else i for i in declared}
    blocks: Dict[str, List[Example]] = defaultdict(list)
    for example in examples:
        if example.block_kind == "intent" and example.name.split("/")[0] in declared:
            blocks[example.name].append(example)
    return blocks


def plan(labelled: List[Tuple[str, str]], data: Path, domain: Path) -> ImportReport:
    """Which lines go where; raises ReviewFileError on unknown labels."""
    examples = [e for path in sorted(data.rglob("*.yml")) for e in read_examples(path)]
    blocks = known_labels(examples, domain)
    unknown = sorted({label for label, _ in labelled if label not in blocks})
    if unknown:
        raise ReviewFileError(
            f"unknown label(s) {unknown}: use an intent that has examples in {_shown(data)} "
            f"(e.g. {', '.join(sorted(blocks)[:4])}); for a new intent or FAQ, add it to "
            "domain.yml and data/nlu/ by hand first. Nothing was imported.")
    existing = {normalise(e.text): e for e in examples if e.block_kind == "intent"}
    report = ImportReport([], [])
    for label, masked in labelled:
        text = unmask(masked)
        key = normalise(ANNOTATION.sub(r"\1", text))
        already = existing.get(key)
        if already is not None:
            why = ("already an example" if already.name == label
                   else f"already an example of {already.name} at {already.where}")
            report.skipped.append((masked, why))
            continue
        last = blocks[label][-1]
        report.added.append(Addition(label, text, last.file))
        existing[key] = Example(last.file, 0, "intent", label, text)
    return report


def apply(report: ImportReport, write: bool = True) -> None:
    """Insert after the last example of each intent block; each file written once.

    Sets every addition's line number, also when not writing (a dry run).
    """
    by_file: Dict[Path, List[Addition]] = defaultdict(list)
    for addition in report.added:
        by_file[addition.file].append(addition)
    for path, additions in by_file.items():
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        last_line = {e.name: e.line for e in read_examples(path) if e.block_kind == "intent"}
        inserts: Dict[int, List[Addition]] = defaultdict(list)
        for addition in additions:
            inserts[last_line[addition.label]].append(addition)
        output, shift = [], 0
        for number, line in enumerate(lines, 1):
            output.append(line if line.endswith("\n") else line + "\n")
            for addition in inserts.get(number, []):
                output.append(f"    - {addition.text}\n")
                shift += 1
                addition.line = number + shift
        if write:
            _write_atomically(path, "".join(output))


def _write_atomically(path: Path, content: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(content)
    os.replace(temporary, path)


def import_review(review: Path, data: Path, domain: Path, dry_run: bool = False
                  ) -> ImportReport:
    report = plan(labelled_messages(review), data, domain)
    apply(report, write=not dry_run)
    return report


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path, help="the labelled review file")
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT / "data" / "nlu")
    parser.add_argument("--domain", type=Path, default=PROJECT_ROOT / "domain.yml")
    parser.add_argument("--dry-run", action="store_true", help="report, change nothing")
    args = parser.parse_args(argv)
    if not args.file.exists():
        print(f"error: {args.file} does not exist (run `make review` first)", file=sys.stderr)
        return 2
    try:
        report = import_review(args.file, args.data, args.domain, args.dry_run)
    except ReviewFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    if report.added and not args.dry_run:
        print("Next: make validate, then make evaluate.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
