"""/docs in headless Chromium against the local runner: Swagger UI renders from the API's own
files, the Authorize button takes the development key, and "Try it out" gets a 200 — with
every request the page makes going to the stack on 127.0.0.1 (any other is refused and fails
the test)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Route, expect, sync_playwright

from tests.e2e.test_dashboard import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.e2e

# Belt and braces: the browser resolves no host name but 127.0.0.1 (nothing can leave the
# machine even if a request slipped past the route below).
LOOPBACK_ONLY = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


@pytest.fixture
def docs_page(stack):
    """A page whose every request is checked: to the stack's origin it goes, any other is aborted."""
    origin = urlsplit(stack.url)
    seen: list[str] = []
    elsewhere: list[str] = []
    problems: list[str] = []

    def guard(route: Route) -> None:
        url = urlsplit(route.request.url)
        seen.append(route.request.url)
        if url.scheme in ("http", "https") and (url.hostname, url.port) == (origin.hostname, origin.port):
            route.continue_()
        elif url.scheme == "data":
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort("blockedbyclient")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=LOOPBACK_ONLY)
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        context.set_default_timeout(20_000)
        context.route("**/*", guard)
        page = context.new_page()
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on("console", lambda msg: msg.type == "error" and problems.append(f"console error: {msg.text}"))
        page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url} {req.failure}"))
        try:
            yield page, seen
        finally:
            context.close()
            browser.close()
    assert not elsewhere, f"requests to other hosts: {elsewhere}"
    assert not problems, problems


def test_docs_render_offline_authorize_and_try_an_api_route(stack, docs_page):
    page, seen = docs_page
    with page.expect_response(lambda r: urlsplit(r.url).path == "/docs/assets/swagger-ui-bundle.js") as script:
        page.goto(f"{stack.url}/docs")
    # the API bundle stores the script gzipped and sends it so (1.5 MB -> 0.45 MB)
    assert script.value.status == 200 and script.value.headers.get("content-encoding") == "gzip"

    # Swagger UI rendered from the API's own files: the title and the operations list
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Task API")
    operations = page.locator(".opblock")
    expect(operations.first).to_be_visible()
    assert operations.count() >= 8
    types = page.locator("#operations-tasks-task_types_api_task_types_get")
    expect(types).to_be_visible()
    expect(types.locator(".authorization__btn")).to_be_visible()  # the route shows its lock
    expect(page.locator("#operations-health-health_health_get .authorization__btn")).to_have_count(0)

    # Authorize with the development key
    page.locator(".scheme-container button.authorize").click()
    dialog = page.locator(".dialog-ux")
    expect(dialog).to_contain_text("X-Api-Key")
    dialog.locator("input").fill(stack.api_key)
    dialog.locator("button.authorize").click()
    expect(dialog.locator("button.authorize")).to_have_count(0)  # now shows "Logout"
    dialog.locator("button.btn-done").click()
    expect(dialog).to_have_count(0)

    # Try GET /api/task-types out
    types.locator(".opblock-summary").click()
    types.locator("button.try-out__btn").click()
    with page.expect_response(lambda r: urlsplit(r.url).path == "/api/task-types") as answered:
        types.locator("button.execute").click()
    response = answered.value
    assert response.status == 200, response.text()
    assert response.request.headers.get("x-api-key") == stack.api_key
    assert any(t["name"] == "sleep" for t in response.json()["task_types"])
    expect(types.locator(".live-responses-table tbody td.response-col_status").first).to_have_text("200")

    paths = {urlsplit(url).path for url in seen}
    assert {"/docs", "/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/openapi.json"} <= paths
    assert all(url.startswith(f"{stack.url}/") for url in seen), seen
