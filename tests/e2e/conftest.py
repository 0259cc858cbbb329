import pytest

from tests.support.stack import start_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("stack"), args=["--reconcile-every", "1"])
    yield running
    running.stop()
