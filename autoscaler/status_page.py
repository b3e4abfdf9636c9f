"""The live status page on the status API's own listener: `GET /` serves one HTML page whose script and style
sheet (autoscaler/page/, shipped in the image) come from the same origin and poll /status and /events, so it
works on a host with no way out and needs no port of its own.

Every response carries a strict Content-Security-Policy: the page may load and fetch from its own origin only,
runs no inline script or event handler, and cannot be framed; the script renders data with textContent only.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PAGE_DIR = Path(__file__).with_name("page")
CONTENT_SECURITY_POLICY = "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # A new image's page and script must never mix with an old one's from the browser's cache.
    "Cache-Control": "no-cache",
}
# Path on the listener -> (file in autoscaler/page/, media type).
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/page/status.js": ("status.js", "text/javascript; charset=utf-8"),
    "/page/status.css": ("status.css", "text/css; charset=utf-8"),
}


def page_routes(page_dir: Path = PAGE_DIR) -> list[Route]:
    """The page's routes, each file read once here: a file missing from the image fails at start, not on a
    request."""
    routes = []
    for path, (name, media_type) in ASSETS.items():
        body = (page_dir / name).read_bytes()

        async def serve(request: Request, body: bytes = body, media_type: str = media_type) -> Response:
            return Response(body, media_type=media_type, headers=SECURITY_HEADERS)

        routes.append(Route(path, serve, methods=["GET", "HEAD"]))
    return routes
