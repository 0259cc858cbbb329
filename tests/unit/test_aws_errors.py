"""The adapters' one translation of AWS SDK errors: a dependency unavailable, or, for a code the
caller expects, Refused with the service's answer."""

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from taskrunner.adapters.aws import CONDITION_FAILED, Refused, translated
from taskrunner.domain.errors import DependencyUnavailableError


def client_error(code: str, **extra):
    return ClientError({"Error": {"Code": code, "Message": "no"}, **extra}, "UpdateItem")


def test_an_sdk_error_is_a_dependency_unavailable():
    with pytest.raises(DependencyUnavailableError, match="DynamoDB"), translated("DynamoDB"):
        raise client_error("ProvisionedThroughputExceededException")
    with pytest.raises(DependencyUnavailableError, match="SQS"), translated("SQS"):
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")


def test_an_expected_code_is_refused_with_the_answer():
    with pytest.raises(Refused) as caught, translated("DynamoDB", expected={CONDITION_FAILED}):
        raise client_error(CONDITION_FAILED, Item={"task_id": {"S": "t-1"}})
    assert caught.value.code == CONDITION_FAILED
    assert caught.value.response["Item"] == {"task_id": {"S": "t-1"}}
    assert isinstance(caught.value.error, ClientError)


def test_an_expected_code_of_another_call_is_still_unavailable():
    with pytest.raises(DependencyUnavailableError), translated("DynamoDB", expected={CONDITION_FAILED}):
        raise client_error("InternalServerError")


def test_other_errors_pass_through():
    with pytest.raises(KeyError), translated("DynamoDB"):
        raise KeyError("x")
