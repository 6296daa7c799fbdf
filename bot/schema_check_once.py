"""``jsonschema.validate`` that checks each schema once, not on every call.

Rasa 3.6 validates every answer from the action server with
``jsonschema.validate(result, RemoteAction.action_response_format_spec())``.
jsonschema 4.17's ``validate`` first re-checks the *schema* against the JSON
Schema meta-schema, then builds a new validator, on every call. Rasa's schema
is a constant, so that check is the same work each time, and it was half of
the Rasa server's CPU per message (profiled with py-spy under `make bench`:
50 % in ``check_schema``, against 3.5 % for validating the answer itself).

``install()`` (run by ``bot.rasa_server`` before Rasa starts) replaces
``jsonschema.validate`` with an equivalent that remembers the validator of
each schema it has checked, keyed by the schema's content, so a schema that
changes is checked again. Every instance is still validated in full, with the
same errors; a bad schema still raises SchemaError. Rasa imports ``validate``
inside the function at each call, so the replacement is what it uses.

Its validator also reads a ``oneOf`` whose branches each pin one property to a
different constant (Rasa's events: ``"event": {"const": "slot"}`` and 22
others) as the tagged union it is: only the branches whose constant matches
can be valid, so only those are tried, instead of all 23 per event (the next
8 % of Rasa's CPU). When that finds the instance invalid, the standard
``oneOf`` runs, so the error is the one jsonschema reports.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional

import jsonschema
from jsonschema import _validators, exceptions, validators

_ORIGINAL: Callable[..., None] = jsonschema.validate
_checked: Dict[str, Any] = {}
_lock = threading.Lock()
# id(a oneOf list of a checked schema) -> its tag (see tagged_one_of)
_tags: Dict[int, Optional[tuple]] = {}
# Distinct schemas remembered at most (Rasa uses one; a bound keeps memory flat).
MAX_SCHEMAS = 64


def validate(instance: Any, schema: Any, cls: Optional[type] = None, *args: Any,
             **kwargs: Any) -> None:
    """As ``jsonschema.validate``; the schema check and validator are made once per schema."""
    if cls is not None or args or kwargs:
        return _ORIGINAL(instance, schema, cls, *args, **kwargs)
    try:
        key = json.dumps(schema, sort_keys=True)
    except (TypeError, ValueError):  # not plain JSON data: nothing safe to key on
        return _ORIGINAL(instance, schema)
    validator = _checked.get(key)
    if validator is None:
        validator_class = validators.validator_for(schema)
        validator_class.check_schema(schema)  # raises SchemaError, as validate does
        validator = validators.extend(validator_class, {"oneOf": tagged_one_of})(schema)
        with _lock:
            if len(_checked) >= MAX_SCHEMAS:
                _checked.clear()
                _tags.clear()  # keyed by id(): only valid while their schemas live
            _checked[key] = validator
    error = exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        raise error
    return None


def _tag_of(one_of: List[Any]) -> Optional[tuple]:
    """(property, {constant: [branch indexes]}) if every branch pins that property."""
    pinned = None
    for branch in one_of:
        properties = branch.get("properties", {}) if isinstance(branch, dict) else {}
        names = {name for name, rule in properties.items()
                 if isinstance(rule, dict) and "const" in rule}
        pinned = names if pinned is None else pinned & names
    if not pinned:
        return None
    name = sorted(pinned)[0]
    by_value: Dict[str, List[int]] = {}
    for index, branch in enumerate(one_of):
        by_value.setdefault(json.dumps(branch["properties"][name]["const"]), []).append(index)
    return name, by_value


def tagged_one_of(validator: Any, one_of: List[Any], instance: Any, schema: Any
                  ) -> Iterator[exceptions.ValidationError]:
    """``oneOf``, trying only the branches whose pinned constant the instance has."""
    if id(one_of) not in _tags:  # the schema is kept alive by its cached validator
        _tags[id(one_of)] = _tag_of(one_of)
    tag = _tags[id(one_of)]
    if tag is not None and isinstance(instance, dict) and tag[0] in instance:
        try:
            candidates = tag[1].get(json.dumps(instance[tag[0]]), [])
        except (TypeError, ValueError):
            candidates = None
        if candidates is not None:
            valid = [i for i in candidates if validator.evolve(schema=one_of[i])
                     .is_valid(instance)]
            if len(valid) == 1:
                return  # exactly one branch holds: the others pin another constant
    yield from _validators.oneOf(validator, one_of, instance, schema)


def install() -> None:
    """Make ``jsonschema.validate`` this one (idempotent)."""
    jsonschema.validate = validate
