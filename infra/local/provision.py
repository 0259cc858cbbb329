"""Creates the template's DynamoDB tables, SQS queues and Secrets Manager secrets on an
endpoint (idempotently)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from .template import Resolver, resources_of

STACK = "taskrunner-local"


def physical_name(logical_id: str, prefix: str = STACK) -> str:
    return f"{prefix}-{logical_id}"


def provision(
    template: dict[str, Any],
    resolver: Resolver,
    session: Any,
    endpoint_url: str | None,
    prefix: str = STACK,
    secret_values: dict[str, str] | None = None,
) -> dict[str, dict[str, str]]:
    """Returns logical id -> attributes (Ref, Arn, QueueName...) for every resource made.
    ``secret_values``: fixed values for secrets (logical id -> value) instead of generated ones."""
    ddb = session.client("dynamodb", endpoint_url=endpoint_url)
    sqs = session.client("sqs", endpoint_url=endpoint_url)
    physical = resolver.physical
    for logical, res in resources_of(template, "AWS::DynamoDB::Table").items():
        props = res["Properties"]
        name = physical_name(logical, prefix)
        kwargs: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        try:
            desc = ddb.create_table(**kwargs)["TableDescription"]
        except ddb.exceptions.ResourceInUseException:
            desc = ddb.describe_table(TableName=name)["Table"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            # TTL only deletes expired items: an emulator without it still works
            with contextlib.suppress(Exception):
                ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        physical[logical] = {"Ref": name, "Arn": desc["TableArn"]}
    # queues: dead-letter targets first, so RedrivePolicy can name their ARNs
    queues = resources_of(template, "AWS::SQS::Queue")
    ordered = sorted(queues, key=lambda q: "RedrivePolicy" in queues[q].get("Properties", {}))
    for logical in ordered:
        props = queues[logical].get("Properties", {})
        name = physical_name(logical, prefix)
        attrs: dict[str, str] = {}
        for key in (
            "VisibilityTimeout",
            "MessageRetentionPeriod",
            "DelaySeconds",
            "ReceiveMessageWaitTimeSeconds",
            "MaximumMessageSize",
        ):
            if key in props:
                attrs[key] = str(props[key])
        if "RedrivePolicy" in props:
            attrs["RedrivePolicy"] = json.dumps(resolver.resolve(props["RedrivePolicy"]))
        url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        physical[logical] = {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}
    secrets = resources_of(template, "AWS::SecretsManager::Secret")
    if secrets:
        sm = session.client("secretsmanager", endpoint_url=endpoint_url)
    for logical, res in secrets.items():
        physical[logical] = _secret(
            sm, physical_name(logical, prefix), res.get("Properties", {}), secret_values or {}, logical
        )
    return physical


def _secret(sm: Any, name: str, props: dict[str, Any], values: dict[str, str], logical: str) -> dict[str, str]:
    """A secret with the value given for it (a declared local exception), else one generated
    as GenerateSecretString asks. Ref and Arn are both its ARN, as in CloudFormation. A secret
    that exists already (kept from a previous start) keeps a generated value."""
    value = values.get(logical)
    if value is None and "SecretString" in props:
        value = str(props["SecretString"])
    given = value is not None
    if value is None:
        spec = props.get("GenerateSecretString") or {}
        kwargs = {"PasswordLength": int(spec.get("PasswordLength", 32))}
        for key in ("ExcludePunctuation", "ExcludeCharacters", "ExcludeUppercase", "ExcludeLowercase"):
            if key in spec:
                kwargs[key] = spec[key]
        value = sm.get_random_password(**kwargs)["RandomPassword"]
    try:
        arn = sm.create_secret(Name=name, SecretString=value, Description=props.get("Description", ""))["ARN"]
    except sm.exceptions.ResourceExistsException:
        arn = sm.describe_secret(SecretId=name)["ARN"]
        if given:
            sm.put_secret_value(SecretId=arn, SecretString=value)
    return {"Ref": arn, "Arn": arn, "Name": name}
