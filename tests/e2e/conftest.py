import pytest

from infra.local.iam import operations_table
from tests.support.stack import IAM_CALLS, start_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("stack"), args=["--reconcile-every", "1"])
    yield running
    running.stop()


def pytest_terminal_summary(terminalreporter):
    """The AWS operations each function performed during the run, and what granted each."""
    if IAM_CALLS:
        terminalreporter.section("AWS operations per function (checked against template.yaml's roles)")
        terminalreporter.write_line(operations_table(IAM_CALLS))
