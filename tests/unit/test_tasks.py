import pytest
from taskrunner.domain.errors import InvalidParametersError, UnknownTaskTypeError
from taskrunner.domain.models import TaskStatus
from taskrunner.domain.service import SubmitRequest
from taskrunner.tasks.prime import nth_prime
from taskrunner.tasks.registry import TaskRegistry, build_registry

from tests.support.fakes import make_fakes


def run(name, parameters):
    f = make_fakes()
    task = f.services.tasks.submit("default", SubmitRequest(name, parameters)).task
    f.services.worker.run(task.ref, timeout_hint=task.timeout_seconds)
    return f, f.repo.tasks[task.task_id]


def test_registry_has_the_builtin_types():
    assert build_registry().names() == [
        "fail",
        "fibonacci",
        "http_request",
        "message",
        "prime",
        "range_sum",
        "sleep",
        "sum",
    ]
    assert build_registry().get("http_request").queue == "io"
    with pytest.raises(UnknownTaskTypeError):
        build_registry().get("chatgpt")


def test_registry_instances_are_independent_and_reject_duplicates():
    from tests.unit.tasks_example import register_echo

    reg = TaskRegistry()
    register_echo(reg)
    assert reg.names() == ["echo"]
    with pytest.raises(ValueError):
        register_echo(reg)
    assert "echo" not in build_registry().names()


@pytest.mark.parametrize(("n", "expected"), [(1, 2), (2, 3), (6, 13), (100, 541), (10_000, 104_729)])
def test_nth_prime(n, expected):
    assert nth_prime(n) == expected


def test_prime_accepts_seed_input_alias():
    _, task = run("prime", {"input": 10})
    assert task.result == {"n": 10, "prime": 29}


def test_fibonacci_big_result_is_a_decimal_string():
    _, task = run("fibonacci", {"n": 101})
    assert task.result["fibonacci"] == "573147844013817084101"


def test_sum_both_forms():
    assert run("sum", {"a": 5, "b": 3})[1].result == {"operation": "sum", "result": 8, "a": 5, "b": 3}
    assert run("sum", {"numbers": [0.5, 0.25]})[1].result["result"] == 0.75
    with pytest.raises(InvalidParametersError):
        build_registry().get("sum").validate({"a": 1})


def test_range_sum_matches_seed_result():
    _, task = run("range_sum", {"n": 1_000_000})
    assert task.result["result"] == 499999500000 == sum(range(1_000_000))


def test_message_is_stored_and_listed():
    f, task = run("message", {"content": "Hello World"})
    assert task.status is TaskStatus.COMPLETED and task.result["content"] == "Hello World"
    messages, _ = f.messages.list("default", limit=10, cursor=None)
    assert [m.content for m in messages] == ["Hello World"]


def test_http_request_goes_through_the_http_port():
    f, task = run("http_request", {"url": "https://api.example.com/weather?city=London", "method": "GET"})
    assert task.status is TaskStatus.COMPLETED and task.result["status_code"] == 200
    assert task.result["json"] == {"ok": True}
    assert f.http.requests[0]["url"] == "https://api.example.com/weather?city=London"


def test_http_request_to_a_refused_address_fails_at_once():
    from taskrunner.adapters.egress import EgressPolicy, GuardedHttpClient

    f = make_fakes()
    f.services.worker._http = GuardedHttpClient(EgressPolicy())
    task = f.services.tasks.submit(
        "default", SubmitRequest("http_request", {"url": "http://169.254.169.254/latest/"})
    ).task
    f.services.worker.run(task.ref, timeout_hint=task.timeout_seconds)
    stored = f.repo.tasks[task.task_id]
    assert stored.status is TaskStatus.FAILED and stored.attempts == 1
    assert stored.error.type == "EgressDeniedError" and "metadata" in stored.error.message


def test_http_request_rejects_non_http_urls():
    with pytest.raises(InvalidParametersError) as exc:
        build_registry().get("http_request").validate({"url": "file:///etc/passwd"})
    assert exc.value.errors[0]["loc"][:3] == ["body", "parameters", "url"]


def test_sleep_reports_progress():
    _, task = run("sleep", {"seconds": 0.3})
    assert task.status is TaskStatus.COMPLETED and task.progress.percent == 100
    assert task.version >= 4  # claim, progress..., completion


def test_limits_are_enforced():
    reg = build_registry()
    for name, params in [
        ("sleep", {"seconds": 86_401}),  # over 24 h
        ("prime", {"n": 10**9}),
        ("fibonacci", {"n": -1}),
        ("message", {"content": ""}),
        ("sum", {"numbers": [1] * 20_000}),
    ]:
        with pytest.raises(InvalidParametersError):
            reg.get(name).validate(params)
