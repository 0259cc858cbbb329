"""Property-based: whatever JSON-ish value a client submits (lone surrogates, NaN, ±Infinity,
huge integers, deep nesting), the API either refuses it with a 4xx naming the field, or
accepts it and can then serve it everywhere: /state, the list, the SSE stream, the callback.
Through the real FastAPI app with in-memory fakes; bounded examples."""

import json

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict
from taskrunner.domain import jsonsafe
from taskrunner.domain.models import TaskStatus
from taskrunner.entrypoints.api import create_app
from taskrunner.entrypoints.sse import format_event
from taskrunner.tasks.registry import build_registry

from tests.support.fakes import make_fakes


class EchoParameters(BaseModel):
    model_config = ConfigDict(extra="allow")


def echo(params, ctx):
    return params.model_extra


def fresh():
    registry = build_registry()
    registry.register("echo", echo, EchoParameters, description="returns its parameters")
    return make_fakes(registry=registry)


CURRENT = {"fakes": fresh()}
CLIENT = TestClient(create_app(lambda: CURRENT["fakes"].services), raise_server_exceptions=False)
PROPS = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))

# Any code point, lone surrogates included (hypothesis leaves them out unless asked).
text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=8),
    st.sampled_from(["\ud800", "a\udfff", "\udbff\udc00x", "ok"]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**14100), max_value=2**14100),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    text,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=12,
)


def nest(value, levels, key):
    for i in range(levels):
        value = {key: value} if i % 2 else [value]
    return value


deep_values = st.builds(nest, values, st.integers(min_value=0, max_value=45), text)
objects = st.dictionaries(text, st.one_of(values, deep_values), max_size=4)


def wire(body):
    """The body as a client can send it: lone surrogates as \\u escapes, NaN/Infinity literals."""
    return json.dumps(body)


def strict_json(raw):
    return json.loads(raw, parse_constant=lambda name: (_ for _ in ()).throw(AssertionError(f"{name} in JSON")))


def check_served_everywhere(task_id, field, value):
    """``value``: what the client sent as the server decoded it, or None to compare with
    what was stored (a task type normalises its parameters)."""
    f = CURRENT["fakes"]
    if value is None:
        value = getattr(f.repo.tasks[task_id], field)
    state = CLIENT.get(f"/api/tasks/{task_id}/state")
    assert state.status_code == 200, state.text[:300]
    assert strict_json(state.content)[field] == value
    listing = CLIENT.get("/api/tasks")
    assert listing.status_code == 200, listing.text[:300]
    assert task_id in [t["task_id"] for t in strict_json(listing.content)["tasks"]]
    event = format_event(f.repo.tasks[task_id])
    assert event.startswith("id: ") and "\ndata: " in event
    strict_json(event.split("\ndata: ", 1)[1].encode("utf-8"))
    json.dumps(f.repo.tasks[task_id].callback_payload(), allow_nan=False).encode("utf-8")


def check_refusal(response, field):
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    detail = strict_json(response.content)["detail"]
    if response.status_code == 413:
        assert field in detail  # "parameters are larger than ..."
        return
    assert response.status_code == 422
    assert any(p["loc"][:2] == ["body", field] and p["msg"] for p in detail), detail


@PROPS
@given(metadata=objects)
def test_metadata_is_refused_with_its_field_or_served_everywhere(metadata):
    CURRENT["fakes"] = fresh()
    response = CLIENT.post(
        "/api/tasks",
        content=wire({"name": "sum", "parameters": {"a": 1, "b": 2}, "metadata": metadata}),
        headers={"content-type": "application/json", "Idempotency-Key": "k"},
    )
    if response.status_code == 202:
        received = json.loads(wire(metadata))  # as the server decodes it (surrogate pairs joined)
        assert jsonsafe.is_safe(received)
        check_served_everywhere(response.json()["task_id"], "metadata", received)
    else:
        check_refusal(response, "metadata")
        assert CURRENT["fakes"].repo.tasks == {}


@PROPS
@given(parameters=objects)
def test_parameters_are_refused_with_their_field_or_run_and_served_everywhere(parameters):
    CURRENT["fakes"] = fresh()
    f = CURRENT["fakes"]
    response = CLIENT.post(
        "/api/tasks",
        content=wire({"name": "echo", "parameters": parameters}),
        headers={"content-type": "application/json"},
    )
    if response.status_code != 202:
        check_refusal(response, "parameters")
        assert f.repo.tasks == {}
        return
    assert jsonsafe.is_safe(json.loads(wire(parameters)))
    task_id = response.json()["task_id"]
    check_served_everywhere(task_id, "parameters", None)
    task = f.repo.tasks[task_id]
    f.services.worker.run(task.ref, remaining_seconds=900, timeout_hint=60)
    done = f.repo.tasks[task_id]
    assert done.status in (TaskStatus.COMPLETED, TaskStatus.FAILED)
    if done.status is TaskStatus.FAILED:
        assert done.error is not None and done.error.type in ("InvalidResultError", "ResultTooLargeError")
    check_served_everywhere(task_id, "result", None)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=st.one_of(values, deep_values))
def test_a_task_result_is_stored_valid_or_the_task_fails_clearly(value):
    registry = build_registry()
    registry.register("returns", lambda params, ctx: value, EchoParameters, description="returns a value")
    CURRENT["fakes"] = f = make_fakes(registry=registry)
    response = CLIENT.post("/api/tasks", json={"name": "returns"})
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    f.services.worker.run(f.repo.tasks[task_id].ref, remaining_seconds=900, timeout_hint=60)
    done = f.repo.tasks[task_id]
    if done.status is TaskStatus.COMPLETED:
        assert jsonsafe.is_safe(done.result)
    else:
        assert done.status is TaskStatus.FAILED and done.error.type == "InvalidResultError"
        assert done.result is None
    check_served_everywhere(task_id, "result", None)
