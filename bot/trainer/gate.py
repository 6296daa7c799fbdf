"""The regression gate: this evaluation against the committed baseline.

reports/baseline.json holds the accepted numbers and the gate's settings:
how far a macro score may fall (``margin``) and the F1 every intent must
keep on the test set (``intent_floor``, with per-intent ``intent_floors``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

DEFAULT_GATE = {"margin": 0.02, "intent_floor": 0.75, "intent_floors": {}}

# (label, path into the summary) of every score the margin guards.
GUARDED = [
    ("test-set intent macro-F1", ("test", "macro_f1")),
    ("test-set FAQ answer accuracy", ("test", "faq_accuracy")),
    ("cross-validation intent macro-F1", ("cross_validation", "macro_f1")),
    ("sentiment held-out macro-F1", ("sentiment", "macro_f1")),
    ("sentiment test-set macro-F1", ("sentiment", "test", "macro_f1")),
    ("third-party requests (bitext) accuracy", ("devsets", "bitext", "accuracy")),
    ("third-party off-topic handled", ("devsets", "offtopic", "handled")),
    ("third-party hostile macro-F1 (offensive)", ("devsets", "offensive", "macro_f1")),
    ("third-party negative F1 (sentiment)", ("devsets", "sentiment", "f1_negative")),
]
# Scores where higher is worse: the margin guards a rise.
GUARDED_RISES = [
    ("third-party wrong-answer share (bitext)", ("devsets", "bitext", "wrong")),
]


def _get(summary: Optional[Dict[str, Any]], path: tuple) -> Optional[float]:
    value: Any = summary
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, int | float) else None


def load_baseline(path: Path) -> Optional[Dict[str, Any]]:
    if not path.exists():
        return None
    try:
        baseline = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from None
    baseline["gate"] = {**DEFAULT_GATE, **(baseline.get("gate") or {})}
    return baseline


def check(summary: Dict[str, Any], baseline: Dict[str, Any]) -> List[str]:
    """Every way this evaluation is worse than the baseline allows; empty means pass."""
    gate = baseline["gate"]
    failures = []
    for label, path in GUARDED:
        now, before = _get(summary, path), _get(baseline, path)
        if path[0] == "cross_validation" and (
                (summary.get("cross_validation") or {}).get("folds")
                != (baseline.get("cross_validation") or {}).get("folds")):
            continue  # different fold counts are not comparable
        if now is not None and before is not None and before - now > gate["margin"]:
            failures.append(f"{label} fell from {before:.3f} to {now:.3f} "
                            f"(allowed drop {gate['margin']:.3f})")
    for label, path in GUARDED_RISES:
        now, before = _get(summary, path), _get(baseline, path)
        if now is not None and before is not None and now - before > gate["margin"]:
            failures.append(f"{label} rose from {before:.3f} to {now:.3f} "
                            f"(allowed rise {gate['margin']:.3f})")
    for intent, row in sorted(summary["test"]["intents"].items()):
        floor = gate["intent_floors"].get(intent, gate["intent_floor"])
        if row["f1"] < floor:
            was = _get(baseline, ("test", "intents", intent, "f1"))
            since = f", was {was:.3f}" if was is not None else ""
            failures.append(f"intent {intent} F1 {row['f1']:.3f} is below its floor "
                            f"{floor:.2f}{since}")
    return failures


def check_against_baseline(path: Path, summary: Dict[str, Any]) -> List[str]:
    baseline = load_baseline(path)
    if baseline is None:
        return [f"there is no baseline at {path}; review the reports and accept them with "
                "--update-baseline"]
    return check(summary, baseline)


def update_baseline(path: Path, summary: Dict[str, Any]) -> None:
    """Accept the summary's numbers, keeping the gate settings trainers chose."""
    old = load_baseline(path) or {"gate": dict(DEFAULT_GATE)}
    # A run without CV (FOLDS=0) or without the development sets keeps the
    # accepted numbers for them.
    accepted = {key: summary.get(key) if summary.get(key) is not None else old.get(key)
                for key in ("test", "cross_validation", "sentiment", "devsets")}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"gate": old["gate"], **_rounded(accepted)}, indent=2,
                               sort_keys=False) + "\n", encoding="utf-8")


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value
