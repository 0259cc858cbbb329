"""Each function starts with exactly the environment template.yaml gives it on AWS: every
variable the template sets is one the code reads, and every resource a function's code
needs is named by the template."""

import pytest
from taskrunner.bootstrap import build_services
from taskrunner.config import _POLICY_ENV, _SETTINGS_ENV, Settings

from infra.local.template import Resolver, evaluate_conditions, functions, load_template, parameter_defaults

TEMPLATE = load_template()
# read by the Lambda runtime, Powertools or the Lambda Web Adapter, not by Settings
RUNTIME_VARIABLES = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_LOG_LEVEL",
    "AWS_LAMBDA_EXEC_WRAPPER",
    "AWS_LWA_INVOKE_MODE",
    "AWS_LWA_READINESS_CHECK_PATH",
    "PORT",
}
# functions whose code signs or verifies with the master secret (stream tokens, callbacks)
USES_MASTER_SECRET = {"ApiFunction", "NotifierFunction", "StreamFunction"}
# settings naming a resource: their defaults are placeholders, the template must set them
RESOURCE_SETTINGS = {
    "TASKS_TABLE_NAME",
    "MESSAGES_TABLE_NAME",
    "API_KEYS_TABLE_NAME",
    "TASKS_QUEUE_URL",
    "IO_TASKS_QUEUE_URL",
    "PRIORITY_TASKS_QUEUE_URL",
    "CALLBACKS_QUEUE_URL",
}


def resolved_env(fn):
    """The function's environment as CloudFormation would resolve it (physical names invented)."""
    physical = {
        logical: {
            "Ref": f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{logical}"
            if res["Type"] == "AWS::SecretsManager::Secret"
            else f"https://sqs.us-east-1.amazonaws.com/123456789012/{logical}"
            if res["Type"] == "AWS::SQS::Queue"
            else f"stack-{logical}",
            "Arn": f"arn:aws:service:us-east-1:123456789012:{logical}",
            "FunctionUrl": "https://abc.lambda-url.us-east-1.on.aws/",
        }
        for logical, res in TEMPLATE["Resources"].items()
    }
    physical["StreamFunctionUrl"] = {"FunctionUrl": "https://abc.lambda-url.us-east-1.on.aws/"}
    resolver = Resolver(parameters=parameter_defaults(TEMPLATE), physical=physical)
    resolver.conditions = evaluate_conditions(TEMPLATE, resolver)
    return {k: str(resolver.resolve(v)) for k, v in functions(TEMPLATE)[fn].environment.items()}


FUNCTIONS = sorted(functions(TEMPLATE))


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_every_template_variable_is_read(fn):
    known = set(_SETTINGS_ENV) | set(_POLICY_ENV) | RUNTIME_VARIABLES
    assert set(resolved_env(fn)) <= known, f"{fn}: variables nothing reads: {set(resolved_env(fn)) - known}"


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_every_resource_setting_is_set_by_the_template(fn):
    missing = RESOURCE_SETTINGS - set(resolved_env(fn))
    assert not missing, f"{fn} would run against placeholder names: {missing}"
    if fn in USES_MASTER_SECRET:
        assert resolved_env(fn).get("SIGNING_SECRET_ARN", "").startswith("arn:aws:secretsmanager:")


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_each_function_starts_with_the_template_environment(fn):
    """Building a function's services makes no AWS call and needs nothing the template does
    not give it: the worker, dead-letter consumer and reconciler have no signing secret."""
    services = build_services(Settings.from_env(resolved_env(fn)))
    assert services.settings.tasks_table_name == "stack-TasksTable"
    if fn not in USES_MASTER_SECRET and "SIGNING_SECRET_ARN" not in resolved_env(fn):
        with pytest.raises(RuntimeError, match="SIGNING_SECRET_ARN"):
            services.master_secret()
