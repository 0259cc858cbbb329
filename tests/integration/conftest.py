from __future__ import annotations

import dataclasses

import boto3
import pytest
from moto import mock_aws
from taskrunner.bootstrap import build_services
from taskrunner.domain.service import Policy

from infra.local.assemble import Assembly, assemble

SECRET = "whsec_aW50ZWdyYXRpb24tdGVzdC1zZWNyZXQ="


def owner_secret(owner: str = "default") -> str:
    from taskrunner.adapters.webhook_sender import secret_bytes
    from taskrunner.domain.auth import owner_signing_secret

    return owner_signing_secret(secret_bytes(SECRET), owner)


@dataclasses.dataclass
class Aws:
    session: boto3.session.Session
    physical: dict[str, dict[str, str]]
    assembly: Assembly

    def ref(self, logical: str) -> str:
        return self.physical[logical]["Ref"]


@pytest.fixture
def aws(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        assembly = assemble(session, None, prefix="it")
        yield Aws(session, assembly.physical, assembly)


@pytest.fixture
def settings(aws):
    return aws.assembly.settings(
        allow_loopback_egress=True,
        signing_secret=SECRET,
        auth_required=False,
        policy=Policy(progress_min_interval_seconds=0, retry_base_seconds=1, callback_base_seconds=1),
    )


@pytest.fixture
def services(settings):
    return build_services(settings)
