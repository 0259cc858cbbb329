"""IAM, locally: every AWS call a function makes is checked against the role template.yaml
gives that function, as AWS checks it.

- ``expand_roles``: SAM's own translator (aws-sam-translator, offline) turns each
  AWS::Serverless::Function into its AWS::IAM::Role: inline ``Policies`` (policy templates
  expanded) and ``ManagedPolicyArns`` (AWS managed policies SAM attaches, whose public
  documents are in managed_policies.json; an unknown one is an error).
- ``policy_file``: those roles with intrinsics resolved against the provisioned names and
  ARNs, keyed by each function's access key id; the runner writes it, the embedded endpoint
  (moto_server.py) reads it.
- ``Policy``: identity-based policy evaluation: an explicit Deny wins over an Allow, no
  Allow is an implicit deny; Action/NotAction, Resource/NotResource, ``*`` and ``?``
  wildcards, action names case-insensitive. A statement with a Condition is not evaluated:
  it never matches, and the decision says so.
- ``classify``: from a raw request (headers, body) the caller's access key id, the operation
  and the IAM action(s) and resource ARN(s) AWS authorises it as.
- ``Enforcer``: the check itself, with AWS's access denied answers per protocol, a calls
  log (one JSON line per checked call) and a loud line on stderr per denied call.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

from .template import Resolver, resources_of

ACCOUNT = "123456789012"
MANAGED_POLICIES_FILE = Path(__file__).with_name("managed_policies.json")
# IAM's service prefix when it differs from the signing name of the credential scope
IAM_PREFIX = {"monitoring": "cloudwatch", "email": "ses", "execute-api": "execute-api"}


# Grants the local stack needs beyond the template, each for a local-only setting of the
# function's environment (infra/sam/env.local.json), with why; shown as their source.
LOCAL_GRANTS: list[dict[str, Any]] = [
    {
        "function": "StreamFunction",
        "when": ("STREAM_ACCEPT_API_KEYS", "true"),
        "why": "the local front serves the stream itself and accepts the API key there; on AWS it takes tokens only",
        "statement": {
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem"],
            "Resource": {"Fn::GetAtt": ["ApiKeysTable", "Arn"]},
        },
    },
]


class IamError(Exception):
    """The template's roles cannot be expanded or evaluated offline."""


# ------------------------------------------------------------------------------ identities
def _digest(name: str, purpose: str) -> str:
    return hashlib.sha256(f"taskrunner-local:{purpose}:{name}".encode()).hexdigest().upper()


def access_key_id(function: str) -> str:
    """The access key id of a function's local credentials (AWS's shape for temporary keys)."""
    return "ASIA" + _digest(function, "key")[:16]


def function_credentials(function: str) -> dict[str, str]:
    """The credentials a function's environment gets, as Lambda gives its execution role's."""
    return {
        "AWS_ACCESS_KEY_ID": access_key_id(function),
        "AWS_SECRET_ACCESS_KEY": _digest(function, "secret")[:40],
        "AWS_SESSION_TOKEN": "local-session-" + _digest(function, "token")[:48],
    }


# ------------------------------------------------------------------------------ expansion
@dataclasses.dataclass
class Role:
    """A function's execution role as SAM generates it (intrinsics unresolved)."""

    function: str
    role: str  # the role's logical id (SAM: <Function>Role)
    policies: list[tuple[str, dict[str, Any]]]  # (policy name, document)
    managed: list[Any]  # ARNs, possibly intrinsics


def managed_policies() -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads(MANAGED_POLICIES_FILE.read_text())
    return {k: v for k, v in data.items() if k.startswith("arn:")}


def _deployable(template: dict[str, Any]) -> dict[str, Any]:
    """The template as ``sam package`` leaves it: code locations are S3 URIs."""
    out = copy.deepcopy(template)
    fn_globals = (out.get("Globals") or {}).get("Function") or {}
    if isinstance(fn_globals.get("CodeUri"), str):
        fn_globals["CodeUri"] = "s3://local/code.zip"
    for res in resources_of(out, "AWS::Serverless::Function").values():
        props = res.setdefault("Properties", {})
        if isinstance(props.get("CodeUri"), str) or ("CodeUri" not in props and "InlineCode" not in props):
            props["CodeUri"] = "s3://local/code.zip"
    return out


def translate(template: dict[str, Any], region: str = "us-east-1") -> dict[str, Any]:
    """The CloudFormation template SAM's transform makes of ``template`` (offline)."""
    import boto3
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    session = boto3.session.Session(region_name=region)  # only its region is read
    translator = Translator(None, Parser(), boto_session=session)
    try:
        out: dict[str, Any] = translator.translate(_deployable(template), {}, get_managed_policy_map=lambda: {})
    except InvalidDocumentException as exc:
        raise IamError(f"SAM could not transform template.yaml: {exc}") from exc
    return out


def expand_roles(template: dict[str, Any], region: str = "us-east-1") -> dict[str, Role]:
    """Function logical id -> its execution role, from SAM's transform of the template."""
    cfn = translate(template, region)
    resources: dict[str, Any] = cfn["Resources"]
    roles: dict[str, Role] = {}
    for name, res in resources.items():
        if res.get("Type") != "AWS::Lambda::Function":
            continue
        ref = res.get("Properties", {}).get("Role")
        role_id = None
        if isinstance(ref, dict) and "Fn::GetAtt" in ref:
            target = ref["Fn::GetAtt"]
            role_id = (target if isinstance(target, list) else target.split("."))[0]
        role_res = resources.get(role_id or "")
        if not role_id or (role_res or {}).get("Type") != "AWS::IAM::Role":
            raise IamError(f"{name}: its role {ref!r} is not declared in template.yaml; cannot evaluate it locally")
        props = role_res["Properties"]  # type: ignore[index]
        policies = [(p["PolicyName"], p["PolicyDocument"]) for p in props.get("Policies") or []]
        # standalone policies attached to the role
        for pid, pres in resources.items():
            if pres.get("Type") == "AWS::IAM::Policy" and {"Ref": role_id} in pres["Properties"].get("Roles", []):
                policies.append((pres["Properties"].get("PolicyName", pid), pres["Properties"]["PolicyDocument"]))
        roles[name] = Role(name, role_id, policies, list(props.get("ManagedPolicyArns") or []))
    return roles


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _resolved_statements(document: Any, resolver: Resolver, source: str) -> list[dict[str, Any]]:
    out = []
    for i, stmt in enumerate(_as_list(resolver.resolve(document).get("Statement", []))):
        entry: dict[str, Any] = {"Source": f"{source}#{i}", "Effect": stmt.get("Effect", "")}
        if stmt.get("Sid"):
            entry["Sid"] = stmt["Sid"]
        for key in ("Action", "NotAction", "Resource", "NotResource"):
            if key in stmt:
                entry[key] = [str(v) for v in _as_list(stmt[key]) if v not in ("", None)]
        if stmt.get("Condition"):
            entry["Condition"] = stmt["Condition"]
        out.append(entry)
    return out


def _with_unprovisioned(template: dict[str, Any], resolver: Resolver, prefix: str) -> Resolver:
    """A resolver that also names what the local stack does not create (secrets): their
    ARNs are what AWS would make of them, so policies naming them stay exact."""
    physical = dict(resolver.physical)
    for logical in resources_of(template, "AWS::SecretsManager::Secret"):
        if logical not in physical:
            name = f"{prefix}-{logical}"
            suffix = _digest(logical, "secret-suffix")[:6]
            arn = f"arn:aws:secretsmanager:{resolver.region}:{resolver.account}:secret:{name}-{suffix}"
            physical[logical] = {"Ref": arn, "Id": arn, "Name": name}
    return dataclasses.replace(resolver, physical=physical)


def policy_file(
    template: dict[str, Any],
    resolver: Resolver,
    *,
    calls_log: Path | str,
    prefix: str = "taskrunner-local",
    envs: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """What the embedded endpoint enforces: key id -> function -> its resolved statements.
    ``envs`` (each function's local environment) switches on the LOCAL_GRANTS it needs."""
    full = _with_unprovisioned(template, resolver, prefix)
    known = managed_policies()
    functions: dict[str, Any] = {}
    for name, role in expand_roles(template, resolver.region).items():
        statements: list[dict[str, Any]] = []
        for policy_name, document in role.policies:
            statements += _resolved_statements(document, full, policy_name)
        for arn in (full.resolve(a) for a in role.managed):
            if arn not in known:
                raise IamError(
                    f"{name}: managed policy {arn} has no local copy in {MANAGED_POLICIES_FILE.name}; "
                    "add its public document there"
                )
            statements += _resolved_statements(known[arn], full, arn.rsplit("/", 1)[-1])
        for grant in LOCAL_GRANTS:
            variable, value = grant["when"]
            if grant["function"] == name and (envs or {}).get(name, {}).get(variable, "").lower() == value:
                document = {"Statement": [grant["statement"]]}
                statements += _resolved_statements(document, full, f"local exception ({variable}={value})")
        functions[name] = {"role": role.role, "access_key_id": access_key_id(name), "statements": statements}
    secrets = {
        v["Name"]: v["Ref"]
        for k, v in full.physical.items()
        if k in resources_of(template, "AWS::SecretsManager::Secret") and "Name" in v
    }
    return {
        "account": resolver.account,
        "region": resolver.region,
        "calls_log": str(calls_log),
        "keys": {f["access_key_id"]: name for name, f in functions.items()},
        "functions": functions,
        "secrets": secrets,
    }


def write_policy_file(path: Path | str, data: dict[str, Any]) -> None:
    """Written whole, then renamed: the endpoint never reads half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


# ------------------------------------------------------------------------------ evaluation
@functools.lru_cache(maxsize=4096)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _any(patterns: Iterable[re.Pattern[str]], value: str) -> bool:
    return any(p.fullmatch(value) for p in patterns)


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    explicit_deny: bool = False
    by: str = ""  # the statement (and its resource) that decided
    note: str = ""  # statements not evaluated (conditions)


class Statement:
    def __init__(self, data: Mapping[str, Any]) -> None:
        self.source = str(data.get("Source", data.get("Sid", "")))
        self.effect = str(data.get("Effect", ""))
        self.data = data
        self.not_action = "NotAction" in data
        self.not_resource = "NotResource" in data
        self.actions = [_glob(a, True) for a in _as_list(data.get("NotAction" if self.not_action else "Action", []))]
        res_key = "NotResource" if self.not_resource else "Resource"
        self.resource_texts = [str(r) for r in _as_list(data.get(res_key, []))]
        self.resources = [_glob(r, False) for r in self.resource_texts]
        self.has_resource = "Resource" in data or "NotResource" in data
        self.condition = data.get("Condition")

    def applies(self, action: str, resource: str) -> bool:
        """Whether the statement covers the request, its Condition aside."""
        if self.not_action == _any(self.actions, action):
            return False
        return self.has_resource and self.not_resource != _any(self.resources, resource)

    def describe(self, resource: str) -> str:
        if self.not_resource:
            return f"{self.source} (NotResource {', '.join(self.resource_texts)})"
        matched = next(
            (t for t, p in zip(self.resource_texts, self.resources, strict=True) if p.fullmatch(resource)), ""
        )
        return f"{self.source} on {matched}"


class Policy:
    """The identity-based policies of one principal."""

    def __init__(self, statements: Iterable[Mapping[str, Any]]) -> None:
        self.statements = [Statement(s) for s in statements]

    def evaluate(self, action: str, resource: str) -> Decision:
        allow: Statement | None = None
        skipped: list[str] = []
        for stmt in self.statements:
            if not stmt.applies(action, resource):
                continue
            if stmt.condition:
                skipped.append(f"{stmt.source} has a Condition, not evaluated locally: treated as not matching")
                continue
            if stmt.effect == "Deny":
                return Decision(False, True, stmt.describe(resource), "; ".join(skipped))
            if stmt.effect == "Allow" and allow is None:
                allow = stmt
        if allow is not None:
            return Decision(True, False, allow.describe(resource), "; ".join(skipped))
        return Decision(False, False, "", "; ".join(skipped))


# ------------------------------------------------------------------------------ classification
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


# ------------------------------------------------------------------------------ answers
@dataclasses.dataclass
class Denied:
    function: str
    action: str
    resource: str
    message: str
    status: str
    headers: list[tuple[str, str]]
    body: bytes


def principal_arn(function: str, role: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:sts::{account}:assumed-role/{role}/{function}"


def denied_answer(
    call: Call, function: str, role: str, action: str, resource: str, explicit: bool, account: str
) -> Denied:
    """AWS's answer to a call IAM denies, in the call's protocol."""
    shown = action.lower() if call.service == "sqs" else action  # SQS names actions in lower case
    why = (
        "with an explicit deny in an identity-based policy"
        if explicit
        else f"because no identity-based policy allows the {shown} action"
    )
    message = (
        f"User: {principal_arn(function, role, account)} is not authorized to perform: {shown} "
        f"on resource: {resource} {why}"
    )
    request_id = os.urandom(16).hex()
    if call.protocol == "query":
        xml = (
            '<?xml version="1.0"?><ErrorResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/">'
            f"<Error><Type>Sender</Type><Code>AccessDenied</Code><Message>{_xml_escape(message)}</Message>"
            f"<Detail/></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return Denied(
            function,
            action,
            resource,
            message,
            "403 Forbidden",
            [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)],
            xml.encode(),
        )
    payload = json.dumps({"__type": "com.amazon.coral.service#AccessDeniedException", "message": message}).encode()
    if call.service == "sqs":
        # SQS answers AccessDenied with 403; its JSON protocol names the query error in a header
        headers = [
            ("Content-Type", "application/x-amz-json-1.0"),
            ("x-amzn-query-error", "AccessDenied;Sender"),
            ("x-amzn-RequestId", request_id),
        ]
        return Denied(function, action, resource, message, "403 Forbidden", headers, payload)
    content_type = "application/x-amz-json-1.0" if call.service == "dynamodb" else "application/x-amz-json-1.1"
    headers = [("Content-Type", content_type), ("x-amzn-RequestId", request_id)]
    return Denied(function, action, resource, message, "400 Bad Request", headers, payload)


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ------------------------------------------------------------------------------ enforcement
class Enforcer:
    """Checks calls against the policy file the runner writes (reloaded when it changes)."""

    def __init__(
        self, policy_path: Path | str, *, stderr: TextIO | None = None, clock: Callable[[], float] = time.time
    ):
        self.policy_path = Path(policy_path)
        self._stderr = stderr or sys.stderr
        self._clock = clock
        self._lock = threading.Lock()
        self._mtime: int | None = None
        self._looked = 0.0
        self.reload_every = 0.5  # seconds
        self.keys: dict[str, str] = {}
        self.roles: dict[str, str] = {}
        self.policies: dict[str, Policy] = {}
        self.secrets: dict[str, str] = {}
        self.account = ACCOUNT
        self._decisions: dict[tuple[str, str, str], Decision] = {}
        self._log: TextIO | None = None

    def refresh(self) -> None:
        try:
            mtime = self.policy_path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == self._mtime:
            return
        with self._lock:
            if mtime == self._mtime:
                return
            data = json.loads(self.policy_path.read_text())
            self.policies = {name: Policy(f["statements"]) for name, f in data["functions"].items()}
            self.roles = {name: f["role"] for name, f in data["functions"].items()}
            self.secrets = dict(data.get("secrets") or {})
            self.account = data.get("account", ACCOUNT)
            self._decisions = {}
            if self._log is not None:
                self._log.close()
            self._log = open(data["calls_log"], "a", buffering=1) if data.get("calls_log") else None
            self.keys = dict(data["keys"])
            self._mtime = mtime

    def close(self) -> None:
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None

    def function_of(self, key: str) -> str | None:
        """The function whose access key this is; None for the runner's (unrestricted) keys.
        A function's key rereads a changed policy file at most twice a second; any other key
        always looks (the first calls of the functions follow the file's first writing)."""
        function = self.keys.get(key)
        now = time.monotonic()
        if function is None or now - self._looked > self.reload_every:
            self._looked = now
            self.refresh()
            function = self.keys.get(key)
        return function

    def decide(self, function: str, action: str, resource: str) -> Decision:
        cache_key = (function, action.lower(), resource)
        decision = self._decisions.get(cache_key)
        if decision is None:
            if len(self._decisions) > 20000:
                self._decisions = {}
            decision = self.policies[function].evaluate(action, resource)
            self._decisions[cache_key] = decision
        return decision

    def check(
        self, headers: Mapping[str, str], body: bytes, *, path: str = "/", query: str = ""
    ) -> tuple[str | None, Denied | None]:
        """(the calling function or None, the answer if the call is denied)."""
        function = self.function_of(access_key_of(headers.get("authorization", "")))
        if function is None and "X-Amz-Credential=" in query:
            scope = credential_scope("", query)
            function = self.function_of(scope[0]) if scope else None
        if function is None:
            return None, None
        call = classify(headers, body, path=path, query=query, account=self.account, secrets=self.secrets)
        if call is None:  # not signed: unreachable for a known key
            return function, None
        denied: Denied | None = None
        for action, resource in call.checks:
            decision = self.decide(function, action, resource)
            self._record(function, call.operation, action, resource, decision)
            if not decision.allowed and denied is None:
                denied = denied_answer(
                    call, function, self.roles[function], action, resource, decision.explicit_deny, self.account
                )
                note = f" ({decision.note})" if decision.note else ""
                kind = "explicit deny by " + decision.by if decision.explicit_deny else "not granted"
                print(f"IAM DENIED {function} {action} on {resource}: {kind}{note}", file=self._stderr, flush=True)
        return function, denied

    def _record(self, function: str, operation: str, action: str, resource: str, decision: Decision) -> None:
        if self._log is None:
            return
        entry = {
            "t": round(self._clock(), 3),
            "function": function,
            "operation": operation,
            "action": action,
            "resource": resource,
            "allowed": decision.allowed,
            "by": decision.by,
        }
        if decision.note:
            entry["note"] = decision.note
        line = json.dumps(entry) + "\n"
        with self._lock:
            self._log.write(line)


def read_calls(path: Path | str) -> list[dict[str, Any]]:
    """The calls log: one dict per checked call."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def operations_table(calls: Iterable[Mapping[str, Any]]) -> str:
    """Per function: each action and resource it used, how often, and what granted (or denied) it."""
    counts: dict[tuple[str, str, str, bool, str], int] = {}
    for c in calls:
        key = (c["function"], c["action"], c["resource"], bool(c["allowed"]), c.get("by", ""))
        counts[key] = counts.get(key, 0) + 1
    lines = []
    current = None
    for (function, action, resource, allowed, by), n in sorted(counts.items()):
        if function != current:
            lines.append(function)
            current = function
        verdict = f"granted by {by}" if allowed else "DENIED"
        lines.append(f"  {action:<34} {n:>6}x  {resource}\n  {'':<34} {'':>7}  {verdict}")
    return "\n".join(lines)
