"""Scoring NLU predictions against labelled examples: intents, FAQ answers, entities.

Shared by `make evaluate` (test set and cross-validation) and the NLU gate
in the test suite, so both report the same numbers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from sklearn.metrics import precision_recall_fscore_support

FALLBACK = "nlu_fallback"


@dataclass
class Labelled:
    """One hand-labelled example: what the customer wrote and what it means."""

    text: str
    intent: str
    response_key: Optional[str] = None  # faq/<name> for FAQ questions
    entities: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        """The label a trainer writes: the intent, or faq/<name> for an FAQ."""
        return self.response_key or self.intent


@dataclass
class Outcome:
    """What the model made of one example."""

    example: Labelled
    predicted: str
    confidence: float
    fallback: bool
    selected_response: Optional[str]

    @property
    def correct(self) -> bool:
        return self.predicted == self.example.intent


@dataclass
class NluScores:
    intents: Dict[str, Dict[str, float]] = field(default_factory=dict)
    macro_f1: float = 0.0
    fallback_rate: float = 0.0
    faq_accuracy: float = 0.0
    entities: Dict[str, Dict[str, float]] = field(default_factory=dict)
    outcomes: List[Outcome] = field(default_factory=list)

    @property
    def errors(self) -> List[Tuple[str, str, str]]:
        return [(o.example.text, o.example.intent, o.predicted)
                for o in self.outcomes if not o.correct]

    def confused_pairs(self, top: int = 10, examples: int = 3
                       ) -> List[Tuple[str, str, int, List[str]]]:
        """(true intent, predicted intent, count, example texts), most frequent first."""
        counts = Counter((o.example.intent, o.predicted) for o in self.outcomes if not o.correct)
        pairs = []
        for (gold, predicted), count in counts.most_common(top):
            texts = [o.example.text for o in self.outcomes
                     if o.example.intent == gold and o.predicted == predicted][:examples]
            pairs.append((gold, predicted, count, texts))
        return pairs

    def table(self) -> str:
        lines = [f"{'intent':<26}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}"]
        for name, row in sorted(self.intents.items(), key=lambda kv: kv[1]["f1"]):
            lines.append(f"{name:<26}{row['precision']:>10.3f}{row['recall']:>8.3f}"
                         f"{row['f1']:>8.3f}{int(row['support']):>9d}")
        lines.append(f"{'macro F1':<26}{self.macro_f1:>34.3f}")
        lines.append(f"fallback rate {self.fallback_rate:.1%}, "
                     f"FAQ response accuracy {self.faq_accuracy:.1%}")
        for name, row in sorted(self.entities.items()):
            lines.append(f"entity {name:<12} precision {row['precision']:.3f} "
                         f"recall {row['recall']:.3f} f1 {row['f1']:.3f}")
        return "\n".join(lines)


def predicted_intent(parse: Dict[str, Any]) -> Tuple[str, float]:
    """The classifier's intent and confidence; behind a fallback, the best real intent."""
    ranked = [r for r in parse.get("intent_ranking") or [] if r["name"] != FALLBACK]
    if parse["intent"]["name"] != FALLBACK:
        return parse["intent"]["name"], float(parse["intent"].get("confidence") or 0.0)
    if ranked:
        return ranked[0]["name"], float(ranked[0].get("confidence") or 0.0)
    return FALLBACK, 0.0


def score(examples: List[Labelled], parses: List[Dict[str, Any]]) -> NluScores:
    """Per-intent precision/recall/F1, FAQ answer accuracy, entity F1, fallback rate."""
    scores = NluScores()
    for example, parse in zip(examples, parses, strict=True):
        predicted, confidence = predicted_intent(parse)
        selected = (parse.get("response_selector", {}).get("faq", {})
                    .get("response", {}).get("intent_response_key"))
        scores.outcomes.append(Outcome(example, predicted, confidence,
                                       parse["intent"]["name"] == FALLBACK, selected))
    gold = [o.example.intent for o in scores.outcomes]
    predicted = [o.predicted for o in scores.outcomes]
    labels = sorted(set(gold))
    p, r, f, s = precision_recall_fscore_support(gold, predicted, labels=labels, zero_division=0)
    scores.intents = {
        label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                "support": int(s[i])}
        for i, label in enumerate(labels)
    }
    scores.macro_f1 = float(sum(f) / len(f)) if len(f) else 0.0
    scores.fallback_rate = sum(o.fallback for o in scores.outcomes) / max(len(parses), 1)
    faq = [o for o in scores.outcomes if o.example.response_key]
    hits = sum(o.selected_response == o.example.response_key for o in faq)
    scores.faq_accuracy = hits / len(faq) if faq else 0.0
    scores.entities = _entity_scores(examples, parses)
    return scores


def _entity_scores(examples: List[Labelled], parses: List[Dict[str, Any]]
                   ) -> Dict[str, Dict[str, float]]:
    counts: Dict[str, Counter] = {}
    for example, parse in zip(examples, parses, strict=True):
        want = {(e["entity"], str(e["value"]).lower()) for e in example.entities}
        got = {(e["entity"], str(e["value"]).lower()) for e in parse.get("entities", [])}
        for entity in {n for n, _ in want | got}:
            c = counts.setdefault(entity, Counter())
            w = {v for n, v in want if n == entity}
            g = {v for n, v in got if n == entity}
            c["tp"] += len(w & g)
            c["fp"] += len(g - w)
            c["fn"] += len(w - g)
    result = {}
    for entity, c in counts.items():
        precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
        recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        result[entity] = {"precision": precision, "recall": recall, "f1": f1}
    return result
