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


BENCH_REPORT = Path(__file__).resolve().parent.parent / "reports" / "bench.json"


def merge_report(figures: Mapping[str, Any], path: Path = BENCH_REPORT) -> None:
    """Add ``figures`` to reports/bench.json, keeping what other benchmarks wrote there.

    `make bench` runs several benchmarks; each owns its own keys of the one file.
    """
    try:
        current = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        current = {}
    current.update(figures)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")
