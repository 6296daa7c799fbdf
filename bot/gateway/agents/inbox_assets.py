"""The inbox's stylesheet and script, served from the package (no CDN, no build step).

Two fixed files, read once at import: no path from the request ever reaches
the disk. Public, as the sign-in page needs the stylesheet and neither file
holds any data; the Content-Security-Policy's ``'self'`` covers both.
"""

from __future__ import annotations

from pathlib import Path

from sanic import Blueprint, Request, response
from sanic.response import HTTPResponse

HERE = Path(__file__).parent
STYLESHEET = (HERE / "templates" / "inbox.css").read_text(encoding="utf-8")
SCRIPT = (HERE / "static" / "inbox.js").read_text(encoding="utf-8")
# Short enough that a deploy's new look arrives within the hour, long enough to save reloads.
CACHE = "public, max-age=600"

inbox_assets = Blueprint("inbox_assets", url_prefix="/inbox/static")


@inbox_assets.get("/inbox.css")
async def stylesheet(request: Request) -> HTTPResponse:
    return response.text(STYLESHEET, content_type="text/css; charset=utf-8",
                         headers={"Cache-Control": CACHE})


@inbox_assets.get("/inbox.js")
async def script(request: Request) -> HTTPResponse:
    return response.text(SCRIPT, content_type="text/javascript; charset=utf-8",
                         headers={"Cache-Control": CACHE})
