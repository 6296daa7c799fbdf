"""External evaluation on third-party text nobody on the team wrote.

Our own test set (tests/nlu/) is written by the same hands as the training
data, so it flatters the model. The development sets in ``../shared/devsets/``
(see its README) are not ours; they are read from there at evaluation time and
never copied into the project or trained on. Each CSV is optional: a missing
one is reported as skipped.

Measures, per set:
- ``bitext``: customer-service requests. ``accuracy`` (the final intent is one
  of the row's ``accepted_intents``), ``fallback`` (sent to clarification or
  the off-topic answer), ``wrong`` (answered with another intent: the costly
  error), the most common confusions, and a risk-coverage curve.
- ``offtopic``: CLINC150 off-topic queries: ``handled`` = predicted
  out_of_scope or nlu_fallback.
- ``offensive``: TweetEval offensive: macro-F1 of sentiment ``hostile`` vs
  ``offensive``.
- ``sentiment``: TweetEval sentiment: F1 of negative (our ``negative`` or
  ``hostile``) vs ``negative``.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from sklearn.metrics import f1_score

from bot.brand import PROJECT_ROOT
from bot.trainer.metrics import FALLBACK, predicted_intent

DEFAULT_DEVSETS = PROJECT_ROOT.parent / "shared" / "devsets"
OUT_OF_SCOPE = "out_of_scope"
DECLINED = {FALLBACK, OUT_OF_SCOPE}
FILES = {
    "bitext": "bitext_validation.csv",
    "offtopic": "clinc150_validation_offtopic.csv",
    "offensive": "tweeteval_offensive_validation.csv",
    "sentiment": "tweeteval_sentiment_validation.csv",
}
REQUIRED_COLUMNS = {
    "bitext": {"text", "accepted_intents"},
    "offtopic": {"text"},
    "offensive": {"text", "label"},
    "sentiment": {"text", "label"},
}
# Coverage points the risk-coverage summary reports accuracy at.
COVERAGE_POINTS = (0.8, 0.95)


class DevsetError(ValueError):
    """A development set file is unreadable or lacks a column it needs."""


@dataclass
class Devsets:
    """The rows of each set found in a folder (absent sets are empty)."""

    folder: Path
    rows: Dict[str, List[Dict[str, str]]]

    @property
    def present(self) -> List[str]:
        return [name for name in FILES if self.rows.get(name)]


def load(folder: Path) -> Devsets:
    """Read every known CSV in the folder; unknown files are ignored."""
    rows: Dict[str, List[Dict[str, str]]] = {}
    for name, filename in FILES.items():
        path = folder / filename
        if not path.is_file():
            continue
        try:
            with path.open(encoding="utf-8", newline="") as handle:
                reader = csv.DictReader(handle)
                missing = REQUIRED_COLUMNS[name] - set(reader.fieldnames or [])
                if missing:
                    raise DevsetError(f"{path}: missing column(s) {sorted(missing)}")
                rows[name] = [row for row in reader if (row.get("text") or "").strip()]
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise DevsetError(f"{path}: cannot be read ({error})") from None
    return Devsets(folder, rows)


def final_intent(parse: Dict[str, Any]) -> str:
    """What the bot acts on: the intent after the fallback classifier."""
    return (parse.get("intent") or {}).get("name") or FALLBACK


def sentiment_label(parse: Dict[str, Any]) -> str:
    return (parse.get("sentiment") or {}).get("label", "")


def score_bitext(rows: Sequence[Dict[str, str]], parses: Sequence[Dict[str, Any]]
                 ) -> Dict[str, Any]:
    correct = wrong = declined = 0
    confusions: Counter = Counter()
    curve_points: List[Tuple[float, bool]] = []
    for row, parse in zip(rows, parses, strict=True):
        accepted = set(row["accepted_intents"].split("|"))
        intent = final_intent(parse)
        if intent in DECLINED:
            declined += 1
        elif intent in accepted:
            correct += 1
        else:
            wrong += 1
            confusions[(row["accepted_intents"], intent)] += 1
        best, confidence = predicted_intent(parse)
        curve_points.append((confidence, best in accepted))
    total = max(len(rows), 1)
    curve = risk_coverage(curve_points)
    return {
        "examples": len(rows), "accuracy": correct / total, "wrong": wrong / total,
        "fallback": declined / total,
        "confusions": [{"accepted": a, "predicted": p, "count": n}
                       for (a, p), n in confusions.most_common(12)],
        "risk_coverage": {f"accuracy_at_{int(c * 100)}": accuracy_at(curve, c)
                          for c in COVERAGE_POINTS},
        "curve": curve,
    }


def score_offtopic(rows: Sequence[Dict[str, str]], parses: Sequence[Dict[str, Any]]
                   ) -> Dict[str, Any]:
    handled = sum(final_intent(p) in DECLINED for p in parses)
    taken_for = Counter(final_intent(p) for p in parses if final_intent(p) not in DECLINED)
    return {"examples": len(rows), "handled": handled / max(len(rows), 1),
            "taken_for": dict(taken_for.most_common(8))}


def score_offensive(rows: Sequence[Dict[str, str]], parses: Sequence[Dict[str, Any]]
                    ) -> Dict[str, Any]:
    gold = [row["label"] == "offensive" for row in rows]
    predicted = [sentiment_label(p) == "hostile" for p in parses]
    return {"examples": len(rows),
            "macro_f1": float(f1_score(gold, predicted, average="macro", zero_division=0))}


def score_sentiment(rows: Sequence[Dict[str, str]], parses: Sequence[Dict[str, Any]]
                    ) -> Dict[str, Any]:
    gold = [row["label"] == "negative" for row in rows]
    predicted = [sentiment_label(p) in {"negative", "hostile"} for p in parses]
    return {"examples": len(rows),
            "f1_negative": float(f1_score(gold, predicted, zero_division=0))}


SCORERS = {"bitext": score_bitext, "offtopic": score_offtopic,
           "offensive": score_offensive, "sentiment": score_sentiment}


def risk_coverage(points: Sequence[Tuple[float, bool]]) -> List[Dict[str, float]]:
    """Answering only above a confidence threshold: (threshold, coverage, accuracy)."""
    ranked = sorted(points, key=lambda p: -p[0])
    curve, right = [], 0
    for i, (confidence, is_right) in enumerate(ranked, 1):
        right += is_right
        if i == len(ranked) or ranked[i][0] != confidence:
            curve.append({"threshold": round(confidence, 4), "coverage": i / len(ranked),
                          "accuracy": right / i})
    return curve


def accuracy_at(curve: Sequence[Dict[str, float]], coverage: float) -> Optional[float]:
    """Accuracy of the answered messages when at least ``coverage`` of them are answered."""
    for point in curve:
        if point["coverage"] >= coverage:
            return point["accuracy"]
    return curve[-1]["accuracy"] if curve else None


def texts(devsets: Devsets) -> List[str]:
    """Every present set's texts, set after set: what to parse for ``score``."""
    return [row["text"] for name in devsets.present for row in devsets.rows[name]]


def score(devsets: Devsets, parses: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Scores for every set present, from the parses of ``texts(devsets)`` in order."""
    results: Dict[str, Any] = {}
    start = 0
    for name in devsets.present:
        rows = devsets.rows[name]
        results[name] = SCORERS[name](rows, parses[start:start + len(rows)])
        start += len(rows)
    return results


def summary(results: Dict[str, Any]) -> Dict[str, Any]:
    """The figures the baseline gate and summary.json keep (no curves, no texts)."""
    keep = {"bitext": ("examples", "accuracy", "wrong", "fallback", "risk_coverage"),
            "offtopic": ("examples", "handled"), "offensive": ("examples", "macro_f1"),
            "sentiment": ("examples", "f1_negative")}
    return {name: {key: results[name][key] for key in keep[name]} for name in results}


def report(results: Dict[str, Any], folder: Path) -> str:
    """Markdown section for the intent report."""
    lines = ["## Third-party development sets", "",
             f"Read from `{folder}`; measured only, never trained on.", ""]
    if not results:
        return "\n".join(lines + ["No development sets found: skipped.", ""])
    lines += ["| set | examples | measure | value |", "|---|---:|---|---:|"]
    named = {"bitext": [("accuracy", "accuracy"), ("wrong answer", "wrong"),
                        ("fallback / off-topic", "fallback")],
             "offtopic": [("handled as off-topic", "handled")],
             "offensive": [("hostile macro-F1", "macro_f1")],
             "sentiment": [("negative F1", "f1_negative")]}
    for name, result in results.items():
        for label, key in named[name]:
            lines.append(f"| {name} | {result['examples']} | {label} | {result[key]:.3f} |")
    bitext = results.get("bitext")
    if bitext:
        rc = bitext["risk_coverage"]
        lines += ["", "Risk-coverage (bitext, answering only the most confident): " + ", ".join(
            f"accuracy {value:.3f} at {key.rsplit('_', 1)[1]} % coverage"
            for key, value in rc.items() if value is not None) + ".", "",
            "Most common wrong answers (accepted → predicted):", ""]
        lines += [f"- {c['accepted']} → {c['predicted']} ({c['count']}×)"
                  for c in bitext["confusions"]] or ["- none"]
    offtopic = results.get("offtopic")
    if offtopic and offtopic["taken_for"]:
        lines += ["", "Off-topic queries taken for: " + ", ".join(
            f"{intent} ({n}×)" for intent, n in offtopic["taken_for"].items())]
    return "\n".join(lines + [""])
