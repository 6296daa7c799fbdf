"""The faster jsonschema.validate Rasa uses for action server answers gives the same verdicts."""

from __future__ import annotations

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import schema_check_once
from bot.schema_check_once import validate


def rasa_action_response_schema():
    from rasa.core.actions.action import RemoteAction

    return RemoteAction.action_response_format_spec()


SCHEMA = rasa_action_response_schema()
EVENTS = ["user", "bot", "slot", "action", "followup", "reset_slots", "pause", "resume",
          "active_loop", "session_started", "restart", "nope", 3, None]
values = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5),
                   st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3),
                                                                        st.integers(), max_size=2))
events = st.fixed_dictionaries(
    {"event": st.sampled_from(EVENTS)},
    optional={"name": values, "value": values, "text": values, "timestamp": values,
              "metadata": values, "data": values, "intent": values})
responses = st.fixed_dictionaries({}, optional={
    "events": st.one_of(st.lists(events, max_size=4), values),
    "responses": st.one_of(st.lists(st.dictionaries(st.sampled_from(["text", "buttons"]),
                                                    values, max_size=2), max_size=2), values)})


def verdict(check, instance, schema=SCHEMA):
    try:
        check(instance, schema)
        return None
    except jsonschema.ValidationError as error:
        return error.message


# jsonschema's own validate takes ~60 ms per call on this schema: few examples.
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(responses)
def test_same_verdict_and_message_as_jsonschema_on_action_server_answers(instance):
    assert verdict(validate, instance) == verdict(schema_check_once._ORIGINAL, instance)


def test_a_valid_answer_passes_and_a_bad_event_fails_with_jsonschemas_words():
    good = {"events": [{"event": "slot", "name": "order_id", "value": "JL-1", "timestamp": None},
                       {"event": "bot", "text": "Thanks!", "data": {}}],
            "responses": [{"text": "hello"}]}
    validate(good, SCHEMA)
    with pytest.raises(jsonschema.ValidationError, match="not valid under any"):
        validate({"events": [{"event": "slot", "name": 3}]}, SCHEMA)


def test_a_bad_schema_is_still_refused():
    with pytest.raises(jsonschema.SchemaError):
        validate({}, {"type": "no such type"})


def test_install_makes_it_the_validate_rasa_imports(monkeypatch):
    monkeypatch.setattr(jsonschema, "validate", schema_check_once._ORIGINAL)
    schema_check_once.install()
    from jsonschema import validate as imported

    assert imported is validate
