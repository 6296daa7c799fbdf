"""Other languages, honestly: detected, handed to a person, answered in their language.

The eight-language set (tests/fixtures/languages.yml) is ours; the English side
is our own NLU test data, which must never be mistaken for another language.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Dict, List

import pytest
import yaml
from rasa_sdk.executor import CollectingDispatcher

from actions.escalation import escalate
from bot.brand import PROJECT_ROOT, brand
from bot.escalation_rules import OTHER_LANGUAGE, EscalationRules, Turn, other_language_code
from bot.handoff_contract import HandoffPayload
from bot.language import detect
from tests.actions_support import tracker

RULES = EscalationRules.load()
SET: Dict[str, List[str]] = yaml.safe_load(
    (PROJECT_ROOT / "tests" / "fixtures" / "languages.yml").read_text(encoding="utf-8"))
OPEN_HOURS = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)  # a Monday, 10am UK


def english_examples() -> List[str]:
    data = yaml.safe_load((PROJECT_ROOT / "tests" / "nlu" / "test_nlu.yml").read_text())
    texts = []
    for block in data["nlu"]:
        for line in (block.get("examples") or "").splitlines():
            if line.strip().startswith("- "):
                texts.append(line.strip()[2:])
    return texts


def decision_for(text: str):  # noqa: ANN201
    reading = detect(text)
    return RULES.decide([Turn(text=text, intent="nlu_fallback",
                              language=reading.as_dict() if reading else None)])


def test_eight_languages_are_recognised():
    assert len(SET) == 8
    right = {code: sum(getattr(detect(text), "code", None) == code for text in texts)
             for code, texts in SET.items()}
    total = sum(len(texts) for texts in SET.values())
    assert sum(right.values()) / total >= 0.95, right
    assert all(right[code] >= len(SET[code]) - 2 for code in SET), right


def test_messages_in_other_languages_go_to_a_person_with_the_language():
    handed = {code: [text for text in texts if (d := decision_for(text)) is not None
                     and d.reason == OTHER_LANGUAGE
                     and other_language_code(d.reason, d.detail) == code]
              for code, texts in SET.items()}
    total = sum(len(texts) for texts in SET.values())
    assert sum(map(len, handed.values())) / total >= 0.9, handed
    decision = decision_for("Bonjour, ma commande n'est toujours pas arrivée")
    assert decision.priority == "normal"
    assert "French" in decision.detail


def test_english_is_never_taken_for_another_language():
    texts = english_examples()
    assert len(texts) > 300
    flagged = [t for t in texts if (d := decision_for(t)) and d.reason == OTHER_LANGUAGE]
    assert flagged == []


@pytest.mark.parametrize("text", ["ok", "merci", "JL-204815", "danke!", "👍", "gracias"])
def test_a_few_letters_are_not_enough_to_judge(text):
    decision = decision_for(text)
    assert decision is None or decision.reason != OTHER_LANGUAGE


def test_the_trigger_can_be_switched_off_or_widened(tmp_path):
    config = (PROJECT_ROOT / "escalation.yml").read_text()
    path = tmp_path / "escalation.yml"
    path.write_text(config.replace("other_language:\n  enabled: true",
                                   "other_language:\n  enabled: false"))
    reading = detect("Hallo, meine Bestellung ist immer noch nicht da").as_dict()
    german = [Turn(text="...", intent="nlu_fallback", language=reading)]
    assert EscalationRules.load(path).decide(german) is None
    path.write_text(config.replace("understood: [en]", "understood: [en, de]"))
    assert EscalationRules.load(path).decide(german) is None
    assert RULES.decide(german).reason == OTHER_LANGUAGE


def _escalate(language: str) -> List[dict]:
    dispatcher = CollectingDispatcher()
    detail = f"{language} (written in someone's language, score 0.99)"
    escalate(dispatcher, tracker(intent="nlu_fallback", text="...", slots={
        "escalation_trigger": OTHER_LANGUAGE, "escalation_trigger_priority": "normal",
        "escalation_trigger_detail": detail}), OTHER_LANGUAGE, now=OPEN_HOURS)
    return dispatcher.messages


def test_the_customer_is_answered_in_their_language_when_we_have_a_line_for_it():
    messages = _escalate("fr")
    said = [m for m in messages if not m.get("custom")]
    assert [m["text"] for m in said] == [brand().other_language_reply("fr")]
    assert "anglais" in said[0]["text"] and brand().contacts.email in said[0]["text"]
    handoff = HandoffPayload.from_custom([m for m in messages if m.get("custom")][0]["custom"])
    assert (handoff.reason, handoff.language) == (OTHER_LANGUAGE, "fr")
    assert handoff.context["language"] == "fr"


def test_otherwise_in_english_saying_honestly_why():
    messages = _escalate("tr")  # no Turkish line in brand.yml
    said = [m.get("response") for m in messages if not m.get("custom")]
    assert said == ["utter_language_not_understood", "utter_escalated_open"]
    handoff = HandoffPayload.from_custom([m for m in messages if m.get("custom")][0]["custom"])
    assert handoff.language == "tr"


def test_a_malformed_language_on_the_wire_is_dropped():
    payload = HandoffPayload.from_custom({"handoff": {"reason": OTHER_LANGUAGE,
                                                      "language": "<script>"}})
    assert payload.language is None
