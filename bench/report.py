"""What every benchmark does with its figures: a JSON report, and the same on stdout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping


def write_report(path: Path, result: Mapping[str, Any]) -> None:
    """Write ``result`` to ``path`` (reports/, git-ignored) and print it."""
    text = json.dumps(result, indent=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")
    print(text)
