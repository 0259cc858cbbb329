"""The roles template.yaml gives the functions, as the policy file the embedded endpoint reads.

- ``expand_roles``: SAM's own translator (aws-sam-translator, offline) turns each
  AWS::Serverless::Function into its AWS::IAM::Role: inline ``Policies`` (policy templates
  expanded) and ``ManagedPolicyArns`` (AWS managed policies SAM attaches, whose public
  documents are in infra/local/managed_policies.json; an unknown one is an error).
- ``policy_file``: those roles with intrinsics resolved against the provisioned names and
  ARNs, keyed by each function's access key id; the runner writes it, the embedded endpoint
  (moto_server.py) reads it.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..template import Resolver, resources_of
from .policy import as_list

MANAGED_POLICIES_FILE = Path(__file__).parent.parent / "managed_policies.json"


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


def _resolved_statements(document: Any, resolver: Resolver, source: str) -> list[dict[str, Any]]:
    out = []
    for i, stmt in enumerate(as_list(resolver.resolve(document).get("Statement", []))):
        entry: dict[str, Any] = {"Source": f"{source}#{i}", "Effect": stmt.get("Effect", "")}
        if stmt.get("Sid"):
            entry["Sid"] = stmt["Sid"]
        for key in ("Action", "NotAction", "Resource", "NotResource"):
            if key in stmt:
                entry[key] = [str(v) for v in as_list(stmt[key]) if v not in ("", None)]
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
