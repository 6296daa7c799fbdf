"""What can go wrong with an agent's action, as types every surface maps the same way."""

from __future__ import annotations


class HandoffError(Exception):
    """An agent's action was refused; ``status`` is the HTTP status it maps to."""

    status = 400


class HandoffNotFoundError(HandoffError):
    status = 404

    def __init__(self, handoff_id: int) -> None:
        super().__init__(f"no handoff {handoff_id}")
        self.handoff_id = handoff_id


class AlreadyResolvedError(HandoffError):
    """The conversation is back with the bot: nothing more to reply, claim or resolve."""

    status = 409

    def __init__(self, handoff_id: int) -> None:
        super().__init__(f"handoff {handoff_id} is already resolved")
        self.handoff_id = handoff_id


class BotUnavailableError(HandoffError):
    """Rasa could not take the conversation back; nothing was changed, try again later."""

    status = 503

    def __init__(self) -> None:
        super().__init__("the bot is unavailable, so the conversation stays with the agent; "
                         "try again in a minute")


class UnstorableInputError(HandoffError):
    """An agent's name or words hold what no database stores (NUL, a lone surrogate),
    or are too long."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
