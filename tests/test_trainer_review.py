"""`make review` and `make import-review`: real stores in, masked YAML out, labels back in."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bot.brand import PROJECT_ROOT
from bot.gateway.messages import InboundMessage
from bot.gateway.store import HandoffRequest, Store
from bot.privacy import to_placeholders as mask
from bot.privacy import unmask
from bot.trainer import review, review_import

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "trainer"


@pytest.mark.parametrize(("text", "masked"), [
    ("email me at priya.n+shop@example.co.uk please", "email me at <email> please"),
    ("call +44 7700 900123 or 07700 900456", "call <phone> or <phone>"),
    ("US cell (555) 123-4567", "US cell <phone>"),
    ("card 4111 1111 1111 1111 was charged twice", "card <card> was charged twice"),
    ("card 4111-1111-1111-1111", "card <card>"),
    ("order JL-204815 and jl 204816 and #204817", "order <order_number> and <order_number> "
                                                  "and <order_number>"),
    ("size 10, 2 mugs, £45.99 on 12/03", "size 10, 2 mugs, £45.99 on 12/03"),
])
def test_each_kind_of_personal_data_is_masked(text, masked):
    assert mask(text) == masked


def test_placeholders_become_fictional_annotated_values():
    text = unmask("order <order_number>, mail <email>, phone <phone>, card <card>")
    assert "<" not in text
    assert "](order_id)" in text and "@example.com](email)" in text and "](phone)" in text
    assert unmask("order <order_number>") == unmask("order <order_number>")  # reproducible


def parse(intent, confidence, second=None, second_confidence=0.0, fallback=False):
    ranking = [{"name": intent, "confidence": confidence}]
    if second:
        ranking.append({"name": second, "confidence": second_confidence})
    top = {"name": "nlu_fallback", "confidence": 0.45} if fallback else ranking[0]
    return {"intent": top, "intent_ranking": ranking, "entities": []}


async def fill_tracker_store(path: Path) -> Path:
    """Conversations saved through Rasa's own SQL tracker store."""
    from rasa.core.tracker_store import TrackerStore
    from rasa.shared.core.events import UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker
    from rasa.utils.endpoints import EndpointConfig

    endpoints = path / "endpoints.yml"
    endpoints.write_text(f"tracker_store:\n  type: SQL\n  dialect: sqlite\n"
                         f"  db: {path / 'rasa.db'}\n")
    store = TrackerStore.create(EndpointConfig(type="SQL", dialect="sqlite",
                                               db=str(path / "rasa.db")))
    now = time.time()
    said = {
        "telegram:1": [
            ("where is my parcel JL-123456, mail me at ana@example.org",
             parse("order_status", 0.41, "delivery_time", 0.38)),
            ("hi", parse("greet", 0.99)),
            ("/restart", parse("restart", 1.0)),
        ],
        "telegram:2": [
            ("where is my parcel JL-654321, mail me at bo@example.net",
             parse("order_status", 0.44, "delivery_time", 0.40)),
            ("do you lot do those voucher things", parse("faq", 0.3, fallback=True)),
            ("cancel my order", parse("cancel_order", 0.97)),
        ],
    }
    for sender, turns in said.items():
        tracker = DialogueStateTracker(sender, [])
        for text, parse_data in turns:
            tracker.update(UserUttered(text, parse_data["intent"], parse_data=parse_data,
                                       timestamp=now))
        await store.save(tracker)
    return endpoints


def fill_gateway_store(url: str) -> None:
    """A hostile escalation and an agent's 'bot misunderstood' mark."""
    store = Store(url)
    first = store.receive(InboundMessage("api", "c9", "m1", "stop the delivery to 12 Elm St",
                                         "Dee"))
    store.complete_inbound(first.message_id, [], HandoffRequest(
        "hostile", "high", "wants a change", {"turns": [
            {"text": "stop the delivery to 12 Elm St", "intent": "order_status",
             "confidence": 0.52, "sentiment": "negative"}]}, time.time() + 3600))
    second = store.receive(InboundMessage("api", "c9", "m2", "can I swap it for a bigger size",
                                          "Dee"))
    store.complete_inbound(second.message_id, [])
    store.mark_misunderstood(second.message_id, "Sam Patel", "wanted an exchange, ana@example.org")


@pytest.fixture
async def exported(tmp_path):
    endpoints = await fill_tracker_store(tmp_path)
    database = f"sqlite:///{tmp_path / 'gateway.db'}"
    fill_gateway_store(database)
    out = tmp_path / "review.yml"
    await review.export(out, endpoints, database, days=30)
    return out


def messages_of(document):
    return [m for g in document["groups"] for m in g["messages"]]


async def test_review_exports_unsure_escalated_and_marked_messages_masked(exported):
    text = exported.read_text()
    for private in ("JL-123456", "JL-654321", "ana@example.org", "bo@example.net"):
        assert private not in text
    document = yaml.safe_load(text)
    by_text = {m["text"]: m for m in messages_of(document)}
    parcel = by_text["where is my parcel <order_number>, mail me at <email>"]
    assert parcel["seen"] == 2  # two customers, one line to label
    assert parcel["why"] == ["low_confidence", "close_top2"]
    assert parcel["bot_thought"] == "order_status (0.41), then delivery_time (0.38)"
    assert by_text["do you lot do those voucher things"]["why"] == ["fallback", "low_confidence"]
    assert by_text["stop the delivery to 12 Elm St"]["why"] == ["escalated: hostile"]
    marked = by_text["can I swap it for a bigger size"]
    assert marked["why"] == ["agent_marked: Sam Patel"]
    assert marked["notes"] == ["Sam Patel: wanted an exchange, <email>"]  # notes masked too
    # Clear messages and button payloads are not worth a trainer's time.
    assert not {"hi", "cancel my order", "/restart"} & set(by_text)
    assert all(m["label"] is None for m in by_text.values())
    assert text.startswith("# Customer messages the bot was unsure about: 4 distinct")


def test_similar_messages_are_grouped():
    candidates = [review.Candidate(t, ["fallback"]) for t in (
        "where is my parcel", "where is my parcel??", "where's my parcel gone",
        "do you sell gift cards")]
    groups = review.group(candidates)
    assert [len(g) for g in groups] == [3, 1]


def label(document, text, value):
    for message in messages_of(document):
        if message["text"] == text:
            message["label"] = value
            return
    raise AssertionError(text)


@pytest.fixture
def data_copy(tmp_path):
    data = tmp_path / "nlu"
    shutil.copytree(FIXTURE / "data" / "nlu", data)
    return data


async def test_round_trip_adds_exactly_the_labelled_examples(exported, data_copy, tmp_path):
    before = {p.name: p.read_text() for p in data_copy.glob("*.yml")}
    document = yaml.safe_load(exported.read_text())
    label(document, "where is my parcel <order_number>, mail me at <email>", "order_status")
    label(document, "do you lot do those voucher things", "faq/gift_cards")
    label(document, "can I swap it for a bigger size", "skip")
    # "stop the delivery to 12 Elm St" stays unlabelled: not imported.
    # Already an example, under the same intent: skipped, not duplicated.
    document["groups"].append({"group": 99, "label": "cancel_order",
                               "messages": [{"text": "Cancel my order!"}]})
    labelled = tmp_path / "labelled.yml"
    labelled.write_text(yaml.safe_dump(document, sort_keys=False))

    dry = review_import.import_review(labelled, data_copy, FIXTURE / "domain.yml",
                                      dry_run=True)
    assert {p.name: p.read_text() for p in data_copy.glob("*.yml")} == before
    report = review_import.import_review(labelled, data_copy, FIXTURE / "domain.yml")
    assert [(a.file, a.line, a.text) for a in dry.added] == [
        (a.file, a.line, a.text) for a in report.added]  # the dry run told the truth

    assert [(a.label, a.file.name) for a in report.added] == [
        ("order_status", "orders.yml"), ("faq/gift_cards", "general.yml")]
    assert report.skipped == [("Cancel my order!", "already an example")]
    after = {p.name: p.read_text() for p in data_copy.glob("*.yml")}
    for name, old in before.items():
        new_lines = after[name].splitlines()
        added = [line for line in new_lines if line not in old.splitlines()]
        expected = [f"    - {a.text}" for a in report.added if a.file.name == name]
        assert added == expected
        # Everything else, comments included, is untouched and in order.
        assert [line for line in new_lines if line not in added] == old.splitlines()
    parcel = report.added[0]
    assert parcel.text.startswith("where is my parcel [JL-") and "](order_id)" in parcel.text
    lines = after["orders.yml"].splitlines()
    assert lines[parcel.line - 1] == f"    - {parcel.text}"
    assert lines[parcel.line - 2] == "    - still waiting for my parcel"  # end of its block
    # Rasa reads the result, with the new example under its intent.
    from rasa.shared.nlu.training_data.loading import load_data

    texts = {(m.get("intent"), m.get("text")) for m in
             load_data(str(data_copy / "orders.yml")).intent_examples}
    assert ("order_status", review_import.ANNOTATION.sub(r"\1", parcel.text)) in texts
    # Importing the same file again adds nothing.
    again = review_import.import_review(labelled, data_copy, FIXTURE / "domain.yml")
    assert again.added == [] and len(again.skipped) == 3


def test_unknown_labels_stop_the_import_before_any_change(data_copy, tmp_path):
    before = {p.name: p.read_text() for p in data_copy.glob("*.yml")}
    labelled = tmp_path / "labelled.yml"
    labelled.write_text(yaml.safe_dump({"groups": [{"group": 1, "label": None, "messages": [
        {"text": "where is it", "label": "order_status"},
        {"text": "do u ship to mars", "label": "ordr_status"}]}]}))
    result = subprocess.run(
        [sys.executable, "-m", "bot.trainer.review_import", str(labelled),
         "--data", str(data_copy), "--domain", str(FIXTURE / "domain.yml")],
        cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert "unknown label(s) ['ordr_status']" in result.stderr
    assert "Nothing was imported" in result.stderr
    assert {p.name: p.read_text() for p in data_copy.glob("*.yml")} == before


def test_a_file_that_is_not_a_review_is_refused(data_copy, tmp_path):
    wrong = tmp_path / "notes.yml"
    wrong.write_text("- just a list\n")
    with pytest.raises(review_import.ReviewFileError, match="expected a `groups:` list"):
        review_import.import_review(wrong, data_copy, FIXTURE / "domain.yml")
