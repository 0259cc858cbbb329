import pytest


@pytest.fixture
def service():
    """A scripted HTTP service on 127.0.0.1 that the command-line client's tests talk to."""
    from tests.unit.test_cli import FakeService

    fake = FakeService()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
