"""Where the local stack departs from AWS, declared in one place.

Each function gets exactly what Lambda gives it: the variables Lambda's runtime sets itself
(``runtime_variables``), then template.yaml's Globals + the function's own
Environment.Variables, resolved. On top of those, only the exceptions below, each with the
reason it cannot be avoided; the runner prints them when it starts (and so does the README).
Users' ``--set KEY=VALUE`` overrides are exceptions too and are printed with them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

# The master secret's value in the emulator. On AWS, Secrets Manager generates it
# (GenerateSecretString); locally it is fixed so that tests and `make keys secret` can derive
# an owner's callback signing secret. Functions still read it through GetSecretValue.
LOCAL_SIGNING_SECRET = "whsec_bG9jYWwtZGV2ZWxvcG1lbnQtc2lnbmluZy1zZWNyZXQ="  # noqa: S105 - local only
SECRET_VALUES = {"SigningSecret": LOCAL_SIGNING_SECRET}

# Not shown in full when printed.
_MASKED = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "SigningSecret")


@dataclasses.dataclass(frozen=True)
class LocalException:
    variable: str
    value: str
    why: str
    functions: tuple[str, ...] = ()  # empty: every function
    # "env": an environment variable; "secret": a provisioned secret's value; "credentials":
    # each function's own key (infra/local/iam/), merged by the runner; "setting": a
    # function setting of template.yaml the runner was asked to change (--function-timeout);
    # "emulation": the embedded endpoint behaves unlike moto to behave like AWS, but not exactly
    kind: str = "env"

    def applies_to(self, function: str) -> bool:
        return not self.functions or function in self.functions

    def shown_value(self) -> str:
        if self.variable in _MASKED and self.value:
            return self.value[:4] + "..."
        return self.value if self.value else '""'


def local_exceptions(
    *,
    endpoint: str,
    credentials: dict[str, str] | None,
    xray_address: str,
    stream_port: int | None,
    user: dict[str, str] | None = None,
    timeouts: dict[str, int] | None = None,
    embedded: bool = False,
) -> list[LocalException]:
    api, stream = ("ApiFunction",), ("StreamFunction",)
    found = [
        LocalException("AWS_ENDPOINT_URL", endpoint, "no AWS account: every AWS call goes to the local endpoint"),
        *(
            [
                LocalException(
                    "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN",
                    "its own key",
                    "each function has a key of its own, as Lambda gives it its execution role's; the embedded "
                    "endpoint checks every call against the function's role in template.yaml",
                    kind="credentials",
                )
            ]
            if credentials is None
            else [
                LocalException(
                    "AWS_ACCESS_KEY_ID",
                    credentials["AWS_ACCESS_KEY_ID"],
                    "credentials of the local endpoint, shared by the functions (IAM is the endpoint's business)",
                ),
                LocalException("AWS_SECRET_ACCESS_KEY", credentials["AWS_SECRET_ACCESS_KEY"], "see AWS_ACCESS_KEY_ID"),
            ]
        ),
        LocalException(
            "AWS_XRAY_DAEMON_ADDRESS",
            xray_address,
            "Lambda's X-Ray daemon is replaced by the runner's listener (segments counted in the state dir)",
        ),
        LocalException(
            "SigningSecret",
            LOCAL_SIGNING_SECRET,
            "secret value fixed instead of generated, so tests can derive callback secrets",
            kind="secret",
        ),
        LocalException(
            "ALLOW_LOOPBACK_EGRESS",
            "true",
            "callbacks and http tasks may target receivers on 127.0.0.1",
        ),
        LocalException("STREAM_URL", "", "the local front serves the stream on its own origin (no Function URL)", api),
        LocalException(
            "STREAM_ACCEPT_API_KEYS",
            "true",
            "the front serves the stream on the API's origin, so a stream may be opened with X-Api-Key",
            stream,
        ),
        LocalException(
            "RATE_LIMIT_PER_SECOND",
            "200",
            "at most --max-concurrency API environments locally, where Lambda scales out (limit is per environment)",
            api,
        ),
        LocalException("RATE_LIMIT_BURST", "400", "see RATE_LIMIT_PER_SECOND", api),
        LocalException("PENDING_GRACE_SECONDS", "30", "tests wait for re-drives in seconds, not minutes"),
        LocalException("LEASE_GRACE_SECONDS", "5", "see PENDING_GRACE_SECONDS"),
        LocalException("RETRY_BASE_SECONDS", "1", "tests see retries within seconds"),
        LocalException("RETRY_CAP_SECONDS", "30", "see RETRY_BASE_SECONDS"),
        LocalException("CALLBACK_RETRY_BASE_SECONDS", "2", "tests see callback retries within seconds"),
        LocalException("CALLBACK_RETRY_CAP_SECONDS", "60", "see CALLBACK_RETRY_BASE_SECONDS"),
        LocalException(
            "PYTHONUNBUFFERED", "1", "function output reaches its log file as it is written, as Lambda's does"
        ),
    ]
    if embedded:
        found += EMULATIONS
    if stream_port is not None:
        found.append(
            LocalException("PORT", str(stream_port), "a free port on 127.0.0.1 instead of the template's 8080", stream)
        )
    for key, value in (user or {}).items():
        found.append(LocalException(key, value, "--set on the command line"))
    for function, seconds in (timeouts or {}).items():
        found.append(
            LocalException(
                "Timeout",
                f"{seconds} s",
                "--function-timeout on the command line (template.yaml's timeout is not used: the function's "
                "invocations end, and report the time left, as a function with this timeout's would)",
                (function,),
                kind="setting",
            )
        )
    return found


# What the embedded endpoint (infra/local/emulation.py) does differently from AWS.
EMULATIONS = [
    LocalException(
        "TimeToLiveSpecification",
        "expired items deleted within 10 s",
        "moto never deletes expired items; the embedded endpoint sweeps them every 10 s, where DynamoDB "
        "deletes them within a few days of expiry (both: an expired item may still be read until then)",
        kind="emulation",
    ),
]


def applied(exceptions: Iterable[LocalException], function: str) -> dict[str, str]:
    """The environment variables the exceptions set in ``function``'s environment."""
    return {e.variable: e.value for e in exceptions if e.kind == "env" and e.applies_to(function)}


def describe(exceptions: Iterable[LocalException]) -> list[str]:
    """One line per exception, as the runner prints them."""
    lines = []
    for e in exceptions:
        where = (
            ", ".join(e.functions)
            if e.functions
            else {"secret": "provisioned", "emulation": "embedded endpoint"}.get(e.kind, "all functions")
        )
        label = (
            f"{e.variable} (secret value)"
            if e.kind == "secret"
            else f"{e.variable}: {e.value}"
            if e.kind in ("credentials", "setting", "emulation")
            else f"{e.variable}={e.shown_value()}"
        )
        lines.append(f"{label}  [{where}]  {e.why}")
    return lines
