"""The local runner's declared exceptions and bundles (infra/local/exceptions.py, bundles.py)."""

from infra.local.bundles import bundle_spec, function_kinds
from infra.local.exceptions import applied, describe, local_exceptions
from infra.local.template import functions, load_template

FORBIDDEN = ("POWERTOOLS_TRACE_DISABLED", "POWERTOOLS_METRICS_DISABLED", "SIGNING_SECRET", "POWERTOOLS_LOG_LEVEL")


SHARED = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def _exceptions(user=None, credentials=SHARED):
    return local_exceptions(
        endpoint="http://127.0.0.1:4566",
        credentials=credentials,
        xray_address="127.0.0.1:2000",
        stream_port=9000,
        user=user,
    )


def test_with_iam_each_function_keeps_its_own_key_declared_once():
    """On the embedded endpoint the runner gives each function its own key (infra/local/iam/):
    the exception is declared and printed, but sets no shared key over it."""
    found = _exceptions(credentials=None)
    assert "AWS_ACCESS_KEY_ID" not in applied(found, "WorkerFunction")
    assert any("its own key" in line and "AWS_SESSION_TOKEN" in line for line in describe(found))
    assert applied(_exceptions(), "WorkerFunction")["AWS_ACCESS_KEY_ID"] == "testing"


def test_every_exception_says_why_and_none_switches_off_what_runs_on_aws():
    found = _exceptions()
    assert all(e.why.strip() for e in found)
    assert not {e.variable for e in found} & set(FORBIDDEN)
    names = [(e.variable, e.functions) for e in found]
    assert len(names) == len(set(names))


def test_user_overrides_are_exceptions_too_and_win():
    env = applied(_exceptions({"RETRY_BASE_SECONDS": "7"}), "WorkerFunction")
    assert env["RETRY_BASE_SECONDS"] == "7"
    assert "PORT" not in env and "STREAM_URL" not in env


def test_every_function_has_a_bundle_kind_with_pinned_sdk():
    kinds = function_kinds()
    assert set(functions(load_template())) == set(kinds)
    for kind in set(kinds.values()):
        sdk, extras, key = bundle_spec(kind)
        assert any(p.startswith("boto3==") for p in sdk) and any(p.startswith("aws-xray-sdk==") for p in extras)
        assert len(key) == 16


def test_the_embedded_endpoints_emulations_are_declared_and_set_no_variable():
    found = local_exceptions(
        endpoint="http://127.0.0.1:4566", credentials=None, xray_address="a", stream_port=None, embedded=True
    )
    lines = describe(found)
    assert any(line.startswith("TimeToLiveSpecification: ") and "[embedded endpoint]" in line for line in lines)
    assert "TimeToLiveSpecification" not in applied(found, "WorkerFunction")
    assert not any(e.kind == "emulation" for e in _exceptions())
