"""Sentiment quality: a held-out fifth of the trainers' file, and k-fold CV on the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Tuple

from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from bot.nlu.sentiment import LABELS, SentimentModel, held_out_split, load_examples


def label_f1(gold: List[str], predicted: List[str]) -> Dict[str, float]:
    """F1 per sentiment label."""
    per_label = f1_score(gold, predicted, labels=list(LABELS), average=None, zero_division=0)
    return {label: float(f) for label, f in zip(LABELS, per_label, strict=True)}


def _f1(train: List[Tuple[str, str]], test: List[Tuple[str, str]]) -> Dict[str, float]:
    model = SentimentModel().fit([t for t, _ in train], [label for _, label in train])
    return label_f1([label for _, label in test],
                    [label for label, _ in model.predict([t for t, _ in test])])


def score_test_set(examples: List[Tuple[str, str]], parses: List[Dict[str, Any]]
                   ) -> Dict[str, Any]:
    """The trained model's sentiment on hand-written (text, label) pairs."""
    predicted = [(p.get("sentiment") or {}).get("label", "") for p in parses]
    labels = label_f1([label for _, label in examples], predicted)
    return {"examples": len(examples), "labels": labels,
            "macro_f1": sum(labels.values()) / len(labels)}


def evaluate_sentiment(path: Path, folds: int = 5) -> Dict[str, Any]:
    """Per-label F1 on the held-out examples, and macro-F1 by CV on the training part."""
    train, held_out = held_out_split(load_examples(path))
    labels = _f1(train, held_out)
    result: Dict[str, Any] = {
        "train_examples": len(train), "held_out_examples": len(held_out),
        "labels": labels, "macro_f1": sum(labels.values()) / len(labels),
    }
    if folds >= 2:
        texts, gold = [t for t, _ in train], [label for _, label in train]
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=1)
        fold_scores = []
        for train_idx, test_idx in splitter.split(texts, gold):
            f1 = _f1([train[i] for i in train_idx], [train[i] for i in test_idx])
            fold_scores.append(sum(f1.values()) / len(f1))
        result["cv_folds"] = folds
        result["cv_macro_f1"] = sum(fold_scores) / len(fold_scores)
    return result
