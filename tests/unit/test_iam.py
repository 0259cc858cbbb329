"""Local IAM (infra/local/iam/): policy evaluation, request classification, and the roles
template.yaml gives each function, expanded as SAM expands them."""

from __future__ import annotations

import io
import json
import os

import pytest

from infra.local import iam
from infra.local.template import Resolver, evaluate_conditions, load_template, parameter_defaults

ACCOUNT = "123456789012"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/p-TasksTable"
AUTH = "AWS4-HMAC-SHA256 Credential={key}/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=x"


def arn(logical: str) -> str:
    if logical.endswith("Table"):
        return f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/p-{logical}"
    return f"arn:aws:sqs:us-east-1:{ACCOUNT}:p-{logical}"


# ------------------------------------------------------------------------------ evaluation
def test_allow_with_wildcards_and_case_insensitive_actions():
    policy = iam.Policy(
        [
            {"Source": "a", "Effect": "Allow", "Action": ["dynamodb:Get*"], "Resource": [f"{TABLE}*"]},
            {"Source": "b", "Effect": "Allow", "Action": "sqs:?endMessage", "Resource": "arn:aws:sqs:*:*:p-*"},
        ]
    )
    assert policy.evaluate("DynamoDB:getitem", TABLE).allowed
    assert policy.evaluate("dynamodb:GetItem", f"{TABLE}/index/by-owner").allowed
    assert policy.evaluate("sqs:SendMessage", arn("TasksQueue")).by == "b on arn:aws:sqs:*:*:p-*"
    assert not policy.evaluate("dynamodb:PutItem", TABLE).allowed
    assert not policy.evaluate("sqs:SendMessageX", arn("TasksQueue")).allowed  # ? is one character
    # resources are case-sensitive
    assert not policy.evaluate("dynamodb:GetItem", TABLE.replace("TasksTable", "taskstable")).allowed


def test_explicit_deny_wins_over_any_allow():
    policy = iam.Policy(
        [
            {"Source": "all", "Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Source": "no-delete", "Effect": "Deny", "Action": "dynamodb:Delete*", "Resource": TABLE},
        ]
    )
    denied = policy.evaluate("dynamodb:DeleteItem", TABLE)
    assert not denied.allowed and denied.explicit_deny and denied.by.startswith("no-delete")
    assert policy.evaluate("dynamodb:DeleteItem", arn("MessagesTable")).allowed


def test_not_action_and_not_resource():
    policy = iam.Policy(
        [
            {"Source": "n", "Effect": "Allow", "NotAction": ["dynamodb:Delete*", "sqs:*"], "Resource": "*"},
            {"Source": "r", "Effect": "Allow", "Action": "sqs:SendMessage", "NotResource": arn("TasksDLQ")},
        ]
    )
    assert policy.evaluate("dynamodb:PutItem", TABLE).allowed
    assert not policy.evaluate("dynamodb:DeleteItem", TABLE).allowed
    assert policy.evaluate("sqs:SendMessage", arn("TasksQueue")).allowed
    assert not policy.evaluate("sqs:SendMessage", arn("TasksDLQ")).allowed


def test_implicit_deny_and_statements_that_name_no_resource():
    assert not iam.Policy([]).evaluate("dynamodb:GetItem", TABLE).allowed
    assert not iam.Policy([{"Effect": "Allow", "Action": "*"}]).evaluate("dynamodb:GetItem", TABLE).allowed


def test_a_condition_is_not_evaluated_and_says_so():
    policy = iam.Policy(
        [
            {
                "Source": "c",
                "Effect": "Allow",
                "Action": "dynamodb:GetItem",
                "Resource": TABLE,
                "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1"}},
            }
        ]
    )
    decision = policy.evaluate("dynamodb:GetItem", TABLE)
    assert not decision.allowed
    assert "Condition" in decision.note and "c" in decision.note


# ------------------------------------------------------------------------------ classification
def classify(service: str, target: str, body: dict | str, key: str = "AKID", **kw):
    headers = {"authorization": AUTH.format(key=key, service=service), "x-amz-target": target}
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    if isinstance(body, str):
        headers = {
            "authorization": headers["authorization"],
            "content-type": "application/x-www-form-urlencoded; charset=utf-8",
        }
    call = iam.classify(headers, raw, **kw)
    assert call is not None and call.access_key_id == key
    return call


def test_unsigned_requests_are_not_calls():
    assert iam.classify({}, b"{}") is None
    assert iam.access_key_of("AWS4-HMAC-SHA256 Credential=ASIAX/20260101/us-east-1/sqs/aws4_request") == "ASIAX"
    assert iam.access_key_of("") == ""


@pytest.mark.parametrize(
    ("operation", "body", "checks"),
    [
        ("PutItem", {"TableName": "p-TasksTable"}, [("dynamodb:PutItem", TABLE)]),
        ("Query", {"TableName": "p-TasksTable"}, [("dynamodb:Query", TABLE)]),
        (
            "Query",
            {"TableName": "p-TasksTable", "IndexName": "by-due"},
            [("dynamodb:Query", f"{TABLE}/index/by-due")],
        ),
        ("Scan", {"TableName": TABLE, "IndexName": "i"}, [("dynamodb:Scan", f"{TABLE}/index/i")]),
        ("ListTables", {}, [("dynamodb:ListTables", "*")]),
        (
            "BatchWriteItem",
            {"RequestItems": {"p-TasksTable": [], "p-MessagesTable": []}},
            [("dynamodb:BatchWriteItem", TABLE), ("dynamodb:BatchWriteItem", arn("MessagesTable"))],
        ),
        ("BatchGetItem", {"RequestItems": {"p-TasksTable": {}}}, [("dynamodb:BatchGetItem", TABLE)]),
        (
            "TransactWriteItems",
            {
                "TransactItems": [
                    {"Put": {"TableName": "p-TasksTable"}},
                    {"Update": {"TableName": "p-TasksTable"}},
                    {"Delete": {"TableName": "p-MessagesTable"}},
                    {"ConditionCheck": {"TableName": "p-TasksTable"}},
                    {"Put": {"TableName": "p-TasksTable"}},
                ]
            },
            [
                ("dynamodb:PutItem", TABLE),
                ("dynamodb:UpdateItem", TABLE),
                ("dynamodb:DeleteItem", arn("MessagesTable")),
                ("dynamodb:ConditionCheckItem", TABLE),
            ],
        ),
        (
            "TransactGetItems",
            {"TransactItems": [{"Get": {"TableName": "p-TasksTable"}}]},
            [("dynamodb:GetItem", TABLE)],
        ),
    ],
)
def test_dynamodb_operations(operation, body, checks):
    call = classify("dynamodb", f"DynamoDB_20120810.{operation}", body)
    assert (call.service, call.operation, call.protocol) == ("dynamodb", operation, "json")
    assert call.checks == checks


QUEUE_URL = f"http://127.0.0.1:4566/{ACCOUNT}/p-TasksQueue"


@pytest.mark.parametrize(
    ("operation", "action"),
    [
        ("SendMessage", "sqs:SendMessage"),
        ("SendMessageBatch", "sqs:SendMessage"),
        ("DeleteMessageBatch", "sqs:DeleteMessage"),
        ("ChangeMessageVisibilityBatch", "sqs:ChangeMessageVisibility"),
        ("ReceiveMessage", "sqs:ReceiveMessage"),
        ("GetQueueAttributes", "sqs:GetQueueAttributes"),
    ],
)
def test_sqs_json_protocol(operation, action):
    call = classify("sqs", f"AmazonSQS.{operation}", {"QueueUrl": QUEUE_URL})
    assert (call.service, call.protocol) == ("sqs", "json")
    assert call.checks == [(action, arn("TasksQueue"))]


def test_sqs_queue_by_name_and_query_protocol():
    assert classify("sqs", "AmazonSQS.GetQueueUrl", {"QueueName": "p-TasksDLQ"}).checks == [
        ("sqs:GetQueueUrl", arn("TasksDLQ"))
    ]
    call = classify("sqs", "", f"Action=SendMessageBatch&QueueUrl={QUEUE_URL}&Version=2012-11-05")
    assert (call.protocol, call.operation) == ("query", "SendMessageBatch")
    assert call.checks == [("sqs:SendMessage", arn("TasksQueue"))]
    # the old path style: POST /<account>/<queue>
    call = classify("sqs", "", "Action=DeleteMessage&ReceiptHandle=r", path=f"/{ACCOUNT}/p-TasksQueue")
    assert call.checks == [("sqs:DeleteMessage", arn("TasksQueue"))]


def test_secrets_manager_by_arn_and_by_name():
    secret = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:p-SigningSecret-AbCdEf"
    call = classify("secretsmanager", "secretsmanager.GetSecretValue", {"SecretId": secret})
    assert call.checks == [("secretsmanager:GetSecretValue", secret)]
    call = classify(
        "secretsmanager",
        "secretsmanager.GetSecretValue",
        {"SecretId": "p-SigningSecret"},
        secrets={"p-SigningSecret": secret},
    )
    assert call.checks == [("secretsmanager:GetSecretValue", secret)]
    call = classify("secretsmanager", "secretsmanager.GetSecretValue", {"SecretId": "other"})
    assert call.checks == [
        ("secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:other")
    ]


def test_other_services_by_signing_name():
    call = classify("logs", "Logs_20140328.PutLogEvents", {"logGroupName": "g"})
    assert call.checks == [("logs:PutLogEvents", "*")]
    call = classify("monitoring", "", "Action=PutMetricData&Namespace=x")
    assert call.checks == [("cloudwatch:PutMetricData", "*")]


# ------------------------------------------------------------------------------ the template's roles
@pytest.fixture(scope="module")
def policies():
    template = load_template()
    resolver = Resolver(parameters=parameter_defaults(template), physical={})
    resolver.conditions = evaluate_conditions(template, resolver)
    for logical, res in template["Resources"].items():
        if res["Type"] == "AWS::DynamoDB::Table":
            resolver.physical[logical] = {"Ref": f"p-{logical}", "Arn": arn(logical)}
        elif res["Type"] == "AWS::SQS::Queue":
            url = f"http://127.0.0.1:4566/{ACCOUNT}/p-{logical}"
            resolver.physical[logical] = {"Ref": url, "Arn": arn(logical), "QueueName": f"p-{logical}"}
    data = iam.policy_file(template, resolver, calls_log="calls.jsonl", prefix="p")
    return data


def allowed(policies, function: str, action: str, resource: str) -> bool:
    return iam.Policy(policies["functions"][function]["statements"]).evaluate(action, resource).allowed


def test_every_function_has_its_role_and_key(policies):
    assert set(policies["functions"]) == {
        "ApiFunction",
        "WorkerFunction",
        "NotifierFunction",
        "DeadLetterFunction",
        "ReconcilerFunction",
        "StreamFunction",
    }
    for name, fn in policies["functions"].items():
        assert fn["role"] == f"{name}Role"
        assert policies["keys"][iam.access_key_id(name)] == name
        assert iam.function_credentials(name)["AWS_ACCESS_KEY_ID"] == fn["access_key_id"]
    assert len(set(policies["keys"])) == 6


def test_worker_role(policies):
    assert allowed(policies, "WorkerFunction", "sqs:ChangeMessageVisibility", arn("TasksQueue"))
    assert not allowed(policies, "WorkerFunction", "dynamodb:PutItem", arn("TasksTable"))
    assert allowed(policies, "WorkerFunction", "dynamodb:PutItem", arn("MessagesTable"))
    # SAM attaches AWSLambdaSQSQueueExecutionRole for the SQS events (the event source mapping's calls)
    assert allowed(policies, "WorkerFunction", "sqs:ReceiveMessage", arn("TasksQueue"))
    assert allowed(policies, "WorkerFunction", "sqs:DeleteMessage", arn("PriorityTasksQueue"))
    # Tracing: Active attaches the X-Ray write policy
    assert allowed(policies, "WorkerFunction", "xray:PutTraceSegments", "*")


def test_api_role(policies):
    assert not allowed(policies, "ApiFunction", "dynamodb:DeleteItem", arn("TasksTable"))
    for index in ("by-owner-active", "by-owner-done"):
        assert allowed(policies, "ApiFunction", "dynamodb:Query", f"{arn('TasksTable')}/index/{index}")
    assert not allowed(policies, "ApiFunction", "dynamodb:Query", f"{arn('TasksTable')}/index/by-due")
    # listings read the items of the keys they found in the sharded indexes in batches
    assert allowed(policies, "ApiFunction", "dynamodb:BatchGetItem", arn("TasksTable"))
    assert allowed(policies, "ReconcilerFunction", "dynamodb:BatchGetItem", arn("TasksTable"))
    assert not allowed(policies, "WorkerFunction", "dynamodb:BatchGetItem", arn("TasksTable"))
    assert not allowed(policies, "ApiFunction", "dynamodb:PutItem", arn("ApiKeysTable"))
    # no SQS event: no receive permission
    assert not allowed(policies, "ApiFunction", "sqs:ReceiveMessage", arn("TasksQueue"))
    secret = policies["secrets"]["p-SigningSecret"]
    assert allowed(policies, "ApiFunction", "secretsmanager:GetSecretValue", secret)
    assert not allowed(policies, "WorkerFunction", "secretsmanager:GetSecretValue", secret)


def test_stream_function_reads_api_keys_only_with_the_local_setting(policies):
    template = load_template()
    resolver = Resolver(
        parameters=parameter_defaults(template), physical={"ApiKeysTable": {"Arn": arn("ApiKeysTable")}}
    )
    assert not allowed(policies, "StreamFunction", "dynamodb:GetItem", arn("ApiKeysTable"))
    local = iam.policy_file(
        template, resolver, calls_log="c", envs={"StreamFunction": {"STREAM_ACCEPT_API_KEYS": "true"}}
    )
    assert allowed(local, "StreamFunction", "dynamodb:GetItem", arn("ApiKeysTable"))


def test_an_unknown_managed_policy_is_an_error():
    template = load_template()
    template["Resources"]["ApiFunction"]["Properties"]["Policies"].append("AmazonS3FullAccess")
    resolver = Resolver(parameters=parameter_defaults(template), physical={})
    with pytest.raises(iam.IamError, match="AmazonS3FullAccess"):
        iam.policy_file(template, resolver, calls_log="c")


# ------------------------------------------------------------------------------ enforcement
def test_enforcer_denies_logs_and_reloads(tmp_path):
    log = tmp_path / "calls.jsonl"
    path = tmp_path / "policy.json"
    data = {
        "account": ACCOUNT,
        "calls_log": str(log),
        "keys": {"ASIAKEY": "Fn"},
        "functions": {
            "Fn": {
                "role": "FnRole",
                "statements": [{"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": TABLE}],
            }
        },
    }
    iam.write_policy_file(path, data)
    err = io.StringIO()
    enforcer = iam.Enforcer(path, stderr=err)
    headers = {"authorization": AUTH.format(key="ASIAKEY", service="dynamodb")}

    def call(op: str):
        return enforcer.check(
            {**headers, "x-amz-target": f"DynamoDB_20120810.{op}"}, json.dumps({"TableName": "p-TasksTable"}).encode()
        )

    assert call("GetItem") == ("Fn", None)
    function, denied = call("DeleteItem")
    assert function == "Fn" and denied is not None
    assert denied.status.startswith("400")
    body = json.loads(denied.body)
    assert body["__type"] == "com.amazon.coral.service#AccessDeniedException"
    assert "assumed-role/FnRole/Fn is not authorized to perform: dynamodb:DeleteItem" in body["message"]
    assert "IAM DENIED Fn dynamodb:DeleteItem on " + TABLE in err.getvalue()
    # another key is the runner's own: not checked, not logged
    other = {"authorization": AUTH.format(key="testing", service="dynamodb"), "x-amz-target": "DynamoDB_20120810.X"}
    assert enforcer.check(other, b"{}") == (None, None)
    calls = iam.read_calls(log)
    assert [(c["action"], c["allowed"]) for c in calls] == [("dynamodb:GetItem", True), ("dynamodb:DeleteItem", False)]
    assert "granted by" in iam.operations_table(calls) and "DENIED" in iam.operations_table(calls)

    enforcer.reload_every = 0  # a function's key sees a changed policy file within this
    data["functions"]["Fn"]["statements"][0]["Action"] = "dynamodb:*"
    iam.write_policy_file(path, data)
    os.utime(path, ns=(1, 10**18))  # a new mtime even within the clock's resolution
    assert call("DeleteItem") == ("Fn", None)
    enforcer.close()


def test_sqs_denials_name_the_query_error():
    call = iam.Call("K", "sqs", "SendMessage", "json", "us-east-1", [])
    denied = iam.denied_answer(call, "Fn", "FnRole", "sqs:SendMessage", arn("TasksQueue"), False, ACCOUNT)
    assert ("x-amzn-query-error", "AccessDenied;Sender") in denied.headers
    assert "sqs:sendmessage" in json.loads(denied.body)["message"]
    query = iam.Call("K", "sqs", "SendMessage", "query", "us-east-1", [])
    denied = iam.denied_answer(query, "Fn", "FnRole", "sqs:SendMessage", arn("TasksQueue"), True, ACCOUNT)
    assert b"<Code>AccessDenied</Code>" in denied.body and b"explicit deny" in denied.body
