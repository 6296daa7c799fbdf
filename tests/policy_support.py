"""The escalation policy as Rasa runs it, built once for the policy tests."""

from __future__ import annotations

import functools
from typing import Any, Tuple


@functools.cache
def escalation_policy() -> Tuple[Any, Any]:
    """(EscalationPolicy with the shipped escalation.yml, the project's Domain)."""
    from rasa.engine.graph import ExecutionContext, GraphSchema
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource
    from rasa.shared.core.domain import Domain

    from bot.brand import PROJECT_ROOT
    from bot.policies.escalation import EscalationPolicy

    domain = Domain.load(str(PROJECT_ROOT / "domain.yml"))
    policy = EscalationPolicy(
        {**EscalationPolicy.get_default_config(), "config": None},
        LocalModelStorage(PROJECT_ROOT / ".rasa" / "tmp"), Resource("escalation"),
        ExecutionContext(GraphSchema({}), "test"))
    return policy, domain
