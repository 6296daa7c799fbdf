"""Scoring the NLU model on the held-out test set in tests/nlu/."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

from sklearn.metrics import precision_recall_fscore_support

FALLBACK = "nlu_fallback"


@dataclass
class NluScores:
    intents: Dict[str, Dict[str, float]] = field(default_factory=dict)
    macro_f1: float = 0.0
    fallback_rate: float = 0.0
    faq_accuracy: float = 0.0
    entities: Dict[str, Dict[str, float]] = field(default_factory=dict)
    errors: List[Tuple[str, str, str]] = field(default_factory=list)

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


def predicted_intent(parse: Dict[str, Any]) -> str:
    """The classifier's intent; behind a fallback, the best-ranked real intent."""
    name = parse["intent"]["name"]
    if name != FALLBACK:
        return name
    ranked = [r["name"] for r in parse.get("intent_ranking", []) if r["name"] != FALLBACK]
    return ranked[0] if ranked else FALLBACK


def score(examples: List[Dict[str, Any]], parses: List[Dict[str, Any]]) -> NluScores:
    """examples: {text, intent, response_key, entities}; parses: Rasa parse results."""
    scores = NluScores()
    gold = [e["intent"] for e in examples]
    predicted = [predicted_intent(p) for p in parses]
    labels = sorted(set(gold))
    p, r, f, s = precision_recall_fscore_support(gold, predicted, labels=labels, zero_division=0)
    scores.intents = {
        label: {"precision": p[i], "recall": r[i], "f1": f[i], "support": s[i]}
        for i, label in enumerate(labels)
    }
    scores.macro_f1 = float(sum(f) / len(f))
    scores.fallback_rate = sum(x["intent"]["name"] == FALLBACK for x in parses) / len(parses)
    pairs = zip(examples, predicted, strict=True)
    scores.errors = [(e["text"], e["intent"], pr) for e, pr in pairs if e["intent"] != pr]

    faq = [(e, x) for e, x in zip(examples, parses, strict=False) if e.get("response_key")]
    hits = 0
    for example, parse in faq:
        selected = parse.get("response_selector", {}).get("faq", {}).get("response", {})
        hits += selected.get("intent_response_key") == example["response_key"]
    scores.faq_accuracy = hits / len(faq) if faq else 0.0

    counts: Dict[str, Dict[str, int]] = {}
    for example, parse in zip(examples, parses, strict=False):
        want = {(e["entity"], e["value"].lower()) for e in example["entities"]}
        got = {(e["entity"], str(e["value"]).lower()) for e in parse.get("entities", [])}
        for entity in {n for n, _ in want | got}:
            c = counts.setdefault(entity, {"tp": 0, "fp": 0, "fn": 0})
            w = {v for n, v in want if n == entity}
            g = {v for n, v in got if n == entity}
            c["tp"] += len(w & g)
            c["fp"] += len(g - w)
            c["fn"] += len(w - g)
    for entity, c in counts.items():
        precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
        recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores.entities[entity] = {"precision": precision, "recall": recall, "f1": f1}
    return scores
