"""Conversation ids in Rasa's HTTP API paths, where they must stay one segment.

Rasa addresses a conversation as ``/conversations/<conversation_id:path>/...``
and its Sanic (21.12) router does not percent-decode what it matched: an id
sent as ``telegram%3A12345`` is a different tracker from ``telegram:12345``.
So the characters RFC 3986 allows raw in a path segment (letters, digits,
``-._~``, ``:@`` and ``!$&'()*+,;=``) are sent as they are, and every other
character is percent-encoded, so ``/``, ``?``, ``#`` and ``..`` can never
re-route a request to another conversation. An id holding such a character
would reach a tracker of its encoded name, not its own, so the gateway
refuses those ids at the door (``InboundMessage``) and the Rasa client
refuses to address them (``UnaddressableConversationError``).
"""

from __future__ import annotations

from urllib.parse import quote

# RFC 3986 pchar minus unreserved (which quote() always keeps) and pct-encoded.
SEGMENT_SAFE = ":@!$&'()*+,;="
ALLOWED = "letters, digits and - . _ ~ : @ ! $ & ' ( ) * + , ; ="


def path_segment(conversation_id: str) -> str:
    """``conversation_id`` as one URL path segment: nothing in it can start another."""
    if conversation_id in {".", ".."}:  # dot segments: clients and proxies collapse them
        return conversation_id.replace(".", "%2E")
    return quote(conversation_id, safe=SEGMENT_SAFE)


def is_addressable(conversation_id: str) -> bool:
    """True when Rasa's API reads the id back exactly as the REST channel stored it."""
    return (bool(conversation_id) and conversation_id.isascii()
            and path_segment(conversation_id) == conversation_id)
