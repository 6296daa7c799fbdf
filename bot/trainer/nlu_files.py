"""Reading trainers' NLU files line by line, so findings and edits keep file:line.

Rasa's loader gives parsed messages but no line numbers and drops comments;
the trainer tools need both, so they read the YAML text themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import List

from bot.brand import PROJECT_ROOT

ANNOTATION = re.compile(r"\[([^\]]+)\]\((\w+)\)")
BLOCK = re.compile(r"^- (intent|label|regex|lookup|synonym):\s*(\S+)")


@dataclass(frozen=True)
class Example:
    file: Path
    line: int
    block_kind: str  # intent | label | regex | lookup | synonym
    name: str
    raw: str

    @property
    def text(self) -> str:
        return ANNOTATION.sub(r"\1", self.raw)

    @property
    def where(self) -> str:
        try:
            path = self.file.relative_to(PROJECT_ROOT)
        except ValueError:
            path = self.file
        return f"{path}:{self.line}"


def read_examples(path: Path) -> List[Example]:
    """Every example line of a data file with its line number and block."""
    examples = []
    kind, name = "", ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        block = BLOCK.match(line)
        if block:
            kind, name = block.group(1), block.group(2)
            continue
        stripped = line.strip()
        if kind and line.startswith("    - ") and stripped[2:].strip():
            examples.append(Example(path, number, kind, name, stripped[2:].strip()))
    return examples


def normalise(text: str) -> str:
    """Duplicate key: case, punctuation and spacing ignored."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())
