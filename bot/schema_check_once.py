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
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable, Dict, Optional

import jsonschema
from jsonschema import exceptions, validators

_ORIGINAL: Callable[..., None] = jsonschema.validate
_checked: Dict[str, Any] = {}
_lock = threading.Lock()
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
        validator = validator_class(schema)
        with _lock:
            if len(_checked) >= MAX_SCHEMAS:
                _checked.clear()
            _checked[key] = validator
    error = exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        raise error
    return None


def install() -> None:
    """Make ``jsonschema.validate`` this one (idempotent)."""
    jsonschema.validate = validate
