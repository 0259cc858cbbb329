"""Everything stored is valid, bounded JSON; reads survive an item that is not."""

import json
import math
import sys

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from taskrunner.adapters.dynamodb_codec import item_to_task, task_to_item
from taskrunner.adapters.dynamodb_tasks import DynamoDbTaskRepository
from taskrunner.domain.errors import InvalidParametersError
from taskrunner.domain.models import TaskStatus
from taskrunner.domain.service import SubmitRequest
from taskrunner.entrypoints.api import create_app
from taskrunner.entrypoints.sse import format_event
from taskrunner.tasks.fibonacci import fib
from taskrunner.tasks.registry import build_registry

from infra import keys
from tests.support.fakes import make_fakes
from tests.unit.factories import a_task


def deep(levels, leaf=1):
    value = leaf
    for _ in range(levels):
        value = {"a": value}
    return value


def app_client(f):
    return TestClient(create_app(lambda: f.services), raise_server_exceptions=False)


def post_raw(client, body, **headers):
    # json.dumps writes lone surrogates as \ud800 escapes and NaN/Infinity as literals:
    # what a client can send on the wire.
    return client.post("/api/tasks", content=body, headers={"content-type": "application/json", **headers})


SUM = {"name": "sum", "parameters": {"a": 1, "b": 2}}


@pytest.mark.parametrize(
    ("body", "field", "kind"),
    [
        ({**SUM, "metadata": {"k": "v\ud800"}}, "metadata", "lone_surrogate"),
        ({**SUM, "metadata": {"\udc00": "v"}}, "metadata", "lone_surrogate"),
        ({**SUM, "metadata": {"l": ["ok", {"x": "\ud800"}]}}, "metadata", "lone_surrogate"),
        ({**SUM, "metadata": deep(300)}, "metadata", "too_deep"),
        ({**SUM, "metadata": deep(33)}, "metadata", "too_deep"),
        ({**SUM, "metadata": {"x": float("nan")}}, "metadata", "non_finite"),
        ({**SUM, "metadata": {"x": float("inf")}}, "metadata", "non_finite"),
        ({"name": "sum", "parameters": {"a": float("nan"), "b": 1}}, "parameters", "non_finite"),
        ({"name": "sum", "parameters": {"a": 1, "b": -math.inf}}, "parameters", "non_finite"),
        ({"name": "sleep", "parameters": {"seconds": 1, "x": "\ud800"}}, "parameters", "lone_surrogate"),
        ({"name": "echo", "parameters": deep(40)}, "parameters", "too_deep"),
    ],
)
def test_poisoned_submit_is_refused_with_its_field_and_stores_nothing(body, field, kind):
    f = make_fakes()
    response = post_raw(app_client(f), json.dumps(body))
    assert response.status_code == 422, response.text
    problem = response.json()["detail"][0]
    assert problem["loc"][:2] == ["body", field] and problem["type"] == kind
    assert problem["msg"].startswith(field)
    assert f.repo.tasks == {} and f.queue.sent == []


def test_nesting_up_to_the_limit_is_accepted_and_readable():
    f = make_fakes()
    client = app_client(f)
    response = post_raw(client, json.dumps({**SUM, "metadata": deep(32)}))
    assert response.status_code == 202
    state = client.get(response.json()["links"]["state"])
    assert state.status_code == 200 and state.json()["metadata"] == deep(32)


def test_deep_metadata_with_idempotency_key_is_a_422_not_a_500():
    f = make_fakes()
    body = '{"name":"sum","parameters":{"a":1,"b":2},"metadata":' + '{"a":' * 500 + "1" + "}" * 500 + "}"
    assert len(body) < 4096
    response = post_raw(app_client(f), body, **{"Idempotency-Key": "k-1"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "metadata"]
    assert f.repo.tasks == {} and f.repo.idempotency == {}


def test_service_checks_before_hashing_with_the_full_location():
    f = make_fakes()
    request = SubmitRequest(name="sum", parameters={"a": 1, "b": 2}, metadata={"x": [0, deep(600)]})
    with pytest.raises(InvalidParametersError) as caught:
        f.services.tasks.submit("default", request, idempotency_key="k")
    problem = caught.value.errors[0]
    assert problem["loc"][:4] == ["body", "metadata", "x", 1] and problem["type"] == "too_deep"
    assert f.repo.tasks == {} and f.repo.idempotency == {}


# -- results ---------------------------------------------------------------------------------


class Anything(BaseModel):
    pass


def registry_returning(value):
    registry = build_registry()
    registry.register("returns", lambda params, ctx: value, Anything, description="returns a fixed value")
    return registry


@pytest.mark.parametrize(
    "value",
    [float("nan"), {"x": math.inf}, {"s": "v\ud800"}, {"\ud800": 1}, deep(40), [deep(500)], 10**5000],
    ids=["nan", "inf", "surrogate", "surrogate-key", "deep", "very-deep", "huge-int"],
)
def test_a_poisoned_result_fails_the_task_instead_of_being_stored(value):
    f = make_fakes(registry=registry_returning(value))
    task = f.services.tasks.submit("default", SubmitRequest(name="returns", parameters={})).task
    f.services.worker.run(task.ref, remaining_seconds=900, timeout_hint=60)
    stored = f.repo.tasks[task.task_id]
    assert stored.status is TaskStatus.FAILED and stored.attempts == 1
    assert stored.error.type == "InvalidResultError" and "not valid, bounded JSON" in stored.error.message
    assert stored.result is None
    client = app_client(f)
    assert client.get(f"/api/tasks/{task.task_id}/state").status_code == 200
    assert client.get("/api/tasks").status_code == 200


def test_sum_overflow_fails_clearly_instead_of_returning_infinity():
    f = make_fakes()
    task = f.services.tasks.submit("default", SubmitRequest(name="sum", parameters={"a": 1e308, "b": 1e308})).task
    f.services.worker.run(task.ref, remaining_seconds=900, timeout_hint=60)
    stored = f.repo.tasks[task.task_id]
    assert stored.status is TaskStatus.FAILED and stored.attempts == 1
    assert stored.error.type == "SumOverflowError" and "64-bit float" in stored.error.message
    json.loads(format_event(stored).split("data: ", 1)[1], parse_constant=pytest.fail)


def test_sum_refuses_non_finite_numbers_given_as_strings():
    f = make_fakes()
    with pytest.raises(InvalidParametersError) as caught:
        f.services.tasks.submit("default", SubmitRequest(name="sum", parameters={"numbers": [1, "inf"]}))
    assert caught.value.errors[0]["loc"][:3] == ["body", "parameters", "numbers"]


# -- defensive reads ----------------------------------------------------------------------------

OLD_BAD = {"nan": {"x": math.nan}, "surrogate": {"k\ud800": "v\udfff"}, "deep": deep(300)}


@pytest.mark.parametrize("bad", list(OLD_BAD), ids=list(OLD_BAD))
def test_one_bad_stored_task_never_breaks_state_list_or_stream(bad):
    f = make_fakes()
    f.repo.create(a_task(task_id="good", created_at="2026-11-19T09:00:01.000Z"))
    f.repo.create(
        a_task(
            task_id="bad",
            status=TaskStatus.COMPLETED,
            metadata=OLD_BAD[bad],
            result=OLD_BAD[bad],
            progress=a_task().progress.__class__(math.nan, "m\ud800"),
        )
    )
    client = app_client(f)
    state = client.get("/api/tasks/bad/state")
    assert state.status_code == 200
    assert state.json()["metadata"]["unreadable"] is True and state.json()["metadata"]["field"] == "metadata"
    assert state.json()["result"]["unreadable"] is True
    listing = client.get("/api/tasks")
    assert listing.status_code == 200 and [t["task_id"] for t in listing.json()["tasks"]] == ["good", "bad"]
    event = format_event(f.repo.tasks["bad"])
    json.loads(event.split("data: ", 1)[1], parse_constant=pytest.fail)
    event.encode("utf-8")


def test_dynamodb_items_written_by_an_older_version_decode_with_a_marker():
    item = task_to_item(a_task())
    item["metadata"] = {"S": '{"x":NaN}'}
    item["parameters"] = {"S": '{"a":"\\ud800"}'}
    item["result"] = {"S": "[" * 5000 + "]" * 5000}
    item["progress"] = {"S": "not json"}
    task = item_to_task(item)
    assert task.metadata["unreadable"] is True and "NaN" in task.metadata["reason"]
    assert task.parameters["unreadable"] is True and "surrogate" in task.parameters["reason"]
    assert task.result["unreadable"] is True
    json.dumps(task.to_public(), allow_nan=False).encode("utf-8")


# -- idempotency keys and owners ----------------------------------------------------------------


def test_idempotency_item_ids_cannot_collide_across_owners():
    idem = DynamoDbTaskRepository._idem_id
    assert idem("dev#x", "y") != idem("dev", "x#y")
    assert idem("a", "b#c") != idem("a#b", "c")


@pytest.mark.parametrize("owner", ["dev#x", "Alice", "", "a b", "x" * 65, "é", "a/b", "dev\n"])
def test_key_creation_refuses_owner_names_outside_the_safe_alphabet(owner):
    store = {}

    class Store:
        def get(self, key_hash):
            return store.get(key_hash)

        def put(self, record):
            store[record.key_hash] = record

    with pytest.raises(keys.InvalidOwnerError, match=r"a-z, 0-9"):
        keys.create_key(Store(), owner, "n")
    assert store == {}


def test_keys_cli_refuses_a_bad_owner_before_touching_any_table(capsys, monkeypatch):
    monkeypatch.setattr(keys, "_target", lambda args: pytest.fail("must not reach the table"))
    with pytest.raises(SystemExit) as exit_:
        keys.main(["create", "--owner", "dev#x"])
    assert exit_.value.code == 2 and "invalid owner 'dev#x'" in capsys.readouterr().err


@pytest.mark.parametrize("owner", ["alice", "team-data_2", "a" * 64, "0"])
def test_safe_owner_names_are_accepted(owner):
    assert keys.check_owner(owner) == owner


# -- fibonacci -----------------------------------------------------------------------------------


def test_fibonacci_at_the_top_of_its_documented_range():
    f = make_fakes()
    task = f.services.tasks.submit("default", SubmitRequest(name="fibonacci", parameters={"n": 100_000})).task
    f.services.worker.run(task.ref, remaining_seconds=900, timeout_hint=60)
    stored = f.repo.tasks[task.task_id]
    assert stored.status is TaskStatus.COMPLETED, stored.error
    text = stored.result["fibonacci"]
    assert stored.result["digits"] == len(text) == 20899
    value = fib(100_000)
    assert int(text[-1000:]) == value % 10**1000
    assert int(text[:1000]) == value // 10 ** (len(text) - 1000)


@pytest.mark.parametrize(
    "value",
    [0, 7, -12, 10**3999, 10**4000, 10**4000 - 1, -(10**8001) + 3, fib(30_000)],
    ids=["0", "7", "-12", "1e3999", "1e4000", "1e4000-1", "-1e8001+3", "F30000"],
)
def test_decimal_matches_str(value):
    from taskrunner.tasks.fibonacci import decimal

    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        expected = str(value)
    finally:
        sys.set_int_max_str_digits(before)
    assert decimal(value) == expected


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "s\ud800", "parameters": {}}, "name"),
        ({**SUM, "callback_url": "https://example.com/\udfff"}, "callback_url"),
    ],
)
def test_lone_surrogates_in_the_other_string_fields_are_refused_too(body, field):
    f = make_fakes()
    response = post_raw(app_client(f), json.dumps(body))
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", field]
    assert f.repo.tasks == {}
