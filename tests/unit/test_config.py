from taskrunner.config import Settings


def test_unset_variables_keep_the_defaults():
    assert Settings.from_env({}) == Settings()


def test_variables_are_parsed_as_their_fields_are_typed():
    settings = Settings.from_env(
        {
            "AWS_DEFAULT_REGION": "eu-west-1",
            "RETRY_BASE_SECONDS": "1",
            "CALLBACK_MAX_ATTEMPTS": "3",
            "AUTH_REQUIRED": "false",
            "STREAM_URL": "https://stream.example/",
            "EGRESS_ALLOW_LIST": "hooks.internal, 10.0.0.0/8",
            "MAX_BODY_BYTES": "10",
            "AWS_ENDPOINT_URL": "",
        }
    )
    assert settings.region == "eu-west-1"
    assert settings.policy.retry_base_seconds == 1.0 and settings.policy.callback_max_attempts == 3
    assert settings.auth_required is False and settings.max_body_bytes == 10
    assert settings.stream_url == "https://stream.example"
    assert settings.egress_allow_list == ("hooks.internal", "10.0.0.0/8")
    assert settings.endpoint_url is None
