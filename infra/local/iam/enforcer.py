"""The check itself: each call of a function's key against its role, with AWS's access
denied answers per protocol, a calls log (one JSON line per checked call) and a loud line on
stderr per denied call.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

from .calls import ACCOUNT, Call, access_key_of, classify, credential_scope
from .policy import Decision, Policy


# ------------------------------------------------------------------------------ answers
@dataclasses.dataclass
class Denied:
    function: str
    action: str
    resource: str
    message: str
    status: str
    headers: list[tuple[str, str]]
    body: bytes


def principal_arn(function: str, role: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:sts::{account}:assumed-role/{role}/{function}"


def denied_answer(
    call: Call, function: str, role: str, action: str, resource: str, explicit: bool, account: str
) -> Denied:
    """AWS's answer to a call IAM denies, in the call's protocol."""
    shown = action.lower() if call.service == "sqs" else action  # SQS names actions in lower case
    why = (
        "with an explicit deny in an identity-based policy"
        if explicit
        else f"because no identity-based policy allows the {shown} action"
    )
    message = (
        f"User: {principal_arn(function, role, account)} is not authorized to perform: {shown} "
        f"on resource: {resource} {why}"
    )
    request_id = os.urandom(16).hex()
    if call.protocol == "query":
        xml = (
            '<?xml version="1.0"?><ErrorResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/">'
            f"<Error><Type>Sender</Type><Code>AccessDenied</Code><Message>{_xml_escape(message)}</Message>"
            f"<Detail/></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return Denied(
            function,
            action,
            resource,
            message,
            "403 Forbidden",
            [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)],
            xml.encode(),
        )
    payload = json.dumps({"__type": "com.amazon.coral.service#AccessDeniedException", "message": message}).encode()
    if call.service == "sqs":
        # SQS answers AccessDenied with 403; its JSON protocol names the query error in a header
        headers = [
            ("Content-Type", "application/x-amz-json-1.0"),
            ("x-amzn-query-error", "AccessDenied;Sender"),
            ("x-amzn-RequestId", request_id),
        ]
        return Denied(function, action, resource, message, "403 Forbidden", headers, payload)
    content_type = "application/x-amz-json-1.0" if call.service == "dynamodb" else "application/x-amz-json-1.1"
    headers = [("Content-Type", content_type), ("x-amzn-RequestId", request_id)]
    return Denied(function, action, resource, message, "400 Bad Request", headers, payload)


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ------------------------------------------------------------------------------ enforcement
class Enforcer:
    """Checks calls against the policy file the runner writes (reloaded when it changes)."""

    def __init__(
        self, policy_path: Path | str, *, stderr: TextIO | None = None, clock: Callable[[], float] = time.time
    ):
        self.policy_path = Path(policy_path)
        self._stderr = stderr or sys.stderr
        self._clock = clock
        self._lock = threading.Lock()
        self._mtime: int | None = None
        self._looked = 0.0
        self.reload_every = 0.5  # seconds
        self.keys: dict[str, str] = {}
        self.roles: dict[str, str] = {}
        self.policies: dict[str, Policy] = {}
        self.secrets: dict[str, str] = {}
        self.account = ACCOUNT
        self._decisions: dict[tuple[str, str, str], Decision] = {}
        self._log: TextIO | None = None

    def refresh(self) -> None:
        try:
            mtime = self.policy_path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == self._mtime:
            return
        with self._lock:
            if mtime == self._mtime:
                return
            data = json.loads(self.policy_path.read_text())
            self.policies = {name: Policy(f["statements"]) for name, f in data["functions"].items()}
            self.roles = {name: f["role"] for name, f in data["functions"].items()}
            self.secrets = dict(data.get("secrets") or {})
            self.account = data.get("account", ACCOUNT)
            self._decisions = {}
            if self._log is not None:
                self._log.close()
            self._log = open(data["calls_log"], "a", buffering=1) if data.get("calls_log") else None
            self.keys = dict(data["keys"])
            self._mtime = mtime

    def close(self) -> None:
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None

    def function_of(self, key: str) -> str | None:
        """The function whose access key this is; None for the runner's (unrestricted) keys.
        A function's key rereads a changed policy file at most twice a second; any other key
        always looks (the first calls of the functions follow the file's first writing)."""
        function = self.keys.get(key)
        now = time.monotonic()
        if function is None or now - self._looked > self.reload_every:
            self._looked = now
            self.refresh()
            function = self.keys.get(key)
        return function

    def decide(self, function: str, action: str, resource: str) -> Decision:
        cache_key = (function, action.lower(), resource)
        decision = self._decisions.get(cache_key)
        if decision is None:
            if len(self._decisions) > 20000:
                self._decisions = {}
            decision = self.policies[function].evaluate(action, resource)
            self._decisions[cache_key] = decision
        return decision

    def check(
        self, headers: Mapping[str, str], body: bytes, *, path: str = "/", query: str = ""
    ) -> tuple[str | None, Denied | None]:
        """(the calling function or None, the answer if the call is denied)."""
        function = self.function_of(access_key_of(headers.get("authorization", "")))
        if function is None and "X-Amz-Credential=" in query:
            scope = credential_scope("", query)
            function = self.function_of(scope[0]) if scope else None
        if function is None:
            return None, None
        call = classify(headers, body, path=path, query=query, account=self.account, secrets=self.secrets)
        if call is None:  # not signed: unreachable for a known key
            return function, None
        denied: Denied | None = None
        for action, resource in call.checks:
            decision = self.decide(function, action, resource)
            self._record(function, call.operation, action, resource, decision)
            if not decision.allowed and denied is None:
                denied = denied_answer(
                    call, function, self.roles[function], action, resource, decision.explicit_deny, self.account
                )
                note = f" ({decision.note})" if decision.note else ""
                kind = "explicit deny by " + decision.by if decision.explicit_deny else "not granted"
                print(f"IAM DENIED {function} {action} on {resource}: {kind}{note}", file=self._stderr, flush=True)
        return function, denied

    def _record(self, function: str, operation: str, action: str, resource: str, decision: Decision) -> None:
        if self._log is None:
            return
        entry = {
            "t": round(self._clock(), 3),
            "function": function,
            "operation": operation,
            "action": action,
            "resource": resource,
            "allowed": decision.allowed,
            "by": decision.by,
        }
        if decision.note:
            entry["note"] = decision.note
        line = json.dumps(entry) + "\n"
        with self._lock:
            self._log.write(line)


def read_calls(path: Path | str) -> list[dict[str, Any]]:
    """The calls log: one dict per checked call."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def operations_table(calls: Iterable[Mapping[str, Any]]) -> str:
    """Per function: each action and resource it used, how often, and what granted (or denied) it."""
    counts: dict[tuple[str, str, str, bool, str], int] = {}
    for c in calls:
        key = (c["function"], c["action"], c["resource"], bool(c["allowed"]), c.get("by", ""))
        counts[key] = counts.get(key, 0) + 1
    lines = []
    current = None
    for (function, action, resource, allowed, by), n in sorted(counts.items()):
        if function != current:
            lines.append(function)
            current = function
        verdict = f"granted by {by}" if allowed else "DENIED"
        lines.append(f"  {action:<34} {n:>6}x  {resource}\n  {'':<34} {'':>7}  {verdict}")
    return "\n".join(lines)
