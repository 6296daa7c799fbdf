"""Acknowledgements first: what waits while a burst's acknowledgements are on their way.

Under a burst of DMs one gateway process does everything at once: it stores
each DM, acknowledges it, takes it to Rasa (an incident check, a typing
indicator, the Rasa call) and delivers the answer, all on one event loop and
one SQLite writer. First come, first served, the acknowledgement of the
fortieth customer waited behind the Rasa turns of the first thirty-nine.

``AcksFirst`` knows which conversations have an acknowledgement stored and
not yet sent, so that:

- their outbox's store calls go first (``store/priority.py``) until it is sent;
- Rasa's turns wait (at most ``MAX_WAIT`` seconds) while a batch of DMs is
  still being stored (``arriving()``, around a Telegram getUpdates batch) or
  an acknowledgement stored has not yet been handed to its channel. Once
  handed over, the channel's own rate limiter (telegram_priority.py) puts
  acknowledgements ahead of answers.

A turn waits a fraction of a second in a burst and not at all otherwise;
answers come a little later, acknowledgements as early as the platform's
rate limit allows (``make bench``: dm_burst).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Iterator, Set

# The longest a Rasa turn waits for acknowledgements: an outbox that cannot run (its
# lease with another replica, a stopping gateway) must not hold up answers for long.
MAX_WAIT = 1.0


class AcksFirst:
    def __init__(self) -> None:
        self._due: Set[str] = set()  # stored, not yet sent
        self._unhanded: Set[str] = set()  # stored, not yet handed to the channel
        self._arriving = 0  # batches of DMs being stored now
        self._clear = asyncio.Event()  # nothing arriving, every acknowledgement handed
        self._clear.set()

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """A batch of DMs is being stored: Rasa's turns wait for it (and its acks)."""
        self._arriving += 1
        self._clear.clear()
        try:
            yield
        finally:
            self._arriving -= 1
            self._check_clear()

    def _check_clear(self) -> None:
        if not self._arriving and not self._unhanded:
            self._clear.set()

    def stored(self, conversation_id: str) -> None:
        """The store took a DM and its acknowledgement."""
        self._due.add(conversation_id)
        self._unhanded.add(conversation_id)
        self._clear.clear()

    def is_due(self, conversation_id: str) -> bool:
        return conversation_id in self._due

    def handed(self, conversation_id: str) -> None:
        """The acknowledgement goes to the channel now."""
        self._unhanded.discard(conversation_id)
        self._check_clear()

    def done(self, conversation_id: str) -> None:
        """Sent, or the outbox has stopped (nothing left, or another replica has it)."""
        self._due.discard(conversation_id)
        self.handed(conversation_id)

    async def before_rasa(self) -> None:
        """Wait while DMs are arriving or an acknowledgement stored is not yet handed over."""
        if not self._clear.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._clear.wait(), MAX_WAIT)

