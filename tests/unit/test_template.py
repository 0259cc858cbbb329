"""template.yaml is the truth: the runner's provisioning reads it, and these checks keep
it deployable and least-privileged."""

import pytest

from infra.local.template import functions, load_template, resources_of

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
# the only actions each function may be granted, and on what
ALLOWED_ACTIONS = {
    "ApiFunction": {
        "dynamodb:PutItem",
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:UpdateItem",
        "dynamodb:DescribeTable",
        "dynamodb:Query",
        "sqs:SendMessage",
        "sqs:GetQueueAttributes",
        "secretsmanager:GetSecretValue",
    },
    "WorkerFunction": {
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:PutItem",
        "sqs:SendMessage",
        "sqs:ChangeMessageVisibility",
    },
    "NotifierFunction": {
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "sqs:ChangeMessageVisibility",
        "secretsmanager:GetSecretValue",
    },
    "DeadLetterFunction": {"dynamodb:GetItem", "dynamodb:UpdateItem", "sqs:SendMessage"},
    "ReconcilerFunction": {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "sqs:SendMessage",
    },
    "StreamFunction": {"dynamodb:GetItem", "secretsmanager:GetSecretValue"},
}


def statements(fn):
    for policy in RESOURCES[fn]["Properties"].get("Policies", []):
        assert isinstance(policy, dict) and set(policy) == {"Statement"}, (
            f"{fn}: only inline statements, no managed or *FullAccess policies"
        )
        yield from policy["Statement"]


def referenced(resource):
    items = resource if isinstance(resource, list) else [resource]
    for item in items:
        assert isinstance(item, dict), f"literal resource {item!r}: use a reference to one resource"
        ((kind, value),) = item.items()
        if kind == "Ref":
            yield value
        elif kind == "Fn::GetAtt":
            yield value[0]
        elif kind == "Fn::Sub":
            assert "*" not in value, f"wildcard in {value}"
            yield value.split("${", 1)[1].split(".", 1)[0]
        else:
            raise AssertionError(f"unexpected resource form {item}")


@pytest.mark.parametrize("fn", sorted(ALLOWED_ACTIONS))
def test_policies_are_scoped_and_least_privilege(fn):
    granted = set()
    for st in statements(fn):
        assert st["Effect"] == "Allow"
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        assert all("*" not in a for a in actions), f"{fn}: wildcard action"
        granted |= set(actions)
        for logical in referenced(st["Resource"]):
            assert logical in RESOURCES, f"{fn}: {logical} is not a resource of this template"
    assert granted <= ALLOWED_ACTIONS[fn], f"{fn} has extra actions: {granted - ALLOWED_ACTIONS[fn]}"


def test_every_function_is_python313_traced_and_arm64_by_default():
    g = TEMPLATE["Globals"]["Function"]
    assert g["Runtime"] == "python3.13" and g["Tracing"] == "Active"
    assert g["Architectures"] == [{"Ref": "Architecture"}]
    param = TEMPLATE["Parameters"]["Architecture"]
    assert param["Default"] == "arm64" and param["AllowedValues"] == ["arm64", "x86_64"]
    assert set(functions(TEMPLATE)) == set(ALLOWED_ACTIONS)


def test_functions_makefile_builds_wheels_for_the_template_architecture():
    from pathlib import Path

    makefile = (Path(__file__).resolve().parents[2] / "functions" / "Makefile").read_text()
    assert "ARCHITECTURE ?= arm64" in makefile
    for arch, platform in {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}.items():
        assert f"PLATFORM_{arch} := {platform}" in makefile


def test_stream_adapter_layer_matches_the_architecture():
    layers = RESOURCES["StreamFunction"]["Properties"]["Layers"][0]["Fn::If"]
    assert layers[0] == "DefaultAdapterLayer"
    arn, names = layers[1]["Fn::Sub"]
    assert arn.endswith(":layer:${Layer}:25")
    assert names["Layer"] == {"Fn::If": ["IsArm64", "LambdaAdapterLayerArm64", "LambdaAdapterLayerX86"]}


def test_queue_visibility_is_six_times_the_consumer_timeout():
    specs = functions(TEMPLATE)
    for fn in specs.values():
        for props in fn.events_of("SQS").values():
            queue = props["Queue"]["Fn::GetAtt"][0]
            visibility = RESOURCES[queue]["Properties"].get("VisibilityTimeout", 30)
            assert visibility >= 6 * fn.timeout, f"{queue}: {visibility} < 6 x {fn.timeout}"
            assert props.get("FunctionResponseTypes") == ["ReportBatchItemFailures"]


def test_work_queues_have_dead_letter_queues():
    for logical, res in resources_of(TEMPLATE, "AWS::SQS::Queue").items():
        if not logical.endswith("DLQ"):
            assert "RedrivePolicy" in res["Properties"], logical


def test_stream_function_url_streams():
    props = RESOURCES["StreamFunction"]["Properties"]
    assert props["FunctionUrlConfig"]["InvokeMode"] == "RESPONSE_STREAM"
    assert props["Environment"]["Variables"]["AWS_LWA_INVOKE_MODE"] == "response_stream"


def test_tables_have_ttl_pitr_and_on_demand():
    for logical, res in resources_of(TEMPLATE, "AWS::DynamoDB::Table").items():
        props = res["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST", logical
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], logical
    assert RESOURCES["TasksTable"]["Properties"]["TimeToLiveSpecification"]["Enabled"]


def test_cfn_lint_is_clean():
    from cfnlint.api import lint_file

    from infra.local.template import TEMPLATE as PATH

    problems = lint_file(PATH)
    assert problems == [], "\n".join(str(p) for p in problems)


def granted(fn, action):
    """The logical ids ``fn`` may perform ``action`` on."""
    out = set()
    for st in statements(fn):
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if action in actions:
            out |= set(referenced(st["Resource"]))
    return out


# What each function's code does to which resource, beyond its event sources: a flow that
# needs an action the template does not grant fails on AWS with AccessDenied.
PERFORMED = [
    ("ApiFunction", "sqs:SendMessage", "TasksQueue", "submit"),
    ("ApiFunction", "sqs:SendMessage", "CallbacksQueue", "cancel of a waiting task with a callback"),
    ("WorkerFunction", "sqs:SendMessage", "CallbacksQueue", "a task ends with a callback"),
    ("DeadLetterFunction", "sqs:SendMessage", "CallbacksQueue", "a dead-lettered task with a callback"),
    ("ReconcilerFunction", "sqs:SendMessage", "TasksQueue", "re-drive"),
    ("NotifierFunction", "secretsmanager:GetSecretValue", "SigningSecret", "signing callbacks"),
    ("StreamFunction", "secretsmanager:GetSecretValue", "SigningSecret", "checking stream tokens"),
]


@pytest.mark.parametrize(("fn", "action", "resource", "why"), PERFORMED)
def test_what_the_code_does_is_granted(fn, action, resource, why):
    assert resource in granted(fn, action), f"{fn} needs {action} on {resource} ({why})"


NAME_PROPERTIES = {"Name", "DashboardName", "TableName", "QueueName", "FunctionName", "TopicName", "AlarmName"}


def _named(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("Dimensions", "Metrics", "Tags"):
                continue  # names of metric dimensions, not of resources
            if key in NAME_PROPERTIES and path.count("/") >= 2:
                yield f"{path}/{key}", value
            yield from _named(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _named(value, f"{path}/{i}")


def test_account_unique_names_include_the_stack_name():
    """A second stack in the same account and region must create: every name that AWS keeps
    unique per account and region (schedules, dashboards, tables, queues...) carries the stack's."""
    names = list(_named(RESOURCES))
    assert names, "expected at least the reconciler's schedule name"
    for where, value in names:
        assert isinstance(value, dict) and "${AWS::StackName}" in str(value.get("Fn::Sub", "")), (
            f"{where} = {value!r} is the same in every stack"
        )


def test_alarm_notifications_can_be_delivered():
    """CloudWatch cannot publish to a topic encrypted with the AWS managed SNS key."""
    for logical, res in resources_of(TEMPLATE, "AWS::CloudWatch::Alarm").items():
        for action in res["Properties"].get("AlarmActions", []):
            topic = RESOURCES[action["Ref"]]["Properties"]
            assert topic.get("KmsMasterKeyId") in (None, ""), f"{logical} publishes to a topic CloudWatch cannot use"


def test_stream_function_concurrency_is_capped():
    props = RESOURCES["StreamFunction"]["Properties"]
    assert props["ReservedConcurrentExecutions"] == {"Ref": "StreamConcurrency"}
    assert int(TEMPLATE["Parameters"]["StreamConcurrency"]["Default"]) >= 1


def test_worker_timeout_queues_and_task_timeout_agree():
    """A task may run its whole timeout inside one worker invocation, and its message stays
    invisible while it does: the task cap, the worker's timeout and the queues agree."""
    from taskrunner.domain.service import Policy
    from taskrunner.tasks.sleep import SleepParameters

    worker = functions(TEMPLATE)["WorkerFunction"]
    cap = int(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]["MAX_TASK_TIMEOUT_SECONDS"])
    assert cap + Policy().stop_margin_seconds <= worker.timeout <= 900
    # a sleep longer than one invocation is continued from its checkpoint, up to the runtime cap
    runtime_cap = int(TEMPLATE["Parameters"]["MaxRuntimeSeconds"]["Default"])
    assert cap < SleepParameters.model_fields["seconds"].metadata[-1].le <= runtime_cap
    for props in worker.events_of("SQS").values():
        queue = RESOURCES[props["Queue"]["Fn::GetAtt"][0]]["Properties"]
        assert queue["VisibilityTimeout"] >= 6 * worker.timeout


def test_every_bundle_ships_the_sdk_the_tests_run_against():
    """The functions do not depend on the Lambda runtime's boto3, which changes without notice."""
    from infra.local.template import ROOT

    def pins(path):
        out = {}
        for raw in path.read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if line.startswith("-r "):
                out.update(pins(path.parent / line[3:].strip()))
            elif "==" in line:
                name, version = line.split("==", 1)
                out[name.strip().lower()] = version.strip()
        return out

    tested = pins(ROOT / "constraints.txt")
    for kind in ("api", "stream", "worker"):
        bundle = pins(ROOT / "functions" / "requirements" / f"{kind}.txt")
        for sdk in ("boto3", "botocore"):
            assert bundle.get(sdk) == tested[sdk], f"{kind} bundle: {sdk} {bundle.get(sdk)} != tested {tested[sdk]}"
