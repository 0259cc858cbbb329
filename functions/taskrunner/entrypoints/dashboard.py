"""The web dashboard: static HTML, CSS and JavaScript served by the API function at /dashboard.

The page itself needs no API key; it asks the user for one and sends it with every API call.
Files are read when they are requested (they are small), never at import.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

ASSETS_DIR = Path(__file__).with_name("dashboard")
INDEX = "index.html"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# An asset is one plain file name of the folder: no separators, no leading dot, a known type.
# The page is served at /dashboard only (its relative links are resolved from there).
ASSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\.(?:js|css|svg|png)")
# Scripts and styles from this folder only; API calls to this origin, the stream may be another (AWS).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' http: https:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


def read_asset(name: str, *, page: bool = False) -> tuple[bytes, str] | None:
    """The bytes and content type of one dashboard file, or None when there is no such file."""
    if not (page and name == INDEX) and not ASSET_NAME.fullmatch(name):
        return None
    folder = ASSETS_DIR.resolve()
    try:
        path = (folder / name).resolve(strict=True)
    except OSError:
        return None
    if path.parent != folder or not path.is_file():
        return None
    return path.read_bytes(), CONTENT_TYPES[path.suffix]


def _serve(request: Request, name: str, *, page: bool = False) -> Response:
    found = read_asset(name, page=page)
    if found is None:
        return JSONResponse({"detail": "not found"}, status_code=404)
    body, content_type = found
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {
        "ETag": etag,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    if content_type.startswith("text/html"):
        headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        headers["X-Frame-Options"] = "DENY"
    if etag in {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=content_type, headers=headers)


@router.get("/dashboard")
def dashboard_page(request: Request) -> Response:
    """The dashboard's page."""
    return _serve(request, INDEX, page=True)


@router.get("/dashboard/")
def dashboard_slash() -> Response:
    """``/dashboard/`` -> ``/dashboard`` (a relative Location keeps any stage prefix of the URL)."""
    return Response(status_code=307, headers={"Location": "../dashboard"})


@router.get("/dashboard/{asset}")
def dashboard_asset(asset: str, request: Request) -> Response:
    """A script, style sheet or image of the dashboard."""
    return _serve(request, asset)
