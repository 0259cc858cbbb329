"""/docs works offline (every file it loads is served by the API itself) and with API keys
(the OpenAPI document declares the X-Api-Key scheme on each /api operation, not on /health)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient
from taskrunner.adapters.memory import InMemoryApiKeyStore
from taskrunner.domain.auth import Authenticator
from taskrunner.entrypoints.api import create_app

from infra.keys import create_key
from tests.support.fakes import make_fakes

PAGE = "http://testserver/docs"


class References(HTMLParser):
    """Every URL the page refers to: src/href attributes and the inline script's `url:`."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "action", "srcset", "data") and value is not None:
                self.urls.append(value)
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.scripts.append(data)
            self.urls += re.findall(r"""\burl:\s*['"]([^'"]+)['"]""", data)


@pytest.fixture(scope="module")
def world():
    fakes = make_fakes()
    store = InMemoryApiKeyStore()
    key, _ = create_key(store, "alice", "docs")
    fakes.services.authenticator = Authenticator(store)
    return TestClient(create_app(lambda: fakes.services)), key


def test_every_file_docs_loads_is_served_by_the_api_itself(world):
    client, _ = world
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # nothing on the page names another host: no CDN, no favicon or validator from elsewhere
    assert not re.search(r"(?i)(https?:)?//[a-z0-9]", page.text), page.text
    refs = References()
    refs.feed(page.text)
    assert refs.scripts, "Swagger UI's start-up script is missing"
    assert len(refs.urls) >= 4, refs.urls  # style sheet, icon, script, OpenAPI document
    kinds = {}
    for ref in refs.urls:
        assert not urlsplit(ref).scheme and not urlsplit(ref).netloc, ref
        url = urlsplit(urljoin(PAGE, ref))
        assert url.netloc == "testserver", ref
        response = client.get(url.path)
        assert response.status_code == 200, ref
        assert response.content, ref
        kinds[url.path] = response.headers["content-type"].split(";")[0]
    assert kinds == {
        "/docs/assets/swagger-ui.css": "text/css",
        "/docs/assets/favicon.png": "image/png",
        "/docs/assets/swagger-ui-bundle.js": "text/javascript",
        "/openapi.json": "application/json",
    }
    assert b"SwaggerUIBundle" in client.get("/docs/assets/swagger-ui-bundle.js").content


def test_docs_page_policy_allows_only_this_origin(world):
    client, _ = world
    policy = client.get("/docs").headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["connect-src"] == "'self'"
    assert directives["script-src"].startswith("'self' 'sha256-") and "unsafe" not in directives["script-src"]
    assert "http" not in policy


def test_docs_assets_are_cached_and_only_known_files_are_served(world):
    client, _ = world
    first = client.get("/docs/assets/swagger-ui.css")
    assert first.headers["x-content-type-options"] == "nosniff"
    again = client.get("/docs/assets/swagger-ui.css", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and not again.content
    for other in ("redoc.standalone.js", "core.py", "..%2Fcore.py", "%2E%2E", "swagger-ui.js"):
        assert client.get(f"/docs/assets/{other}").status_code == 404, other
    assert client.get("/redoc").status_code == 404  # no ReDoc page (its bundle is not shipped)


def test_openapi_declares_the_api_key_on_each_api_operation_and_not_on_health(world):
    client, _ = world
    document = client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes == {
        "ApiKey": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Api-Key",
            "description": schemes["ApiKey"]["description"],
        }
    }
    assert "security" not in document  # no global requirement: each operation says its own
    api_operations = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/api/"):
                api_operations += 1
                assert operation.get("security") == [{"ApiKey": []}], f"{method.upper()} {path}"
            else:
                assert "security" not in operation, f"{method.upper()} {path}"
    assert api_operations >= 8
    assert "/health" in document["paths"]
    assert not any(p.startswith(("/docs", "/dashboard")) for p in document["paths"])


def test_the_declared_header_is_the_one_the_api_authenticates(world):
    client, key = world
    header = client.get("/openapi.json").json()["components"]["securitySchemes"]["ApiKey"]["name"]
    assert client.get("/api/task-types").status_code == 401
    assert client.get("/api/task-types", headers={header: key}).status_code == 200
    assert client.get("/health").status_code in (200, 503)  # public: never 401


def test_docs_off_serves_neither_page_nor_assets():
    fakes = make_fakes()
    client = TestClient(create_app(lambda: fakes.services, docs=False))
    for path in ("/docs", "/docs/assets/swagger-ui-bundle.js", "/openapi.json", "/redoc"):
        assert client.get(path).status_code == 404, path


def test_gzipped_assets_are_sent_gzipped_or_unpacked(world, tmp_path, monkeypatch):
    """As in the API bundle (functions/Makefile stores the script and style sheet gzipped)."""
    import gzip

    from taskrunner.entrypoints import api_docs

    client, _ = world
    script = b"window.SwaggerUIBundle = function () {};\n" * 50
    (tmp_path / "swagger-ui-bundle.js.gz").write_bytes(gzip.compress(script, mtime=0))
    monkeypatch.setattr(api_docs, "assets_dir", lambda: tmp_path)

    browser = client.get("/docs/assets/swagger-ui-bundle.js", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert browser.status_code == 200
    assert browser.headers["content-encoding"] == "gzip" and browser.headers["vary"] == "Accept-Encoding"
    assert browser.content == script  # the client unpacked it
    assert browser.headers["content-type"].startswith("text/javascript")
    plain = client.get("/docs/assets/swagger-ui-bundle.js", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers and plain.content == script
    refused = client.get("/docs/assets/swagger-ui-bundle.js", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers and refused.content == script
    assert browser.headers["etag"] != plain.headers["etag"]
    assert client.get("/docs/assets/swagger-ui.css").status_code == 404  # neither file nor .gz here
