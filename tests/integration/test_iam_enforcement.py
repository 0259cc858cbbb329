"""The embedded endpoint with IAM enforcement: a function's credentials get what its role in
template.yaml grants and AWS's access denied errors for the rest (through boto3, as the
functions see them); the runner's own key is unrestricted."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from infra.local import iam
from infra.local.procs import free_port, wait_for_port
from infra.local.provision import provision
from infra.local.template import ROOT, Resolver, evaluate_conditions, functions, load_template, parameter_defaults

ADMIN = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})


class Endpoint:
    def __init__(self, url: str, physical: dict[str, dict[str, str]], calls_log: Path) -> None:
        self.url = url
        self.physical = physical
        self.calls_log = calls_log

    def client(self, service: str, function: str | None = None) -> Any:
        if function is None:
            creds = ADMIN
        else:
            env = iam.function_credentials(function)
            creds = {
                "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
                "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
                "aws_session_token": env["AWS_SESSION_TOKEN"],
                "region_name": "us-east-1",
            }
        return boto3.session.Session(**creds).client(service, endpoint_url=self.url, config=NO_RETRIES)

    def ref(self, logical: str) -> str:
        return self.physical[logical]["Ref"]


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory) -> Iterator[Endpoint]:
    tmp = tmp_path_factory.mktemp("iam")
    policy_path = tmp / "policy.json"
    port = free_port()
    with (tmp / "moto.err").open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "infra.local.moto_server", "-p", str(port), "--iam-policy", str(policy_path)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        assert wait_for_port("127.0.0.1", port, 20), "the embedded endpoint did not start"
        url = f"http://127.0.0.1:{port}"
        template = load_template()
        resolver = Resolver(parameters=parameter_defaults(template), physical={})
        resolver.conditions = evaluate_conditions(template, resolver)
        provision(template, resolver, boto3.session.Session(**ADMIN), url, prefix="iam")
        calls_log = tmp / "calls.jsonl"
        iam.write_policy_file(policy_path, iam.policy_file(template, resolver, calls_log=calls_log, prefix="iam"))
        yield Endpoint(url, resolver.physical, calls_log)
    finally:
        proc.terminate()
        proc.wait(10)


def error_of(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value.response


def test_dynamodb_grant_and_denial(endpoint):
    ddb = endpoint.client("dynamodb", "ApiFunction")
    table = endpoint.ref("TasksTable")
    ddb.put_item(TableName=table, Item={"task_id": {"S": "t1"}})
    assert ddb.get_item(TableName=table, Key={"task_id": {"S": "t1"}})["Item"]["task_id"] == {"S": "t1"}

    answer = error_of(ddb.delete_item, TableName=table, Key={"task_id": {"S": "t1"}})
    assert answer["Error"]["Code"] == "AccessDeniedException"
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 400
    arn = endpoint.physical["TasksTable"]["Arn"]
    assert answer["Error"]["Message"] == (
        "User: arn:aws:sts::123456789012:assumed-role/ApiFunctionRole/ApiFunction is not authorized to perform: "
        f"dynamodb:DeleteItem on resource: {arn} because no identity-based policy allows the dynamodb:DeleteItem action"
    )
    # the denied call never reached the table
    admin = endpoint.client("dynamodb")
    assert "Item" in admin.get_item(TableName=table, Key={"task_id": {"S": "t1"}})


def test_query_is_checked_against_the_index(endpoint):
    ddb = endpoint.client("dynamodb", "ApiFunction")
    table = endpoint.ref("TasksTable")
    ddb.query(
        TableName=table,
        IndexName="by-owner-active",
        KeyConditionExpression="#o = :o",
        ExpressionAttributeNames={"#o": "active_pk"},
        ExpressionAttributeValues={":o": {"S": "x#00"}},
    )
    answer = error_of(
        ddb.query,
        TableName=table,
        IndexName="by-due",
        KeyConditionExpression="sweep_pk = :p",
        ExpressionAttributeValues={":p": {"S": "x"}},
    )
    assert answer["Error"]["Code"] == "AccessDeniedException"
    assert f"{endpoint.physical['TasksTable']['Arn']}/index/by-due" in answer["Error"]["Message"]


def test_batch_get_is_granted_to_the_listing_and_reconciling_functions_only(endpoint):
    table = endpoint.ref("TasksTable")
    request = {table: {"Keys": [{"task_id": {"S": "t1"}}]}}
    for function in ("ApiFunction", "ReconcilerFunction"):
        endpoint.client("dynamodb", function).batch_get_item(RequestItems=request)
    answer = error_of(endpoint.client("dynamodb", "WorkerFunction").batch_get_item, RequestItems=request)
    assert answer["Error"]["Code"] == "AccessDeniedException"


def test_transactions_need_each_items_action(endpoint):
    ddb = endpoint.client("dynamodb", "WorkerFunction")
    answer = error_of(
        ddb.transact_write_items,
        TransactItems=[
            {
                "Update": {
                    "TableName": endpoint.ref("TasksTable"),
                    "Key": {"task_id": {"S": "t2"}},
                    "UpdateExpression": "SET a = :a",
                    "ExpressionAttributeValues": {":a": {"S": "b"}},
                }
            },
            {"Put": {"TableName": endpoint.ref("TasksTable"), "Item": {"task_id": {"S": "t3"}}}},
        ],
    )
    assert answer["Error"]["Code"] == "AccessDeniedException"
    assert "dynamodb:PutItem" in answer["Error"]["Message"]


def test_sqs_json_protocol_grant_and_denial(endpoint):
    sqs = endpoint.client("sqs", "ApiFunction")
    sqs.send_message(QueueUrl=endpoint.ref("TasksQueue"), MessageBody="{}")
    answer = error_of(sqs.send_message, QueueUrl=endpoint.ref("TasksDLQ"), MessageBody="{}")
    assert answer["Error"]["Code"] == "AccessDenied"
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert f"sqs:sendmessage on resource: {endpoint.physical['TasksDLQ']['Arn']}" in answer["Error"]["Message"]
    # a batch is authorised as its single-message action
    answer = error_of(
        sqs.send_message_batch, QueueUrl=endpoint.ref("TasksDLQ"), Entries=[{"Id": "1", "MessageBody": "{}"}]
    )
    assert answer["Error"]["Code"] == "AccessDenied"


def test_event_source_mapping_calls_use_the_functions_role(endpoint):
    """ReceiveMessage and DeleteMessageBatch come from AWSLambdaSQSQueueExecutionRole."""
    sqs = endpoint.client("sqs", "WorkerFunction")
    url = endpoint.ref("IoTasksQueue")
    endpoint.client("sqs").send_message(QueueUrl=url, MessageBody="{}")
    messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"], VisibilityTimeout=0)
    done = sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": "1", "ReceiptHandle": messages[0]["ReceiptHandle"]}])
    assert not done.get("Failed")
    answer = error_of(
        endpoint.client("sqs", "ApiFunction").change_message_visibility,
        QueueUrl=url,
        ReceiptHandle=messages[0]["ReceiptHandle"],
        VisibilityTimeout=0,
    )
    assert answer["Error"]["Code"] == "AccessDenied"


def test_sqs_query_protocol_denial(endpoint):
    """Older SDKs speak SQS's query protocol: the same decision, in its XML answer."""
    import httpx
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    env = iam.function_credentials("ApiFunction")
    creds = Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"])
    body = f"Action=SendMessage&QueueUrl={endpoint.ref('CallbacksDLQ')}&MessageBody=x&Version=2012-11-05"
    request = AWSRequest(
        "POST", endpoint.url + "/", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    SigV4Auth(creds, "sqs", "us-east-1").add_auth(request)
    answer = httpx.post(endpoint.url + "/", content=body, headers=dict(request.headers.items()))
    assert answer.status_code == 403
    assert "<Code>AccessDenied</Code>" in answer.text
    assert "sqs:sendmessage" in answer.text


def test_secrets_manager_denial(endpoint):
    secrets = endpoint.client("secretsmanager", "WorkerFunction")
    answer = error_of(secrets.get_secret_value, SecretId="iam-SigningSecret")
    assert answer["Error"]["Code"] == "AccessDeniedException"
    assert ":secret:iam-SigningSecret-" in answer["Error"]["Message"]


def test_the_runners_own_key_is_unrestricted_and_calls_are_logged(endpoint):
    admin = endpoint.client("dynamodb")
    admin.delete_item(TableName=endpoint.ref("MessagesTable"), Key={"owner": {"S": "o"}, "message_id": {"S": "m"}})
    calls = iam.read_calls(endpoint.calls_log)
    assert calls, "no call was logged"
    assert {c["function"] for c in calls} <= set(functions(load_template()))
    denied = [c for c in calls if not c["allowed"]]
    assert any(c["action"] == "dynamodb:DeleteItem" and c["function"] == "ApiFunction" for c in denied)
    granted = [c for c in calls if c["allowed"] and c["action"] == "dynamodb:PutItem"]
    assert granted and granted[0]["by"].startswith("ApiFunctionRolePolicy0#0 on arn:aws:dynamodb:")


def test_the_api_role_reads_every_queue_depth_for_api_metrics(endpoint):
    """GET /api/metrics (MetricsEndpointEnabled) reads each queue's attributes with the API's role."""
    from prometheus_client import CollectorRegistry, generate_latest
    from taskrunner.adapters.prometheus_queues import QueueDepths

    queues = ["TasksQueue", "IoTasksQueue", "PriorityTasksQueue", "CallbacksQueue", "TasksDLQ", "CallbacksDLQ"]
    sqs = endpoint.client("sqs", "ApiFunction")
    for logical in queues:  # each granted (a denial raises)
        sqs.get_queue_attributes(QueueUrl=endpoint.ref(logical), AttributeNames=["ApproximateNumberOfMessages"])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueDepths(sqs, {logical: endpoint.ref(logical) for logical in queues}))
    text = generate_latest(registry).decode()
    assert all(f'taskrunner_queue_messages_visible{{queue="{logical}"}}' in text for logical in queues)
    # the depth, not the messages: receiving stays denied
    answer = error_of(sqs.receive_message, QueueUrl=endpoint.ref("TasksDLQ"))
    assert answer["Error"]["Code"] in ("AccessDenied", "AccessDeniedException")
