"""Reads template.yaml (the single source of truth) and resolves what the runner needs."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types
    pass


def _tag(name: str) -> Any:
    key = "Ref" if name == "Ref" else f"Fn::{name}"

    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {key: value}

    return construct


for _name in (
    "Ref",
    "GetAtt",
    "Sub",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "Select",
    "Join",
    "Split",
    "FindInMap",
    "ImportValue",
    "GetAZs",
    "Base64",
    "Condition",
):
    _CfnLoader.add_constructor(f"!{_name}", _tag(_name))


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open() as fh:
        data: dict[str, Any] = yaml.load(fh, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return data


@dataclasses.dataclass
class Resolver:
    """Resolves intrinsic functions against provisioned resources and parameters."""

    parameters: dict[str, str]
    physical: dict[str, dict[str, str]]  # logical id -> {"Ref": .., "Arn": .., ...}
    region: str = "us-east-1"
    account: str = "123456789012"
    conditions: dict[str, bool] = dataclasses.field(default_factory=dict)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.physical.get(logical, {}).get(attr, "")
            if key == "Fn::Sub":
                template, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
                return re.sub(
                    r"\$\{([^}]+)\}", lambda m: str(extra.get(m.group(1), self._sub_var(m.group(1)))), template
                )
            if key == "Fn::If":
                cond, yes, no = arg
                return self.resolve(yes if self.conditions.get(cond, False) else no)
            if key == "Fn::Join":
                sep, items = arg
                return sep.join(str(x) for x in self.resolve(items))
            if key == "Fn::Equals":
                a, b = self.resolve(arg)
                return a == b
            if key == "Fn::Not":
                return not self.resolve(arg[0])
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub_var(self, name: str) -> str:
        if "." in name:
            logical, attr = name.split(".", 1)
            return self.physical.get(logical, {}).get(attr, "")
        return str(self.ref(name))

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::StackName": "taskrunner-local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.physical.get(name, {}).get("Ref", "")


def parameter_defaults(template: dict[str, Any], overrides: dict[str, str] | None = None) -> dict[str, str]:
    params = {k: str(v.get("Default", "")) for k, v in (template.get("Parameters") or {}).items()}
    params.update(overrides or {})
    return params


def evaluate_conditions(template: dict[str, Any], resolver: Resolver) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for name, expr in (template.get("Conditions") or {}).items():
        out[name] = bool(resolver.resolve(expr))
    return out


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v.get("Type") == kind}


@dataclasses.dataclass
class FunctionSpec:
    logical_id: str
    handler: str
    timeout: int
    memory: int
    environment: dict[str, Any]
    events: dict[str, dict[str, Any]]
    tracing: str = "PassThrough"
    reserved_concurrency: Any = None  # ReservedConcurrentExecutions (may be an intrinsic)
    log_format: str = "Text"

    def events_of(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v.get("Properties", {}) for k, v in self.events.items() if v.get("Type") == kind}


def functions(template: dict[str, Any]) -> dict[str, FunctionSpec]:
    globals_ = (template.get("Globals") or {}).get("Function", {})
    genv = (globals_.get("Environment") or {}).get("Variables", {})
    out = {}
    for logical, res in resources_of(template, "AWS::Serverless::Function").items():
        props = res.get("Properties", {})
        env = dict(genv)
        env.update((props.get("Environment") or {}).get("Variables", {}))
        out[logical] = FunctionSpec(
            logical_id=logical,
            handler=props.get("Handler", globals_.get("Handler", "")),
            timeout=int(props.get("Timeout", globals_.get("Timeout", 3))),
            memory=int(props.get("MemorySize", globals_.get("MemorySize", 128))),
            environment=env,
            events=props.get("Events") or {},
            tracing=str(props.get("Tracing", globals_.get("Tracing", "PassThrough"))),
            reserved_concurrency=props.get(
                "ReservedConcurrentExecutions", globals_.get("ReservedConcurrentExecutions")
            ),
            log_format=str(
                (props.get("LoggingConfig") or globals_.get("LoggingConfig") or {}).get("LogFormat", "Text")
            ),
        )
    return out
