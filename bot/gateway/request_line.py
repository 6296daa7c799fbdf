"""A 400 for a malformed HTTP request line, before Sanic 21.12 mishandles it.

Sanic 21.12 (pinned by rasa 3.6) answers 500 to a request line with a
non-ASCII method or an empty target, and drops the connection without an
answer when httptools cannot parse the target (e.g. non-ASCII bytes in it):
its error path builds a request from the same bad bytes and fails again.
Nothing the gateway registers runs that early, so this screens the request
line at the connection, through Sanic's own extension point for it (the
``protocol`` given to ``app.run`` / ``create_server``), and answers a plain
400 instead. Every other request goes to Sanic untouched.
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

_BODY = b"Bad Request: malformed request line"
BAD_REQUEST = (b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
               b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_BODY), _BODY))


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


class RequestLineGuard(HttpProtocol):
    """Sanic's HTTP protocol, refusing a malformed request line with a 400."""

    def data_received(self, data: bytes) -> None:
        http = getattr(self, "_http", None)
        waiting_for_a_request = http is None or http.stage is Stage.IDLE
        if waiting_for_a_request and data:
            head = bytes(self.recv_buffer[:_LONGEST_LINE]) + data[:_LONGEST_LINE]
            end = head.find(b"\r\n")
            if end > 0 and not request_line_is_sound(head[:end]):
                self._refuse()
                return
        super().data_received(data)

    def _refuse(self) -> None:
        log.info("refused a malformed request line with 400")
        if self.transport is not None:
            self.transport.write(BAD_REQUEST)
            self.transport.close()
