"""The NLU quality gate, on a hand-written test set never used for training.

Scored with the same code as `make evaluate`, and held to the committed
baseline's gate (reports/baseline.json), so CI fails on the regressions a
trainer would see locally.
"""

from __future__ import annotations

import asyncio

import pytest

from bot.nlu.sentiment import load_examples
from bot.trainer import gate
from bot.trainer.datasets import labelled, load_training_data, nlu_files
from bot.trainer.evaluate import scores_summary
from bot.trainer.metrics import score
from bot.trainer.sentiment_eval import score_test_set

MACRO_F1_FLOOR = 0.90
ENTITY_F1_FLOOR = {"order_id": 0.95, "email": 0.95, "phone": 0.9, "product": 0.85}
FAQ_ACCURACY_FLOOR = 0.80
FALLBACK_RATE_CEILING = 0.15

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def scores(agent, project_root):
    examples = labelled(load_training_data(nlu_files(project_root / "tests" / "nlu")))
    loop = asyncio.new_event_loop()
    try:
        parses = [loop.run_until_complete(agent.parse_message(e.text)) for e in examples]
    finally:
        loop.close()
    return score(examples, parses)


def test_print_nlu_report(scores, capsys):
    with capsys.disabled():
        print("\n" + scores.table())
        for text, want, got in scores.errors:
            print(f"  miss: {text!r}: {want} -> {got}")


def test_intent_macro_f1_meets_the_gate(scores):
    assert scores.macro_f1 >= MACRO_F1_FLOOR, scores.table()


@pytest.fixture(scope="module")
def sentiment_scores(agent, project_root):
    examples = [pair for path in nlu_files(project_root / "tests" / "nlu", key="sentiment")
                for pair in load_examples(path)]
    loop = asyncio.new_event_loop()
    try:
        parses = [loop.run_until_complete(agent.parse_message(text)) for text, _ in examples]
    finally:
        loop.close()
    return score_test_set(examples, parses)


def test_the_committed_baseline_gate_passes(scores, sentiment_scores, project_root):
    """No score fell past the margin and every intent keeps its floor."""
    baseline = gate.load_baseline(project_root / "reports" / "baseline.json")
    assert baseline is not None, "reports/baseline.json is missing: run make evaluate"
    summary = {"test": scores_summary(scores), "sentiment": {"test": sentiment_scores}}
    failures = gate.check(summary, baseline)
    assert failures == [], "\n".join(failures) + "\n" + scores.table()


def test_hostile_messages_are_recognised(sentiment_scores):
    """Hostility triggers a handover, so it must be told apart on unseen messages."""
    assert sentiment_scores["labels"]["hostile"] >= 0.85, sentiment_scores


def test_entities_are_extracted_reliably(scores):
    for entity, floor in ENTITY_F1_FLOOR.items():
        assert scores.entities[entity]["f1"] >= floor, (entity, scores.table())


def test_faq_questions_get_the_right_answer(scores):
    assert scores.faq_accuracy >= FAQ_ACCURACY_FLOOR, scores.table()


def test_clear_messages_rarely_need_clarifying(scores):
    assert scores.fallback_rate <= FALLBACK_RATE_CEILING, scores.table()
