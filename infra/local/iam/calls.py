"""Request classification: from a raw request (headers, body) the caller's access key id,
the operation and the IAM action(s) and resource ARN(s) AWS authorises it as, per protocol
(JSON with X-Amz-Target, query, REST).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

ACCOUNT = "123456789012"
# IAM's service prefix when it differs from the signing name of the credential scope
IAM_PREFIX = {"monitoring": "cloudwatch", "email": "ses", "execute-api": "execute-api"}


@dataclasses.dataclass
class Call:
    """An AWS request as IAM sees it: who, which operation, and each (action, resource) checked."""

    access_key_id: str
    service: str  # IAM service prefix
    operation: str
    protocol: str  # "json", "query" or "rest"
    region: str
    checks: list[tuple[str, str]]


_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]*/([^/]*)/([^/]*)/")


def credential_scope(authorization: str, query: str = "") -> tuple[str, str, str] | None:
    """(access key id, region, signing service) of a SigV4-signed request (header or presigned)."""
    found = _CREDENTIAL.search(authorization)
    if found:
        return found.group(1), found.group(2), found.group(3)
    if "X-Amz-Credential=" in query:
        cred = parse_qs(query).get("X-Amz-Credential", [""])[0].split("/")
        if len(cred) >= 4:
            return cred[0], cred[2], cred[3]
    return None


def access_key_of(authorization: str) -> str:
    """The access key id of a SigV4 Authorization header ('' if none): the fast path."""
    start = authorization.find("Credential=")
    if start < 0:
        return ""
    start += len("Credential=")
    end = authorization.find("/", start)
    return authorization[start:end] if end > start else ""


def _dedupe(checks: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(checks))


TRANSACT_WRITE_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


def _dynamodb_checks(op: str, data: dict[str, Any], region: str, account: str) -> list[tuple[str, str]]:
    def table(name: str) -> str:
        return name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account}:table/{name}"

    action = f"dynamodb:{op}"
    if op in ("BatchGetItem", "BatchWriteItem"):
        # IAM authorises a batch per table, with the batch's own action
        return _dedupe((action, table(t)) for t in data.get("RequestItems") or {})
    if op == "TransactGetItems":
        return _dedupe(("dynamodb:GetItem", table(i["Get"]["TableName"])) for i in data.get("TransactItems") or [])
    if op == "TransactWriteItems":
        checks = []
        for item in data.get("TransactItems") or []:
            for kind, per_item in TRANSACT_WRITE_ACTIONS.items():
                if kind in item:
                    checks.append((per_item, table(item[kind]["TableName"])))
        return _dedupe(checks)
    if "TableName" in data:
        arn = table(str(data["TableName"]))
        if op in ("Query", "Scan") and data.get("IndexName"):
            arn = f"{arn}/index/{data['IndexName']}"
        return [(action, arn)]
    if "ResourceArn" in data:
        return [(action, str(data["ResourceArn"]))]
    if op == "ExecuteStatement":
        verb = str(data.get("Statement", "")).strip().split(" ", 1)[0].capitalize()
        return [(f"dynamodb:PartiQL{verb}", "*")]
    return [(action, "*")]


SQS_BATCH_ACTIONS = {
    "SendMessageBatch": "sqs:SendMessage",
    "DeleteMessageBatch": "sqs:DeleteMessage",
    "ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}


def _queue_arn(url: str, region: str, account: str) -> str:
    parts = [p for p in urlsplit(url).path.split("/") if p]
    if len(parts) >= 2:
        return f"arn:aws:sqs:{region}:{parts[-2]}:{parts[-1]}"
    return f"arn:aws:sqs:{region}:{account}:{parts[-1] if parts else url}"


def _sqs_checks(op: str, data: Mapping[str, Any], path: str, region: str, account: str) -> list[tuple[str, str]]:
    action = SQS_BATCH_ACTIONS.get(op, f"sqs:{op}")
    if data.get("QueueUrl"):
        return [(action, _queue_arn(str(data["QueueUrl"]), region, account))]
    if data.get("QueueName"):
        owner = str(data.get("QueueOwnerAWSAccountId") or account)
        return [(action, f"arn:aws:sqs:{region}:{owner}:{data['QueueName']}")]
    if path.strip("/").count("/") == 1:  # query protocol: POST /<account>/<queue>
        return [(action, _queue_arn(path, region, account))]
    return [(action, "*")]


def _secret_arn(secret_id: str, region: str, account: str, secrets: Mapping[str, str]) -> str:
    if secret_id.startswith("arn:"):
        return secret_id
    return secrets.get(secret_id) or f"arn:aws:secretsmanager:{region}:{account}:secret:{secret_id}"


def _secretsmanager_checks(
    op: str, data: dict[str, Any], region: str, account: str, secrets: Mapping[str, str]
) -> list[tuple[str, str]]:
    action = f"secretsmanager:{op}"
    if op == "BatchGetSecretValue":
        ids = data.get("SecretIdList") or []
        return _dedupe(
            [(action, "*")]
            + [("secretsmanager:GetSecretValue", _secret_arn(str(i), region, account, secrets)) for i in ids]
        )
    if data.get("SecretId"):
        return [(action, _secret_arn(str(data["SecretId"]), region, account, secrets))]
    if op == "CreateSecret" and data.get("Name"):
        return [(action, _secret_arn(str(data["Name"]), region, account, secrets))]
    return [(action, "*")]


def classify(
    headers: Mapping[str, str],
    body: bytes,
    *,
    path: str = "/",
    query: str = "",
    account: str = ACCOUNT,
    secrets: Mapping[str, str] | None = None,
) -> Call | None:
    """The call a request makes; None if it is not signed. ``headers`` keys in lower case."""
    scope = credential_scope(headers.get("authorization", ""), query)
    if scope is None:
        return None
    key, region, signing = scope
    service = IAM_PREFIX.get(signing, signing)
    target = headers.get("x-amz-target", "")
    data: dict[str, Any]
    if target:
        protocol = "json"
        prefix, _, op = target.rpartition(".")
        try:
            loaded = json.loads(body or b"{}")
        except ValueError:
            loaded = {}
        data = loaded if isinstance(loaded, dict) else {}
        if prefix.startswith("DynamoDB"):
            service = "dynamodb"
        elif prefix == "AmazonSQS":
            service = "sqs"
        elif prefix == "secretsmanager":
            service = "secretsmanager"
    else:
        form = parse_qs(query)
        if "form-urlencoded" in headers.get("content-type", "") or not form.get("Action"):
            form.update(parse_qs(body.decode("utf-8", "replace")))
        data = {k: v[0] for k, v in form.items()}
        op = str(data.get("Action", ""))
        protocol = "query" if op else "rest"
    if not op:
        return Call(key, service, "", protocol, region, [(f"{service}:<unrecognised request>", "*")])
    if service == "dynamodb":
        checks = _dynamodb_checks(op, data, region, account)
    elif service == "sqs":
        checks = _sqs_checks(op, data, path, region, account)
    elif service == "secretsmanager":
        checks = _secretsmanager_checks(op, data, region, account, secrets or {})
    else:
        checks = [(f"{service}:{op}", "*")]
    return Call(key, service, op, protocol, region, checks)
