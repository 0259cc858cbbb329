"""The interactive API docs at /docs, served whole by the API function (nothing from a CDN),
and the API-key security scheme the OpenAPI document declares for every /api route.

Swagger UI's script, style sheet and icon come from the pinned ``fastapi-offline`` package
(functions/requirements/api.txt). In the API bundle its ReDoc bundle is left out and the
script and style sheet are stored gzipped (functions/Makefile): they are sent as they are to
clients that accept gzip (every browser), and unpacked for the others. Files are read when
they are requested, never at import.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.util
import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader

# The header the API reads its key from (api_routes.presented_key). auto_error=False: the
# scheme only documents the key; the authenticator decides, with the API's own 401 answer.
API_KEY_HEADER = "X-Api-Key"
api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name="ApiKey",
    description="An API key, `tr_<key_id>_<secret>` (`make keys`; the local stack prints a development key).",
    auto_error=False,
)

PACKAGE = "fastapi_offline"
ASSETS_URL = "docs/assets"  # relative to the page at /docs, so a stage prefix in the URL is kept
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
# Swagger UI runs with no online validator (it would fetch a badge from its site).
SWAGGER_UI_PARAMETERS = {"validatorUrl": None, "displayRequestDuration": True}
# Scripts from this API and the page's own start-up script (by its hash); Swagger UI sets
# inline styles. Requests ("Try it out") go to this origin only.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self' {inline}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)

router = APIRouter(include_in_schema=False)


def assets_dir() -> Path | None:
    """The folder of Swagger UI's files in the installed package (located, not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def read_asset(name: str, *, gzip_ok: bool = False) -> tuple[bytes, str, str | None] | None:
    """The bytes, content type and content encoding of one of Swagger UI's files, or None.
    A file stored as ``<name>.gz`` is returned gzipped when ``gzip_ok``, else unpacked."""
    content_type = ASSETS.get(name)
    folder = assets_dir()
    if content_type is None or folder is None:
        return None
    try:
        return (folder / name).read_bytes(), content_type, None
    except OSError:
        pass
    try:
        packed = (folder / f"{name}.gz").read_bytes()
    except OSError:
        return None
    return (packed, content_type, "gzip") if gzip_ok else (gzip.decompress(packed), content_type, None)


def accepts_gzip(request: Request) -> bool:
    for item in request.headers.get("accept-encoding", "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*") and params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00"):
            return True
    return False


def _security_headers(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


@router.get("/docs")
def docs_page(request: Request) -> Response:
    """Swagger UI, its assets from this API."""
    openapi_url = request.app.openapi_url or "/openapi.json"
    page = get_swagger_ui_html(
        openapi_url=request.scope.get("root_path", "") + openapi_url,
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
    )
    body = bytes(page.body)
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in INLINE_SCRIPT.findall(body.decode())
    )
    policy = CONTENT_SECURITY_POLICY.format(inline=hashes)
    headers = _security_headers(
        {"Cache-Control": "no-cache", "Content-Security-Policy": policy, "X-Frame-Options": "DENY"}
    )
    return Response(body, media_type="text/html; charset=utf-8", headers=headers)


@router.get("/docs/assets/{name}")
def docs_asset(name: str, request: Request) -> Response:
    """Swagger UI's script, style sheet or icon."""
    found = read_asset(name, gzip_ok=accepts_gzip(request))
    if found is None:
        return JSONResponse({"detail": "not found"}, status_code=404)
    body, content_type, encoding = found
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = _security_headers({"ETag": etag, "Cache-Control": "public, max-age=3600", "Vary": "Accept-Encoding"})
    if encoding:
        headers["Content-Encoding"] = encoding
    if etag in {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=content_type, headers=headers)
