"""Secrets the gateway issues (bridge credentials, web chat secrets): made, hashed, checked.

Each secret is 32 random bytes (``secrets.token_urlsafe(32)``), so the store
keeps only its SHA-256 digest: a slow password hash (scrypt, as for agents'
passwords) guards against guessing a low-entropy password, and no one can
guess 256 random bits, nor find a preimage of the digest. Comparisons use
``hmac.compare_digest``, so their timing says nothing about the stored value.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Optional

from sanic import Request

SECRET_BYTES = 32
# token_urlsafe(32) is 43 characters; anything far longer is not one of ours.
_TOKEN = re.compile(r"[A-Za-z0-9_\-]{16,128}")


def new_secret() -> str:
    """A fresh secret to hand out once; only its digest is kept."""
    return secrets.token_urlsafe(SECRET_BYTES)


def digest(secret: str) -> str:
    """The SHA-256 digest (hex) the store keeps instead of the secret.

    Any text has one: a presented value holding bytes Sanic decoded as lone
    surrogates (a cookie, say) simply matches nothing, never an error.
    """
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    """Whether a presented secret (header, cookie, form field) is ``expected``, in constant
    time; any text, even one holding undecodable bytes or lone surrogates, is just unequal."""
    return hmac.compare_digest(given.encode("utf-8", "backslashreplace"),
                               expected.encode("utf-8", "backslashreplace"))


def matches(secret: str, stored_digest: str) -> bool:
    """Whether ``secret`` is the one whose digest is stored (constant time)."""
    return hmac.compare_digest(digest(secret), stored_digest)


def bearer(request: Request) -> Optional[str]:
    """The ``Authorization: Bearer <token>`` token, or None when absent or malformed.

    Malformed includes oversized and non-token characters: the caller answers
    401 without hashing or looking anything up.
    """
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not _TOKEN.fullmatch(token):
        return None
    return token
