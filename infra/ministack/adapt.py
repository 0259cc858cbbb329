"""Every difference between MiniStack and AWS that `make deploy-local` works around, in one place.

template.yaml stays true to AWS. `patch_template` rewrites a copy of the *built* template
(.aws-sam/local/build/template.yaml) before `sam deploy`; nothing else is changed. Each
workaround says what MiniStack (ministack==1.5.33, infra/ministack/requirements.txt) lacks.
WORKAROUNDS lists them for the README and for the deploy's own report.
"""

from __future__ import annotations

import copy
from typing import Any

WORKAROUNDS = {
    "metric-math-alarms": (
        "MiniStack has no metric-math alarms (Alarm Properties.Metrics): such alarms "
        "(WorkerErrorRateAlarm) are left out of the emulator's stack."
    ),
    "scaling-config-ref": (
        "MiniStack passes a ScalingConfig.MaximumConcurrency that comes from a parameter to "
        "its SQS poller as a string (it compares it with a number and never polls): the "
        "parameter's value is written in as a number."
    ),
    "http-api-routes": (
        "MiniStack ignores the OpenAPI body SAM generates for an HTTP API, so the API has no "
        "routes: each function's HttpApi event is declared as an explicit "
        "AWS::ApiGatewayV2::Integration and AWS::ApiGatewayV2::Route."
    ),
    "lambda-runtime": (
        "MiniStack runs Python functions in its own interpreter, whatever their Runtime: it "
        "runs from a python3.13 virtualenv (.venv-ministack), so the build's cp313 wheels load "
        "(not a template change: infra/ministack/emulator.py and the Makefile)."
    ),
}


def _parameter_values(template: dict[str, Any], overrides: dict[str, str]) -> dict[str, str]:
    values = {name: str(spec.get("Default", "")) for name, spec in (template.get("Parameters") or {}).items()}
    values.update(overrides)
    return values


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res.get("Type") == "AWS::Serverless::Function"}


def drop_metric_math_alarms(template: dict[str, Any]) -> list[str]:
    resources = template["Resources"]
    dropped = [
        name
        for name, res in resources.items()
        if res.get("Type") == "AWS::CloudWatch::Alarm" and "Metrics" in res.get("Properties", {})
    ]
    for name in dropped:
        del resources[name]
    return dropped


def literal_scaling_config(template: dict[str, Any], parameters: dict[str, str]) -> list[str]:
    changed = []
    for name, fn in _functions(template).items():
        for event_name, event in (fn["Properties"].get("Events") or {}).items():
            scaling = event.get("Properties", {}).get("ScalingConfig") or {}
            value = scaling.get("MaximumConcurrency")
            if isinstance(value, dict) and set(value) == {"Ref"}:
                scaling["MaximumConcurrency"] = int(parameters[value["Ref"]])
                changed.append(f"{name}.{event_name}")
    return changed


def explicit_http_api_routes(template: dict[str, Any]) -> list[str]:
    resources = template["Resources"]
    added = []
    for name, fn in _functions(template).items():
        for event_name, event in (fn["Properties"].get("Events") or {}).items():
            if event.get("Type") != "HttpApi":
                continue
            props = event["Properties"]
            api = props["ApiId"]
            method = str(props.get("Method", "ANY")).upper()
            method = "ANY" if method in {"ANY", "X-AMAZON-APIGATEWAY-ANY-METHOD"} else method
            integration = f"{name}{event_name}MiniStackIntegration"
            resources[integration] = {
                "Type": "AWS::ApiGatewayV2::Integration",
                "Properties": {
                    "ApiId": api,
                    "IntegrationType": "AWS_PROXY",
                    "IntegrationUri": {"Fn::GetAtt": [name, "Arn"]},
                    "PayloadFormatVersion": "2.0",
                },
            }
            resources[f"{name}{event_name}MiniStackRoute"] = {
                "Type": "AWS::ApiGatewayV2::Route",
                "Properties": {
                    "ApiId": api,
                    "RouteKey": f"{method} {props['Path']}",
                    "Target": {"Fn::Join": ["/", ["integrations", {"Ref": integration}]]},
                },
            }
            added.append(f"{method} {props['Path']} -> {name}")
    return added


def patch_template(template: dict[str, Any], overrides: dict[str, str]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """A copy of the built template that MiniStack deploys, and what each workaround changed."""
    patched = copy.deepcopy(template)
    parameters = _parameter_values(patched, overrides)
    report = {
        "metric-math-alarms": drop_metric_math_alarms(patched),
        "scaling-config-ref": literal_scaling_config(patched, parameters),
        "http-api-routes": explicit_http_api_routes(patched),
    }
    return patched, report


def local_api_url(endpoint: str, api_id: str, stage: str = "$default") -> str:
    """The HTTP API's base URL as MiniStack serves it (its path-style execute-api address)."""
    return f"{endpoint.rstrip('/')}/_aws/execute-api/{api_id}/{stage}"
