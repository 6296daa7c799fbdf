"""A 400 for a malformed HTTP request head, before Sanic 21.12 mishandles it.

Sanic 21.12 (pinned by rasa 3.6) answers 500 to a request line with a
non-ASCII method or an empty target, and drops the connection without an
answer when httptools cannot parse the target (e.g. non-ASCII bytes in it):
its error path builds a request from the same bad bytes and fails again. It
also answers 500 to body framing it cannot read: a Transfer-Encoding other
than exactly "chunked" with no Content-Length, or a Content-Length that is
not a number. Nothing the gateway registers runs that early, so this screens
the request head at the connection, through Sanic's own extension point for
it (the ``protocol`` given to ``app.run`` / ``create_server``), and answers a
plain 400 instead. Every other request goes to Sanic untouched.
"""

from __future__ import annotations

import logging
import re

from httptools import HttpParserInvalidURLError, parse_url
from sanic.http import Stage
from sanic.server.protocols.http_protocol import HttpProtocol

log = logging.getLogger(__name__)

# method SP request-target SP HTTP-version, visible ASCII only (RFC 9112, section 3)
_REQUEST_LINE = re.compile(rb"[!-~]+ ([!-~]+) HTTP/[0-9]\.[0-9]")
_LONGEST_LINE = 8192  # Sanic's own head limit; longer is its 413 to give

_BODY = b"Bad Request: malformed request head"
BAD_REQUEST = (b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
               b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_BODY), _BODY))


_DIGITS = re.compile(rb"[0-9]+")


def framing_is_sound(header_lines: list) -> bool:
    """Whether Sanic can frame the body these header lines announce (read as Sanic does:
    the name is what comes before the first colon, lower-cased; the value is left-stripped)."""
    fields: dict = {}
    for line in header_lines:
        name, colon, value = line.partition(b":")
        if colon:
            fields.setdefault(name.lower(), []).append(value.lstrip())
    encodings = fields.get(b"transfer-encoding", [])
    if encodings:
        return encodings == [b"chunked"]
    lengths = fields.get(b"content-length", [])
    return all(_DIGITS.fullmatch(length.strip()) for length in lengths[:1])


def request_line_is_sound(line: bytes) -> bool:
    """Whether Sanic can parse this request line (without its CRLF)."""
    match = _REQUEST_LINE.fullmatch(line)
    if match is None:
        return False
    try:
        parse_url(match.group(1))
    except HttpParserInvalidURLError:
        return False
    return True


class RequestHeadGuard(HttpProtocol):
    """Sanic's HTTP protocol, refusing a malformed request head with a 400."""

    def data_received(self, data: bytes) -> None:
        http = getattr(self, "_http", None)
        # IDLE also while Sanic drains the body of a request it already answered (say a
        # 404 sent before the body arrived): those bytes are that body, not a new head.
        waiting_for_a_request = http is None or (
            http.stage is Stage.IDLE and not getattr(http, "request_body", None))
        if waiting_for_a_request and data and not self._sound(data):
            self._refuse()
            return
        super().data_received(data)

    def _sound(self, data: bytes) -> bool:
        """False if what has arrived of the next request's head is already malformed."""
        received = bytes(self.recv_buffer[:_LONGEST_LINE]) + data[:_LONGEST_LINE]
        head, complete, _ = received.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        if len(lines) > 1 or complete:  # the request line is all there
            if lines[0] and not request_line_is_sound(lines[0]):
                return False
        return not complete or framing_is_sound(lines[1:])

    def _refuse(self) -> None:
        log.info("refused a malformed request head with 400")
        if self.transport is not None:
            self.transport.write(BAD_REQUEST)
            self.transport.close()
