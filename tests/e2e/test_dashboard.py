"""The web dashboard in headless Chromium against the local runner, as a person uses it."""

from __future__ import annotations

import os
import re
import time

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.receiver import CallbackReceiver
from tests.support.stack import ROOT

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
# The README's picture is refreshed only on request (UPDATE_SCREENSHOT=1), so test runs leave
# the work tree clean; otherwise the screenshot goes to the git-ignored artifacts folder.
SCREENSHOT = ROOT / ("docs" if os.environ.get("UPDATE_SCREENSHOT") == "1" else "tests/e2e/artifacts") / "dashboard.png"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}
ANSWERED_4XX = "Failed to load resource: the server responded with a status of 4"
REFUSED = (
    "/dashboard/..%2F..%2Fconfig.py",
    "/dashboard/%2E%2E",
    "/dashboard/.hidden.js",
    "/dashboard/index.html",
    "/dashboard/dashboard.py",
    "/dashboard/nothing.js",
)


@pytest.fixture(scope="module")
def browser():
    # launch() gives every browser a fresh, temporary --user-data-dir of its own.
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser):
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.set_default_timeout(20_000)
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

    def console(msg):
        # answers with 4xx are part of the tests; any other console error is a bug of the page
        if msg.type == "error" and not msg.text.startswith(ANSWERED_4XX):
            problems.append(f"console {msg.type}: {msg.text}")

    opened.on("console", console)
    yield opened
    context.close()
    assert not problems, problems


def connect(page: Page, stack) -> None:
    page.goto(f"{stack.url}/dashboard")
    expect(page.locator("#notice")).to_contain_text("Enter an API key")
    page.fill("#api-key", stack.api_key)
    page.click("#key-save")
    expect(page.locator("#task-type")).to_have_value("sleep")
    expect(page.locator("#param-seconds")).to_be_visible()
    expect(page.locator("#notice")).to_be_hidden()


def wait_until(condition, timeout: float, message: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(message)


def test_dashboard_is_served_without_a_key_and_refuses_other_paths(stack):
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        page = client.get("/dashboard")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert '<script src="dashboard/app.js"' in page.text
        for asset, kind in (("app.js", "text/javascript"), ("style.css", "text/css"), ("favicon.svg", "image/svg+xml")):
            response = client.get(f"/dashboard/{asset}")
            assert response.status_code == 200, asset
            assert response.headers["content-type"].startswith(kind)
            assert response.headers["x-content-type-options"] == "nosniff"
            again = client.get(f"/dashboard/{asset}", headers={"If-None-Match": response.headers["etag"]})
            assert again.status_code == 304
        for bad in REFUSED:
            assert client.get(bad).status_code == 404, bad
        slash = client.get("/dashboard/")
        assert slash.status_code == 307 and slash.headers["location"] == "../dashboard"
        assert client.get("/api/tasks").status_code == 401  # the page is public, the API is not


@pytest.fixture
def receiver():
    with CallbackReceiver() as running:
        yield running


def test_submit_from_generated_form_and_watch_it_complete_live(stack, page: Page, receiver):
    connect(page, stack)
    page.evaluate("() => { window.__sameDocument = true; }")
    # Records every status and percentage the "submitted" line shows, as the page changes it.
    page.evaluate(
        """() => {
            window.__seen = [];
            const box = document.querySelector('#submit-result');
            new MutationObserver(() => {
                const status = document.querySelector('#submitted-status');
                const pct = document.querySelector('#submitted .pct');
                if (status) window.__seen.push([status.textContent, pct ? pct.textContent : '']);
            }).observe(box, {childList: true, subtree: true, characterData: true});
        }"""
    )
    page.fill("#param-seconds", "2")
    page.click("#submit-form details.advanced summary")
    page.fill("#opt-callback", receiver.url)
    page.click("#submit-button")
    submitted = page.locator("#submitted")
    expect(submitted).to_be_visible()
    task_id = submitted.get_attribute("data-task-id")
    assert task_id
    status = page.locator("#submitted-status")
    expect(status).to_have_text("RUNNING", timeout=20_000)
    expect(status).to_have_text("COMPLETED", timeout=30_000)
    row_status = page.locator(f'tr[data-task-id="{task_id}"] .row-status')
    expect(row_status).to_have_text("COMPLETED")

    seen = page.evaluate("() => window.__seen")
    statuses = [s for s, _ in seen]
    assert statuses[0] == "PENDING", seen
    assert statuses.index("RUNNING") < statuses.index("COMPLETED"), seen
    assert statuses[-1] == "COMPLETED", seen
    assert any(pct not in ("0%", "100%") for s, pct in seen if s == "RUNNING"), seen  # progress moved live
    assert page.evaluate("() => window.__sameDocument === true"), "the page reloaded"

    page.click(f'tr[data-task-id="{task_id}"]')
    detail = page.locator("#detail")
    expect(detail).to_be_visible()
    expect(page.locator("#detail-id")).to_have_text(task_id)
    expect(page.locator("#detail-status")).to_have_text("COMPLETED")
    expect(page.locator("#detail-result")).to_contain_text('"slept_seconds": 2')
    expect(page.locator("#detail-parameters")).to_contain_text('"seconds": 2')
    expect(page.locator("#detail-attempts")).to_have_text("1 of 3")
    expect(page.locator("#detail-segments")).to_have_text("1")  # one worker invocation ran it
    expect(page.locator("#detail-progress-text")).to_contain_text("100%")
    expect(page.locator("#detail-cancel")).to_be_hidden()
    # the callback is delivered after the task ended: the open detail catches up by itself
    expect(page.locator("#detail-callback-status")).to_have_text("DELIVERED", timeout=30_000)
    assert len(receiver.requests) == 1
    assert page.url.endswith(f"#/tasks/{task_id}")
    assert page.evaluate("() => window.__sameDocument === true"), "the page reloaded"
    with stack.client() as client:
        assert client.get(f"/api/tasks/{task_id}/state").json()["status"] == "COMPLETED"

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000


def test_detail_streams_progress_and_cancel_button_cancels(stack, page: Page):
    connect(page, stack)
    page.fill("#param-seconds", "30")
    page.click("#submit-button")
    expect(page.locator("#submitted-status")).to_have_text("RUNNING", timeout=20_000)
    page.click("#submitted-link")
    expect(page.locator("#detail-status")).to_have_text("RUNNING")
    expect(page.locator("#detail-live")).to_have_text("live")
    # the progress text moves while the stream is open
    expect(page.locator("#detail-progress-text")).not_to_have_text(re.compile(r"^0%"), timeout=10_000)
    cancel = page.locator("#detail-cancel")
    expect(cancel).to_be_enabled()
    cancel.click()
    expect(page.locator("#detail-status")).to_have_text("CANCELLED", timeout=30_000)
    expect(cancel).to_be_hidden()
    expect(page.locator("#detail-live")).to_be_hidden()
    task_id = page.locator("#detail-id").text_content()
    with stack.client() as client:
        assert client.get(f"/api/tasks/{task_id}/state").json()["status"] == "CANCELLED"


def test_validation_errors_are_shown_next_to_the_field(stack, page: Page):
    connect(page, stack)
    page.fill("#param-seconds", "-1")
    page.click("#submit-button")
    error = page.locator("#param-seconds-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("greater than or equal to 0")
    expect(page.locator("#submit-result")).to_contain_text("Rejected")

    # a type with an array of numbers, and the JSON editor
    page.select_option("#task-type", "sum")
    page.fill("#param-numbers", "1, 2, 3.5")
    page.check("#params-as-json")
    expect(page.locator("#params-json")).to_have_value('{\n  "numbers": [\n    1,\n    2,\n    3.5\n  ]\n}')
    page.fill("#params-json", '{"a": 2, "b": 40}')
    page.click("#submit-button")
    expect(page.locator("#submitted-status")).to_have_text("COMPLETED", timeout=30_000)
    page.click("#submitted-link")
    expect(page.locator("#detail-result")).to_contain_text("42")


def test_filters_counts_and_pages(stack, page: Page):
    with stack.client() as client:
        ids = []
        for i in range(12):
            accepted = client.post("/api/tasks", json={"name": "range_sum", "parameters": {"n": 10 + i, "chunks": 1}})
            assert accepted.status_code == 202, accepted.text
            ids.append(accepted.json()["task_id"])

        def all_done():
            states = [client.get(f"/api/tasks/{t}/state").json()["status"] for t in ids]
            return all(s in TERMINAL for s in states)

        wait_until(all_done, 60, "range_sum tasks did not end")

    connect(page, stack)
    expect(page.locator("#count-COMPLETED .count-value")).not_to_have_text("0")
    page.select_option("#filter-name", "range_sum")
    page.select_option("#filter-limit", "10")
    rows = page.locator("#task-rows tr")
    expect(rows).to_have_count(10)
    expect(page.locator("#task-rows td.name")).to_have_text(["range_sum"] * 10)
    next_page = page.locator("#page-next")
    expect(next_page).to_be_enabled()
    first_page = rows.first.get_attribute("data-task-id")
    assert first_page in ids
    next_page.click()
    expect(page.locator("#page-info")).to_contain_text("page 2")
    second = rows.first.get_attribute("data-task-id")
    assert second not in (None, first_page)
    expect(page.locator("#page-prev")).to_be_enabled()
    page.locator("#page-prev").click()
    expect(page.locator("#page-info")).to_contain_text("page 1")
    expect(rows.first).to_have_attribute("data-task-id", first_page)

    # a count card filters by status
    page.select_option("#filter-name", "")

    def listed_statuses():
        if page.locator("#list-empty").is_visible():
            return set()
        return set(page.locator("#task-rows .row-status").all_text_contents())

    page.click("#count-COMPLETED")
    expect(page.locator("#filter-status")).to_have_value("COMPLETED")
    expect(page.locator("#count-COMPLETED")).to_have_class(re.compile(r"\bselected\b"))
    wait_until(lambda: listed_statuses() == {"COMPLETED"}, 10, "the COMPLETED filter was not applied")
    page.click("#count-FAILED")
    expect(page.locator("#filter-status")).to_have_value("FAILED")
    wait_until(lambda: listed_statuses() <= {"FAILED"}, 10, "the FAILED filter was not applied")


def test_a_wrong_key_is_reported(stack, page: Page):
    page.goto(f"{stack.url}/dashboard")
    page.fill("#api-key", "tr_wrong000_not-a-key")
    page.click("#key-save")
    expect(page.locator("#notice")).to_contain_text("API key rejected")
    expect(page.locator("body")).to_have_class("disconnected")


def test_failed_task_shows_its_attempts_and_retry_links_a_new_task(stack, page: Page):
    with stack.client() as client:
        accepted = client.post(
            "/api/tasks", json={"name": "fail", "parameters": {"message": "bad input", "retryable": False}}
        )
        assert accepted.status_code == 202, accepted.text
        old_id = accepted.json()["task_id"]
        wait_until(
            lambda: client.get(f"/api/tasks/{old_id}/state").json()["status"] == "FAILED", 30, "fail did not fail"
        )

    connect(page, stack)
    page.goto(f"{stack.url}/dashboard#/tasks/{old_id}")
    expect(page.locator("#detail-status")).to_have_text("FAILED")
    attempt = page.locator('#detail-attempt-list li[data-attempt="1"]')
    expect(attempt).to_have_attribute("data-outcome", "FAILED")
    expect(attempt.locator(".attempt-error")).to_have_text("NonRetryableError: bad input")
    traceback = attempt.locator("details.traceback pre")
    expect(traceback).to_be_hidden()  # folded until asked for
    attempt.locator("details.traceback summary").click()
    expect(traceback).to_be_visible()
    expect(traceback).to_contain_text("tasks/fail.py")

    expect(page.locator("#detail-cancel")).to_be_hidden()
    page.locator("#detail-retry").click()
    expect(page.locator("#detail-retry-of")).to_have_text(old_id)
    new_id = page.locator("#detail-id").text_content()
    assert new_id and new_id != old_id
    expect(page.locator("#detail-status")).to_have_text("FAILED", timeout=30_000)  # it fails again, as it must
    with stack.client() as client:
        new = client.get(f"/api/tasks/{new_id}/state").json()
        assert new["retry_of"] == old_id and new["parameters"]["message"] == "bad input"


def test_monitor_counts_queues_charts_search_and_live_list(stack, page: Page):
    with stack.client() as client:
        done = client.post("/api/tasks", json={"name": "sleep", "parameters": {"seconds": 0.3}}).json()["task_id"]
        wait_until(
            lambda: client.get(f"/api/tasks/{done}/state").json()["status"] in TERMINAL, 30, "the task did not end"
        )
        connect(page, stack)
        # counts by status come from the service (/api/stats), not from a tally of the list
        expect(page.locator("#counts-note")).to_contain_text("counted by the service")
        stats = client.get("/api/stats").json()
        completed = page.locator("#count-COMPLETED .count-value")
        wait_until(
            lambda: completed.text_content() == str(client.get("/api/stats").json()["counts"]["COMPLETED"]),
            10,
            f"the COMPLETED card does not show the service's count ({stats})",
        )
        # each task queue and dead-letter queue with its depths, as SQS reports them
        queues = {q["name"]: q for q in client.get("/api/queues").json()["queues"]}
        assert {
            "TasksQueue",
            "IoTasksQueue",
            "PriorityTasksQueue",
            "CallbacksQueue",
            "TasksDLQ",
            "CallbacksDLQ",
        } <= set(queues)
        for name in queues:
            expect(page.locator(f'#queue-rows tr[data-queue="{name}"] .q-visible')).to_have_text(re.compile(r"^\d+$"))
        # the charts: uPlot drew on a canvas, with the finished task in the last hour's series
        series = client.get("/api/stats/series").json()
        assert sum(series["completed"]) >= 1 and len(series["t"]) == 60
        expect(page.locator("#chart-throughput canvas")).to_have_count(1)
        expect(page.locator("#chart-latency canvas")).to_have_count(1)
        assert page.evaluate("() => document.querySelector('#chart-throughput canvas').width") > 200
        expect(page.locator("#charts-note")).to_contain_text(re.compile(r"[1-9]\d* tasks? ended"))
        # queue-wait and duration columns
        row = page.locator(f'tr[data-task-id="{done}"]')
        expect(row.locator("td.duration")).to_have_text(re.compile(r"^\d+\.\d+ s$"))
        expect(row.locator("td.wait")).to_have_text(re.compile(r"^\d+\.\d+ s$"))

        # a new task shows in the list within about a second, without a click
        # the page notes when each row first shows (wall clock, as this process reads it)
        page.evaluate(
            """() => {
                window.__rowSeen = {};
                new MutationObserver(() => {
                    for (const row of document.querySelectorAll('#task-rows tr[data-task-id]')) {
                        window.__rowSeen[row.dataset.taskId] ??= Date.now();
                    }
                }).observe(document.querySelector('#task-rows'), {childList: true});
            }"""
        )
        latencies = []
        for _ in range(5):
            fresh = client.post("/api/tasks", json={"name": "sleep", "parameters": {"seconds": 0.2}}).json()["task_id"]
            accepted = time.time()  # the task exists from here on
            expect(page.locator(f'tr[data-task-id="{fresh}"]')).to_be_visible(timeout=2_000)
            latencies.append(page.evaluate(f"() => window.__rowSeen['{fresh}']") / 1000 - accepted)
            time.sleep(0.3)
        # within one poll (0.75 s) and the listing it takes: on AWS a listing's shard queries
        # take milliseconds; the embedded endpoint takes a few hundred, measured here
        listing = []
        for _ in range(3):
            started = time.perf_counter()
            client.get("/api/tasks", params={"limit": 20}).raise_for_status()
            listing.append(time.perf_counter() - started)
        bound = 0.75 + 2 * sorted(listing)[1] + 0.25
        print(
            "new task listed after " + ", ".join(f"{s:.2f}" for s in latencies) + " s; "
            f"a listing takes {sorted(listing)[1]:.2f} s, bound {bound:.2f} s"
        )
        assert max(latencies) < bound, (latencies, listing)

        # the time filter: nothing was created in the future, everything in the last 15 minutes
        page.select_option("#filter-range", "15m")
        expect(page.locator("#counts-note")).to_contain_text("created in the last 15 min")
        expect(page.locator(f'tr[data-task-id="{fresh}"]')).to_be_visible()
        with_range = client.get("/api/stats?range=15m").json()["total"]
        assert with_range >= 2
        page.evaluate("() => { Date.now = () => new Date('2999-01-01T00:00:00Z').getTime(); }")
        page.select_option("#filter-range", "1h")
        expect(page.locator("#list-empty")).to_be_visible()
        page.evaluate("() => localStorage.clear()")

    # search by a short id opens the task
    connect(page, stack)
    page.fill("#search-id", done[:8])
    page.click("#search-go")
    expect(page.locator("#detail-id")).to_have_text(done)
    assert page.url.endswith(f"#/tasks/{done}")
    page.fill("#search-id", "abc")
    page.click("#search-go")
    expect(page.locator("#notice")).to_contain_text("at least 6")
