"""Rasa's tracker store keeps the trackers it saved, and never hands back a stale one.

Real databases: SQLite files and PostgreSQL, two store instances standing in
for two Rasa processes that share conversations.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from bot.rasa_tracker_store import FailClosedSQLTrackerStore
from tests.conftest import service_or_skip


@pytest.fixture(params=["sqlite", "postgresql"])
def make_store(request, tmp_path):
    from rasa.shared.core.domain import Domain

    from bot.brand import PROJECT_ROOT

    domain = Domain.load(str(PROJECT_ROOT / "domain.yml"))
    if request.param == "sqlite":
        options = {"dialect": "sqlite", "db": str(tmp_path / "rasa.db")}
    else:
        host, port = service_or_skip("PostgreSQL", "127.0.0.1", 5432)
        options = {"dialect": "postgresql", "host": host, "port": port, "db": "test",
                   "username": "postgres", "password": ""}
    stores = []

    def make():
        stores.append(FailClosedSQLTrackerStore(domain=domain, **options))
        return stores[-1]

    yield make
    for store in stores:
        store.engine.dispose()


def run(coroutine):
    return asyncio.new_event_loop().run_until_complete(coroutine)


def said(text):
    from rasa.shared.core.events import UserUttered

    return UserUttered(text, {"name": "greet", "confidence": 1.0})


def texts(tracker):
    from rasa.shared.core.events import UserUttered

    return [e.text for e in tracker.events if isinstance(e, UserUttered)]


def new_conversation(store, *messages):
    from rasa.shared.core.events import ActionExecuted, SessionStarted
    from rasa.shared.core.trackers import DialogueStateTracker

    sender = f"cache-{uuid.uuid4().hex[:8]}"
    events = [ActionExecuted("action_session_start"), SessionStarted(),
              ActionExecuted("action_listen"), *[said(m) for m in messages]]
    tracker = DialogueStateTracker.from_events(sender, events, store.domain.slots)
    run(store.save(tracker))
    return sender, tracker


def test_the_next_turn_gets_the_saved_tracker_without_reading_it_back(make_store):
    store = make_store()
    sender, _ = new_conversation(store, "hi")
    first = run(store.retrieve(sender))  # the latest session, as Rasa reads it back
    first.update(said("where is my order?"))
    run(store.save(first))
    assert run(store.retrieve(sender)) is first
    assert store.conversations.hits == 2
    assert texts(first) == ["hi", "where is my order?"]
    # What was kept is what the database holds.
    ours = [e.as_dict() for e in first.events]
    assert ours == [e.as_dict() for e in run(make_store().retrieve(sender)).events]


def test_what_another_process_wrote_meanwhile_is_read_from_the_database(make_store):
    ours, theirs = make_store(), make_store()
    sender, saved = new_conversation(ours, "hi")
    other = run(theirs.retrieve(sender))
    other.update(said("and where is my order?"))
    run(theirs.save(other))
    fresh = run(ours.retrieve(sender))
    assert fresh is not saved
    assert texts(fresh) == ["hi", "and where is my order?"]


def test_a_turn_that_was_not_saved_leaves_nothing_behind(make_store):
    store = make_store()
    sender, _ = new_conversation(store, "hi")
    half_done = run(store.retrieve(sender))
    half_done.update(said("this turn failed"))  # and was never saved
    assert texts(run(store.retrieve(sender))) == ["hi"]


def test_an_erased_conversation_is_gone_for_the_cache_too(make_store):
    store = make_store()
    sender, _ = new_conversation(store, "hi")
    with store.session_scope() as session:  # what `make forget` does to Rasa's table
        session.query(store.SQLEvent).filter(store.SQLEvent.sender_id == sender).delete()
        session.commit()
    assert run(store.retrieve(sender)) is None


def test_a_new_session_within_a_tracker_is_saved_once_and_read_back_as_rasa_does(make_store):
    from rasa.shared.core.events import ActionExecuted, SessionStarted

    store = make_store()
    sender, tracker = new_conversation(store, "hi")
    tracker = run(store.retrieve(sender))
    for event in (ActionExecuted("action_session_start"), SessionStarted(),
                  ActionExecuted("action_listen"), said("back again")):
        tracker.update(event)
    run(store.save(tracker))  # holds both sessions: a retrieve would read only the new one
    again = run(store.retrieve(sender))
    assert texts(again) == ["back again"]
    again.update(said("still there?"))
    run(store.save(again))
    whole = run(store.retrieve_full_tracker(sender))
    assert texts(whole) == ["hi", "back again", "still there?"]  # nothing saved twice
