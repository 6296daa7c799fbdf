"""The NLU quality gate, on a hand-written test set never used for training."""

from __future__ import annotations

import asyncio

import pytest

from tests.nlu_metrics import score

MACRO_F1_FLOOR = 0.90
INTENT_F1_FLOOR = 0.75
ENTITY_F1_FLOOR = {"order_id": 0.95, "email": 0.95, "phone": 0.9, "product": 0.85}
FAQ_ACCURACY_FLOOR = 0.80
FALLBACK_RATE_CEILING = 0.15

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def scores(agent, project_root):
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(project_root / "tests" / "nlu" / "test_nlu.yml"))
    examples = []
    for message in data.intent_examples:
        examples.append({
            "text": message.get("text"),
            "intent": message.get("intent"),
            "response_key": message.get("intent_response_key")
            if "/" in (message.get("intent_response_key") or "") else None,
            "entities": message.get("entities") or [],
        })
    loop = asyncio.new_event_loop()
    try:
        parses = [loop.run_until_complete(agent.parse_message(e["text"])) for e in examples]
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


def test_every_intent_meets_its_floor(scores):
    weak = {n: round(r["f1"], 3) for n, r in scores.intents.items() if r["f1"] < INTENT_F1_FLOOR}
    assert not weak, f"intents under {INTENT_F1_FLOOR}: {weak}\n{scores.table()}"


def test_entities_are_extracted_reliably(scores):
    for entity, floor in ENTITY_F1_FLOOR.items():
        assert scores.entities[entity]["f1"] >= floor, (entity, scores.table())


def test_faq_questions_get_the_right_answer(scores):
    assert scores.faq_accuracy >= FAQ_ACCURACY_FLOOR, scores.table()


def test_clear_messages_rarely_need_clarifying(scores):
    assert scores.fallback_rate <= FALLBACK_RATE_CEILING, scores.table()
